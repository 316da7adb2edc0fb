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

IntArray = NDArray[np.int64]


def num_histograms(k: int, d: int) -> int:
    """``|H_k| = C(k + d - 1, d - 1)``."""
    return comb(k + d - 1, d - 1)


@lru_cache(maxsize=64)
def _binom_table(k: int, d: int) -> IntArray:
    """``B[r, e] = C(r + e, e)`` for ``0 <= r <= k``, ``0 <= e <= d - 1``."""
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
    table = _binom_table(int(k), d)
    rem = np.full(arr.shape[:-1], k, dtype=np.int64)
    out = np.zeros(arr.shape[:-1], dtype=np.int64)
    for i in range(d - 1):
        e = d - 1 - i
        nxt = rem - arr[..., i]
        out += table[rem, e] - table[nxt, e]
        rem = nxt
    return out


@cache
def _enumerate(k: int, d: int) -> IntArray:
    # unbounded cache: the recursion visits at most (k + 1) * d distinct (k, d) pairs
    if d == 1:
        out = np.array([[k]], dtype=np.int64)
    else:
        parts = []
        for v in range(k + 1):
            rest = _enumerate(k - v, d - 1)
            parts.append(np.concatenate([np.full((rest.shape[0], 1), v, np.int64), rest], axis=1))
        out = np.concatenate(parts, axis=0)
    out.setflags(write=False)
    return out


def enumerate_histograms(k: int, d: int) -> IntArray:
    """All of ``H_k`` as an array of shape ``(|H_k|, d)``, row ``i`` having rank ``i``."""
    if k < 0 or d < 1:
        raise ValueError(f"enumerate_histograms: expected k >= 0 and d >= 1, got k={k}, d={d}")
    return _enumerate(int(k), int(d))


def unrank(r: ArrayLike, k: int, d: int) -> IntArray:
    """Inverse of :func:`rank`: histogram(s) of rank ``r``, shape ``(..., d)``.

    Decodes digit by digit (no enumeration of ``H_k``): at bin ``i`` the value ``h_i`` is
    the largest ``v`` with ``B(rem, e) - B(rem - v, e) <= r``.
    """
    rr = np.array(r, dtype=np.int64)
    size = num_histograms(k, d)
    if rr.size and (rr.min() < 0 or rr.max() >= size):
        raise ValueError(f"rank: expected values in 0..{size - 1} for k={k}, d={d}")
    table = _binom_table(int(k), d)
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
