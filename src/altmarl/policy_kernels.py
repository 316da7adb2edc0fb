"""Numba kernels of the greedy policy's tie rule (:func:`altmarl.policies.greedy`, SPEC 4)
for large ``Q`` tables: the greedy actions and the check that actions are greedy for a
finite table, each in one pass without the table-sized temporaries of the NumPy rule.

Both take the tie tolerance ``rtol`` (actions within ``rtol * max(1, |max Q|)`` of the
maximum are tied) and give the NumPy rule's results to the last bit: the same comparisons
on the same doubles, NaN and infinities as NumPy has them. The seeded tie-break takes the
bit generator's raw 64-bit outputs and turns each into the double that PCG64's
``Generator.random`` makes of it, ``(raw >> 11) * 2**-53``. Importing this module imports
Numba; :func:`altmarl.policies.greedy_kernels` does so on first use and checks the kernels
against the NumPy rule before it trusts them.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: ``2^-53``: a raw 64-bit output ``u`` is the double ``(u >> 11) * UNIT``
UNIT = 1.0 / 9007199254740992.0


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _first(q: Any, raw: Any, rtol: float, arg: Any) -> None:  # pragma: no cover - compiled
    R, A = q.shape
    seeded = raw.size > 0
    for r in range(R):
        b = q[r, 0]
        nan = np.isnan(b)
        for a in range(1, A):
            v = q[r, a]
            nan |= np.isnan(v)
            b = v if v > b else b
        if nan:  # the maximum is NaN: nothing is tied with it
            b = np.nan
        c = abs(b)
        t = b - rtol * (1.0 if c <= 1.0 else c)  # as np.maximum(1.0, |max|): NaN stays
        i = 0
        if seeded:  # argmax of where(tied, noise, -1): the first largest
            best = np.int64(raw[r, 0] >> np.uint64(11)) * UNIT if q[r, 0] >= t else -1.0
            for a in range(1, A):
                u = np.int64(raw[r, a] >> np.uint64(11)) * UNIT if q[r, a] >= t else -1.0
                up = u > best
                i = a if up else i
                best = u if up else best
        else:
            for a in range(A - 1, -1, -1):  # the lowest tied action, without a branch
                i = a if q[r, a] >= t else i
        arg[r] = i


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _holds(q: Any, actions: Any, rtol: float) -> bool:  # pragma: no cover - compiled
    R, A = q.shape
    for r in range(R):
        b = q[r, 0]
        for a in range(A):
            v = q[r, a]
            if not np.isfinite(v):
                return False
            if v > b:
                b = v
        c = abs(b)
        if q[r, actions[r]] < b - rtol * (1.0 if c <= 1.0 else c):
            return False
    return True


#: "no noise" for :func:`greedy_first`
_NO_RAW = np.empty((0, 1), dtype=np.uint64)


def _rows(q: FloatArray) -> Any:
    # C-ordered, writable float64 rows: one compiled specialisation
    return np.require(np.reshape(q, (-1, q.shape[-1])), dtype=np.float64,
                      requirements=["C", "W"])


def greedy_first(q: FloatArray, rtol: float,
                 raw: NDArray[np.uint64] | None = None) -> NDArray[np.int64]:
    """The actions tied with the maximum of each row ``q[..., :]`` (``q[..., a] >= max -
    rtol max(1, |max|)``; none where the maximum is NaN or ``+inf``: action ``0``), the
    lowest of them, or with ``raw`` (one raw PCG64 output per entry of ``q``, in its order)
    the first of largest noise, ``argmax(where(tied, (raw >> 11) 2^-53, -1))``. ``q`` is
    converted to float64; its last axis must not be empty."""
    q2 = _rows(q)
    if raw is None:
        u = _NO_RAW
    else:
        u = np.require(np.reshape(raw, q2.shape), dtype=np.uint64, requirements=["C", "W"])
    arg = np.empty(q2.shape[0], dtype=np.int64)
    _first(q2, u, float(rtol), arg)
    return arg.reshape(np.shape(q)[:-1])


def greedy_holds(q: FloatArray, actions: NDArray[np.int64], rtol: float) -> bool:
    """Whether ``q`` is finite and ``actions`` (one per row ``q.shape[:-1]``) is greedy for
    it: every chosen value at least ``max - rtol max(1, |max|)``. ``ValueError`` for actions
    of another count or outside ``[0, |A|)``."""
    q2 = _rows(q)
    acts = np.require(np.reshape(actions, -1), dtype=np.int64, requirements=["C", "W"])
    if acts.size != q2.shape[0]:
        raise ValueError(f"actions: expected {q2.shape[0]} entries, got {acts.size}")
    if acts.size and (int(acts.min()) < 0 or int(acts.max()) >= q2.shape[1]):
        raise ValueError(f"actions: expected values in 0..{q2.shape[1] - 1}")
    return bool(_holds(q2, acts, float(rtol)))


__all__ = ["UNIT", "greedy_first", "greedy_holds"]
