"""Helpers shared by the command groups (altmarl.cli.common) and the number formatter
(altmarl.io.format_number)."""

from __future__ import annotations

from enum import Enum

import numpy as np
import pytest
import typer

from altmarl.cli.common import fail, parse_int_list, parse_sets, parse_value
from altmarl.io import format_number


def test_parse_int_list() -> None:
    assert parse_int_list("1,5, 20", "--ks") == [1, 5, 20]
    assert parse_int_list("3,", "--ks") == [3]
    with pytest.raises(ValueError, match=r"--ks = '1,x': expected comma-separated integers$"):
        parse_int_list("1,x", "--ks")
    with pytest.raises(ValueError, match=r"integers, e\.g\. 1,5,20$"):
        parse_int_list("1,x", "--ks", example="1,5,20")
    with pytest.raises(ValueError, match="--sizes = ' , ': expected at least one integer"):
        parse_int_list(" , ", "--sizes")


def test_parse_sets_json_values() -> None:
    got = parse_sets(["n=1000", " name = warehouse", "p=[1, 2]", "x=1", "x=2", "f=0.5"])
    assert got == {"n": 1000, "name": " warehouse", "p": [1, 2], "x": 2, "f": 0.5}
    assert parse_value("true") is True and parse_value("abc") == "abc"
    with pytest.raises(ValueError, match="--set 'n': expected key=value"):
        parse_sets(["n"])


def test_fail_exits_with_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info:
        fail("bad input")
    assert info.value.exit_code == 2
    with pytest.raises(typer.Exit) as info:
        fail("run failed", 1)
    assert info.value.exit_code == 1
    err = capsys.readouterr().err
    assert "error: bad input" in err and "error: run failed" in err


class _Color(Enum):
    RED = 1.5


def test_format_number() -> None:
    assert format_number(0.1) == "0.1" and format_number(1 / 3) == repr(1 / 3)
    assert float(format_number(1 / 3)) == 1 / 3  # exact round trip in CSV files
    assert format_number(np.float64(0.25)) == "0.25"  # not 'np.float64(0.25)'
    assert format_number(np.float32(0.1)) == repr(float(np.float32(0.1)))
    assert format_number(np.int64(7)) == "7" and format_number(3) == "3"
    assert format_number(None) == "" and format_number(True) == "True"
    assert format_number("abc") == "abc" and format_number(_Color.RED) == "1.5"
    assert format_number(1 / 3, digits=4) == "0.3333"
    assert format_number(123456.0, digits=4) == "1.235e+05"
    assert format_number(np.float64(2.0), digits=4) == "2" and format_number(5, digits=4) == "5"


def test_no_progress_option_on_every_long_command() -> None:
    from typer.testing import CliRunner

    from altmarl.cli import app
    from altmarl.cli.common import no_progress_option

    opt = no_progress_option()
    assert opt.default is False and opt.param_decls == ("--no-progress",)
    for cmd in (["theory"], ["logs", "record"], ["logs", "learn"], ["continuous", "run"],
                ["continuous", "sweep"], ["federated", "run"]):
        res = CliRunner().invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0 and "--no-progress" in res.output, cmd
