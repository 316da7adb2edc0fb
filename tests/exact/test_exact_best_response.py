"""Tests of the best responses on the exact chain (altmarl.exact.best_response): plain value
iteration, exhaustive checks and the representative agent's MDP as oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from exact_oracles import (
    exact_game,
    explicit_value_iteration,
    random_pi_g,
    random_pi_l,
    representative_agent_optimum,
)

import altmarl as am
from altmarl.exact import CountChain, ExactSolver
from altmarl.exact.best_response import (
    full_info_best_response,
    local_best_response,
    policy_count,
    restricted_best_response,
)


def test_full_info_best_response_is_optimal():
    game = exact_game(6, n_sl=3, n=4, n_ag=3)
    pi_l = random_pi_l(game, np.random.default_rng(2))
    ex = ExactSolver(game, 2)
    br = ex.full_info_best_response(pi_l)
    np.testing.assert_allclose(br.values, explicit_value_iteration(ex, pi_l), atol=1e-9)
    assert br.policy.k == game.n and br.exact
    # the k = n policy, evaluated as a policy, has the optimal value
    assert ex.value(br.policy, pi_l) == pytest.approx(br.value, abs=1e-10)
    # and the Monte-Carlo simulator agrees
    ev = am.evaluate(game, br.policy, pi_l, rollouts=2000, horizon=150, seed=1, workers=1)
    assert abs(ev.mean - br.value) <= 4.5 * ev.stderr + ev.truncation_bound


def test_restricted_between_values_and_full_info():
    game = exact_game(7, n=4)
    pi_l = random_pi_l(game, np.random.default_rng(3))
    ex = ExactSolver(game, 1)
    enum = ex.restricted_best_response(pi_l, method="enumerate")
    assert enum.exact and enum.evaluations == 2 ** (2 * 2)
    full = ex.full_info_best_response(pi_l)
    assert enum.value <= full.value + 1e-10
    # every deterministic k-sample policy is below the enumerated optimum
    for acts in itertools.product(range(2), repeat=4):
        pg = am.GlobalPolicy(1, np.array(acts).reshape(2, 2), 2, game=game)
        assert ex.value(pg, pi_l) <= enum.value + 1e-10
    srch = ex.restricted_best_response(pi_l, method="search")
    assert not srch.exact and srch.value <= enum.value + 1e-10
    assert ex.value(srch.policy, pi_l) == pytest.approx(srch.value, abs=1e-10)


def test_restricted_with_k_equal_n_is_full_information():
    game = exact_game(8, n=3)
    pi_l = am.LocalPolicy.uniform(game)
    ex = ExactSolver(game, 3)
    r = ex.restricted_best_response(pi_l)
    assert r.exact and r.value == pytest.approx(ex.full_info_best_response(pi_l).value)


@pytest.mark.parametrize("seed,kw", [(0, {}), (1, {"n_sl": 3, "n_al": 3, "n": 4}),
                                     (2, {"n_sg": 3, "n": 3})])
def test_local_best_response_trivial_global_agent(seed, kw):
    params = {"n_ag": 1, **kw}
    base = exact_game(seed, **params)
    # a non-uniform i.i.d. initial law, to exercise the weighting
    rng = np.random.default_rng(seed)
    init = (rng.dirichlet(np.ones(base.n_sg)), rng.dirichlet(np.ones(base.n_sl)))
    game = am.TabularGame(base.P_g, base.P_l, base.r_g, base.r_l, base.gamma, base.n, init=init)
    oracle_value, oracle_actions = representative_agent_optimum(game)
    ex = ExactSolver(game, 1)
    pi_g = am.GlobalPolicy.constant(game, 1, 0)
    # the n-agent chain, enumerated (no use of the decoupling)
    br = ex.local_best_response(pi_g, method="enumerate")
    assert br.exact
    assert br.value == pytest.approx(oracle_value, abs=1e-9)
    # no stochastic shared policy does better (refinement cannot beat it)
    assert br.info["refinement_gain"] == pytest.approx(0.0, abs=1e-9)
    # the oracle's policy, used by every agent, has the same n-agent value
    oracle_pol = am.LocalPolicy.deterministic(game, oracle_actions)
    assert ex.value(pi_g, oracle_pol) == pytest.approx(oracle_value, abs=1e-9)
    # the decoupled fast path ("auto") and the coordinate search agree
    auto = ex.local_best_response(pi_g)
    assert auto.exact and auto.value == pytest.approx(oracle_value, abs=1e-9)
    srch = ex.local_best_response(pi_g, method="search", refine=False)
    assert srch.value <= oracle_value + 1e-9


def test_local_best_response_dominates_every_deterministic_policy():
    game = exact_game(9, n=3)
    rng = np.random.default_rng(9)
    pi_g = random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    br = ex.local_best_response(pi_g, refine=False)
    assert br.method.startswith("exhaustive") and not br.exact
    vals = [ex.value(pi_g, am.LocalPolicy.deterministic(game, np.array(a).reshape(2, 2)))
            for a in itertools.product(range(2), repeat=4)]
    assert br.value == pytest.approx(max(vals), abs=1e-12)
    assert ex.value(pi_g, br.policy) == pytest.approx(br.value, abs=1e-12)


def test_functions_on_a_chain_match_the_facade():
    """The parts work on a bare CountChain, ``k`` passed explicitly; the facade's ``k``
    override is the same computation."""
    game = exact_game(16, n=4)
    rng = np.random.default_rng(16)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    chain = CountChain(game)
    ex = ExactSolver(game, 1)
    r_chain = restricted_best_response(chain, pi_l, 2, method="enumerate")
    r_facade = ex.restricted_best_response(pi_l, method="enumerate", k=2)
    assert r_chain.value == r_facade.value and r_chain.policy.k == 2
    np.testing.assert_array_equal(r_chain.policy.actions, r_facade.policy.actions)
    assert r_chain.value == ExactSolver(game, 2).restricted_best_response(
        pi_l, method="enumerate").value
    f = full_info_best_response(chain, pi_l)
    assert f.value == ex.full_info_best_response(pi_l).value
    loc = local_best_response(chain, pi_g, refine=False)
    assert loc.value == ex.local_best_response(pi_g, refine=False).value
    with pytest.raises(ValueError, match="max_restricted_policies = 3"):
        restricted_best_response(chain, pi_l, 2, method="enumerate", max_policies=3)
    with pytest.raises(ValueError, match="method"):
        restricted_best_response(chain, pi_l, 2, method="exhaustive")


def test_policy_count():
    assert policy_count(3, 4) == 81.0
    assert policy_count(1, 10**6) == 1.0
    assert policy_count(2, 10**4) == float("inf")


def test_local_search_is_a_lower_bound_of_enumeration():
    game = exact_game(17, n=3, n_sl=2, n_al=3)
    rng = np.random.default_rng(17)
    pi_g = random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    enum = ex.local_best_response(pi_g, method="enumerate", refine=False)
    srch = ex.local_best_response(pi_g, method="search", refine=False,
                                  start=random_pi_l(game, rng))
    assert srch.value <= enum.value + 1e-10 and not srch.exact
    assert ex.value(pi_g, srch.policy) == pytest.approx(srch.value, abs=1e-10)
    # the stochastic refinement never reports less than where it started
    ref = ex.local_best_response(pi_g, method="enumerate", refine=True, max_refine_evals=60)
    assert ref.value >= enum.value - 1e-12
    assert ex.value(pi_g, ref.policy) == pytest.approx(ref.value, abs=1e-10)
