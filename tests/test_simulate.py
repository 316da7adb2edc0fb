"""Count simulator vs per-agent simulator (SPEC 3): they agree in distribution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import comb

import altmarl as am
from altmarl.histogram import enumerate_histograms, rank
from altmarl.simulate import subsample_histograms


def _two_sample_chi2(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    ca = np.bincount(a, minlength=bins)
    cb = np.bincount(b, minlength=bins)
    keep = (ca + cb) > 0
    return float(stats.chi2_contingency(np.stack([ca[keep], cb[keep]]))[1])


def _policies(game, k, seed=0):
    rng = np.random.default_rng(seed)
    pi_l = am.LocalPolicy(rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg)))
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, am.num_histograms(k, game.n_sl)))
    return am.GlobalPolicy(k, acts, game.n_ag), pi_l


def test_subsample_matches_multivariate_hypergeometric_pmf():
    rng = np.random.default_rng(0)
    N = np.array([3, 5, 2])
    k = 4
    draws = subsample_histograms(np.tile(N, (30_000, 1)), k, rng)
    hs = enumerate_histograms(k, 3)
    pmf = np.prod(comb(N, hs), axis=1) / comb(N.sum(), k)
    obs = np.bincount(rank(draws, k), minlength=len(hs))
    assert pmf.sum() == pytest.approx(1.0)
    keep = pmf > 0
    assert obs[~keep].sum() == 0
    assert stats.chisquare(obs[keep], pmf[keep] * 30_000).pvalue > 1e-3


def test_sequential_subsample_method_agrees_with_hypergeometric():
    rng = np.random.default_rng(1)
    N = np.tile(np.array([4, 0, 7, 1]), (20_000, 1))
    a = rank(subsample_histograms(N, 5, rng, method="hypergeometric"), 5)
    b = rank(subsample_histograms(N, 5, rng, method="sequential"), 5)
    assert _two_sample_chi2(a, b, am.num_histograms(5, 4)) > 1e-3
    with pytest.raises(ValueError, match="method"):
        subsample_histograms(N, 5, rng, method="magic")


def test_huge_population_uses_an_exact_sampler():
    rng = np.random.default_rng(2)
    N = np.array([[3 * 10**9, 10**9, 0]])
    h = subsample_histograms(np.repeat(N, 4000, axis=0), 3, rng)
    assert np.all(h.sum(axis=1) == 3)
    assert np.all(h[:, 2] == 0)
    # each sampled agent is in bin 0 with prob 3/4 (replacement effects ~1e-9)
    assert h[:, 0].mean() / 3 == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("seed", [0, 1])
def test_count_and_agent_simulators_agree_in_distribution(seed):
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=6, gamma=0.9, seed=seed)
    pi_g, pi_l = _policies(game, k=2, seed=seed)
    R, H = 6000, 3
    init = (np.zeros(R, int), np.tile([4, 2, 0], (R, 1)))
    tc = am.rollout_counts(game, pi_g, pi_l, R, H, np.random.default_rng(10 + seed),
                           record_counts=True, init=init)
    ta = am.rollout_agents(game, pi_g, pi_l, R, H, np.random.default_rng(20 + seed),
                           record_counts=True, init=init)
    n_h = am.num_histograms(6, 3)
    for t in (1, 2):
        # joint law of (s_g, N_t)
        ic = tc.s_g[:, t] * n_h + rank(tc.counts[:, t], 6)
        ia = ta.s_g[:, t] * n_h + rank(ta.counts[:, t], 6)
        assert _two_sample_chi2(ic, ia, 2 * n_h) > 1e-3
    # a_g law and returns
    assert _two_sample_chi2(tc.a_g[:, 2], ta.a_g[:, 2], 2) > 1e-3
    ks = stats.ks_2samp(tc.discounted_returns(0.9), ta.discounted_returns(0.9))
    assert ks.pvalue > 1e-3


def test_count_simulator_matches_exact_one_step_law():
    """N_1 given N_0 is a convolution of multinomials with K = sum_a pi_l P_l (SPEC 7)."""
    game = am.envs.make("random", n_sg=1, n_ag=1, n_sl=2, n_al=2, n=5, seed=4)
    pi_g, pi_l = _policies(game, k=1, seed=4)
    R = 20_000
    init = (np.zeros(R, int), np.tile([3, 2], (R, 1)))
    tr = am.rollout_counts(game, pi_g, pi_l, R, 2, np.random.default_rng(5), True, init)
    K = game.local_kernel(pi_l.table)[:, 0, :]  # (x, x')
    # N_1[0] = Bin(3, K[0,0]) + Bin(2, K[1,0])
    pmf = np.convolve(stats.binom.pmf(np.arange(4), 3, K[0, 0]), stats.binom.pmf(np.arange(3), 2, K[1, 0]))
    obs = np.bincount(tr.counts[:, 1, 0], minlength=6)
    assert stats.chisquare(obs, pmf * R).pvalue > 1e-3


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), k=st.integers(1, 40),
       d=st.integers(1, 4), a=st.integers(1, 3))
def test_simulator_invariants(seed, n, k, d, a):
    k = min(k, n)
    game = am.envs.make("random", n_sg=2, n_ag=a, n_sl=d, n_al=2, n=n, seed=seed)
    pi_g, pi_l = _policies(game, k, seed)
    tr = am.rollout_counts(game, pi_g, pi_l, 7, 5, np.random.default_rng(seed), record_counts=True)
    assert np.all(tr.counts.sum(axis=2) == n) and np.all(tr.counts >= 0)
    lo = game.r_g.min() + game.r_l.min()
    hi = game.r_g.max() + game.r_l.max()
    assert np.all(tr.rewards >= lo - 1e-12) and np.all(tr.rewards <= hi + 1e-12)
    assert np.all((tr.a_g >= 0) & (tr.a_g < a)) and np.all((tr.s_g >= 0) & (tr.s_g < 2))


def test_population_of_a_billion_runs():
    game = am.envs.make("warehouse", n=10**9)
    tr = am.rollout_counts(game, am.GlobalPolicy.sample_mode(game, 5), am.LocalPolicy.uniform(game),
                           16, 10, np.random.default_rng(0), record_counts=True)
    assert np.all(tr.counts.sum(axis=2) == 10**9)


def test_mismatched_policies_are_rejected(warehouse):
    small = am.envs.make("random", n=5)
    with pytest.raises(ValueError, match="pi_l.table"):
        am.rollout_counts(warehouse, am.GlobalPolicy.constant(warehouse, 2),
                          am.LocalPolicy.uniform(small), 2, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="k = 6"):
        am.rollout_counts(small, am.GlobalPolicy.constant(small, 6),
                          am.LocalPolicy.uniform(small), 2, 2, np.random.default_rng(0))


def test_scalar_and_array_subsample_paths_give_identical_numbers():
    """Small batches use scalar hypergeometric calls in the array call's stream order."""
    from altmarl.simulate import _SCALAR_ROWS

    N = np.random.default_rng(0).multinomial(50, [0.1, 0.2, 0.3, 0.4], size=_SCALAR_ROWS)
    small = subsample_histograms(N, 7, np.random.default_rng(9))
    # the same rows inside a batch too large for the scalar path: same stream prefix per bin
    big = np.concatenate([N, N[:1]])
    both = subsample_histograms(big, 7, np.random.default_rng(9))
    # bins are drawn outer, rows inner: compare against an explicit array-path replay
    rng = np.random.default_rng(9)
    remaining = N.sum(axis=1)
    left = np.full(len(N), 7)
    ref = np.zeros_like(N)
    for x in range(3):
        ref[:, x] = rng.hypergeometric(N[:, x], remaining - N[:, x], left)
        left -= ref[:, x]
        remaining = remaining - N[:, x]
    ref[:, 3] = left
    assert np.array_equal(small, ref)
    assert both.shape == big.shape and np.all(both.sum(axis=1) == 7)
