"""The estimated Nash gap on generative games (SPEC 7, 11): deviations from the neural
learners, a lower bound, paired over common random numbers, Student-t over seeds."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import altmarl as am  # noqa: E402
from altmarl.evaluation import student_t_quantile  # noqa: E402
from altmarl.exact import estimate_nash_gap  # noqa: E402
from altmarl.generative.neural import NeuralGlobalPolicy  # noqa: E402
from altmarl.generative.neural_local import NeuralLocalPolicy  # noqa: E402

TINY_L = {"iterations": 4, "rollouts": 2, "horizon": 20, "tracked": 16, "hidden": 16}


@pytest.fixture(scope="module")
def estimate():
    tab = am.envs.make("warehouse", n=100)
    gen = tab.as_generative()
    pi_g = am.GlobalPolicy.sample_mode(tab, 3)
    pi_l = am.LocalPolicy.uniform(tab)  # far from a best response: moving to s_g pays
    est = estimate_nash_gap(
        gen, pi_g, pi_l, rollouts=32, horizon=30, seed=0, seeds=3, m=3,
        g_learn_options={"states": 300, "iterations": 10, "hidden": 16},
        l_learn_options={"trpo": TINY_L, "trpo-representative": TINY_L})
    return gen, pi_g, pi_l, est


def test_generative_estimate_uses_the_neural_learners(estimate):
    gen, pi_g, pi_l, est = estimate
    assert est.is_estimate and est.seeds == 3 and len(est.seed_values) == 3
    assert isinstance(est.gap_g.deviation, NeuralGlobalPolicy)
    assert isinstance(est.gap_l.deviation, NeuralLocalPolicy)
    assert set(est.gap_l.candidates) == {"l_learn(trpo)", "l_learn(trpo-representative)"}
    assert est.gap_l.source in est.gap_l.candidates
    text = str(est)
    assert "ESTIMATE" in text and "lower bound" in text and "3 evaluation seeds" in text
    s = est.summary()
    assert s["gap_l"]["interval"].startswith("Student-t (2 degrees of freedom)")


def test_student_t_interval_over_paired_seeds(estimate):
    gen, pi_g, pi_l, est = estimate
    for g in (est.gap_g, est.gap_l):
        d = np.asarray(g.per_seed)
        assert d.shape == (3,) and g.difference == pytest.approx(d.mean())
        assert g.stderr == pytest.approx(d.std(ddof=1) / np.sqrt(3))
        t = student_t_quantile(0.975, 2)
        assert t == pytest.approx(4.302652729911275)
        # widened by the truncation bound of the 30-step values (SPEC 13)
        lo, hi = gen.reward_bounds
        assert g.truncation == pytest.approx(gen.gamma**30 * (hi - lo) / (1 - gen.gamma))
        assert g.ci95 == pytest.approx((g.difference - t * g.stderr - g.truncation,
                                        g.difference + t * g.stderr + g.truncation))
        assert g.lower_bound == max(0.0, g.difference)
    # each per-seed difference is paired: the deviation and the current pair share the
    # evaluation seed's rollouts (recomputed here for the first seed)
    ev_dev = am.evaluate(gen, pi_g, est.gap_l.deviation, rollouts=32, horizon=30, seed=0)
    ev_cur = am.evaluate(gen, pi_g, pi_l, rollouts=32, horizon=30, seed=0)
    assert est.gap_l.per_seed[0] == pytest.approx((ev_dev.returns - ev_cur.returns).mean())
    # the uniform local policy is far from a best response: a clearly positive lower bound
    # on the 30-step objective (the infinite-horizon interval adds the truncation bound)
    assert est.gap_l.ci95[0] + est.gap_l.truncation > 0
    assert est.nash_gap_lower_bound >= est.gap_l.lower_bound


def test_tabular_defaults_unchanged_and_bad_seeds():
    tab = am.envs.make("warehouse", n=50)
    u = am.LocalPolicy.uniform(tab)
    pi_g = am.g_learn(tab, u, k=2, m=10, seed=0)
    est = estimate_nash_gap(tab, pi_g, u, rollouts=20, horizon=10, seed=1,
                            local_solvers=("induced-vi",))
    assert est.seeds == 1 and est.gap_l.interval.startswith("normal")
    assert est.gap_l.per_seed == [] and est.gap_l.seeds == 1
    with pytest.raises(ValueError, match="seeds"):
        estimate_nash_gap(tab, pi_g, u, rollouts=20, horizon=10, seeds=0)
