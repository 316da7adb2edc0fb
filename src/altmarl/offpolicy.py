"""Off-policy G-LEARN from logged data (paper Appendix E, eq. 38; SPEC 4 "Off-policy variant").

Real dispatchers have logs, not generative models. This module defines

* a documented on-disk **log format** (CSV + JSON sidecar, below) and
  :class:`OfflineDataset`, its validated in-memory form;
* :func:`record_logs`: logs of the real ``n``-agent system under a behaviour policy
  (uniform or epsilon-greedy global actions; local agents follow ``pi_l``), drawn with the
  count simulator;
* :func:`load_dataset`: reading with validation -- every defect is a ``ValueError`` naming
  the column, the row and what was expected; nothing is executed (CSV + JSON only);
* :func:`g_learn_offpolicy`: asynchronous Q-learning over ``(s_g, h, a_g)`` (eq. 38)::

      Q(s, a) <- Q(s, a) + alpha_t (r_t + gamma max_a' Q(s', a') - Q(s, a)),   s = (s_g, h).

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
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import check_gamma
from altmarl.game import TabularGame
from altmarl.histogram import num_histograms, rank
from altmarl.io import atomic_write_bytes
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.simulate import (
    count_step,
    multivariate_hypergeometric,
    step_tables,
    subsample_histograms,
)
from altmarl.stochastic import RewardModel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

LOG_FORMAT = "altmarl.offpolicy_log"
LOG_VERSION = 1
BEHAVIOURS = ("uniform", "epsilon-greedy")
SCHEDULES = ("rescaled-linear", "polynomial", "constant")
MODES = ("sequential", "synchronous")
#: episodes per independently seeded chunk of :func:`record_logs`
CHUNK = 128
_SPACE_KEYS = ("S_g", "A_g", "S_l")


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


def _check_meta_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise ValueError(f"{name} = {value!r}: expected an integer >= {minimum}")
    return int(value)


def _check_spaces(spaces: Any) -> dict[str, int]:
    if not isinstance(spaces, dict):
        raise ValueError(f"spaces = {spaces!r}: expected an object with S_g, A_g, S_l "
                         "(and optionally A_l)")
    unknown = set(spaces) - {"S_g", "A_g", "S_l", "A_l"}
    if unknown:
        raise ValueError(f"spaces: unknown keys {sorted(unknown)}; expected S_g, A_g, S_l, A_l")
    out: dict[str, int] = {}
    for key in _SPACE_KEYS:
        if key not in spaces:
            raise ValueError(f"spaces.{key}: missing; expected an integer >= 1")
        out[key] = _check_meta_int(f"spaces.{key}", spaces[key], 1)
    if spaces.get("A_l") not in (None, -1):
        out["A_l"] = _check_meta_int("spaces.A_l", spaces["A_l"], 1)
    return out


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
        sp = _check_spaces(spaces)
        k_ = _check_meta_int("k", k, 1)
        g = check_gamma(gamma)
        n_ = None if n is None else _check_meta_int("n", n, 1)
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
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        atomic_write_bytes(csv_path, data)
        atomic_write_bytes(json_path, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
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
        bad = sums != k
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


def _reject_constant(token: str) -> Any:
    raise ValueError(f"metadata: {token} is not a valid JSON number")


def read_metadata(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """Read and check a log's JSON sidecar; returns ``(metadata, csv_path)``."""
    csv_path, json_path = _paths(Path(path))
    if not json_path.exists():
        raise FileNotFoundError(f"{json_path}: metadata sidecar not found (a log is NAME.csv + "
                                "NAME.json)")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{json_path}: not valid JSON ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"{json_path}: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{json_path}: expected a JSON object")
    if meta.get("format") != LOG_FORMAT:
        raise ValueError(f"{json_path}: format = {meta.get('format')!r}, expected {LOG_FORMAT!r}")
    if meta.get("version") != LOG_VERSION:
        raise ValueError(f"{json_path}: format version {meta.get('version')!r} is not supported "
                         f"(this altmarl reads version {LOG_VERSION})")
    try:
        _check_spaces(meta.get("spaces"))
        _check_meta_int("k", meta.get("k"), 1)
        if "gamma" not in meta:
            raise ValueError("gamma: missing; expected a number in [0, 1)")
        if isinstance(meta["gamma"], bool) or not isinstance(meta["gamma"], int | float):
            raise ValueError(f"gamma = {meta['gamma']!r}: expected a number in [0, 1)")
        check_gamma(meta["gamma"])
        if meta.get("n") is not None:
            _check_meta_int("n", meta["n"], 1)
        for key in ("rows",):
            if key in meta:
                _check_meta_int(key, meta[key], 1)
    except ValueError as exc:
        raise ValueError(f"{json_path}: metadata {exc}") from None
    data = meta.get("data")
    if data is not None:
        if (not isinstance(data, str) or not data or "/" in data or "\\" in data
                or data in (".", "..")):
            raise ValueError(f"{json_path}: data = {data!r}: expected a plain file name in the "
                             "same directory")
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
    sp = _check_spaces(meta["spaces"])
    kk = int(meta["k"])
    if k is not None and kk != k:
        raise ValueError(f"{csv_path}: metadata k = {kk}, but k = {k} was requested")
    if game is not None:
        g_sp = game.spaces if isinstance(game, TabularGame) else _check_spaces(game)
        mine = {key: sp[key] for key in _SPACE_KEYS}
        theirs = {key: g_sp[key] for key in _SPACE_KEYS}
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
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path}: data file of the log not found")
    data = csv_path.read_bytes()
    if "sha256" in meta and hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ValueError(f"{csv_path}: its SHA-256 does not match the metadata's sha256: the "
                         "CSV was modified or belongs to another sidecar")
    if csv_path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{csv_path}: not a valid gzip file ({exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{csv_path}: not UTF-8 text ({exc})") from None
    head, _, body = text.partition("\n")
    if not head.strip():
        raise ValueError(f"{csv_path}: empty first line; expected the header")
    header = [c.strip() for c in next(csv.reader([head]))]
    d = sp["S_l"]
    expected = columns(d)
    extra = meta.get("extra_columns", [])
    if not isinstance(extra, list) or not all(isinstance(c, str) for c in extra):
        raise ValueError(f"{csv_path}: metadata extra_columns must be a list of names")
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise ValueError(f"{csv_path}: duplicate column(s) {dup} in the header")
    missing = [c for c in expected if c not in header]
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {missing}; expected columns {expected} "
                         f"(|S_l| = {d})")
    unknown = [c for c in header if c not in expected and c not in extra]
    if unknown:
        raise ValueError(f"{csv_path}: unknown column(s) {unknown}; expected exactly {expected} "
                         "(declare additional columns in the metadata's extra_columns)")
    if "columns" in meta and meta["columns"] != header:
        raise ValueError(f"{csv_path}: header {header} differs from the metadata's columns "
                         f"{meta['columns']}")
    if not body.strip():
        raise ValueError(f"{csv_path}: no data rows; expected at least one transition")
    if '"' in body:
        n_fields = [len(row) for row in csv.reader(io.StringIO(body)) if row]
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


# ---------------------------------------------------------------------------
# recording from the simulator
# ---------------------------------------------------------------------------


def _policy_description(pol: GlobalPolicy | LocalPolicy | None) -> dict[str, Any] | None:
    if pol is None:
        return None
    desc: dict[str, Any] = {"type": type(pol).__name__}
    for key in ("kind", "method", "k", "m", "seed"):
        if key in pol.info:
            val = pol.info[key]
            desc[key] = val if isinstance(val, int | float | str | type(None)) else repr(val)
    if isinstance(pol, GlobalPolicy):
        desc["k"] = pol.k
    return desc


def record_logs(
    game: TabularGame,
    k: int,
    episodes: int = 100,
    horizon: int = 100,
    *,
    pi_l: LocalPolicy | None = None,
    behaviour: str = "uniform",
    pi_g: GlobalPolicy | None = None,
    epsilon: float = 0.1,
    reward_model: RewardModel | None = None,
    next_histogram: str = "fresh",
    seed: int = 0,
    progress: bool = False,
) -> OfflineDataset:
    """Log ``episodes`` trajectories of ``horizon`` steps of the ``n``-agent system under a
    behaviour policy (Appendix E), with the exact count simulator (SPEC 3).

    Per step, vectorized over episodes: ``h`` = histogram of a fresh uniform ``k``-subset
    (multivariate hypergeometric); ``a_g`` = behaviour action (``"uniform"`` over ``A_g``,
    or ``"epsilon-greedy"``: ``pi_g(s_g, h)`` with probability ``1 - epsilon``, else
    uniform; every action then has probability ``>= epsilon / |A_g| > 0``, Assumption E.1);
    every local agent acts by ``pi_l`` (default uniform) and moves (multinomial per
    (state, action) cell); the sampled agents' action counts are a multivariate
    hypergeometric sub-draw of each bin's action counts, which gives the observed reward
    ``r = r_g(s_g, a_g) + (1/k) sum_{i in Delta} r_l(s_i, s_g, a_i)`` (or draws of it from
    ``reward_model``). Episodes run in chunks of ``CHUNK`` seeded by
    ``SeedSequence(seed)``.

    ``next_histogram`` says what ``h'`` is:

    * ``"fresh"`` (default): the histogram of a fresh ``k``-sample of the next population,
      which is also the next row's ``h`` (what a dispatcher that samples ``k`` agents every
      step logs). For ``n > k`` the logged ``(s_g, h)`` process is not the ``k``-agent
      surrogate, and eq. 38 converges to the fixed point of *this* process (which depends
      on the behaviour policy), not exactly to G-LEARN's ``Q_hat`` (docs/offpolicy.md).
    * ``"tracked"``: the histogram of the *same* ``k`` sampled agents after their move
      (a multivariate hypergeometric sub-draw of the population's (state, action, next
      state) counts); the next row's ``h`` is still a fresh sample. Then ``(s_g, h) ->
      (s_g', h')`` is exactly the surrogate's transition for any ``n``, and eq. 38
      converges to ``Q_hat`` of G-LEARN with the exact expectation.
    """
    if not isinstance(game, TabularGame):
        raise ValueError(f"game: expected an altmarl.TabularGame, got {type(game).__name__}")
    k = game.check_k(k)
    R_tot = _check_meta_int("episodes", episodes, 1)
    H = _check_meta_int("horizon", horizon, 1)
    seed = _check_meta_int("seed", seed, 0)
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"behaviour = {behaviour!r}: expected one of {list(BEHAVIOURS)}")
    if pi_l is None:
        pi_l = LocalPolicy.uniform(game)
    if pi_l.table.shape != (game.n_sl, game.n_sg, game.n_al):
        raise ValueError(f"pi_l.table: expected shape {(game.n_sl, game.n_sg, game.n_al)}, got "
                         f"{pi_l.table.shape}")
    eps = 1.0
    if behaviour == "epsilon-greedy":
        if not isinstance(pi_g, GlobalPolicy):
            raise ValueError("pi_g: behaviour 'epsilon-greedy' needs a GlobalPolicy to be greedy "
                             "around")
        if pi_g.k != k:
            raise ValueError(f"pi_g.k = {pi_g.k}: the behaviour policy must act on the logged "
                             f"k = {k} sample")
        if (pi_g.n_sg, pi_g.n_sl, pi_g.n_ag) != (game.n_sg, game.n_sl, game.n_ag):
            raise ValueError(f"pi_g: made for other spaces than game {game.name!r}")
        eps = float(epsilon)
        if not (0.0 < eps <= 1.0):
            raise ValueError(f"epsilon = {epsilon!r}: expected 0 < epsilon <= 1 (every action "
                             "needs positive probability, Assumption E.1)")
    if reward_model is not None:
        reward_model.check_game(game)
    if next_histogram not in ("fresh", "tracked"):
        raise ValueError(f"next_histogram = {next_histogram!r}: expected 'fresh' or 'tracked'")
    tracked = next_histogram == "tracked"
    n, d, Ag = game.n, game.n_sl, game.n_ag
    tables = step_tables(game, pi_l.table)
    sizes = [CHUNK] * (R_tot // CHUNK) + ([R_tot % CHUNK] if R_tot % CHUNK else [])
    seqs = np.random.SeedSequence(seed).spawn(len(sizes))
    out: dict[str, list[NDArray[Any]]] = {key: [] for key in
                                          ("s_g", "h", "a_g", "r", "s_g'", "h'")}
    with _progress(progress, len(sizes) * H, "recording logs") as step:
        for j, R in enumerate(sizes):
            rng = np.random.default_rng(seqs[j])
            s_g, N = game.sample_init(rng, R)
            h = subsample_histograms(N, k, rng)
            rec = {"s_g": np.empty((R, H), np.int64), "a_g": np.empty((R, H), np.int64),
                   "r": np.empty((R, H)), "s_g'": np.empty((R, H), np.int64),
                   "h": np.empty((R, H, d), np.int64), "h'": np.empty((R, H, d), np.int64)}
            for t in range(H):
                a_g = rng.integers(0, Ag, size=R)
                if behaviour == "epsilon-greedy":
                    assert pi_g is not None
                    greedy = pi_g.act_ranked(s_g, rank(h, k))
                    a_g = np.where(rng.random(R) < eps, a_g, greedy)
                # the step's reward is the k sampled agents' (Appendix E): 1/k times their
                # local rewards, the sampled agents' actions a sub-draw of each bin's
                cs = count_step(tables, s_g, N, a_g, rng, sample=h, reward_model=reward_model)
                r, s_next, N = cs.reward, cs.s_g, cs.counts
                h_next = subsample_histograms(N, k, rng)
                h_logged = h_next
                if tracked and k < n:  # where the same k agents went
                    assert cs.sampled is not None
                    h_logged = multivariate_hypergeometric(cs.moves, cs.sampled,
                                                           rng).sum(axis=(1, 2))
                rec["s_g"][:, t], rec["a_g"][:, t], rec["r"][:, t] = s_g, a_g, r
                rec["s_g'"][:, t], rec["h"][:, t], rec["h'"][:, t] = s_next, h, h_logged
                s_g, h = s_next, h_next
                step(1)
            for key, val in rec.items():
                out[key].append(val.reshape((R * H,) + val.shape[2:]))
    cat = {key: np.concatenate(v, axis=0) for key, v in out.items()}
    episode = np.repeat(np.arange(R_tot, dtype=np.int64), H)
    tt = np.tile(np.arange(H, dtype=np.int64), R_tot)
    bdesc: dict[str, Any] = {"kind": behaviour}
    if behaviour == "epsilon-greedy":
        bdesc.update(epsilon=eps, policy=_policy_description(pi_g))
    info = {
        "behaviour": bdesc,
        "local_policy": _policy_description(pi_l),
        "reward": ({"kind": "deterministic"} if reward_model is None
                   else {"kind": "stochastic", **reward_model.describe()}),
        "game": {"name": game.name, "fingerprint": game.fingerprint()},
        "next_histogram": next_histogram,
        "episodes": R_tot,
        "horizon": H,
        "seed": seed,
    }
    return OfflineDataset.from_arrays(
        cat["s_g"], cat["h"], cat["a_g"], cat["r"], cat["s_g'"], cat["h'"], k=k,
        spaces=game.spaces, gamma=game.gamma, n=n, episode=episode, t=tt, info=info)


class _progress:
    """A rich progress bar (or a no-op) whose ``step(n)`` advances it."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


# ---------------------------------------------------------------------------
# eq. 38: off-policy Q-learning over (s_g, h, a_g)
# ---------------------------------------------------------------------------


def step_sizes(schedule: str, count: int, gamma: float, omega: float = 0.8,
               alpha: float = 0.1) -> FloatArray:
    """``alpha(v)`` for the ``v``-th update (``v = 0, 1, ...``) of one ``(s, a)`` pair.

    * ``"rescaled-linear"``: ``1 / (1 + (1 - gamma) v)`` -- the rescaled linear step size
      of Wainwright (2019) and, per pair, the ``alpha / (t + h)`` schedule with
      ``alpha = h = 1 / (1 - gamma)`` of the Markovian stochastic approximation result that
      Appendix E cites (Chen et al. 2021, Theorem 3.1);
    * ``"polynomial"``: ``1 / (1 + v)^omega``, ``1/2 < omega <= 1`` (``omega = 1``: the
      running average);
    * ``"constant"``: ``alpha``.
    """
    v = np.arange(count, dtype=np.float64)
    if schedule == "rescaled-linear":
        return 1.0 / (1.0 + (1.0 - gamma) * v)
    if schedule == "polynomial":
        return np.asarray((1.0 + v) ** (-omega), dtype=np.float64)
    if schedule == "constant":
        return np.full(count, alpha)
    raise ValueError(f"schedule = {schedule!r}: expected one of {list(SCHEDULES)}")


def _sequential_epoch(Q: list[float], visits: list[int], sa: list[int], rr: list[float],
                      nb: list[int], A: int, gamma: float, alphas: list[float],
                      step: Any, every: int) -> None:
    """One pass of eq. 38 over the samples, in order (plain Python on lists: about a
    microsecond per sample)."""
    T = len(sa)
    for lo in range(0, T, every):
        hi = min(T, lo + every)
        for j, r, b in zip(sa[lo:hi], rr[lo:hi], nb[lo:hi], strict=True):
            v = visits[j]
            q = Q[j]
            Q[j] = q + alphas[v] * (r + gamma * max(Q[b:b + A]) - q)
            visits[j] = v + 1
        step(hi - lo)


def g_learn_offpolicy(
    game_spaces: TabularGame | dict[str, int],
    dataset: OfflineDataset | str | os.PathLike[str],
    k: int | None = None,
    gamma: float | None = None,
    *,
    epochs: int | None = None,
    schedule: str = "rescaled-linear",
    omega: float = 0.8,
    alpha: float = 0.1,
    mode: str = "sequential",
    tol: float = 1e-8,
    q_init: float = 0.0,
    seed: int = 0,
    tie_break: str = "seeded",
    strict: bool = True,
    progress: bool = False,
) -> GlobalPolicy:
    """Off-policy G-LEARN (Appendix E, eq. 38): Q-learning over ``(s_g, h, a_g)`` from logs.

    Parameters
    ----------
    game_spaces
        The game (spaces, and with ``strict=True`` the recorded fingerprint, checked against
        the log) or a spaces dict ``{"S_g", "A_g", "S_l"}``: the learner is model-free and
        needs only the sizes.
    dataset
        An :class:`OfflineDataset` or a log path (loaded with :func:`load_dataset`).
    k
        Subsample size; must equal the log's (default: the log's).
    gamma
        Discount of the learned ``Q`` (default: the log's).
    epochs
        Passes over the data (default 1 for ``"sequential"``; for ``"synchronous"``, until
        the change is below ``tol``, at most 100000).
    schedule, omega, alpha
        Step size as a function of the pair's visit count (:func:`step_sizes`); counts keep
        growing across epochs.
    mode
        ``"sequential"`` (default): eq. 38 sample by sample, in log order.
        ``"synchronous"``: every epoch applies, to every visited pair at once, the average
        of its targets ``r + gamma max_a' Q(s', a')`` over the whole log (step size 1): value
        iteration on the empirical model of the log (certainty equivalence); vectorized.
    q_init
        Initial value of every entry; pairs without data keep it.
    seed, tie_break
        Greedy ties (e.g. states without data) are broken uniformly at random with a
        generator seeded from ``seed`` (``"seeded"``) or by the lowest action (``"lowest"``).

    Returns
    -------
    GlobalPolicy
        Greedy for the learned ``q`` (``(|S_g|, |H_k|, |A_g|)``); ``info`` has ``epochs``,
        ``updates``, ``transitions``, ``schedule``, ``mode``, ``last_epoch_change``
        (``||Q_e - Q_{e-1}||_inf`` of the last epoch), ``coverage`` and ``visits``
        statistics, ``wall_seconds``, and the log's ``behaviour``.
    """
    t0 = time.perf_counter()
    game = game_spaces if isinstance(game_spaces, TabularGame) else None
    sp = game.spaces if game is not None else _check_spaces(game_spaces)
    if not isinstance(dataset, OfflineDataset):
        dataset = load_dataset(dataset, game if game is not None else sp, k, strict)
    ds = dataset
    for key in _SPACE_KEYS:
        if ds.spaces[key] != sp[key]:
            raise ValueError(f"dataset.spaces.{key} = {ds.spaces[key]}: the game has {key} = "
                             f"{sp[key]}")
    rec = ds.info.get("game")
    rec = rec if isinstance(rec, dict) else {}
    fp = rec.get("fingerprint")
    if strict and game is not None and fp is not None and fp != game.fingerprint():
        raise ValueError(f"dataset: recorded on game {rec.get('name')!r} (fingerprint {fp}), "
                         f"not on {game.name!r} ({game.fingerprint()}); pass strict=False to "
                         "use it anyway")
    if k is not None and k != ds.k:
        raise ValueError(f"k = {k}: the dataset was logged with k = {ds.k}")
    g = ds.gamma if gamma is None else check_gamma(gamma)
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {list(MODES)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule = {schedule!r}: expected one of {list(SCHEDULES)}")
    if schedule == "polynomial" and not (0.5 < float(omega) <= 1.0):
        raise ValueError(f"omega = {omega!r}: expected 1/2 < omega <= 1")
    if schedule == "constant" and not (0.0 < float(alpha) <= 1.0):
        raise ValueError(f"alpha = {alpha!r}: expected 0 < alpha <= 1")
    if tie_break not in ("seeded", "lowest"):
        raise ValueError(f"tie_break = {tie_break!r}: expected 'seeded' or 'lowest'")
    if not math.isfinite(float(q_init)):
        raise ValueError(f"q_init = {q_init!r}: expected a finite number")
    max_epochs = 100_000 if mode == "synchronous" else 1
    E = max_epochs if epochs is None else _check_meta_int("epochs", epochs, 1)
    S, A = ds.n_sg, ds.n_ag
    nh = num_histograms(ds.k, ds.n_sl)
    P = S * nh * A
    cur, nxt = ds.state_index()
    sa = cur * A + ds.a_g
    counts = np.bincount(sa, minlength=P)
    Qa = np.full(P, float(q_init))
    change = float("nan")
    epochs_run = 0
    if mode == "sequential":
        alphas = step_sizes(schedule, int(counts.max()) * E + 1, g, float(omega),
                            float(alpha)).tolist()
        Q = Qa.tolist()
        visits = [0] * P
        sa_l, r_l, nb_l = sa.tolist(), ds.r.tolist(), (nxt * A).tolist()
        with _progress(progress, E * len(ds), "off-policy G-LEARN") as step:
            for _ in range(E):
                before = np.asarray(Q)
                _sequential_epoch(Q, visits, sa_l, r_l, nb_l, A, g, alphas, step, 1 << 16)
                Qa = np.asarray(Q, dtype=np.float64)
                change = float(np.abs(Qa - before).max())
                epochs_run += 1
    else:
        visited = counts > 0
        inv = np.zeros(P)
        inv[visited] = 1.0 / counts[visited]
        with _progress(progress, E, "off-policy G-LEARN (synchronous)") as step:
            for _ in range(E):
                V = Qa.reshape(-1, A).max(axis=1)
                target = np.bincount(sa, weights=ds.r + g * V[nxt], minlength=P) * inv
                new = np.where(visited, target, Qa)
                change = float(np.abs(new - Qa).max())
                Qa = new
                epochs_run += 1
                step(1)
                if epochs is None and change <= tol:
                    break
    q = Qa.reshape(S, nh, A)
    cov = ds.coverage()
    info: dict[str, Any] = {
        "method": "g-learn-offpolicy",
        "k": ds.k,
        "gamma": g,
        "mode": mode,
        "schedule": schedule if mode == "sequential" else "none (step 1)",
        "omega": float(omega) if schedule == "polynomial" else None,
        "alpha": float(alpha) if schedule == "constant" else None,
        "epochs": epochs_run,
        "transitions": len(ds),
        "updates": epochs_run * len(ds),
        "last_epoch_change": change,
        "q_init": float(q_init),
        "coverage": cov,
        "visits_min": int(counts[counts > 0].min()),
        "visits_max": int(counts.max()),
        "seed": int(seed),
        "tie_break": tie_break,
        "behaviour": ds.info.get("behaviour"),
        "wall_seconds": time.perf_counter() - t0,
    }
    tie_seed = (int(np.random.SeedSequence(seed).generate_state(1)[0])
                if tie_break == "seeded" else None)
    return GlobalPolicy.from_q(ds.k, q, info=info, game=game, tie_seed=tie_seed)


# ---------------------------------------------------------------------------
# comparison with the generative G-LEARN fixed point
# ---------------------------------------------------------------------------


def compare_generative(
    game: TabularGame,
    pi_l: LocalPolicy,
    policy: GlobalPolicy,
    dataset: OfflineDataset | None = None,
    reference: GlobalPolicy | None = None,
    value: str = "auto",
    rollouts: int = 500,
    horizon: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Distance of an off-policy ``Q`` to the generative G-LEARN fixed point (``m=None``,
    exact expectation; computed unless ``reference`` is given), and both policies' values.

    Returns ``q_err_sup`` (all entries), ``q_err_sup_visited`` and ``q_err_mean_data``
    (mean over the log's transitions of ``|Q - Q_hat|`` at the logged ``(s, a)``; needs
    ``dataset``), ``value`` and ``value_reference`` (exact with
    :class:`altmarl.exact.ExactSolver` when ``value="exact"`` or ``"auto"`` and the chain is
    small enough; else Monte-Carlo with common random numbers, ``value_stderr``), and
    ``value_gap`` = reference minus learned.
    """
    from altmarl.g_learn import g_learn

    if policy.q is None:
        raise ValueError("policy: expected a policy with a Q table (from g_learn_offpolicy)")
    if reference is None:
        reference = g_learn(game, pi_l, policy.k, m=None, seed=seed, tol=1e-10)
    assert reference.q is not None
    diff = np.abs(policy.q - reference.q)
    out: dict[str, Any] = {"q_err_sup": float(diff.max())}
    if dataset is not None:
        cur, _ = dataset.state_index()
        flat = diff.reshape(-1, game.n_ag)
        vals = flat[cur, dataset.a_g]
        visited = np.zeros(flat.size, dtype=bool)
        visited[cur * game.n_ag + dataset.a_g] = True
        out["q_err_sup_visited"] = float(flat.reshape(-1)[visited].max())
        out["q_err_mean_data"] = float(vals.mean())
    if value not in ("auto", "exact", "mc"):
        raise ValueError(f"value = {value!r}: expected 'auto', 'exact' or 'mc'")
    done = False
    if value in ("auto", "exact"):
        from altmarl.exact import ExactSolver

        try:
            ex = ExactSolver(game, policy.k)
        except ValueError:
            if value == "exact":
                raise
        else:
            out["value"] = ex.value(policy, pi_l)
            out["value_reference"] = ex.value(reference, pi_l)
            out["value_method"] = "exact"
            done = True
    if not done:
        from altmarl.evaluation import evaluate

        H = horizon or int(math.ceil(math.log(1e-3) / math.log(max(game.gamma, 1e-3))))
        ev = evaluate(game, policy, pi_l, rollouts=rollouts, horizon=H, seed=seed)
        ev_ref = evaluate(game, reference, pi_l, rollouts=rollouts, horizon=H, seed=seed)
        out.update(value=ev.mean, value_reference=ev_ref.mean, value_stderr=ev.stderr,
                   value_method=f"monte-carlo (R={rollouts}, H={H}, common seed)")
        paired = ev_ref.returns - ev.returns
        out["value_gap_stderr"] = float(paired.std(ddof=1) / math.sqrt(paired.size))
    out["value_gap"] = out["value_reference"] - out["value"]
    return out


__all__ = [
    "LOG_FORMAT",
    "LOG_VERSION",
    "OfflineDataset",
    "columns",
    "compare_generative",
    "g_learn_offpolicy",
    "load_dataset",
    "read_metadata",
    "record_logs",
    "step_sizes",
]
