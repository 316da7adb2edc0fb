"""Bounded loading of untrusted off-policy logs (issue 18): gzip bombs, huge declared
spaces and row counts, FIFOs, bare-CR line endings; the learner's table guard."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from altmarl import offpolicy as op
from altmarl.limits import MAX_LOG_CELLS


def _saved(small_log, tmp_path: Path, gz: bool = False) -> Path:
    return small_log.save(tmp_path / ("log.csv.gz" if gz else "log.csv"))


def _meta(tmp_path: Path, **over) -> None:
    p = tmp_path / "log.json"
    m = json.loads(p.read_text())
    m.update(over)
    p.write_text(json.dumps(m))


def test_gzip_bomb_is_refused_while_streaming(small_log, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from altmarl.offpolicy import dataset

    _saved(small_log, tmp_path, gz=True)
    header = (tmp_path / "log.csv.gz").read_bytes()
    text = gzip.decompress(header).decode()
    bomb = gzip.compress(text.encode() + b"\n" * (8 * 2**20), mtime=0)  # 8 MiB of newlines
    assert len(bomb) < 100_000
    (tmp_path / "log.csv.gz").write_bytes(bomb)
    _meta(tmp_path, sha256=None)
    m = json.loads((tmp_path / "log.json").read_text())
    m.pop("sha256")
    m.pop("rows")
    (tmp_path / "log.json").write_text(json.dumps(m))
    real = dataset._read_log_text
    monkeypatch.setattr(dataset, "_read_log_text",
                        lambda src, max_bytes=2**20: real(src, max_bytes))
    with pytest.raises(ValueError, match=r"log.csv.gz: decompresses to more than 1048576 bytes"):
        op.load_dataset(tmp_path / "log.json")


@pytest.mark.parametrize("over, match", [
    ({"spaces": {"S_g": 2, "A_g": 3, "S_l": 10**8}}, r"spaces.S_l = 100000000: expected an "
                                                      r"integer in \[1, 1000000\]"),
    ({"spaces": {"S_g": 2, "A_g": 3, "S_l": 10**6}}, "the header has 12 columns; a log with "
                                                     r"\|S_l\| = 1000000 has 2000006"),
    ({"rows": 10**4, "spaces": {"S_g": 2, "A_g": 3, "S_l": 10**5}},
     "the metadata declares 10000 rows x 200006 columns"),
    ({"rows": 10**12}, "the metadata declares 1000000000000 rows"),
    ({"k": 10**19}, r"metadata k = 10000000000000000000: expected an integer in \[1, "),
    ({"version": 1.0}, "format version 1.0 is not supported"),
    ({"version": True}, "format version True is not supported"),
    ({"sha256": 5}, "sha256 = 5: expected a hex string"),
    ({"columns": "episode,t"}, "columns: expected a list"),
])
def test_sidecar_sizes_and_types_are_bounded(small_log, tmp_path: Path, over, match,
                                             peak_memory) -> None:
    """Refused from the sizes the sidecar declares, allocating under 8 MiB (the log
    reader's fixed buffers: 1 MiB of read buffer, 4 MiB chunks), while holding what it
    declares would take gigabytes (10^4 rows x 200006 columns: 2e9 cells, 16 GB; 10^12
    rows; the 2000006 column names of |S_l| = 10^6)."""
    _saved(small_log, tmp_path)
    _meta(tmp_path, **over)
    with peak_memory() as mem, pytest.raises(ValueError, match=match) as info:
        op.load_dataset(tmp_path / "log.csv")
    assert mem.bytes < 8 * 2**20, mem.bytes
    assert len(str(info.value)) < 1000


def test_many_declared_local_states_give_a_short_message(small_log, tmp_path: Path) -> None:
    """|S_l| = 10^5 without rows: the header check fails at once, in one short line (the
    issue: a 50-million-character error message)."""
    _saved(small_log, tmp_path)
    m = json.loads((tmp_path / "log.json").read_text())
    m.pop("rows")
    m["spaces"]["S_l"] = 10**5
    (tmp_path / "log.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="the header has 12 columns") as info:
        op.load_dataset(tmp_path / "log.csv")
    assert len(str(info.value)) < 300


def test_nan_in_the_sidecar_and_deep_json(small_log, tmp_path: Path) -> None:
    _saved(small_log, tmp_path)
    text = (tmp_path / "log.json").read_text().replace('"gamma": 0.8', '"gamma": NaN')
    (tmp_path / "log.json").write_text(text)
    with pytest.raises(ValueError, match="NaN is not a valid JSON number"):
        op.load_dataset(tmp_path / "log.csv")
    (tmp_path / "log.json").write_text("[" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        op.read_metadata(tmp_path / "log.json")


def test_fifo_data_and_sidecar_are_refused(small_log, tmp_path: Path) -> None:
    _saved(small_log, tmp_path)
    (tmp_path / "log.csv").unlink()
    os.mkfifo(tmp_path / "log.csv")  # reading it would hang without a writer
    with pytest.raises(ValueError, match="log.csv: expected a log data file .*found a FIFO"):
        op.load_dataset(tmp_path / "log.json")
    (tmp_path / "log.json").unlink()
    os.mkfifo(tmp_path / "log.json")
    with pytest.raises(ValueError, match="found a FIFO"):
        op.read_metadata(tmp_path / "log.json")


def test_bare_cr_line_endings_are_named(small_log, tmp_path: Path) -> None:
    _saved(small_log, tmp_path)
    p = tmp_path / "log.csv"
    p.write_bytes(p.read_bytes().replace(b"\n", b"\r"))
    _meta(tmp_path, sha256=None)
    m = json.loads((tmp_path / "log.json").read_text())
    m.pop("sha256")
    (tmp_path / "log.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="line 1 ends with a bare CR"):
        op.load_dataset(p)


def test_histogram_counts_cannot_wrap_around(small_log, tmp_path: Path) -> None:
    """Counts near 2^63 whose int64 sum wraps around to k are refused."""
    p = _saved(small_log, tmp_path).with_suffix(".csv")
    lines = p.read_text().splitlines()
    head = lines[0].split(",")
    row = lines[1].split(",")
    big = str(2**63 - 1)
    row[head.index("h_0")], row[head.index("h_1")] = big, big
    row[head.index("h_2")] = str(3 + 2)  # (2^63-1)*2 + 5 wraps to 3 = k
    lines[1] = ",".join(row)
    p.write_text("\n".join(lines) + "\n")
    m = json.loads((tmp_path / "log.json").read_text())
    m.pop("sha256")
    (tmp_path / "log.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"histogram .* sums to .*expected k = 3"):
        op.load_dataset(p)


def test_learner_table_is_bounded_before_allocating(small_log, peak_memory, forbid) -> None:
    """k = 10^6: the Q table |S_g| x |H_k| x |A_g| = 2 x 500001500001 x 3 = 3e12 entries
    (24 TB) is refused before the log is indexed by it and allocating under 1 MiB."""
    import dataclasses

    import numpy as np

    k = 10**6
    ds = dataclasses.replace(small_log, k=k, h=np.zeros_like(small_log.h),
                             h_next=np.zeros_like(small_log.h_next), n=None)
    calls = forbid(type(ds), "state_index")
    with peak_memory() as mem, pytest.raises(
            ValueError, match=r"off-policy G-LEARN: the Q table .* exceeds the limit"):
        op.g_learn_offpolicy(ds.spaces, ds)
    assert not calls
    assert mem.bytes < 2**20, mem.bytes
    assert MAX_LOG_CELLS >= 10**6
