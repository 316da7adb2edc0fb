"""evaluate (SPEC 3, eq. 2): exact values on solvable games, reproducibility, records."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am


def _independent_game(seed=0):
    """|S_g| = |A_g| = 1: agents are independent Markov chains, so V has a closed form."""
    rng = np.random.default_rng(seed)
    P_l = rng.dirichlet(np.ones(3), size=(3, 1, 2))
    r_l = rng.uniform(0, 1, size=(3, 1, 2))
    rho_l = np.array([0.2, 0.5, 0.3])
    g = am.TabularGame(np.ones((1, 1, 1)), P_l, np.array([[0.4]]), r_l, 0.8, 50,
                       init=(np.array([1.0]), rho_l))
    return g, rho_l


def test_value_matches_closed_form_for_independent_agents():
    g, rho_l = _independent_game()
    pi_l = am.LocalPolicy(np.random.default_rng(3).dirichlet(np.ones(2), size=(3, 1)))
    pi_g = am.GlobalPolicy.constant(g, 3)
    K = g.local_kernel(pi_l.table)[:, 0, :]
    rbar = g.local_reward(pi_l.table)[:, 0]
    v_local = np.linalg.solve(np.eye(3) - g.gamma * K, rbar)
    exact = 0.4 / (1 - g.gamma) + rho_l @ v_local
    H = 80
    ev = am.evaluate(g, pi_g, pi_l, rollouts=3000, horizon=H, seed=1)
    assert ev.truncation_bound == pytest.approx(g.gamma**H * g.r_max / (1 - g.gamma))
    lo, hi = ev.ci95
    slack = 2 * ev.truncation_bound
    assert lo - slack <= exact <= hi + slack, (exact, ev)
    assert ev.stderr < 0.05


def test_same_seed_same_numbers_for_any_worker_count(warehouse):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    pi_l = am.LocalPolicy.uniform(warehouse)
    evs = [am.evaluate(warehouse, pi_g, pi_l, rollouts=300, horizon=20, seed=5, workers=w)
           for w in (1, 2, 3)]
    for ev in evs[1:]:
        assert np.array_equal(ev.returns, evs[0].returns)
        assert np.array_equal(ev.occupancy, evs[0].occupancy)
    other = am.evaluate(warehouse, pi_g, pi_l, rollouts=300, horizon=20, seed=6)
    assert not np.array_equal(other.returns, evs[0].returns)


def test_records_have_the_documented_shapes(warehouse):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    ev = am.evaluate(warehouse, pi_g, am.LocalPolicy.uniform(warehouse), rollouts=40, horizon=15, seed=0)
    assert ev.reward_per_step.shape == (15,)
    assert ev.occupancy.shape == (15, 5) and np.allclose(ev.occupancy.sum(axis=1), 1)
    assert ev.global_occupancy.shape == (15, 5) and np.allclose(ev.global_occupancy.sum(axis=1), 1)
    assert ev.mode_match is not None and ev.mode_match.shape == (15,)
    assert 0 <= ev.mode_match_rate <= 1
    assert ev.ci95[0] < ev.mean < ev.ci95[1]
    disc = warehouse.gamma ** np.arange(15)
    assert ev.mean == pytest.approx(float(ev.reward_per_step @ disc))
    assert set(ev.summary()) >= {"mean", "stderr", "ci95", "truncation_bound"}


def test_mode_match_is_none_when_actions_are_not_zones(tiny_game):
    g = am.envs.make("random", n_sg=2, n_ag=3, n_sl=2, n_al=2, n=4)
    ev = am.evaluate(g, am.GlobalPolicy.constant(g, 2), am.LocalPolicy.uniform(g), rollouts=5, horizon=3)
    assert ev.mode_match is None and ev.mode_match_rate is None


def test_agent_simulator_option_gives_the_same_value(tiny_game):
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 1)
    pi_l = am.LocalPolicy.uniform(tiny_game)
    a = am.evaluate(tiny_game, pi_g, pi_l, rollouts=2000, horizon=30, seed=0)
    b = am.evaluate(tiny_game, pi_g, pi_l, rollouts=2000, horizon=30, seed=1, simulator="agents")
    assert abs(a.mean - b.mean) < 4 * np.hypot(a.stderr, b.stderr)


@pytest.mark.parametrize("kw,match", [({"rollouts": 0}, "rollouts"), ({"horizon": 2.5}, "horizon"),
                                      ({"simulator": "x"}, "simulator")])
def test_bad_arguments(tiny_game, kw, match):
    with pytest.raises(ValueError, match=match):
        am.evaluate(tiny_game, am.GlobalPolicy.constant(tiny_game, 2), am.LocalPolicy.uniform(tiny_game), **kw)



def test_mc_evaluator_reuses_its_seed():
    """Every call of an ``mc_evaluator`` uses the same seed (common random numbers) and
    equals :func:`evaluate` with that seed."""
    from altmarl.evaluation import mc_evaluator

    g, _ = _independent_game()
    pi_g = am.GlobalPolicy.constant(g, 3)
    pi_l = am.LocalPolicy.uniform(g)
    ev = mc_evaluator(g, rollouts=12, horizon=20, seed=4)
    a, b = ev(pi_g, pi_l), ev(pi_g, pi_l)
    ref = am.evaluate(g, pi_g, pi_l, rollouts=12, horizon=20, seed=4)
    assert a.mean == b.mean == ref.mean and a.stderr == ref.stderr
    assert a.returns is not None and np.array_equal(a.returns, ref.returns)


def test_seed_interval_is_student_t_and_covers() -> None:
    from altmarl.evaluation import Z95, seed_interval, student_t_quantile

    assert student_t_quantile(0.975, 14) == pytest.approx(2.1447866879169273)
    assert student_t_quantile(0.975, 4) == pytest.approx(2.7764451051977987)
    # the normal quantile is 9% (15 seeds) and 29% (5 seeds) too narrow
    assert 1 - Z95 / student_t_quantile(0.975, 14) == pytest.approx(0.086, abs=0.005)
    assert 1 - Z95 / student_t_quantile(0.975, 4) == pytest.approx(0.294, abs=0.005)
    v = [1.0, 2.0, 4.0, 7.0, 6.0]
    iv = seed_interval(v)
    se = np.std(v, ddof=1) / np.sqrt(5)
    assert iv.mean == 4.0 and iv.stderr == pytest.approx(se) and iv.n == 5
    assert iv.ci == pytest.approx((4.0 - 2.7764451051977987 * se, 4.0 + 2.7764451051977987 * se))
    assert seed_interval(v, 0.9).quantile == pytest.approx(student_t_quantile(0.95, 4))
    one = seed_interval([3.0])
    assert one.ci is None and one.std == 0.0 and one.summary()["n"] == 1
    # coverage over 5 normal draws: about 95% with t, about 88% with the normal quantile
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 5))
    cover_t = np.mean([(lambda c: c.ci[0] <= 0 <= c.ci[1])(seed_interval(r)) for r in x])
    se_r = x.std(axis=1, ddof=1) / np.sqrt(5)
    cover_z = np.mean(np.abs(x.mean(axis=1)) <= Z95 * se_r)
    assert abs(cover_t - 0.95) < 0.015 and cover_z < 0.9
    for bad in ([], [1.0, np.nan]):
        with pytest.raises(ValueError, match="values"):
            seed_interval(bad)
    with pytest.raises(ValueError, match="df"):
        student_t_quantile(0.975, 0)
