"""Histograms of subsampled local states: the set ``H_k`` and its combinatorial rank (SPEC 2).

``H_k = {h in N^d : sum(h) = k}`` with ``d = |S_l|`` has ``C(k + d - 1, d - 1)`` elements.
They are ordered lexicographically (``h[0]`` most significant, ascending), and
:func:`rank` / :func:`unrank` map between histograms and ``0 .. |H_k| - 1`` with a few
vectorized NumPy operations (no dicts, no Python loops over histograms).

With ``rem_i = k - sum_{j<i} h_j`` and ``B(r, e) = C(r + e, e)`` (the number of histograms
with ``e + 1`` bins summing to ``r``), the hockey-stick identity gives::

    rank(h) = sum_{i=0}^{d-2} [ B(rem_i, d-1-i) - B(rem_i - h_i, d-1-i) ]
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from math import comb

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import check_int
from altmarl.limits import (
    INT64_MAX,
    MAX_HISTOGRAM_ENTRIES,
    MAX_TABLE_ENTRIES,
    log_binomial,
    within,
)

IntArray = NDArray[np.int64]


def num_histograms(k: int, d: int) -> int:
    """``|H_k| = C(k + d - 1, d - 1)``."""
    return comb(k + d - 1, d - 1)


def log_num_histograms(k: int, d: int) -> float:
    """``log |H_k| = log C(k + d - 1, d - 1)`` by ``math.lgamma``: the size of ``H_k`` for any
    ``k`` and ``d`` in constant time (no big integers)."""
    return log_binomial(k + d - 1, d - 1)


def check_table_size(name: str, k: int, d: int, factor: int = 1,
                     limit: int = MAX_TABLE_ENTRIES, hint: str = "use a smaller k") -> int:
    """``|H_k|`` for ``d`` local states when a table of ``factor x |H_k|`` entries is within
    ``limit``; else a ``ValueError`` naming ``name`` (checked by logarithms first, so a
    huge ``k`` or ``d`` costs nothing)."""
    if not within(math.log(max(factor, 1)) + log_num_histograms(k, d), limit):
        raise ValueError(f"{name}: a table of {factor} x |H_k| entries for k = {k}, |S_l| = {d} "
                         f"(|H_k| = C({k + d - 1}, {d - 1}) ~ "
                         f"e^{log_num_histograms(k, d):.1f}) exceeds the limit of "
                         f"{limit:.3g} entries (altmarl.limits); {hint}")
    size = num_histograms(k, d)
    if factor * size > limit:
        raise ValueError(f"{name}: a table of {factor} x {size} entries for k = {k}, "
                         f"|S_l| = {d} exceeds the limit of {limit:.3g} entries "
                         f"(altmarl.limits); {hint}")
    return size


@lru_cache(maxsize=64)
def binomial_table(k: int, d: int) -> IntArray:
    """``B[r, e] = C(r + e, e)`` for ``0 <= r <= k``, ``0 <= e <= d - 1`` (read-only): the
    table :func:`rank` indexes histograms of ``H_k`` over ``d`` bins with."""
    table = np.zeros((k + 1, max(d, 1)), dtype=np.int64)
    for r in range(k + 1):
        for e in range(max(d, 1)):
            table[r, e] = comb(r + e, e)
    table.setflags(write=False)
    return table


def rank(h: ArrayLike, k: int | None = None) -> IntArray:
    """Rank of histogram(s) ``h`` (shape ``(..., d)``) in ``H_k``; vectorized.

    ``k`` defaults to ``h.sum(-1)`` (which must then be the same for every histogram).
    """
    arr = np.asarray(h, dtype=np.int64)
    d = arr.shape[-1]
    if k is None:
        sums = arr.sum(axis=-1)
        k = int(sums.flat[0]) if sums.size else 0
    table = binomial_table(int(k), d)
    rem = np.full(arr.shape[:-1], k, dtype=np.int64)
    out = np.zeros(arr.shape[:-1], dtype=np.int64)
    for i in range(d - 1):
        e = d - 1 - i
        nxt = rem - arr[..., i]
        out += table[rem, e] - table[nxt, e]
        rem = nxt
    return out


def build_histograms(k: int, d: int) -> IntArray:
    """``H_k`` as a fresh, writable ``(|H_k|, d)`` int64 array, row ``i`` having rank ``i``
    (:func:`rank` order: lexicographic), neither cached nor size-checked (for callers that
    bound the size themselves and own the array, such as G-LEARN's surrogate states;
    :func:`enumerate_histograms` is the checked, cached one).

    Built one bin at a time with whole-array operations: if ``T_e`` lists the histograms of
    ``k`` agents over ``e`` bins, those of ``k - v`` agents are its rows whose first count
    is at least ``v`` (a suffix, since rows are lexicographic) with ``v`` taken off that
    count, so ``T_{e+1} = [v, T_e(k - v)]`` for ``v = 0..k`` is one gather of ``T_e``."""
    k = check_int("build_histograms: k", k, 0, INT64_MAX)
    d = check_int("build_histograms: d", d, 1, INT64_MAX)
    table = np.array([[k]], dtype=np.int64)  # one bin
    v_all = np.arange(k + 1, dtype=np.int64)
    for e in range(2, d + 1):
        starts = np.searchsorted(table[:, 0], v_all, side="left")  # first row with count >= v
        lengths = table.shape[0] - starts
        first = np.repeat(v_all, lengths)
        # row i of block v is row starts[v] + (i - offset[v]) of the previous table
        offsets = np.cumsum(lengths) - lengths
        src = np.arange(first.size, dtype=np.int64) - np.repeat(offsets - starts, lengths)
        out = np.empty((first.size, e), dtype=np.int64)
        out[:, 0] = first
        out[:, 1:] = table[src]
        out[:, 1] -= first
        table = out
    return table


@cache
def _enumerate(k: int, d: int) -> IntArray:
    # unbounded cache: enumerate_histograms bounds every table's size before it is built
    out = build_histograms(k, d)
    out.setflags(write=False)
    return out


def enumerate_histograms(k: int, d: int) -> IntArray:
    """All of ``H_k`` as an array of shape ``(|H_k|, d)``, row ``i`` having rank ``i``.

    Refused (``ValueError``) before any work when the array would have more than
    ``limits.MAX_TABLE_ENTRIES`` rows or ``limits.MAX_HISTOGRAM_ENTRIES`` entries."""
    k = check_int("enumerate_histograms: k", k, 0, INT64_MAX)
    d = check_int("enumerate_histograms: d", d, 1, INT64_MAX)
    check_table_size("enumerate_histograms", k, d)
    check_table_size("enumerate_histograms", k, d, d, MAX_HISTOGRAM_ENTRIES)
    return _enumerate(k, d)


def unrank(r: ArrayLike, k: int, d: int) -> IntArray:
    """Inverse of :func:`rank`: histogram(s) of rank ``r``, shape ``(..., d)``.

    Decodes digit by digit (no enumeration of ``H_k``): at bin ``i`` the value ``h_i`` is
    the largest ``v`` with ``B(rem, e) - B(rem - v, e) <= r``.
    """
    rr = np.array(r, dtype=np.int64)
    size = num_histograms(k, d)
    if rr.size and (rr.min() < 0 or rr.max() >= size):
        raise ValueError(f"rank: expected values in 0..{size - 1} for k={k}, d={d}")
    table = binomial_table(int(k), d)
    out = np.zeros(rr.shape + (d,), dtype=np.int64)
    rem = np.full(rr.shape, k, dtype=np.int64)
    vals = np.arange(k + 1)
    for i in range(d - 1):
        e = d - 1 - i
        # offset[v] = B(rem, e) - B(rem - v, e), for v <= rem (increasing in v)
        nxt = rem[..., None] - vals
        valid = nxt >= 0
        offs = table[rem, e][..., None] - table[np.where(valid, nxt, 0), e]
        ok = valid & (offs <= rr[..., None])
        v = ok.sum(axis=-1) - 1
        out[..., i] = v
        rr = rr - np.take_along_axis(offs, v[..., None], axis=-1)[..., 0]
        rem = rem - v
    out[..., d - 1] = rem
    return out


def num_tuples(k: int, d: int) -> int:
    """``|S_l|^k``: size of the standard (ordered k-tuple) parameterization."""
    return int(d) ** int(k)


def effective_k(k: int, n: int) -> float:
    """``k (n - 1) / (n - k)``: the with-replacement sample size whose histogram has the
    variance of a without-replacement ``k``-sample from ``n`` agents (finite-population
    correction ``(n - k) / (n - 1)``); ``inf`` at ``k = n``."""
    return math.inf if k >= n else k * (n - 1) / (n - k)
