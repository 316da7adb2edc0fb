"""L-LEARN (paper Algorithm 2, SPEC 5): best response of the shared local policy.

For a fixed global policy ``pi_g``, L-LEARN looks for ``argmax_{pi_l in Pi_l} V(pi_g, pi_l)``
over shared policies ``S_l x S_g -> Delta(A_l)`` (a deviation changes the policy of *all*
local agents, Definition 2.4). One entry point, :func:`l_learn`, three solvers:

``"induced-vi"`` (SPEC 5.1)
    Value iteration on the representative agent's induced MDP over ``(s_l, s_g)`` — the
    practice of the paper's experiments and of the authors' code. The global agent's
    action is treated as exogenous: ``P(a_g | s_g)`` is estimated by drawing ``m``
    ``k``-sample histograms from each population visited by the *current* joint policy
    (discounted occupancy of ``(pi_g, pi_l)`` on the count simulator, per ``s_g``), the
    next global state is averaged over it, the rewards are ``r_l``. Greedy (or softmax)
    policy. Cheap; exact when ``a_g`` does not depend on the population (e.g.
    ``|A_g| = 1`` or a constant ``pi_g``), approximate otherwise because it ignores how
    the local policy moves the population that ``pi_g`` reacts to.
``"direct"`` (SPEC 5.3)
    Direct optimizer of the actual objective ``V(pi_g, pi_l)``: coordinate-wise policy
    search over tables (each step tries every action in every ``(s_l, s_g)`` cell, keeps
    the best), scored by a common-random-numbers count simulator
    (:class:`CRNEvaluator`: every candidate sees the same initial populations, the same
    global-transition and subsample uniforms, the same per-step population streams).
    Started from the current policy and the induced-VI policy; exhaustive over the
    deterministic tables when there are few of them. Never returns a policy worse than
    its best starting point under its own evaluator.
``"chained"`` (SPEC 5.2)
    The paper's k-chained / mean-field chained MDP with UCFH, dispatched to
    :func:`altmarl.chained.chained_best_response` (small instances only).

Every solver returns a :class:`~altmarl.policies.LocalPolicy` whose ``info`` holds
``"solver"``, ``"value"`` (estimated ``V(pi_g, pi_l')``), ``"value_stderr"``,
``"samples"`` (generative-model calls spent learning; see :func:`l_learn`) and
``"wall_time"``.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl import planning
from altmarl.evaluation import Evaluator, mc_evaluator
from altmarl.game import TabularGame
from altmarl.histogram import rank
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.simulate import (
    check_joint,
    count_step,
    multinomial_moves,
    rollout_counts,
    sequential_subsample,
    step_tables,
    subsample_histograms,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: the solvers :func:`l_learn` dispatches to
SOLVERS = ("induced-vi", "direct", "chained")

#: above this subsample size the CRN simulator draws ``h`` with numpy's hypergeometric
#: sampler (per-step streams) instead of ``k`` sequential inverse-CDF draws
_SEQ_SUBSAMPLE_MAX = 64
#: populations up to this size are simulated agent by agent in the CRN simulator (every
#: agent has its own uniform: full coupling); larger ones draw multinomials per bin
_AGENT_MODE_MAX_N = 32


# ---------------------------------------------------------------------------
# the common-random-numbers simulator used by the direct optimizer
# ---------------------------------------------------------------------------


class CRNEvaluator:
    """Scores many local-policy tables against one ``pi_g`` with common random numbers.

    The law is the count simulator's (SPEC 3, exact in distribution); what is shared by
    all candidates is drawn once, indexed by ``(rollout, step)``:

    * the initial ``(s_g, N)`` of every rollout;
    * one uniform per ``(step, rollout)`` for ``s_g' ~ P_g(. | s_g, a_g)`` (inverse CDF);
    * ``k`` uniforms per ``(step, rollout)`` for the subsample histogram, drawn as ``k``
      sequential categorical draws without replacement from the counts (inverse CDF;
      for ``k > 64`` numpy's hypergeometric sampler on the per-step stream instead);
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

    def __init__(self, game: TabularGame, pi_g: GlobalPolicy, rollouts: int = 64,
                 horizon: int = 100, seed: int | np.random.SeedSequence = 0) -> None:
        check_joint(game, pi_g, LocalPolicy.uniform(game))
        self.game, self.pi_g = game, pi_g
        self.R = _check_int("rollouts", rollouts)
        self.H = _check_int("horizon", horizon)
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        s_init, s_g, s_h, s_pop = ss.spawn(4)
        self.s_g0, self.N0 = game.sample_init(np.random.default_rng(s_init), self.R)
        self.u_g = np.random.default_rng(s_g).random((self.H, self.R))
        k, n = pi_g.k, game.n
        self.sub_mode = "full" if k == n else ("seq" if k <= _SEQ_SUBSAMPLE_MAX else "hyper")
        self.u_h = (np.random.default_rng(s_h).random((self.H, k, self.R))
                    if self.sub_mode == "seq" else None)
        self.agent_mode = n <= _AGENT_MODE_MAX_N
        self.u_a = (np.random.default_rng(s_pop).random((self.H, self.R, n))
                    if self.agent_mode else None)
        self.step_seeds = s_pop.spawn(self.H)
        # one generator, reset to the per-step seed's initial state before each use: the
        # same numbers as ``default_rng(step_seeds[t])`` at a fifth of the cost
        self._step_states: list[Any] | None = None
        self._bitgen = np.random.PCG64(0)
        self._gen = np.random.Generator(self._bitgen)
        self.disc = game.gamma ** np.arange(self.H)
        self.calls = 0  # candidate evaluations so far

    def _step_rng(self, t: int) -> np.random.Generator:
        """A generator in the initial state of ``default_rng(self.step_seeds[t])``."""
        if self._step_states is None:
            self._step_states = [np.random.PCG64(s).state for s in self.step_seeds]
        self._bitgen.state = self._step_states[t]
        return self._gen

    @property
    def samples_per_candidate(self) -> int:
        """Simulator steps (rollout x step) spent on one candidate."""
        return self.R * self.H

    def returns(self, tables: FloatArray) -> FloatArray:
        """Discounted returns ``(C, R)`` of candidate tables ``(C, S_l, S_g, A_l)``."""
        g = self.game
        T = np.asarray(tables, dtype=np.float64)
        if T.ndim == 3:
            T = T[None]
        if T.shape[1:] != (g.n_sl, g.n_sg, g.n_al):
            raise ValueError(f"tables: expected shape (C, {g.n_sl}, {g.n_sg}, {g.n_al}), "
                             f"got {T.shape}")
        C, R, H, n, d, A = T.shape[0], self.R, self.H, g.n, g.n_sl, g.n_al
        k = self.pi_g.k
        self.calls += C
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
            else:
                h = np.empty_like(N)
                for c in range(C):
                    rng = self._step_rng(t)
                    sl = slice(c * R, (c + 1) * R)
                    h[sl] = subsample_histograms(N[sl], k, rng)
            a_g = self.pi_g.act_ranked(s_g, rank(h, k))
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

    def values(self, tables: FloatArray, batch: int = 64) -> FloatArray:
        """Mean discounted return per candidate, ``(C,)``; evaluated in batches."""
        T = np.asarray(tables, dtype=np.float64)
        if T.ndim == 3:
            T = T[None]
        out = [self.returns(T[i:i + batch]).mean(axis=1) for i in range(0, T.shape[0], batch)]
        return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------------------
# induced-VI (SPEC 5.1)
# ---------------------------------------------------------------------------


def global_action_distribution(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    m: int = 30,
    rollouts: int = 32,
    horizon: int = 60,
    rng: np.random.Generator | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """``p[s_g, a_g] ~= P(pi_g(s_g, h) = a_g)`` under the current population (SPEC 5.1).

    The populations are the ones visited by the joint policy ``(pi_g, pi_l)`` on the count
    simulator (``rollouts`` x ``horizon`` steps, weighted by ``gamma^t``: the discounted
    occupancy, per ``s_g``); from each, ``m`` fresh ``k``-sample histograms are drawn and
    ``pi_g`` is applied with that ``s_g``. A global state never visited uses all visited
    populations. Returns ``p`` and ``{"samples": ...}`` (simulator steps + histograms).
    """
    rng = np.random.default_rng() if rng is None else rng
    tr = rollout_counts(game, pi_g, pi_l, rollouts, horizon, rng, record_counts=True)
    assert tr.counts is not None
    counts = tr.counts.reshape(-1, game.n_sl)
    sgs = tr.s_g.reshape(-1)
    w = np.tile(game.gamma ** np.arange(horizon), rollouts)
    k, G, Ag = pi_g.k, game.n_sg, game.n_ag
    rep = np.repeat(counts, m, axis=0)
    h = rep if k == game.n else subsample_histograms(rep, k, rng)
    hr = rank(h, k)
    # action of pi_g for every global state on every drawn histogram: (G, P*m)
    acts = pi_g.actions[:, hr]
    onehot = np.zeros((G, counts.shape[0] * m, Ag))
    np.put_along_axis(onehot, acts[..., None], 1.0, axis=-1)
    per_pop = onehot.reshape(G, counts.shape[0], m, Ag).mean(axis=2)  # (G, P, Ag)
    pooled = np.einsum("p,gpa->ga", w, per_pop) / w.sum()
    p = pooled.copy()
    for g in range(G):
        mask = sgs == g
        if mask.any():
            ww = w[mask]
            p[g] = ww @ per_pop[g, mask] / ww.sum()
    info = {"samples": int(rollouts * horizon + counts.shape[0] * m),
            "visited_s_g": np.bincount(sgs, minlength=G).tolist()}
    return p, info


def induced_vi(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy | None = None,
    seed: int | np.random.SeedSequence = 0,
    *,
    m: int = 30,
    pop_rollouts: int = 32,
    pop_horizon: int = 60,
    population_iters: int = 1,
    temperature: float | None = None,
    tol: float = 1e-8,
    max_iter: int = 100_000,
) -> tuple[FloatArray, dict[str, Any]]:
    """Value iteration on the representative agent's induced MDP (SPEC 5.1).

    ``Q(s_l, s_g, a) = r_l(s_l, s_g, a) + gamma sum_{s_l', s_g'} P_l(s_l'|s_l, s_g, a)
    Pbar_g(s_g'|s_g) V(s_l', s_g')`` with ``Pbar_g(.|s_g) = sum_a p(a|s_g) P_g(.|s_g, a)``
    and ``p`` from :func:`global_action_distribution` under the population of
    ``(pi_g, pi_l)`` (``pi_l`` defaults to uniform). ``population_iters > 1`` re-estimates
    ``p`` under the new policy and repeats. The policy is greedy (lowest index on ties),
    or ``softmax(Q / temperature)``. Returns the table and diagnostics (``q``,
    ``iterations``, ``residual``, ``samples``).
    """
    _check_int("m", m)
    _check_int("pop_rollouts", pop_rollouts)
    _check_int("pop_horizon", pop_horizon)
    _check_int("population_iters", population_iters)
    if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature = {temperature!r}: expected None or a number > 0")
    if not tol > 0:
        raise ValueError(f"tol = {tol!r}: expected a number > 0")
    rng = np.random.default_rng(seed)
    cur = LocalPolicy.uniform(game) if pi_l is None else pi_l
    samples = 0
    table = cur.table
    q = np.zeros((game.n_sl, game.n_sg, game.n_al))
    it, resid = 0, float("inf")
    p = np.zeros((game.n_sg, game.n_ag))
    for _ in range(population_iters):
        p, pinfo = global_action_distribution(game, pi_g, cur, m, pop_rollouts, pop_horizon, rng)
        samples += pinfo["samples"]
        Pbar = np.einsum("ga,gah->gh", p, game.P_g)
        q, it, resid = _vi(game, Pbar, tol, max_iter)
        table = _policy_from_q(q, temperature)
        cur = LocalPolicy(table)
    info = {"q": q, "iterations": it, "residual": resid, "samples": samples,
            "p_ag": p, "population": "discounted occupancy of the current joint policy"}
    return table, info


def _vi(game: TabularGame, Pbar: FloatArray, tol: float, max_iter: int) -> tuple[FloatArray, int, float]:
    """Value iteration on the induced MDP from ``V = 0`` until ``||V_{t+1} - V_t||_inf <= tol``
    (:func:`altmarl.planning.value_iteration`); returns ``(Q, iterations, residual)``."""

    def backup(V: FloatArray) -> FloatArray:
        W = V @ Pbar.T  # W[x', g] = sum_g' V[x', g'] Pbar[g, g']
        return np.asarray(game.r_l + game.gamma * np.einsum("xgay,yg->xga", game.P_l, W))

    res = planning.value_iteration(backup, game.r_l.copy(), np.zeros((game.n_sl, game.n_sg)),
                                   tol, max_iter, stop_on="v")
    return res.q, res.iterations, res.residual


def _policy_from_q(q: FloatArray, temperature: float | None) -> FloatArray:
    if temperature is None:
        qmax = q.max(axis=-1, keepdims=True)
        tied = q >= qmax - 1e-12 * np.maximum(1.0, np.abs(qmax))
        a = tied.argmax(axis=-1)
        t = np.zeros_like(q)
        np.put_along_axis(t, a[..., None], 1.0, axis=-1)
        return t
    z = (q - q.max(axis=-1, keepdims=True)) / temperature
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


# ---------------------------------------------------------------------------
# direct policy search (SPEC 5.3)
# ---------------------------------------------------------------------------


def direct_search(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy | None = None,
    seed: int | np.random.SeedSequence = 0,
    *,
    rollouts: int = 64,
    horizon: int = 100,
    starts: Sequence[str] = ("current", "induced-vi"),
    max_rounds: int = 30,
    max_evals: int = 3000,
    exhaustive_limit: int = 256,
    column_limit: int = 64,
    mix_levels: Sequence[float] = (1.0,),
    value_fn: Callable[[FloatArray], FloatArray] | None = None,
    validate: bool = True,
    m: int = 30,
    batch: int = 64,
) -> tuple[FloatArray, dict[str, Any]]:
    """Coordinate-wise policy search on ``V(pi_g, pi_l)`` with common random numbers
    (SPEC 5.3).

    Objective: ``value_fn(tables) -> values`` if given (e.g. an exact evaluator), else the
    mean return of a :class:`CRNEvaluator` (``rollouts`` x ``horizon``, seeded by ``seed``).

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
    (``info["chosen"]`` says which; ``info["search_value"]`` is the in-sample value).
    """
    _check_int("max_rounds", max_rounds, minimum=0)
    _check_int("max_evals", max_evals)
    levels = tuple(float(w) for w in mix_levels)
    if not levels or any(not 0 < w <= 1 for w in levels):
        raise ValueError(f"mix_levels = {mix_levels!r}: expected numbers in (0, 1]")
    for s in starts:
        if s not in ("current", "induced-vi", "uniform"):
            raise ValueError(f"starts: {s!r} is not one of 'current', 'induced-vi', 'uniform'")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    s_eval, s_ivi, s_val = ss.spawn(3)
    samples = 0
    if value_fn is None:
        crn = CRNEvaluator(game, pi_g, rollouts, horizon, s_eval)

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
    for s in starts:
        if s == "current" and pi_l is not None:
            start_tables.append(pi_l.table)
        elif s == "uniform" or (s == "current" and pi_l is None):
            start_tables.append(np.full(shape, 1.0 / game.n_al))
        elif s == "induced-vi":
            t, ivi_info = induced_vi(game, pi_g, pi_l, s_ivi, m=m)
            samples += ivi_info["samples"]
            start_tables.append(t)
        start_names.append(s)
    cells = game.n_sl * game.n_sg
    n_det = game.n_al ** cells if cells * math.log(game.n_al) < 60 else None
    exhaustive = n_det is not None and n_det <= exhaustive_limit
    if exhaustive:
        assert n_det is not None
        acts = np.array(np.unravel_index(np.arange(n_det), (game.n_al,) * cells)).T
        det = np.zeros((n_det, cells, game.n_al))
        np.put_along_axis(det, acts[..., None], 1.0, axis=-1)
        start_tables.extend(det.reshape((n_det, *shape)))
    cand = np.stack(start_tables) if start_tables else np.full((1, *shape), 1.0 / game.n_al)
    vals = objective(cand)
    evals += cand.shape[0]
    start_values = {name: float(v) for name, v in zip(start_names, vals, strict=False)}
    best_i = int(np.argmax(vals))
    best, best_v = cand[best_i].copy(), float(vals[best_i])
    rounds = column_rounds = 0
    columns_ok = game.n_al ** game.n_sl <= column_limit
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
    if validate and value_fn is None and (rounds > 0 or exhaustive):
        # guard against over-fitting the search sample: re-score the searched table and
        # the starts on fresh common random numbers and return the best of them there
        names = ["search"] + start_names[: len(start_names)]
        tabs = np.stack([best] + start_tables[: len(start_names)])
        val = CRNEvaluator(game, pi_g, rollouts, horizon, s_val).values(tabs, batch)
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
        f"CRN count simulator, {rollouts} rollouts x {horizon} steps",
    }
    return best, info


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


# ---------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------


def l_learn(
    game: TabularGame,
    pi_g: GlobalPolicy,
    solver: str = "induced-vi",
    seed: int | np.random.SeedSequence = 0,
    *,
    pi_l: LocalPolicy | None = None,
    evaluator: Evaluator | None = None,
    estimate_value: bool = True,
    eval_rollouts: int = 50,
    eval_horizon: int = 100,
    **options: Any,
) -> LocalPolicy:
    """L-LEARN (paper Algorithm 2, SPEC 5): a shared local policy that (approximately) best
    responds to ``pi_g``.

    Parameters
    ----------
    game, pi_g
        The game and the fixed global policy.
    solver
        ``"induced-vi"`` (SPEC 5.1, :func:`induced_vi`), ``"direct"`` (SPEC 5.3,
        :func:`direct_search`) or ``"chained"`` (SPEC 5.2,
        :func:`altmarl.chained.chained_best_response`).
    seed
        Drives every random draw of the solver.
    pi_l
        The current local policy: it defines the population induced-VI responds to and is
        a starting point of the direct search (default: uniform).
    evaluator
        ``evaluator(pi_g, pi_l') -> ValueEstimate`` for ``info["value"]``; default a
        Monte-Carlo evaluation (``eval_rollouts`` x ``eval_horizon``, seed derived from
        ``seed``). ``estimate_value=False`` skips it (``info["value"]`` is then the
        solver's own estimate when it has one, else ``None``).
    **options
        Passed to the solver (see its docstring); unknown names raise ``ValueError``.

    Returns
    -------
    LocalPolicy
        ``info``: ``solver``, ``value``, ``value_stderr``, ``samples`` (generative-model
        calls spent learning: count-simulator steps of one rollout + k-sample histograms
        drawn; the value estimate is not included), ``wall_time`` (seconds, learning
        only) and solver diagnostics.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver = {solver!r}: expected one of {list(SOLVERS)}")
    if not isinstance(pi_g, GlobalPolicy):
        raise ValueError(f"pi_g: expected an altmarl.GlobalPolicy, got {type(pi_g).__name__}")
    if pi_l is not None and not isinstance(pi_l, LocalPolicy):
        raise ValueError(f"pi_l: expected None or an altmarl.LocalPolicy, got {type(pi_l).__name__}")
    check_joint(game, pi_g, pi_l if pi_l is not None else LocalPolicy.uniform(game))
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    s_solver, s_eval = ss.spawn(2)
    t0 = time.perf_counter()
    info: dict[str, Any]
    if solver == "induced-vi":
        _check_options(induced_vi, options, solver)
        table, info = induced_vi(game, pi_g, pi_l, s_solver, **options)
        own_value = None
    elif solver == "direct":
        _check_options(direct_search, options, solver)
        table, info = direct_search(game, pi_g, pi_l, s_solver, **options)
        own_value = info["search_value"]
    else:
        from altmarl import chained

        fn = chained.chained_best_response
        _check_options(fn, options, solver)
        int_seed = int(s_solver.generate_state(1)[0])
        table, cinfo = fn(game, pi_g, seed=int_seed, **options)
        info = dict(cinfo)
        own_value = info.pop("value", None)
        info["chained_value"] = own_value
    wall = time.perf_counter() - t0
    info["solver"] = solver
    info["wall_time"] = wall
    info.setdefault("samples", 0)
    pol = LocalPolicy(table, info, game)
    if estimate_value:
        ev = evaluator or mc_evaluator(game, eval_rollouts, eval_horizon,
                                       int(s_eval.generate_state(1)[0]))
        est = ev(pi_g, pol)
        pol.info["value"], pol.info["value_stderr"] = est.mean, est.stderr
    else:
        pol.info["value"] = own_value
        pol.info["value_stderr"] = None
    return pol


def _check_options(fn: Callable[..., Any], options: dict[str, Any], solver: str) -> None:
    params = inspect.signature(fn).parameters
    allowed = [p for p in params if p not in ("game", "pi_g", "pi_l", "seed")]
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise ValueError(f"options {bad}: not accepted by the {solver!r} solver; "
                         f"expected some of {sorted(allowed)}")


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} = {value!r}: expected an integer >= {minimum}")
    return int(value)
