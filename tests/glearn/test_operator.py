"""The empirical operator T_hat (altmarl.glearn.operator, SPEC 4, Definition B.10)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.glearn.operator import empirical_operator, pi_l_table
from altmarl.glearn.options import GLearnOptions
from altmarl.glearn.solvers import solve
from altmarl.histogram import enumerate_histograms, rank

from .helpers import (
    random_pi_l,
    small_game,
)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), crn=st.sampled_from(["pool", "states", "none"]),
       scale=st.floats(0.01, 100.0))
def test_empirical_operator_is_a_gamma_contraction(seed: int, crn: str, scale: float) -> None:
    game = small_game(seed % 7, gamma=0.9)
    op = empirical_operator(game, am.LocalPolicy.uniform(game), 3, seed=seed, options=GLearnOptions(m=7, crn=crn))
    rng = np.random.default_rng(seed)
    q1 = rng.normal(size=op.shape) * scale
    q2 = q1 + rng.normal(size=op.shape) * scale * rng.random()
    lhs = np.abs(op.apply(q1) - op.apply(q2)).max()
    rhs = op.gamma * np.abs(q1 - q2).max()
    assert lhs <= rhs * (1 + 1e-12) + 1e-12
    # monotone: Q1 <= Q2 implies T Q1 <= T Q2
    q3 = q1 + np.abs(rng.normal(size=op.shape))
    assert np.all(op.apply(q1) <= op.apply(q3) + 1e-12)


def test_operator_reward_matches_spec() -> None:
    game = small_game(2)
    pi_l = random_pi_l(game, 3)
    k = 3
    op = empirical_operator(game, pi_l, k, seed=0, options=GLearnOptions(m=4))
    Hs = enumerate_histograms(k, game.n_sl)
    r = op.reward()
    for s in range(game.n_sg):
        for i, h in enumerate(Hs):
            for a in range(game.n_ag):
                expect = game.r_g[s, a] + sum(
                    h[x] * sum(pi_l.table[x, s, b] * game.r_l[x, s, b] for b in range(game.n_al))
                    for x in range(game.n_sl)) / k
                assert r[s, i, a] == pytest.approx(expect, abs=1e-12)


def test_pi_l_table() -> None:
    game = small_game(21)
    pi_l = random_pi_l(game, 21)
    np.testing.assert_array_equal(pi_l_table(game, pi_l), pi_l.table)
    np.testing.assert_array_equal(pi_l_table(game, pi_l.table), pi_l.table)
    with pytest.raises(ValueError, match=r"pi_l.table: expected shape"):
        pi_l_table(game, pi_l.table[:, :1])
    with pytest.raises(ValueError):
        pi_l_table(game, np.full(pi_l.table.shape, 0.9))  # rows do not sum to 1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_mean_field_and_standard_agree_with_exact_expectation(seed: int, k: int) -> None:
    game = small_game(seed)
    pi_l = random_pi_l(game, seed + 10)
    mf = am.g_learn(game, pi_l, k, m=None, tol=1e-10)
    std = am.g_learn(game, pi_l, k, m=None, parameterization="standard", tol=1e-10)
    assert mf.q is not None and std.q is not None
    np.testing.assert_allclose(mf.q, std.q, atol=1e-8)
    # the tuple Q itself is permutation invariant: every ordering of a histogram agrees
    op = empirical_operator(game, pi_l, k, options=GLearnOptions(m=None, parameterization="standard"))
    q_t, _ = solve(op, GLearnOptions(tol=1e-10))
    d = game.n_sl
    dig = np.array(list(itertools.product(range(d), repeat=k))).reshape(-1, k)
    hr = rank(np.stack([(dig == x).sum(1) for x in range(d)], axis=1), k)
    np.testing.assert_allclose(q_t, mf.q[:, hr, :], atol=1e-8)
    np.testing.assert_array_equal(mf.actions, std.actions)
    assert mf.info["samples"] == 0 and mf.info["m"] is None


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
def test_sampled_q_approaches_exact_q_as_m_grows(crn: str) -> None:
    game = small_game(5)
    pi_l = random_pi_l(game, 5)
    k = 3
    exact = am.g_learn(game, pi_l, k, m=None, tol=1e-10).q
    assert exact is not None

    def err(m: int, seed: int) -> float:
        q = am.g_learn(game, pi_l, k, m=m, seed=seed, crn=crn, tol=1e-9).q
        assert q is not None
        return float(np.abs(q - exact).max())

    e5 = np.mean([err(5, s) for s in range(4)])
    e200 = np.mean([err(200, s) for s in range(4)])
    # Monte-Carlo error ~ 1/sqrt(m): a factor sqrt(40) ~ 6.3 is expected
    assert e200 < 0.4 * e5
    assert e200 < 0.1 * float(np.abs(exact).max())


def test_standard_sampled_approaches_exact() -> None:
    game = small_game(6)
    pi_l = random_pi_l(game, 6)
    exact = am.g_learn(game, pi_l, 2, m=None, tol=1e-10).q
    errs = {}
    for m in (5, 200):
        errs[m] = np.mean([
            np.abs(am.g_learn(game, pi_l, 2, m=m, seed=s, parameterization="standard").q
                   - exact).max() for s in range(4)])
    assert errs[200] < 0.4 * errs[5]

