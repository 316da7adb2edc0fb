"""The fused kernels of the sampled operator (altmarl.glearn.kernels, SPEC 4): the same
numbers, to the last bit, as the sparse-matrix products they replace, and the compact
sample store (next local states shared across global actions, next global states in one
byte)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.glearn import kernels
from altmarl.glearn.draws import global_state_dtype
from altmarl.glearn.operator import empirical_operator
from altmarl.glearn.options import GLearnOptions
from altmarl.glearn.solvers import solve

from .helpers import random_pi_l, small_game

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")


def _pair(game: am.TabularGame, k: int, **opts: object) -> tuple[object, object]:
    pi_l = random_pi_l(game, 3)
    o = GLearnOptions(m=opts.pop("m", 9), **opts)  # type: ignore[arg-type]
    a = empirical_operator(game, pi_l, k, seed=5, options=o)
    b = empirical_operator(game, pi_l, k, seed=5, options=o)
    a.model.fused, b.model.fused = False, True
    return a, b


def _random_layout(rng: np.random.Generator, nxt: Any, sg: Any, acts: Any) -> tuple[Any, ...]:
    """A random store layout of ``(nxt, sg, acts)`` (shared next local states): store row
    ``r`` holds table row ``order[r]``, histogram ``h`` sits at ``pos[h]``. Returns
    ``(order, pos, nxt, sg, acts)`` laid out."""
    S, N, A, m = sg.shape
    order = rng.permutation(S * N).astype(np.int32)
    pos = rng.permutation(N).astype(np.int32)
    nxt_l = pos[nxt.reshape(S * N, 1, m)[order]].reshape(S, N, 1, m).astype(np.int32)
    sg_l = np.ascontiguousarray(sg.reshape(S * N, A, m)[order].reshape(S, N, A, m))
    return order, pos, nxt_l, sg_l, acts.reshape(-1)[order].reshape(S, N)


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
@pytest.mark.parametrize("param", ["mean-field", "standard"])
def test_fused_products_are_bit_identical_to_sparse(crn: str, param: str) -> None:
    game = small_game(4, n_sl=3)
    if param == "standard" and crn == "pool":
        crn = "states"
    a, b = _pair(game, 4, crn=crn, parameterization=param)
    rng = np.random.default_rng(0)
    V = rng.normal(size=(game.n_sg, a.shape[1])) * 10.0
    ea, eb = a.model.expect(V), b.model.expect(V)
    assert ea.shape == (game.n_sg, a.shape[1], game.n_ag)
    np.testing.assert_array_equal(ea, eb)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, a.shape[1]))
    x = V.ravel()
    np.testing.assert_array_equal(a.model.policy_matrix(acts)(x), b.model.policy_matrix(acts)(x))
    # the expectation itself: the mean of V over each entry's stored next states
    N = a.shape[1]
    for act in range(game.n_ag):
        cols = a.model.columns(act)
        ref = V.ravel()[cols].mean(axis=-1)
        np.testing.assert_allclose(ea[:, :, act], ref, rtol=1e-12, atol=1e-12)
        assert cols.max() < game.n_sg * N
    # solving gives the same table and the same greedy actions
    qa, _ = solve(a)
    qb, _ = solve(b)
    np.testing.assert_array_equal(qa, qb)


@pytest.mark.parametrize("with_layout", [False, True])
def test_g_learn_same_policy_whichever_path(with_layout: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: SciPy's sparse products against the fused kernels (with and without the
    store's Z-order layout) give the same ``Q`` and greedy actions, bit for bit."""
    from altmarl.glearn import layout

    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 1 << 62)
    a = am.g_learn(game, pi_l, 6, m=10, seed=2)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    monkeypatch.setattr(layout, "LAYOUT_MIN_BYTES", 0 if with_layout else 1 << 62)
    op = empirical_operator(game, pi_l, 6, seed=2, options=GLearnOptions(m=10))
    assert op.model.fused and (op.model.layout is not None) == with_layout
    b = am.g_learn(game, pi_l, 6, m=10, seed=2)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)


def test_store_is_compact() -> None:
    game = small_game(2)
    op = empirical_operator(game, random_pi_l(game, 2), 3, seed=0, options=GLearnOptions(m=4))
    model = op.model
    assert model.nxt.shape == (game.n_sg, op.shape[1], 1, 4)  # shared by all a_g
    assert model.sg.dtype == np.uint8 and model.sg.shape == (game.n_sg, op.shape[1], game.n_ag, 4)
    assert global_state_dtype(256) == np.uint8
    assert global_state_dtype(257) == np.uint16
    assert global_state_dtype(70_000) == np.uint32


@pytest.mark.parametrize("crn", ["pool", "states"])
def test_fused_sampling_draws_the_same_store(crn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large operators draw with the integer kernels (categorical next global states,
    pool window sums and ranks): the same store as the NumPy code."""
    game = small_game(6, n_sl=4)
    pi_l = random_pi_l(game, 6)
    o = GLearnOptions(m=7, crn=crn, pool_size=40)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 1 << 62)
    a = empirical_operator(game, pi_l, 5, seed=9, options=o)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    b = empirical_operator(game, pi_l, 5, seed=9, options=o)
    assert not a.model.fused and b.model.fused
    np.testing.assert_array_equal(a.model.nxt, b.model.nxt)
    np.testing.assert_array_equal(a.model.sg, b.model.sg)


def test_categorical_kernel_counts_thresholds() -> None:
    u = np.array([[0, 9, 10, 2**32 - 1]], dtype=np.uint32)
    out = np.zeros((1, 4), dtype=np.uint8)
    kernels.categorical_into(u, [10, 2**32, 2**32], out)  # categories 1, 2 have p = 0
    np.testing.assert_array_equal(out, [[0, 0, 1, 1]])


def test_stream_sums_kernel_is_the_numpy_pool() -> None:
    """The packed running sums of ``crn="pool"`` streams: kernel == NumPy, to the last bit."""
    from altmarl.glearn.draws import stream_pools

    K_s = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    a = stream_pools(K_s, 6, 50, 4, np.random.default_rng(3), packed_bits=3)
    b = stream_pools(K_s, 6, 50, 4, np.random.default_rng(3), packed_bits=3, fused=True)
    np.testing.assert_array_equal(a, b)
    # a zero-probability category never appears; row c holds c moves
    bins = (a[..., None] >> (3 * np.arange(3))) & 7
    assert (bins.sum(axis=-1) == np.arange(7)[None, :, None]).all()
    assert (bins[0, :, :, 2] == 0).all()


def test_small_operators_use_the_kernels_once_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    kernels.warm_up()
    assert kernels.loaded()
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 1 << 40)
    monkeypatch.setattr(kernels, "FUSED_WARM_MIN_SAMPLES", 1000)
    assert kernels.use_fused(1000) and not kernels.use_fused(999)
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    a = am.g_learn(game, pi_l, 4, m=10, seed=1)  # 5 * 35 * 10 = 1750 samples per action
    monkeypatch.setattr(kernels, "FUSED_WARM_MIN_SAMPLES", 1 << 40)
    b = am.g_learn(game, pi_l, 4, m=10, seed=1)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
@pytest.mark.parametrize("param", ["mean-field", "standard"])
def test_exact_global_kernels_match_numpy_and_the_definition(crn: str, param: str) -> None:
    """``exact_global=True``: E[V] = (1/m) sum_j sum_s' P_g(s'|s, a) V(s', nxt_j), the
    Numba and NumPy paths bit-identical, and the local draws those of the default."""
    game = small_game(4, n_sl=3)
    if param == "standard" and crn == "pool":
        crn = "states"
    a, b = _pair(game, 4, crn=crn, parameterization=param, exact_global=True)
    ref_op = empirical_operator(game, random_pi_l(game, 3), 4, seed=5,
                                options=GLearnOptions(m=9, crn=crn, parameterization=param))
    np.testing.assert_array_equal(a.model.nxt, ref_op.model.nxt)  # same local draws
    assert a.draws["global"] == 0 and ref_op.draws["global"] > 0
    rng = np.random.default_rng(1)
    V = rng.normal(size=(game.n_sg, a.shape[1])) * 10.0
    ea, eb = a.model.expect(V), b.model.expect(V)
    np.testing.assert_array_equal(ea, eb)
    S, N, E, m = a.model.nxt.shape
    ref = np.empty_like(ea)
    for s in range(S):
        for x in range(N):
            for act in range(game.n_ag):
                nx = a.model.nxt[s, x, act if E > 1 else 0]
                ref[s, x, act] = np.mean(game.P_g[s, act] @ V[:, nx])
    np.testing.assert_allclose(ea, ref, rtol=1e-13, atol=1e-12)
    acts = rng.integers(0, game.n_ag, size=(S, N))
    pa = a.model.policy_matrix(acts)(V.ravel())
    np.testing.assert_array_equal(pa, b.model.policy_matrix(acts)(V.ravel()))
    np.testing.assert_array_equal(pa, ea[np.arange(S)[:, None], np.arange(N)[None, :], acts].ravel())
    qa, _ = solve(a)
    qb, _ = solve(b)
    np.testing.assert_array_equal(qa, qb)


@pytest.mark.parametrize("exact_global", [
    False, pytest.param(True, marks=pytest.mark.slow)])  # each compiles parallel kernels
def test_threads_give_the_same_numbers(exact_global: bool,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``threads=2``: the row-parallel products, every number identical to one thread."""
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    a = am.g_learn(game, pi_l, 5, m=8, seed=4, exact_global=exact_global, threads=1)
    b = am.g_learn(game, pi_l, 5, m=8, seed=4, exact_global=exact_global, threads=2)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="threads"):
        GLearnOptions(threads=0)


@pytest.mark.parametrize("exact_global", [False, True])
def test_default_threads_are_read_at_each_product(exact_global: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``threads=None``: every product and draw sizes its pool anew (in a sweep's worker
    the count grows once other units have finished), here alternating 1 and 2 threads
    within one call; every number is the one-thread number."""
    import altmarl.glearn.draws as draws_mod
    from altmarl.threads import resolve_threads

    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SAMPLES", 0)  # small operators too
    seen: list[int] = []

    def alternating(threads: int | None) -> int:
        got = (1 + len(seen) % 2) if threads is None else resolve_threads(threads)
        seen.append(got)
        return got

    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    a = am.g_learn(game, pi_l, 5, m=8, seed=4, exact_global=exact_global, threads=1)
    monkeypatch.setattr(kernels, "resolve_threads", alternating)
    monkeypatch.setattr(draws_mod, "resolve_threads", alternating)
    b = am.g_learn(game, pi_l, 5, m=8, seed=4, exact_global=exact_global)
    assert {1, 2} <= set(seen) and len(seen) > 10
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)


@pytest.mark.parametrize("exact_global", [False, True])
def test_small_operators_run_on_one_thread_by_default(exact_global: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``threads`` left to the default, an operator below
    :data:`kernels.PARALLEL_MIN_SAMPLES` samples per action holds 1 thread, a larger one
    ``None`` (the default count at each product); an explicit ``threads`` is kept."""
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    o = GLearnOptions(m=8, exact_global=exact_global)
    small = empirical_operator(game, pi_l, 5, 0, o)
    size = game.n_sg * small.shape[1] * 8
    assert size < kernels.PARALLEL_MIN_SAMPLES and small.model.threads == 1
    assert empirical_operator(game, pi_l, 5, 0, o.replace(threads=2)).model.threads == 2
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SAMPLES", size)
    assert empirical_operator(game, pi_l, 5, 0, o).model.threads is None
    assert kernels.operator_threads(None, size - 1) == 1
    assert kernels.operator_threads(3, 1) == 3


@pytest.mark.parametrize("per_action", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_gather_on_policy_columns_is_policy_matvec(per_action: bool, threads: int) -> None:
    """The policy matvec through the per-policy flat columns: the same sums in the same
    order, so the same floating-point numbers; the columns are the definition's indices."""
    rng = np.random.default_rng(11)
    S, N, A, m = 3, 17, 4, 7
    nxt = rng.integers(0, N, size=(S, N, A if per_action else 1, m)).astype(np.int32)
    sg = rng.integers(0, S, size=(S, N, A, m)).astype(np.uint8)
    acts = rng.integers(0, A, size=(S, N)).astype(np.int64)
    x = rng.normal(size=S * N) * 10.0
    cols = kernels.policy_columns(nxt, sg, acts)
    assert cols.shape == (S * N, m) and cols.dtype == np.int32
    s, xi = np.divmod(np.arange(S * N), N)
    e = acts.ravel() if per_action else np.zeros(S * N, dtype=np.int64)
    np.testing.assert_array_equal(
        cols, nxt[s, xi, e, :] * S + sg[s, xi, acts.ravel(), :])
    ref = kernels.policy_matvec(nxt, sg, acts, x, m, threads)
    got = kernels.gather_mean(cols, x, S, m, threads)
    assert np.array_equal(got, ref)
    # a new policy rewritten into the same buffer: the new policy's product
    acts2 = (acts + 1) % A
    again = kernels.policy_columns(nxt, sg, acts2, cols)
    assert again is cols
    assert np.array_equal(kernels.gather_mean(cols, x, S, m, threads),
                          kernels.policy_matvec(nxt, sg, acts2, x, m, threads))
    assert not np.array_equal(kernels.policy_matvec(nxt, sg, acts2, x, m, threads), ref)


@settings(max_examples=80, deadline=None)
@given(S=st.integers(1, 4), N=st.integers(1, 9), A=st.integers(1, 12), m=st.integers(1, 8),
       threads=st.sampled_from([1, 2]), layout=st.booleans(),
       sg_dtype=st.sampled_from([np.uint8, np.uint16]), seed=st.integers(0, 2**31))
def test_backup_cols_for_any_number_of_actions(S: int, N: int, A: int, m: int, threads: int,
                                               layout: bool, sg_dtype: type,
                                               seed: int) -> None:
    """The one-pass backup sums up to five actions per pass over a row's samples (lanes
    past the last action repeat it): for every number of actions, with and without a
    store layout (rows permuted by ``order``, next states remapped by ``pos``), bit for
    bit the NumPy formula ``(r_g + r_loc) + gamma E`` on the one-action-at-a-time
    ``expect_all`` of the natural-order store."""
    rng = np.random.default_rng(seed)
    nxt = rng.integers(0, N, size=(S, N, 1, m)).astype(np.int32)
    sg = rng.integers(0, S, size=(S, N, A, m)).astype(sg_dtype)
    acts = rng.integers(0, A, size=(S, N)).astype(np.int64)
    V = rng.normal(size=(S, N)) * 10.0
    r_g, r_loc = rng.normal(size=(S, A)), rng.normal(size=(S, N))
    ref = r_g[:, None, :] + r_loc[:, :, None] + 0.9 * kernels.expect_all(nxt, sg, V, m)
    order = pos = None
    if layout:  # store row r holds table row order[r]; histogram h sits at pos[h]
        order, pos, nxt, sg, acts = _random_layout(rng, nxt, sg, acts)
    cols = kernels.policy_columns(nxt, sg, acts)
    got = kernels.backup_cols(cols, sg, acts, V, m, r_g, r_loc, 0.9, threads, order, pos)
    assert got.shape == (S, N, A)
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=60, deadline=None)
@given(S=st.integers(1, 4), N=st.integers(1, 9), A=st.integers(1, 12), m=st.integers(1, 8),
       per_action=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31))
def test_exact_global_expect_for_any_number_of_actions(S: int, N: int, A: int, m: int,
                                                       per_action: bool, threads: int,
                                                       seed: int) -> None:
    """``exact_global``'s expectation ``sum_j (1/m) W[s, nxt_j, a]``, up to five actions per
    pass: bit for bit the sum over ``j`` in order, for every number of actions, with one
    shared or one per-action next local state."""
    rng = np.random.default_rng(seed)
    E = A if per_action else 1
    nxt = rng.integers(0, N, size=(S, N, E, m)).astype(np.int32)
    W = rng.normal(size=(S, N, A)) * 10.0
    got = kernels.expect_all_exact_global(nxt, W, m, threads)
    e = np.arange(A) if per_action else np.zeros(A, dtype=np.int64)
    s_i = np.arange(S)[:, None, None]
    a_i = np.arange(A)[None, None, :]
    ref = np.zeros((S, N, A))
    for j in range(m):
        ref = ref + (1.0 / m) * W[s_i, nxt[:, :, e, j], a_i]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("threads", [1, 2])
def test_expect_from_columns_and_recolumn(threads: int) -> None:
    """The backup read from a policy's columns, and columns rewritten for a new policy:
    exactly the numbers (and indices) computed from ``nxt`` itself."""
    rng = np.random.default_rng(12)
    S, N, A, m = 4, 23, 3, 6
    nxt = rng.integers(0, N, size=(S, N, 1, m)).astype(np.int32)
    sg = rng.integers(0, S, size=(S, N, A, m)).astype(np.uint8)
    V = rng.normal(size=(S, N)) * 10.0
    old = rng.integers(0, A, size=(S, N)).astype(np.int64)
    new = rng.integers(0, A, size=(S, N)).astype(np.int64)
    cols = kernels.policy_columns(nxt, sg, old)
    ref = kernels.expect_all(nxt, sg, V, m, threads)
    assert np.array_equal(kernels.expect_all_cols(cols, sg, old, V, m, threads), ref)
    kernels.recolumn(cols, sg, old, new)
    np.testing.assert_array_equal(cols, kernels.policy_columns(nxt, sg, new))
    assert np.array_equal(kernels.expect_all_cols(cols, sg, new, V, m, threads), ref)
    np.testing.assert_array_equal(cols // S, nxt.reshape(S * N, m))


def test_operator_store_holds_the_columns_after_an_evaluation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fused operator's policy products turn its store into columns: ``nxt``, the backup
    and later policies give the numbers of an operator that never did."""
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    game = am.envs.make("warehouse", n=100)
    o = GLearnOptions(m=7)
    a = empirical_operator(game, am.LocalPolicy.uniform(game), 4, seed=3, options=o)
    b = empirical_operator(game, am.LocalPolicy.uniform(game), 4, seed=3, options=o)
    assert a.model.fused
    nxt = a.model.nxt.copy()
    rng = np.random.default_rng(1)
    V = rng.normal(size=(game.n_sg, a.shape[1]))
    for _ in range(3):
        acts = rng.integers(0, game.n_ag, size=(game.n_sg, a.shape[1]))
        P = a.model.policy_matrix(acts)
        assert np.array_equal(P(V.ravel()), kernels.policy_matvec(
            b.model.nxt, b.model.sg, acts.astype(np.int64), V.ravel(), 7))
        np.testing.assert_array_equal(a.model.nxt, nxt)
        assert np.array_equal(a.model.expect(V), b.model.expect(V))


@pytest.mark.parametrize("crn", ["pool", "none"])
@pytest.mark.parametrize("threads", [1, 2])
def test_policy_columns_product_is_bit_identical(crn: str, threads: int) -> None:
    """Policy evaluation's product on the precomputed flat indices
    (kernels.policy_columns + gather_mean) gives the same numbers as policy_matvec and as
    the sparse matrix, for one shared or one per-action column of next local states."""
    game = small_game(4, n_sl=3)
    a, b = _pair(game, 4, crn=crn)
    S, N = game.n_sg, a.shape[1]
    rng = np.random.default_rng(7)
    acts = rng.integers(0, game.n_ag, size=(S, N))
    x = rng.normal(size=S * N) * 3.0
    cols = kernels.policy_columns(b.model.nxt, b.model.sg, acts)
    assert cols.shape == (S * N, b.model.m) and cols.dtype == np.int32
    # cols index V laid out (N, |S_g|): nxt * |S_g| + sg
    flat = np.stack([a.model.columns(int(v)) for v in range(game.n_ag)])  # (A, S, N, m)
    chosen = flat[acts, np.arange(S)[:, None], np.arange(N)[None, :]].reshape(S * N, -1)
    np.testing.assert_array_equal(cols, (chosen % N) * S + chosen // N)
    got = kernels.gather_mean(cols, x, S, b.model.m, threads)
    np.testing.assert_array_equal(got, kernels.policy_matvec(b.model.nxt, b.model.sg, acts,
                                                             x, b.model.m))
    np.testing.assert_array_equal(got, a.model.policy_matrix(acts)(x))
    np.testing.assert_array_equal(b.model.policy_matrix(acts)(x), got)



@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 40), A=st.integers(1, 6), seed=st.integers(0, 2**31),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_max_argmax_is_numpys(rows: int, A: int, seed: int, special: float | None) -> None:
    """One pass for ``Q.max(-1)`` and ``Q.argmax(-1)``: the same values and the first
    maximizer on ties, NaN and infinities as NumPy has them."""
    rng = np.random.default_rng(seed)
    Q = rng.integers(-2, 3, size=(rows, A)).astype(np.float64)  # many ties
    if special is not None:
        Q[rng.random(Q.shape) < 0.2] = special
    best, arg = kernels.max_argmax(Q.reshape(1, rows, A))
    np.testing.assert_array_equal(best[0], Q.max(axis=-1))
    np.testing.assert_array_equal(arg[0], Q.argmax(axis=-1))
    assert arg.dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), seed=st.integers(0, 2**31),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_max_abs_diff_is_numpys(n: int, seed: int, special: float | None) -> None:
    """The one-pass sup-norm distance gives NumPy's ``np.abs(a - b).max()`` (NaN and
    infinities included)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    if special is not None:
        a[rng.random(a.shape) < 0.1] = special
    want = float(np.abs(a - b).max())
    got = kernels.max_abs_diff(a, b)
    assert (got == want) or (np.isnan(got) and np.isnan(want))


def test_value_iteration_is_the_same_with_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """``solver="vi"`` on a fused store (columns, one-pass backup, max and distance) gives
    the table of SciPy's sparse products and NumPy's reductions, bit for bit, and the
    same number of sweeps."""
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    kw = dict(m=8, seed=1, solver="vi", tol=1e-3)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 1 << 62)
    a = am.g_learn(game, pi_l, 5, **kw)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    b = am.g_learn(game, pi_l, 5, **kw)
    np.testing.assert_array_equal(a.q, b.q)
    assert a.info["sweeps"] == b.info["sweeps"] > 3


def test_max_argmax_takes_read_only_and_strided_tables() -> None:
    """A read-only or non-contiguous table gives NumPy's numbers and compiles no second
    kernel specialisation."""
    rng = np.random.default_rng(1)
    Q = rng.normal(size=(30, 8))
    kernels.max_argmax(Q)
    n_sig = len(kernels._jit("max_argmax").signatures)
    ro = Q.copy()
    ro.flags.writeable = False
    for q in (ro, Q[:, ::2], Q.T, np.broadcast_to(Q[0], (5, 8))):
        best, arg = kernels.max_argmax(q)
        np.testing.assert_array_equal(best, q.max(axis=-1))
        np.testing.assert_array_equal(arg, q.argmax(axis=-1))
    assert len(kernels._jit("max_argmax").signatures) == n_sig


@pytest.mark.parametrize("with_layout", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_backup_and_system_are_the_numpy_formulas(
        with_layout: bool, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass backup ``(r_g + r_loc) + gamma E`` and policy evaluation's system
    ``x - gamma P x`` give, bit for bit, the numbers of the NumPy expressions they replace
    (with and without the store layout, serial and row-parallel)."""
    from altmarl.glearn import layout
    from altmarl.glearn.operator import ColumnsProduct, backup

    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    monkeypatch.setattr(layout, "LAYOUT_MIN_BYTES", 0 if with_layout else 1 << 62)
    game = am.envs.make("warehouse", n=100)
    op = empirical_operator(game, am.LocalPolicy.uniform(game), 5, seed=3,
                            options=GLearnOptions(m=7, threads=threads))
    model = op.model
    assert model.fused and (model.layout is not None) == with_layout
    rng = np.random.default_rng(4)
    S, N = game.n_sg, op.shape[1]
    V = rng.normal(size=(S, N)) * 5.0
    acts = rng.integers(0, game.n_ag, size=(S, N))
    # the backup before any policy product (value iteration): the store sets up its
    # columns itself and takes the fused pass, the same numbers
    first = model.fused_backup(V)
    assert first is not None
    ref = model.r_g[:, None, :] + model.r_loc[:, :, None] + model.gamma * model.expect(V)
    np.testing.assert_array_equal(first, ref)
    # and against the one-action-at-a-time kernel on the natural-order samples (model.expect
    # itself reads the columns through the same kernel)
    direct = kernels.expect_all(model.nxt, model.sg, V, model.m)
    np.testing.assert_array_equal(
        first, model.r_g[:, None, :] + model.r_loc[:, :, None] + model.gamma * direct)
    P = model.policy_matrix(acts)
    assert isinstance(P, ColumnsProduct)
    x = V.ravel()
    np.testing.assert_array_equal(P.system(game.gamma)(x), x - game.gamma * P(x))
    # the means are written in row order and read back through the layout's inverse:
    # the numbers of the one-action kernel on the natural-order samples, and the same
    # when the inverse is computed on the call
    nat = kernels.policy_matvec(model.nxt, model.sg, acts, x, model.m)
    np.testing.assert_array_equal(P(x), nat)
    if with_layout:
        assert P.rows is not None and np.array_equal(P.rows[P.order], np.arange(S * N))
        np.testing.assert_array_equal(
            kernels.gather_mean(P.cols, x, S, model.m, threads, P.order, P.pos), nat)
        np.testing.assert_array_equal(
            kernels.gather_system(P.cols, x, S, model.m, game.gamma, threads, P.order,
                                  P.pos), x - game.gamma * nat)
    # a later policy rewrites the store in place: the older product refuses to run
    sys_old = P.system(game.gamma)
    P2 = model.policy_matrix((acts + 1) % game.n_ag)
    for stale in (P, sys_old, lambda y: P.system(game.gamma)):
        with pytest.raises(RuntimeError, match="stale"):
            stale(x)
    assert P2(x).shape == x.shape
    P = model.policy_matrix(acts)
    ref = model.r_g[:, None, :] + model.r_loc[:, :, None] + model.gamma * model.expect(V)
    got = backup(model, V)
    assert model.fused_backup(V) is not None
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3 * kernels.COMBINE_MIN), J=st.integers(1, 21),
       sign=st.sampled_from([-1.0, 1.0]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_combine_rows_is_einsum(n: int, J: int, sign: float, threads: int, seed: int) -> None:
    """GMRES's one-pass update ``w += sign einsum("i,in->n", h, V)`` gives NumPy's numbers
    bit for bit, for every length (below :data:`kernels.COMBINE_MIN` it is ``einsum``)."""
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(22, n))[:J] * rng.choice([1e-3, 1.0, 1e3])
    h = rng.normal(size=J)
    w = rng.normal(size=n)
    ref = w.copy()
    if sign < 0:
        ref -= np.einsum("i,in->n", h, V)
    else:
        ref += np.einsum("i,in->n", h, V)
    kernels.combine_rows(w, h, V, sign, threads)
    np.testing.assert_array_equal(w, ref)


def test_gmres_with_the_combine_kernel_is_the_same() -> None:
    """:func:`altmarl.planning.gmres` with :func:`kernels.combine_rows` returns the same
    iterate and residual as with ``einsum`` (a system large enough for the kernel)."""
    _gmres_is_unchanged(2 * kernels.COMBINE_MIN, 0, combine=lambda w, h, V, sign:
                        kernels.combine_rows(w, h, V, sign, 2))


def _gmres_is_unchanged(n: int, seed: int, **routines: Any) -> None:
    """GMRES on a random contraction of size ``n`` gives the same iterate and residual with
    the faster ``routines`` (keyword arguments of :func:`altmarl.planning.gmres`)."""
    from altmarl import planning

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n, 5))
    b = rng.normal(size=n)

    def mv(x: np.ndarray) -> np.ndarray:
        return x - 0.9 * x[idx].mean(axis=1)

    ref = planning.gmres(mv, b, np.zeros(n), 1e-10, 20, 500)
    got = planning.gmres(mv, b, np.zeros(n), 1e-10, 20, 500, **routines)
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[1] == ref[1] and ref[1] <= 1e-10


def test_split_dots_are_einsum_bit_for_bit() -> None:
    """GMRES's projections split over threads (:func:`altmarl.planning.split_dots`) give
    ``einsum("in,n->i", V, w)`` bit for bit for every number of rows (blocks of two rows or
    more), and the whole GMRES iterate is unchanged with them."""
    from concurrent.futures import ThreadPoolExecutor

    from altmarl import planning

    rng = np.random.default_rng(5)
    n = planning.SPLIT_DOTS_MIN + 123
    B = rng.normal(size=(21, n)) * rng.choice([1e-3, 1.0, 1e3], size=(21, 1))
    w = rng.normal(size=n)
    with ThreadPoolExecutor(2) as pool:
        for threads in (2, 3):
            dots = planning.split_dots(pool, threads)
            for rows in range(1, 22):
                np.testing.assert_array_equal(dots(B[:rows], w),
                                              np.einsum("in,n->i", B[:rows], w))
        _gmres_is_unchanged(n, 6, dots=planning.split_dots(pool, 2), norm=kernels.max_abs)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 2**31),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf, -0.0]))
def test_max_abs_is_numpys(n: int, seed: int, special: float | None) -> None:
    """GMRES's one-pass sup norm gives NumPy's ``np.abs(a).max()`` (NaN, infinities and
    signed zeros included)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n) * rng.choice([0.0, 1.0], size=n)
    if special is not None:
        a[rng.random(n) < 0.2] = special
    want = float(np.abs(a).max())
    got = kernels.max_abs(a)
    assert (got == want) or (np.isnan(got) and np.isnan(want))


@pytest.mark.parametrize("n", [7, kernels.COMBINE_MIN + 5])
@pytest.mark.parametrize("threads", [1, 2])
def test_gmres_residual_through_combine_is_einsum_to_the_bit(n: int, threads: int) -> None:
    """GMRES's in-cycle residual ``einsum("i,in->n", z, V)`` computed by ``combine`` on a
    vector of ``-0.0`` (``-0.0 + s = s`` for every ``s``) has the same bits, signed zeros
    included, with NumPy's combine and with :func:`kernels.combine_rows`."""
    from altmarl import planning

    rng = np.random.default_rng(n + threads)
    for J in (1, 2, 5, 21):
        V = rng.normal(size=(J, n)) * rng.choice([0.0, 1.0], size=(J, n))
        z = rng.normal(size=J) * rng.choice([0.0, -0.0, 1.0], size=J)
        want = np.einsum("i,in->n", z, V)
        for comb in (planning.einsum_combine,
                     lambda w, h, V, sign: kernels.combine_rows(w, h, V, sign, threads)):
            got = np.full(n, -0.0)
            comb(got, z, V, 1.0)
            np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))


@settings(max_examples=40, deadline=None)
@given(S=st.integers(1, 4), N=st.integers(1, 120), A=st.integers(1, 6), m=st.integers(1, 9),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_prefetching_products_give_the_same_numbers(S: int, N: int, A: int, m: int,
                                                    threads: int, seed: int) -> None:
    """The products prefetch the values of rows ahead (the gather, from
    ``PREFETCH_MIN_BYTES``; here forced on for every size), the entries ahead of the
    read-back (``_unpermute``) and the backup's output rows ahead: hints only, so on
    tables longer and shorter than every prefetch distance, the same numbers as the
    unprefetched products and the NumPy formulas."""
    rng = np.random.default_rng(seed)
    nxt = rng.integers(0, N, size=(S, N, 1, m)).astype(np.int32)
    sg = rng.integers(0, S, size=(S, N, A, m)).astype(np.uint8)
    acts = rng.integers(0, A, size=(S, N)).astype(np.int64)
    V = rng.normal(size=(S, N)) * 10.0
    x = V.ravel()
    r_g, r_loc = rng.normal(size=(S, A)), rng.normal(size=(S, N))
    nat = kernels.policy_matvec(nxt, sg, acts, x, m)
    ref_b = r_g[:, None, :] + r_loc[:, :, None] + 0.9 * kernels.expect_all(nxt, sg, V, m)
    order, pos, nxt_l, sg_l, acts_l = _random_layout(rng, nxt, sg, acts)
    cols = kernels.policy_columns(nxt_l, sg_l, acts_l)
    old = kernels.PREFETCH_MIN_BYTES
    try:
        for threshold in (0, 1 << 62):  # prefetching the gathers, and not
            kernels.PREFETCH_MIN_BYTES = threshold
            np.testing.assert_array_equal(
                kernels.gather_mean(cols, x, S, m, threads, order, pos), nat)
            np.testing.assert_array_equal(
                kernels.gather_system(cols, x, S, m, 0.9, threads, order, pos), x - 0.9 * nat)
    finally:
        kernels.PREFETCH_MIN_BYTES = old
    got = kernels.backup_cols(cols, sg_l, acts_l, V, m, r_g, r_loc, 0.9, threads, order, pos)
    np.testing.assert_array_equal(got, ref_b)
