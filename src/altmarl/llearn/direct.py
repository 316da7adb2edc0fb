"""Direct search (SPEC 5.3): a direct optimizer of the actual objective ``V(pi_g, pi_l)``.

Coordinate-wise policy search over local-policy tables (:func:`direct_search`: each round
tries every action in every ``(s_l, s_g)`` cell, every row move and, at a local optimum,
every column move, keeps the best), scored by a common-random-numbers count simulator
(:class:`CRNEvaluator`: every candidate sees the same initial populations, the same
global-transition and subsample uniforms, the same per-step population streams; the
transitions and rewards are the shared count step :func:`altmarl.simulate.count_step`).
Started from the current policy and the induced-VI policy (:mod:`altmarl.llearn.induced_vi`);
exhaustive over the deterministic tables when there are few of them. Never returns a
policy worse than its best starting point under its own evaluator. The options are one
frozen :class:`DirectOptions`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from altmarl._random import SeedLike, as_seed_sequence
from altmarl._validate import check_bool, check_choice, check_instance, check_int
from altmarl.game import TabularGame
from altmarl.histogram import binomial_table, rank
from altmarl.llearn.induced_vi import DEFAULT_M, InducedVIOptions, induced_vi
from altmarl.policies import GlobalPolicy, LocalPolicy, one_hot
from altmarl.sampling import Uniform
from altmarl.simulate import (
    check_joint,
    count_step,
    multinomial_moves,
    sequential_subsample,
    step_tables,
    subsample_histograms,
)
from altmarl.threads import default_threads, map_threads

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: above this subsample size the CRN simulator draws ``h`` with numpy's hypergeometric
#: sampler (per-step streams) instead of ``k`` sequential inverse-CDF draws
SEQ_SUBSAMPLE_MAX: Final = 64
#: populations up to this size are simulated agent by agent in the CRN simulator (every
#: agent has its own uniform: full coupling); larger ones draw multinomials per bin
AGENT_MODE_MAX_N: Final = 32

#: the starting points :func:`direct_search` knows
STARTS: Final = ("current", "induced-vi", "uniform")
#: CRN rollouts per candidate
DEFAULT_ROLLOUTS: Final = 64
#: steps per CRN rollout
DEFAULT_HORIZON: Final = 100
#: search rounds at most
DEFAULT_MAX_ROUNDS: Final = 30
#: candidate evaluations at most
DEFAULT_MAX_EVALS: Final = 3000
#: score every deterministic table when there are at most this many
DEFAULT_EXHAUSTIVE_LIMIT: Final = 256
#: column moves when a column has at most this many deterministic assignments
DEFAULT_COLUMN_LIMIT: Final = 64
#: candidates per CRN evaluation batch
DEFAULT_BATCH: Final = 64
#: the search objectives :func:`direct_search` knows
OBJECTIVES: Final = ("auto", "crn", "mean-field")
#: ``objective="auto"`` searches on the mean-field objective from this population size on
#: (the exact-law CRN simulator below it)
MEAN_FIELD_MIN_N: Final = 100
#: the mean-field search scores every candidate on this many times ``rollouts`` (it is
#: ~35x cheaper per rollout; fewer rollouts over-fit the search sample)
MEAN_FIELD_ROLLOUT_FACTOR: Final = 2
#: with the mean-field objective, validation re-scores on this many times ``rollouts``
#: fresh rollouts ...
MEAN_FIELD_VALIDATION_FACTOR: Final = 16
#: ... the searched table, the starts and this many runners-up of the search
MEAN_FIELD_RUNNERS_UP: Final = 7


@dataclass(frozen=True)
class DirectOptions:
    """Options of :func:`direct_search` (SPEC 5.3), validated on construction.

    ``rollouts`` x ``horizon``: the CRN objective per candidate; ``starts``: starting
    points among :data:`STARTS`; ``max_rounds`` / ``max_evals``: search budget;
    ``exhaustive_limit``: score every deterministic table when there are at most this
    many; ``column_limit``: column moves when ``|A_l|^{|S_l|}`` is at most this;
    ``mix_levels``: weights ``w`` in ``(0, 1]`` of the cell moves ``(1 - w) pi + w e_a``;
    ``value_fn``: an objective ``tables -> values`` replacing the CRN simulator (e.g. an
    exact evaluator); ``validate``: re-score the result and the starts on fresh common
    random numbers (always the exact-law :class:`CRNEvaluator`); ``m``: induced-VI's ``m``
    for the ``"induced-vi"`` start; ``batch``: candidates per CRN evaluation batch;
    ``objective``: what the search scores candidates with, among :data:`OBJECTIVES` —
    ``"auto"`` (default) the mean-field objective when :func:`mean_field_applies` and
    ``n >= MEAN_FIELD_MIN_N``, else ``"crn"``; ``"crn"`` the exact-law
    :class:`CRNEvaluator`; ``"mean-field"`` the
    :class:`MeanFieldEvaluator` (expected population moves, shared uniforms; about 35x
    cheaper per rollout; the search then uses 2x ``rollouts``, the validation 16x, with
    the search's runners-up).
    ``ValueError`` names the offending field.
    """

    rollouts: int = DEFAULT_ROLLOUTS
    horizon: int = DEFAULT_HORIZON
    starts: Sequence[str] = ("current", "induced-vi")
    max_rounds: int = DEFAULT_MAX_ROUNDS
    max_evals: int = DEFAULT_MAX_EVALS
    exhaustive_limit: int = DEFAULT_EXHAUSTIVE_LIMIT
    column_limit: int = DEFAULT_COLUMN_LIMIT
    mix_levels: Sequence[float] = (1.0,)
    value_fn: Callable[[FloatArray], FloatArray] | None = None
    validate: bool = True
    m: int = DEFAULT_M
    batch: int = DEFAULT_BATCH
    objective: str = "auto"

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "rollouts", check_int("rollouts", self.rollouts))
        put(self, "horizon", check_int("horizon", self.horizon))
        if isinstance(self.starts, str):
            raise ValueError(f"starts = {self.starts!r}: expected a sequence of names "
                             f"among {list(STARTS)}")
        put(self, "starts", tuple(check_choice("starts", s, STARTS) for s in self.starts))
        put(self, "max_rounds", check_int("max_rounds", self.max_rounds, minimum=0))
        put(self, "max_evals", check_int("max_evals", self.max_evals))
        put(self, "exhaustive_limit", check_int("exhaustive_limit", self.exhaustive_limit,
                                                minimum=0))
        put(self, "column_limit", check_int("column_limit", self.column_limit, minimum=0))
        try:
            levels = tuple(float(w) for w in self.mix_levels)
        except (TypeError, ValueError):
            levels = ()
        if not levels or any(not 0 < w <= 1 for w in levels):
            raise ValueError(f"mix_levels = {self.mix_levels!r}: expected numbers in (0, 1]")
        put(self, "mix_levels", levels)
        if self.value_fn is not None and not callable(self.value_fn):
            raise ValueError(f"value_fn = {self.value_fn!r}: expected None or a callable "
                             "tables -> values")
        put(self, "validate", check_bool("validate", self.validate))
        put(self, "m", check_int("m", self.m))
        put(self, "batch", check_int("batch", self.batch))
        put(self, "objective", check_choice("objective", self.objective, OBJECTIVES))


# ---------------------------------------------------------------------------
# the common-random-numbers simulator
# ---------------------------------------------------------------------------


def candidate_tables(game: TabularGame, tables: FloatArray) -> FloatArray:
    """Candidate local tables as a float ``(C, S_l, S_g, A_l)`` array (one table may be given
    as ``(S_l, S_g, A_l)``); a ``ValueError`` naming ``tables`` on any other shape."""
    T = np.asarray(tables, dtype=np.float64)
    if T.ndim == 3:
        T = T[None]
    if T.shape[1:] != (game.n_sl, game.n_sg, game.n_al):
        raise ValueError(f"tables: expected shape (C, {game.n_sl}, {game.n_sg}, {game.n_al}), "
                         f"got {T.shape}")
    return T


def _shared_draws(game: TabularGame, R: int, H: int, seed: SeedLike, k_seq: int | None
                  ) -> tuple[Any, Any, FloatArray, FloatArray | None, np.random.SeedSequence]:
    """The draws every candidate of an evaluator shares (one home for both evaluators, so a
    :class:`MeanFieldEvaluator` and a :class:`CRNEvaluator` of one seed see the same ones):
    the initial ``(s_g, N)`` of ``R`` rollouts, the ``(H, R)`` uniforms of ``s_g'``, the
    ``(H, k, R)`` subsample uniforms when ``k_seq`` is given, and the population-move seed."""
    s_init, s_g, s_h, s_pop = as_seed_sequence(seed).spawn(4)
    s_g0, N0 = game.sample_init(np.random.default_rng(s_init), R)
    u_g = np.random.default_rng(s_g).random((H, R))
    u_h = np.random.default_rng(s_h).random((H, k_seq, R)) if k_seq is not None else None
    return s_g0, N0, u_g, u_h, s_pop


class CandidateScorer:
    """What the two search objectives share (:class:`CRNEvaluator`,
    :class:`MeanFieldEvaluator`): the game and ``pi_g`` they score local-policy tables
    against (checked to fit), ``R`` rollouts of ``H`` steps, the discounts ``gamma^t`` and
    the count of candidate evaluations so far (``calls``)."""

    def __init__(self, game: TabularGame, pi_g: GlobalPolicy, rollouts: int,
                 horizon: int) -> None:
        check_joint(game, pi_g)
        self.game, self.pi_g = game, pi_g
        self.R = check_int("rollouts", rollouts)
        self.H = check_int("horizon", horizon)
        self.disc = game.gamma ** np.arange(self.H)
        self.calls = 0  # candidate evaluations so far

    @property
    def samples_per_candidate(self) -> int:
        """Simulator steps (rollout x step) spent on one candidate."""
        return self.R * self.H

    def candidates(self, tables: FloatArray) -> FloatArray:
        """The candidate tables ``(C, S_l, S_g, A_l)`` (:func:`candidate_tables`), counted
        in ``calls``."""
        T = candidate_tables(self.game, tables)
        self.calls += T.shape[0]
        return T


class CRNEvaluator(CandidateScorer):
    """Scores many local-policy tables against one ``pi_g`` with common random numbers.

    The law is the count simulator's (SPEC 3, exact in distribution); what is shared by
    all candidates is drawn once, indexed by ``(rollout, step)``:

    * the initial ``(s_g, N)`` of every rollout;
    * one uniform per ``(step, rollout)`` for ``s_g' ~ P_g(. | s_g, a_g)`` (inverse CDF);
    * ``k`` uniforms per ``(step, rollout)`` for the subsample histogram, drawn as ``k``
      sequential categorical draws without replacement from the counts (inverse CDF;
      for ``k > 64`` numpy's hypergeometric sampler on the per-step stream instead; for a
      policy of another sampling scheme, SPEC 12, that scheme's sampler on the per-step
      stream);
    * the population moves: for ``n <= 32`` one uniform per agent (agents sorted by
      state; full coupling), otherwise ``Multinomial(N[x], J[x])`` per bin from a
      generator re-created from the same per-step seed for every candidate.

    A candidate's score depends only on its table (not on which other candidates share
    the batch), so the search objective is a deterministic function. An evaluator reuses
    one generator internally: do not call the same instance from several threads at once.

    Parameters
    ----------
    rollouts, horizon
        ``R`` rollouts of ``H`` steps per candidate.
    seed
        Seeds all the shared draws.
    """

    def __init__(self, game: TabularGame, pi_g: GlobalPolicy, rollouts: int = DEFAULT_ROLLOUTS,
                 horizon: int = DEFAULT_HORIZON, seed: SeedLike = 0) -> None:
        super().__init__(game, pi_g, rollouts, horizon)
        k, n = pi_g.k, game.n
        self.scheme = pi_g.sampling.bind(game)
        self.sub_mode = "full" if k == n else ("seq" if k <= SEQ_SUBSAMPLE_MAX else "hyper")
        if not isinstance(self.scheme, Uniform) and k < n:
            self.sub_mode = "scheme"  # SPEC 12: the scheme's sampler on the per-step stream
        self.s_g0, self.N0, self.u_g, self.u_h, s_pop = _shared_draws(
            game, self.R, self.H, seed, k if self.sub_mode == "seq" else None)
        self.agent_mode = n <= AGENT_MODE_MAX_N
        self.u_a = (np.random.default_rng(s_pop).random((self.H, self.R, n))
                    if self.agent_mode else None)
        self.step_seeds = s_pop.spawn(self.H)
        # one generator, reset to the per-step seed's initial state before each use: the
        # same numbers as ``default_rng(step_seeds[t])`` at a fifth of the cost
        self._step_states: list[Any] | None = None
        self._bitgen = np.random.PCG64(0)
        self._gen = np.random.Generator(self._bitgen)

    def _step_rng(self, t: int) -> np.random.Generator:
        """A generator in the initial state of ``default_rng(self.step_seeds[t])``."""
        if self._step_states is None:
            self._step_states = [np.random.PCG64(s).state for s in self.step_seeds]
        self._bitgen.state = self._step_states[t]
        return self._gen

    def returns(self, tables: FloatArray) -> FloatArray:
        """Discounted returns ``(C, R)`` of candidate tables ``(C, S_l, S_g, A_l)``."""
        g = self.game
        T = self.candidates(tables)
        C, R, H, n, d, A = T.shape[0], self.R, self.H, g.n, g.n_sl, g.n_al
        k = self.pi_g.k
        st = step_tables(g, T)  # joint: J[c, s_g, x, a * d + x']
        J = st.joint
        rows = C * R
        cidx = np.repeat(np.arange(C), R)
        s_g = np.tile(self.s_g0, C)
        N = np.tile(self.N0, (C, 1))
        ret = np.zeros(rows)
        if self.agent_mode:
            Jcdf = np.cumsum(J, axis=-1)
            Jcdf[..., -1] = 1.0
            jj = np.arange(n)
        for t in range(H):
            # --- global action from a fresh k-subsample ---------------------------
            if self.sub_mode == "full":
                h = N
            elif self.sub_mode == "seq":
                assert self.u_h is not None
                h = sequential_subsample(N, np.tile(self.u_h[t], (1, C)).reshape(k, rows))
            elif self.sub_mode == "hyper":
                h = np.empty_like(N)
                for c in range(C):
                    rng = self._step_rng(t)
                    sl = slice(c * R, (c + 1) * R)
                    h[sl] = subsample_histograms(N[sl], k, rng)
            else:
                h = np.empty_like(N)
                for c in range(C):
                    rng = self._step_rng(t)
                    sl = slice(c * R, (c + 1) * R)
                    h[sl] = self.scheme.sample(N[sl], rng, n)
            hr = rank(h, k) if self.sub_mode != "scheme" else self.pi_g.sampling.index(h)
            a_g = self.pi_g.act_ranked(s_g, hr)
            # --- population moves, coupled across candidates --------------------------
            if self.agent_mode:
                assert self.u_a is not None
                cum = np.cumsum(N, axis=1)
                states = (cum[:, None, :] <= jj[None, :, None]).sum(axis=-1)  # (rows, n)
                cdf = Jcdf[cidx[:, None], s_g[:, None], states]  # (rows, n, A*d)
                u = np.tile(self.u_a[t], (C, 1))
                cat = (cdf < u[..., None]).sum(axis=-1).clip(max=A * d - 1)
                flat = (np.arange(rows)[:, None] * d + states) * (A * d) + cat
                M = np.bincount(flat.ravel(), minlength=rows * d * A * d).reshape(rows, d, A, d)
            else:
                M = np.empty((rows, d, A * d), dtype=np.int64)
                for c in range(C):
                    sl = slice(c * R, (c + 1) * R)
                    M[sl] = multinomial_moves(J[c], s_g[sl], N[sl], self._step_rng(t))
            # --- reward and transitions (the shared count step, on these draws) -------
            step = count_step(st, s_g, N, a_g, None, moves=M, u_g=np.tile(self.u_g[t], C))
            ret += self.disc[t] * step.reward
            s_g, N = step.s_g, step.counts
        return ret.reshape(C, R)

    def values(self, tables: FloatArray, batch: int = DEFAULT_BATCH) -> FloatArray:
        """Mean discounted return per candidate, ``(C,)``; evaluated in batches."""
        T = np.asarray(tables, dtype=np.float64)
        if T.ndim == 3:
            T = T[None]
        out = [self.returns(T[i:i + batch]).mean(axis=1) for i in range(0, T.shape[0], batch)]
        return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------------------
# the mean-field objective
# ---------------------------------------------------------------------------


def _mean_field_returns(K: Any, rbar: Any, r_g: Any, cdf_g: Any, actions: Any, btab: Any,
                        s_g0: Any, N0: Any, u_g: Any, u_h: Any, disc: Any, n: float,
                        c0: int, c1: int, out: Any) -> None:  # pragma: no cover - Numba
    """Discounted returns of candidates ``c0 .. c1 - 1`` (:class:`MeanFieldEvaluator`;
    ``u_g`` is ``(H, R)``, ``u_h`` ``(H, k, R)``). Rollouts are the inner loop of every
    stage, so the CPU overlaps the dependent chains of independent rollouts."""
    H, R = u_g.shape
    d = N0.shape[1]
    k = u_h.shape[1]
    nsg = cdf_g.shape[2]
    N = np.empty((R, d))
    rem = np.empty((R, d))
    h = np.empty((R, d), np.int64)
    tot = np.empty(R)
    s = np.empty(R, np.int64)
    acc = np.empty(R)
    inv_n = 1.0 / n
    for c in range(c0, c1):
        for r in range(R):
            s[r] = s_g0[r]
            acc[r] = 0.0
            for x in range(d):
                N[r, x] = N0[r, x]
        for t in range(H):
            # the k-subsample: k sequential draws without replacement, by inverse CDF of
            # the shared uniforms, from the (real-valued) expected counts
            for r in range(R):
                tr = 0.0
                for x in range(d):
                    rem[r, x] = N[r, x]
                    h[r, x] = 0
                    tr += N[r, x]
                tot[r] = tr
            for j in range(k):
                for r in range(R):
                    thr = u_h[t, j, r] * tot[r]
                    cs = 0.0
                    x = 0
                    for i in range(d - 1):
                        cs += rem[r, i]
                        x += cs <= thr
                    while rem[r, x] <= 0.0 and x > 0:
                        x -= 1
                    h[r, x] += 1
                    take = min(1.0, rem[r, x])
                    rem[r, x] -= take
                    tot[r] -= take
            for r in range(R):
                # rank of h in H_k (altmarl.histogram.rank)
                rk = 0
                left = k
                for i in range(d - 1):
                    e = d - 1 - i
                    nx = left - h[r, i]
                    rk += btab[left, e] - btab[nx, e]
                    left = nx
                sr = s[r]
                a = actions[sr, rk]
                loc = 0.0
                for x in range(d):
                    loc += N[r, x] * rbar[c, sr, x]
                acc[r] += disc[t] * (r_g[sr, a] + loc * inv_n)
                # N' = N K(s_g), in place via the subsample scratch row
                for y in range(d):
                    rem[r, y] = N[r, 0] * K[c, sr, 0, y]
                for x in range(1, d):
                    nx_ = N[r, x]
                    for y in range(d):
                        rem[r, y] += nx_ * K[c, sr, x, y]
                for y in range(d):
                    N[r, y] = rem[r, y]
                u = u_g[t, r]
                sn = 0
                for y in range(nsg - 1):
                    sn += cdf_g[sr, a, y] < u
                s[r] = sn
        for r in range(R):
            out[c, r] = acc[r]


@cache
def _mean_field_kernel() -> Any:
    """:func:`_mean_field_returns` compiled by Numba (once per process, cached on disk)."""
    import numba

    return numba.njit(cache=True, nogil=True, boundscheck=False)(_mean_field_returns)


def mean_field_applies(game: TabularGame, pi_g: GlobalPolicy) -> bool:
    """Whether :class:`MeanFieldEvaluator` can score tables against ``pi_g``: the uniform
    subsampling scheme with ``k < n`` and ``k <= SEQ_SUBSAMPLE_MAX``."""
    return (isinstance(pi_g.sampling, Uniform) and pi_g.k < game.n
            and pi_g.k <= SEQ_SUBSAMPLE_MAX)


class MeanFieldEvaluator(CandidateScorer):
    """Scores many local-policy tables against one ``pi_g`` on the mean-field population
    (SPEC 3, 5.3): the count vector moves to its expectation ``N' = N K_pi(s_g)`` (``K_pi``
    the one-agent kernel, :meth:`TabularGame.local_kernel`) and the stage reward is its
    expectation ``r_g(s_g, a_g) + (1/n) sum_x N[x] rbar_pi(x, s_g)``; the global agent's
    ``k``-subsample (``k`` sequential draws without replacement from the real-valued
    counts) and ``s_g' ~ P_g`` keep their randomness. Every rollout uses the same initial
    populations and uniforms as a :class:`CRNEvaluator` of the same seed.

    The population noise it drops is ``O(1 / sqrt(n))`` per agent share, so for large
    ``n`` it ranks candidates like the exact-law simulator at a fraction of the cost (no
    multinomial draws; a Numba kernel, candidates split over threads). Same interface as
    :class:`CRNEvaluator`; requires :func:`mean_field_applies`.
    """

    def __init__(self, game: TabularGame, pi_g: GlobalPolicy, rollouts: int = DEFAULT_ROLLOUTS,
                 horizon: int = DEFAULT_HORIZON, seed: SeedLike = 0,
                 workers: int | None = None) -> None:
        super().__init__(game, pi_g, rollouts, horizon)
        if not mean_field_applies(game, pi_g):
            raise ValueError(f"objective 'mean-field': needs the uniform sampling scheme "
                             f"with k < n and k <= {SEQ_SUBSAMPLE_MAX} (got "
                             f"{pi_g.sampling.to_json()}, n = {game.n}); use 'crn'")
        k = pi_g.k
        s_g0, N0, self.u_g, u_h, _ = _shared_draws(game, self.R, self.H, seed, k)
        self.s_g0 = np.ascontiguousarray(s_g0, dtype=np.int64)
        self.N0 = np.ascontiguousarray(N0, dtype=np.float64)
        self.u_h = np.asarray(u_h)
        self.btab = np.ascontiguousarray(binomial_table(k, game.n_sl))
        self.actions = np.ascontiguousarray(pi_g.actions, dtype=np.int64)
        self.cdf_g = np.ascontiguousarray(np.cumsum(game.P_g, axis=-1))
        self.workers = default_threads() if workers is None else max(1, int(workers))

    def returns(self, tables: FloatArray) -> FloatArray:
        """Discounted returns ``(C, R)`` of candidate tables ``(C, S_l, S_g, A_l)``."""
        g = self.game
        T = self.candidates(tables)
        C = T.shape[0]
        K = np.ascontiguousarray(np.einsum("cxga,xgay->cgxy", T, g.P_l))
        rbar = np.ascontiguousarray(np.einsum("cxga,xga->cgx", T, g.r_l))
        out = np.empty((C, self.R))
        kern = _mean_field_kernel()
        args = (K, rbar, np.ascontiguousarray(g.r_g), self.cdf_g, self.actions, self.btab,
                self.s_g0, self.N0, self.u_g, self.u_h, self.disc, float(g.n))
        w = min(self.workers, C)
        if w <= 1 or C * self.R * self.H < 1 << 16:
            kern(*args, 0, C, out)
        else:
            bounds = np.linspace(0, C, w + 1).astype(int)
            map_threads(lambda i: kern(*args, int(bounds[i]), int(bounds[i + 1]), out), w, w)
        return out

    def values(self, tables: FloatArray, batch: int = DEFAULT_BATCH) -> FloatArray:
        """Mean discounted return per candidate, ``(C,)``."""
        T = np.asarray(tables, dtype=np.float64)
        if T.ndim == 3:
            T = T[None]
        if T.shape[0] == 0:
            return np.zeros(0)
        return np.asarray(self.returns(T).mean(axis=1))


def search_objective(game: TabularGame, pi_g: GlobalPolicy, objective: str = "auto") -> str:
    """The objective ``"crn"`` or ``"mean-field"`` that :func:`direct_search` scores with
    for ``objective`` (an entry of :data:`OBJECTIVES`; ``"auto"``: mean-field when
    :func:`mean_field_applies` and ``n >= MEAN_FIELD_MIN_N``)."""
    objective = check_choice("objective", objective, OBJECTIVES)
    if objective == "auto":
        ok = mean_field_applies(game, pi_g) and game.n >= MEAN_FIELD_MIN_N
        return "mean-field" if ok else "crn"
    return objective


# ---------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------


def direct_search(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy | None = None,
    seed: SeedLike = 0,
    options: DirectOptions | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """Coordinate-wise policy search on ``V(pi_g, pi_l)`` with common random numbers
    (SPEC 5.3).

    Options: :class:`DirectOptions` (default: its defaults); the names below are its fields.

    Objective: ``value_fn(tables) -> values`` if given (e.g. an exact evaluator), else the
    mean return of a :class:`CRNEvaluator` (``rollouts`` x ``horizon``, seeded by ``seed``;
    ``objective="crn"``, or the default ``"auto"`` below ``n = MEAN_FIELD_MIN_N``) or of a
    :class:`MeanFieldEvaluator` (``2 rollouts`` x ``horizon``; ``objective="mean-field"``,
    or ``"auto"`` from ``n = MEAN_FIELD_MIN_N`` on).

    Search: if there are at most ``exhaustive_limit`` deterministic tables, score them all.
    Otherwise start from the best of ``starts`` (``"current"``: ``pi_l``; ``"induced-vi"``:
    the induced-VI policy for the current population; ``"uniform"``) and repeat rounds:
    score every single-cell change ``pi(.|s_l, s_g) <- (1 - w) pi(.|s_l, s_g) + w e_a``
    (``w`` in ``mix_levels``; ``1.0`` = deterministic) and every row move (one ``s_l``
    plays the same action in every ``s_g``), plus the composites that apply every cell's
    (every row's) best improving change at once; move to the best if it improves the
    incumbent; stop when nothing improves, after ``max_rounds`` rounds or ``max_evals``
    candidates. When no move improves and a column has at most ``column_limit``
    deterministic assignments (``|A_l|^{|S_l|}``), a round of column moves (every
    deterministic assignment of the actions of one ``s_g`` column) is tried before
    stopping. The search result is the best table scored, so it is never worse than the
    best start under this objective.

    With ``validate`` (and no ``value_fn``), the searched table and the starts are then
    re-scored on *fresh* common random numbers (an independent :class:`CRNEvaluator`) and
    the best of them there is returned: a guard against over-fitting the search sample
    (``info["chosen"]`` says which; ``info["search_value"]`` is the in-sample value). With
    the mean-field objective the validation is a :class:`MeanFieldEvaluator` on ``16
    rollouts`` fresh rollouts and also re-scores up to 7 runners-up of the search (the best
    other tables it scored).
    """
    o = DirectOptions() if options is None else check_instance("options", options,
                                                               DirectOptions)
    rollouts, horizon, batch, value_fn = o.rollouts, o.horizon, o.batch, o.value_fn
    max_rounds, max_evals = o.max_rounds, o.max_evals
    levels = tuple(o.mix_levels)
    s_eval, s_ivi, s_val = as_seed_sequence(seed).spawn(3)
    samples = 0
    mode = search_objective(game, pi_g, o.objective)
    if value_fn is None:
        crn: CRNEvaluator | MeanFieldEvaluator = (
            MeanFieldEvaluator(game, pi_g, rollouts * MEAN_FIELD_ROLLOUT_FACTOR, horizon, s_eval)
            if mode == "mean-field"
            else CRNEvaluator(game, pi_g, rollouts, horizon, s_eval))

        def objective(tables: FloatArray) -> FloatArray:
            return crn.values(tables, batch)

        per_cand = crn.samples_per_candidate
    else:
        def objective(tables: FloatArray) -> FloatArray:
            return np.asarray(value_fn(tables), dtype=np.float64).reshape(-1)

        per_cand = 0
    shape = (game.n_sl, game.n_sg, game.n_al)
    evals = 0
    start_tables: list[FloatArray] = []
    start_names: list[str] = []
    for s in o.starts:
        if s == "current" and pi_l is not None:
            start_tables.append(pi_l.table)
        elif s == "uniform" or (s == "current" and pi_l is None):
            start_tables.append(np.full(shape, 1.0 / game.n_al))
        elif s == "induced-vi":
            t, ivi_info = induced_vi(game, pi_g, pi_l, s_ivi, InducedVIOptions(m=o.m))
            samples += ivi_info["samples"]
            start_tables.append(t)
        start_names.append(s)
    cells = game.n_sl * game.n_sg
    n_det = game.n_al ** cells if cells * math.log(game.n_al) < 60 else None
    exhaustive = n_det is not None and n_det <= o.exhaustive_limit
    if exhaustive:
        assert n_det is not None
        acts = np.array(np.unravel_index(np.arange(n_det), (game.n_al,) * cells)).T
        start_tables.extend(one_hot(acts, game.n_al).reshape((n_det, *shape)))
    cand = np.stack(start_tables) if start_tables else np.full((1, *shape), 1.0 / game.n_al)
    vals = objective(cand)
    evals += cand.shape[0]
    start_values = {name: float(v) for name, v in zip(start_names, vals, strict=False)}
    best_i = int(np.argmax(vals))
    best, best_v = cand[best_i].copy(), float(vals[best_i])
    # the best tables scored so far (value, table): runners-up for the validation
    top: list[tuple[float, FloatArray]] = []
    n_top = MEAN_FIELD_RUNNERS_UP + 1 if mode == "mean-field" and value_fn is None else 0

    def remember(values: FloatArray, tables: FloatArray) -> None:
        if not n_top:
            return
        for i in np.argsort(-values, kind="stable")[:n_top]:
            tab = tables[i]
            if not any(np.abs(tab - t).max() < 1e-9 for _, t in top):
                top.append((float(values[i]), tab.copy()))
        top.sort(key=lambda z: -z[0])
        del top[n_top:]

    remember(vals, cand)
    rounds = column_rounds = 0
    columns_ok = game.n_al ** game.n_sl <= o.column_limit
    use_columns = False
    while rounds < max_rounds and evals < max_evals and not (exhaustive and levels == (1.0,)):
        rounds += 1
        if use_columns:
            column_rounds += 1
            moves = [("column", *_column_neighbours(best))]
        else:
            moves = [("cell", *_neighbours(best, levels)), ("row", *_row_neighbours(best))]
        neigh = np.concatenate([mv[1] for mv in moves])
        if neigh.shape[0] == 0:
            break
        kinds = np.concatenate([np.full(mv[1].shape[0], i) for i, mv in enumerate(moves)])
        where = np.concatenate([mv[2] for mv in moves])
        keep = max_evals - evals
        neigh, where, kinds = neigh[:keep], where[:keep], kinds[:keep]
        nv = objective(neigh)
        evals += neigh.shape[0]
        remember(nv, neigh)
        gain = nv - best_v
        tries = [(float(nv.max()), neigh[int(nv.argmax())])]
        # composites: per kind of move, every group's best improving change at once
        # (groups of one kind touch disjoint entries: cells, rows s_l or columns s_g)
        for i, (kind, _, _) in enumerate(moves):
            comp = best.copy()
            changed = 0
            ok = (kinds == i) & (gain > 0)
            for grp in np.unique(where[ok]):
                sel = np.flatnonzero(ok & (where == grp))
                j = sel[np.argmax(gain[sel])]
                if kind == "column":
                    comp[:, grp] = neigh[j, :, grp]
                elif kind == "row":
                    comp[grp] = neigh[j, grp]
                else:
                    x, g = divmod(int(grp), game.n_sg)
                    comp[x, g] = neigh[j, x, g]
                changed += 1
            if changed > 1 and evals < max_evals:
                cv = float(objective(comp[None])[0])
                evals += 1
                remember(np.array([cv]), comp[None])
                tries.append((cv, comp))
        v, t = max(tries, key=lambda z: z[0])
        if v > best_v + 1e-12 * max(1.0, abs(best_v)):
            best, best_v = t.copy(), v
            use_columns = False
        elif columns_ok and not use_columns:
            use_columns = True  # escape a local optimum with column moves
        else:
            break
    validation: dict[str, float] = {}
    chosen = "search"
    if o.validate and value_fn is None and (rounds > 0 or exhaustive):
        # guard against over-fitting the search sample: re-score the searched table and
        # the starts on fresh common random numbers and return the best of them there
        names, tabs, val = _validation(game, pi_g, mode, rollouts, horizon, batch, s_val,
                                       best, start_names, start_tables, top)
        evals += tabs.shape[0]
        validation = {nm: float(v) for nm, v in zip(names, val, strict=True)}
        j = int(np.argmax(val))
        chosen = names[j]
        if j > 0:
            best = tabs[j].copy()
    info = {
        "search_value": best_v,
        "validation_values": validation,
        "chosen": chosen,
        "start_values": start_values,
        "evaluations": evals,
        "rounds": rounds,
        "column_rounds": column_rounds,
        "exhaustive": exhaustive,
        "samples": samples + evals * per_cand,
        "objective": "value_fn" if value_fn is not None else
        (f"mean-field count simulator, {rollouts * MEAN_FIELD_ROLLOUT_FACTOR} rollouts x "
         f"{horizon} steps"
         if mode == "mean-field" else
         f"CRN count simulator, {rollouts} rollouts x {horizon} steps"),
    }
    return best, info


def _validation(game: TabularGame, pi_g: GlobalPolicy, mode: str, rollouts: int, horizon: int,
                batch: int, seed: np.random.SeedSequence, best: FloatArray,
                start_names: list[str], start_tables: list[FloatArray],
                top: list[tuple[float, FloatArray]]) -> tuple[list[str], FloatArray, FloatArray]:
    """The tables :func:`direct_search` validates (the searched one, the starts and, with
    the mean-field objective, the runners-up), their names and fresh-sample values."""
    names = ["search"] + start_names[: len(start_names)]
    tabs_l = [best] + start_tables[: len(start_names)]
    if mode == "mean-field":
        # the mean-field objective is cheap: validate on 16x the rollouts, and include
        # the search's runners-up (the search sample's noise decides between close
        # tables; the larger fresh sample picks the best of them)
        ups = [t for _, t in top if np.abs(t - best).max() >= 1e-9][:MEAN_FIELD_RUNNERS_UP]
        names += [f"runner-up {i + 1}" for i in range(len(ups))]
        tabs_l += ups
        validator: CRNEvaluator | MeanFieldEvaluator = MeanFieldEvaluator(
            game, pi_g, rollouts * MEAN_FIELD_VALIDATION_FACTOR, horizon, seed)
    else:
        validator = CRNEvaluator(game, pi_g, rollouts, horizon, seed)
    tabs = np.stack(tabs_l)
    return names, tabs, validator.values(tabs, batch)


def _column_neighbours(table: FloatArray) -> tuple[FloatArray, IntArray]:
    """Every deterministic assignment of one ``s_g`` column ``table[:, s_g, :]``."""
    n_sl, n_sg, A = table.shape
    cols = np.array(np.unravel_index(np.arange(A ** n_sl), (A,) * n_sl)).T  # (C, S_l)
    onehot = np.eye(A)[cols]  # (C, S_l, A)
    out: list[FloatArray] = []
    where: list[int] = []
    for g in range(n_sg):
        for col in onehot:
            if np.abs(col - table[:, g]).max() < 1e-9:
                continue
            t = table.copy()
            t[:, g] = col
            out.append(t)
            where.append(g)
    if not out:
        return np.zeros((0, n_sl, n_sg, A)), np.zeros(0, dtype=np.int64)
    return np.stack(out), np.asarray(where, dtype=np.int64)


def _row_neighbours(table: FloatArray) -> tuple[FloatArray, IntArray]:
    """Row moves: one local state ``s_l`` plays the same action ``a`` in every ``s_g``."""
    n_sl, n_sg, A = table.shape
    out: list[FloatArray] = []
    where: list[int] = []
    eye = np.eye(A)
    for x in range(n_sl):
        for a in range(A):
            if np.abs(table[x] - eye[a]).max() < 1e-9:
                continue
            t = table.copy()
            t[x] = eye[a]
            out.append(t)
            where.append(x)
    if not out:
        return np.zeros((0, n_sl, n_sg, A)), np.zeros(0, dtype=np.int64)
    return np.stack(out), np.asarray(where, dtype=np.int64)


def _neighbours(table: FloatArray, levels: tuple[float, ...]) -> tuple[FloatArray, IntArray]:
    """All single-cell changes ``row <- (1 - w) row + w e_a``; returns them and their cell."""
    n_sl, n_sg, A = table.shape
    out: list[FloatArray] = []
    where: list[int] = []
    eye = np.eye(A)
    for x in range(n_sl):
        for g in range(n_sg):
            row = table[x, g]
            seen: list[FloatArray] = [row]
            for a in range(A):
                for w in levels:
                    new = (1 - w) * row + w * eye[a]
                    if any(np.abs(new - s).max() < 1e-9 for s in seen):
                        continue
                    seen.append(new)
                    t = table.copy()
                    t[x, g] = new
                    out.append(t)
                    where.append(x * n_sg + g)
    if not out:
        return np.zeros((0, n_sl, n_sg, A)), np.zeros(0, dtype=np.int64)
    return np.stack(out), np.asarray(where, dtype=np.int64)
