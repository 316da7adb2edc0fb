"""Fused kernels of G-LEARN's sampled operator (SPEC 4): gather, average and (for the
backup) all global actions at once, over the compact sample store of
:class:`altmarl.glearn.operator.SampledModel`.

The store keeps, for every ``(s_g, x)``, the ``m`` next local states ``nxt[s, x, e, j]``
(int32; ``e = 0`` when shared by all ``a_g``, which holds for ``crn="pool"`` and
``"states"`` because ``P_l`` does not depend on ``a_g``) and the next global states
``sg[s, x, a, j]`` (one byte when ``|S_g| <= 255``). Two products are needed:

* :func:`expect_all` — ``E_hat[V(next) | s, x, a] = sum_j (1/m) V[sg, nxt]`` for every
  ``a_g`` (the Bellman backup), reading each row's next local states once for all actions
  and gathering from ``V`` laid out ``(N, |S_g|)`` so the ``|S_g|`` values of one next
  histogram share a cache line;
* :func:`policy_matvec` — the same for one action per row (policy evaluation).

Both sum the ``m`` terms in the order ``j = 0, 1, ...`` starting from ``0.0``, exactly as
SciPy's CSR product does, so the results are bit-identical to the sparse-matrix path
(which small problems still use: no compilation). Large operators also draw their
samples with two integer kernels (:func:`categorical_into`, :func:`pool_ranks`: the same
numbers as the NumPy code of :mod:`altmarl.glearn.draws`). Numba compiles the kernels on
first use (cached on disk); without Numba the NumPy / SciPy path is used for every size.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: whether Numba is installed (it is imported, and the kernels compiled or loaded from
#: its cache, only when a large operator first needs them)
HAVE_NUMBA = importlib.util.find_spec("numba") is not None

#: sampled operators with at least this many stored samples per action
#: (``|S_g| N m``) use the fused kernels; smaller ones the SciPy sparse matrices
FUSED_MIN_SAMPLES = 1 << 21


def _expect_all(nxt: Any, sg: Any, VT: Any, w: float, out: Any) -> None:
    S, N, E, m = nxt.shape
    A = sg.shape[2]
    for s in range(S):
        for x in range(N):
            for a in range(A):
                e = a if E > 1 else 0
                acc = 0.0
                for j in range(m):
                    acc += w * VT[nxt[s, x, e, j], sg[s, x, a, j]]
                out[s, x, a] = acc


def _policy_matvec(nxt: Any, sg: Any, actions: Any, VT: Any, w: float, out: Any) -> None:
    S, N, E, m = nxt.shape
    for s in range(S):
        for x in range(N):
            a = actions[s, x]
            e = a if E > 1 else 0
            acc = 0.0
            for j in range(m):
                acc += w * VT[nxt[s, x, e, j], sg[s, x, a, j]]
            out[s * N + x] = acc


def _categorical(u: Any, thr: Any, out: Any) -> None:
    R, C = u.shape
    T = thr.shape[0]
    for i in range(R):
        for j in range(C):
            v = np.int64(u[i, j])
            c = 0
            for t in range(T):
                if v >= thr[t]:
                    c += 1
            out[i, j] = c


def _pool_ranks(flat_p: Any, starts: Any, m: int, k: int, bits: int, cols: Any,
                out: Any) -> None:
    N, d = starts.shape
    mask = np.int64((1 << bits) - 1)
    for h in range(N):
        for j in range(m):
            acc = np.int64(0)
            for x in range(d):
                acc += flat_p[starts[h, x] + j]
            rem = np.int64(k)
            r = 0
            for i in range(d - 1):
                e = d - 1 - i
                hi = (acc >> np.int64(i * bits)) & mask
                nxt = rem - hi
                r += cols[e, rem] - cols[e, nxt]
                rem = nxt
            out[h, j] = r


def use_fused(samples_per_action: int) -> bool:
    """Whether an operator with ``|S_g| N m = samples_per_action`` uses the fused kernels
    (Numba installed and at least :data:`FUSED_MIN_SAMPLES`)."""
    return HAVE_NUMBA and samples_per_action >= FUSED_MIN_SAMPLES


def categorical_into(u: NDArray[np.uint32], thr: list[int], out: NDArray[Any]) -> None:
    """``out[i, j] = #{t : u[i, j] >= thr_t}`` (thresholds ``>= 2^32`` never count): the
    category of each 32-bit uniform, as :func:`altmarl.glearn.draws` computes it."""
    t = np.array([v for v in thr if v < 2**32], dtype=np.int64)
    _jit("categorical")(u, t, out)


def pool_ranks(flat_p: NDArray[np.int64], starts: NDArray[np.int32], m: int, k: int,
               bits: int, cols: NDArray[np.int64], out: NDArray[np.int32]) -> None:
    """``out[h, j]`` = rank in ``H_k`` of the packed histogram ``sum_x flat_p[starts[h, x]
    + j]`` (``bits`` per bin; ``cols[e, r] = C(r + e, e)``): the window sums and ranks of
    ``crn="pool"`` sampling in one pass."""
    _jit("pool")(flat_p, starts, m, k, bits, cols, out)


@cache
def _jit(name: str) -> Any:
    """The Numba-compiled kernel ``name`` (compiled once per process, cached on disk)."""
    import numba

    fn = {"expect": _expect_all, "policy": _policy_matvec, "categorical": _categorical,
          "pool": _pool_ranks}[name]
    return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)


def expect_all(nxt: NDArray[np.int32], sg: NDArray[Any], V: FloatArray, m: int) -> FloatArray:
    """``out[s, x, a] = sum_j (1/m) V[sg[s, x, a, j], nxt[s, x, e, j]]`` (``e = a`` when
    ``nxt`` has one column per action, else ``0``), summed in order ``j = 0..m-1``."""
    S, N = V.shape
    out = np.empty((S, N, sg.shape[2]))
    VT = np.ascontiguousarray(V.T, dtype=np.float64)
    _jit("expect")(nxt, sg, VT, 1.0 / m, out)
    return out


def policy_matvec(nxt: NDArray[np.int32], sg: NDArray[Any], actions: NDArray[np.int64],
                  x: FloatArray, m: int) -> FloatArray:
    """``out[s N + x] = sum_j (1/m) x[sg[s, x, a, j] N + nxt[s, x, e, j]]`` with
    ``a = actions[s, x]`` (the policy's transition matrix times ``x``, flat vectors)."""
    out = np.empty(x.size)
    S, N = nxt.shape[:2]
    VT = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(S, N).T)
    _jit("policy")(nxt, sg, actions, VT, 1.0 / m, out)
    return out


__all__ = ["FUSED_MIN_SAMPLES", "HAVE_NUMBA", "categorical_into", "expect_all", "policy_matvec",
           "pool_ranks", "use_fused"]
