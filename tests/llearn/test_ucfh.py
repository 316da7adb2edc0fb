"""Episodic MDPs, exact DP, Algorithm 17, FixedHorizonEVI and UCFH (SPEC 5, item 2)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linprog

from altmarl.llearn.ucfh import (
    EpisodicMDP,
    bounded_policy_value,
    confidence_intervals,
    deciding_policy,
    evaluate_policy,
    extreme_expectation,
    fixed_horizon_evi,
    policy_value,
    solve,
    to_state_rewards,
    ucfh,
    ucfh_constants,
)


def random_mdp(seed: int, S: int = 4, A: int = 2, H: int = 4, sa: bool = False,
               support: str = "all", conc: float = 1.0) -> EpisodicMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(S, conc), size=(S, A))
    r = rng.uniform(0, 1, (S, A) if sa else S)
    init = rng.dirichlet(np.ones(S))
    tw = rng.uniform(0.5, 1.0, H)
    return EpisodicMDP.from_dense(P, r, init, H, time_weight=tw, support=support)


def forward_value(mdp: EpisodicMDP, policy: np.ndarray) -> float:
    """Independent oracle: sum_t d_t . r_t with forward occupancies d_{t+1} = d_t P_pi."""
    P = mdp.dense()
    S = mdp.n_states
    d = mdp.init.copy()
    total = 0.0
    for t in range(mdp.horizon):
        a = policy[t] if policy.ndim == 2 else policy
        r = mdp.reward_at(t)
        rr = r if r.ndim == 1 else r[np.arange(S), a]
        total += float(d @ rr)
        d = d @ P[np.arange(S), a]
    return total


# ---------------------------------------------------------------------------
# the MDP type
# ---------------------------------------------------------------------------


def _parts(S=3, A=2, C=3):
    succ = np.broadcast_to(np.arange(C), (S, A, C)).copy()
    prob = np.full((S, A, C), 1.0 / C)
    return succ, prob, np.ones(S), np.full(S, 1.0 / S), 3


@pytest.mark.parametrize("mutate,field", [
    (lambda p: p.__setitem__(1, p[1] * 0.5), "prob"),
    (lambda p: p.__setitem__(1, np.full((3, 2, 3), 0.5)), "prob"),
    (lambda p: p[0].__setitem__((0, 0, 0), 7), "succ"),
    (lambda p: p[0].__setitem__((0, 0, 1), 0), "succ"),  # duplicate successor
    (lambda p: p.__setitem__(2, np.ones(5)), "reward"),
    (lambda p: p.__setitem__(3, np.array([0.5, 0.6, 0.1])), "init"),
    (lambda p: p.__setitem__(4, 0), "horizon"),
])
def test_mdp_validation_names_the_field(mutate, field):
    parts = list(_parts())
    parts[0] = parts[0].copy()
    parts[1] = parts[1].copy()
    mutate(parts)
    with pytest.raises(ValueError, match=field):
        EpisodicMDP(*parts)


def test_mdp_validation_padding_time_weight_and_action_free():
    succ, prob, r, init, H = _parts()
    succ2 = succ.copy()
    succ2[0, 0, 2] = -1
    with pytest.raises(ValueError, match="padding"):
        EpisodicMDP(succ2, prob, r, init, H)
    with pytest.raises(ValueError, match="time_weight"):
        EpisodicMDP(succ, prob, r, init, H, time_weight=np.ones(2))
    p2 = prob.copy()
    p2[1, 1] = [0.5, 0.5, 0.0]
    with pytest.raises(ValueError, match="action_free"):
        EpisodicMDP(succ, p2, r, init, H, action_free=np.array([False, True, False]))
    EpisodicMDP(succ, p2, r, init, H, action_free=np.array([True, False, True]))


def test_support_nonzero_matches_dense_and_all():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(5), size=(5, 2))
    P[P < 0.15] = 0
    P /= P.sum(-1, keepdims=True)
    r, init = rng.random(5), np.full(5, 0.2)
    a = EpisodicMDP.from_dense(P, r, init, 5, support="all")
    b = EpisodicMDP.from_dense(P, r, init, 5, support="nonzero")
    assert b.max_successors < 5
    assert np.allclose(b.dense(), P) and np.allclose(a.dense(), P)
    assert solve(a).value == pytest.approx(solve(b).value, abs=1e-12)


# ---------------------------------------------------------------------------
# exact DP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sa", [False, True])
def test_solve_is_the_best_of_all_deterministic_policies(sa):
    mdp = random_mdp(3, S=2, A=2, H=3, sa=sa)
    best = -np.inf
    for flat in itertools.product(range(2), repeat=6):
        pol = np.array(flat).reshape(3, 2)
        v = forward_value(mdp, pol)
        assert policy_value(mdp, pol) == pytest.approx(v, abs=1e-12)
        best = max(best, v)
    sol = solve(mdp)
    assert sol.value == pytest.approx(best, abs=1e-12)
    assert forward_value(mdp, sol.policy) == pytest.approx(best, abs=1e-12)


def test_stochastic_and_pruned_evaluation_agree():
    mdp = random_mdp(4, S=5, A=3, H=6, sa=True, support="nonzero", conc=0.3)
    rng = np.random.default_rng(0)
    pol = rng.dirichlet(np.ones(3), size=(6, 5))
    v_full = float(mdp.init @ evaluate_policy(mdp, pol))
    assert policy_value(mdp, pol) == pytest.approx(v_full, abs=1e-12)
    # mixture of deterministic policies = stochastic policy value (linearity at t = 0 only)
    det = rng.integers(0, 3, size=(6, 5))
    assert policy_value(mdp, det) == pytest.approx(forward_value(mdp, det), abs=1e-12)
    with pytest.raises(ValueError, match="policy"):
        policy_value(mdp, np.zeros((6, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="policy"):
        policy_value(mdp, np.full((5, 3), 0.5))


# ---------------------------------------------------------------------------
# Algorithm 17
# ---------------------------------------------------------------------------


def test_deciding_state_conversion_preserves_values():
    mdp = random_mdp(5, S=4, A=3, H=5, sa=True)
    smdp = to_state_rewards(mdp)
    assert smdp.state_rewards and smdp.horizon == 10 and smdp.n_states == 4 + 12
    sol, ssol = solve(mdp), solve(smdp)
    assert ssol.value == pytest.approx(sol.value, abs=1e-12)
    back = deciding_policy(mdp, ssol.policy)
    assert policy_value(mdp, back) == pytest.approx(sol.value, abs=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(5):
        pol = rng.integers(0, 3, size=(5, 4))
        spol = np.zeros((10, smdp.n_states), dtype=np.int64)
        spol[0::2, :4] = pol
        assert policy_value(smdp, spol) == pytest.approx(forward_value(mdp, pol), abs=1e-12)
    assert to_state_rewards(smdp) is smdp


# ---------------------------------------------------------------------------
# confidence sets and EVI
# ---------------------------------------------------------------------------


@given(seed=st.integers(0, 10_000), C=st.sampled_from([2, 3, 5, 8, 9, 14]),
       maximize=st.booleans())
def test_extreme_expectation_solves_the_linear_program(seed, C, maximize):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(C))
    lo = np.clip(p - rng.uniform(0, 0.3, C), 0, 1)
    hi = np.clip(p + rng.uniform(0, 0.3, C), 0, 1)
    vals = np.round(rng.normal(size=C), 1)  # ties happen
    got = extreme_expectation(lo[None], hi[None], vals[None], np.ones((1, C), bool), maximize)
    sign = -1.0 if maximize else 1.0
    lp = linprog(sign * vals, A_eq=np.ones((1, C)), b_eq=[1.0], bounds=list(zip(lo, hi, strict=True)))
    assert lp.success
    assert got[0] == pytest.approx(sign * lp.fun, abs=1e-9)


def test_confidence_intervals_shape_and_special_cases():
    valid = np.array([[[True, True, True], [True, False, False]]])
    counts = np.array([[[0, 0, 0], [4, 0, 0]]])
    lo, hi = confidence_intervals(counts, valid, log_term=5.0)
    assert np.allclose(lo[0, 0], 0) and np.allclose(hi[0, 0], 1)  # unvisited
    assert (lo[0, 1, 0], hi[0, 1, 0]) == (1.0, 1.0)  # single possible successor: known
    assert np.all(lo[0, 1, 1:] == 0) and np.all(hi[0, 1, 1:] == 0)  # padding
    valid = np.ones((1, 1, 3), bool)
    widths = []
    for n in (10, 100, 1000, 10000):
        c = np.array([[[n // 2, n // 4, n - n // 2 - n // 4]]])
        lo, hi = confidence_intervals(c, valid, log_term=5.0)
        ph = c / n
        assert np.all(lo <= ph + 1e-15) and np.all(ph <= hi + 1e-15)
        widths.append(float((hi - lo).max()))
        lo2, hi2 = confidence_intervals(c, valid, log_term=5.0, width_scale=0.5)
        assert np.all(lo2 >= lo - 1e-15) and np.all(hi2 <= hi + 1e-15)
    assert widths == sorted(widths, reverse=True)
    # the Hoeffding width is an upper bound of every width
    assert widths[-1] <= 2 * math.sqrt(5.0 / (2 * 10000)) + 1e-12


def test_confidence_intervals_cover_the_truth():
    rng = np.random.default_rng(0)
    p = np.array([0.7, 0.2, 0.08, 0.02])
    L = math.log(6 / 0.01)  # per-entry failure probability 0.01 (Dann & Brunskill)
    valid = np.ones((2000, 1, 4), bool)
    for n in (2, 5, 30, 300):
        c = rng.multinomial(n, p, size=2000)[:, None, :]
        lo, hi = confidence_intervals(c, valid, L)
        miss = ((p < lo - 1e-12) | (p > hi + 1e-12)).any(axis=-1).mean()
        assert miss <= 0.04, (n, miss)


def test_evi_with_exact_intervals_is_dp_and_is_optimistic_otherwise():
    mdp = random_mdp(6, S=5, A=2, H=5)
    p = mdp.prob
    v0, pol = fixed_horizon_evi(mdp, p, p)
    sol = solve(mdp)
    assert float(mdp.init @ v0) == pytest.approx(sol.value, abs=1e-12)
    assert policy_value(mdp, pol) == pytest.approx(sol.value, abs=1e-12)
    lo, hi = np.clip(p - 0.1, 0, 1), np.clip(p + 0.1, 0, 1)
    up, pol2 = fixed_horizon_evi(mdp, lo, hi)
    assert float(mdp.init @ up) >= sol.value
    true2 = policy_value(mdp, pol2)
    low = float(mdp.init @ bounded_policy_value(mdp, lo, hi, pol2, optimistic=False))
    hi2 = float(mdp.init @ bounded_policy_value(mdp, lo, hi, pol2, optimistic=True))
    assert low <= true2 <= hi2 <= float(mdp.init @ up) + 1e-12


# ---------------------------------------------------------------------------
# UCFH
# ---------------------------------------------------------------------------


def test_ucfh_constants_follow_the_paper_formulas():
    mdp = random_mdp(0, S=4, A=2, H=4)
    c = ucfh_constants(mdp, eps=0.1, delta=0.1)
    S, A, H, C = 4, 2, 4, 4
    rs = float(mdp.time_weight.max() * mdp.reward.max())
    en = 0.1 / rs
    w_min = en / (4 * H * S)
    U = S * A * math.log2(S * H / w_min)
    d1 = 0.1 / (2 * U * C)
    L = math.log(6 / d1)
    m = 512 * math.log2(math.log2(H)) ** 2 * C * H**2 / en**2 * math.log2(8 * H**2 * S**2 / en) ** 2 * L
    assert c.w_min == pytest.approx(w_min) and c.delta1 == pytest.approx(d1)
    assert c.log_term == pytest.approx(L) and c.m == pytest.approx(m) == c.m_theory
    assert c.first_update == math.ceil(m * w_min) > 1000  # theory: no update for a long while
    c2 = ucfh_constants(mdp, eps=0.1, delta=0.1, m=50, width_scale=0.5)
    assert c2.m == 50 and c2.m_theory == c.m_theory and c2.first_update == 1
    # with theory constants nothing is learned in a short run: the first plan is kept
    res = ucfh(mdp, eps=0.1, episodes=50, seed=0)
    assert res.updates == 1 and res.episodes == 50 and res.samples == 50 * H


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ucfh_finds_an_eps_optimal_policy(seed):
    mdp = random_mdp(10 + seed, S=5, A=3, H=5, conc=0.5)
    opt = solve(mdp).value
    res = ucfh(mdp, eps=0.1, episodes=3000, m=1000, width_scale=0.3, seed=seed)
    assert policy_value(mdp, res.policy) >= opt - 0.1
    assert res.value_upper >= opt - 1e-9
    assert res.value_lower <= policy_value(mdp, res.policy) + 1e-9


@pytest.mark.parametrize("update", ["paper", "batch"])
def test_ucfh_certificate_at_theory_widths(update):
    mdp = random_mdp(20, S=3, A=2, H=3)
    opt = solve(mdp).value
    res = ucfh(mdp, eps=0.25, episodes=None, m=1000, update=update, seed=3)
    assert res.certified and res.value_upper - res.value_lower <= 0.25
    v = policy_value(mdp, res.policy)
    assert res.value_lower - 1e-9 <= v <= opt + 1e-12 <= res.value_upper + 1e-9
    assert v >= opt - 0.25
    assert res.history[0][0] == 0 and res.history[-1][0] <= res.episodes


def test_ucfh_is_reproducible_and_learns_only_unknown_pairs():
    mdp = to_state_rewards(random_mdp(7, S=3, A=2, H=3, sa=True))
    a = ucfh(mdp, eps=0.1, episodes=300, m=500, width_scale=0.5, seed=11)
    b = ucfh(mdp, eps=0.1, episodes=300, m=500, width_scale=0.5, seed=11)
    assert np.array_equal(a.policy, b.policy) and np.array_equal(a.counts, b.counts)
    assert a.counts.sum() == 300 * mdp.horizon
    # node states are action-free: only action 0 is ever played there
    assert a.counts[3:, 1:].sum() == 0


def test_ucfh_bad_inputs():
    mdp = random_mdp(0)
    with pytest.raises(ValueError, match="to_state_rewards"):
        ucfh(random_mdp(0, sa=True), eps=0.1, episodes=5)
    for kw, field in [({"eps": 0}, "eps"), ({"eps": 0.1, "delta": 1.5}, "delta"),
                      ({"eps": 0.1, "update": "x"}, "update"),
                      ({"eps": 0.1, "episodes": 0}, "episodes"),
                      ({"eps": 0.1, "m": -1}, "m"), ({"eps": 0.1, "width_scale": 0}, "width_scale"),
                      ({"eps": 0.1, "seed": 1.5}, "seed")]:
        with pytest.raises(ValueError, match=field):
            ucfh(mdp, **kw)
    with pytest.raises(ValueError, match="mdp"):
        ucfh("not an mdp", eps=0.1)  # type: ignore[arg-type]
