"""The log format (version 1): OfflineDataset, saving, and the validating loader."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import altmarl as am
from altmarl import offpolicy as op

from .helpers import ENV


@pytest.mark.parametrize("name", ["log", "log.csv", "log.csv.gz"])
def test_save_load_round_trip(tmp_path, game, small_log, name) -> None:
    meta_path = small_log.save(tmp_path / name)
    assert meta_path.name == "log.json"
    for path in (tmp_path / name, meta_path):
        back = op.load_dataset(path, game=game, k=3)
        for f in ("s_g", "h", "a_g", "r", "s_g_next", "h_next", "episode", "t"):
            assert np.array_equal(getattr(back, f), getattr(small_log, f)), f
        assert back.info["behaviour"] == {"kind": "uniform"}
    meta = json.loads(meta_path.read_text())
    assert meta["columns"] == op.columns(3) and meta["rows"] == 60
    assert meta["columns"][:4] == ["episode", "t", "s_g", "h_0"] and "h'_2" in meta["columns"]


def test_from_arrays_defaults_to_one_trajectory(game) -> None:
    ds = op.OfflineDataset.from_arrays([0, 1], [[3, 0, 0], [1, 1, 1]], [0, 2], [0.5, 1.0],
                                       [1, 0], [[1, 1, 1], [0, 0, 3]], k=3, spaces=game,
                                       gamma=0.8)
    assert ds.episode.tolist() == [0, 0] and ds.t.tolist() == [0, 1] and ds.n == 3
    with pytest.raises(ValueError, match="expected integers"):
        op.OfflineDataset.from_arrays(["a"], [[3, 0, 0]], [0], [0.5], [1], [[3, 0, 0]], k=3,
                                      spaces=game, gamma=0.8)
    with pytest.raises(ValueError, match="shape"):
        op.OfflineDataset.from_arrays([0], [[3, 0]], [0], [0.5], [1], [[3, 0, 0]], k=3,
                                      spaces=game, gamma=0.8)
    with pytest.raises(ValueError, match="gamma"):
        op.OfflineDataset.from_arrays([0], [[3, 0, 0]], [0], [0.5], [1], [[3, 0, 0]], k=3,
                                      spaces=game, gamma=1.0)


def _fresh_log(ds: op.OfflineDataset, keep_sha: bool = False) -> Path:
    d = Path(tempfile.mkdtemp())
    meta_path = ds.save(d / "log.csv")
    if not keep_sha:
        meta = json.loads(meta_path.read_text())
        del meta["sha256"]
        meta_path.write_text(json.dumps(meta))
    return d


def _edit_csv(d: Path, fn: Any) -> None:
    p = d / "log.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(fn(lines)) + "\n")


def _edit_meta(d: Path, fn: Any) -> None:
    p = d / "log.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def _set_cell(lines: list[str], row: int, col: str, value: str) -> list[str]:
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(col)] = value
    lines[row + 1] = ",".join(cells)
    return lines


def _drop_col(lines: list[str], col: str) -> list[str]:
    j = lines[0].split(",").index(col)
    return [",".join(c for i, c in enumerate(line.split(",")) if i != j) for line in lines]


CORRUPTIONS: list[tuple[str, Any, Any, str]] = [
    ("missing column", lambda ls: _drop_col(ls, "r"), None, r"missing column\(s\) \['r'\]"),
    ("missing h column", lambda ls: _drop_col(ls, "h'_1"), None, "missing column"),
    ("unknown column", lambda ls: [ls[0] + ",note"] + [x + ",1" for x in ls[1:]], None,
     "unknown column"),
    ("duplicate column", lambda ls: [ls[0].replace("a_g", "r")] + ls[1:], None, "duplicate"),
    ("s_g out of range", lambda ls: _set_cell(ls, 4, "s_g", "2"), None,
     r"column 's_g', row 4 \(line 6\): value 2 is out of range: expected an integer in 0..1"),
    ("negative next state", lambda ls: _set_cell(ls, 0, "s_g'", "-1"), None, "out of range"),
    ("action out of range", lambda ls: _set_cell(ls, 2, "a_g", "3"), None, "0..2"),
    ("histogram sum", lambda ls: _set_cell(ls, 7, "h_0", "9"), None, "expected k = 3"),
    ("next histogram sum", lambda ls: _set_cell(ls, 1, "h'_2", "0"), None, "expected k = 3"),
    ("NaN reward", lambda ls: _set_cell(ls, 3, "r", "nan"), None, "finite number"),
    ("inf reward", lambda ls: _set_cell(ls, 3, "r", "inf"), None, "finite number"),
    ("float in int column", lambda ls: _set_cell(ls, 5, "h_1", "1.5"), None,
     r"column 'h_1', row 5 \(line 7\): value '1.5': expected an integer"),
    ("text in int column", lambda ls: _set_cell(ls, 5, "a_g", "two"), None, "expected an integer"),
    ("text reward", lambda ls: _set_cell(ls, 5, "r", "high"), None, "expected a number"),
    ("empty cell", lambda ls: _set_cell(ls, 5, "episode", ""), None, "expected an integer"),
    ("code in a cell", lambda ls: _set_cell(ls, 0, "r", "__import__('os').getcwd()"), None,
     "expected a number"),
    ("short row", lambda ls: ls[:3] + [ls[3].rsplit(",", 1)[0]] + ls[4:], None,
     r"row 2 \(line 4\) has 11 fields: expected 12"),
    ("long row", lambda ls: ls[:3] + [ls[3] + ",7"] + ls[4:], None, "has 13 fields"),
    ("whitespace line", lambda ls: ls[:3] + ["   "] + ls[3:], None, "has 1 fields"),
    ("quoted junk", lambda ls: _set_cell(ls, 1, "t", '"1,2"'), None, "expected an integer"),
    ("duplicate step", lambda ls: ls[:7] + [ls[6]] + ls[8:], None,
     r"row 6 \(line 8\): \(episode, t\) = \(0, 5\) appears twice"),
    ("no rows", lambda ls: ls[:1], None, "no data rows"),
    ("rows mismatch", lambda ls: ls[:-1], None, "rows = 60"),
    ("wrong format", None, lambda m: m.update(format="altmarl.global_policy"), "format"),
    ("future version", None, lambda m: m.update(version=2), "version 2"),
    ("k as text", None, lambda m: m.update(k="3"), r"k = '3'"),
    ("k mismatch with data", None, lambda m: m.update(k=2), "expected k = 2"),
    ("missing spaces", None, lambda m: m.pop("spaces"), "spaces"),
    ("bad space", None, lambda m: m["spaces"].update(S_g=0), "spaces.S_g"),
    ("S_l mismatch", None, lambda m: m["spaces"].update(S_l=2), "columns"),
    ("gamma 1", None, lambda m: m.update(gamma=1.0), "gamma"),
    ("gamma text", None, lambda m: m.update(gamma="0.9"), "gamma"),
    ("k > n", None, lambda m: m.update(n=2), "k <= n"),
    ("path in data", None, lambda m: m.update(data="../log.csv"), "plain file name"),
    ("header differs from metadata", None, lambda m: m.update(columns=m["columns"][::-1]),
     "differs from the metadata"),
]


@pytest.mark.parametrize("name, csv_fn, meta_fn, match", CORRUPTIONS,
                         ids=[c[0] for c in CORRUPTIONS])
def test_loader_rejects_bad_data(small_log, name, csv_fn, meta_fn, match) -> None:
    d = _fresh_log(small_log)
    try:
        if csv_fn is not None:
            _edit_csv(d, csv_fn)
        if meta_fn is not None:
            _edit_meta(d, meta_fn)
        with pytest.raises(ValueError, match=match):
            op.load_dataset(d / "log.csv")
    finally:
        shutil.rmtree(d)


def test_loader_accepts_blank_lines_crlf_and_bom(small_log) -> None:
    d = _fresh_log(small_log)
    try:
        p = d / "log.csv"
        lines = p.read_text().splitlines()
        text = "\ufeff" + "\r\n".join(lines[:5] + [""] + lines[5:]) + "\r\n\r\n"
        p.write_bytes(text.encode("utf-8"))
        back = op.load_dataset(p)
        assert np.array_equal(back.r, small_log.r) and np.array_equal(back.h, small_log.h)
        # line numbers in messages count the blank line
        _edit_csv(d, lambda ls: _set_cell(ls, 6, "a_g", "7") if ls[6] else ls)
        with pytest.raises(ValueError, match=r"row 5 \(line 8\)"):
            op.load_dataset(p)
    finally:
        shutil.rmtree(d)


def test_loader_checks_metadata_against_data_and_game(small_log, game) -> None:
    d = _fresh_log(small_log, keep_sha=True)
    try:
        _edit_csv(d, lambda ls: _set_cell(ls, 0, "r", "0.25"))
        with pytest.raises(ValueError, match="SHA-256"):
            op.load_dataset(d / "log.csv")
        small_log.save(d / "log.csv")
        other = am.envs.make("random", **{**ENV, "seed": 9})
        with pytest.raises(ValueError, match="fingerprint"):
            op.load_dataset(d / "log.csv", game=other)
        assert len(op.load_dataset(d / "log.csv", game=other, strict=False)) == 60
        bigger = am.envs.make("random", **{**ENV, "n_sg": 3})
        with pytest.raises(ValueError, match="spaces"):
            op.load_dataset(d / "log.csv", game=bigger)
        with pytest.raises(ValueError, match="k = 2 was requested"):
            op.load_dataset(d / "log.csv", k=2)
        (d / "log.json").write_text("{not json")
        with pytest.raises(ValueError, match="not valid JSON"):
            op.load_dataset(d / "log.csv")
        (d / "log.json").write_text('{"format": "altmarl.offpolicy_log", "gamma": NaN}')
        with pytest.raises(ValueError, match="NaN"):
            op.load_dataset(d / "log.csv")
        (d / "log.json").unlink()
        with pytest.raises(FileNotFoundError, match="sidecar"):
            op.load_dataset(d / "log.csv")
    finally:
        shutil.rmtree(d)


_TEXT = st.one_of(
    st.integers(-3, 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "1.0", "1e0", "+1", " 2 ", "0x1", "None", "True", "1_0", "--1"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126,
                                   blacklist_characters=',"'), max_size=4),
)


@given(row=st.integers(0, 59), col=st.sampled_from(op.columns(3)), text=_TEXT)
def test_loader_never_returns_a_silently_wrong_dataset(small_log, row, col, text) -> None:
    """Any single-cell edit either raises ValueError or loads exactly what the cell says,
    with every invariant of the format intact."""
    d = _fresh_log(small_log)
    try:
        _edit_csv(d, lambda ls: _set_cell(ls, row, col, text))
        try:
            ds = op.load_dataset(d / "log.csv")
        except ValueError:
            return
        field = {"s_g'": "s_g_next"}.get(col, col)
        if col.startswith("h'_"):
            got = ds.h_next[row, int(col[3:])]
        elif col.startswith("h_"):
            got = ds.h[row, int(col[2:])]
        else:
            got = getattr(ds, field)[row]
        expected = float(text) if col == "r" else int(text)
        assert got == expected
        assert np.isfinite(ds.r).all()
        assert ((ds.s_g >= 0) & (ds.s_g < 2)).all() and ((ds.a_g >= 0) & (ds.a_g < 3)).all()
        assert (ds.h.sum(axis=1) == 3).all() and (ds.h_next.sum(axis=1) == 3).all()
    finally:
        shutil.rmtree(d)


def _with_note_column(d: Path, note: str) -> None:
    """Add a declared extra column ``note`` holding ``note`` on every row."""
    _edit_csv(d, lambda ls: [ls[0] + ",note"] + [x + "," + note for x in ls[1:] if x])
    _edit_meta(d, lambda m: (m.update(extra_columns=["note"]), m.pop("columns", None)))


@pytest.mark.parametrize("cell", ["+\u0100", " \u0100", "+\U0010ffff", "\u0663", "1\u00a0",
                                  "\u2007" + "1", "-\u00e9"])
def test_non_ascii_cells_are_a_clean_error_not_a_crash(small_log, cell) -> None:
    """NumPy 2.4's C reader can crash the interpreter on such cells; the loader must not
    hand them to it (checked in a subprocess, so a crash fails this test instead of the run)."""
    import subprocess
    import sys

    d = _fresh_log(small_log)
    try:
        _edit_csv(d, lambda ls: _set_cell(ls, 2, "h_0", cell))
        code = ("import sys, altmarl.offpolicy as op\n"
                "try:\n    op.load_dataset(sys.argv[1])\n"
                "except ValueError as e:\n    print('ValueError', e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(d / "log.csv")],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.startswith("ValueError") and "column 'h_0', row 2" in out.stdout
    finally:
        shutil.rmtree(d)


@given(row=st.integers(0, 59), col=st.sampled_from(op.columns(3)), text=_TEXT)
def test_non_ascii_logs_load_exactly_like_ascii_ones(small_log, row, col, text) -> None:
    """A log with non-ASCII text in a declared extra column goes through Python's CSV reader;
    it accepts and refuses exactly what NumPy's reader does on the same data columns."""
    outcome = []
    for note in ("plain", "caf\u00e9"):
        d = _fresh_log(small_log)
        try:
            _edit_csv(d, lambda ls: _set_cell(ls, row, col, text))
            _with_note_column(d, note)
            try:
                ds = op.load_dataset(d / "log.csv")
                outcome.append(("ok", ds.s_g.tolist(), ds.a_g.tolist(), ds.r.tolist(),
                                ds.h.tolist(), ds.h_next.tolist(), ds.episode.tolist()))
            except ValueError:
                outcome.append(("error",))
        finally:
            shutil.rmtree(d)
    assert outcome[0] == outcome[1]


def test_non_ascii_extra_column_loads_the_same_dataset(small_log) -> None:
    d = _fresh_log(small_log)
    try:
        _with_note_column(d, "d\u00e9p\u00f4t \u2192 zone 2")
        back = op.load_dataset(d / "log.csv")
        for field in ("s_g", "a_g", "r", "h", "h_next", "s_g_next", "episode", "t"):
            assert np.array_equal(getattr(back, field), getattr(small_log, field)), field
    finally:
        shutil.rmtree(d)
