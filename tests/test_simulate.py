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
    """Batches on both sides of SCALAR_ROWS draw the array calls' numbers in their stream
    order (through whichever path is in use: the Numba kernel when it loaded; the NumPy
    paths themselves, scalar and array, are replayed in tests/test_sampling_kernels.py)."""
    from altmarl.sampling import SCALAR_ROWS as _SCALAR_ROWS

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


# ---------------------------------------------------------------------------
# sampling primitives and the pure count step (SPEC 3)
# ---------------------------------------------------------------------------

from altmarl.glearn.rewards import uniform  # noqa: E402
from altmarl.simulate import (  # noqa: E402
    count_step,
    global_actions,
    inverse_cdf_rows,
    multivariate_hypergeometric,
    sample_rows,
    step_tables,
)


@given(seed=st.integers(0, 2**16), n=st.integers(1, 12), k=st.integers(1, 12))
def test_sampled_agents_are_a_sub_draw(seed: int, n: int, k: int) -> None:
    """Sub-draws of a population's (action) and (action, next state) counts sum to the
    sample's histogram per bin and never exceed the population's cells."""
    k = min(k, n)
    rng = np.random.default_rng(seed)
    N = rng.multinomial(n, [0.5, 0.3, 0.2], size=4)
    M = np.stack([rng.multinomial(N[:, x], np.full(6, 1 / 6)) for x in range(3)],
                 axis=1).reshape(4, 3, 2, 3)
    act = M.sum(axis=3)
    h = subsample_histograms(N, k, rng)
    samp = multivariate_hypergeometric(act, h, rng)
    assert np.array_equal(samp.sum(axis=2), h)
    assert (samp >= 0).all() and (samp <= act).all()
    moved = multivariate_hypergeometric(M, samp, rng)
    assert np.array_equal(moved.sum(axis=3), samp) and (moved <= M).all()
    assert (moved.sum(axis=(1, 2)).sum(axis=1) == k).all()


def test_multivariate_hypergeometric_mean_and_paths():
    """The mean is ``nsample * colors / total``; few rows with leading axes consume the
    stream like the array call (colours outer, rows inner), whichever path draws them."""
    rng = np.random.default_rng(0)
    colors = np.array([[5, 0, 3, 12]] * 20000)
    draws = multivariate_hypergeometric(colors, np.full(20000, 7), rng)
    assert np.abs(draws.mean(axis=0) - 7 * colors[0] / colors[0].sum()).max() < 0.03
    cells = np.random.default_rng(1).integers(0, 6, size=(3, 4, 5))  # 12 rows <= _SCALAR_ROWS
    take = np.minimum(cells.sum(axis=-1), np.arange(12).reshape(3, 4) % 5)
    got = multivariate_hypergeometric(cells, take, np.random.default_rng(2))
    ref_rng = np.random.default_rng(2)
    flat, left = cells.reshape(12, 5), take.reshape(12).copy()
    remaining, ref = flat.sum(axis=1), np.zeros((12, 5), dtype=np.int64)
    for c in range(4):
        ref[:, c] = ref_rng.hypergeometric(flat[:, c], remaining - flat[:, c], left)
        left -= ref[:, c]
        remaining = remaining - flat[:, c]
    ref[:, 4] = left
    np.testing.assert_array_equal(got, ref.reshape(3, 4, 5))


def test_one_population_subsample_uses_numpys_sampler():
    """A 1-d population: NumPy's ``multivariate_hypergeometric`` (same numbers)."""
    N = np.array([5, 0, 3, 12])
    a = subsample_histograms(N, 6, np.random.default_rng(4))
    b = np.random.default_rng(4).multivariate_hypergeometric(N, 6, method="marginals")
    assert a.shape == (4,) and np.array_equal(a, b)
    with pytest.raises(ValueError, match="k = 30"):
        subsample_histograms(N, 30, np.random.default_rng(0))


def test_inverse_cdf_rows():
    cdf = np.cumsum(np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]]), axis=1)
    np.testing.assert_array_equal(inverse_cdf_rows(cdf, np.array([0.1, 0.5])), [0, 1])
    np.testing.assert_array_equal(inverse_cdf_rows(cdf, np.array([0.2, 0.3])), [0, 1])
    np.testing.assert_array_equal(inverse_cdf_rows(cdf * 0.999, np.array([0.9999, 0.9999])),
                                  [2, 2])  # round-off in the last entry: capped
    u = np.random.default_rng(3).random(2)
    np.testing.assert_array_equal(sample_rows(cdf, np.random.default_rng(3)),
                                  inverse_cdf_rows(cdf, u))


def _old_rollout_counts(game, pi_g, pi_l, R, H, rng, reward_model=None):
    """The count simulator as written before the shared step (a reference replay)."""
    d, A, n = game.n_sl, game.n_al, game.n
    s_g, N = game.sample_init(rng, R)
    J = np.einsum("xga,xgay->gxay", pi_l.table, game.P_l).reshape(game.n_sg, d, A * d)
    J = np.clip(J, 0.0, None)
    J /= J.sum(axis=-1, keepdims=True)
    rl = game.r_l.transpose(1, 0, 2)
    cdf_g = np.cumsum(game.P_g, axis=-1)
    rewards, sgs = np.empty((R, H)), np.empty((R, H), dtype=np.int64)
    for t in range(H):
        a_g = global_actions(pi_g, s_g, N, rng, n)
        M = rng.multinomial(N, J[s_g]).reshape(R, d, A, d)
        act = M.sum(axis=3)
        if reward_model is None:
            rewards[:, t] = game.r_g[s_g, a_g] + np.einsum("rxa,rxa->r", act, rl[s_g]) / n
        else:
            rewards[:, t] = reward_model.stage_reward(rng, s_g, a_g, act, n)
        sgs[:, t] = s_g
        u = rng.random(R)
        s_g = np.minimum((cdf_g[s_g, a_g] < u[:, None]).sum(axis=1), game.n_sg - 1)
        N = M.sum(axis=(1, 2))
    return rewards, sgs


@pytest.mark.parametrize("k", [3, 40])
@pytest.mark.parametrize("stochastic", [False, True])
def test_rollout_counts_on_the_shared_step_replays_the_old_loop(warehouse, k, stochastic):
    """Golden: ``rollout_counts`` (now ``count_step`` per step) gives bit-for-bit the
    numbers of the loop it replaced, with and without a reward model."""
    game = warehouse.with_n(40)
    rm = (am.RewardModel.from_game(game, noise_g=uniform(0.1), noise_l=uniform(0.2))
          if stochastic else None)
    pi_g = am.GlobalPolicy.sample_mode(game, k)
    pi_l = am.LocalPolicy(np.random.default_rng(0).dirichlet(np.ones(game.n_al),
                                                            size=(game.n_sl, game.n_sg)))
    tr = am.rollout_counts(game, pi_g, pi_l, 7, 25, np.random.default_rng(5), reward_model=rm)
    ref_r, ref_sg = _old_rollout_counts(game, pi_g, pi_l, 7, 25, np.random.default_rng(5), rm)
    np.testing.assert_array_equal(tr.rewards, ref_r)
    np.testing.assert_array_equal(tr.s_g, ref_sg)


def test_count_step_matches_the_exact_one_step_law():
    """From a fixed ``(s_g, N)`` and ``a_g``: ``N'[1] = sum_x Binomial(N[x], K[x, s_g, 1])``
    independent of ``s_g' ~ P_g(s_g, a_g)`` (chi-square on the joint law), and the mean
    reward is ``r_g + (1/n) sum_x N[x] rbar[x, s_g]``."""
    rng = np.random.default_rng(0)
    game = am.TabularGame(rng.dirichlet(np.ones(3), size=(3, 2)),
                          rng.dirichlet(np.ones(2), size=(2, 3, 2)),
                          rng.uniform(0, 1, (3, 2)), rng.uniform(0, 1, (2, 3, 2)), 0.9, 5)
    pi = rng.dirichlet(np.ones(2), size=(2, 3))
    tab = step_tables(game, pi)
    R, sg, ag, N0 = 40_000, 1, 0, np.array([2, 3])
    cs = count_step(tab, np.full(R, sg), np.tile(N0, (R, 1)), np.full(R, ag),
                    np.random.default_rng(1))
    assert (cs.counts.sum(axis=1) == 5).all()
    K = game.local_kernel(pi)[:, sg, :]
    p1 = np.convolve(stats.binom.pmf(np.arange(3), 2, K[0, 1]),
                     stats.binom.pmf(np.arange(4), 3, K[1, 1]))  # law of N'[1], 0..5
    law = np.outer(game.P_g[sg, ag], p1).ravel()  # (s_g', N'[1])
    obs = np.bincount(cs.s_g * 6 + cs.counts[:, 1], minlength=law.size)
    keep = law * R > 5
    chi2 = float(((obs[keep] - R * law[keep]) ** 2 / (R * law[keep])).sum())
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    rbar = game.local_reward(pi)[:, sg]
    exact_r = game.r_g[sg, ag] + N0 @ rbar / 5
    assert abs(cs.reward.mean() - exact_r) < 5 * cs.reward.std() / np.sqrt(R)
    np.testing.assert_array_equal(cs.act_counts.sum(axis=2), np.tile(N0, (R, 1)))


def test_count_step_with_given_draws_and_a_reward_sample():
    """Given moves and global uniforms the step draws nothing (``rng=None``); with a
    sample the reward is the sampled agents' (``1/k``) and equals the population's when
    ``k = n``."""
    small = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=5, seed=1)
    tab = step_tables(small, am.LocalPolicy.uniform(small).table)
    rng = np.random.default_rng(0)
    s_g, N = small.sample_init(rng, 6)
    a_g = rng.integers(0, small.n_ag, 6)
    M = rng.multinomial(N, tab.joint[s_g])
    u = rng.random(6)
    a = count_step(tab, s_g, N, a_g, None, moves=M, u_g=u)
    b = count_step(tab, s_g, N, a_g, None, moves=M.copy(), u_g=u)
    np.testing.assert_array_equal(a.reward, b.reward)
    np.testing.assert_array_equal(a.s_g, inverse_cdf_rows(tab.cdf_g[s_g, a_g], u))
    with pytest.raises(ValueError, match="rng = None"):
        count_step(tab, s_g, N, a_g, None, moves=M)
    full = count_step(tab, s_g, N, a_g, None, moves=M, u_g=u, sample=N)
    np.testing.assert_array_equal(full.sampled, a.act_counts)
    np.testing.assert_allclose(full.reward, a.reward, rtol=1e-15)
    h = subsample_histograms(N, 2, rng)
    part = count_step(tab, s_g, N, a_g, rng, moves=M, u_g=u, sample=h)
    assert part.sampled is not None and np.array_equal(part.sampled.sum(axis=2), h)
    loc = np.einsum("rxa,rxa->r", part.sampled, tab.r_l[s_g]) / 2
    np.testing.assert_array_equal(part.reward, small.r_g[s_g, a_g] + loc)


def test_check_joint_with_and_without_a_local_policy(tiny_game):
    from altmarl.simulate import check_joint

    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 0)
    check_joint(tiny_game, pi_g)
    check_joint(tiny_game, pi_g, am.LocalPolicy.uniform(tiny_game))
    other = am.envs.make("random", n_sg=3, n_ag=2, n_sl=2, n_al=3, n=4)
    with pytest.raises(ValueError, match="pi_l.table"):
        check_joint(tiny_game, pi_g, am.LocalPolicy.uniform(other))
    with pytest.raises(ValueError, match="pi_g"):
        check_joint(other, pi_g)
    with pytest.raises(ValueError, match="k = "):
        check_joint(tiny_game.with_n(1), pi_g)


@pytest.mark.parametrize("case", range(12))
def test_multinomial_moves_are_numpys_draws_bit_for_bit(case, warehouse):
    """The Numba kernel of the population move makes NumPy's ``Generator.multinomial``
    draws (conditional binomials, same stream): same counts and same generator state
    afterwards, for stochastic and deterministic tables (zero cells), populations from 1 to
    10^6 (inversion and BTPE binomials) and any number of rows."""
    from altmarl.simulate import multinomial_moves, step_tables

    rng = np.random.default_rng(case)
    alpha = 0.3 if case % 2 else 3.0
    table = rng.dirichlet(np.full(warehouse.n_al, alpha), size=(warehouse.n_sl, warehouse.n_sg))
    if case % 3 == 0:
        table = np.eye(warehouse.n_al)[rng.integers(0, warehouse.n_al, table.shape[:2])]
    J = step_tables(warehouse, table).joint
    R = int(rng.integers(1, 150))
    n = [1, 7, 1000, 10**6][case % 4]
    s_g = rng.integers(0, warehouse.n_sg, R)
    counts = rng.multinomial(n, rng.dirichlet(np.ones(warehouse.n_sl)), size=R)
    g_numpy, g_kernel = np.random.default_rng(100 + case), np.random.default_rng(100 + case)
    expected = g_numpy.multinomial(counts, J[s_g])
    got = multinomial_moves(J, s_g, counts, g_kernel)
    assert got.dtype == np.int64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert g_numpy.random() == g_kernel.random()


def test_step_tables_rows_are_stored_in_c_order(warehouse):
    """The population move reads ``joint`` every step: it is stored C-contiguous (a strided
    view would be copied on every call), single policies and candidate batches alike, with
    the same values as the kernel's rows."""
    from altmarl.simulate import step_tables

    u = am.LocalPolicy.uniform(warehouse).table
    one = step_tables(warehouse, u).joint
    batch = step_tables(warehouse, np.stack([u, u])).joint
    assert one.flags["C_CONTIGUOUS"] and batch.flags["C_CONTIGUOUS"]
    K = warehouse.joint_kernel(u)  # (x, s_g, a, x')
    d, A = warehouse.n_sl, warehouse.n_al
    rows = np.clip(K.transpose(1, 0, 2, 3).reshape(warehouse.n_sg, d, A * d), 0.0, None)
    np.testing.assert_array_equal(one, rows / rows.sum(axis=-1, keepdims=True))
    np.testing.assert_array_equal(batch[1], one)


def test_chunks_cover_the_rollouts_and_concatenate_in_order():
    """``chunk_sizes`` cuts ``R`` rollouts into full chunks and one remainder;
    ``concat_chunks`` joins a recorded field in chunk order and keeps ``None``."""
    from types import SimpleNamespace

    from altmarl.generative.simulator import chunk_sizes, concat_chunks

    assert chunk_sizes(300, 128) == [128, 128, 44]
    assert chunk_sizes(256, 128) == [128, 128]
    assert chunk_sizes(5, 128) == [5]
    parts = [SimpleNamespace(x=np.arange(3) + 10 * j, y=None) for j in range(3)]
    assert concat_chunks(parts, "x").tolist() == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert concat_chunks(parts, "y") is None


def test_initial_counts_copies_init_or_draws_from_the_game():
    from altmarl.simulate import initial_counts

    game = am.envs.make("warehouse", n=6)
    s_g0, N0 = np.array([0, 1]), np.zeros((2, game.n_sl), dtype=np.int32)
    N0[0, 0], N0[1, -1] = game.n, game.n
    s_g, N = initial_counts(game, np.random.default_rng(0), 2, (s_g0, N0))
    assert s_g.dtype == np.int64 and N.dtype == np.int64
    assert np.array_equal(s_g, s_g0) and np.array_equal(N, N0)
    s_g[0] = 5
    assert s_g0[0] == 0  # a copy: the caller's arrays are not written
    drawn = initial_counts(game, np.random.default_rng(3), 4)
    expect = game.sample_init(np.random.default_rng(3), 4)
    assert all(np.array_equal(a, b) for a, b in zip(drawn, expect, strict=True))
    assert (drawn[1].sum(axis=1) == game.n).all()


def _assert_same_trajectories(a, b):
    for name in ("rewards", "s_g", "a_g", "counts", "mode_match"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def bounds_checked_kernels():
    """:mod:`altmarl.simulate_kernels` with the rollout kernel recompiled with bounds
    checks: an out-of-bounds access raises ``IndexError`` instead of corrupting memory."""
    import types

    import numba

    from altmarl import simulate_kernels as sk

    checked = numba.njit(nogil=True, boundscheck=True)(sk.uniform_rollout_block.py_func)
    return types.SimpleNamespace(multinomial_rows=sk.multinomial_rows,
                                 uniform_rollout_block=checked)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([1, 2, 5, 13, 40, 1000, 10**6]),
       k=st.integers(1, 12), d=st.integers(1, 5), n_al=st.integers(1, 3),
       n_sg=st.integers(1, 3), n_ag=st.integers(1, 5), rollouts=st.integers(1, 9),
       horizon=st.integers(0, 9), record=st.booleans(), deterministic=st.booleans(),
       given_init=st.booleans())
def test_fused_rollout_makes_the_step_by_step_draws(bounds_checked_kernels, seed, n, k, d,
                                                    n_al, n_sg, n_ag, rollouts, horizon,
                                                    record, deterministic, given_init):
    """The compiled horizon of ``rollout_counts`` (uniform sample, no reward model) makes
    the draws of the step-by-step loop (``global_actions`` + ``count_step``) from the same
    stream: the same trajectories, bit for bit, and the same generator state afterwards,
    for any spaces, ``k`` up to ``n`` (no sample draw when ``k = n``), populations from 1
    (inversion binomials) to 10^6 (BTPE), deterministic local policies (zero cells), with
    and without recorded counts (the mode match recorded alone when ``|A_g| = |S_l|``) and
    a given initial state. The kernel runs with bounds checks here."""
    import altmarl.simulate as sim

    k = min(k, n)
    game = am.envs.make("random", n_sg=n_sg, n_ag=n_ag, n_sl=d, n_al=n_al, n=n, seed=seed)
    pi_g, pi_l = _policies(game, k, seed)
    if deterministic:
        pi_l = am.LocalPolicy(np.eye(n_al)[np.random.default_rng(seed).integers(
            0, n_al, (d, n_sg))])
    init = game.sample_init(np.random.default_rng(seed + 2), rollouts) if given_init else None
    g1, g2 = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sim, "_kernels", lambda: bounds_checked_kernels)
        a = am.rollout_counts(game, pi_g, pi_l, rollouts, horizon, g1, record_counts=record,
                              init=init)
    b = am.rollout_counts(game, pi_g, pi_l, rollouts, horizon, g2, record_counts=record,
                          fused=False, init=init)
    _assert_same_trajectories(a, b)
    assert g1.random() == g2.random()


def test_fused_rollout_caps_the_next_global_state_as_the_step_loop(warehouse, monkeypatch):
    """A cumulative ``P_g`` row whose last entry is below 1 (round-off, here exaggerated to
    0.5): uniforms above it give the last global state in both loops."""
    import dataclasses

    import altmarl.simulate as sim

    real = sim.step_tables

    def short_rows(game, table):
        t = real(game, table)
        return dataclasses.replace(t, cdf_g=t.cdf_g * 0.5)

    monkeypatch.setattr(sim, "step_tables", short_rows)
    game = warehouse.with_n(30)
    pi_g, pi_l = _policies(game, 4, 1)
    a = am.rollout_counts(game, pi_g, pi_l, 9, 12, np.random.default_rng(4))
    b = am.rollout_counts(game, pi_g, pi_l, 9, 12, np.random.default_rng(4), fused=False)
    assert (a.s_g == game.n_sg - 1).mean() > 0.3
    _assert_same_trajectories(a, b)


def test_fused_rollout_in_several_blocks(warehouse, monkeypatch):
    """A horizon longer than one compiled block runs block after block (the state carried
    over, the rewards of every block recorded): the same numbers as one block and as the
    step-by-step loop; the warehouse's ``|A_g| = |S_l|`` also records the mode match."""
    import altmarl.simulate as sim

    game = warehouse.with_n(300)
    pi_g, pi_l = _policies(game, 7, 3)
    one = am.rollout_counts(game, pi_g, pi_l, 11, 23, np.random.default_rng(9))
    ref = am.rollout_counts(game, pi_g, pi_l, 11, 23, np.random.default_rng(9), fused=False)
    monkeypatch.setattr(sim, "FUSED_BLOCK_ENTRIES", 11 * game.n_sl * game.n_al * 5)
    blocks = am.rollout_counts(game, pi_g, pi_l, 11, 23, np.random.default_rng(9))
    assert one.mode_match is not None
    _assert_same_trajectories(one, ref)
    _assert_same_trajectories(blocks, ref)


def test_rollouts_outside_the_fused_case_take_the_step_loop(warehouse):
    """A weighted sampling scheme, a weighted draw for a uniform policy (``sampling=``) and
    a policy class with its own ``act_ranked`` are not compiled: ``fused`` changes nothing
    there."""
    game = warehouse.with_n(50)
    w = am.sampling.Weighted(w=tuple(np.linspace(1.0, 2.0, game.n_sl)), k=4)
    pi_g = am.GlobalPolicy(4, np.zeros((game.n_sg, am.num_histograms(4, game.n_sl)),
                                       dtype=np.int64), game.n_ag, sampling=w, game=game)
    pi_l = am.LocalPolicy.uniform(game)
    a = am.rollout_counts(game, pi_g, pi_l, 5, 8, np.random.default_rng(2))
    b = am.rollout_counts(game, pi_g, pi_l, 5, 8, np.random.default_rng(2), fused=False)
    _assert_same_trajectories(a, b)
    u = am.GlobalPolicy(4, np.zeros((game.n_sg, am.num_histograms(4, game.n_sl)),
                                    dtype=np.int64), game.n_ag, game=game)
    a = am.rollout_counts(game, u, pi_l, 5, 8, np.random.default_rng(2), sampling=w)
    b = am.rollout_counts(game, u, pi_l, 5, 8, np.random.default_rng(2), sampling=w,
                          fused=False)
    _assert_same_trajectories(a, b)

    class LastAction(am.GlobalPolicy):
        def act_ranked(self, s_g, h_rank):
            return np.full_like(s_g, self.n_ag - 1)

    last = LastAction(4, u.actions, game.n_ag, game=game)
    a = am.rollout_counts(game, last, pi_l, 5, 8, np.random.default_rng(2))
    assert (a.a_g == game.n_ag - 1).all()


def test_fused_rollout_refuses_a_reassigned_action_table(warehouse):
    """The compiled loop indexes ``pi_g.actions`` without bounds checks: a table that does
    not fit the policy's observations is refused with a clear error."""
    game = warehouse.with_n(30)
    pi_g, pi_l = _policies(game, 3, 0)
    pi_g.actions = pi_g.actions[:, :-1]
    with pytest.raises(ValueError, match="pi_g.actions"):
        am.rollout_counts(game, pi_g, pi_l, 2, 3, np.random.default_rng(0))
    pi_g.actions = np.full((game.n_sg, am.num_histograms(3, game.n_sl)), game.n_ag)
    with pytest.raises(ValueError, match="pi_g.actions"):
        am.rollout_counts(game, pi_g, pi_l, 2, 3, np.random.default_rng(0))


@pytest.mark.parametrize("fused", [True, False])
def test_a_given_initial_state_is_checked(warehouse, fused):
    """``init`` is checked before anything is drawn: shapes, global states in range,
    non-negative counts summing to ``n``, each error naming the field."""
    game = warehouse.with_n(10)
    pi_g, pi_l = _policies(game, 2, 0)
    d = game.n_sl
    good = (np.zeros(3, dtype=np.int64), np.tile(np.r_[10, np.zeros(d - 1, np.int64)], (3, 1)))
    am.rollout_counts(game, pi_g, pi_l, 3, 2, np.random.default_rng(0), init=good, fused=fused)
    bad = [
        ((good[0][:2], good[1]), "shape"),
        ((good[0] + game.n_sg, good[1]), "init\\[0\\]"),
        ((good[0], good[1] - 1), "init\\[1\\]"),
        ((good[0], good[1] * 2), "sum to n = 10"),
        ((good[0].astype(float), good[1]), "integers"),
        (good[0], "pair"),
    ]
    for init, match in bad:
        with pytest.raises(ValueError, match=match):
            am.rollout_counts(game, pi_g, pi_l, 3, 2, np.random.default_rng(0), init=init,
                              fused=fused)
