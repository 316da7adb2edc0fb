"""The shared foundation: validation, random streams, I/O, progress."""

from __future__ import annotations

import json
import math
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from altmarl import _random, _validate, io, progress


# --------------------------------------------------------------------------- validation
@given(st.integers(-10**6, 10**6), st.integers(-5, 5))
def test_check_int_accepts_exactly_integers_in_range(v: int, lo: int) -> None:
    if v >= lo:
        assert _validate.check_int("x", v, lo) == v
        assert _validate.check_int("x", np.int64(v), lo) == v
    else:
        with pytest.raises(ValueError, match=r"^x = .*expected an integer >= "):
            _validate.check_int("x", v, lo)


@pytest.mark.parametrize("bad", [True, False, 2.0, "3", None, 1 + 0j, np.float64(2), [1]])
def test_check_int_rejects_non_integers(bad: object) -> None:
    with pytest.raises(ValueError, match="field = "):
        _validate.check_int("field", bad, 0)


def test_check_int_maximum() -> None:
    assert _validate.check_int("k", 5, 1, 5) == 5
    with pytest.raises(ValueError, match=r"k = 6: expected an integer in \[1, 5\]"):
        _validate.check_int("k", 6, 1, 5)


@pytest.mark.parametrize("bad", [True, "0.5", math.nan, math.inf, 1j, None])
def test_check_float_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="lr = "):
        _validate.check_float("lr", bad)


def test_check_float_bounds_and_positive() -> None:
    assert _validate.check_float("a", 2, 0, 3) == 2.0
    assert _validate.check_positive("a", 1e-9) == 1e-9
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="expected a finite number > 0"):
            _validate.check_positive("a", bad)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        _validate.check_float("p", 1.5, 0, 1)


def test_check_choice_names_options_and_closest() -> None:
    assert _validate.check_choice("solver", "pi", ("pi", "vi")) == "pi"
    with pytest.raises(ValueError, match=r"solver = 'dirct': expected one of 'direct', "
                                         r"'induced-vi' \(did you mean 'direct'\?\)"):
        _validate.check_choice("solver", "dirct", ("direct", "induced-vi"))
    with pytest.raises(ValueError, match="expected one of"):
        _validate.check_choice("solver", 1, ("direct",))


def test_show_writes_values_as_a_user_reads_them() -> None:
    assert _validate.show(np.float64(0.97)) == "0.97"
    assert _validate.show(np.int64(3)) == "3"
    assert _validate.show([1, "a"]) == "[1, 'a']"
    assert _validate.show({"start": 3, "stop": 1}) == "{start = 3, stop = 1}"
    assert _validate.show(np.zeros((5, 5))) == "an array of shape (5, 5)"
    assert _validate.show(object()) == "object"
    with pytest.raises(ValueError, match=r"^p = 0.5: expected an integer"):
        _validate.check_int("p", np.float64(0.5))


def test_check_spaces_normalizes_and_names_the_key() -> None:
    sp = {"S_g": np.int64(2), "A_g": 3, "S_l": 4}
    assert _validate.check_spaces(sp) == {"S_g": 2, "A_g": 3, "S_l": 4}
    assert type(_validate.check_spaces(sp)["S_g"]) is int
    assert _validate.check_spaces({**sp, "A_l": 5}) == {"S_g": 2, "A_g": 3, "S_l": 4, "A_l": 5}
    assert "A_l" not in _validate.check_spaces({**sp, "A_l": -1})  # unknown A_l
    assert "A_l" not in _validate.check_spaces({**sp, "A_l": None})
    for bad, match in (([2, 3, 4], r"spaces = \[2, 3, 4\]: expected an object"),
                       ({**sp, "B": 1}, r"spaces: unknown keys \['B'\]"),
                       ({"S_g": 2, "A_g": 3}, "spaces.S_l: missing"),
                       ({**sp, "A_g": 0}, r"spaces.A_g = 0: expected an integer in \[1, "),
                       ({**sp, "S_g": 10**7}, r"spaces.S_g = 10000000: expected an integer "
                                              r"in \[1, 1000000\]"),
                       ({**sp, "S_l": True}, "spaces.S_l = True"),
                       ({**sp, "A_l": 0}, "spaces.A_l = 0")):
        with pytest.raises(ValueError, match=match):
            _validate.check_spaces(bad)
    with pytest.raises(ValueError, match=r"^meta.spaces.S_l: missing"):
        _validate.check_spaces({"S_g": 2, "A_g": 3}, "meta.spaces")


@pytest.mark.parametrize("bad", ["0.9", True, 1.0, -0.1, math.nan, None])
def test_check_gamma(bad: object) -> None:
    assert _validate.check_gamma(0) == 0.0
    with pytest.raises(ValueError, match=r"gamma = .*expected a number in \[0, 1\)"):
        _validate.check_gamma(bad)


@pytest.mark.parametrize("bad", [True, np.bool_(True), 0, 1, 0.0, 1.0, -0.5, 2, math.nan,
                                 "0.9", None, [0.5], np.array([0.5])])
def test_check_open_unit(bad: object) -> None:
    for good in (1e-9, 0.5, 0.95, np.float64(0.99)):
        got = _validate.check_open_unit("confidence", good)
        assert isinstance(got, float) and got == float(good)
    with pytest.raises(ValueError, match=r"confidence = .*expected a number in \(0, 1\)"):
        _validate.check_open_unit("confidence", bad)


def test_check_kwargs() -> None:
    d = {"a": 1}
    assert _validate.check_kwargs("g_options", d) is d
    assert _validate.check_kwargs("g_options", None) == {}
    for bad in ([("a", 1)], "a=1", 3):
        with pytest.raises(ValueError, match="g_options = .*expected a dict of keyword"):
            _validate.check_kwargs("g_options", bad)


def test_check_bool() -> None:
    assert _validate.check_bool("flag", True) is True
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="flag = "):
            _validate.check_bool("flag", bad)


def test_check_instance_names_field_and_types() -> None:
    x = Path(".")
    assert _validate.check_instance("where", x, Path) is x
    with pytest.raises(ValueError, match=r"^where: expected a Path, got str$"):
        _validate.check_instance("where", ".", Path)
    with pytest.raises(ValueError, match=r"^n: expected an int, got float$"):
        _validate.check_instance("n", 1.0, int)
    with pytest.raises(ValueError, match=r"^p: expected a policy, got NoneType$"):
        _validate.check_instance("p", None, Path, "a policy")


@given(st.lists(st.floats(0, 1), min_size=2, max_size=5))
def test_check_stochastic_names_first_bad_row(row: list[float]) -> None:
    arr = np.array([[0.5, 0.5], [0.25, 0.75]])
    _validate.check_stochastic("P", arr)
    x = np.asarray(row)
    if abs(x.sum() - 1) > 1e-8:
        with pytest.raises(ValueError, match=r"P\[0, ':'\] sums to"):
            _validate.check_stochastic("P", x[None])


# --------------------------------------------------------------------------- random streams
def test_child_is_pure_and_keys_are_independent() -> None:
    ss = np.random.SeedSequence(7)
    a = _random.child(ss, 1, 2).generate_state(4)
    ss.spawn(3)  # spawning must not change the children
    assert np.array_equal(a, _random.child(ss, 1, 2).generate_state(4))
    assert not np.array_equal(a, _random.child(ss, 2, 1).generate_state(4))
    assert np.array_equal(_random.child(7, 1).generate_state(2),
                          np.random.SeedSequence(7, spawn_key=(1,)).generate_state(2))


def test_derive_seed_is_64_bit_and_keyed() -> None:
    s = _random.derive_seed(5, 1, 2)
    assert s == _random.derive_seed(5, 1, 2) != _random.derive_seed(6, 1, 2)
    assert s != _random.derive_seed(5, 2, 1)
    assert 0 <= s < 2**64


def test_int_seed_and_tie_seed() -> None:
    ss = np.random.SeedSequence(3)
    assert _random.int_seed(ss) == int(ss.generate_state(1)[0])
    assert _random.tie_seed(3) == int(np.random.SeedSequence(3).spawn(3)[2].generate_state(1)[0])
    assert _random.rng(3, 1).random() == np.random.default_rng(_random.child(3, 1)).random()


# --------------------------------------------------------------------------- I/O
def test_to_jsonable_and_json_bytes() -> None:
    from enum import Enum

    class Color(Enum):
        RED = "red"

    obj = {"a": np.float64(1.5), "b": np.arange(3), 3: (np.int64(2), Color.RED),
           "nan": math.nan, "o": object}
    out = io.to_jsonable(obj)
    assert out["a"] == 1.5 and out["b"] == [0, 1, 2] and out["3"] == [2, "red"]
    assert math.isnan(out["nan"]) and out["o"].startswith("<class")
    strict = json.loads(io.json_bytes(obj, nonfinite="null"))
    assert strict["nan"] is None
    assert io.json_bytes({"b": 1, "a": 2}).decode() == '{\n  "a": 2,\n  "b": 1\n}\n'
    with pytest.raises(TypeError):
        io.to_jsonable({"o": object()}, fallback="error")


def test_atomic_write_and_csv_roundtrip(tmp_path: Path) -> None:
    rows = [{"k": 1, "v": 0.1, "s": "x"}, {"k": 2, "v": None, "extra": 3}]
    io.write_csv(tmp_path / "a.csv", rows)
    back = io.read_csv_rows(tmp_path / "a.csv")
    assert back == [{"k": 1, "v": 0.1, "s": "x", "extra": None},
                    {"k": 2, "v": None, "s": None, "extra": 3}]
    cols = io.read_csv_columns(tmp_path / "a.csv")
    assert cols["k"].tolist() == [1.0, 2.0] and math.isnan(cols["v"][1])
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    with pytest.raises(ValueError, match="not in the CSV header"):
        io.dict_rows_csv_bytes(rows, ["k"])


def test_npz_with_meta_roundtrip_and_refusals(tmp_path: Path) -> None:
    p = io.save_npz(tmp_path / "x", {"format": "t", "n": 2}, {"a": np.arange(4.0)})
    assert p.name == "x.npz"
    meta, arrays = io.load_npz(p)
    assert meta == {"format": "t", "n": 2} and arrays["a"].tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "obj.npz", meta=np.array({"a": 1}, dtype=object))
    with pytest.raises(ValueError, match="not a valid"):
        io.load_npz(tmp_path / "obj.npz")
    (tmp_path / "bad.npz").write_bytes(p.read_bytes()[:40])
    with pytest.raises(ValueError, match="not a valid"):
        io.load_npz(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        io.load_npz(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- progress
def test_progress_is_a_noop_when_disabled_or_not_a_terminal() -> None:
    from rich.console import Console

    with progress.Progress(enabled=False) as bar:
        t = bar.add_task("x", total=3)
        bar.advance(t, status="s")
        assert not bar.active
    buf = StringIO()
    with progress.Progress(console=Console(file=buf, force_terminal=False)) as bar:
        bar.advance(bar.add_task("x", total=2))
        assert not bar.active
    assert buf.getvalue() == ""
    buf = StringIO()
    con = Console(file=buf, force_terminal=True, width=80)
    with progress.Progress(console=con) as bar:
        t = bar.add_task("learning", total=2)
        bar.advance(t, status="half")
        bar.advance(t)
        assert bar.active
    assert "learning" in buf.getvalue() and "2/2" in buf.getvalue()
