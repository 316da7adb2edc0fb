"""Bounded, non-blocking reading of untrusted files (altmarl.io, issue 18)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from altmarl import io


def test_open_regular_refuses_fifos_devices_and_directories(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block without a writer
    with pytest.raises(ValueError, match="fifo: expected a policy file .*found a FIFO"):
        io.open_regular(fifo, "policy file")
    with pytest.raises(ValueError, match="found a character device"):
        io.read_bytes_bounded("/dev/zero", 10, "log file")
    with pytest.raises(ValueError, match="found a directory"):
        io.read_json(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such sidecar"):
        io.read_json(tmp_path / "missing.json", "sidecar")


def test_read_bytes_bounded_refuses_large_files_before_reading(tmp_path: Path) -> None:
    p = tmp_path / "big"
    p.write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="101 bytes exceeds the limit of 100 bytes"):
        io.read_bytes_bounded(p, 100)
    assert io.read_bytes_bounded(p, 101) == b"x" * 101


@pytest.mark.parametrize("text, match", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"a": ', "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8|not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
])
def test_read_json_errors_name_the_file(tmp_path: Path, text: str | bytes, match: str) -> None:
    p = tmp_path / "x.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=f"x.json: .*({match})"):
        io.read_json(p)


def test_sha256_file_streams_and_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    p = tmp_path / "blob"
    p.write_bytes(data)
    assert io.sha256_file(p) == (hashlib.sha256(data).hexdigest(), len(data))
    assert io.sha256_bytes(data) == hashlib.sha256(data).hexdigest()
