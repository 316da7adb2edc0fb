"""Tests of the ExactSolver facade (altmarl.exact.solver): limits, refusals, the public
surface, and G-LEARN's exact-expectation solutions against it."""

from __future__ import annotations

import numpy as np
import pytest
from exact_oracles import exact_game, random_pi_l

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.glearn import g_learn


def test_refuses_large_games_with_size_and_limit():
    game = am.envs.make("warehouse", n=1000)
    with pytest.raises(ValueError, match=r"states.*max_states = 6000"):
        ExactSolver(game, 5)
    with pytest.raises(ValueError, match="max_states = 10"):
        ExactSolver(exact_game(0, n=20), 2, max_states=10)
    with pytest.raises(ValueError, match="k = 9"):
        ExactSolver(exact_game(0), 9)


def test_refuses_large_enumerations():
    game = exact_game(0, n_sl=3, n_al=3, n_sg=3, n=3)
    ex = ExactSolver(game, 2, max_local_policies=100, max_restricted_policies=100)
    pi_g = am.GlobalPolicy.constant(game, 2)
    with pytest.raises(ValueError, match=r"3\^\(3 \* 3\).*max_local_policies = 100"):
        ex.local_best_response(pi_g, method="enumerate")
    with pytest.raises(ValueError, match="method"):
        ex.local_best_response(pi_g, method="bogus")
    with pytest.raises(ValueError, match="max_restricted_policies = 100"):
        ex.restricted_best_response(am.LocalPolicy.uniform(game), method="enumerate")



@pytest.mark.parametrize("seed,kw", [(0, {"n": 3}), (1, {"n_sl": 3, "n": 3, "n_ag": 3})])
def test_g_learn_k_equal_n_exact_expectation_is_optimal(seed, kw):
    game = exact_game(seed, **kw)
    pi_l = random_pi_l(game, np.random.default_rng(seed))
    ex = ExactSolver(game, game.n)
    opt = ex.full_info_best_response(pi_l)
    pi_g = g_learn(game, pi_l, k=game.n, m=None, seed=0, tol=1e-12)
    assert ex.value(pi_g, pi_l) == pytest.approx(opt.value, abs=1e-8)
    # its Q is the optimal Q of the full-information MDP
    assert pi_g.q is not None and opt.policy.q is not None
    np.testing.assert_allclose(pi_g.q, opt.policy.q, atol=1e-8)


def test_g_learn_exact_expectation_is_the_k_agent_full_information_mdp():
    """With m=None, G-LEARN's surrogate is exactly the k-agent system with full information,
    so its Q equals the exact solver's Q* on game.with_n(k)."""
    game = exact_game(3, n_sl=3, n=9)
    pi_l = random_pi_l(game, np.random.default_rng(5))
    k = 3
    q_sur = ExactSolver(game.with_n(k), k).full_info_best_response(pi_l).policy.q
    pi_g = g_learn(game, pi_l, k=k, m=None, seed=0, tol=1e-12)
    np.testing.assert_allclose(pi_g.q, q_sur, atol=1e-8)


def test_facade_surface():
    """``am.exact.ExactSolver(game, k)`` keeps its attributes and methods (SPEC 10)."""
    game = exact_game(22, n=3, n_sl=3, n_ag=3)
    ex = am.exact.ExactSolver(game, 2, max_restricted_policies=7, max_local_policies=9,
                              dense_limit=50)
    assert isinstance(ex, am.exact.CountChain)
    assert (ex.k, ex.n, ex.d, ex.n_counts, ex.n_states) == (2, 3, 3, 10, game.n_sg * 10)
    assert (ex.max_restricted_policies, ex.max_local_policies, ex.dense_limit) == (7, 9, 50)
    assert ex.states.shape == (10, 3) and ex.init_prob.shape == (game.n_sg, 10)
    assert repr(ex) == f"ExactSolver(game={game.name!r}, n=3, k=2, states={ex.n_states})"
    pi_l = random_pi_l(game, np.random.default_rng(22))
    pi_g = am.GlobalPolicy.sample_mode(game, 2)
    assert ex.value(pi_g, pi_l) == pytest.approx(float((ex.init_prob * ex.values(pi_g, pi_l))
                                                       .sum()), abs=0)
    for name in ("hypergeometric", "count_transitions", "action_probs", "local_reward",
                 "transition_matrix", "expected_reward", "occupancy",
                 "full_info_best_response", "restricted_best_response",
                 "local_best_response", "nash_gap"):
        assert callable(getattr(ex, name)), name
    with pytest.raises(ValueError, match="TabularGame"):
        ExactSolver("warehouse", 2)  # type: ignore[arg-type]
