"""Tests of the exact values and occupancy (altmarl.exact.values): Monte-Carlo of the count
simulator, the Bellman equation, closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from exact_oracles import exact_game, random_pi_g, random_pi_l

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.exact.values import (
    discounted_occupancy,
    occupancy,
    policy_value,
    policy_values,
    q_values,
)


@pytest.mark.parametrize("seed,kw,k", [
    (0, {}, 2),
    (1, {"n_sl": 3, "n": 5}, 2),
    (2, {"n_sg": 3, "n_ag": 3, "n": 6, "gamma": 0.8}, 3),
])
def test_value_matches_monte_carlo(seed, kw, k):
    game = exact_game(seed, **kw)
    rng = np.random.default_rng(seed)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, k, rng)
    v = ExactSolver(game, k).value(pi_g, pi_l)
    ev = am.evaluate(game, pi_g, pi_l, rollouts=3000, horizon=150, seed=seed, workers=1)
    # 4.5 standard errors plus the truncation bias (one-sided, at most the bound)
    assert abs(ev.mean - v) <= 4.5 * ev.stderr + ev.truncation_bound


def test_value_with_dirichlet_init_matches_monte_carlo():
    game = am.envs.make("warehouse", n=6, zones=3, gamma=0.8)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.sample_mode(game, 2)
    v = ExactSolver(game, 2).value(pi_g, pi_l)
    ev = am.evaluate(game, pi_g, pi_l, rollouts=3000, horizon=120, seed=5, workers=1)
    assert abs(ev.mean - v) <= 4.5 * ev.stderr + ev.truncation_bound


def test_values_satisfy_bellman_equation():
    game = exact_game(4, n_sl=3, n=4)
    rng = np.random.default_rng(0)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    V = ex.values(pi_g, pi_l)
    P = ex.transition_matrix(pi_g, pi_l)
    R = ex.expected_reward(pi_g, pi_l)
    np.testing.assert_allclose(V, R + game.gamma * np.einsum("gmhn,hn->gm", P, V), atol=1e-10)


def test_iterative_solver_matches_dense():
    game = exact_game(5, n_sl=3, n=6)
    rng = np.random.default_rng(1)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 3, rng)
    dense = ExactSolver(game, 3).values(pi_g, pi_l)
    it = ExactSolver(game, 3, dense_limit=1).values(pi_g, pi_l)
    np.testing.assert_allclose(it, dense, atol=1e-9)
    d1 = ExactSolver(game, 3).occupancy(pi_g, pi_l)
    d2 = ExactSolver(game, 3, dense_limit=1).occupancy(pi_g, pi_l)
    np.testing.assert_allclose(d1, d2, atol=1e-9)
    assert d1.sum() == pytest.approx(1 / (1 - game.gamma))


def test_constant_reward_closed_form():
    """With every reward equal to ``c`` (global) and ``c_l`` (local), ``V = (c + c_l) / (1 -
    gamma)`` in every chain state, whatever the kernels and policies."""
    base = exact_game(12, n_sl=3, n=4, gamma=0.8)
    game = am.TabularGame(base.P_g, base.P_l, np.full_like(base.r_g, 0.7),
                          np.full_like(base.r_l, 0.3), base.gamma, base.n, init=base.init)
    rng = np.random.default_rng(12)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    np.testing.assert_allclose(policy_values(ex, pi_g, pi_l), 1.0 / 0.2, rtol=1e-12)
    assert policy_value(ex, pi_g, pi_l) == pytest.approx(5.0, rel=1e-12)


def test_one_agent_chain_is_the_single_agent_mdp():
    """n = 1: the chain is the MDP of one agent on (s_g, s_l) with joint kernel
    P_g(s_g' | s_g, a_g) K(s_l' | s_l, s_g); its value is a direct linear solve."""
    game = exact_game(13, n=1, n_sl=3, n_sg=2)
    rng = np.random.default_rng(13)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 1, rng)
    ex = ExactSolver(game, 1)
    K = game.local_kernel(pi_l.table)  # (x, g, x')
    eye = np.eye(game.n_sl, dtype=np.int64)  # with n = 1 the histogram is e_{s_l}
    P = np.zeros((game.n_sg, game.n_sl, game.n_sg, game.n_sl))
    r = np.zeros((game.n_sg, game.n_sl))
    for g in range(game.n_sg):
        for x in range(game.n_sl):
            a = pi_g.act(g, eye[x])
            P[g, x] = np.outer(game.P_g[g, a], K[x, g])
            r[g, x] = game.r_g[g, a] + game.local_reward(pi_l.table)[x, g]
    S = game.n_sg * game.n_sl
    V = np.linalg.solve(np.eye(S) - game.gamma * P.reshape(S, S), r.reshape(S)).reshape(r.shape)
    # the count vector of one agent in state x is the unit vector e_x (rank order)
    order = [int(np.argmax(N)) for N in ex.states]
    np.testing.assert_allclose(ex.values(pi_g, pi_l), V[:, order], atol=1e-11)


def test_occupancy_value_duality():
    """``sum_s d(s) r(s) = V(mu)``: the occupancy and the values are the two sides of one
    linear system; the occupancy sums to ``1 / (1 - gamma)``."""
    game = exact_game(14, n_sl=3, n=5, gamma=0.9)
    rng = np.random.default_rng(14)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    d = occupancy(ex, pi_g, pi_l)
    assert d.sum() == pytest.approx(1 / (1 - game.gamma), rel=1e-12)
    assert (d >= -1e-15).all()
    r = ex.expected_reward(pi_g, pi_l)
    assert float((d * r).sum()) == pytest.approx(policy_value(ex, pi_g, pi_l), rel=1e-11)
    # the power series (above dense_limit) gives the same occupancy
    A = ex.global_kernel(ex.action_probs(pi_g))
    series = discounted_occupancy(ExactSolver(game, 2, dense_limit=1), A,
                                  ex.count_transitions(pi_l))
    np.testing.assert_allclose(series, d, atol=1e-9)


def test_q_values_are_one_bellman_backup():
    game = exact_game(15, n=3, n_ag=3)
    rng = np.random.default_rng(15)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 3, rng)
    ex = ExactSolver(game, 3)
    V = ex.values(pi_g, pi_l)
    Q = q_values(ex, V, ex.count_transitions(pi_l), ex.local_reward(pi_l))
    # with k = n the policy acts on the count vector: Q at its action is V
    acts = pi_g.actions  # (S_g, |H_n|)
    np.testing.assert_allclose(np.take_along_axis(Q, acts[..., None], axis=-1)[..., 0], V,
                               atol=1e-10)
    # and each Q(., ., a) is the value of playing a once, then pi_g
    P = ex.transition_matrix(am.GlobalPolicy(3, np.zeros_like(acts), game.n_ag, game=game),
                             pi_l)
    R = ex.expected_reward(am.GlobalPolicy(3, np.zeros_like(acts), game.n_ag, game=game), pi_l)
    np.testing.assert_allclose(Q[..., 0], R + game.gamma * np.einsum("gmhn,hn->gm", P, V),
                               atol=1e-10)
