"""Helpers shared by the command groups (altmarl.cli.common) and the number formatter
(altmarl.io.format_number)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np
import pytest
import typer

from altmarl.cli.common import echo_plots, fail, parse_int_list, parse_sets, parse_value, redraw
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


def test_redraw_lists_the_plots_or_names_the_damage(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    echo_plots([tmp_path / "a.png"])
    redraw(tmp_path, "theory run", "run it again", lambda: [tmp_path / "b.png", "c.png"])
    assert capsys.readouterr().out.splitlines() == [f"plot: {tmp_path / 'a.png'}",
                                                    f"plot: {tmp_path / 'b.png'}", "plot: c.png"]

    for err in (KeyError("per_k"), IndexError("list index out of range"), OSError("gone")):
        def draw(err: Exception = err) -> list[Path]:
            raise err

        with pytest.raises(typer.Exit) as info:
            redraw(tmp_path, "theory run", "run it again", draw)
        assert info.value.exit_code == 2
        msg = " ".join(capsys.readouterr().err.split())
        assert f"{tmp_path}: cannot read the theory run (" in msg and "); run it again" in msg


def test_expect_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from altmarl.cli.experiments import expect_kind

    (tmp_path / "config.json").write_text(json.dumps({"format": "altmarl-continuous-sweep/1"}))
    expect_kind(tmp_path, "continuous-sweep", "altmarl continuous sweep")  # returns
    with pytest.raises(typer.Exit):
        expect_kind(tmp_path, "federated", "altmarl federated run")
    assert "not of `altmarl federated run`" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(typer.Exit):
        expect_kind(tmp_path / "missing", "federated", "altmarl federated run")
