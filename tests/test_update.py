"""The UPDATE comparison (altmarl.update; paper Lemma D.14, SPEC 6): paired standard
error, eta, decision, with exact hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from altmarl.update import (
    Comparison,
    Decision,
    Estimate,
    EtaRule,
    RolloutEstimate,
    certified_gap,
    compare,
    evaluation_horizon,
    normal_quantile,
    paired_difference,
    paired_stderr,
    truncation_bias,
    update_decision,
)


class Exact:
    """An exact value (no rollouts)."""

    def __init__(self, mean: float, stderr: float = 0.0) -> None:
        self.mean, self.stderr, self.returns = mean, stderr, None


def test_paired_difference_uses_common_random_numbers() -> None:
    old = RolloutEstimate(np.array([1.0, 2.0, 3.0, 4.0]))
    new = RolloutEstimate(np.array([1.5, 2.5, 3.0, 5.0]))  # differences 0.5, 0.5, 0, 1
    d = np.array([0.5, 0.5, 0.0, 1.0])
    diff, se = paired_difference(new, old)
    assert diff == pytest.approx(0.5)
    assert se == pytest.approx(d.std(ddof=1) / 2)
    assert paired_stderr(new, old) == se
    # far below the unpaired error: the common part of the returns cancels
    assert se < math.hypot(new.stderr, old.stderr)
    assert isinstance(new, Estimate)


def test_paired_difference_falls_back_to_independent_errors() -> None:
    # exact values: no returns
    assert paired_difference(Exact(2.0, 0.4), Exact(1.0, 0.3)) == (1.0, pytest.approx(0.5))
    # rollouts of different shapes cannot be paired
    a = RolloutEstimate(np.array([1.0, 3.0]))
    b = RolloutEstimate(np.array([1.0, 2.0, 3.0]))
    assert paired_stderr(a, b) == pytest.approx(math.hypot(a.stderr, b.stderr))
    # one rollout: no standard error at all
    one = RolloutEstimate(np.array([1.0]))
    assert math.isnan(one.stderr) and math.isnan(paired_stderr(one, one))


def test_identical_estimates_are_no_improvement() -> None:
    e = RolloutEstimate(np.array([1.0, 4.0, 2.0]))
    c = compare(e, e, EtaRule(z=1.96, tail=0.0))
    assert (c.diff, c.se_diff, c.eta) == (0.0, 0.0, 0.0)
    assert c.decision is Decision.NO_IMPROVEMENT and not c.accepted


def test_automatic_and_fixed_eta() -> None:
    old = RolloutEstimate(np.array([0.0, 0.0, 0.0, 0.0]))
    new = RolloutEstimate(np.array([1.0, 3.0, 1.0, 3.0]))  # diff 2, se = sd / 2 = 0.5773...
    se = np.array([1.0, 3.0, 1.0, 3.0]).std(ddof=1) / 2
    c = compare(new, old, EtaRule(z=2.0, learner_tol=0.25, tail=0.0))
    assert c.eta == pytest.approx(se + 0.25)
    assert c.decision is Decision.ACCEPT  # 2 > 2 (se + 0.25) = 1.65
    c = compare(new, old, EtaRule(z=4.0, learner_tol=0.0, tail=0.0))
    assert c.eta == pytest.approx(2 * se) and c.decision is Decision.NO_IMPROVEMENT
    c = compare(old, new, EtaRule(z=2.0, tail=0.0))
    assert c.decision is Decision.REJECT and c.diff == -2.0
    fixed = compare(new, old, EtaRule(fixed=1.5, z=100.0, learner_tol=7.0, tail=0.0))
    assert fixed.eta == 1.5 and fixed.decision is Decision.NO_IMPROVEMENT
    assert isinstance(fixed, Comparison)


def test_decision_boundaries_are_strict() -> None:
    # gain exactly 2 eta: the intervals touch, no improvement either way
    assert compare(Exact(1.0), Exact(0.0), EtaRule(fixed=0.5, tail=0.0)).decision is Decision.NO_IMPROVEMENT
    assert compare(Exact(0.0), Exact(1.0), EtaRule(fixed=0.5, tail=0.0)).decision is Decision.NO_IMPROVEMENT
    assert compare(Exact(1.0), Exact(0.0), EtaRule(fixed=0.499, tail=0.0)).decision is Decision.ACCEPT
    assert compare(Exact(0.0), Exact(1.0), EtaRule(fixed=0.499, tail=0.0)).decision is Decision.REJECT
    assert update_decision(1.0, 0.0, 0.0) is Decision.ACCEPT


def test_nan_standard_error_refuses_an_automatic_eta() -> None:
    one = RolloutEstimate(np.array([1.0]))
    with pytest.raises(ValueError, match="eta"):
        compare(one, one, EtaRule(tail=0.0))
    assert compare(one, one, EtaRule(fixed=0.1, tail=0.0)).decision is Decision.NO_IMPROVEMENT


def test_eta_rule_validation_and_quantile() -> None:
    for kw in ({"fixed": -1.0}, {"z": -1.0}, {"z": math.inf}, {"learner_tol": math.nan},
               {"tail": -0.1}, {"tail": math.inf}):
        with pytest.raises(ValueError, match=next(iter(kw)).replace("fixed", "eta")):
            EtaRule(**{"tail": 0.0, **kw})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EtaRule()  # type: ignore[call-arg]  # the truncation bound must be stated
    assert normal_quantile(0.95) == pytest.approx(1.959963984540054)
    with pytest.raises(ValueError, match="confidence"):
        normal_quantile(1.0)


def test_certified_gap() -> None:
    assert certified_gap(0.1, 0.2, 2.0) == pytest.approx(0.6)
    assert certified_gap(None, None, 2.0) == 0.0
    assert certified_gap(0.1, 0.2, 2.0, tail=0.3) == pytest.approx(0.9)


def test_truncation_bias_uses_the_true_reward_range() -> None:
    # rewards in [-2, 3]: a tail of a difference lies in gamma^H [-5, 5] / (1 - gamma)
    assert truncation_bias(0.9, 10, -2.0, 3.0) == pytest.approx(0.9**10 * 5 / 0.1)
    assert truncation_bias(0.5, 3, 1.0, 1.0) == 0.0
    for args in ((1.0, 10, 0.0, 1.0), (0.9, 0, 0.0, 1.0), (0.9, 10, 2.0, 1.0),
                 (0.9, 10, -math.inf, 1.0)):
        with pytest.raises(ValueError):
            truncation_bias(*args)


def test_evaluation_horizon_is_the_smallest_long_enough() -> None:
    assert evaluation_horizon(0.9) == 100  # 88 would do: the floor
    for gamma, h in ((0.95, 180), (0.99, 917)):
        assert evaluation_horizon(gamma) == h
        assert gamma**h <= 1e-4 < gamma ** (h - 1)
    assert evaluation_horizon(0.5, fraction=0.25, minimum=1) == 2
    assert evaluation_horizon(0.0) == 100
    with pytest.raises(ValueError, match="fraction"):
        evaluation_horizon(0.9, fraction=0.0)


def test_the_tail_enters_eta_fixed_or_automatic() -> None:
    new = RolloutEstimate(np.array([1.0, 2.0, 3.0, 4.0]))
    old = RolloutEstimate(np.array([0.0, 1.5, 2.5, 3.0]))  # differences 1, .5, .5, 1
    se = np.array([1.0, 0.5, 0.5, 1.0]).std(ddof=1) / 2
    c = compare(new, old, EtaRule(z=2.0, learner_tol=0.1, tail=0.6))
    assert c.eta == pytest.approx(se + 0.1 + 0.3) and c.tail == 0.6
    # gain 0.75: enough without the truncation bound (2 eta = 0.49), not with it (1.09)
    assert c.decision is Decision.NO_IMPROVEMENT
    assert compare(new, old, EtaRule(z=2.0, learner_tol=0.1, tail=0.0)).accepted
    fixed = compare(new, old, EtaRule(fixed=0.2, tail=0.6))
    assert fixed.eta == pytest.approx(0.5)


def test_paired_stderr_pairs_common_returns_and_falls_back_to_independent():
    """``paired_stderr``: the standard error of the per-rollout differences when both
    estimates carry returns of one length, else ``hypot(se_new, se_old)``."""
    from altmarl.evaluation import ValueEstimate

    assert paired_stderr(ValueEstimate(1.0, 0.3), ValueEstimate(2.0, 0.4)) == pytest.approx(0.5)
    base = np.random.default_rng(0).normal(size=200)
    new = ValueEstimate(float(base.mean() + 0.1), 0.07, base + 0.1 + 0.01 * np.sin(base))
    old = ValueEstimate(float(base.mean()), 0.07, base)
    d = new.returns - old.returns
    assert paired_stderr(new, old) == pytest.approx(d.std(ddof=1) / np.sqrt(200))
    assert paired_stderr(new, old) < 0.1 * np.hypot(new.stderr, old.stderr)
    short = ValueEstimate(old.mean, old.stderr, base[:10])
    assert paired_stderr(new, short) == pytest.approx(np.hypot(0.07, 0.07))
