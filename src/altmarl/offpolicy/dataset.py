"""The off-policy log format, version 1, and its validated in-memory form (paper
Appendix E; SPEC 4 "Off-policy variant").

* :class:`OfflineDataset` -- logged transitions ``(s_g, h, a_g, r, s_g', h')``, validated on
  construction (:meth:`OfflineDataset.from_arrays`), written by :meth:`OfflineDataset.save`;
* :func:`load_dataset` / :func:`read_metadata` -- reading with validation: every defect is a
  ``ValueError`` naming the column, the row and what was expected; nothing is executed
  (CSV + JSON only);
* :func:`columns` -- the canonical column names.

Log format, version 1
---------------------
Two files with one stem: ``NAME.csv`` (or ``NAME.csv.gz``) and the sidecar ``NAME.json``.

The CSV has a header and one row per transition, columns (any order)::

    episode, t, s_g, h_0 .. h_{d-1}, a_g, r, s_g', h'_0 .. h'_{d-1}

with ``d = |S_l|``: ``episode``, ``t`` integers ``>= 0`` (an episode index and the step in
it; ``(episode, t)`` unique), ``s_g``, ``s_g'`` in ``0..|S_g|-1``, ``a_g`` in
``0..|A_g|-1``, ``h``, ``h'`` histograms of the ``k`` sampled local states (integers ``>= 0``
summing to ``k``; ``h'`` is the histogram of a *fresh* ``k``-sample of the next population),
``r`` a finite float: the reward the global agent observes from its sample,
``r_g(s_g, a_g) + (1/k) sum_{i in Delta} r_l(s_i, s_g, a_i)``. Integers are written in
decimal without a decimal point; ``r`` with 17 significant digits (exact round trip).
There is no terminal flag: logs of discounted infinite-horizon systems end by truncation.

The JSON sidecar is an object::

    {"format": "altmarl.offpolicy_log", "version": 1,
     "data": "NAME.csv",                        # the CSV's file name, same directory
     "spaces": {"S_g": 5, "A_g": 5, "S_l": 5, "A_l": 3},
     "k": 3, "n": 1000, "gamma": 0.95,
     "columns": ["episode", "t", "s_g", "h_0", ...],
     "rows": 10000, "sha256": "...",            # of the CSV file's bytes
     "behaviour": {"kind": "epsilon-greedy", "epsilon": 0.2, "policy": {...}},
     "local_policy": {...}, "reward": {"kind": "deterministic"},
     "game": {"name": "warehouse", "fingerprint": "..."},
     "episodes": 100, "horizon": 100, "seed": 0, "created_by": "altmarl 0.1.0"}

Required: ``format``, ``version``, ``spaces`` (``S_g``, ``A_g``, ``S_l``; ``A_l`` optional),
``k``, ``gamma``. ``n``, ``columns``, ``rows``, ``sha256``, ``game`` are checked when
present (``rows`` / ``sha256`` catch a CSV that does not belong to its sidecar); the others
are descriptive. Extra CSV columns are refused unless listed in ``extra_columns``.

The log's own CSV reader lives here rather than in :mod:`altmarl.io`: it is strict (NumPy's
C reader on the whole body, then a cell-by-cell pass naming the first bad cell, its row and
its line), where ``io.read_csv_rows`` / ``io.read_csv_columns`` are lenient readers of the
tables altmarl writes itself.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import SPACE_KEYS, check_gamma, check_int, check_spaces
from altmarl.game import TabularGame
from altmarl.histogram import num_histograms, rank
from altmarl.io import atomic_write_bytes, json_bytes, open_regular, read_json, sha256_bytes
from altmarl.limits import INT64_MAX, MAX_JSON_BYTES, MAX_LOG_BYTES, MAX_LOG_CELLS

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

LOG_FORMAT = "altmarl.offpolicy_log"
LOG_VERSION = 1


def columns(d: int) -> list[str]:
    """The canonical column order of a log with ``d = |S_l|`` local states."""
    return (["episode", "t", "s_g"] + [f"h_{x}" for x in range(d)] + ["a_g", "r", "s_g'"]
            + [f"h'_{x}" for x in range(d)])


# ---------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------


def _row(i: int) -> str:
    return f"row {i}"


def _file_rows(text: str) -> Callable[[int], str]:
    """``row i (line L)`` for data row ``i`` of a CSV text (blank lines skipped, as the
    parsers do); the line numbers are computed only when an error is reported."""

    def where(i: int) -> str:
        nonblank = [j + 1 for j, line in enumerate(text.splitlines()) if line]
        line = nonblank[i + 1] if i + 1 < len(nonblank) else None
        return f"row {i}" + (f" (line {line})" if line is not None else "")

    return where


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """Logged transitions ``(s_g, h, a_g, r, s_g', h')`` of the ``n``-agent system (SPEC 4,
    Appendix E), validated on construction (module docstring lists the rules).

    Build one from arrays (``OfflineDataset.from_arrays``), from the simulator
    (:func:`record_logs`) or from files (:func:`load_dataset`); write it with :meth:`save`.
    """

    s_g: IntArray
    h: IntArray
    a_g: IntArray
    r: FloatArray
    s_g_next: IntArray
    h_next: IntArray
    episode: IntArray
    t: IntArray
    k: int
    spaces: dict[str, int]
    gamma: float
    n: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_arrays(
        cls,
        s_g: ArrayLike,
        h: ArrayLike,
        a_g: ArrayLike,
        r: ArrayLike,
        s_g_next: ArrayLike,
        h_next: ArrayLike,
        *,
        k: int,
        spaces: dict[str, int] | TabularGame,
        gamma: float,
        n: int | None = None,
        episode: ArrayLike | None = None,
        t: ArrayLike | None = None,
        info: dict[str, Any] | None = None,
    ) -> OfflineDataset:
        """Validate arrays into a dataset. Without ``episode`` / ``t`` the rows are taken
        as one trajectory (``episode = 0``, ``t = 0, 1, ...``)."""
        game_info: dict[str, Any] = {}
        if isinstance(spaces, TabularGame):
            game_info = {"game": {"name": spaces.name, "fingerprint": spaces.fingerprint()}}
            n = spaces.n if n is None else n
            spaces = spaces.spaces
        sp = check_spaces(spaces)
        k_ = check_int("k", k, 1)
        g = check_gamma(gamma)
        n_ = None if n is None else check_int("n", n, 1)
        arrays: dict[str, NDArray[Any]] = {}
        for name, val, kind in (("s_g", s_g, "i"), ("a_g", a_g, "i"), ("r", r, "f"),
                                ("s_g'", s_g_next, "i")):
            arrays[name] = _as_column(name, val, kind)
        T = arrays["s_g"].shape[0]
        for name, val in (("h", h), ("h'", h_next)):
            arr = np.asarray(val)
            if arr.ndim != 2 or arr.shape != (T, sp["S_l"]):
                raise ValueError(f"{name}: expected shape (rows, |S_l|) = {(T, sp['S_l'])}, got "
                                 f"{arr.shape}")
            for x in range(sp["S_l"]):
                arrays[f"{name}_{x}"] = _as_column(f"{name}_{x}", arr[:, x], "i")
        arrays["episode"] = (np.zeros(T, np.int64) if episode is None
                             else _as_column("episode", episode, "i"))
        arrays["t"] = np.arange(T, dtype=np.int64) if t is None else _as_column("t", t, "i")
        return _build(arrays, sp, k_, g, n_, {**game_info, **(info or {})}, _row)

    # --- sizes ------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.s_g.shape[0])

    @property
    def n_sg(self) -> int:
        return self.spaces["S_g"]

    @property
    def n_ag(self) -> int:
        return self.spaces["A_g"]

    @property
    def n_sl(self) -> int:
        return self.spaces["S_l"]

    def state_index(self) -> tuple[IntArray, IntArray]:
        """Flat indices ``s_g * |H_k| + rank(h)`` of the current and next states."""
        nh = num_histograms(self.k, self.n_sl)
        cur = self.s_g * nh + rank(self.h, self.k)
        nxt = self.s_g_next * nh + rank(self.h_next, self.k)
        return np.asarray(cur, np.int64), np.asarray(nxt, np.int64)

    def coverage(self) -> dict[str, Any]:
        """How well the data covers ``(s_g, h, a_g)`` (Assumption E.1 asks for all of it)."""
        nh = num_histograms(self.k, self.n_sl)
        A = self.n_ag
        cur, _ = self.state_index()
        pairs = np.bincount(cur * A + self.a_g, minlength=self.n_sg * nh * A).reshape(-1, A)
        seen = pairs.sum(axis=1) > 0
        return {
            "pairs": int(pairs.size),
            "pairs_visited": int((pairs > 0).sum()),
            "states": int(seen.size),
            "states_visited": int(seen.sum()),
            "states_with_untried_actions": int(((pairs == 0) & seen[:, None]).any(axis=1).sum()),
            "min_visits_visited_pair": int(pairs[pairs > 0].min()) if (pairs > 0).any() else 0,
        }

    # --- files ----------------------------------------------------------------------
    def metadata(self, data_name: str | None = None) -> dict[str, Any]:
        """The JSON sidecar of this dataset (without ``sha256``, added by :meth:`save`)."""
        meta: dict[str, Any] = {
            "format": LOG_FORMAT,
            "version": LOG_VERSION,
            "spaces": dict(self.spaces),
            "k": self.k,
            "n": self.n,
            "gamma": self.gamma,
            "columns": columns(self.n_sl),
            "rows": len(self),
        }
        if data_name is not None:
            meta["data"] = data_name
        from altmarl import __version__

        meta["created_by"] = f"altmarl {__version__}"
        for key, val in self.info.items():
            if key != "source":  # where a loaded log came from: not part of the data
                meta.setdefault(key, val)
        return meta

    def to_csv_bytes(self) -> bytes:
        """The CSV text of the rows (canonical column order; integers as ``%d``, ``r`` as
        ``%.17g``, which round-trips float64 exactly)."""
        d = self.n_sl
        left = np.column_stack([self.episode, self.t, self.s_g, self.h, self.a_g])
        right = np.column_stack([self.s_g_next, self.h_next])
        mat = np.column_stack([left.astype(np.float64), self.r, right.astype(np.float64)])
        fmt = ",".join(["%d"] * left.shape[1] + ["%.17g"] + ["%d"] * right.shape[1])
        buf = io.StringIO()
        buf.write(",".join(columns(d)) + "\n")
        np.savetxt(buf, mat, fmt=fmt, delimiter=",")
        return buf.getvalue().encode("ascii")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``NAME.csv`` (or ``NAME.csv.gz`` when ``path`` ends in ``.gz``) and the
        sidecar ``NAME.json``, each atomically; returns the sidecar's path."""
        csv_path, json_path = _paths(Path(path), for_writing=True)
        data = self.to_csv_bytes()
        if csv_path.name.endswith(".gz"):
            data = gzip.compress(data, compresslevel=6, mtime=0)
        meta = self.metadata(csv_path.name)
        meta["sha256"] = sha256_bytes(data)
        atomic_write_bytes(csv_path, data)
        atomic_write_bytes(json_path, json_bytes(meta, indent=1, sort_keys=True))
        return json_path

    def summary(self) -> dict[str, Any]:
        """Scalar description (rows, episodes, reward range, coverage)."""
        return {
            "rows": len(self),
            "episodes": int(np.unique(self.episode).size),
            "k": self.k,
            "n": self.n,
            "gamma": self.gamma,
            "spaces": dict(self.spaces),
            "reward_min": float(self.r.min()),
            "reward_max": float(self.r.max()),
            "reward_mean": float(self.r.mean()),
            "action_counts": np.bincount(self.a_g, minlength=self.n_ag).tolist(),
            "coverage": self.coverage(),
            "behaviour": self.info.get("behaviour"),
        }

    def __repr__(self) -> str:
        return (f"OfflineDataset(rows={len(self)}, k={self.k}, n={self.n}, gamma={self.gamma}, "
                f"spaces={self.spaces})")


def _as_column(name: str, value: ArrayLike, kind: str) -> NDArray[Any]:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d column, got shape {arr.shape}")
    if kind == "i":
        if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
            raise ValueError(f"{name}: expected integers, got dtype {arr.dtype}")
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{name}, row {i}: value {arr[i]!r}: expected an integer")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _build(cols: dict[str, NDArray[Any]], sp: dict[str, int], k: int, gamma: float,
           n: int | None, info: dict[str, Any], where: Callable[[int], str]) -> OfflineDataset:
    """Validate parsed columns (values, ranges, histogram sums, uniqueness) into a dataset."""
    d = sp["S_l"]
    T = cols["s_g"].shape[0]
    if T == 0:
        raise ValueError("dataset: no rows; expected at least one transition")
    if n is not None and k > n:
        raise ValueError(f"k = {k}: expected k <= n = {n}")

    def check_range(name: str, hi: int) -> None:
        v = cols[name]
        bad = (v < 0) | (v >= hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"column {name!r}, {where(i)}: value {int(v[i])} is "
                             f"out of range: expected an integer in 0..{hi - 1}")

    check_range("s_g", sp["S_g"])
    check_range("s_g'", sp["S_g"])
    check_range("a_g", sp["A_g"])
    for name in ("episode", "t"):
        v = cols[name]
        if (v < 0).any():
            i = int(np.flatnonzero(v < 0)[0])
            raise ValueError(f"column {name!r}, {where(i)}: value {int(v[i])}: "
                             "expected an integer >= 0")
    r = cols["r"]
    if not np.isfinite(r).all():
        i = int(np.flatnonzero(~np.isfinite(r))[0])
        raise ValueError(f"column 'r', {where(i)}: value {float(r[i])!r}: expected a "
                         "finite number (NaN / infinity are not rewards)")
    hs = {}
    for pre in ("h", "h'"):
        H = np.stack([cols[f"{pre}_{x}"] for x in range(d)], axis=1)
        neg = H < 0
        if neg.any():
            i, x = (int(v) for v in np.argwhere(neg)[0])
            raise ValueError(f"column '{pre}_{x}', {where(i)}: value {int(H[i, x])}: "
                             "expected a count >= 0")
        sums = H.sum(axis=1)
        bad = (sums != k) | (H > k).any(axis=1)  # (> k: sums of huge counts can wrap around)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"columns {pre}_0..{pre}_{d - 1}, {where(i)}: the "
                             f"histogram {H[i].tolist()} sums to {int(sums[i])}: expected k = {k}")
        hs[pre] = H
    ep, tt = cols["episode"], cols["t"]
    order = np.lexsort((tt, ep))
    same = (np.diff(ep[order]) == 0) & (np.diff(tt[order]) == 0)
    if same.any():
        i = int(order[np.flatnonzero(same)[0] + 1])
        raise ValueError(f"columns 'episode', 't', {where(i)}: (episode, t) = "
                         f"({int(ep[i])}, {int(tt[i])}) appears twice: expected each step once")
    arrays = {name: cols[name] for name in ("s_g", "a_g", "s_g'", "episode", "t")}
    for v in (*arrays.values(), r, hs["h"], hs["h'"]):
        v.setflags(write=False)
    return OfflineDataset(
        s_g=arrays["s_g"], h=hs["h"], a_g=arrays["a_g"], r=r, s_g_next=arrays["s_g'"],
        h_next=hs["h'"], episode=arrays["episode"], t=arrays["t"], k=k, spaces=sp,
        gamma=gamma, n=n, info=dict(info),
    )


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def _paths(path: Path, for_writing: bool = False) -> tuple[Path, Path]:
    """``(csv, json)`` paths from either file or the stem."""
    name = path.name
    if name.endswith(".json"):
        stem = name[: -len(".json")]
        if for_writing:
            return path.with_name(stem + ".csv"), path
        return path.with_name(stem + ".csv"), path  # the data file is read from metadata
    for suffix in (".csv.gz", ".csv"):
        if name.endswith(suffix):
            return path, path.with_name(name[: -len(suffix)] + ".json")
    return path.with_name(name + ".csv"), path.with_name(name + ".json")


def _short(v: Any, most: int = 10) -> str:
    """A list or value for an error message: at most ``most`` items / 200 characters."""
    if isinstance(v, list) and len(v) > most:
        return repr(v[:most])[:-1] + f", ... ({len(v)} in all)]"
    r = repr(v)
    return r if len(r) <= 200 else r[:197] + "..."


def read_metadata(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """Read and check a log's JSON sidecar; returns ``(metadata, csv_path)``.

    The sidecar is untrusted: it must be a regular file of at most ``limits.MAX_JSON_BYTES``
    holding strict JSON (no ``NaN``), its sizes are bounded (spaces by
    ``limits.MAX_SPACE``, ``k``, ``n``, ``rows`` by int64) and every error names it."""
    csv_path, json_path = _paths(Path(path))
    if not json_path.exists():
        raise FileNotFoundError(f"{json_path}: metadata sidecar not found (a log is NAME.csv + "
                                "NAME.json)")
    meta = read_json(json_path, "log metadata sidecar", MAX_JSON_BYTES, allow_nonfinite=False)
    if meta.get("format") != LOG_FORMAT:
        raise ValueError(f"{json_path}: format = {_short(meta.get('format'))}, expected "
                         f"{LOG_FORMAT!r}")
    if type(meta.get("version")) is not int or meta.get("version") != LOG_VERSION:
        raise ValueError(f"{json_path}: format version {_short(meta.get('version'))} is not "
                         f"supported (this altmarl reads version {LOG_VERSION}, an integer)")
    try:
        check_spaces(meta.get("spaces"))
        check_int("k", meta.get("k"), 1, INT64_MAX)
        if "gamma" not in meta:
            raise ValueError("gamma: missing; expected a number in [0, 1)")
        if isinstance(meta["gamma"], bool) or not isinstance(meta["gamma"], int | float):
            raise ValueError(f"gamma = {_short(meta['gamma'])}: expected a number in [0, 1)")
        check_gamma(meta["gamma"])
        if meta.get("n") is not None:
            check_int("n", meta["n"], 1, INT64_MAX)
        for key in ("rows",):
            if key in meta:
                check_int(key, meta[key], 1, INT64_MAX)
        if "sha256" in meta and not isinstance(meta["sha256"], str):
            raise ValueError(f"sha256 = {_short(meta['sha256'])}: expected a hex string")
        if "columns" in meta and not (isinstance(meta["columns"], list)
                                      and all(isinstance(c, str) for c in meta["columns"])):
            raise ValueError("columns: expected a list of column names")
    except ValueError as exc:
        raise ValueError(f"{json_path}: metadata {exc}") from None
    data = meta.get("data")
    if data is not None:
        if (not isinstance(data, str) or not data or "/" in data or "\\" in data
                or data in (".", "..")):
            raise ValueError(f"{json_path}: data = {_short(data)}: expected a plain file name "
                             "in the same directory")
        csv_path = json_path.with_name(data)
    elif not csv_path.exists() and csv_path.with_name(csv_path.name + ".gz").exists():
        csv_path = csv_path.with_name(csv_path.name + ".gz")
    return meta, csv_path


_INT_RE = re.compile(r"[+-]?[0-9]+")


def _bad_cell(v: str, kind: str) -> bool:
    """Whether a cell is not a plain decimal integer (``kind="i"``) / number (``"f"``): the
    strict rules of NumPy's CSV reader (no ``1_000``, ``0x1``, non-ASCII digits, ``1.0``
    for an integer)."""
    if kind == "i":
        return _INT_RE.fullmatch(v) is None
    if not v.isascii() or "_" in v:
        return True
    try:
        float(v)
    except ValueError:
        return True
    return False


def _parse_fast(body: str, header: list[str], wanted: list[str]) -> dict[str, NDArray[Any]]:
    """All columns with NumPy's C CSV reader (strict; raises ``ValueError`` on any defect)."""
    idx_i = [header.index(c) for c in wanted if c != "r"]
    idx_r = header.index("r")
    kw: dict[str, Any] = dict(delimiter=",", comments=None, ndmin=2, quotechar='"')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "input contained no data"
        ints = np.loadtxt(io.StringIO(body), dtype=np.int64, usecols=idx_i, **kw)
        r = np.loadtxt(io.StringIO(body), dtype=np.float64, usecols=[idx_r], **kw)
    names = [c for c in wanted if c != "r"]
    out = {name: np.ascontiguousarray(ints[:, j]) for j, name in enumerate(names)}
    out["r"] = np.ascontiguousarray(r[:, 0])
    return out


def _parse_slow(text: str, header: list[str], wanted: list[str], src: Path) -> None:
    """Find the first defect of a CSV the fast reader refused and raise a precise
    ``ValueError`` (field count, or the first bad cell with its row and line)."""
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    i = 0
    cols = {name: header.index(name) for name in wanted}
    for row in reader:
        if not row:  # an empty line (both readers skip it)
            continue
        where = f"row {i} (line {reader.line_num})"
        if len(row) != len(header):
            raise ValueError(f"{src}: {where} has {len(row)} fields: expected {len(header)}")
        for name, j in cols.items():
            kind = "f" if name == "r" else "i"
            v = row[j].strip()
            if _bad_cell(v, kind):
                what = "a number" if kind == "f" else "an integer"
                raise ValueError(f"{src}: column {name!r}, {where}: value {row[j]!r}: expected "
                                 f"{what}")
        i += 1


def _check_cells(src: Path, rows: int, cols: int, how: str) -> None:
    if rows * cols > MAX_LOG_CELLS:
        raise ValueError(f"{src}: {how} {rows} rows x {cols} columns = {rows * cols} cells, "
                         f"above the limit of {MAX_LOG_CELLS} cells (altmarl.limits); split "
                         "the log")


class _HashingReader(io.RawIOBase):
    """A raw file that hashes the bytes read through it (the log's SHA-256 is of the file
    as stored, the gzip-compressed bytes for ``.csv.gz``)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.h = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n: int = self.f.readinto(b)
        self.h.update(memoryview(b)[:n])
        return n


def _read_log_text(src: Path, max_bytes: int = MAX_LOG_BYTES) -> tuple[str, str]:
    """``(text, sha256 of the stored bytes)`` of a log's data file, streamed: a FIFO or
    device is refused, and so is a file (or the decompressed stream of a ``.csv.gz``)
    larger than ``max_bytes``, as soon as the reader gets there."""
    fd = open_regular(src, "log data file")
    with os.fdopen(fd, "rb", buffering=0) as raw:
        size = os.fstat(raw.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{src}: log data file of {size} bytes exceeds the limit of "
                             f"{max_bytes} bytes (altmarl.limits)")
        hashed = _HashingReader(raw)
        stream: Any = io.BufferedReader(hashed, 2**20)
        if src.name.endswith(".gz"):
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        parts: list[bytes] = []
        total = 0
        try:
            while chunk := stream.read(2**22):
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"{src}: decompresses to more than {max_bytes} bytes, the "
                                     "limit (altmarl.limits); refused while reading")
                parts.append(chunk)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{src}: not a valid gzip file ({exc})") from None
        while raw.read(2**20):  # hash anything the decompressor did not need
            pass
        digest = hashed.h.hexdigest()
    data = b"".join(parts)
    del parts
    try:
        return data.decode("utf-8-sig"), digest
    except UnicodeDecodeError as exc:
        raise ValueError(f"{src}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_dataset(
    path: str | os.PathLike[str],
    game: TabularGame | dict[str, int] | None = None,
    k: int | None = None,
    strict: bool = True,
) -> OfflineDataset:
    """Read a log (``NAME.csv`` / ``NAME.csv.gz`` / ``NAME.json`` / ``NAME``) with validation.

    Parameters
    ----------
    path
        Either file of the pair, or their common stem.
    game
        A game (or a spaces dict) the data must fit: the spaces must match, and with a
        game and ``strict=True`` the recorded fingerprint too (when the log has one).
    k
        Expected subsample size (must match the metadata).

    Raises
    ------
    ValueError
        Naming the file, column, row and the expected value, for: a missing or unknown
        column, a value of the wrong type, a state or action out of range, a histogram not
        summing to ``k``, NaN / infinite rewards, a duplicate ``(episode, t)``, metadata
        that is malformed or does not match the CSV (``rows``, ``sha256``, ``columns``) or
        the given ``game`` / ``k``. Nothing is executed: JSON and CSV are parsed as data.
    """
    meta, csv_path = read_metadata(path)
    sp = check_spaces(meta["spaces"])
    kk = int(meta["k"])
    if k is not None and kk != check_int("k", k, 1, INT64_MAX):
        raise ValueError(f"{csv_path}: metadata k = {kk}, but k = {k} was requested")
    if game is not None:
        g_sp = game.spaces if isinstance(game, TabularGame) else check_spaces(game)
        mine = {key: sp[key] for key in SPACE_KEYS}
        theirs = {key: g_sp[key] for key in SPACE_KEYS}
        if "A_l" in sp and g_sp.get("A_l") not in (None, -1):
            mine["A_l"], theirs["A_l"] = sp["A_l"], g_sp["A_l"]
        if mine != theirs:
            raise ValueError(f"{csv_path}: log recorded for spaces {mine}, but the game has "
                             f"{theirs}")
        fp = (meta.get("game") or {}).get("fingerprint") if isinstance(meta.get("game"),
                                                                       dict) else None
        if strict and isinstance(game, TabularGame) and fp is not None and fp != game.fingerprint():
            raise ValueError(f"{csv_path}: log recorded on game {meta['game'].get('name')!r} "
                             f"(fingerprint {fp}), not on {game.name!r} (fingerprint "
                             f"{game.fingerprint()}); pass strict=False to use it anyway")
    d = sp["S_l"]
    if "rows" in meta:  # the declared size, checked before reading anything
        _check_cells(csv_path, int(meta["rows"]), 2 * d + 6, "the metadata declares")
    text, digest = _read_log_text(csv_path)
    if "sha256" in meta and digest != meta["sha256"]:
        raise ValueError(f"{csv_path}: its SHA-256 does not match the metadata's sha256: the "
                         "CSV was modified or belongs to another sidecar")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise ValueError(f"{csv_path}: line {text[:text.index(chr(13))].count(chr(10)) + 1} "
                             "ends with a bare CR: expected LF or CRLF line endings")
    head, _, body = text.partition("\n")
    if not head.strip():
        raise ValueError(f"{csv_path}: empty first line; expected the header")
    try:
        header = [c.strip() for c in next(csv.reader([head]))]
    except csv.Error as exc:
        raise ValueError(f"{csv_path}: the header line is not valid CSV ({exc})") from None
    if 2 * d + 6 > 2 * len(header) + 16:  # far too few columns: say so without listing
        raise ValueError(f"{csv_path}: the header has {len(header)} columns; a log with "
                         f"|S_l| = {d} has {2 * d + 6} (episode, t, s_g, h_0..h_{d - 1}, a_g, "
                         f"r, s_g', h'_0..h'_{d - 1})")
    _check_cells(csv_path, body.count("\n") + 1, len(header), "the data holds up to")
    expected = columns(d)
    extra = meta.get("extra_columns", [])
    if not isinstance(extra, list) or not all(isinstance(c, str) for c in extra):
        raise ValueError(f"{csv_path}: metadata extra_columns must be a list of names")
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise ValueError(f"{csv_path}: duplicate column(s) {dup} in the header")
    missing = [c for c in expected if c not in header]
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {_short(missing)}; expected columns "
                         f"{_short(expected)} (|S_l| = {d})")
    unknown = [c for c in header if c not in expected and c not in extra]
    if unknown:
        raise ValueError(f"{csv_path}: unknown column(s) {_short(unknown)}; expected exactly "
                         f"{_short(expected)} (declare additional columns in the metadata's "
                         "extra_columns)")
    if "columns" in meta and meta["columns"] != header:
        raise ValueError(f"{csv_path}: header {_short(header)} differs from the metadata's "
                         f"columns {_short(meta['columns'])}")
    if not body.strip():
        raise ValueError(f"{csv_path}: no data rows; expected at least one transition")
    if '"' in body:
        try:
            n_fields = [len(row) for row in csv.reader(io.StringIO(body)) if row]
        except csv.Error as exc:
            raise ValueError(f"{csv_path}: the data is not valid CSV ({exc})") from None
    else:
        n_fields = [line.count(",") + 1 for line in body.splitlines() if line]
    if any(f != len(header) for f in n_fields):  # NumPy's reader ignores surplus fields
        _parse_slow(text, header, expected, csv_path)
    try:
        cols = _parse_fast(body, header, expected)
    except (ValueError, UserWarning) as exc:
        _parse_slow(text, header, expected, csv_path)
        raise ValueError(f"{csv_path}: could not parse the data ({exc})") from None
    if "rows" in meta and int(meta["rows"]) != cols["r"].shape[0]:
        raise ValueError(f"{csv_path}: {cols['r'].shape[0]} data rows, but the metadata says "
                         f"rows = {meta['rows']}")
    info: dict[str, Any] = {key: meta[key] for key in (
        "behaviour", "local_policy", "reward", "game", "next_histogram", "episodes", "horizon",
        "seed") if key in meta}
    info["source"] = str(csv_path)
    try:
        return _build(cols, sp, kk, float(meta["gamma"]),
                      None if meta.get("n") is None else int(meta["n"]), info, _file_rows(text))
    except ValueError as exc:
        raise ValueError(f"{csv_path}: {exc}") from None


__all__ = [
    "LOG_FORMAT",
    "LOG_VERSION",
    "OfflineDataset",
    "columns",
    "load_dataset",
    "read_metadata",
]
