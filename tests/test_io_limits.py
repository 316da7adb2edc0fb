"""Bounded, non-blocking reading of untrusted files (altmarl.io, issue 18)."""

from __future__ import annotations

import hashlib
import io as _bio
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from altmarl import io
from altmarl.limits import MAX_NPZ_MEMBERS


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


def test_read_bytes_bounded_allocates_what_the_file_holds(tmp_path: Path,
                                                          peak_memory) -> None:
    """A 1 KB file under a 64 MiB limit: the read buffer is the file's size, not the limit
    (``f.read(limit + 1)`` allocates the whole 64 MiB before reading 1 KB)."""
    p = tmp_path / "small.json"
    p.write_bytes(b"x" * 1000)
    with peak_memory() as mem:
        assert io.read_bytes_bounded(p, 64 * 2**20) == b"x" * 1000
    assert mem.bytes < 2**20, mem.bytes


def test_read_bytes_bounded_reads_a_file_that_grew_after_fstat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fstat`` reports 100 bytes of a 300-byte file (it grew in between): all 300 are read
    under a limit of 1000, and the file is refused under a limit of 200."""
    p = tmp_path / "growing"
    p.write_bytes(b"y" * 300)
    real = os.fstat

    def stale(fd: int) -> os.stat_result:
        r = real(fd)
        return os.stat_result((*tuple(r)[:6], min(r.st_size, 100), *tuple(r)[7:]))

    monkeypatch.setattr(os, "fstat", stale)
    assert io.read_bytes_bounded(p, 1000) == b"y" * 300
    with pytest.raises(ValueError, match="growing: file exceeds the limit of 200 bytes"):
        io.read_bytes_bounded(p, 200)


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


# ---------------------------------------------------------------------------
# .npz archives: the budget is checked on the central directory, before inflating
# ---------------------------------------------------------------------------


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = _bio.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes], compress: bool = True) -> Path:
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


META = np.array(json.dumps({"format": "x"}))


def test_load_npz_round_trip_keeps_dtypes_and_order(tmp_path: Path) -> None:
    arrays = {"a": np.arange(12, dtype=">i4").reshape(3, 4), "f": np.asfortranarray(
        np.random.default_rng(0).random((3, 5))), "e": np.zeros((0, 3)), "s": np.float64(2.5),
        "c": np.array([1 + 2j]), "b": np.array([True, False])}
    p = io.save_npz(tmp_path / "x.npz", {"format": "x", "n": 1}, arrays)
    meta, back = io.load_npz(p)
    assert meta == {"format": "x", "n": 1} and set(back) == set(arrays)
    for key, arr in arrays.items():
        np.testing.assert_array_equal(back[key], arr)
        assert back[key].dtype == np.asarray(arr).dtype and back[key].shape == np.shape(arr)
    back["a"][0, 0] = 7  # writable, like np.load's arrays


def test_npz_bytes_is_an_npz_np_load_reads_floats_stored_the_rest_deflated() -> None:
    """The container: ``meta`` first, then the arrays in order; floating-point and complex
    members stored as they are, the others deflated (at level ``NPZ_COMPRESSLEVEL``); the
    same arrays through ``np.load`` as through ``np.savez_compressed``'s file."""
    rng = np.random.default_rng(3)
    arrays = {"q": rng.normal(size=(4, 50)), "a": np.tile(np.arange(5), 40),
              "f": np.asfortranarray(rng.random((3, 5))),
              "c": np.array([1 + 2j, 3j]), "b": np.tile([True, False], 64)}
    blob = io.npz_bytes({"format": "x"}, arrays)
    infos = zipfile.ZipFile(_bio.BytesIO(blob)).infolist()
    assert [i.filename for i in infos] == ["meta.npy", "q.npy", "a.npy", "f.npy", "c.npy",
                                           "b.npy"]
    kinds = {i.filename: i.compress_type for i in infos}
    assert kinds == {"meta.npy": zipfile.ZIP_DEFLATED, "q.npy": zipfile.ZIP_STORED,
                     "a.npy": zipfile.ZIP_DEFLATED, "f.npy": zipfile.ZIP_STORED,
                     "c.npy": zipfile.ZIP_STORED, "b.npy": zipfile.ZIP_DEFLATED}
    assert next(i for i in infos if i.filename == "a.npy").compress_size < arrays["a"].nbytes
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}  # the same bytes each time
    assert io.npz_bytes({"format": "x"}, arrays) == blob
    ref = _bio.BytesIO()
    np.savez_compressed(ref, meta=np.array('{"format": "x"}'), **arrays)
    ref.seek(0)
    with np.load(_bio.BytesIO(blob), allow_pickle=False) as got, np.load(ref) as want:
        assert got.files == want.files
        for key in want.files:
            np.testing.assert_array_equal(got[key], want[key])
            assert got[key].dtype == want[key].dtype
            assert got[key].flags.f_contiguous == want[key].flags.f_contiguous


def test_load_npz_refuses_a_bomb_before_inflating(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    p = _zip(tmp_path / "bomb.npz", {"meta.npy": _npy_bytes(META),
                                     "big.npy": _npy_bytes(np.zeros(2 * 10**6))})
    assert p.stat().st_size < 20_000  # 16 MB of zeros compress to a few KB

    def no_inflating(*a: object, **k: object) -> None:
        raise AssertionError("inflated a member before checking the budget")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_inflating)
    with pytest.raises(ValueError, match=r"members declare 1600\d+ bytes uncompressed, above "
                                         r"the limit of 1000000 bytes"):
        io.load_npz(p, max_bytes=10**6)


def test_load_npz_refuses_too_many_members(tmp_path: Path) -> None:
    members = {"meta.npy": _npy_bytes(META)}
    members.update({f"m{i}.npy": _npy_bytes(np.zeros(1)) for i in range(MAX_NPZ_MEMBERS)})
    p = _zip(tmp_path / "many.npz", members, compress=False)
    with pytest.raises(ValueError, match=rf"with {MAX_NPZ_MEMBERS + 1} members exceeds the "
                                         rf"limit of {MAX_NPZ_MEMBERS} members"):
        io.load_npz(p)


def test_load_npz_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    p = _zip(tmp_path / "evil.npz", {"meta.npy": _npy_bytes(META), "x.npy": _npy_bytes(evil)})
    with pytest.raises(ValueError, match=r"member 'x.npy': dtype object is not allowed"):
        io.load_npz(p)
    assert not marker.exists()


@pytest.mark.parametrize("members, match", [
    ({"meta.npy": b"not an npy file at all"}, "member 'meta.npy'"),
    ({"meta.npy": _npy_bytes(META), "notes.txt": b"hello"}, "'notes.txt' is not an NPY array"),
    ({"meta.npy": _npy_bytes(np.array(3.0))}, "'meta' must be a 0-d unicode array"),
    ({"meta.npy": _npy_bytes(np.array("[1, 2]"))}, "'meta' must be a JSON object"),
    ({"meta.npy": _npy_bytes(np.array("[" * 100_000))}, "'meta': JSON nested too deeply"),
    ({"meta.npy": _npy_bytes(np.array(json.dumps({"a": 1}))),
      "x.npy": _npy_bytes(np.zeros(3))[:-8]}, r"declares shape \(3,\) .* holds 16 bytes"),
    ({"x.npy": _npy_bytes(np.zeros(3))}, "no 'meta' entry"),
    ({"meta.npy": _npy_bytes(np.zeros(1, dtype=[("a", "f8")]))}, "not allowed"),
])
def test_load_npz_malformed_members_are_named(tmp_path: Path, members: dict[str, bytes],
                                              match: str) -> None:
    p = _zip(tmp_path / "x.npz", members)
    with pytest.raises(ValueError, match=match):
        io.load_npz(p)


def test_load_npz_refuses_a_header_that_lies_about_its_shape(tmp_path: Path) -> None:
    """An NPY header declaring 10^12 elements is refused from the member's size, before the
    array is allocated."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header = header.ljust(117) + "\n"
    bad = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(16)
    p = _zip(tmp_path / "lie.npz", {"meta.npy": _npy_bytes(META), "x.npy": bad})
    with pytest.raises(ValueError, match=r"declares shape \(1000000000000,\)"):
        io.load_npz(p)


def test_load_npz_truncated_and_special_files(tmp_path: Path) -> None:
    p = io.save_npz(tmp_path / "ok.npz", {"a": 1}, {"x": np.arange(1000)})
    data = p.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.npz: not a valid"):
            io.load_npz(tmp_path / "cut.npz")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="flip.npz: not a valid"):
        io.load_npz(tmp_path / "flip.npz")
    os.mkfifo(tmp_path / "fifo.npz")
    with pytest.raises(ValueError, match="found a FIFO"):
        io.load_npz(tmp_path / "fifo.npz")
    with pytest.raises(FileNotFoundError):
        io.load_npz(tmp_path / "missing.npz")


# ---------------------------------------------------------------------------
# network checkpoints (weights_only torch files)
# ---------------------------------------------------------------------------


def test_checkpoints_refuse_nan_networks_pickles_and_fifos(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from altmarl.continuous.nets import load_state, save_state

    save_state(tmp_path / "ok.pt", {"net": {"w": torch.ones(2, 2)}})
    assert torch.equal(load_state(tmp_path / "ok.pt")["net"]["w"], torch.ones(2, 2))
    save_state(tmp_path / "nan.pt", {"net": {"w": torch.tensor([1.0, float("nan")])}})
    with pytest.raises(ValueError, match=r"nan.pt: tensor net.w holds NaN or infinite"):
        load_state(tmp_path / "nan.pt")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt: not a valid altmarl checkpoint"):
        load_state(tmp_path / "evil.pt")
    assert not marker.exists()
    os.mkfifo(tmp_path / "fifo.pt")
    with pytest.raises(ValueError, match="found a FIFO"):
        load_state(tmp_path / "fifo.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:40])
    with pytest.raises(ValueError, match="cut.pt: not a valid altmarl checkpoint"):
        load_state(tmp_path / "cut.pt")


def test_wrong_shaped_continuous_policies_are_named(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from altmarl.continuous import ContinuousConfig
    from altmarl.continuous.alternating import load_policies
    from altmarl.continuous.env import ContinuousWarehouse
    from altmarl.continuous.nets import save_state

    env = ContinuousWarehouse(n=10)
    save_state(tmp_path / "p.pt", {"global": {"0.weight": torch.zeros(3, 3)},
                                   "local_policy": {}, "local_critic": {}})
    with pytest.raises(ValueError, match="p.pt: networks do not match the configuration"):
        load_policies(tmp_path / "p.pt", env, 2, ContinuousConfig())
