"""L-LEARN (SPEC 5): induced-VI, the direct CRN policy search, the chained dispatch.

Oracles: the exact n-agent chain (altmarl.exact.ExactSolver) on small random games.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import altmarl as am
from altmarl.evaluation import ValueEstimate, mc_evaluator
from altmarl.exact import ExactSolver
from altmarl.l_learn import (
    CRNEvaluator,
    direct_search,
    global_action_distribution,
    induced_vi,
)
from altmarl.update import paired_stderr


def _game(seed: int, n_sg: int = 2, n_ag: int = 3, n_sl: int = 3, n_al: int = 3, n: int = 6,
          concentration: float = 0.5) -> am.TabularGame:
    return am.envs.make("random", n_sg=n_sg, n_ag=n_ag, n_sl=n_sl, n_al=n_al, n=n, gamma=0.9,
                        seed=seed, concentration=concentration)


def _random_global(game: am.TabularGame, k: int, seed: int) -> am.GlobalPolicy:
    rng = np.random.default_rng(seed)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, am.num_histograms(k, game.n_sl)))
    return am.GlobalPolicy(k, acts, game.n_ag, game=game)


def _exact_value_fn(ex: ExactSolver, pi_g: am.GlobalPolicy):
    def vf(tables: np.ndarray) -> np.ndarray:
        return np.array([ex.value(pi_g, am.LocalPolicy(t)) for t in tables])

    return vf


# ---------------------------------------------------------------------------
# induced-VI
# ---------------------------------------------------------------------------


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
    soft, _ = induced_vi(warehouse, pi_g, seed=1, temperature=0.5)
    np.testing.assert_allclose(soft.sum(-1), 1.0)
    assert (soft > 0).all() and not np.isin(soft, (0.0, 1.0)).all()
    # softmax of the same Q: its argmax is the greedy action
    np.testing.assert_array_equal(soft.argmax(-1), greedy.argmax(-1))
    q = info["q"]
    np.testing.assert_allclose(greedy.argmax(-1), q.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        induced_vi(warehouse, pi_g, temperature=0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_induced_vi_exact_when_global_action_is_exogenous(seed):
    """|A_g| = 1: s_g is an autonomous chain, every agent faces the same Markov MDP on
    (s_l, s_g), so induced-VI is the exact best response in Pi_l."""
    game = _game(seed, n_ag=1, n=4)
    ex = ExactSolver(game, 2)
    pi_g = am.GlobalPolicy.constant(game, 2, 0)
    pol = am.l_learn(game, pi_g, "induced-vi", seed=seed, estimate_value=False, m=5)
    br = ex.local_best_response(pi_g, refine=False)
    assert br.exact  # deterministic optimality proven by the solver in this case
    assert ex.value(pi_g, pol) == pytest.approx(br.value, abs=1e-6)


def test_induced_vi_exact_for_constant_global_policy():
    game = _game(7, n_ag=3, n=5)
    ex = ExactSolver(game, 3)
    pi_g = am.GlobalPolicy.constant(game, 3, 2)
    table, info = induced_vi(game, pi_g, seed=0, m=3)
    np.testing.assert_allclose(info["p_ag"][:, 2], 1.0)
    br = ex.local_best_response(pi_g, refine=False)
    assert ex.value(pi_g, am.LocalPolicy(table)) == pytest.approx(br.value, abs=1e-6)


def test_global_action_distribution_matches_policy():
    game = _game(3, n=6)
    pi_g = _random_global(game, 2, 0)
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


# ---------------------------------------------------------------------------
# the CRN simulator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,n_sl,k", [(4, 3, 2), (40, 2, 3), (40, 2, 40), (100, 2, 70)])
def test_crn_evaluator_is_unbiased(n, n_sl, k):
    """Agent mode (n <= 32), multinomial mode, the full-information case and the
    hypergeometric-subsample path (k > 64) agree with the exact chain within 4 standard
    errors."""
    game = _game(5, n_sl=n_sl, n_al=2, n_ag=2, n=n)
    ex = ExactSolver(game, k)
    pi_g = am.GlobalPolicy.from_function(game, k, lambda s, h: (h[:, 0] * 2 >= k).astype(int))
    tables = np.random.default_rng(0).dirichlet(np.ones(2), size=(2, n_sl, 2))
    R = 1500
    ret = CRNEvaluator(game, pi_g, R, 70, seed=11).returns(tables)
    for c in range(2):
        exact = ex.value(pi_g, am.LocalPolicy(tables[c]))
        se = ret[c].std(ddof=1) / np.sqrt(R)
        assert abs(ret[c].mean() - exact) < 4 * se + game.gamma**70 * game.r_max / (1 - game.gamma)


@pytest.mark.parametrize("n", [4, 60])
def test_crn_objective_is_deterministic_and_batch_independent(n):
    game = _game(2, n=n)
    pi_g = _random_global(game, 3, 1)
    tabs = np.random.default_rng(1).dirichlet(np.ones(3), size=(3, 3, 2))
    crn = CRNEvaluator(game, pi_g, 16, 30, seed=3)
    together = crn.values(tabs)
    alone = np.array([crn.values(t[None])[0] for t in tabs])
    np.testing.assert_array_equal(together, alone)
    again = CRNEvaluator(game, pi_g, 16, 30, seed=3).values(tabs[::-1])[::-1]
    np.testing.assert_array_equal(together, again)


@pytest.mark.parametrize("n", [6, 60])
def test_crn_pairs_reduce_variance(n):
    """Common random numbers: with a global policy that ignores the sample (same s_g
    paths), the paired standard error of a small policy change is well below the
    unpaired one, in agent mode (n = 6) and multinomial mode (n = 60)."""
    game = _game(4, n=n)
    pi_g = am.GlobalPolicy.constant(game, 3, 1)
    base = np.full((3, 2, 3), 1 / 3)
    other = base.copy()
    other[0, 0] = [0.6, 0.2, 0.2]
    ret = CRNEvaluator(game, pi_g, 400, 50, seed=0).returns(np.stack([base, other]))
    a = ValueEstimate(ret[0].mean(), ret[0].std(ddof=1) / 20, ret[0])
    b = ValueEstimate(ret[1].mean(), ret[1].std(ddof=1) / 20, ret[1])
    assert paired_stderr(a, b) < 0.4 * np.hypot(a.stderr, b.stderr)


# ---------------------------------------------------------------------------
# the direct optimizer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_direct_exhaustive_equals_exact_local_best_response(seed):
    """|A_l|^{|S_l||S_g|} = 16 <= exhaustive_limit: with the exact objective the search
    returns the exact deterministic best response."""
    game = _game(seed, n_sl=2, n_al=2, n_ag=2, n=4)
    ex = ExactSolver(game, 2)
    pi_g = _random_global(game, 2, seed)
    table, info = direct_search(game, pi_g, seed=seed, value_fn=_exact_value_fn(ex, pi_g))
    assert info["exhaustive"]
    br = ex.local_best_response(pi_g, refine=False)
    assert ex.value(pi_g, am.LocalPolicy(table)) == pytest.approx(br.value, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 9])
def test_direct_coordinate_search_reaches_exact_best_response(seed):
    """3^6 = 729 deterministic tables (above the exhaustive limit): coordinate search with
    column moves, on the exact objective, finds the exact deterministic best response on
    these games (seed 9 needs the column moves)."""
    game = _game(100 + seed, n=8)
    ex = ExactSolver(game, 3)
    pi_g = _random_global(game, 3, seed)
    table, info = direct_search(game, pi_g, seed=seed, value_fn=_exact_value_fn(ex, pi_g))
    assert not info["exhaustive"]
    br = ex.local_best_response(pi_g, refine=False)
    assert ex.value(pi_g, am.LocalPolicy(table)) == pytest.approx(br.value, abs=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_direct_with_monte_carlo_is_close_to_exact_best_response(seed):
    """With its CRN Monte-Carlo objective (128 rollouts x 50 steps) the direct optimizer is
    within 1% of r_max / (1 - gamma) of the exact best response over Pi_l (stochastic
    refinement included). (Seed 1 with 64 rollouts lands 0.065 away: Monte-Carlo error.)"""
    game = _game(100 + seed, n=8)
    ex = ExactSolver(game, 3)
    pi_g = _random_global(game, 3, seed)
    pol = am.l_learn(game, pi_g, "direct", seed=seed, estimate_value=False, rollouts=128,
                     horizon=50)
    br = ex.local_best_response(pi_g, refine=True)
    tol = 0.01 * game.r_max / (1 - game.gamma)
    assert br.value - ex.value(pi_g, pol) <= tol
    assert pol.info["search_value"] >= max(pol.info["start_values"].values())


def test_direct_never_worse_than_its_starts(warehouse):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    start = am.LocalPolicy.uniform(warehouse)
    table, info = direct_search(warehouse, pi_g, start, seed=0, rollouts=8, horizon=30,
                                max_rounds=2)
    crn_values = info["start_values"]
    assert set(crn_values) == {"current", "induced-vi"}
    assert info["search_value"] >= max(crn_values.values())
    # the returned table is the best of {searched, starts} on fresh CRN (validation)
    val = info["validation_values"]
    assert set(val) == {"search", "current", "induced-vi"}
    assert val[info["chosen"]] == max(val.values())
    if info["chosen"] == "search":
        # re-scoring with the search's CRN evaluator reproduces the search value
        crn = CRNEvaluator(warehouse, pi_g, 8, 30, seed=np.random.SeedSequence(0).spawn(2)[0])
        assert crn.values(table[None])[0] == pytest.approx(info["search_value"], rel=1e-12)
    assert info["samples"] >= info["evaluations"] * 8 * 30


def test_direct_mixing_levels_give_stochastic_policies():
    game = _game(3, n=6)
    pi_g = _random_global(game, 2, 3)
    table, info = direct_search(game, pi_g, seed=0, rollouts=32, horizon=30,
                                mix_levels=(1.0, 0.5), max_rounds=3, exhaustive_limit=1)
    np.testing.assert_allclose(table.sum(-1), 1.0)
    with pytest.raises(ValueError, match="mix_levels"):
        direct_search(game, pi_g, mix_levels=(0.0,))


# ---------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------


def test_l_learn_validates_input(tiny_game):
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 0)
    with pytest.raises(ValueError, match="solver"):
        am.l_learn(tiny_game, pi_g, "ucfh")
    with pytest.raises(ValueError, match="tempreature"):
        am.l_learn(tiny_game, pi_g, "induced-vi", tempreature=1.0)
    with pytest.raises(ValueError, match="pi_g"):
        am.l_learn(tiny_game, "not a policy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pi_l"):
        am.l_learn(tiny_game, pi_g, pi_l=np.ones((2, 2, 2)) / 2)  # type: ignore[arg-type]
    other = am.envs.make("random", n_sg=3, n_ag=2, n_sl=2, n_al=2, n=4)
    with pytest.raises(ValueError):
        am.l_learn(other, pi_g)
    with pytest.raises(ValueError, match="rollouts"):
        am.l_learn(tiny_game, pi_g, "direct", rollouts=0)


def test_l_learn_is_reproducible(tiny_game):
    pi_g = am.GlobalPolicy.from_function(tiny_game, 2, lambda s, h: (h[:, 0] >= 1).astype(int))
    for solver in ("induced-vi", "direct"):
        a = am.l_learn(tiny_game, pi_g, solver, seed=4, eval_rollouts=16, eval_horizon=30)
        b = am.l_learn(tiny_game, pi_g, solver, seed=4, eval_rollouts=16, eval_horizon=30)
        np.testing.assert_array_equal(a.table, b.table)
        assert a.info["value"] == b.info["value"]
        assert a.info["samples"] == b.info["samples"] > 0


def test_l_learn_custom_evaluator(tiny_game):
    ex = ExactSolver(tiny_game, 2)
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 1)
    pol = am.l_learn(tiny_game, pi_g, "induced-vi",
                     evaluator=lambda g, pl: ValueEstimate(ex.value(g, pl)))
    assert pol.info["value"] == pytest.approx(ex.value(pi_g, pol))
    assert pol.info["value_stderr"] == 0.0
    mc = mc_evaluator(tiny_game, 64, 60, seed=2)(pi_g, pol)
    assert abs(mc.mean - pol.info["value"]) < 5 * mc.stderr + 0.02


def test_l_learn_chained_dispatch(tiny_game):
    chained = pytest.importorskip("altmarl.chained")
    pi_g = am.GlobalPolicy.constant(tiny_game, 1, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pol = am.l_learn(tiny_game, pi_g, "chained", seed=0, variant="mean-field", eps=0.5,
                         episodes=200, estimate_value=False)
    assert pol.info["solver"] == "chained"
    np.testing.assert_allclose(pol.table.sum(-1), 1.0)
    assert pol.info["samples"] > 0
    assert hasattr(chained, "chained_best_response")
