"""The draws of G-LEARN's empirical operator (SPEC 4): next global states, next histograms
(or next tuples), and the exact next-histogram law for ``m=None``.

Every ``(s_g, x, a_g)`` gets ``m`` i.i.d. draws of ``(s_g', x')`` from the surrogate's law:
``s_g' ~ P_g(. | s_g, a_g)`` and every one of the ``k`` agents moves by
``K = game.local_kernel(pi_l)``, so ``h' = sum_x Multinomial(h[x], K[x, s_g, :])``. How the
draws are shared *across* entries (``crn``, see ``docs/g_learn.md``):

* ``"pool"`` (mean-field default, :func:`sample_hist_pool`): ``h'`` does not depend on
  ``a_g``, so the ``m`` next histograms of ``(s_g, h)`` are shared by all ``a_g``. They are
  assembled bin by bin from *streams*: for each ``(s_g, x)`` there are ``P = max(pool_size, m)``
  streams, each a sequence of ``k`` i.i.d. single-agent moves ``~ K[x, s_g, :]``; the bin-``x``
  part of draw ``j`` of ``(s_g, h)`` is the histogram of the first ``h[x]`` moves of stream
  ``(o[h, x] + j) mod P``, with ``o`` uniform random offsets. The ``m`` draws of one entry use
  ``m`` distinct streams per bin (and different bins use different streams), hence are i.i.d.
  with the exact law; two histograms share randomness only through a common stream of a
  common bin (chance about ``2m / P`` per bin). Cost: ``|S_g| |S_l| k P`` single-agent draws
  instead of ``|S_g| |H_k| m |S_l|`` multinomials.
* ``"states"`` (:func:`sample_hist_states`, :func:`sample_tuples`): independent next states
  for every ``(s_g, x)`` (shared across ``a_g``).
* ``"none"``: independent draws for every ``(s_g, x, a_g)``, the literal operator.

The next global states are always drawn independently for every ``(s_g, x, a_g, j)``
(:func:`sample_global`: 32-bit uniform integers against the rounded CDF, so each transition
probability is reproduced within ``2^-32``, zeros exactly; stored in one byte when
``|S_g| <= 256``). Streams: the caller passes one
``SeedSequence`` per kind of draw; child ``s`` (or ``s * |A_g| + a_g``) of it drives global
state ``s`` (:func:`altmarl._random.rng`).
"""

from __future__ import annotations

import math
import sys
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from altmarl._random import rng as child_rng
from altmarl.glearn import kernels
from altmarl.glearn.layout import StoreLayout
from altmarl.glearn.states import tuple_digits
from altmarl.histogram import binomial_table, build_histograms, enumerate_histograms, rank
from altmarl.threads import map_threads, resolve_threads

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_U32 = float(2**32)
#: histograms with ``|S_l| * bits(k) <= PACK_LIMIT`` are packed into one int64 when sampling
PACK_LIMIT = 62


def _thresholds(p: FloatArray) -> list[int]:
    """32-bit thresholds ``round(cdf * 2^32)`` of the categories ``0..len(p)-2``."""
    cdf = np.cumsum(p)[:-1]
    return [int(round(min(max(c, 0.0), 1.0) * _U32)) for c in cdf]


def _categorical_u32(u: NDArray[np.uint32], thr: list[int], dtype: Any) -> NDArray[Any]:
    """Category of each uniform 32-bit integer ``u``: ``#{i : u >= thr_i}``."""
    out = np.zeros(u.shape, dtype=dtype)
    for t in thr:
        if t >= 2**32:
            continue  # remaining categories have probability 0
        out += u >= np.uint32(t)
    return out


def uniform_u32(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.uint32]:
    """``rng.integers(0, 2**32, size=shape, dtype=np.uint32)``: the same numbers and the same
    generator state after, about 2.5x faster for an even number of draws (each 64-bit output
    of the bit generator is its two 32-bit halves, low half first, exactly as NumPy's
    bounded sampler splits it on the full 32-bit range; odd counts and big-endian
    machines take NumPy's sampler)."""
    n = math.prod(shape)
    if n % 2 or sys.byteorder != "little":
        return rng.integers(0, 2**32, size=shape, dtype=np.uint32)
    raw = rng.bit_generator.random_raw(n // 2)
    return np.asarray(raw.view(np.uint32).reshape(shape))


def global_state_dtype(n_sg: int) -> Any:
    """The smallest unsigned integer type holding the global states ``0..n_sg-1``."""
    return np.uint8 if n_sg <= 2**8 else np.uint16 if n_sg <= 2**16 else np.uint32


#: uniforms per block of :func:`sample_global`'s fused path (1 MiB of uint32: the block
#: stays in cache between the generator and the categorical kernel)
GLOBAL_BLOCK: Final = 1 << 18


def _global_stream(rng: np.random.Generator, thr: list[int], out: NDArray[Any]) -> None:
    """``out[...] =`` the categories of ``uniform_u32(rng, out.shape)`` (2-D ``out``), drawn
    and classified block by block (the same numbers: consecutive blocks take consecutive
    32-bit halves of the generator's 64-bit outputs)."""
    N, m = out.shape
    if (N * m) % 2 or sys.byteorder != "little":
        kernels.categorical_into(uniform_u32(rng, (N, m)), thr, out)
        return
    # an even number of draws per block: every block takes uniform_u32's fast path (whole
    # 64-bit outputs); NumPy's sampler on an odd block would keep a spare 32-bit half in
    # the generator, which the next block's fast path would not see
    block = max(2, (GLOBAL_BLOCK // max(1, m)) & ~1)
    for a in range(0, N, block):
        b = min(N, a + block)
        kernels.categorical_into(uniform_u32(rng, (b - a, m)), thr, out[a:b])


def sample_global(N: int, m: int, P_g: FloatArray, ss: np.random.SeedSequence,
                  fused: bool = False, threads: int | None = 1) -> NDArray[Any]:
    """Next global states ``sg[s, x, a, j] ~ P_g(. | s, a)`` drawn i.i.d. for every
    ``(s, x, a, j)`` (``N`` surrogate states ``x``, ``m`` draws each), in the smallest
    unsigned type (:func:`global_state_dtype`). Stream ``s * |A_g| + a`` of ``ss`` draws
    the ``(N, m)`` block of ``(s, a)``. ``fused``: categories by the Numba kernel
    (:func:`altmarl.glearn.kernels.categorical_into`, the same numbers), block by block,
    the streams spread over ``threads`` threads (each stream its own generator: the same
    numbers for any ``threads``)."""
    S, A, _ = P_g.shape
    sg = np.empty((S, N, A, m), dtype=global_state_dtype(S))
    if fused:
        def draw(i: int) -> None:
            s, a = divmod(i, A)
            _global_stream(child_rng(ss, i), _thresholds(P_g[s, a]), sg[s, :, a, :])

        map_threads(draw, S * A, resolve_threads(threads))
        return sg
    for s in range(S):
        for a in range(A):
            rng = child_rng(ss, s * A + a)
            u = uniform_u32(rng, (N, m))
            sg[s, :, a, :] = _categorical_u32(u, _thresholds(P_g[s, a]), sg.dtype)
    return sg


def _rank_fast(hn: NDArray[Any], k: int) -> NDArray[np.int32]:
    """:func:`altmarl.histogram.rank` for int16 histograms on int32 (no int64 temporaries)."""
    d = int(hn.shape[-1])
    cols = _binom_columns(k, d)
    rem = np.full(hn.shape[:-1], k, dtype=np.int32)
    out = np.zeros(hn.shape[:-1], dtype=np.int32)
    for i in range(d - 1):
        e = d - 1 - i
        nxt = rem - hn[..., i]
        out += np.take(cols[e], rem)
        out -= np.take(cols[e], nxt)
        rem = nxt
    return out


def _binom_columns(k: int, d: int) -> list[NDArray[np.int32]]:
    """``cols[e][r] = C(r + e, e)`` for ``0 <= r <= k`` (the rank's hockey-stick terms)."""
    return [np.array([math.comb(r + e, e) for r in range(k + 1)], dtype=np.int32)
            for e in range(d)]


def _rank_packed(acc: NDArray[np.int64], k: int, d: int, bits: int) -> NDArray[np.int32]:
    """Rank of histograms packed ``bits`` per bin into int64 (bin ``i`` at bit ``i*bits``)."""
    cols = _binom_columns(k, d)
    mask = np.int64((1 << bits) - 1)
    rem = np.full(acc.shape, k, dtype=np.int32)
    out = np.zeros(acc.shape, dtype=np.int32)
    for i in range(d - 1):
        e = d - 1 - i
        hi = ((acc >> np.int64(i * bits)) & mask).astype(np.int32)
        nxt = rem - hi
        out += np.take(cols[e], rem)
        out -= np.take(cols[e], nxt)
        rem = nxt
    return out


class StratifiedRanks:
    """Indices of histograms with per-type sums ``ks`` in the order of
    :class:`altmarl.sampling.Stratified` (SPEC 12: mixed radix, type 0 most significant,
    each type's digit its rank in ``H_{k_c}`` over the states of the type), on int16
    histograms (:meth:`plain`) or histograms packed ``bits`` per bin (:meth:`packed`): the
    stratified counterparts of ``_rank_fast`` / ``_rank_packed``."""

    def __init__(self, ks: tuple[int, ...], groups: tuple[NDArray[np.int64], ...]) -> None:
        self.ks, self.groups = tuple(int(v) for v in ks), groups
        self.sizes = [math.comb(kc + g.size - 1, g.size - 1) for kc, g in zip(ks, groups,
                                                                          strict=True)]
        self.cols = [_binom_columns(kc, int(g.size)) for kc, g in zip(ks, groups, strict=True)]

    def _combine(self, digit: Any) -> NDArray[np.int32]:
        out: NDArray[np.int32] | None = None
        for c, size in enumerate(self.sizes):
            part = digit(c)
            out = part if out is None else out * np.int32(size) + part
        assert out is not None
        return out

    def _digit(self, c: int, bin_of: Any, shape: tuple[int, ...]) -> NDArray[np.int32]:
        g, cols, kc = self.groups[c], self.cols[c], self.ks[c]
        e_max = int(g.size) - 1
        rem = np.full(shape, kc, dtype=np.int32)
        out = np.zeros(shape, dtype=np.int32)
        for i in range(e_max):
            e = e_max - i
            nxt = rem - bin_of(int(g[i]))
            out += np.take(cols[e], rem)
            out -= np.take(cols[e], nxt)
            rem = nxt
        return out

    def plain(self, hn: NDArray[Any]) -> NDArray[np.int32]:
        """Indices of int16 histograms ``hn[..., d]``."""
        shape = hn.shape[:-1]
        return self._combine(lambda c: self._digit(c, lambda x: hn[..., x], shape))

    def packed(self, acc: NDArray[np.int64], bits: int) -> NDArray[np.int32]:
        """Indices of histograms packed ``bits`` per bin into int64."""
        mask = np.int64((1 << bits) - 1)

        def bin_of(x: int) -> NDArray[np.int32]:
            return ((acc >> np.int64(x * bits)) & mask).astype(np.int32)

        return self._combine(lambda c: self._digit(c, bin_of, acc.shape))


def stream_pools(K_s: FloatArray, k: int, P: int, m: int, rng: np.random.Generator,
                 packed_bits: int = 0, fused: bool = False,
                 out: NDArray[np.int64] | None = None) -> NDArray[Any]:
    """``pools[x, c, p, :]`` = histogram of the first ``c`` moves of stream ``p mod P`` of
    bin ``x``, for ``p < P + m - 1`` (the last ``m - 1`` streams repeat the first ones so
    that a window of ``m`` consecutive streams never wraps).

    Stream ``p`` of bin ``x`` is a sequence of i.i.d. single-agent moves ``~ K_s[x]``; so for
    each ``(x, c)`` the ``P`` distinct entries are i.i.d. ``Multinomial(c, K_s[x])``.
    With ``packed_bits > 0`` each histogram is returned packed into one int64 (bin ``y``
    at bit ``y * packed_bits``), shape ``(d, k + 1, P + m - 1)``; else int16 ``(..., d)``.
    ``fused`` (packed only): categories and running sums by the Numba kernel
    (:func:`altmarl.glearn.kernels.stream_sums_into`, the same numbers). ``out`` (packed
    only): a buffer of that shape to fill and return (every entry is overwritten), so
    that the pools of successive global states reuse one allocation.
    """
    d = int(K_s.shape[0])
    Pw = P + m - 1
    if packed_bits:
        if out is None:
            out = np.empty((d, k + 1, Pw), dtype=np.int64)
        elif out.shape != (d, k + 1, Pw) or out.dtype != np.int64:
            raise ValueError(f"out: expected an int64 buffer of shape {(d, k + 1, Pw)}, "
                             f"got {out.dtype} {out.shape}")
        out[:, 0, :] = 0  # rows 1..k are running sums from row 0, the tail a copy
        unit = np.int64(1) << (np.arange(d, dtype=np.int64) * packed_bits)
        for x in range(d):
            u = uniform_u32(rng, (k, P))
            if fused:
                kernels.stream_sums_into(u, _thresholds(K_s[x]), unit, out[x])
                continue
            moves = _categorical_u32(u, _thresholds(K_s[x]), np.uint8)  # (k, P); d <= 62
            step = unit[moves]
            for c in range(k):  # running sums row by row (exact; faster than cumsum on axis 0)
                np.add(out[x, c, :P], step[c], out=out[x, c + 1, :P])
        out[:, :, P:] = out[:, :, : m - 1]
        return out
    pools = np.zeros((d, k + 1, Pw, d), dtype=np.int16)
    cells = np.arange(P, dtype=np.int64) * d
    for x in range(d):
        u = uniform_u32(rng, (k, P))
        moves = _categorical_u32(u, _thresholds(K_s[x]), np.int64)  # (k, P)
        flat = pools[x].reshape(k + 1, Pw * d)
        for c in range(1, k + 1):
            flat[c, : P * d] = flat[c - 1, : P * d]
            flat[c, cells + moves[c - 1]] += 1
        pools[x, :, P:] = pools[x, :, : m - 1]
    return pools


def lay_out(a: NDArray[Any], layout: StoreLayout, values: bool = False) -> None:
    """In place, a natural-order per-row array of a store (``(|S_g|, N, ...)``, C-contiguous)
    into ``layout``'s row order (Numba kernels); ``values``: its entries are histogram ranks
    (the next local states ``nxt``), turned into positions of the laid-out value table too.
    In place on purpose: a gather into a new array is faster on memory already in use, but
    a fresh process pays for every new page (on this project's VMs about 2.3 ms per MB at
    the first touch), and the store is the largest allocation G-LEARN makes."""
    kernels.permute_rows(a.reshape(layout.order.size, -1), layout.order)
    if values:
        kernels.remap(a, layout.pos)


def sample_hist_pool(K: FloatArray, H: IntArray, k: int, m: int, pool: int,
                     ss: np.random.SeedSequence, chunk: int,
                     ranks: StratifiedRanks | None = None,
                     fused: bool = False, threads: int | None = 1,
                     layout: StoreLayout | None = None) -> NDArray[np.int32]:
    """``crn="pool"``: draw ``j`` of ``(s_g, h)`` takes, for every bin ``x``, the first
    ``h[x]`` moves of stream ``(o[h, x] + j) mod P`` of bin ``x`` (``o`` uniform offsets).
    Returns next-histogram ranks ``eta[s, h, 0, j]``; with ``ranks`` (a stratified
    surrogate, SPEC 12: ``k`` is then the largest per-type size, the streams' depth) their
    stratified indices. ``fused``: window sums and ranks by the Numba kernel
    (:func:`altmarl.glearn.kernels.pool_ranks`, the same numbers; ``threads`` > 1 spreads
    its rows over threads).

    ``layout`` (a :class:`~altmarl.glearn.layout.StoreLayout` of these ``|S_g| N`` rows;
    needs the Numba kernels): the same draws in the layout's store, row ``s N + h`` at row
    ``layout.rows[s N + h]`` and rank ``r`` as its value position ``layout.pos[r]``
    (written there directly on the fused packed path, otherwise laid out in place
    afterwards, :func:`lay_out`)."""
    d, S, _ = K.shape
    N = H.shape[0]
    if layout is not None and (layout.rows.shape != (S * N,) or layout.pos.shape != (N,)):
        raise ValueError(f"layout: expected {S * N} store rows and {N} value positions, got "
                         f"{layout.rows.shape[0]} and {layout.pos.shape[0]}")
    P = max(int(pool), m)
    Pw = P + m - 1
    eta = np.empty((S, N, 1, m), dtype=np.int32)
    win = np.arange(m, dtype=np.int32)[None, :]
    H32 = H.astype(np.int32)
    bits = max(1, int(k).bit_length())
    packed = d * bits <= PACK_LIMIT
    # one pool buffer for every global state (fresh pages cost a fault each)
    buf = np.empty((d, k + 1, Pw), dtype=np.int64) if packed else None
    for s in range(S):
        rng = child_rng(ss, s)
        pools = stream_pools(K[:, s, :], k, P, m, rng, packed_bits=bits if packed else 0,
                             fused=fused, out=buf)
        # start of the window of (h, x): row (x, h[x], o[h, x]) of the flat pool table
        starts = rng.integers(0, P, size=(N, d), dtype=np.int32)
        starts += (np.arange(d, dtype=np.int32) * np.int32(k + 1) + H32) * np.int32(Pw)
        if packed and fused and ranks is None:
            cols = np.array(_binom_columns(k, d), dtype=np.int64)
            if layout is None:
                kernels.pool_ranks(pools.reshape(-1), starts, m, k, bits, cols,
                                   eta[s, :, 0, :], threads)
            else:
                kernels.pool_ranks(pools.reshape(-1), starts, m, k, bits, cols,
                                   eta.reshape(S * N, m), threads,
                                   layout.rows[s * N:(s + 1) * N], layout.pos)
        elif packed:
            # each pool histogram is packed into one int64 (``bits`` per bin): sums of
            # packed values are packed sums, and 1-d gathers of int64 are fast
            flat_p = pools.reshape(-1)
            for a in range(0, N, chunk):
                b = min(N, a + chunk)
                acc = flat_p[starts[a:b, 0, None] + win]
                for x in range(1, d):
                    acc += flat_p[starts[a:b, x, None] + win]
                eta[s, a:b, 0] = (_rank_packed(acc, k, d, bits) if ranks is None
                                  else ranks.packed(acc, bits))
        else:
            flat = pools.reshape(d * (k + 1) * Pw, d)
            for a in range(0, N, chunk):
                b = min(N, a + chunk)
                hn = flat[starts[a:b, 0, None] + win]
                for x in range(1, d):
                    hn += flat[starts[a:b, x, None] + win]
                eta[s, a:b, 0] = _rank_fast(hn, k) if ranks is None else ranks.plain(hn)
    if layout is not None and not (packed and fused and ranks is None):
        lay_out(eta, layout, values=True)
    return eta


def sample_hist_states(K: FloatArray, H: IntArray, k: int, m: int, n_e: int,
                       ss: np.random.SeedSequence, chunk: int,
                       ranks: StratifiedRanks | None = None) -> NDArray[np.int32]:
    """``crn="states"`` (``n_e = 1``) / ``"none"`` (``n_e = |A_g|``): independent
    ``sum_x Multinomial(h[x], K[x, s])`` draws for every ``(s, h, e, j)`` (indices by
    ``ranks`` for a stratified surrogate)."""
    d, S, _ = K.shape
    N = H.shape[0]
    eta = np.empty((S, N, n_e, m), dtype=np.int32)
    for s in range(S):
        rng = child_rng(ss, s)
        for a in range(0, N, chunk):
            b = min(N, a + chunk)
            hb = H[a:b]
            hn = np.zeros((b - a, n_e, m, d), dtype=np.int16)
            for x in range(d):
                for c in np.unique(hb[:, x]):
                    if c == 0:
                        continue
                    rows = np.flatnonzero(hb[:, x] == c)
                    hn[rows] += rng.multinomial(int(c), K[x, s], size=(rows.size, n_e, m)).astype(np.int16)
            eta[s, a:b] = _rank_fast(hn, k) if ranks is None else ranks.plain(hn)
    return eta


def sample_tuples(K: FloatArray, k: int, m: int, n_e: int, ss: np.random.SeedSequence,
                  chunk: int) -> NDArray[np.int32]:
    """Standard parameterization: each agent of the tuple draws its next state from ``K``;
    returns next-tuple indices ``eta[s, tau, e, j]``."""
    d, S, _ = K.shape
    N = d**k
    eta = np.empty((S, N, n_e, m), dtype=np.int32)
    powers = (d ** np.arange(k - 1, -1, -1, dtype=np.int64)).astype(np.int32)
    for s in range(S):
        rng = child_rng(ss, s)
        thr = [_thresholds(K[x, s]) for x in range(d)]
        for a in range(0, N, chunk):
            b = min(N, a + chunk)
            dig = tuple_digits(np.arange(a, b, dtype=np.int64), k, d)  # (c, k)
            u = uniform_u32(rng, (b - a, n_e, m, k))
            nxt = np.zeros(u.shape, dtype=np.int32)
            for x in range(d):
                cat = _categorical_u32(u, thr[x], np.int32)
                nxt = np.where((dig == x)[:, None, None, :], cat, nxt)
            eta[s, a:b] = nxt @ powers
    return eta


def exact_next_histograms(K_s: FloatArray, k: int) -> FloatArray:
    """``D[h, h'] = P(h' | h)`` for ``k`` agents moving independently by the kernel ``K_s``
    (``(|S_l|, |S_l|)``): the law of ``sum_x Multinomial(h[x], K_s[x])`` (SPEC 4).

    Built agent by agent: ``P(. | h) = P(. | h - e_x) * K_s[x]`` (convolution with one
    agent's move) with ``x`` the first non-empty bin of ``h``. Rows and columns are in
    :func:`altmarl.histogram.rank` order. Dense, ``|H_k|^2`` entries.
    """
    d = int(K_s.shape[0])
    D = np.ones((1, 1))
    prev = enumerate_histograms(0, d)
    for t in range(1, k + 1):
        Ht = enumerate_histograms(t, d)
        first = (Ht > 0).argmax(axis=1)
        parent = Ht.copy()
        parent[np.arange(Ht.shape[0]), first] -= 1
        rows = D[rank(parent, t - 1)]  # (|H_t|, |H_{t-1}|)
        Dt = np.zeros((Ht.shape[0], Ht.shape[0]))
        for y in range(d):
            child = prev.copy()
            child[:, y] += 1
            Dt[:, rank(child, t)] += K_s[first, y][:, None] * rows
        D, prev = Dt, Ht
    return D



#: the largest ``k log |S_l|`` of :class:`HistogramLaw` (its weights ``k! / prod_x h_x!``
#: reach ``|S_l|^k`` and its binomials ``2^k``; this keeps both far below the float64 range)
MAX_LAW_LOG_WEIGHT = 300.0
#: the largest error :class:`HistogramLaw` accepts in its self-check: the row sums of the law
#: (``D 1 = 1``), first and second moments (per agent and per agent squared)
LAW_CHECK_TOL = 1e-11


def check_law_size(k: int, d: int) -> None:
    """Refuse a :class:`HistogramLaw` of ``k`` agents over ``d`` local states whose weights
    would leave float64's range (``k log d >`` :data:`MAX_LAW_LOG_WEIGHT`), before any work."""
    log_weight = k * math.log(max(d, 2))
    if log_weight > MAX_LAW_LOG_WEIGHT:
        raise ValueError(
            f"m = None (exact expectation): k = {k} with |S_l| = {d} is beyond the exact "
            f"next-histogram law (k log |S_l| = {log_weight:.0f} > {MAX_LAW_LOG_WEIGHT:.0f}); "
            f"use a sampled operator (e.g. m = 30)")


class HistogramLaw:
    """The exact next-histogram law of ``k`` agents moving independently by ``K_s`` (the
    ``D = exact_next_histograms(K_s, k)`` of SPEC 4) applied to vectors without building
    ``D``: :meth:`apply` returns ``D @ V`` in ``O(|S_l|^2 |H_k| k)`` operations per
    column and ``O(|H_k|)`` memory (``D`` has ``|H_k|^2`` entries).

    Why it works: ``D[h, h']`` is the coefficient of ``t^h'`` in ``prod_x (K_s t)_x^{h_x}``,
    so ``D^T`` is the substitution ``p(t) -> p(K_s t)`` on homogeneous polynomials of
    degree ``k`` in the monomial basis, and under the weights ``w_h = k! / prod_x h_x!``
    (the basis's Bombieri norms) its transpose is the substitution by ``K_s^T``:
    ``D V = w^-1 * subst(K_s^T)(w * V)``. The substitution factors through the LU
    decomposition ``K_s^T = P L U``: a relabelling of variables, then one-variable
    replacements ``t_i -> sum_j a_j t_j`` (the rows of ``L``, then of ``U`` from the last),
    each a chain of two-variable shears ``t_i -> alpha t_i + beta t_j``
    (:func:`altmarl.glearn.kernels.shear`). No division by a pivot, so singular kernels
    are exact too. The shears can cancel, and the error grows with ``k`` on some kernels
    (warehouse ``k = 20``: ``8.5e-15`` of the dense law; a random game with ``|S_l| = 3`` at
    ``k = 100``: row sums of order ``1e23``): the constructor checks the law's row sums and the first and
    second moments of every bin against their exact values and refuses (``ValueError``)
    above :data:`LAW_CHECK_TOL`."""

    def __init__(self, K_s: FloatArray, k: int) -> None:
        import scipy.linalg as sla

        K_s = np.asarray(K_s, dtype=np.float64)
        if K_s.ndim != 2 or K_s.shape[0] != K_s.shape[1] or K_s.shape[0] < 1:
            raise ValueError(f"K_s: expected a square (|S_l|, |S_l|) kernel, got shape "
                             f"{K_s.shape}")
        if (not np.isfinite(K_s).all() or (K_s < 0).any()
                or np.abs(K_s.sum(axis=1) - 1.0).max() > 1e-9):
            raise ValueError("K_s: expected finite non-negative rows summing to 1")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k = {k!r}: expected an integer >= 0")
        d = int(K_s.shape[0])
        check_law_size(int(k), d)
        self.k, self.d = int(k), d
        self.H = build_histograms(self.k, d)
        self.btab = np.ascontiguousarray(binomial_table(self.k, d))
        lg = [math.lgamma(v + 1) for v in range(self.k + 1)]
        logw = lg[self.k] - np.asarray(lg)[self.H].sum(axis=1)
        self.w = np.exp(logw)
        P, L, U = sla.lu(K_s.T)  # K_s^T = P L U
        perm = np.argmax(P, axis=1)  # (P s)_i = s_perm[i]
        relabel = np.zeros_like(self.H)
        relabel[:, perm] = self.H
        self.relabel = rank(relabel, self.k)  # t^h -> s^relabel(h)
        binom = np.array([[math.comb(n, b) for b in range(self.k + 1)]
                          for n in range(self.k + 1)], dtype=np.float64)
        n_minus_b = np.maximum(np.arange(self.k + 1)[:, None] - np.arange(self.k + 1), 0)
        # one entry per shear: (i, j, coef table) or (i, -1, powers of alpha) for a scaling
        self.ops: list[tuple[int, int, FloatArray]] = []

        def replace(i: int, row: FloatArray) -> None:
            others = [j for j in range(d) if j != i and row[j] != 0.0]
            if not others:
                if row[i] != 1.0:
                    self.ops.append((i, -1, row[i] ** np.arange(self.k + 1)))
                return
            for n, j in enumerate(others):
                alpha = row[i] if n == len(others) - 1 else 1.0
                coef = binom * (alpha ** n_minus_b) * (row[j] ** np.arange(self.k + 1))
                self.ops.append((i, j, np.tril(coef)))

        for i in range(d):  # L = R_1 R_2 ... R_d (row replacements), R_1 applied first
            replace(i, L[i])
        for i in range(d - 1, -1, -1):  # U = R_d ... R_1, R_d applied first
            replace(i, U[i])
        # self-check against exact answers: D 1 = 1, D H = H K_s (expected next counts) and
        # D H^2 = H (K_s (1 - K_s)) + (H K_s)^2 (their second moments, bin by bin)
        Hf = self.H.astype(np.float64)
        mean = Hf @ K_s
        probe = np.concatenate([np.ones((Hf.shape[0], 1)), Hf, Hf**2], axis=1)
        got = self.apply(probe)
        want = np.concatenate([probe[:, :1], mean, Hf @ (K_s * (1 - K_s)) + mean**2], axis=1)
        kk = max(self.k, 1)
        scale = np.concatenate([[1.0], np.full(d, kk), np.full(d, kk * kk)])
        err = float(np.abs((got - want) / scale).max()) if np.isfinite(got).all() else math.inf
        self.check_error = err
        if not err <= LAW_CHECK_TOL:
            raise ValueError(
                f"m = None: the matrix-free next-histogram law is not accurate for this kernel "
                f"at k = {self.k} (self-check error {err:.2g} > {LAW_CHECK_TOL:g}: the "
                f"substitution's shears cancel); use a sampled operator (e.g. m = 30), or the "
                f"dense law by raising max_exact_entries")

    def apply(self, V: FloatArray) -> FloatArray:
        """``D @ V`` for ``V`` of shape ``(|H_k|, C)`` (or ``(|H_k|,)``)."""
        X = np.asarray(V, dtype=np.float64)
        flat = X.ndim == 1
        c0 = (X.reshape(X.shape[0], -1) * self.w[:, None])
        c = np.empty_like(c0)
        c[self.relabel] = c0
        for i, j, table in self.ops:
            if j < 0:
                c = c * table[self.H[:, i]][:, None]
            else:
                c = kernels.shear(self.H, self.btab, table, c, i, j)
        out = c / self.w[:, None]
        return out[:, 0] if flat else out


def exact_next_stratified(K_s: FloatArray, ks: tuple[int, ...],
                          groups: tuple[NDArray[np.int64], ...]) -> FloatArray:
    """``D[h, h']`` of a stratified surrogate (SPEC 12): ``k_c`` agents of each type ``c``
    move independently by ``K_s``, which never leaves a type, so the law is the Kronecker
    product over types of :func:`exact_next_histograms` on the states of each type (rows
    and columns in the mixed-radix order of :class:`altmarl.sampling.Stratified`)."""
    D: FloatArray = np.ones((1, 1))
    for kc, g in zip(ks, groups, strict=True):
        D = np.asarray(np.kron(D, exact_next_histograms(K_s[np.ix_(g, g)], kc)),
                       dtype=np.float64)
    return D
