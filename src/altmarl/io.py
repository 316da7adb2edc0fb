"""The one I/O module: atomic writes, ``.npz`` archives with JSON metadata (pickle-free),
JSON and CSV bytes, and reading CSV back.

Every file altmarl writes goes through :func:`atomic_write_bytes` (temporary file in the
same directory, ``fsync``, ``os.replace``): a reader never sees half a file, and a crash
leaves either the old file or the new one.
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import json
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Collection, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from altmarl.limits import MAX_JSON_BYTES, MAX_NPZ_BYTES, MAX_NPZ_MEMBERS


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise




def open_regular(path: str | os.PathLike[str], what: str = "file") -> int:
    """Open ``path`` for reading and return the file descriptor, refusing anything that is
    not a regular file (FIFOs, devices, sockets, directories) with a ``ValueError`` naming
    it; a missing file is a ``FileNotFoundError``. The file is opened non-blocking and
    checked with ``fstat`` on the open descriptor, so a FIFO can never hang the reader."""
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise ValueError(f"{p}: expected a {what} (a regular file), found a directory") from None
    except OSError as exc:
        raise ValueError(f"{p}: cannot open the {what} ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ValueError(f"{p}: expected a {what} (a regular file), found a "
                         f"{_file_kind(st.st_mode)}")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"  # pragma: no cover


def check_regular_file(path: str | os.PathLike[str], what: str = "file") -> int:
    """The size in bytes of the regular file ``path`` (see :func:`open_regular` for what is
    refused)."""
    fd = open_regular(path, what)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_bytes_bounded(path: str | os.PathLike[str], max_bytes: int,
                       what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refusing (``ValueError``, naming the file and
    the limit) files larger than ``max_bytes`` before reading them, and FIFOs or devices
    (:func:`open_regular`)."""
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{os.fspath(path)}: {what} of {size} bytes exceeds the limit of "
                             f"{max_bytes} bytes")
        # read what fstat reports (a buffer of max_bytes would be allocated in full)
        data = f.read(size + 1)
        if len(data) > size:  # grew since fstat: read on, up to the limit
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:  # grew while being read
        raise ValueError(f"{os.fspath(path)}: {what} exceeds the limit of {max_bytes} bytes")
    return data


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a valid JSON number")


def parse_json_text(text: str | bytes, where: str, *, allow_nonfinite: bool = True) -> Any:
    """``json.loads(text)`` with every failure a ``ValueError`` naming ``where``: invalid
    JSON, invalid UTF-8, nesting too deep for the parser (``RecursionError``). ``NaN`` and
    ``Infinity`` are accepted (altmarl writes them in its own result files) unless
    ``allow_nonfinite=False`` (strict JSON, for files other tools write)."""
    try:
        if allow_nonfinite:
            return json.loads(text)
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                         f"{exc.colno})") from None
    except ValueError as exc:  # a NaN / Infinity refused by _reject_constant
        raise ValueError(f"{where}: not valid JSON ({exc})") from None


def read_json(path: str | os.PathLike[str], what: str = "JSON file",
              max_bytes: int = MAX_JSON_BYTES, *, object_required: bool = True,
              allow_nonfinite: bool = True) -> Any:
    """Parse the JSON file ``path`` (a regular file of at most ``max_bytes``); every failure
    is a ``ValueError`` naming the file (``FileNotFoundError`` when it is missing). With
    ``object_required`` the top level must be a JSON object; ``allow_nonfinite`` as in
    :func:`parse_json_text`."""
    data = read_bytes_bounded(path, max_bytes, what)
    obj = parse_json_text(data, os.fspath(path), allow_nonfinite=allow_nonfinite)
    if object_required and not isinstance(obj, dict):
        raise ValueError(f"{os.fspath(path)}: expected a JSON object at the top level, found "
                         f"{type(obj).__name__}")
    return obj


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 digest of ``data`` as 64 hexadecimal characters."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], what: str = "file") -> tuple[str, int]:
    """``(SHA-256 hex digest, size in bytes)`` of the regular file ``path``, read in 1 MiB
    chunks (never whole into memory)."""
    h = hashlib.sha256()
    size = 0
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(2**20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 ``text``."""
    atomic_write_bytes(path, text.encode())


def to_jsonable(obj: Any, *, nonfinite: str = "keep", fallback: str = "repr") -> Any:
    """``obj`` made of JSON types, recursively: NumPy scalars and arrays become numbers and
    lists, enums their value, paths strings, tuples lists, mapping keys strings,
    configuration models (pydantic, :mod:`altmarl.settings`) their fields.

    ``nonfinite``: ``"keep"`` leaves NaN/inf floats (Python's JSON writes them as
    ``NaN``/``Infinity``), ``"null"`` turns them into ``None`` (strict JSON).
    ``fallback``: ``"repr"`` writes any other object as its ``repr``; ``"error"`` raises
    ``TypeError``.
    """
    def conv(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, Enum):
            v = v.value
        if isinstance(v, float):
            return None if (nonfinite == "null" and not math.isfinite(v)) else v
        if v is None or isinstance(v, bool | int | str):
            return v
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, Mapping):
            return {str(a): conv(b) for a, b in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        if callable(getattr(v, "model_dump", None)):  # a configuration model (altmarl.settings)
            return conv(v.model_dump())
        if fallback == "error":
            raise TypeError(f"{type(v).__name__} is not JSON serializable")
        return repr(v)

    return conv(obj)


def json_bytes(obj: Any, *, indent: int | None = 2, sort_keys: bool = True,
               nonfinite: str = "keep") -> bytes:
    """``obj`` (through :func:`to_jsonable`) as UTF-8 JSON bytes ending in a newline.
    ``nonfinite="null"`` writes strict JSON (NaN/inf as ``null``) for files other tools
    read."""
    obj = to_jsonable(obj, nonfinite=nonfinite)
    return (json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=nonfinite == "keep")
            + "\n").encode()


def write_json(path: str | os.PathLike[str], obj: Any, **kwargs: Any) -> None:
    """Atomically write :func:`json_bytes` ``(obj, **kwargs)`` to ``path``."""
    atomic_write_bytes(path, json_bytes(obj, **kwargs))


def format_number(v: Any, digits: int | None = None) -> str:
    """The text of one table cell: every CSV file altmarl writes and every number table the
    command line prints.

    NumPy scalars count as the Python scalar they hold and an ``Enum`` as its value;
    ``None`` is the empty cell. A float is written as ``repr(v)`` (the shortest exact round
    trip, so a CSV reads back to the same bits) or, given ``digits``, with that many
    significant digits (``f"{v:.4g}"`` for ``digits=4``). Anything else is ``str(v)``.
    """
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Enum):
        v = v.value
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if digits is None else f"{v:.{digits}g}"
    return str(v)


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A CSV file (``\\n`` line ends) with ``header`` and ``rows``, cells by :func:`format_number`."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(header))
    for row in rows:
        w.writerow([format_number(x) for x in row])
    return buf.getvalue().encode()


def dict_rows_csv_bytes(rows: Sequence[Mapping[str, Any]],
                        header: Sequence[str] | None = None) -> bytes:
    """A CSV of dict rows; the header is ``header`` or, by default, every key of the rows in
    order of first appearance (a key missing from ``header`` is an error)."""
    if not rows and header is None:
        return b""
    cols = list(header) if header is not None else list(dict.fromkeys(k for r in rows for k in r))
    extra = sorted({key for r in rows for key in r} - set(cols))
    if extra:
        raise ValueError(f"rows: keys {extra} are not in the CSV header {cols}")
    return csv_bytes(cols, [[r.get(c) for c in cols] for r in rows])


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
              header: Sequence[str] | None = None) -> None:
    """Atomically write dict ``rows`` as CSV (see :func:`dict_rows_csv_bytes`)."""
    atomic_write_bytes(path, dict_rows_csv_bytes(rows, header))


def parse_cell(v: str) -> Any:
    """A CSV cell back: empty -> ``None``, then ``int``, then ``float``, else the string."""
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def read_csv_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a CSV as dicts, cells parsed by :func:`parse_cell`."""
    with open(path, newline="") as f:
        return [{key: parse_cell(v) for key, v in r.items()} for r in csv.DictReader(f)]


def csv_rows_from_bytes(data: bytes) -> list[dict[str, Any]]:
    """Rows of CSV bytes (as :func:`csv_bytes` writes them) as dicts, cells parsed by
    :func:`parse_cell`."""
    text = data.decode("utf-8")
    return [{key: parse_cell(v) for key, v in r.items()}
            for r in csv.DictReader(_io.StringIO(text, newline=""))]


def read_csv_columns(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Columns of a CSV as float arrays (empty or non-numeric cells -> NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        vals = []
        for r in body:
            try:
                vals.append(float(r[j]) if r[j] != "" else np.nan)
            except (ValueError, IndexError):
                vals.append(np.nan)
        cols[name] = np.asarray(vals, dtype=np.float64)
    return cols


#: deflate level of :func:`npz_bytes`'s integer, boolean and text members (a ``k = 50``
#: warehouse action table: 12.7 -> 0.36 MB in 22 ms)
NPZ_COMPRESSLEVEL: Final = 1


def _stored(value: np.ndarray) -> bool:
    """Whether :func:`npz_bytes` stores a member without compression: floating-point and
    complex tables, which deflate shrinks by about 10% at any level at about 50 MB/s (a
    ``k = 50`` warehouse ``Q`` table: 63.3 -> 56.6 MB in 1.31 s)."""
    return value.dtype.kind in "fc"


def npz_bytes(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` holding ``arrays`` and ``meta`` as a 0-d unicode JSON array (key order
    sorted): the pickle-free container of every altmarl binary file. The members are the
    NPY members ``np.savez_compressed`` writes (``np.load`` reads the file), floating-point
    tables stored as they are and the other members deflated at level
    :data:`NPZ_COMPRESSLEVEL`."""
    buf = _io.BytesIO()
    members = {"meta": np.array(json.dumps(dict(meta), sort_keys=True)), **dict(arrays)}
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=NPZ_COMPRESSLEVEL) as zf:
        for name, value in members.items():
            arr = np.asanyarray(value)
            member: str | zipfile.ZipInfo = f"{name}.npy"  # the archive's deflate level
            if _stored(arr):
                member = zipfile.ZipInfo(f"{name}.npy")  # the same 1980 time stamp
                member.compress_type = zipfile.ZIP_STORED
            with zf.open(member, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return buf.getvalue()


def save_npz(path: str | os.PathLike[str], meta: Mapping[str, Any],
             arrays: Mapping[str, np.ndarray]) -> Path:
    """Atomically write :func:`npz_bytes` to ``path`` (``.npz`` appended when missing)."""
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_suffix(p.suffix + ".npz") if p.suffix else p.with_suffix(".npz")
    atomic_write_bytes(p, npz_bytes(meta, arrays))
    return p


def load_npz(path: str | os.PathLike[str], what: str = "altmarl file", *,
             max_bytes: int = MAX_NPZ_BYTES, max_members: int = MAX_NPZ_MEMBERS
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a file written by :func:`save_npz`; every failure is a
    ``ValueError`` (``FileNotFoundError`` for a missing file) naming the file and ``what``
    it should be.

    The file is untrusted: nothing is unpickled (object arrays are refused) and nothing is
    inflated before the archive's central directory has been checked against the budget
    (at most ``max_members`` members, whose declared uncompressed sizes add up to at most
    ``max_bytes``; :mod:`altmarl.limits`). Each member must be an NPY array (format 1.0 or
    2.0) of a plain numeric, boolean or unicode dtype whose header's shape accounts for
    exactly the member's size; FIFOs and devices are refused (:func:`open_regular`).
    """
    p = Path(path)
    fd = open_regular(p, what)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{p}: {what} of {size} bytes exceeds the limit of {max_bytes} "
                             "bytes")
        try:
            zf = zipfile.ZipFile(f)
        except Exception as exc:  # BadZipFile, NotImplementedError (zip version), OSError...
            raise ValueError(f"{p}: not a valid {what} (not a zip archive: {exc})") from None
        with zf:
            arrays = _read_members(zf, p, what, max_bytes, max_members)
    if "meta" not in arrays:
        raise ValueError(f"{p}: not an {what} (no 'meta' entry)")
    raw = arrays.pop("meta")
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise ValueError(f"{p}: 'meta' must be a 0-d unicode array, got {raw.dtype} of shape "
                         f"{raw.shape}")
    meta = parse_json_text(str(raw), f"{p}: 'meta'")
    if not isinstance(meta, dict):
        raise ValueError(f"{p}: 'meta' must be a JSON object")
    return meta, arrays


def check_members(path: str | os.PathLike[str], arrays: Mapping[str, Any],
                  members: Collection[str], what: str) -> None:
    """Refuse arrays of :func:`load_npz` whose names are not in ``members`` (call it once
    the format is known): a damaged member name must not make an optional array silently
    disappear."""
    unknown = sorted(set(arrays) - set(members))
    if unknown:
        raise ValueError(f"{path}: unexpected entries {unknown} in an {what} (expected "
                         f"{sorted(members)}): the file is damaged or of another kind")


#: dtype kinds an altmarl archive may hold: bool, integers, floats, complex, unicode
_NPZ_KINDS = "biufcU"


def _read_members(zf: zipfile.ZipFile, p: Path, what: str, max_bytes: int,
                  max_members: int) -> dict[str, np.ndarray]:
    from numpy.lib import format as npy

    infos = zf.infolist()
    if len(infos) > max_members:
        raise ValueError(f"{p}: {what} with {len(infos)} members exceeds the limit of "
                         f"{max_members} members")
    declared = sum(i.file_size for i in infos)
    if declared > max_bytes:
        raise ValueError(f"{p}: {what} members declare {declared} bytes uncompressed, above "
                         f"the limit of {max_bytes} bytes")
    arrays: dict[str, np.ndarray] = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            raise ValueError(f"{p}: member {name[:80]!r} is not an NPY array")
        key = name[:-4]
        if key in arrays:
            raise ValueError(f"{p}: member {name[:80]!r} appears twice")
        try:
            with zf.open(info) as m:
                version = npy.read_magic(m)
                if version == (1, 0):
                    shape, fortran, dtype = npy.read_array_header_1_0(m)
                elif version == (2, 0):
                    shape, fortran, dtype = npy.read_array_header_2_0(m)
                else:
                    raise ValueError(f"NPY format version {version} is not read")
                if (dtype.hasobject or dtype.fields is not None or dtype.kind not in _NPZ_KINDS
                        or dtype.itemsize == 0):
                    raise ValueError(f"dtype {dtype} is not allowed (no objects, no records)")
                count = math.prod(shape)
                nbytes = count * dtype.itemsize
                if m.tell() + nbytes != info.file_size:
                    raise ValueError(f"its header declares shape {shape} of {dtype} "
                                     f"({nbytes} bytes) but it holds "
                                     f"{info.file_size - m.tell()} bytes of data")
                buf = bytearray(nbytes)
                view = memoryview(buf)
                pos = 0
                while pos < nbytes:
                    chunk = m.read(min(2**24, nbytes - pos))
                    if not chunk:
                        raise ValueError("truncated data")
                    view[pos:pos + len(chunk)] = chunk
                    pos += len(chunk)
                if m.read(1):  # also makes zipfile check the CRC
                    raise ValueError("more data than its header declares")
        except ValueError as exc:
            raise ValueError(f"{p}: not a valid {what} (member {name[:80]!r}: {exc})") from None
        except Exception as exc:  # zlib/zipfile errors, CRC mismatch, truncated archive
            raise ValueError(f"{p}: not a valid {what} (member {name[:80]!r}: "
                             f"{type(exc).__name__}: {exc})") from None
        order: Literal["C", "F"] = "F" if fortran else "C"
        arrays[key] = (np.frombuffer(buf, dtype=dtype, count=count).reshape(shape, order=order)
                       if count else np.empty(shape, dtype=dtype, order=order))
    return arrays
