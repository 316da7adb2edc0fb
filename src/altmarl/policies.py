"""Policies (SPEC 2) and their pickle-free, versioned file format.

* :class:`LocalPolicy` — the shared local policy ``pi_l[s_l, s_g, a_l]``, a stochastic table.
* :class:`GlobalPolicy` — ``pi_g(s_g, h) -> a_g`` on histograms ``h in H_k`` of a
  ``k``-subsample (mean-field parameterization), stored as an action table of shape
  ``(|S_g|, |H_k|)`` indexed by the combinatorial rank of :mod:`altmarl.histogram`,
  optionally with the ``Q`` table it is greedy for.

File format: a ``.npz`` archive written with NumPy, read with ``allow_pickle=False``. It
holds the arrays (``table`` for a local policy; ``actions`` and optionally ``q`` for a
global policy) and ``meta``, a 0-d unicode array holding JSON: ``{"format":
"altmarl.local_policy" | "altmarl.global_policy", "version": ..., "spaces": {"S_g", "A_g",
"S_l", "A_l"}, "k": ..., "game": {"name", "fingerprint"}, "info": {...}}``. Local policies
are version 1. Global policies are version 2, which adds ``"sampling"``: the subsampling
scheme the policy was made for (SPEC 12; :meth:`altmarl.sampling.Uniform.to_json` and its
siblings: ``{"scheme": "uniform", "k": k}``, ``{"scheme": "stratified", "ks": [...],
"types": [...]}``, ``{"scheme": "weighted", "w": [...], "k": k}``); version-1 global files
load as ``Uniform(k)``. Loading checks the format, the version, array shapes and dtypes,
the scheme (its total size is ``k``; its observation count is the number of columns) and,
when a game is given, its spaces (always), the scheme against the game (types, weights)
and its fingerprint (``strict=True``); a file made for another scheme than the caller's
``sampling`` is rejected.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import (
    as_float_array,
    as_int_array,
    check_int,
    check_k,
    check_stochastic,
    first_bad_index,
)
from altmarl.display import html_table
from altmarl.game import TabularGame, check_recorded_game, game_record
from altmarl.generative.tabular import alias_tables, sample_alias
from altmarl.histogram import (
    check_table_size,
    log_num_histograms,
    num_histograms,
)
from altmarl.io import check_members, load_npz, npz_bytes, save_npz, to_jsonable
from altmarl.limits import INT64_MAX, MAX_HISTOGRAM_ENTRIES, MAX_SPACE
from altmarl.sampling import Scheme, Stratified, Uniform, from_json, type_groups

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

FORMAT_VERSION = 1
#: version of global policy files (2: the sampling scheme is in ``meta``)
GLOBAL_FORMAT_VERSION = 2
_LOCAL_FORMAT = "altmarl.local_policy"
_GLOBAL_FORMAT = "altmarl.global_policy"


# ---------------------------------------------------------------------------
# file helpers
# ---------------------------------------------------------------------------


def _load_npz(path: str | os.PathLike[str], expected_format: str,
              versions: tuple[int, ...] = (FORMAT_VERSION,),
              members: tuple[str, ...] | None = None
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and check a policy file's container and ``meta`` (format, version, spaces,
    ``game`` and ``info`` objects): the file is untrusted, so every entry is type-checked
    before it is used (``ValueError`` naming the file and the entry)."""
    p = Path(path)
    meta, arrays = load_npz(p, "altmarl policy file")
    fmt = meta.get("format")
    if fmt != expected_format:
        raise ValueError(f"{p}: format = {_short(fmt)}, expected {expected_format!r}")
    version = meta.get("version")
    if type(version) is not int or version not in versions:
        shown = " or ".join(str(v) for v in versions)
        raise ValueError(
            f"{p}: format version {_short(version)} is not supported (this altmarl reads "
            f"version {shown}, an integer)"
        )
    spaces = meta.get("spaces")
    if not isinstance(spaces, dict) or set(spaces) != {"S_g", "A_g", "S_l", "A_l"}:
        raise ValueError(f"{p}: meta.spaces must give S_g, A_g, S_l, A_l")
    for key, val in spaces.items():
        unknown_ok = key in ("A_g", "A_l") and type(val) is int and val == -1
        if not unknown_ok:
            check_int(f"{p}: meta.spaces.{key}", val, 1, MAX_SPACE)
    for key in ("game", "info"):
        if not isinstance(meta.get(key, {}), dict):
            raise ValueError(f"{p}: meta.{key} must be a JSON object, got {_short(meta[key])}")
    if members is not None:
        check_members(p, arrays, members, "altmarl policy file")
    return meta, arrays


def _short(v: Any) -> str:
    """``repr(v)``, at most 80 characters (file contents are quoted in messages)."""
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _check_game(p: str | os.PathLike[str], meta: dict[str, Any], game: TabularGame | None, strict: bool) -> None:
    if game is None:
        return
    if meta["spaces"] != game.spaces:
        raise ValueError(
            f"{p}: policy made for spaces {meta['spaces']}, but game {game.name!r} has {game.spaces}"
        )
    check_recorded_game(meta.get("game"), game, str(p), "policy made for", strict)


def _game_meta(game: TabularGame | None) -> dict[str, Any]:
    return {} if game is None else game_record(game)


# ---------------------------------------------------------------------------
# local policy
# ---------------------------------------------------------------------------


class LocalPolicy:
    """Shared local policy ``pi_l[s_l, s_g, a_l]`` (SPEC 2); rows sum to 1."""

    def __init__(
        self,
        table: ArrayLike,
        info: dict[str, Any] | None = None,
        game: TabularGame | None = None,
    ) -> None:
        t = np.array(table, dtype=np.float64)
        if t.ndim != 3:
            raise ValueError(f"pi_l.table: expected shape (|S_l|, |S_g|, |A_l|), got {t.shape}")
        if game is not None and t.shape != (game.n_sl, game.n_sg, game.n_al):
            raise ValueError(
                f"pi_l.table: expected shape (|S_l|, |S_g|, |A_l|) = "
                f"{(game.n_sl, game.n_sg, game.n_al)}, got {t.shape}"
            )
        check_stochastic("pi_l.table", t)
        t.setflags(write=False)
        self.table: FloatArray = t
        self.info: dict[str, Any] = dict(info or {})
        self._game_meta = _game_meta(game)
        self._alias: tuple[FloatArray, IntArray] | None = None
        self._greedy: IntArray | None = None
        self._deterministic: bool | None = None

    @property
    def spaces(self) -> dict[str, int]:
        n_sl, n_sg, n_al = self.table.shape
        return {"S_g": n_sg, "A_g": -1, "S_l": n_sl, "A_l": n_al}

    @classmethod
    def uniform(cls, game: TabularGame) -> LocalPolicy:
        """The uniform policy (SPEC 6's default ``pi_l^0``)."""
        t = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
        return cls(t, {"kind": "uniform"}, game)

    @classmethod
    def deterministic(cls, game: TabularGame, actions: ArrayLike) -> LocalPolicy:
        """One-hot table from an action table ``actions[s_l, s_g]``."""
        a = np.asarray(actions, dtype=np.int64)
        if a.shape != (game.n_sl, game.n_sg):
            raise ValueError(f"actions: expected shape (|S_l|, |S_g|) = {(game.n_sl, game.n_sg)}, got {a.shape}")
        if a.min() < 0 or a.max() >= game.n_al:
            raise ValueError(f"actions: expected values in 0..{game.n_al - 1}")
        return cls(one_hot(a, game.n_al), {"kind": "deterministic"}, game)

    def act(self, s_l: ArrayLike, s_g: ArrayLike, rng: np.random.Generator) -> IntArray:
        """Actions of every agent, ``a_i ~ pi_l(. | s_i, s_g)`` (the local-policy protocol
        of :mod:`altmarl.generative.policies`): ``s_l`` ``(R, m)``, ``s_g`` ``(R,)`` ints,
        result ``(R, m)``; alias sampling, one uniform per agent. A deterministic table
        draws no random numbers."""
        sl = np.asarray(s_l, dtype=np.int64)
        sg = np.asarray(s_g, dtype=np.int64).reshape(sl.shape[0], *([1] * (sl.ndim - 1)))
        if self._deterministic is None:
            self._deterministic = self.is_deterministic()
            self._greedy = self.greedy_actions()
        if self._deterministic:
            assert self._greedy is not None
            return np.asarray(self._greedy[sl, sg], dtype=np.int64)
        if self._alias is None:
            n_sl, n_sg, n_al = self.table.shape
            self._alias = alias_tables(self.table.reshape(n_sl * n_sg, n_al))
        prob, alias = self._alias
        row = sl * self.table.shape[1]
        row += sg
        return sample_alias(prob, alias, row, rng)

    def greedy_actions(self) -> IntArray:
        """``argmax_a pi_l[s_l, s_g, a]`` (first maximum)."""
        return np.asarray(self.table.argmax(axis=-1), dtype=np.int64)

    def is_deterministic(self) -> bool:
        return bool(np.all((self.table == 0) | (self.table == 1)))

    def _contents(self, game: TabularGame | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(meta, arrays)`` of the policy file (format version 1, module docstring)."""
        n_sl, n_sg, n_al = self.table.shape
        meta = {
            "format": _LOCAL_FORMAT,
            "version": FORMAT_VERSION,
            "spaces": {"S_g": n_sg, "A_g": game.n_ag if game else -1, "S_l": n_sl, "A_l": n_al},
            "game": _game_meta(game) or self._game_meta,
            "info": to_jsonable(self.info),
        }
        return meta, {"table": self.table}

    def save(self, path: str | os.PathLike[str], game: TabularGame | None = None) -> Path:
        """Write the policy (format version 1, see module docstring); returns the path."""
        return save_npz(path, *self._contents(game))

    def to_bytes(self, game: TabularGame | None = None) -> bytes:
        """The bytes :meth:`save` writes (e.g. to store the file elsewhere, in one write)."""
        return npz_bytes(*self._contents(game))

    @classmethod
    def load(cls, path: str | os.PathLike[str], game: TabularGame | None = None, strict: bool = True) -> LocalPolicy:
        """Read a local policy file; with ``game``, reject a file made for another game."""
        meta, arrays = _load_npz(path, _LOCAL_FORMAT, members=("table",))
        if "table" not in arrays:
            raise ValueError(f"{path}: local policy file has no 'table' array")
        table = arrays["table"]
        if table.dtype.kind != "f":
            raise ValueError(f"{path}: 'table' must be floating point, got {table.dtype}")
        sp = meta["spaces"]
        if table.shape != (sp["S_l"], sp["S_g"], sp["A_l"]):
            raise ValueError(f"{path}: 'table' has shape {table.shape}, meta.spaces says {sp}")
        if game is not None:
            sp_cmp = dict(sp)
            if sp_cmp.get("A_g") in (-1, None):
                sp_cmp["A_g"] = game.n_ag
            _check_game(path, {**meta, "spaces": sp_cmp}, game, strict)
        try:
            pol = cls(table, meta.get("info", {}))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        pol._game_meta = meta.get("game", {})
        return pol

    def __repr__(self) -> str:
        n_sl, n_sg, n_al = self.table.shape
        return f"LocalPolicy(|S_l|={n_sl}, |S_g|={n_sg}, |A_l|={n_al}, kind={self.info.get('kind')!r})"

    def _repr_html_(self) -> str:
        """Notebook display: spaces, kind, the game it was made for and, for small tables,
        the most likely action with its probability for every ``(s_l, s_g)``."""
        n_sl, n_sg, n_al = self.table.shape
        rows: list[tuple[str, Any]] = [
            ("|S_l| x |S_g| x |A_l|", f"{n_sl} x {n_sg} x {n_al}"),
            ("kind", self.info.get("kind")),
            ("deterministic", self.is_deterministic()),
            ("game", self._game_meta.get("name")),
        ]
        if n_sl * n_sg > 16 * 16:
            return html_table("LocalPolicy pi_l", rows)
        best = self.table.argmax(axis=2)
        prob = np.take_along_axis(self.table, best[..., None], axis=2)[..., 0]
        records = [[s_l, *(f"{best[s_l, s_g]} ({prob[s_l, s_g]:.2f})" for s_g in range(n_sg))]
                   for s_l in range(n_sl)]
        return html_table("LocalPolicy pi_l", rows,
                          columns=["s_l \\ s_g", *map(str, range(n_sg))], records=records,
                          max_rows=16, note="cells: the most likely a_l (its probability)")


# ---------------------------------------------------------------------------
# global policy
# ---------------------------------------------------------------------------


class GlobalPolicy:
    """Global policy ``pi_g(s_g, h) -> a_g`` on the histograms ``h`` of a ``k``-sample (SPEC 2,
    mean-field parameterization; SPEC 12 for the sampling schemes).

    Attributes
    ----------
    k : total subsample size
    sampling : the scheme the policy was made for (:mod:`altmarl.sampling`; default
        ``Uniform(k)``); its observations index the columns and it is the scheme
        :func:`altmarl.evaluate` draws with unless told otherwise
    actions : ``(|S_g|, |O|)`` int table, ``actions[s_g, sampling.index(h)]`` (``|O| = |H_k|``
        for ``Uniform`` / ``Weighted``; the product of per-type counts for ``Stratified``)
    q : optional ``(|S_g|, |O|, |A_g|)`` table the policy is greedy for
    info : dict of learner diagnostics (iterations, residual, samples, wall time, ...)
    """

    def __init__(
        self,
        k: int,
        actions: ArrayLike,
        n_ag: int,
        q: ArrayLike | None = None,
        info: dict[str, Any] | None = None,
        game: TabularGame | None = None,
        sampling: Scheme | None = None,
    ) -> None:
        a = np.array(as_int_array("pi_g.actions", actions, 2), dtype=np.int64)
        self.k = check_int("pi_g.k", k, 1, INT64_MAX)
        self.n_ag = check_int("pi_g.n_ag", n_ag, 1, MAX_SPACE)
        if a.size and (a.min() < 0 or a.max() >= self.n_ag):
            raise ValueError(f"pi_g.actions: expected values in 0..{self.n_ag - 1}")
        self.n_sg = int(a.shape[0])
        scheme: Scheme = Uniform(self.k) if sampling is None else sampling
        if scheme.k != self.k:
            raise ValueError(f"pi_g.sampling = {scheme.describe()}: its total sample size "
                             f"{scheme.k} is not pi_g.k = {self.k}")
        if game is not None:
            scheme = scheme.bind(game)
        if isinstance(scheme, Stratified) and scheme.types is None:
            raise ValueError("pi_g.sampling: a Stratified scheme needs the game's types "
                             "(pass game=, or sampling=scheme.bind(game))")
        self.sampling: Scheme = scheme
        if isinstance(scheme, Stratified):
            assert scheme.types is not None
            self.n_sl = len(scheme.types)
            cols = scheme.num_observations(self.n_sl)
            if a.shape[1] != cols:
                raise ValueError(f"pi_g.actions: {a.shape[1]} columns, expected {cols} "
                                 f"observations of {scheme.describe()}")
        else:
            # infer |S_l| from |H_k| = C(k + d - 1, d - 1)
            self.n_sl = _infer_d(self.k, int(a.shape[1]))
            w = getattr(scheme, "w", None)
            if w is not None and len(w) != self.n_sl:
                raise ValueError(f"pi_g.sampling: {len(w)} weights for |S_l| = {self.n_sl}")
        if game is not None and (self.n_sg, self.n_sl, self.n_ag) != (game.n_sg, game.n_sl, game.n_ag):
            raise ValueError(
                f"pi_g: table for |S_g|={self.n_sg}, |S_l|={self.n_sl}, |A_g|={self.n_ag} does not "
                f"match game {game.name!r} ({game.spaces})"
            )
        a.setflags(write=False)
        self.actions: IntArray = a
        self.q: FloatArray | None = None
        if q is not None:
            qq = as_float_array("pi_g.q", q, 3)
            if qq.shape != (self.n_sg, a.shape[1], self.n_ag):
                raise ValueError(f"pi_g.q: expected shape {(self.n_sg, a.shape[1], self.n_ag)}, got {qq.shape}")
            _check_q(qq, a)
            self.q = qq
        self.info: dict[str, Any] = dict(info or {})
        self._game_meta = _game_meta(game)
        self.n_al: int | None = game.n_al if game is not None else None

    # --- construction ---------------------------------------------------------
    @classmethod
    def from_q(cls, k: int, q: ArrayLike, info: dict[str, Any] | None = None,
               game: TabularGame | None = None, tie_seed: int | None = None,
               sampling: Scheme | None = None) -> GlobalPolicy:
        """Greedy policy of a ``Q`` table, ``argmax_a Q(s_g, h, a)``.

        Ties (within ``1e-12`` relative) are broken by the lowest action index, or, with
        ``tie_seed``, uniformly at random among the maximizers with that seed.
        """
        qq = np.asarray(q, dtype=np.float64)
        return cls(k, greedy(qq, tie_seed), qq.shape[-1], q=qq, info=info, game=game,
                   sampling=sampling)

    @classmethod
    def from_function(cls, game: TabularGame, k: int, fn: Callable[[IntArray, IntArray], ArrayLike],
                      info: dict[str, Any] | None = None,
                      sampling: Scheme | None = None) -> GlobalPolicy:
        """Tabulate ``fn(s_g, hists) -> a_g`` (vectorized over all ``(s_g, h)``, ``h`` the
        observations of ``sampling``, default ``Uniform(k)``)."""
        check_k(k, game.n)
        scheme = _scheme_for(game, k, sampling)
        if isinstance(scheme, Stratified):
            size = scheme.num_observations(game.n_sl)
            if size * game.n_sg * game.n_sl > MAX_HISTOGRAM_ENTRIES:
                raise ValueError(f"GlobalPolicy.from_function: {scheme.describe()} has {size} "
                                 "observations, too many to tabulate (altmarl.limits)")
        else:
            check_table_size("GlobalPolicy.from_function", k, game.n_sl, game.n_sg * game.n_sl,
                             MAX_HISTOGRAM_ENTRIES)
        hs = scheme.observations(game.n_sl)
        sg = np.repeat(np.arange(game.n_sg), hs.shape[0])
        hh = np.tile(hs, (game.n_sg, 1))
        a = np.asarray(fn(sg, hh), dtype=np.int64).reshape(game.n_sg, hs.shape[0])
        return cls(k, a, game.n_ag, info=info, game=game, sampling=scheme)

    @classmethod
    def constant(cls, game: TabularGame, k: int, action: int = 0,
                 sampling: Scheme | None = None) -> GlobalPolicy:
        """Always play ``action`` (refused when the table ``|S_g| x |O|`` would exceed
        ``limits.MAX_TABLE_ENTRIES``)."""
        k = check_k(k, game.n)
        action = check_int("action", action, 0, game.n_ag - 1)
        scheme = _scheme_for(game, k, sampling)
        if isinstance(scheme, Stratified):
            size = scheme.num_observations(game.n_sl)
            check_int("GlobalPolicy.constant: table entries", size * game.n_sg, 1,
                      MAX_HISTOGRAM_ENTRIES)
        else:
            size = check_table_size("GlobalPolicy.constant", k, game.n_sl, game.n_sg)
        a = np.full((game.n_sg, size), action, dtype=np.int64)
        return cls(k, a, game.n_ag, info={"kind": f"constant({action})"}, game=game,
                   sampling=scheme)

    @classmethod
    def sample_mode(cls, game: TabularGame, k: int,
                    sampling: Scheme | None = None) -> GlobalPolicy:
        """Play the most populated state of the sample (requires ``|A_g| = |S_l|``):
        the warehouse heuristic "go where most sampled robots are"."""
        if game.n_ag != game.n_sl:
            raise ValueError("sample_mode: needs |A_g| == |S_l|")
        return cls.from_function(game, k, lambda sg, h: h.argmax(axis=1),
                                 info={"kind": "sample-mode"}, sampling=sampling)

    # --- acting ---------------------------------------------------------------
    def act(self, s_g: ArrayLike, hist: ArrayLike) -> Any:
        """``a_g = pi_g(s_g, h)``; vectorized over leading axes of ``s_g`` / ``hist``. ``h`` is
        a count vector over ``S_l`` from the policy's scheme (for ``Stratified``: per-type
        sums ``k_c``)."""
        h = np.asarray(hist, dtype=np.int64)
        if h.shape[-1] != self.n_sl:
            raise ValueError(f"hist: expected last axis |S_l| = {self.n_sl}, got {h.shape}")
        self.sampling.check_histograms(h)
        out = self.actions[np.asarray(s_g, dtype=np.int64), self.sampling.index(h)]
        return int(out) if np.ndim(out) == 0 else out

    def act_ranked(self, s_g: IntArray, h_rank: IntArray) -> IntArray:
        """Fast path: actions for already indexed histograms (``sampling.index``; no checks)."""
        return self.actions[s_g, h_rank]

    # --- files ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], game: TabularGame | None = None,
             include_q: bool = True) -> Path:
        """Write the policy (format version 2 with its sampling scheme, see module
        docstring); returns the path."""
        return save_npz(path, *self._contents(game, include_q))

    def to_bytes(self, game: TabularGame | None = None, include_q: bool = True) -> bytes:
        """The bytes :meth:`save` writes (e.g. to store the file elsewhere, in one write)."""
        return npz_bytes(*self._contents(game, include_q))

    def _contents(self, game: TabularGame | None,
                  include_q: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(meta, arrays)`` of the policy file (format version 2, module docstring)."""
        meta = {
            "format": _GLOBAL_FORMAT,
            "version": GLOBAL_FORMAT_VERSION,
            "spaces": {"S_g": self.n_sg, "A_g": self.n_ag, "S_l": self.n_sl,
                       "A_l": game.n_al if game else (self.n_al if self.n_al is not None else -1)},
            "k": self.k,
            "sampling": self.sampling.to_json(),
            "game": _game_meta(game) or self._game_meta,
            "info": to_jsonable(self.info),
        }
        arrays: dict[str, Any] = {"actions": self.actions}
        if include_q and self.q is not None:
            arrays["q"] = self.q
        return meta, arrays

    @classmethod
    def load(cls, path: str | os.PathLike[str], game: TabularGame | None = None, strict: bool = True,
             sampling: Scheme | None = None) -> GlobalPolicy:
        """Read a global policy file; with ``game``, reject a file made for another game (or
        for a scheme that does not fit it); with ``sampling``, reject a file made for
        another scheme. Version-1 files (no scheme) are ``Uniform(k)`` policies."""
        meta, arrays = _load_npz(path, _GLOBAL_FORMAT, versions=(1, GLOBAL_FORMAT_VERSION),
                                 members=("actions", "q"))
        if "actions" not in arrays:
            raise ValueError(f"{path}: global policy file has no 'actions' array")
        acts = arrays["actions"]
        if acts.dtype.kind not in "iu":
            raise ValueError(f"{path}: 'actions' must be integers, got {acts.dtype}")
        sp = meta["spaces"]
        k = check_int(f"{path}: meta.k", meta.get("k"), 1, INT64_MAX)
        scheme = _file_scheme(path, meta, k, sp["S_l"])
        log_cols = _log_num_observations(scheme, k, sp["S_l"])
        if acts.ndim != 2 or not within_log(log_cols, acts.shape[1]):
            raise ValueError(f"{path}: 'actions' has shape {acts.shape}, which cannot be "
                             f"(|S_g|, |O|) = ({sp['S_g']}, observations of "
                             f"{scheme.describe()} over |S_l| = {sp['S_l']}) for meta.k = {k}")
        expected = (sp["S_g"], scheme.num_observations(sp["S_l"]))
        if acts.shape != expected:
            raise ValueError(f"{path}: 'actions' has shape {acts.shape}, expected {expected} for "
                             f"k={k}, {scheme.describe()}, spaces {sp}")
        if game is not None:
            sp_cmp = dict(sp)
            if sp_cmp.get("A_l") in (-1, None):
                sp_cmp["A_l"] = game.n_al
            _check_game(path, {**meta, "spaces": sp_cmp}, game, strict)
            try:
                scheme = scheme.bind(game)
            except ValueError as exc:
                raise ValueError(f"{path}: the policy's scheme does not fit game "
                                 f"{game.name!r}: {exc}") from None
        if sampling is not None:
            want = sampling.bind(game) if game is not None else sampling
            if want != scheme and not (isinstance(want, Stratified) and want.types is None
                                       and isinstance(scheme, Stratified)
                                       and want.ks == scheme.ks):
                raise ValueError(f"{path}: policy made for sampling {scheme.describe()}, "
                                 f"expected {want.describe()}")
        q = arrays.get("q")
        if q is not None and q.dtype.kind != "f":
            raise ValueError(f"{path}: 'q' must be floating point, got {q.dtype}")
        if sp["A_g"] == -1:
            raise ValueError(f"{path}: meta.spaces.A_g = -1: a global policy needs |A_g|")
        try:
            pol = cls(k, acts, sp["A_g"], q=q, info=meta.get("info", {}), sampling=scheme)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        pol._game_meta = meta.get("game", {})
        if sp.get("A_l", -1) not in (-1, None):
            pol.n_al = int(sp["A_l"])
        return pol

    def __repr__(self) -> str:
        return (f"GlobalPolicy(k={self.k}, |S_g|={self.n_sg}, |O|={self.actions.shape[1]}, "
                f"|A_g|={self.n_ag}, sampling={self.sampling.describe()}, "
                f"kind={self.info.get('kind', self.info.get('method'))!r})")

    def _repr_html_(self) -> str:
        """Notebook display: ``k``, the sampling scheme, the table's size, the learner's
        diagnostics and, for small games, how often each ``s_g`` plays each ``a_g`` over
        the observations."""
        info = self.info
        rows: list[tuple[str, Any]] = [
            ("k", self.k),
            ("sampling", self.sampling.describe()),
            ("|S_g| x |O| x |A_g|", f"{self.n_sg} x {self.actions.shape[1]} x {self.n_ag}"),
            ("kind", info.get("kind", info.get("method"))),
            ("Q table", self.q is not None),
            ("game", self._game_meta.get("name")),
        ]
        rows += [(key, info[key]) for key in ("iterations", "residual", "converged",
                                              "samples", "wall_seconds") if key in info]
        if self.n_sg > 16 or self.n_ag > 12:
            return html_table("GlobalPolicy pi_g", rows)
        counts = np.stack([np.bincount(row, minlength=self.n_ag) for row in self.actions])
        share = counts / max(1, self.actions.shape[1])
        records = [[s_g, *(f"{x:.0%}" for x in share[s_g])] for s_g in range(self.n_sg)]
        return html_table("GlobalPolicy pi_g", rows,
                          columns=["s_g", *(f"a_g={a}" for a in range(self.n_ag))],
                          records=records, max_rows=16,
                          note="share of the observations h on which each a_g is played")


def _scheme_for(game: TabularGame, k: int, sampling: Scheme | None) -> Scheme:
    """``sampling`` (default ``Uniform(k)``) bound to ``game``, with total size ``k``."""
    scheme: Scheme = Uniform(k) if sampling is None else sampling
    if scheme.k != k:
        raise ValueError(f"k = {k}: disagrees with sampling = {scheme.describe()}")
    return scheme.bind(game)


def _file_scheme(path: str | os.PathLike[str], meta: dict[str, Any], k: int, d: int) -> Scheme:
    """The scheme of a policy file's ``meta`` (version 1: ``Uniform(k)``), checked against
    ``meta.k`` and ``|S_l|``."""
    if meta.get("version") == 1:
        if "sampling" in meta:
            raise ValueError(f"{path}: meta.sampling in a version-1 file")
        return Uniform(k)
    if "sampling" not in meta:
        raise ValueError(f"{path}: version-2 global policy file without meta.sampling")
    raw = meta["sampling"]
    if isinstance(raw, dict):
        for key in ("types", "w"):
            v = raw.get(key)
            if isinstance(v, list) and len(v) != d:
                raise ValueError(f"{path}: meta.sampling.{key} has {len(v)} entries, "
                                 f"expected |S_l| = {d}")
        ks = raw.get("ks")
        if isinstance(ks, list) and len(ks) > d:
            raise ValueError(f"{path}: meta.sampling.ks has {len(ks)} entries, more than "
                             f"|S_l| = {d} types")
    try:
        scheme = from_json(raw, "meta.sampling")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if scheme.k != k:
        raise ValueError(f"{path}: meta.sampling = {scheme.describe()} has total sample size "
                         f"{scheme.k}, but meta.k = {k}")
    if isinstance(scheme, Stratified) and scheme.types is None:
        raise ValueError(f"{path}: meta.sampling.types: a stratified policy file needs the "
                         "types of its local states")
    return scheme


def _log_num_observations(scheme: Scheme, k: int, d: int) -> float:
    """``log |O|`` of a scheme by logarithms (bounded work for untrusted files)."""
    if isinstance(scheme, Stratified):
        assert scheme.types is not None
        return sum(log_num_histograms(kc, g.size)
                   for kc, g in zip(scheme.ks, type_groups(scheme.types), strict=True))
    return log_num_histograms(k, d)


def one_hot(actions: ArrayLike, n_actions: int) -> FloatArray:
    """The deterministic policy table of an action table: ``t[..., a] = 1`` where
    ``a = actions[...]``, shape ``actions.shape + (n_actions,)``."""
    a = np.asarray(actions, dtype=np.int64)
    t = np.zeros((*a.shape, n_actions))
    np.put_along_axis(t, a[..., None], 1.0, axis=-1)
    return t


def within_log(log_size: float, size: int) -> bool:
    """Whether a count known by its logarithm can equal ``size`` (rounding tolerance)."""
    import math

    return log_size <= math.log(max(size, 1)) + 1e-9


def _check_q(q: FloatArray, actions: IntArray) -> None:
    """``q`` is finite and ``actions`` is greedy for it (within the tie tolerance of
    :func:`greedy`): a policy file cannot carry a ``Q`` table that contradicts its actions."""
    if q.size == 0:
        return
    fast = _kernels_for(q)
    if fast is not None and fast.greedy_holds(q, actions, TIE_RTOL):
        return  # one pass, no temporaries; an offence is found and reported below
    finite = np.isfinite(q)
    if not finite.all():
        i = first_bad_index(~finite)
        raise ValueError(f"pi_g.q{list(i)} = {q[i]}: expected a finite number")
    qmax = q.max(axis=-1)
    chosen = np.take_along_axis(q, actions[..., None], axis=-1)[..., 0]
    bad = chosen < qmax - TIE_RTOL * np.maximum(1.0, np.abs(qmax))
    if bad.any():
        i = first_bad_index(bad)
        raise ValueError(f"pi_g.actions{list(i)} = {actions[i]} is not greedy for pi_g.q "
                         f"(q = {chosen[i]!r} < max {qmax[i]!r})")


#: the tie tolerance of :func:`greedy`: actions within ``TIE_RTOL * max(1, |max Q|)`` of
#: the maximum are tied
TIE_RTOL = 1e-12
#: tables from this many entries on take the one-pass kernels (:func:`greedy_kernels`) once
#: they are loaded in the process (G-LEARN's ``warm_up`` loads them), from
#: :data:`GREEDY_MIN_COLD` on in any case (a first load from Numba's cache costs a few
#: milliseconds, a first compilation about half a second)
GREEDY_MIN = 1 << 14
GREEDY_MIN_COLD = 1 << 20
#: uniforms per block of :func:`greedy`'s seeded tie-break on large tables (2 MB)
NOISE_BLOCK = 1 << 18


@cache
def greedy_kernels() -> Any:
    """:mod:`altmarl.policy_kernels` (the greedy actions and the ``Q`` check in one pass)
    after a self-check that it gives the NumPy rule's actions, lowest and seeded ties, on
    a table with ties, NaN and infinities; ``None`` when Numba or the check fails (then
    the NumPy rule is used: the same actions)."""
    try:
        from altmarl import policy_kernels as pk

        rng = np.random.default_rng(20261207)
        q = np.round(rng.normal(size=(64, 5)), 1)
        q[3, 2], q[5, 0], q[7, 4], q[9, :] = np.nan, np.inf, -np.inf, -np.inf
        q[11] = [1.0, 1.0 + 1e-13, 1.0 + 3e-12, 0.5, 1.0]
        raw = np.random.default_rng(7).bit_generator.random_raw(q.size)
        ok = (np.array_equal(pk.greedy_first(q, TIE_RTOL), _numpy_greedy(q, None))
              and np.array_equal(pk.greedy_first(q, TIE_RTOL, raw), _numpy_greedy(q, 7))
              and not pk.greedy_holds(q, _numpy_greedy(q, None), TIE_RTOL)
              and pk.greedy_holds(q[12:], _numpy_greedy(q[12:], None), TIE_RTOL))
        return pk if ok else None  # pragma: no cover - (None: a NumPy whose rule differs)
    except Exception:  # pragma: no cover - without Numba
        return None


def _kernels_for(q: FloatArray) -> Any:
    """:func:`greedy_kernels` for a float64 table of this size with a non-empty action axis
    (:data:`GREEDY_MIN`, :data:`GREEDY_MIN_COLD`), else ``None``."""
    if q.ndim == 0 or q.shape[-1] == 0 or q.dtype != np.float64 or q.size < GREEDY_MIN:
        return None
    if q.size < GREEDY_MIN_COLD and greedy_kernels.cache_info().currsize == 0:
        return None
    return greedy_kernels()


def _numpy_greedy(q: FloatArray, tie_seed: int | None) -> IntArray:
    """:func:`greedy` by NumPy's whole-table operations (the rule's reference)."""
    qmax = q.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf - inf at an infinite maximum: nothing tied
        tied = q >= qmax - TIE_RTOL * np.maximum(1.0, np.abs(qmax))
    if tie_seed is None:
        return np.asarray(tied.argmax(axis=-1), dtype=np.int64)
    noise = np.random.default_rng(tie_seed).random(q.shape)
    return np.asarray(np.where(tied, noise, -1.0).argmax(axis=-1), dtype=np.int64)


def greedy(q: FloatArray, tie_seed: int | None = None) -> IntArray:
    """Greedy actions of ``q[..., a]``.

    Tie rule (documented in SPEC 4's terms): actions whose value is within
    ``TIE_RTOL * max(1, |max Q|)`` (``1e-12``) of the maximum are tied; without
    ``tie_seed`` the lowest index wins; with ``tie_seed`` one maximizer is chosen uniformly
    at random by a generator seeded with ``tie_seed`` (reproducible). Large tables take
    :func:`greedy_kernels` (the same actions).
    """
    fast = _kernels_for(q)
    if fast is None:
        return _numpy_greedy(q, tie_seed)
    if tie_seed is None:
        return np.asarray(fast.greedy_first(q, TIE_RTOL))
    bits = np.random.default_rng(tie_seed).bit_generator
    if type(bits) is not np.random.PCG64:  # the kernel makes PCG64's doubles only
        return _numpy_greedy(q, tie_seed)
    # the same noise in blocks of rows: the generator's 64-bit outputs, one per entry, which
    # the kernel turns into the doubles Generator.random makes of them
    rows = q.reshape(-1, q.shape[-1])
    out = np.empty(rows.shape[0], dtype=np.int64)
    step = max(1, NOISE_BLOCK // q.shape[-1])
    for a in range(0, rows.shape[0], step):
        b = min(rows.shape[0], a + step)
        out[a:b] = fast.greedy_first(rows[a:b], TIE_RTOL, bits.random_raw((b - a) * q.shape[-1]))
    return out.reshape(q.shape[:-1])


def _infer_d(k: int, size: int) -> int:
    # C(k + d - 1, d - 1) >= d for k >= 1, so d <= size (the loop stops at the first c > size)
    for d in range(1, max(size, 1) + 1):
        c = num_histograms(k, d)
        if c == size:
            return d
        if c > size:
            break
    raise ValueError(f"pi_g.actions: {size} columns is not C(k + d - 1, d - 1) for k = {k} and any d")


def check_local_policy(game: TabularGame, pi_l: Any, name: str = "pi_l") -> LocalPolicy:
    """``pi_l`` as a :class:`LocalPolicy` (a policy or its ``(|S_l|, |S_g|, |A_l|)`` table)
    that fits ``game``; else a ``ValueError`` naming ``name`` (SPEC 2)."""
    if isinstance(pi_l, np.ndarray):
        pi_l = LocalPolicy(pi_l)
    if not isinstance(pi_l, LocalPolicy):
        raise ValueError(f"{name}: expected an altmarl.LocalPolicy or its (|S_l|, |S_g|, |A_l|) "
                         f"table, got {type(pi_l).__name__}")
    expected = (game.n_sl, game.n_sg, game.n_al)
    if pi_l.table.shape != expected:
        raise ValueError(
            f"{name}.table: expected shape (|S_l|, |S_g|, |A_l|) = {expected} for game "
            f"{game.name!r}, got {pi_l.table.shape}"
        )
    return pi_l


def check_global_policy(game: TabularGame, pi_g: Any, name: str = "pi_g") -> GlobalPolicy:
    """``pi_g`` must be a :class:`GlobalPolicy` made for ``game``'s spaces with
    ``1 <= k <= n`` (SPEC 2); else a ``ValueError`` naming ``name``."""
    if not isinstance(pi_g, GlobalPolicy):
        raise ValueError(f"{name}: expected an altmarl.GlobalPolicy, got {type(pi_g).__name__}")
    if (pi_g.n_sg, pi_g.n_sl, pi_g.n_ag) != (game.n_sg, game.n_sl, game.n_ag):
        raise ValueError(
            f"{name}: made for |S_g|={pi_g.n_sg}, |S_l|={pi_g.n_sl}, |A_g|={pi_g.n_ag}; "
            f"game {game.name!r} has {game.spaces}"
        )
    game.check_k(pi_g.k)
    return pi_g
