"""Direct search (SPEC 5.3): the common-random-numbers simulator and the policy search.

Oracles: the exact n-agent chain (altmarl.exact.ExactSolver) on small random games.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import altmarl as am
from altmarl.evaluation import ValueEstimate
from altmarl.exact import ExactSolver
from altmarl.llearn.direct import (
    MEAN_FIELD_MIN_N,
    MEAN_FIELD_RUNNERS_UP,
    MEAN_FIELD_VALIDATION_FACTOR,
    OBJECTIVES,
    STARTS,
    CandidateScorer,
    CRNEvaluator,
    DirectOptions,
    MeanFieldEvaluator,
    direct_search,
    mean_field_applies,
    search_objective,
)
from altmarl.update import paired_stderr

# ---------------------------------------------------------------------------
# the CRN simulator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,n_sl,k", [(4, 3, 2), (40, 2, 3), (40, 2, 40), (100, 2, 70)])
def test_crn_evaluator_is_unbiased(n, n_sl, k, make_game):
    """Agent mode (n <= 32), multinomial mode, the full-information case and the
    hypergeometric-subsample path (k > 64) agree with the exact chain within 4 standard
    errors."""
    game = make_game(5, n_sl=n_sl, n_al=2, n_ag=2, n=n)
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
def test_crn_objective_is_deterministic_and_batch_independent(n, make_game, random_global):
    game = make_game(2, n=n)
    pi_g = random_global(game, 3, 1)
    tabs = np.random.default_rng(1).dirichlet(np.ones(3), size=(3, 3, 2))
    crn = CRNEvaluator(game, pi_g, 16, 30, seed=3)
    together = crn.values(tabs)
    alone = np.array([crn.values(t[None])[0] for t in tabs])
    np.testing.assert_array_equal(together, alone)
    again = CRNEvaluator(game, pi_g, 16, 30, seed=3).values(tabs[::-1])[::-1]
    np.testing.assert_array_equal(together, again)


@pytest.mark.parametrize("n", [6, 60])
def test_crn_pairs_reduce_variance(n, make_game):
    """Common random numbers: with a global policy that ignores the sample (same s_g
    paths), the paired standard error of a small policy change is well below the
    unpaired one, in agent mode (n = 6) and multinomial mode (n = 60)."""
    game = make_game(4, n=n)
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
def test_direct_exhaustive_equals_exact_local_best_response(seed, make_game, random_global, exact_value_fn):
    """|A_l|^{|S_l||S_g|} = 16 <= exhaustive_limit: with the exact objective the search
    returns the exact deterministic best response."""
    game = make_game(seed, n_sl=2, n_al=2, n_ag=2, n=4)
    ex = ExactSolver(game, 2)
    pi_g = random_global(game, 2, seed)
    table, info = direct_search(game, pi_g, seed=seed,
                                options=DirectOptions(value_fn=exact_value_fn(ex, pi_g)))
    assert info["exhaustive"]
    br = ex.local_best_response(pi_g, refine=False)
    assert ex.value(pi_g, am.LocalPolicy(table)) == pytest.approx(br.value, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 9])
def test_direct_coordinate_search_reaches_exact_best_response(seed, make_game, random_global, exact_value_fn):
    """3^6 = 729 deterministic tables (above the exhaustive limit): coordinate search with
    column moves, on the exact objective, finds the exact deterministic best response on
    these games (seed 9 needs the column moves)."""
    game = make_game(100 + seed, n=8)
    ex = ExactSolver(game, 3)
    pi_g = random_global(game, 3, seed)
    table, info = direct_search(game, pi_g, seed=seed,
                                options=DirectOptions(value_fn=exact_value_fn(ex, pi_g)))
    assert not info["exhaustive"]
    br = ex.local_best_response(pi_g, refine=False)
    assert ex.value(pi_g, am.LocalPolicy(table)) == pytest.approx(br.value, abs=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_direct_with_monte_carlo_is_close_to_exact_best_response(seed, make_game, random_global):
    """With its CRN Monte-Carlo objective (128 rollouts x 50 steps) the direct optimizer is
    within 1% of r_max / (1 - gamma) of the exact best response over Pi_l (stochastic
    refinement included). (Seed 1 with 64 rollouts lands 0.065 away: Monte-Carlo error.)"""
    game = make_game(100 + seed, n=8)
    ex = ExactSolver(game, 3)
    pi_g = random_global(game, 3, seed)
    pol = am.l_learn(game, pi_g, "direct", seed=seed, estimate_value=False, rollouts=128,
                     horizon=50)
    br = ex.local_best_response(pi_g, refine=True)
    tol = 0.01 * game.r_max / (1 - game.gamma)
    assert br.value - ex.value(pi_g, pol) <= tol
    assert pol.info["search_value"] >= max(pol.info["start_values"].values())


def test_direct_never_worse_than_its_starts(warehouse):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    start = am.LocalPolicy.uniform(warehouse)
    table, info = direct_search(warehouse, pi_g, start, seed=0,
                                options=DirectOptions(rollouts=8, horizon=30, max_rounds=2,
                                                      objective="crn"))
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


def test_direct_mixing_levels_give_stochastic_policies(make_game, random_global):
    game = make_game(3, n=6)
    pi_g = random_global(game, 2, 3)
    opts = DirectOptions(rollouts=32, horizon=30, mix_levels=(1.0, 0.5), max_rounds=3,
                         exhaustive_limit=1)
    table, info = direct_search(game, pi_g, seed=0, options=opts)
    np.testing.assert_allclose(table.sum(-1), 1.0)
    with pytest.raises(ValueError, match="mix_levels"):
        DirectOptions(mix_levels=(0.0,))


def test_direct_options_are_frozen_and_validated():
    o = DirectOptions(starts=["uniform"], mix_levels=[1, 0.5])
    assert o.starts == ("uniform",) and o.mix_levels == (1.0, 0.5)  # normalized to tuples
    assert set(STARTS) == {"current", "induced-vi", "uniform"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.rollouts = 5  # type: ignore[misc]
    for kw, field in [({"rollouts": 0}, "rollouts"), ({"horizon": 2.0}, "horizon"),
                      ({"starts": ("current", "best")}, "starts"), ({"starts": "current"},
                                                                    "starts"),
                      ({"max_rounds": -1}, "max_rounds"), ({"max_evals": 0}, "max_evals"),
                      ({"exhaustive_limit": -1}, "exhaustive_limit"),
                      ({"column_limit": None}, "column_limit"), ({"mix_levels": ()}, "mix_levels"),
                      ({"mix_levels": (1.5,)}, "mix_levels"), ({"value_fn": 3}, "value_fn"),
                      ({"validate": 1}, "validate"), ({"m": 0}, "m"), ({"batch": 0}, "batch")]:
        with pytest.raises(ValueError, match=field):
            DirectOptions(**kw)
    assert DirectOptions(max_rounds=0).max_rounds == 0


# ---------------------------------------------------------------------------
# the mean-field objective
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 3])
def test_mean_field_evaluator_is_exact_for_a_sample_blind_global_policy(seed, make_game):
    """With a global policy that ignores the sample, the reward is linear in N and
    E[N' | N, s_g] = N K(s_g): the mean-field value equals the exact chain's value within
    the Monte-Carlo error of the s_g paths (4 standard errors + truncation)."""
    game = make_game(seed, n_sl=3, n_al=2, n_ag=2, n=12)
    ex = ExactSolver(game, 3)
    pi_g = am.GlobalPolicy.constant(game, 3, 1)
    tables = np.random.default_rng(seed).dirichlet(np.ones(2), size=(2, 3, game.n_sg))
    R = 2000
    ret = MeanFieldEvaluator(game, pi_g, R, 70, seed=5).returns(tables)
    for c in range(2):
        exact = ex.value(pi_g, am.LocalPolicy(tables[c]))
        se = ret[c].std(ddof=1) / np.sqrt(R)
        assert abs(ret[c].mean() - exact) < 4 * se + game.gamma**70 * game.r_max / (1 - game.gamma)


def test_mean_field_evaluator_tracks_the_crn_simulator_on_the_warehouse(warehouse):
    """Sample-dependent pi_g (k = 5 of n = 1000): the dropped population noise is
    O(1/sqrt(n)), so with the same 256 rollouts both objectives agree to within a few
    tenths and rank random tables alike."""
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 5)
    tabs = np.random.default_rng(2).dirichlet(np.ones(warehouse.n_al),
                                              size=(5, warehouse.n_sl, warehouse.n_sg))
    mf = MeanFieldEvaluator(warehouse, pi_g, 256, 60, seed=1).values(tabs)
    crn = CRNEvaluator(warehouse, pi_g, 256, 60, seed=1).values(tabs)
    assert np.abs(mf - crn).max() < 0.5
    assert np.corrcoef(mf, crn)[0, 1] > 0.95


def test_mean_field_objective_is_deterministic_batch_and_thread_independent(warehouse):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 4)
    tabs = np.random.default_rng(3).dirichlet(np.ones(warehouse.n_al),
                                              size=(9, warehouse.n_sl, warehouse.n_sg))
    one = MeanFieldEvaluator(warehouse, pi_g, 80, 20, seed=7, workers=1).returns(tabs)
    two = MeanFieldEvaluator(warehouse, pi_g, 80, 20, seed=7, workers=2)
    np.testing.assert_array_equal(one, two.returns(tabs))
    np.testing.assert_array_equal(one[4], two.returns(tabs[4])[0])
    assert two.calls == 10 and two.samples_per_candidate == 80 * 20
    with pytest.raises(ValueError, match="tables"):
        two.returns(tabs[:, :2])


@pytest.mark.parametrize("cls", [CRNEvaluator, MeanFieldEvaluator])
def test_both_objectives_share_the_candidate_scorer(cls, warehouse):
    """Same checks, budget and call count on both objectives (CandidateScorer)."""
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    ev = cls(warehouse, pi_g, 6, 9, seed=0)
    assert isinstance(ev, CandidateScorer) and ev.samples_per_candidate == 54
    assert np.array_equal(ev.disc, warehouse.gamma ** np.arange(9))
    tabs = np.full((3, warehouse.n_sl, warehouse.n_sg, warehouse.n_al), 1 / warehouse.n_al)
    assert ev.returns(tabs).shape == (3, 6) and ev.calls == 3
    assert ev.values(tabs[0]).shape == (1,) and ev.calls == 4
    with pytest.raises(ValueError, match="rollouts"):
        cls(warehouse, pi_g, 0, 9)
    with pytest.raises(ValueError, match="horizon"):
        cls(warehouse, pi_g, 6, True)


def test_mean_field_needs_uniform_subsamples_and_auto_falls_back(make_game, warehouse):
    small = make_game(1, n=8)
    pi_full = am.GlobalPolicy.constant(small, 8, 0)  # k = n: the full histogram
    assert not mean_field_applies(small, pi_full)
    with pytest.raises(ValueError, match="mean-field"):
        MeanFieldEvaluator(small, pi_full)
    pi_g = am.GlobalPolicy.constant(small, 3, 0)
    assert mean_field_applies(small, pi_g)
    assert search_objective(small, pi_g, "auto") == "crn"  # n < MEAN_FIELD_MIN_N
    assert search_objective(small, pi_g, "mean-field") == "mean-field"
    big = am.GlobalPolicy.sample_mode(warehouse, 3)
    assert warehouse.n >= MEAN_FIELD_MIN_N and search_objective(warehouse, big, "auto") == "mean-field"
    assert DirectOptions().objective == "auto" and set(OBJECTIVES) == {"auto", "crn", "mean-field"}
    with pytest.raises(ValueError, match="objective"):
        DirectOptions(objective="exact")


def test_direct_mean_field_search_validates_runners_up(warehouse):
    """objective='mean-field': the search never ends below its best start on its own
    objective, and validation re-scores the result, the starts and the runners-up on 16x
    fresh rollouts, returning the best of them there."""
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    start = am.LocalPolicy.uniform(warehouse)
    table, info = direct_search(warehouse, pi_g, start, seed=0,
                                options=DirectOptions(rollouts=8, horizon=30, max_rounds=2,
                                                      objective="mean-field"))
    assert "mean-field" in info["objective"]
    assert info["search_value"] >= max(info["start_values"].values())
    val = info["validation_values"]
    assert {"search", "current", "induced-vi"} <= set(val)
    assert 1 <= sum(nm.startswith("runner-up") for nm in val) <= MEAN_FIELD_RUNNERS_UP
    assert val[info["chosen"]] == max(val.values())
    again = MeanFieldEvaluator(warehouse, pi_g, 8 * MEAN_FIELD_VALIDATION_FACTOR, 30,
                               seed=np.random.SeedSequence(0).spawn(3)[2]).values(table[None])
    assert again[0] == pytest.approx(val[info["chosen"]], rel=1e-12)


def test_candidate_tables_shape_check() -> None:
    from altmarl.llearn.direct import candidate_tables
    game = am.envs.make("random", n=4)
    one = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    assert candidate_tables(game, one).shape == (1, game.n_sl, game.n_sg, game.n_al)
    with pytest.raises(ValueError, match="tables: expected shape"):
        candidate_tables(game, one[:, :, :1][None].repeat(2, axis=0))
