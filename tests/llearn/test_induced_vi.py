"""Induced-VI (SPEC 5.1): value iteration on the representative agent's induced MDP.

Oracles: the exact n-agent chain (altmarl.exact.ExactSolver) on small random games.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.llearn.induced_vi import (
    DEFAULT_M,
    InducedVIOptions,
    global_action_distribution,
    induced_vi,
    policy_from_q,
)


def test_induced_vi_returns_valid_greedy_policy(warehouse):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 5)
    pol = am.l_learn(warehouse, pi_g, "induced-vi", seed=0, eval_rollouts=20, eval_horizon=50)
    t = pol.table
    assert t.shape == (5, 5, 3)
    np.testing.assert_allclose(t.sum(-1), 1.0)
    assert pol.is_deterministic()
    for key in ("value", "value_stderr", "samples", "solver", "wall_time", "iterations"):
        assert key in pol.info
    assert pol.info["solver"] == "induced-vi"
    assert pol.info["samples"] > 0 and np.isfinite(pol.info["value"])
    # the value reported is the Monte-Carlo value of the returned policy
    ev = pol.info["value"]
    assert 0 < ev < warehouse.r_max / (1 - warehouse.gamma)


def test_induced_vi_softmax_temperature(warehouse):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    greedy, info = induced_vi(warehouse, pi_g, seed=1)
    soft, _ = induced_vi(warehouse, pi_g, seed=1, options=InducedVIOptions(temperature=0.5))
    np.testing.assert_allclose(soft.sum(-1), 1.0)
    assert (soft > 0).all() and not np.isin(soft, (0.0, 1.0)).all()
    # softmax of the same Q: its argmax is the greedy action
    np.testing.assert_array_equal(soft.argmax(-1), greedy.argmax(-1))
    q = info["q"]
    np.testing.assert_allclose(greedy.argmax(-1), q.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        InducedVIOptions(temperature=0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_induced_vi_exact_when_global_action_is_exogenous(seed, make_game):
    """|A_g| = 1: s_g is an autonomous chain, every agent faces the same Markov MDP on
    (s_l, s_g), so induced-VI is the exact best response in Pi_l."""
    game = make_game(seed, n_ag=1, n=4)
    ex = ExactSolver(game, 2)
    pi_g = am.GlobalPolicy.constant(game, 2, 0)
    pol = am.l_learn(game, pi_g, "induced-vi", seed=seed, estimate_value=False, m=5)
    br = ex.local_best_response(pi_g, refine=False)
    assert br.exact  # deterministic optimality proven by the solver in this case
    assert ex.value(pi_g, pol) == pytest.approx(br.value, abs=1e-6)


def test_induced_vi_exact_for_constant_global_policy(make_game):
    game = make_game(7, n_ag=3, n=5)
    ex = ExactSolver(game, 3)
    pi_g = am.GlobalPolicy.constant(game, 3, 2)
    table, info = induced_vi(game, pi_g, seed=0, options=InducedVIOptions(m=3))
    np.testing.assert_allclose(info["p_ag"][:, 2], 1.0)
    br = ex.local_best_response(pi_g, refine=False)
    assert ex.value(pi_g, am.LocalPolicy(table)) == pytest.approx(br.value, abs=1e-6)


def test_global_action_distribution_matches_policy(make_game, random_global):
    game = make_game(3, n=6)
    pi_g = random_global(game, 2, 0)
    p, info = global_action_distribution(game, pi_g, am.LocalPolicy.uniform(game), m=4,
                                         rollouts=8, horizon=20, rng=np.random.default_rng(0))
    assert p.shape == (game.n_sg, game.n_ag)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert info["samples"] == 8 * 20 + 8 * 20 * 4
    # a policy that ignores the sample gives a point mass
    p1, _ = global_action_distribution(game, am.GlobalPolicy.constant(game, 2, 1),
                                       am.LocalPolicy.uniform(game), m=2, rollouts=4,
                                       horizon=5, rng=np.random.default_rng(0))
    np.testing.assert_allclose(p1[:, 1], 1.0)


def test_induced_vi_options_are_frozen_and_validated():
    o = InducedVIOptions()
    assert o.m == DEFAULT_M == 30 and o.temperature is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.m = 5  # type: ignore[misc]
    for kw, field in [({"m": 0}, "m"), ({"pop_rollouts": 1.5}, "pop_rollouts"),
                      ({"pop_horizon": True}, "pop_horizon"), ({"population_iters": 0},
                                                               "population_iters"),
                      ({"temperature": float("inf")}, "temperature"), ({"tol": 0.0}, "tol"),
                      ({"max_iter": -1}, "max_iter")]:
        with pytest.raises(ValueError, match=field):
            InducedVIOptions(**kw)
    with pytest.raises(ValueError, match="options"):
        induced_vi(am.envs.make("random", n=4), am.GlobalPolicy.constant(
            am.envs.make("random", n=4), 1, 0), options={"m": 3})  # type: ignore[arg-type]


def test_policy_from_q_greedy_ties_and_softmax():
    q = np.array([[[1.0, 3.0, 3.0], [0.0, -1.0, -2.0]]])  # (1, 2, 3): a tie at (0, 0)
    np.testing.assert_array_equal(policy_from_q(q), [[[0, 1, 0], [1, 0, 0]]])
    soft = policy_from_q(q, temperature=1.0)
    e = np.exp(q[0, 1] - q[0, 1].max())
    np.testing.assert_allclose(soft[0, 1], e / e.sum())
    np.testing.assert_allclose(soft.sum(-1), 1.0)
