"""Online execution (paper Algorithm 5, SPEC 3): the population simulators.

Two simulators of the ``n``-agent system under a joint policy ``(pi_g, pi_l)``:

* :func:`rollout_counts` — the default. Agents are exchangeable, so the population is
  the count vector ``N_t`` (``sum N_t = n``). One step, batched over ``R`` rollouts:

  1. ``h ~ MultivariateHypergeometric(N_t, k)`` — the histogram of a uniform
     ``k``-subset drawn *without replacement*, fresh every step;
  2. ``a_g = pi_g(s_g, h)``;
  3. for every state bin ``x``, the joint (action, next state) counts of its ``N_t[x]``
     agents are ``Multinomial(N_t[x], pi_l[x, s_g, a] P_l[x, s_g, a, x'])`` — the same
     law as "actions multinomial per bin, next states multinomial per (bin, action)
     cell";
  4. reward ``r_g(s_g, a_g) + (1/n) sum_{x,a} M[x, a] r_l(x, s_g, a)`` (SPEC eq. 1);
  5. ``s_g' ~ P_g(. | s_g, a_g)``, ``N_{t+1}[x'] = sum_{x,a} M[x, a, x']``.

  This is exact in distribution and costs ``O(|S_l|^2 |A_l|)`` draws per step,
  independent of ``n``.
* :func:`rollout_agents` — one state per agent (for tracking individuals and for
  tests); ``O(n)`` per step.

Both use the state *before* the step for every transition (SPEC 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from altmarl.game import TabularGame
from altmarl.histogram import rank
from altmarl.policies import GlobalPolicy, LocalPolicy

if TYPE_CHECKING:
    from altmarl.stochastic import RewardModel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: numpy's hypergeometric sampler needs ngood and nbad below this bound
_HYPERGEOM_LIMIT = 10**9
#: up to this many rows, the per-bin hypergeometric draws are made one scalar call per row
#: (same sampler, same order, hence the same numbers as the array call): NumPy's array
#: ``hypergeometric`` has a fixed cost of ~30 us per call, a scalar call ~1 us
_SCALAR_ROWS = 16


@dataclass
class Trajectories:
    """Per-step records of a batch of rollouts (``R`` rollouts, horizon ``H``).

    ``rewards[r, t]`` stage reward; ``s_g[r, t]`` and ``a_g[r, t]``; ``counts[r, t, x]``
    the count vector *before* step ``t`` (when recorded); ``mode_match[r, t]`` whether
    ``a_g`` equals the most populated local state (``None`` unless ``|A_g| = |S_l|``).
    """

    rewards: FloatArray
    s_g: IntArray
    a_g: IntArray
    counts: IntArray | None
    mode_match: NDArray[np.bool_] | None

    def discounted_returns(self, gamma: float) -> FloatArray:
        """``sum_t gamma^t r_t`` per rollout."""
        disc = gamma ** np.arange(self.rewards.shape[1])
        return np.asarray(self.rewards @ disc, dtype=np.float64)


def subsample_histograms(
    counts: IntArray, k: int, rng: np.random.Generator, method: str = "auto"
) -> IntArray:
    """Histogram of a uniform ``k``-subset drawn without replacement from each row of
    ``counts`` (multivariate hypergeometric), vectorized over rows. Exact for any ``n``.

    ``method``: ``"hypergeometric"`` (conditional hypergeometric draws per bin; NumPy
    needs populations below 10^9), ``"sequential"`` (the ``k`` agents drawn one at a time
    without replacement; any ``n``, cost ``O(k)``), or ``"auto"`` (the first when it
    applies, else the second).
    """
    if method not in ("auto", "hypergeometric", "sequential"):
        raise ValueError(f"method = {method!r}: expected 'auto', 'hypergeometric' or 'sequential'")
    counts = np.asarray(counts, dtype=np.int64)
    n_tot = counts.sum(axis=1)
    if np.any(n_tot < k):
        raise ValueError(f"k = {k}: expected k <= n (population sizes {np.unique(n_tot)})")
    if np.all(n_tot == k):
        return counts.copy()
    use_hyper = n_tot.max() < _HYPERGEOM_LIMIT
    if method == "hypergeometric" and not use_hyper:
        raise ValueError(f"method = 'hypergeometric' needs n < {_HYPERGEOM_LIMIT}")
    if use_hyper and method != "sequential":
        return _split_hypergeometric(counts, k, n_tot, rng)
    return _sequential_draws(counts, k, n_tot, rng)


def _split_hypergeometric(counts: IntArray, k: int, n_tot: IntArray,
                          rng: np.random.Generator) -> IntArray:
    """Multivariate hypergeometric draw bin by bin: ``h[x] ~ Hypergeometric(counts[x],
    remaining - counts[x], k - h[0..x-1])``. Inputs are trusted (``k <= n_tot < 10^9``).

    Few rows: one scalar call per (bin, row), in the order the array call consumes the
    stream (bins outer, rows inner), so both branches give identical numbers."""
    R, d = counts.shape
    if R <= _SCALAR_ROWS:
        cols = counts.T.tolist()
        rem = n_tot.tolist()
        lft = [int(k)] * R
        out = []
        for x in range(d - 1):
            col = cols[x]
            row = []
            for r in range(R):
                good = col[r]
                bad = rem[r] - good
                v = int(rng.hypergeometric(good, bad, lft[r]))
                row.append(v)
                lft[r] -= v
                rem[r] = bad
            out.append(row)
        out.append(lft)
        return np.array(out, dtype=np.int64).T.copy()
    h = np.empty((R, d), dtype=np.int64)
    remaining = n_tot.copy()
    left = np.full(R, k, dtype=np.int64)
    for x in range(d - 1):
        good = counts[:, x]
        bad = remaining - good
        draw = rng.hypergeometric(good, bad, left)
        h[:, x] = draw
        left -= draw
        remaining = bad
    h[:, d - 1] = left
    return h


def sequential_subsample(counts: IntArray, u: FloatArray) -> IntArray:
    """Histogram of ``k = len(u)`` agents drawn one at a time without replacement from each
    row of ``counts``; draw ``j`` picks a bin by inverse CDF of the uniforms ``u[j]`` (shape
    ``(k, R)``). Exact multivariate hypergeometric law for any ``n``; callers that need
    common random numbers pass their own ``u``."""
    R, d = counts.shape
    # bins lead (contiguous rows of length R); the bin of draw j is the number of partial
    # sums rem[0] + ... + rem[i], i < d - 1, that are <= u[j] * tot (the same comparisons as
    # a cumsum over the bins, ~3x faster than cumsum/sum on a short axis)
    remT = np.ascontiguousarray(counts.T, dtype=np.float64)
    tot = remT.sum(axis=0)
    rows = np.arange(R)
    hT = np.zeros((d, R), dtype=np.int64)
    for j in range(u.shape[0]):
        thr = u[j] * tot
        c = np.zeros(R)
        x = np.zeros(R, dtype=np.intp)
        for i in range(d - 1):
            c += remT[i]
            x += c <= thr
        # u < 1 and integer counts: bin x is never empty
        hT[x, rows] += 1
        remT[x, rows] -= 1
        tot -= 1
    return np.ascontiguousarray(hT.T)


def _sequential_draws(counts: IntArray, k: int, n_tot: IntArray,
                      rng: np.random.Generator) -> IntArray:
    """The ``k`` agents drawn one at a time without replacement (any ``n``, cost ``O(k)``)."""
    return sequential_subsample(counts, rng.random((k, counts.shape[0])))


def _sample_rows(cdf_rows: FloatArray, rng: np.random.Generator) -> IntArray:
    """One categorical draw per row from cumulative tables ``cdf_rows`` (shape ``(R, m)``)."""
    u = np.asarray(rng.random(int(cdf_rows.shape[0])), dtype=np.float64)
    x = (cdf_rows < u[:, None]).sum(axis=1)
    return np.minimum(x, cdf_rows.shape[1] - 1).astype(np.int64)


def global_actions(pi_g: GlobalPolicy, s_g: IntArray, counts: IntArray, rng: np.random.Generator,
                   n: int) -> IntArray:
    """``a_g = pi_g(s_g, hist(s_Delta))`` with a fresh ``k``-subsample per rollout."""
    if pi_g.k == n:
        h = counts
    elif n < _HYPERGEOM_LIMIT:  # rows of a simulation: every row sums to n, no checks needed
        h = _split_hypergeometric(counts, pi_g.k, np.full(counts.shape[0], n, np.int64), rng)
    else:
        h = subsample_histograms(counts, pi_g.k, rng)
    return pi_g.act_ranked(s_g, rank(h, pi_g.k))


def _check_joint(game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy) -> None:
    if pi_l.table.shape != (game.n_sl, game.n_sg, game.n_al):
        raise ValueError(
            f"pi_l.table: expected shape {(game.n_sl, game.n_sg, game.n_al)} for game "
            f"{game.name!r}, got {pi_l.table.shape}"
        )
    if (pi_g.n_sg, pi_g.n_sl, pi_g.n_ag) != (game.n_sg, game.n_sl, game.n_ag):
        raise ValueError(
            f"pi_g: made for |S_g|={pi_g.n_sg}, |S_l|={pi_g.n_sl}, |A_g|={pi_g.n_ag}; "
            f"game {game.name!r} has {game.spaces}"
        )
    game.check_k(pi_g.k)


def rollout_counts(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    rollouts: int,
    horizon: int,
    rng: np.random.Generator,
    record_counts: bool = False,
    init: tuple[IntArray, IntArray] | None = None,
    reward_model: RewardModel | None = None,
) -> Trajectories:
    """Simulate ``rollouts`` independent runs of ``horizon`` steps on count vectors.

    ``init`` optionally fixes the initial ``(s_g, counts)`` (arrays of length ``rollouts``);
    by default it is drawn from ``game.init``. ``reward_model`` (an
    :class:`altmarl.stochastic.RewardModel`, Appendix F) replaces ``r_g`` / ``r_l`` by
    draws: ``r_g ~ D_g(s_g, a_g)`` and, per (state, action) cell, the sum of the ``M[x, a]``
    agents' local draws, drawn in aggregate (exact; see ``altmarl.stochastic``). Without
    it the deterministic path is unchanged.
    """
    _check_joint(game, pi_g, pi_l)
    if reward_model is not None:
        reward_model.check_game(game)
    R, H, n = int(rollouts), int(horizon), game.n
    d, A = game.n_sl, game.n_al
    if init is None:
        s_g, N = game.sample_init(rng, R)
    else:
        s_g = np.asarray(init[0], dtype=np.int64).copy()
        N = np.asarray(init[1], dtype=np.int64).copy()
    # joint (action, next state) probabilities per (x, s_g): J[s_g, x, a * d + x']
    J = np.einsum("xga,xgay->gxay", pi_l.table, game.P_l).reshape(game.n_sg, d, A * d)
    J = np.clip(J, 0.0, None)
    J /= J.sum(axis=-1, keepdims=True)
    rl = game.r_l.transpose(1, 0, 2)  # (S_g, S_l, A_l)
    cdf_g = np.cumsum(game.P_g, axis=-1)
    rewards = np.empty((R, H))
    sg_hist = np.empty((R, H), dtype=np.int64)
    ag_hist = np.empty((R, H), dtype=np.int64)
    counts_hist = np.empty((R, H, d), dtype=np.int64) if record_counts else None
    track_mode = game.n_ag == game.n_sl
    mode = np.empty((R, H), dtype=bool) if track_mode else None
    for t in range(H):
        a_g = global_actions(pi_g, s_g, N, rng, n)
        M = rng.multinomial(N, J[s_g]).reshape(R, d, A, d)
        # integer sums by einsum: exact, and ~4x faster than .sum over short axes
        act_counts = np.einsum("rxay->rxa", M)  # (R, d, A)
        if reward_model is None:
            rewards[:, t] = game.r_g[s_g, a_g] + np.einsum("rxa,rxa->r", act_counts, rl[s_g]) / n
        else:
            rewards[:, t] = reward_model.stage_reward(rng, s_g, a_g, act_counts, n)
        sg_hist[:, t] = s_g
        ag_hist[:, t] = a_g
        if counts_hist is not None:
            counts_hist[:, t] = N
        if mode is not None:
            mode[:, t] = a_g == N.argmax(axis=1)
        s_g = _sample_rows(cdf_g[s_g, a_g], rng)
        N = np.einsum("rxay->ry", M)
    return Trajectories(rewards, sg_hist, ag_hist, counts_hist, mode)


def rollout_agents(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    rollouts: int,
    horizon: int,
    rng: np.random.Generator,
    record_counts: bool = False,
    init: tuple[IntArray, IntArray] | None = None,
    return_states: bool = False,
) -> Any:
    """Per-agent simulator: every agent has its own state (``O(n)`` per step).

    Same law as :func:`rollout_counts`; use it to follow individual agents (with
    ``return_states=True`` it also returns the final per-agent states ``(R, n)``).
    """
    _check_joint(game, pi_g, pi_l)
    R, H, n, k = int(rollouts), int(horizon), game.n, pi_g.k
    d, A = game.n_sl, game.n_al
    if init is None:
        s_g, N = game.sample_init(rng, R)
    else:
        s_g = np.asarray(init[0], dtype=np.int64).copy()
        N = np.asarray(init[1], dtype=np.int64).copy()
    # agents' states from the counts, in a random order
    states = np.stack([rng.permutation(np.repeat(np.arange(d), N[r])) for r in range(R)])
    cdf_l = np.cumsum(pi_l.table, axis=-1)  # (d, S_g, A)
    cdf_p = np.cumsum(game.P_l, axis=-1)  # (d, S_g, A, d)
    cdf_g = np.cumsum(game.P_g, axis=-1)
    rows = np.arange(R)[:, None]
    offsets = (np.arange(R) * d)[:, None]
    rewards = np.empty((R, H))
    sg_hist = np.empty((R, H), dtype=np.int64)
    ag_hist = np.empty((R, H), dtype=np.int64)
    counts_hist = np.empty((R, H, d), dtype=np.int64) if record_counts else None
    track_mode = game.n_ag == game.n_sl
    mode = np.empty((R, H), dtype=bool) if track_mode else None
    for t in range(H):
        N = np.bincount((states + offsets).ravel(), minlength=R * d).reshape(R, d)
        # uniform k-subset without replacement: the k smallest of n uniform keys
        if k == n:
            h = N
        else:
            idx = np.argpartition(rng.random((R, n)), k - 1, axis=1)[:, :k]
            h = np.bincount((states[rows, idx] + offsets).ravel(), minlength=R * d).reshape(R, d)
        a_g = pi_g.act_ranked(s_g, rank(h, k))
        sgb = np.broadcast_to(s_g[:, None], states.shape)
        u = rng.random((R, n))
        acts = (cdf_l[states, sgb] < u[..., None]).sum(axis=-1).clip(max=A - 1)
        rewards[:, t] = game.r_g[s_g, a_g] + game.r_l[states, sgb, acts].mean(axis=1)
        sg_hist[:, t] = s_g
        ag_hist[:, t] = a_g
        if counts_hist is not None:
            counts_hist[:, t] = N
        if mode is not None:
            mode[:, t] = a_g == N.argmax(axis=1)
        u2 = rng.random((R, n))
        states = (cdf_p[states, sgb, acts] < u2[..., None]).sum(axis=-1).clip(max=d - 1)
        s_g = _sample_rows(cdf_g[s_g, a_g], rng)
    traj = Trajectories(rewards, sg_hist, ag_hist, counts_hist, mode)
    if return_states:
        return traj, states
    return traj
