"""The Z-order layout of large sample stores (altmarl.glearn.layout, SPEC 4): a memory
layout only, so every product, table and policy is bit-identical to the unpermuted store."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.glearn import kernels, layout
from altmarl.glearn.operator import empirical_operator, pi_l_table
from altmarl.glearn.options import GLearnOptions
from altmarl.histogram import build_histograms

from .helpers import random_pi_l, small_game

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")


def _force(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    monkeypatch.setattr(layout, "LAYOUT_MIN_BYTES", 0 if on else 1 << 62)


def test_morton_codes_interleave_the_bits() -> None:
    pts = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [3, 3]])
    # most significant bit first, coordinate 0 before coordinate 1 within a bit
    assert layout.morton_codes(pts).tolist() == [0, 1, 2, 3, 8, 15]
    assert layout.morton_codes(np.array([[5]])).tolist() == [5]


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 9), n=st.integers(1, 60), top=st.sampled_from([1, 7, 300, 2**20]),
       seed=st.integers(0, 2**16))
def test_morton_codes_are_distinct_and_keep_the_order_of_one_axis(d: int, n: int, top: int,
                                                                  seed: int) -> None:
    """Distinct points get distinct codes while the bits fit in 63; a point moved along one
    axis gets a larger code; codes are never negative."""
    rng = np.random.default_rng(seed)
    pts = rng.integers(0, top + 1, size=(n, d))
    codes = layout.morton_codes(pts)
    assert codes.shape == (n,) and (codes >= 0).all()
    if d * max(1, int(pts.max()).bit_length()) <= 63:
        uniq = np.unique(pts, axis=0)
        assert np.unique(layout.morton_codes(uniq)).size == uniq.shape[0]
        up = pts.copy()
        up[:, 0] += 1
        assert (layout.morton_codes(np.vstack([pts, up]))[n:] > codes).all()


@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 9), n=st.integers(1, 60),
       top=st.sampled_from([0, 1, 7, 300, 2**20, 2**40, 2**62]), seed=st.integers(0, 2**16))
def test_morton_kernel_is_the_numpy_loop(d: int, n: int, top: int, seed: int) -> None:
    """The one-pass kernel (large point sets) gives the codes of the whole-array loop,
    including points shifted right to fit 63 bits."""
    pts = np.random.default_rng(seed).integers(0, top + 1, size=(n, d), dtype=np.int64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layout, "MORTON_KERNEL_MIN", 1 << 62)
        ref = layout.morton_codes(pts)
        mp.setattr(layout, "MORTON_KERNEL_MIN", 0)
        np.testing.assert_array_equal(layout.morton_codes(pts), ref)
        # a non-contiguous view (the layout passes the first |S_l| - 1 columns of H)
        np.testing.assert_array_equal(layout.morton_codes(np.hstack([pts, pts])[:, :d]),
                                      ref)


def test_store_layout_is_a_pair_of_permutations() -> None:
    game = small_game(4, n_sl=3)
    H = build_histograms(6, game.n_sl)
    K = game.local_kernel(pi_l_table(game, random_pi_l(game, 1)))
    lay = layout.store_layout(H, K)
    S, N = game.n_sg, H.shape[0]
    assert sorted(lay.order.tolist()) == list(range(S * N))
    assert sorted(lay.hperm.tolist()) == list(range(N))
    np.testing.assert_array_equal(lay.pos[lay.hperm], np.arange(N))
    # histograms in Z-order: the codes of hperm are sorted
    assert (np.diff(layout.morton_codes(H[lay.hperm, :-1])) >= 0).all()


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 6), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.int32, np.uint8]))
def test_permute_rows_in_place(rows: int, cols: int, seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 200, size=(rows, cols)).astype(dtype)
    order = rng.permutation(rows).astype(np.int32)
    want = a[order]
    kernels.permute_rows(a, order)
    np.testing.assert_array_equal(a, want)


def test_value_layout_and_remap() -> None:
    rng = np.random.default_rng(3)
    S, N = 3, 7
    x = rng.normal(size=S * N)
    pos = rng.permutation(N).astype(np.int32)
    out = kernels.value_layout(x, S, pos)
    for h in range(N):
        for s in range(S):
            assert out[pos[h] * S + s] == x[s * N + h]
    np.testing.assert_array_equal(kernels.value_layout(x, S), x.reshape(S, N).T.ravel())
    a = rng.integers(0, N, size=(4, 5)).astype(np.int32)
    want = pos[a]
    kernels.remap(a, pos)
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("crn", ["pool", "states"])
@pytest.mark.parametrize("threads", [1, 2])
def test_laid_out_operator_gives_the_same_numbers(monkeypatch: pytest.MonkeyPatch, crn: str,
                                                   threads: int) -> None:
    """Backups, policy products (before and after a policy change) and the stored draws of
    a laid-out operator equal those of the same operator without the layout, bit for bit."""
    game = small_game(4, n=20, n_sl=3)
    pi_l = random_pi_l(game, 2)
    o = GLearnOptions(m=6, crn=crn, threads=threads)
    _force(monkeypatch, False)
    a = empirical_operator(game, pi_l, 7, seed=4, options=o)
    _force(monkeypatch, True)
    b = empirical_operator(game, pi_l, 7, seed=4, options=o)
    assert a.model.layout is None and b.model.layout is not None
    # the layout really moved rows and values (otherwise this test proves nothing)
    assert not np.array_equal(b.model.layout.order, np.arange(b.model.layout.order.size))
    assert not np.array_equal(a.model._store, b.model._store)
    np.testing.assert_array_equal(a.model.nxt, b.model.nxt)
    np.testing.assert_array_equal(a.model.sg, b.model.sg)
    rng = np.random.default_rng(0)
    S, N = game.n_sg, a.shape[1]
    V = rng.normal(size=(S, N)) * 5.0
    np.testing.assert_array_equal(a.model.expect(V), b.model.expect(V))  # before any policy
    for _ in range(3):
        acts = rng.integers(0, game.n_ag, size=(S, N))
        x = rng.normal(size=S * N)
        assert np.array_equal(a.model.policy_matrix(acts)(x), b.model.policy_matrix(acts)(x))
        assert np.array_equal(a.model.expect(V), b.model.expect(V))
        np.testing.assert_array_equal(a.model.nxt, b.model.nxt)
    for act in range(game.n_ag):
        np.testing.assert_array_equal(a.model.columns(act), b.model.columns(act))


def test_g_learn_is_bit_identical_with_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    _force(monkeypatch, False)
    a = am.g_learn(game, pi_l, 8, m=10, seed=3)
    _force(monkeypatch, True)
    b = am.g_learn(game, pi_l, 8, m=10, seed=3)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.info["matvecs"] == b.info["matvecs"] and a.info["residual"] == b.info["residual"]


def test_large_warehouse_stores_get_the_layout() -> None:
    """The default threshold: the warehouse's value table at k = 30 (1.8 MB) and above."""
    assert layout.wants_layout(5, 46_376)  # k = 30
    assert layout.wants_layout(5, 316_251)  # k = 50
    assert not layout.wants_layout(5, 10_626)  # k = 20: stays in cache
    assert not layout.wants_layout(1, 2**31)  # flat indices beyond int32


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 7), m=st.integers(1, 5), fused=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_draws_written_in_the_layout_are_the_laid_out_draws(k: int, m: int, fused: bool,
                                                             threads: int, seed: int) -> None:
    """``sample_hist_pool(layout=)`` returns the natural-order draws in the layout's rows,
    as value positions, bit for bit: against NumPy's scatter of the natural array, and
    against ``lay_out`` (what the other draws of a laid-out store go through)."""
    from altmarl.glearn import draws
    from altmarl.glearn.draws import lay_out

    game = small_game(3, n_sl=3)
    K = game.local_kernel(pi_l_table(game, random_pi_l(game, seed % 7)))
    H = build_histograms(k, game.n_sl)
    lay = layout.store_layout(H, K)
    ss = np.random.SeedSequence(seed)
    eta = draws.sample_hist_pool(K, H, k, m, 8, ss, 16, fused=fused, threads=threads)
    got = draws.sample_hist_pool(K, H, k, m, 8, ss, 16, fused=fused, threads=threads,
                                 layout=lay)
    S, N = game.n_sg, H.shape[0]
    want = np.empty_like(eta)
    want.reshape(S * N, m)[lay.rows] = lay.pos[eta.reshape(S * N, m)]
    np.testing.assert_array_equal(got, want)
    lay_out(eta, lay, values=True)
    np.testing.assert_array_equal(eta, want)


def test_draws_refuse_a_layout_of_another_store() -> None:
    from altmarl.glearn import draws

    game = small_game(3, n_sl=3)
    K = game.local_kernel(pi_l_table(game, random_pi_l(game, 0)))
    lay = layout.store_layout(build_histograms(4, game.n_sl), K)
    H = build_histograms(5, game.n_sl)
    with pytest.raises(ValueError, match="layout: expected"):
        draws.sample_hist_pool(K, H, 5, 3, 8, np.random.SeedSequence(0), 16, layout=lay)
