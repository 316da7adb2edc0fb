"""Tests of the Nash gap (altmarl.exact.nash_gap): exact gap from best-response values, zero
at computed equilibria; the Monte-Carlo estimate is a lower bound consistent with exact values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from exact_oracles import exact_game, random_pi_g, random_pi_l

import altmarl as am
from altmarl.exact import (
    CountChain,
    ExactSolver,
    NashGapEstimate,
    estimate_nash_gap,
    nash_gap_certificate,
)
from altmarl.exact.nash_gap import exact_nash_gap


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_nash_gap_properties(seed):
    game = exact_game(seed, n=3, n_sl=2 + seed % 2)
    rng = np.random.default_rng(seed)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    res = ex.nash_gap(pi_g, pi_l)
    assert res.gap_g is not None and res.gap_g_exact
    for gap in (res.gap_g, res.gap_g_full, res.gap_l):
        assert gap >= -1e-12
    assert res.gap_g <= res.gap_g_full + 1e-10
    assert res.nash_gap == max(res.gap_g, res.gap_l)
    assert res.nash_gap_full == max(res.gap_g_full, res.gap_l)
    assert res.value == pytest.approx(ex.value(pi_g, pi_l))
    # best responses are really worth what they claim
    assert ex.value(res.br_g.policy, pi_l) == pytest.approx(res.br_g.value, abs=1e-10)
    assert ex.value(pi_g, res.br_l.policy) == pytest.approx(res.br_l.value, abs=1e-10)
    assert "gap_g" in str(res) and res.summary()["nash_gap"] == res.nash_gap


def test_gap_zero_at_best_responses():
    game = exact_game(11, n=3)
    pi_l = am.LocalPolicy.uniform(game)
    ex = ExactSolver(game, 2)
    full = ex.full_info_best_response(pi_l)
    res_full = ExactSolver(game, 3).nash_gap(full.policy, pi_l, refine_local=False)
    assert res_full.gap_g_full == pytest.approx(0.0, abs=1e-10)
    assert res_full.gap_g == pytest.approx(0.0, abs=1e-10)
    br = ex.restricted_best_response(pi_l, method="enumerate")
    res = ex.nash_gap(br.policy, pi_l, refine_local=False)
    assert res.gap_g == pytest.approx(0.0, abs=1e-10)


def test_restricted_skip_and_functional_form():
    game = exact_game(18, n=3)
    rng = np.random.default_rng(18)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    chain = CountChain(game)
    res = exact_nash_gap(chain, pi_g, pi_l, 2, restricted="skip", refine_local=False)
    assert res.gap_g is None and res.nash_gap is None and not res.exact
    assert res.nash_gap_full == max(res.gap_g_full, res.gap_l)
    assert "not computed" in str(res)
    facade = ExactSolver(game, 2).nash_gap(pi_g, pi_l, refine_local=False)
    assert facade.gap_g_full == res.gap_g_full and facade.gap_l == res.gap_l
    # each gap is a best-response value minus the value
    assert facade.gap_g == pytest.approx(facade.br_g.value - facade.value, abs=1e-12)
    assert facade.gap_l == pytest.approx(facade.br_l.value - facade.value, abs=1e-12)
    with pytest.raises(ValueError, match="restricted"):
        exact_nash_gap(chain, pi_g, pi_l, 2, restricted="none")


def test_gap_is_zero_at_a_computed_equilibrium():
    """Alternating exact best responses on a tiny game (an exact potential game, Lemma D.4,
    so best-response dynamics stop) reach a joint policy whose exact Nash gap is 0 for
    the full-information global comparator (k = n) and deterministic shared local
    policies."""
    game = exact_game(19, n=2, n_sl=2, n_al=2, n_ag=2)
    ex = ExactSolver(game, game.n)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = ex.full_info_best_response(pi_l).policy
    for _ in range(50):
        new_l = ex.local_best_response(pi_g, method="enumerate", refine=False).policy
        new_g = ex.full_info_best_response(new_l).policy
        if (np.array_equal(new_l.table, pi_l.table)
                and np.array_equal(new_g.actions, pi_g.actions)):
            break
        pi_l, pi_g = new_l, new_g
    else:
        pytest.fail("best-response dynamics did not stop")
    res = ex.nash_gap(pi_g, pi_l, local="enumerate", refine_local=False)
    assert res.gap_g_full == pytest.approx(0.0, abs=1e-10)
    assert res.gap_g == pytest.approx(0.0, abs=1e-10)
    assert res.gap_l == pytest.approx(0.0, abs=1e-10)
    assert res.nash_gap == pytest.approx(0.0, abs=1e-10)
    # away from it the gap is positive
    other = ex.nash_gap(am.GlobalPolicy.constant(game, game.n, 1 - int(pi_g.actions[0, 0])),
                        pi_l, refine_local=False)
    assert other.nash_gap_full > 1e-6


def test_gap_zero_with_a_trivial_global_agent():
    """|A_g| = 1: the global player has one policy (gap_g = 0) and the local best response
    is exact (representative-agent MDP); at that response the Nash gap is exactly 0."""
    game = exact_game(20, n=3, n_ag=1, n_sl=3)
    ex = ExactSolver(game, 2)
    pi_g = am.GlobalPolicy.constant(game, 2, 0)
    br = ex.local_best_response(pi_g)
    assert br.exact
    res = ex.nash_gap(pi_g, br.policy)
    assert res.exact and res.nash_gap == pytest.approx(0.0, abs=1e-10)


# ---------------------------------------------------------------------------
# the estimated gap (large games): a lower bound
# ---------------------------------------------------------------------------


def test_estimate_is_consistent_with_exact_values():
    """Each estimated difference matches the exact value difference of the deviation it
    reports (within Monte-Carlo error), and the global deviation never beats the exact
    restricted optimum: the estimate is a lower bound."""
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.85, seed=2)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.constant(game, 2, 1)
    est = estimate_nash_gap(game, pi_g, pi_l, rollouts=600, horizon=80, seed=1,
                            local_solvers=("induced-vi",), k_full=4,
                            extra_global={"const0": am.GlobalPolicy.constant(game, 2, 0)})
    assert isinstance(est, NashGapEstimate) and est.is_estimate
    ex = ExactSolver(game, 2)
    v0 = ex.value(pi_g, pi_l)
    exact = ex.nash_gap(pi_g, pi_l)
    assert abs(est.value.mean - v0) <= 4.5 * est.value.stderr + est.value.truncation_bound
    for ge, dev_value in ((est.gap_g, ex.value(est.gap_g.deviation, pi_l)),
                          (est.gap_l, ex.value(pi_g, est.gap_l.deviation))):
        assert abs(ge.difference - (dev_value - v0)) <= 4.5 * ge.stderr + 1e-9
        assert ge.lower_bound == max(0.0, ge.difference)
    assert ex.value(est.gap_g.deviation, pi_l) - v0 <= exact.gap_g + 1e-9
    assert est.gap_g_full is not None
    assert ex.value(est.gap_g_full.deviation, pi_l) - v0 <= exact.gap_g_full + 1e-9
    text = str(est)
    assert "ESTIMATE" in text and "lower bound" in text
    assert est.summary()["kind"].startswith("estimate")
    assert est.nash_gap_lower_bound == max(est.gap_g.lower_bound, est.gap_l.lower_bound)


def test_estimate_validates_input():
    game = am.envs.make("random", n=4)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.constant(game, 2)
    with pytest.raises(ValueError, match="rollouts"):
        estimate_nash_gap(game, pi_g, pi_l, rollouts=1)
    with pytest.raises(ValueError, match="k = 9"):
        estimate_nash_gap(game, pi_g, pi_l, k_full=9)


# ---------------------------------------------------------------------------
# the certificate of run directories
# ---------------------------------------------------------------------------


def test_certificate_is_the_exact_gap_on_small_chains():
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.85, seed=2)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.constant(game, 2, 1)
    cert = nash_gap_certificate(game, pi_g, pi_l)
    exact = ExactSolver(game, 2).nash_gap(pi_g, pi_l, refine_local=False)
    assert cert["states"] == 10 and cert["exact"] == exact.exact
    assert cert["bound"] == ("exact" if exact.exact else "lower")
    for key in ("nash_gap", "nash_gap_full", "gap_g", "gap_g_full", "gap_l", "value"):
        assert cert[key] == pytest.approx(getattr(exact, key), abs=1e-12)
    assert cert["nash_gap"] > 0.01  # a constant global policy is far from a best response
    json.dumps(cert)
    with pytest.raises(ValueError, match="mode"):
        nash_gap_certificate(game, pi_g, pi_l, mode="guess")
    with pytest.raises(ValueError, match="players"):
        nash_gap_certificate(game, pi_g, pi_l, deviations={"dispatcher": pi_g})


def test_estimated_certificate_is_a_lower_bound_with_an_interval():
    """Forced estimate with the exact restricted best response as the global deviation:
    the lower bound matches the exact gap within its interval and never exceeds it beyond
    Monte-Carlo error; without deviations the bound is 0."""
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.85, seed=2)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.constant(game, 2, 1)
    ex = ExactSolver(game, 2)
    br = ex.restricted_best_response(pi_l, method="enumerate")
    exact_gap = br.value - ex.value(pi_g, pi_l)
    cert = nash_gap_certificate(game, pi_g, pi_l, mode="estimate", seed=3, rollouts=400,
                                deviations={"global": br.policy, "local": None})
    assert cert["exact"] is False and cert["bound"] == "lower" and cert["horizon"] == 100
    g = cert["gap_g"]
    assert g["source"] == "last global proposal" and cert["gap_l"]["source"] == "none"
    assert g["ci95"][0] <= exact_gap <= g["ci95"][1]
    assert cert["ci95"][0] <= exact_gap <= cert["ci95"][1]
    assert g["truncation"] == pytest.approx(0.85**100 * (game.reward_bounds[1]
                                                         - game.reward_bounds[0]) / 0.15)
    assert cert["nash_gap"] == max(0.0, g["difference"])
    none = nash_gap_certificate(game, pi_g, pi_l, mode="estimate", rollouts=20)
    assert none["nash_gap"] == 0.0 and none["gap_g"]["source"] == "none"


def test_forced_exact_certificate_is_refused_on_large_chains():
    game = am.envs.make("warehouse", n=50)
    u = am.LocalPolicy.uniform(game)
    with pytest.raises(ValueError, match="too large"):
        nash_gap_certificate(game, am.GlobalPolicy.constant(game, 2), u, mode="exact")


def test_generative_certificate_is_an_estimate():
    tab = am.envs.make("warehouse", n=20)
    gen = tab.as_generative()
    u = am.LocalPolicy.uniform(tab)
    pi_g = am.GlobalPolicy.constant(tab, 2)
    none = nash_gap_certificate(gen, pi_g, u)
    assert none["bound"] == "lower" and none["nash_gap"] == 0.0 and none["value"] is None
    assert none["horizon"] == 180 and none["gap_g"]["truncation"] > 0
    dev = nash_gap_certificate(gen, pi_g, u, rollouts=16, horizon=20,
                               deviations={"global": am.GlobalPolicy.sample_mode(tab, 2)})
    assert dev["gap_g"]["source"] == "last global proposal" and dev["rollouts"] == 16
    assert dev["ci95"][0] <= dev["gap_g"]["difference"] <= dev["ci95"][1]
    with pytest.raises(ValueError, match="TabularGame"):
        nash_gap_certificate(gen, pi_g, u, mode="exact")
