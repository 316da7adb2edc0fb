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

Local actions (optional). A log may also carry, per step, the *population's* local action
counts ``N_{x}_{a}`` for ``x`` in ``0..|S_l|-1``, ``a`` in ``0..|A_l|-1``: how many of the
``n`` agents were in local state ``x`` and played ``a`` (integers ``>= 0`` summing to ``n``;
the sample is drawn from that population, so ``h_x <= sum_a N_{x}_{a}``). The sidecar then
says ``"local_actions": "population"`` (``spaces.A_l`` and ``n`` become required) and may
record the local behaviour ``"local_behaviour": {"kind": "uniform"}`` or ``{"kind":
"table", "table": mu_l[s_l][s_g][a_l]}`` (rows summing to 1; an action logged with a
positive count must have positive behaviour probability). These are what the importance
weight of a *joint* policy needs: every agent's action changes where the population goes,
so the weight of a step multiplies the ratios of all ``n`` agents, not only of the ``k``
sampled ones (:mod:`altmarl.offpolicy.ope`). Logs without them load as before.

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
from altmarl.game import TabularGame, check_recorded_game
from altmarl.histogram import num_histograms, rank
from altmarl.io import atomic_write_bytes, json_bytes, open_regular, read_json, sha256_bytes
from altmarl.limits import (
    INT64_MAX,
    MAX_JSON_BYTES,
    MAX_LOG_BYTES,
    MAX_LOG_CELLS,
    MAX_TABLE_ENTRIES,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

LOG_FORMAT = "altmarl.offpolicy_log"
LOG_VERSION = 1


#: the sidecar's ``local_actions`` value of a log with population local-action counts
LOCAL_ACTIONS = "population"
#: kinds of the sidecar's ``local_behaviour``
LOCAL_BEHAVIOURS = ("uniform", "table")


def columns(d: int) -> list[str]:
    """The canonical column order of a log with ``d = |S_l|`` local states."""
    return (["episode", "t", "s_g"] + [f"h_{x}" for x in range(d)] + ["a_g", "r", "s_g'"]
            + [f"h'_{x}" for x in range(d)])


def local_columns(d: int, n_al: int) -> list[str]:
    """The optional local-action count columns ``N_{x}_{a}`` (module docstring), ``x``
    major."""
    return [f"N_{x}_{a}" for x in range(d) for a in range(n_al)]


def check_local_behaviour(value: Any, spaces: dict[str, int]) -> FloatArray:
    """The sidecar's ``local_behaviour`` as a table ``mu_l[s_l, s_g, a_l]`` (SPEC 2), after
    checking it: ``{"kind": "uniform"}`` or ``{"kind": "table", "table": nested lists}`` of
    shape ``(|S_l|, |S_g|, |A_l|)``, finite, ``>= 0``, rows summing to 1; else a
    ``ValueError`` naming ``local_behaviour``."""
    d, S, A = spaces["S_l"], spaces["S_g"], spaces.get("A_l", -1)
    if A is None or A < 1:
        raise ValueError("local_behaviour: needs spaces.A_l (the number of local actions)")
    if d * S * A > MAX_TABLE_ENTRIES:
        raise ValueError(f"local_behaviour: a table of |S_l| x |S_g| x |A_l| = {d} x {S} x {A} "
                         f"entries exceeds the limit of {MAX_TABLE_ENTRIES} (altmarl.limits)")
    if not isinstance(value, dict) or value.get("kind") not in LOCAL_BEHAVIOURS:
        raise ValueError(f"local_behaviour = {_short(value)}: expected {{\"kind\": \"uniform\"}} "
                         "or {\"kind\": \"table\", \"table\": [[[...]]]} (mu_l[s_l][s_g][a_l])")
    if value["kind"] == "uniform":
        return np.full((d, S, A), 1.0 / A)
    tab = value.get("table")
    shape = (d, S, A)

    def ok_shape(v: Any, dims: tuple[int, ...]) -> bool:
        if not dims:
            return isinstance(v, int | float) and not isinstance(v, bool)
        return (isinstance(v, list) and len(v) == dims[0]
                and all(ok_shape(u, dims[1:]) for u in v))

    if not ok_shape(tab, shape):
        raise ValueError(f"local_behaviour.table: expected nested lists of numbers of shape "
                         f"(|S_l|, |S_g|, |A_l|) = {shape}")
    t = np.asarray(tab, dtype=np.float64)
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("local_behaviour.table: expected finite probabilities >= 0")
    bad = np.abs(t.sum(axis=2) - 1.0) > 1e-9
    if bad.any():
        x, g = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"local_behaviour.table[{x}][{g}] sums to {float(t[x, g].sum())!r}: "
                         "expected each row to sum to 1")
    return t


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
    #: population local-action counts ``(rows, |S_l|, |A_l|)`` (``None``: not logged)
    local_counts: IntArray | None = None
    #: the local behaviour ``mu_l[s_l, s_g, a_l]`` when the log records it
    local_behaviour: FloatArray | None = None

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
        local_counts: ArrayLike | None = None,
        local_behaviour: ArrayLike | None = None,
    ) -> OfflineDataset:
        """Validate arrays into a dataset. Without ``episode`` / ``t`` the rows are taken
        as one trajectory (``episode = 0``, ``t = 0, 1, ...``). ``local_counts``
        ``(rows, |S_l|, |A_l|)``: the population's local-action counts of each step (they
        need ``n`` and ``spaces["A_l"]``); ``local_behaviour``: the local policy that chose
        them, a ``(|S_l|, |S_g|, |A_l|)`` table or a :class:`~altmarl.LocalPolicy`."""
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
        mu: FloatArray | None = None
        if local_counts is not None or local_behaviour is not None:
            A_l = sp.get("A_l", -1)
            if A_l is None or A_l < 1:
                raise ValueError("spaces: local actions need A_l (the number of local actions)")
            if local_counts is None:
                raise ValueError("local_behaviour: given without local_counts (the local "
                                 "actions it weights)")
            lc = np.asarray(local_counts)
            if lc.shape != (T, sp["S_l"], A_l):
                raise ValueError(f"local_counts: expected shape (rows, |S_l|, |A_l|) = "
                                 f"{(T, sp['S_l'], A_l)}, got {lc.shape}")
            for x in range(sp["S_l"]):
                for a in range(A_l):
                    arrays[f"N_{x}_{a}"] = _as_column(f"N_{x}_{a}", lc[:, x, a], "i")
            if local_behaviour is not None:
                tab = getattr(local_behaviour, "table", local_behaviour)
                try:
                    listed = np.asarray(tab, dtype=np.float64).tolist()
                except (TypeError, ValueError):
                    raise ValueError("local_behaviour: expected a LocalPolicy or a "
                                     "(|S_l|, |S_g|, |A_l|) table of numbers") from None
                mu = check_local_behaviour({"kind": "table", "table": listed}, sp)
        return _build(arrays, sp, k_, g, n_, {**game_info, **(info or {})}, _row, mu)

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

    def column_names(self) -> list[str]:
        """The CSV columns of this dataset: :func:`columns`, then the local-action counts
        (:func:`local_columns`) when it has them."""
        out = columns(self.n_sl)
        if self.local_counts is not None:
            out += local_columns(self.n_sl, int(self.local_counts.shape[2]))
        return out

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
            "columns": self.column_names(),
            "rows": len(self),
        }
        if self.local_counts is not None:
            meta["local_actions"] = LOCAL_ACTIONS
        if self.local_behaviour is not None:
            meta["local_behaviour"] = {"kind": "table", "table": self.local_behaviour.tolist()}
        if data_name is not None:
            meta["data"] = data_name
        from altmarl import __version__

        meta["created_by"] = f"altmarl {__version__}"
        for key, val in self.info.items():
            if key not in ("source", "local_actions", "local_behaviour"):
                # (source: where a loaded log came from, not part of the data)
                meta.setdefault(key, val)
        return meta

    def to_csv_bytes(self) -> bytes:
        """The CSV text of the rows (canonical column order; integers as ``%d``, ``r`` as
        ``%.17g``, which round-trips float64 exactly)."""
        left = np.column_stack([self.episode, self.t, self.s_g, self.h, self.a_g])
        parts = [self.s_g_next[:, None], self.h_next]
        if self.local_counts is not None:
            parts.append(self.local_counts.reshape(len(self), -1))
        right = np.column_stack(parts)
        mat = np.column_stack([left.astype(np.float64), self.r, right.astype(np.float64)])
        fmt = ",".join(["%d"] * left.shape[1] + ["%.17g"] + ["%d"] * right.shape[1])
        buf = io.StringIO()
        buf.write(",".join(self.column_names()) + "\n")
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
            "local_actions": LOCAL_ACTIONS if self.local_counts is not None else None,
            "local_behaviour": None if self.local_behaviour is None else "table",
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
           n: int | None, info: dict[str, Any], where: Callable[[int], str],
           local_behaviour: FloatArray | None = None) -> OfflineDataset:
    """Validate parsed columns (values, ranges, histogram sums, uniqueness; the local-action
    counts ``N_{x}_{a}`` when present) into a dataset."""
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
    lc = _local_counts(cols, sp, n, hs["h"], arrays["s_g"], local_behaviour, where)
    for v in (*arrays.values(), r, hs["h"], hs["h'"]):
        v.setflags(write=False)
    if lc is not None:
        lc.setflags(write=False)
    if local_behaviour is not None:
        local_behaviour.setflags(write=False)
    return OfflineDataset(
        s_g=arrays["s_g"], h=hs["h"], a_g=arrays["a_g"], r=r, s_g_next=arrays["s_g'"],
        h_next=hs["h'"], episode=arrays["episode"], t=arrays["t"], k=k, spaces=sp,
        gamma=gamma, n=n, info=dict(info), local_counts=lc, local_behaviour=local_behaviour,
    )


def _local_counts(cols: dict[str, NDArray[Any]], sp: dict[str, int], n: int | None,
                  h: IntArray, s_g: IntArray, mu: FloatArray | None,
                  where: Callable[[int], str]) -> IntArray | None:
    """The ``N_{x}_{a}`` columns as ``(rows, |S_l|, |A_l|)``, checked: counts ``>= 0``
    summing to ``n``, at least the sample's ``h_x`` agents in each state, and only actions
    the recorded behaviour ``mu`` can play."""
    d, A = sp["S_l"], sp.get("A_l", -1)
    if "N_0_0" not in cols:
        if mu is not None:
            raise ValueError("local_behaviour: recorded, but the log has no local-action "
                             "counts N_x_a")
        return None
    if n is None:
        raise ValueError("n: local-action counts N_x_a are counts of the whole population; "
                         "the log must give its size n")
    N = np.stack([np.stack([cols[f"N_{x}_{a}"] for a in range(A)], axis=1) for x in range(d)],
                 axis=1)
    if (N < 0).any() or (N > n).any():
        i, x, a = (int(v) for v in np.argwhere((N < 0) | (N > n))[0])
        raise ValueError(f"column 'N_{x}_{a}', {where(i)}: value {int(N[i, x, a])}: expected a "
                         f"count of agents in 0..n = {n}")
    sums = N.sum(axis=(1, 2))
    if (sums != n).any():
        i = int(np.flatnonzero(sums != n)[0])
        raise ValueError(f"columns N_0_0..N_{d - 1}_{A - 1}, {where(i)}: the local-action counts "
                         f"sum to {int(sums[i])}: expected the population n = {n}")
    short = h > N.sum(axis=2)
    if short.any():
        i, x = (int(v) for v in np.argwhere(short)[0])
        raise ValueError(f"columns N_{x}_0..N_{x}_{A - 1}, {where(i)}: the population has "
                         f"{int(N[i, x].sum())} agent(s) in local state {x}, but the sample has "
                         f"h_{x} = {int(h[i, x])}: the sample is drawn from the population")
    if mu is not None:
        impossible = (N > 0) & (mu[:, s_g, :].transpose(1, 0, 2) <= 0)
        if impossible.any():
            i, x, a = (int(v) for v in np.argwhere(impossible)[0])
            raise ValueError(f"column 'N_{x}_{a}', {where(i)}: {int(N[i, x, a])} agents played "
                             f"local action {a} in state {x}, which the recorded "
                             f"local_behaviour gives probability 0 at s_g = {int(s_g[i])}")
    return np.ascontiguousarray(N, dtype=np.int64)


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
        if "local_actions" in meta:
            if meta["local_actions"] != LOCAL_ACTIONS:
                raise ValueError(f"local_actions = {_short(meta['local_actions'])}: expected "
                                 f"{LOCAL_ACTIONS!r} (the N_x_a columns count the whole "
                                 "population's local actions)")
            if "A_l" not in check_spaces(meta["spaces"]):
                raise ValueError("spaces.A_l: local_actions needs the number of local actions")
            if meta.get("n") is None:
                raise ValueError("n: local_actions needs the population size n")
        if "local_behaviour" in meta:
            if "local_actions" not in meta:
                raise ValueError("local_behaviour: recorded without local_actions (the "
                                 "local-action counts it weights)")
            check_local_behaviour(meta["local_behaviour"], check_spaces(meta["spaces"]))
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


_ASCII_SPACE = " \t\r\n\f\v"


def _parse_fast_or_explain(body: str, text: str, header: list[str], wanted: list[str],
                           src: Path) -> dict[str, NDArray[Any]]:
    try:
        return _parse_fast(body, header, wanted)
    except (ValueError, UserWarning) as exc:
        _parse_slow(text, header, wanted, src)
        raise ValueError(f"{src}: could not parse the data ({exc})") from None


def _parse_slow(text: str, header: list[str], wanted: list[str],
                src: Path) -> dict[str, NDArray[Any]]:
    """Parse the CSV with Python's reader: raise a precise ``ValueError`` at its first defect
    (field count, or the first bad cell with its row and line), else return the columns.

    Used to explain what the fast reader refused, and for data that is not pure ASCII:
    NumPy's C reader (2.4) can crash the interpreter on some non-ASCII cells, e.g. ``+`` or a
    space followed by a character beyond U+00FF."""
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    i = 0
    cols = {name: header.index(name) for name in wanted}
    values: dict[str, list[str]] = {name: [] for name in wanted}
    for row in reader:
        if not row:  # an empty line (both readers skip it)
            continue
        where = f"row {i} (line {reader.line_num})"
        if len(row) != len(header):
            raise ValueError(f"{src}: {where} has {len(row)} fields: expected {len(header)}")
        for name, j in cols.items():
            kind = "f" if name == "r" else "i"
            v = row[j].strip(_ASCII_SPACE)
            if _bad_cell(v, kind):
                what = "a number" if kind == "f" else "an integer"
                raise ValueError(f"{src}: column {name!r}, {where}: value {row[j]!r}: expected "
                                 f"{what}")
            values[name].append(v)
        i += 1
    out: dict[str, NDArray[Any]] = {}
    for name, vs in values.items():
        if name == "r":
            out[name] = np.array([float(v) for v in vs], dtype=np.float64)
            continue
        ints = [int(v) for v in vs]
        if any(not -2**63 <= x < 2**63 for x in ints):
            raise ValueError(f"{src}: column {name!r}: a value outside the 64-bit integer range")
        out[name] = np.array(ints, dtype=np.int64)
    return out


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


def _check_game(meta: dict[str, Any], sp: dict[str, int], csv_path: Path,
                game: TabularGame | dict[str, int], strict: bool) -> None:
    """The log's spaces (and, with ``strict``, its game fingerprint) against ``game``."""
    g_sp = game.spaces if isinstance(game, TabularGame) else check_spaces(game)
    mine = {key: sp[key] for key in SPACE_KEYS}
    theirs = {key: g_sp[key] for key in SPACE_KEYS}
    if "A_l" in sp and g_sp.get("A_l") not in (None, -1):
        mine["A_l"], theirs["A_l"] = sp["A_l"], g_sp["A_l"]
    if mine != theirs:
        raise ValueError(f"{csv_path}: log recorded for spaces {mine}, but the game has "
                         f"{theirs}")
    if isinstance(game, TabularGame):
        check_recorded_game(meta.get("game"), game, str(csv_path), "log recorded on", strict)


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
        summing to ``k``, NaN / infinite rewards, a duplicate ``(episode, t)``, local-action
        counts ``N_x_a`` (when declared) not summing to ``n`` or below the sample, a malformed
        ``local_behaviour``, metadata
        that is malformed or does not match the CSV (``rows``, ``sha256``, ``columns``) or
        the given ``game`` / ``k``. Nothing is executed: JSON and CSV are parsed as data.
    """
    meta, csv_path = read_metadata(path)
    sp = check_spaces(meta["spaces"])
    kk = int(meta["k"])
    if k is not None and kk != check_int("k", k, 1, INT64_MAX):
        raise ValueError(f"{csv_path}: metadata k = {kk}, but k = {k} was requested")
    if game is not None:
        _check_game(meta, sp, csv_path, game, strict)
    d = sp["S_l"]
    local = "local_actions" in meta
    n_local = d * sp["A_l"] if local else 0
    if "rows" in meta:  # the declared size, checked before reading anything
        _check_cells(csv_path, int(meta["rows"]), 2 * d + 6 + n_local, "the metadata declares")
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
    expected = columns(d) + (local_columns(d, sp["A_l"]) if local else [])
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
    if unknown and not local and all(re.fullmatch(r"N_[0-9]+_[0-9]+", c) for c in unknown):
        raise ValueError(f"{csv_path}: column(s) {_short(unknown)} look like local-action "
                         "counts: declare them with \"local_actions\": \"population\" (and "
                         "spaces.A_l, n) in the sidecar")
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
    if not body.isascii():  # see _parse_slow: NumPy's reader is not safe on such text
        cols = _parse_slow(text, header, expected, csv_path)  # checks the field counts too
    else:
        if any(f != len(header) for f in n_fields):  # NumPy's reader ignores surplus fields
            _parse_slow(text, header, expected, csv_path)
        cols = _parse_fast_or_explain(body, text, header, expected, csv_path)
    if "rows" in meta and int(meta["rows"]) != cols["r"].shape[0]:
        raise ValueError(f"{csv_path}: {cols['r'].shape[0]} data rows, but the metadata says "
                         f"rows = {meta['rows']}")
    info: dict[str, Any] = {key: meta[key] for key in (
        "behaviour", "local_policy", "reward", "game", "next_histogram", "episodes", "horizon",
        "seed") if key in meta}
    info["source"] = str(csv_path)
    mu = (check_local_behaviour(meta["local_behaviour"], sp) if "local_behaviour" in meta
          else None)
    try:
        return _build(cols, sp, kk, float(meta["gamma"]),
                      None if meta.get("n") is None else int(meta["n"]), info, _file_rows(text),
                      mu)
    except ValueError as exc:
        raise ValueError(f"{csv_path}: {exc}") from None


__all__ = [
    "LOCAL_ACTIONS",
    "LOCAL_BEHAVIOURS",
    "LOG_FORMAT",
    "LOG_VERSION",
    "OfflineDataset",
    "check_local_behaviour",
    "columns",
    "local_columns",
    "load_dataset",
    "read_metadata",
]
