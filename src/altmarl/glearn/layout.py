"""A cache-friendly order for the sample store of large G-LEARN operators (SPEC 4).

The products of G-LEARN's policy evaluation and backup gather, for every row ``(s_g, x)``,
the values ``V(s_g', x')`` of its ``m`` sampled next states. Those next histograms lie
near the row's mean-field successor ``x K(s_g)``, which is not near ``x`` in
:func:`altmarl.histogram.rank` order, so once the value table outgrows the caches (about
``k >= 30`` on the warehouse: 1.9 MB of values at ``k = 30``, 12.6 MB at ``k = 50``) every gather is a cache miss. This module
orders both sides along one Z-order (Morton) curve over histogram space:

* the value table's histograms (``hperm``, where the products gather), and
* the store's rows (``order``, the order the products process them), by their expected
  next histogram,

so consecutive rows gather from a small, shared part of the table. Only the memory layout
changes: every row's sum has the same terms in the same order, so every number G-LEARN
returns is bit-identical (``tests/glearn/test_layout.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: value tables (``8 |S_g| N`` bytes) from this size on get the Z-order layout; below it the
#: table stays in cache and the layout's extra pass costs more than it saves (measured:
#: ``benchmarks/bench_g_learn.py --layout``)
LAYOUT_MIN_BYTES = 1 << 20
#: from this many points on, :func:`morton_codes` runs as one Numba pass over the points
#: (the same integers) instead of ``D`` times the bit length of whole-array passes
MORTON_KERNEL_MIN = 1 << 14


@dataclass(frozen=True)
class StoreLayout:
    """Where rows and values are stored: row ``r`` of the store holds the table's row
    ``order[r]`` (flat ``s_g N + x``; ``rows`` the inverse: table row ``o`` is stored at
    ``rows[o]``), and position ``p`` of the laid-out value table holds histogram
    ``hperm[p]`` (``pos`` the inverse: histogram ``x`` sits at ``pos[x]``)."""

    order: NDArray[np.int32]
    hperm: NDArray[np.int32]
    pos: NDArray[np.int32]
    rows: NDArray[np.int32]


def inverse_order(order: NDArray[np.int32]) -> NDArray[np.int32]:
    """The inverse permutation: ``inv[order[r]] = r``."""
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size, dtype=order.dtype)
    return inv


def morton_codes(points: NDArray[np.int64]) -> NDArray[np.int64]:
    """Z-order (Morton) codes of points with non-negative integer coordinates (``(n,
    D)``): the bits of the ``D`` coordinates interleaved, most significant first, into one
    int64 (coordinates are shifted right when ``D`` times their bit length exceeds 63)."""
    pts = np.asarray(points, dtype=np.int64)
    n, D = pts.shape
    code = np.zeros(n, dtype=np.int64)
    if n == 0 or D == 0:
        return code
    bits = max(1, int(pts.max()).bit_length())
    shift = max(0, bits - 63 // D)
    if shift:
        pts = pts >> shift
        bits -= shift
    kernel = _morton_kernel() if n >= MORTON_KERNEL_MIN else None
    if kernel is not None:
        kernel(np.ascontiguousarray(pts), bits, code)
        return code
    for b in range(bits - 1, -1, -1):
        for i in range(D):
            code = (code << 1) | ((pts[:, i] >> b) & 1)
    return code


def _morton(pts: Any, bits: int, out: Any) -> None:
    # morton_codes' loop over bits and coordinates, one point at a time
    n, D = pts.shape
    for r in range(n):
        c = np.int64(0)
        for b in range(bits - 1, -1, -1):
            for i in range(D):
                c = (c << np.int64(1)) | ((pts[r, i] >> np.int64(b)) & np.int64(1))
        out[r] = c


@cache
def _morton_kernel() -> Any:
    """:func:`morton_codes`' loop compiled by Numba (on first use, cached on disk);
    ``None`` without Numba (the NumPy loop is then used at every size, as for the other
    G-LEARN kernels)."""
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True, boundscheck=False)(_morton)


def store_layout(H: NDArray[np.int64], K: FloatArray, resolution: int = 2) -> StoreLayout:
    """The Z-order layout of a mean-field store with histograms ``H`` (``(N, |S_l|)``, in
    rank order) and local kernel ``K`` (``(|S_l|, |S_g|, |S_l|)``): histograms by the
    Morton code of their first ``|S_l| - 1`` counts, rows by that of their expected next
    histogram ``H K[:, s_g, :]`` (on a grid ``resolution`` times finer than the counts)."""
    N, d = H.shape
    S = K.shape[1]
    D = max(d - 1, 1)
    hperm = np.argsort(morton_codes(H[:, :D]), kind="stable").astype(np.int32)
    pos = inverse_order(hperm)
    keys = np.empty(S * N, dtype=np.int64)
    for s in range(S):
        mean = H @ K[:, s, :D]
        keys[s * N:(s + 1) * N] = morton_codes(np.rint(resolution * mean).astype(np.int64))
    order = np.argsort(keys, kind="stable").astype(np.int32)
    return StoreLayout(order, hperm, pos, inverse_order(order))


def wants_layout(n_sg: int, n_states: int) -> bool:
    """Whether a fused mean-field store with a ``|S_g| x N`` value table gets the layout
    (:data:`LAYOUT_MIN_BYTES`, and flat indices within int32)."""
    values = n_sg * n_states
    return 8 * values >= LAYOUT_MIN_BYTES and values < 2**31


__all__ = ["LAYOUT_MIN_BYTES", "MORTON_KERNEL_MIN", "StoreLayout", "inverse_order",
           "morton_codes", "store_layout", "wants_layout"]
