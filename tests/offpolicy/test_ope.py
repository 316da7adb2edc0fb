"""Off-policy evaluation (am.offpolicy_evaluate): FQE, per-decision IS and WIS against the
exact solver, hand-computed estimates on tiny logs, coverage diagnostics, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import altmarl as am
from altmarl.offpolicy import CoverageWarning, OfflineDataset, record_logs

from .helpers import ENV

# n = 12 > k = 2, sample-mode dispatcher: its value depends on the sample, so the n-agent
# value (2.4627) and the 2-agent surrogate's (2.5543) differ
BIG = {"n_sg": 2, "n_ag": 3, "n_sl": 3, "n_al": 2, "gamma": 0.8, "seed": 5,
       "concentration": 0.3}


def covers(est, value: float, slack: float = 0.0) -> bool:
    lo, hi = est.ci95
    return lo - slack <= value <= hi + slack


@pytest.fixture(scope="module")
def big():
    game = am.envs.make("random", n=12, **BIG)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.sample_mode(game, 2)
    exact_n = am.exact.ExactSolver(game, k=2).value(pi_g, pi_l)
    surrogate = am.exact.ExactSolver(am.envs.make("random", n=2, **BIG), k=2).value(pi_g, pi_l)
    return game, pi_g, exact_n, surrogate


def test_fqe_covers_the_exact_value_when_k_equals_n() -> None:
    game = am.envs.make("random", **ENV)  # n = k = 3: (s_g, h) is the system's state
    pi_l = am.LocalPolicy.uniform(game)
    exact = am.exact.ExactSolver(game, k=3)
    ds = record_logs(game, 3, episodes=1000, horizon=40, seed=0)
    for pi_g in (am.g_learn(game, pi_l, 3, m=None, tol=1e-12),
                 am.GlobalPolicy.constant(game, 3, 2)):
        est = am.offpolicy_evaluate(ds, pi_g, method="fqe", seed=0)
        assert est.method == "fqe" and "n = k" in est.estimand and not est.flags
        assert covers(est, exact.value(pi_g, pi_l)), (est, exact.value(pi_g, pi_l))
        assert est.ci95[1] - est.ci95[0] < 0.05
        assert est.diagnostics["coverage"]["imputed_occupancy"] == 0.0


def test_fqe_on_tracked_samples_covers_the_surrogate_value(big) -> None:
    game, pi_g, exact_n, surrogate = big
    ds = record_logs(game, 2, episodes=4000, horizon=30, seed=1, next_histogram="tracked")
    est = am.offpolicy_evaluate(ds, pi_g, seed=0)
    assert "surrogate" in est.estimand and "non-markov" not in est.flags
    assert covers(est, surrogate), (est, surrogate)
    assert not covers(est, exact_n)  # the surrogate's value, not the 12-agent system's


def test_importance_sampling_is_unbiased_with_fresh_samples(big) -> None:
    game, pi_g, exact_n, _ = big
    ds = record_logs(game, 2, episodes=2000, horizon=30, seed=1, behaviour="epsilon-greedy",
                     pi_g=pi_g, epsilon=0.1)
    fqe = am.offpolicy_evaluate(ds, pi_g, method="fqe", behaviour_policy=pi_g)
    for method in ("is", "wis"):
        est = am.offpolicy_evaluate(ds, pi_g, method=method, seed=0, behaviour_policy=pi_g)
        assert est.method == method and "n-agent" in est.estimand and not est.flags
        # IS estimates the value truncated at the episode length: widen by that bound
        assert covers(est, exact_n, est.diagnostics["truncation_bound"]), (est, exact_n)
        imp = est.diagnostics["importance"]
        assert imp["support_steps"] == 30 and 100 < imp["ess"] <= 2000
    # the IS interval is wider than FQE's (no model), and FQE flags its Markov assumption
    assert "non-markov" in fqe.flags and "importance" in fqe.diagnostics


def test_fresh_samples_bias_fqe(big) -> None:
    """The measurement of docs/offpolicy.md: FQE on fresh samples (n > k, uniform behaviour)
    lands between the n-agent value and the surrogate's, its interval excluding both."""
    game, pi_g, exact_n, surrogate = big
    ds = record_logs(game, 2, episodes=4000, horizon=30, seed=1)
    est = am.offpolicy_evaluate(ds, pi_g, seed=0)
    assert "non-markov" in est.flags and "not Markov" in est.estimand
    assert not covers(est, exact_n) and not covers(est, surrogate)
    assert 0.01 < exact_n - est.value < 0.05


def tiny_log(behaviour: dict | None) -> OfflineDataset:
    """Two episodes of two steps on |S_g| = 1, |S_l| = 2, k = 1, |A_g| = 2."""
    info = {"behaviour": behaviour} if behaviour else {}
    return OfflineDataset.from_arrays(
        s_g=[0, 0, 0, 0], h=[[1, 0], [0, 1], [1, 0], [1, 0]], a_g=[0, 1, 1, 0],
        r=[1.0, 2.0, 3.0, 4.0], s_g_next=[0, 0, 0, 0], h_next=[[0, 1], [1, 0], [1, 0], [0, 1]],
        k=1, spaces={"S_g": 1, "A_g": 2, "S_l": 2}, gamma=0.5, episode=[0, 0, 1, 1],
        t=[0, 1, 0, 1], info=info)


def by_state(actions: dict) -> am.GlobalPolicy:
    """The k = 1 policy on |S_g| = 1, |S_l| = 2 playing ``actions[h]``."""
    table = np.zeros((1, 2), np.int64)
    for h, a in actions.items():
        table[0, am.rank(np.array(h), 1)] = a
    return am.GlobalPolicy(1, table, 2)


def test_importance_sampling_by_hand() -> None:
    ds = tiny_log({"kind": "uniform"})
    game_like = by_state({(1, 0): 0, (0, 1): 1})
    # rho = pi / b = 2 for a matching action, 0 otherwise; episode 0: rows (h0, a0) match,
    # (h1, a1) match: w = 2, 4; episode 1: (h0, a1) no -> w = 0, 0
    pdis = ((2 * 1 + 0.5 * 4 * 2) + 0) / 2
    wis = (2 * 1) / 2 + 0.5 * (4 * 2) / 4
    assert am.offpolicy_evaluate(ds, game_like, method="is", bootstrap=0).value == pdis
    est = am.offpolicy_evaluate(ds, game_like, method="wis", bootstrap=0)
    assert est.value == wis and est.ci95 is None
    # the interval resamples episodes
    est = am.offpolicy_evaluate(ds, game_like, method="wis", bootstrap=200, seed=0)
    assert est.ci95 == (0.0, 2.0)  # {ep1, ep1}: every weight 0; {ep0, ep0} or both: 2


def test_fqe_by_hand() -> None:
    # one state, one action, reward 1 forever: V = 1 / (1 - gamma)
    ds = OfflineDataset.from_arrays(s_g=[0] * 6, h=[[1]] * 6, a_g=[0] * 6, r=[1.0] * 6,
                                    s_g_next=[0] * 6, h_next=[[1]] * 6, k=1,
                                    spaces={"S_g": 1, "A_g": 1, "S_l": 1}, gamma=0.75,
                                    episode=[0, 0, 0, 1, 1, 1], t=[0, 1, 2, 0, 1, 2])
    est = am.offpolicy_evaluate(ds, am.GlobalPolicy(1, [[0]], 1), seed=3)
    assert est.value == pytest.approx(4.0) and est.ci95 == pytest.approx((4.0, 4.0))
    # two states: s0 -> s1 with reward 1, s1 -> s1 with reward 0 (hand: V(s0) = 1)
    ds = OfflineDataset.from_arrays(s_g=[0, 0, 0, 0], h=[[1, 0], [0, 1], [1, 0], [0, 1]],
                                    a_g=[0, 0, 0, 0], r=[1.0, 0.0, 1.0, 0.0],
                                    s_g_next=[0] * 4, h_next=[[0, 1]] * 4, k=1,
                                    spaces={"S_g": 1, "A_g": 1, "S_l": 2}, gamma=0.9,
                                    episode=[0, 0, 1, 1], t=[0, 1, 0, 1])
    assert am.offpolicy_evaluate(ds, am.GlobalPolicy(1, [[0, 0]], 1)).value == pytest.approx(1.0)


def test_uncovered_actions_warn_and_flag() -> None:
    ds = tiny_log({"kind": "uniform"})
    # h = [0, 1] is visited once, with a_g = 1 only; the target plays 0 there
    with pytest.warns(CoverageWarning, match="never tried"):
        est = am.offpolicy_evaluate(ds, by_state({(1, 0): 0, (0, 1): 0}), seed=0)
    cov = est.diagnostics["coverage"]
    assert "uncovered-actions" in est.flags and cov["states_target_uncovered"] == 1
    assert cov["uncovered"][0]["h"] == [0, 1] and cov["uncovered"][0]["tried_actions"] == [1]
    assert 0 < cov["imputed_occupancy"] <= 1
    # a policy the data cover completely: no warning
    game = am.envs.make("random", **ENV)
    big_log = record_logs(game, 3, episodes=200, horizon=20, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = am.offpolicy_evaluate(big_log, am.GlobalPolicy.constant(game, 3, 1), bootstrap=10)
    assert est.diagnostics["coverage"]["states_target_uncovered"] == 0


def test_seeded_bootstrap_and_any_policy_object() -> None:
    game = am.envs.make("random", **ENV)
    ds = record_logs(game, 3, episodes=100, horizon=20, seed=4)
    pi_g = am.GlobalPolicy.constant(game, 3, 1)
    a = am.offpolicy_evaluate(ds, pi_g, seed=7, bootstrap=50)
    assert a.ci95 == am.offpolicy_evaluate(ds, pi_g, seed=7, bootstrap=50).ci95
    assert a.ci95 != am.offpolicy_evaluate(ds, pi_g, seed=8, bootstrap=50).ci95

    class Wrapped:  # the protocol of neural policies: k and act(s_g, obs) on count vectors
        k = 3
        n_ag = game.n_ag

        def act(self, s_g, obs):
            return pi_g.act(s_g, obs)

    b = am.offpolicy_evaluate(ds, Wrapped(), seed=7, bootstrap=50)
    assert (b.value, b.ci95) == (a.value, a.ci95)
    uni = am.offpolicy_evaluate(ds, am.generative.policies.UniformGlobalPolicy(game.n_ag),
                                method="is", bootstrap=0)
    # the target is the behaviour: every weight is 1, IS is the mean discounted return
    disc = game.gamma ** ds.t
    assert uni.value == pytest.approx(float((disc * ds.r).sum() / 100))


def test_validation() -> None:
    game = am.envs.make("random", **ENV)
    ds = record_logs(game, 3, episodes=5, horizon=5, seed=0)
    pi_g = am.GlobalPolicy.constant(game, 3, 0)
    with pytest.raises(ValueError, match="method"):
        am.offpolicy_evaluate(ds, pi_g, method="dr")
    with pytest.raises(ValueError, match="pi_g.k = 2"):
        am.offpolicy_evaluate(ds, am.GlobalPolicy.constant(game, 2, 0))
    with pytest.raises(ValueError, match="no local actions"):
        am.offpolicy_evaluate(ds, pi_g, am.LocalPolicy.deterministic(game, np.zeros((3, 2))))
    with pytest.warns(CoverageWarning):  # a 25-row log: constant(0) leaves untried states
        am.offpolicy_evaluate(ds, pi_g, am.LocalPolicy.uniform(game), bootstrap=0)
    with pytest.raises(ValueError, match="bootstrap"):
        am.offpolicy_evaluate(ds, pi_g, bootstrap=-1)
    with pytest.raises(ValueError, match="does not record its behaviour"):
        am.offpolicy_evaluate(tiny_log(None), by_state({(1, 0): 0, (0, 1): 1}), method="is")
    eg = record_logs(game, 3, episodes=5, horizon=5, seed=0, behaviour="epsilon-greedy",
                     pi_g=pi_g, epsilon=0.5)
    with pytest.raises(ValueError, match="behaviour_policy"):
        am.offpolicy_evaluate(eg, pi_g, method="wis")
    gap = tiny_log({"kind": "uniform"})
    gap = OfflineDataset.from_arrays(gap.s_g, gap.h, gap.a_g, gap.r, gap.s_g_next, gap.h_next,
                                     k=1, spaces=gap.spaces, gamma=0.5, episode=[0, 0, 1, 1],
                                     t=[0, 2, 0, 1], info=gap.info)
    with pytest.raises(ValueError, match="whole episodes"):
        am.offpolicy_evaluate(gap, by_state({(1, 0): 0, (0, 1): 1}), method="is")


def test_iterative_solver_matches_dense(monkeypatch) -> None:
    """Large state spaces use GMRES (value iteration as a fallback): same estimate and
    interval as the dense solve, with states seen only as next states (imputed)."""
    from altmarl.offpolicy import ope

    game = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=40, gamma=0.9, seed=1)
    ds = record_logs(game, 6, episodes=60, horizon=15, seed=2, next_histogram="tracked")
    pi_g = am.GlobalPolicy.sample_mode(game, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoverageWarning)
        dense = am.offpolicy_evaluate(ds, pi_g, bootstrap=20, seed=1)
        monkeypatch.setattr(ope, "DENSE_STATES", 1)
        sparse = am.offpolicy_evaluate(ds, pi_g, bootstrap=20, seed=1)
    assert dense.diagnostics["coverage"]["states_only_as_next"] > 0
    assert sparse.value == pytest.approx(dense.value, rel=1e-8)
    assert sparse.ci95 == pytest.approx(dense.ci95, rel=1e-8)
    assert sparse.diagnostics["coverage"]["imputed_occupancy"] == pytest.approx(
        dense.diagnostics["coverage"]["imputed_occupancy"], abs=1e-8)
