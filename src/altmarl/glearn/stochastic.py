"""G-LEARN with stochastic rewards: the randomized empirical operator ``T_tilde`` (paper
Appendix F, Definition F.2, eq. 44).

``T_tilde`` has G-LEARN's sampled transitions (:func:`~altmarl.glearn.operator.empirical_operator`
on the mean-reward game, same ``seed`` and options) and replaces ``r_k`` by the average of
``m_reward`` reward draws from a :class:`~altmarl.glearn.rewards.RewardModel`
(:func:`averaged_rewards`); :func:`altmarl.g_learn_stochastic` solves it. The reward draws
come from child 3 of ``seed`` (:func:`altmarl._random.child`), disjoint from the three
streams G-LEARN uses.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
from numpy.typing import NDArray

from altmarl._random import child, rng
from altmarl._validate import check_int
from altmarl.game import TabularGame
from altmarl.glearn.operator import EmpiricalOperator, empirical_operator, pi_l_table
from altmarl.glearn.options import GLearnOptions
from altmarl.glearn.rewards import RewardModel
from altmarl.glearn.states import state_counts
from altmarl.policies import LocalPolicy

FloatArray = NDArray[np.float64]

#: rows of the histogram table handled per chunk by :func:`averaged_rewards`
_CHUNK_ROWS = 1 << 14


def averaged_rewards(game: TabularGame, pi_l: LocalPolicy | FloatArray, k: int,
                     reward_model: RewardModel, m: int, seed: int = 0,
                     parameterization: str = "mean-field") -> tuple[FloatArray, FloatArray]:
    """The ``m``-draw reward averages of the randomized operator (Definition F.2).

    Returns ``(r_g_hat, r_loc_hat)``. ``r_g_hat[s_g, a_g]`` is the mean of ``m`` draws of
    ``D_g(s_g, a_g)``. ``r_loc_hat[s_g, x]`` is, for the surrogate state ``x`` (a histogram
    ``h``, or an ordered tuple and its counts ``h``), the mean over ``m`` samples ``j`` of
    ``(1/k) sum_y h[y] sum_a pi_l[y, s_g, a] rbar_j(y, s_g, a)``, where ``rbar_j(y, s_g, a)``
    is the mean of ``h[y]`` fresh draws of ``D_l(y, s_g, a)`` (one per agent of bin ``y``):
    SPEC 4's ``r_k`` with every local reward drawn and the expectation over ``pi_l`` kept
    exact, as in ``r_k``. So a model without noise gives exactly ``r_k`` (and G-LEARN's
    operator), and each sample is a convex combination of draws, bounded like one draw.

    Entry ``(s_g, x, a_g)`` of the operator uses ``r_g_hat[s_g, a_g] + r_loc_hat[s_g, x]``:
    each is an average of ``m`` i.i.d. bounded samples with the right law, the global draws
    being shared across ``x`` and the local ones across ``a_g`` (common random numbers, like
    G-LEARN's ``crn="pool"``; Lemma F.4's per-entry Hoeffding bound and union bound hold
    unchanged). Drawn from child 3 of ``seed`` (``SeedSequence(seed).spawn(4)[3]``), a
    stream disjoint from the three G-LEARN uses, so the transitions stay those of
    ``g_learn(..., seed)``.
    """
    table = pi_l_table(game, pi_l)
    reward_model.check_game(game)
    S, A, d = game.n_sg, game.n_ag, game.n_sl
    ss = child(seed, 3)
    ss_g, ss_l = child(ss, 0), child(ss, 1)
    rng_g = rng(ss_g)
    sg_idx = np.repeat(np.arange(S), A).reshape(S, A)
    ag_idx = np.tile(np.arange(A), S).reshape(S, A)
    r_g_hat = reward_model.sample_global(rng_g, sg_idx, ag_idx, m) / m
    Hs = state_counts(k, d, parameterization)
    N = Hs.shape[0]
    r_loc_hat = np.empty((S, N))
    x_idx = np.arange(d)[None, :, None]
    a_idx = np.arange(game.n_al)[None, None, :]
    for s in range(S):
        rng_s = rng(ss_l, s)
        for lo in range(0, N, _CHUNK_ROWS):
            hs = Hs[lo:lo + _CHUNK_ROWS]  # (B, d)
            # m h[y] draws of D_l(y, s, a) for every (y, a), weighted by pi_l[y, s, a]
            C = np.broadcast_to((m * hs)[:, :, None], hs.shape + (game.n_al,))
            draws = reward_model.l.sum_draws(rng_s, (x_idx, s, a_idx), C)  # (B, d, A_l)
            tot = np.einsum("bya,ya->b", draws, table[:, s, :])
            r_loc_hat[s, lo:lo + hs.shape[0]] = tot / (k * m)
    return np.asarray(r_g_hat, dtype=np.float64), r_loc_hat


def randomized_operator(
    game: TabularGame,
    pi_l: LocalPolicy | FloatArray,
    k: int,
    reward_model: RewardModel,
    seed: int = 0,
    options: GLearnOptions | None = None,
    m_reward: int | None = None,
) -> EmpiricalOperator:
    """The randomized empirical operator ``T_tilde`` of Definition F.2 (eq. 44).

    Transitions exactly as G-LEARN's :func:`~altmarl.glearn.operator.empirical_operator`
    with the same ``seed`` and ``options`` (so the only difference is the rewards); ``r_k``
    replaced by the average of ``m_reward`` reward draws (default ``m_reward = options.m``;
    with ``m=None``, the exact transition expectation, ``m_reward`` must be given, or
    ``None`` for the exact mean rewards).
    """
    if not isinstance(reward_model, RewardModel):
        raise ValueError(f"reward_model: expected an altmarl.RewardModel, got "
                         f"{type(reward_model).__name__}")
    reward_model.check_game(game)
    opts = GLearnOptions.from_keywords(options)
    mr = opts.m if m_reward is None else check_int("m_reward", m_reward, 1)
    mean_game = reward_model.mean_game(game)
    op = empirical_operator(mean_game, pi_l, k, seed, opts)
    if mr is None:
        return op  # exact mean rewards
    r_g_hat, r_loc_hat = averaged_rewards(game, pi_l, op.k, reward_model, int(mr), seed,
                                          op.parameterization)
    model = copy.copy(op.model)
    model.r_g = r_g_hat
    model.r_loc = r_loc_hat
    draws = dict(op.draws)
    draws["reward_global"] = game.n_sg * game.n_ag * int(mr)
    draws["reward_local_agents"] = game.n_sg * op.shape[1] * op.k * int(mr)
    return dataclasses.replace(op, model=model, draws=draws)
