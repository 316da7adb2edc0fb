"""The fixed samples of the empirical operator and the exact next-histogram law
(altmarl.glearn.draws, SPEC 4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altmarl.glearn import draws
from altmarl.glearn.draws import exact_next_histograms, stream_pools
from altmarl.glearn.operator import empirical_operator
from altmarl.glearn.options import GLearnOptions
from altmarl.glearn.states import state_counts
from altmarl.histogram import num_histograms

from .helpers import (
    brute_next_counts,
    random_pi_l,
    small_game,
    tv_distance,
)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exact_next_histograms_match_agent_enumeration(k: int) -> None:
    game = small_game(1)
    pi = random_pi_l(game, 2).table
    K = game.local_kernel(pi)
    T = brute_next_counts(game, pi, k)
    for s in range(game.n_sg):
        D = exact_next_histograms(K[:, s, :], k)
        np.testing.assert_allclose(D, T[s], atol=1e-14)
        np.testing.assert_allclose(D.sum(axis=1), 1.0, atol=1e-14)


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
def test_samples_have_the_surrogate_law(crn: str) -> None:
    """Every (s_g, h, a_g) gets draws of (s_g', h') from P_g x (sum of multinomials)."""
    game = small_game(8)
    pi_l = random_pi_l(game, 8)
    k, m = 2, 6000
    op = empirical_operator(game, pi_l, k, seed=1, options=GLearnOptions(m=m, crn=crn, pool_size=64))
    N = num_histograms(k, game.n_sl)
    K = game.local_kernel(pi_l.table)
    cols = op.model.cols  # cols[a][s, h, j] = s_g' * N + rank(h')
    for s in range(game.n_sg):
        D = exact_next_histograms(K[:, s, :], k)
        for a in range(game.n_ag):
            for h in range(N):
                c = cols[a][s, h]
                joint = np.outer(game.P_g[s, a], D[h]).ravel()
                assert tv_distance(np.bincount(c, minlength=game.n_sg * N), joint) < 0.05
    if crn != "none":  # next local states are shared across a_g
        np.testing.assert_array_equal(cols[0] % N, cols[1] % N)


def test_stream_pools_structure() -> None:
    """crn='pool': stream p of bin x is a sequence of i.i.d. single-agent moves; the pool
    entry (x, c, p) is the histogram of its first c moves; the last m - 1 streams repeat
    the first ones so windows never wrap."""
    K_s = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    k, P, m = 4, 5000, 6
    pools = stream_pools(K_s, k, P, m, np.random.default_rng(0))
    assert pools.shape == (3, k + 1, P + m - 1, 3)
    np.testing.assert_array_equal(pools[:, 0], 0)
    assert np.all(pools.sum(axis=-1) == np.arange(k + 1)[None, :, None])
    step = np.diff(pools.astype(int), axis=1)
    assert np.all((step == 0) | (step == 1)) and np.all(step.sum(axis=-1) == 1)
    np.testing.assert_array_equal(pools[:, :, P:], pools[:, :, : m - 1])
    freq = step[:, :, :P].sum(axis=(1, 2)) / (k * P)
    np.testing.assert_allclose(freq, K_s, atol=0.02)
    assert np.all(step[1, :, :, [0, 2]] == 0)  # zero-probability moves never happen


def test_packed_and_plain_pool_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    game = small_game(21)
    pi_l = random_pi_l(game, 21)
    a = empirical_operator(game, pi_l, 4, seed=3, options=GLearnOptions(m=7, pool_size=50))
    monkeypatch.setattr(draws, "PACK_LIMIT", 0)
    b = empirical_operator(game, pi_l, 4, seed=3, options=GLearnOptions(m=7, pool_size=50))
    for ca, cb in zip(a.model.cols, b.model.cols, strict=True):
        np.testing.assert_array_equal(ca, cb)
    K_s = game.local_kernel(pi_l.table)[:, 0, :]
    p16 = stream_pools(K_s, 4, 30, 5, np.random.default_rng(1))
    p64 = stream_pools(K_s, 4, 30, 5, np.random.default_rng(1), packed_bits=3)
    np.testing.assert_array_equal((p16.astype(np.int64) << (3 * np.arange(3))).sum(-1), p64)


@pytest.mark.parametrize("fused", [False, True])
def test_a_reused_pool_buffer_gives_the_same_pools(fused: bool) -> None:
    """``out=``: a buffer holding anything (here the previous global state's pools and
    garbage) is overwritten entirely: the same pools as a fresh allocation."""
    game = small_game(4)
    K = game.local_kernel(random_pi_l(game, 4).table)
    want = [stream_pools(K[:, s, :], 5, 40, 6, np.random.default_rng(s), packed_bits=3,
                         fused=fused) for s in range(game.n_sg)]
    buf = np.random.default_rng(9).integers(-2**40, 2**40, size=want[0].shape)
    for s in range(game.n_sg):
        got = stream_pools(K[:, s, :], 5, 40, 6, np.random.default_rng(s), packed_bits=3,
                           fused=fused, out=buf)
        assert got is buf
        np.testing.assert_array_equal(got, want[s])
    with pytest.raises(ValueError, match="out: expected an int64 buffer"):
        stream_pools(K[:, 0, :], 4, 40, 6, np.random.default_rng(0), packed_bits=3, out=buf)


def test_draw_counts_are_reported() -> None:
    game = small_game(9)
    pi_l = random_pi_l(game, 9)
    op = empirical_operator(game, pi_l, 3, seed=0, options=GLearnOptions(m=5, pool_size=5))
    assert op.draws["local_agent"] == game.n_sg * game.n_sl * 3 * 5
    assert op.draws["global"] == game.n_sg * num_histograms(3, game.n_sl) * game.n_ag * 5
    op2 = empirical_operator(game, pi_l, 3, seed=0, options=GLearnOptions(m=5, pool_size=10_000))
    assert op2.draws["local_agent"] == game.n_sg * game.n_sl * 3 * 10_000


def test_standard_samples_have_the_product_law() -> None:
    game = small_game(10)
    pi_l = random_pi_l(game, 10)
    k, m, d = 2, 6000, game.n_sl
    op = empirical_operator(game, pi_l, k, seed=2, options=GLearnOptions(m=m, parameterization="standard"))
    K = game.local_kernel(pi_l.table)
    N = d**k
    for s in range(game.n_sg):
        for t, (x1, x2) in enumerate(itertools.product(range(d), repeat=2)):
            p_local = np.outer(K[x1, s], K[x2, s]).ravel()  # next tuple (y1, y2)
            for a in range(game.n_ag):
                joint = np.outer(game.P_g[s, a], p_local).ravel()
                c = op.model.cols[a][s, t]
                assert tv_distance(np.bincount(c, minlength=game.n_sg * N), joint) < 0.05



@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (3, 10), (5, 2, 3, 3), (10, 8192)])
def test_uniform_u32_matches_numpy_numbers_and_state(shape: tuple[int, ...]) -> None:
    ref, fast = np.random.default_rng(2026), np.random.default_rng(2026)
    want = ref.integers(0, 2**32, size=shape, dtype=np.uint32)
    got = draws.uniform_u32(fast, shape)
    assert got.dtype == np.uint32 and got.shape == shape
    np.testing.assert_array_equal(got, want)
    # the generator continues identically (a bounded draw, as stream pools do next)
    np.testing.assert_array_equal(fast.integers(0, 8192, size=9, dtype=np.int32),
                                  ref.integers(0, 8192, size=9, dtype=np.int32))
    assert fast.bit_generator.state == ref.bit_generator.state


@settings(max_examples=40, deadline=None)
@given(S=st.integers(1, 3), A=st.integers(1, 4), N=st.integers(1, 40), m=st.integers(1, 9),
       block=st.integers(1, 64), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31))
def test_global_draws_by_blocks_and_threads_are_the_numpy_draws(
        S: int, A: int, N: int, m: int, block: int, threads: int, seed: int) -> None:
    """The fused next global states (streams on ``threads`` threads, each drawn and
    classified in blocks of ``GLOBAL_BLOCK`` uniforms, odd totals included): the same array
    as the NumPy path, one ``(N, m)`` block of uniforms per stream."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(seed)
    P_g = rng.dirichlet(np.ones(S), size=(S, A))
    P_g[0, 0] = np.eye(S)[S - 1]  # a probability-0 category: thresholds of 2^32 skipped
    ss = np.random.SeedSequence(seed)
    ref = draws.sample_global(N, m, P_g, ss, fused=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(draws, "GLOBAL_BLOCK", block)
        got = draws.sample_global(N, m, P_g, ss, fused=True, threads=threads)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("threads", [1, 2])
def test_pool_ranks_on_threads_are_the_numpy_ranks(threads: int) -> None:
    """``crn="pool"`` window sums and ranks by the Numba kernel, rows spread over
    ``threads``: the packed NumPy path's ranks."""
    pytest.importorskip("numba")
    game = small_game(2)
    K = game.local_kernel(random_pi_l(game, 5).table)
    k, m = 6, 5
    H = state_counts(k, game.n_sl, "mean-field")
    ss = np.random.SeedSequence(9)
    ref = draws.sample_hist_pool(K, H, k, m, 16, ss, 64, fused=False)
    got = draws.sample_hist_pool(K, H, k, m, 16, ss, 64, fused=True, threads=threads)
    np.testing.assert_array_equal(got, ref)
