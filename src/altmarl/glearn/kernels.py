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
import threading
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl.glearn.layout import MORTON_KERNEL_MIN, inverse_order, morton_codes
from altmarl.planning import einsum_combine, sup_norm
from altmarl.policies import greedy_kernels
from altmarl.threads import resolve_threads

FloatArray = NDArray[np.float64]

#: whether Numba is installed (it is imported, and the kernels compiled or loaded from
#: its cache, only when a large operator first needs them)
HAVE_NUMBA = importlib.util.find_spec("numba") is not None

#: sampled operators with at least this many stored samples per action
#: (``|S_g| N m``) use the fused kernels; smaller ones the SciPy sparse matrices
FUSED_MIN_SAMPLES = 1 << 21
#: once the kernels are loaded in the process (a large operator used them, or
#: :func:`warm_up` was called), operators from this size on use them too: the same numbers,
#: less fixed cost per call, and never a compilation charged to a small problem
FUSED_WARM_MIN_SAMPLES = 1 << 16

#: the "no permutation" ``order`` of the products (an empty array)
_IDENTITY = np.empty(0, dtype=np.int32)
#: "no value vector" for :func:`_unpermute` (an empty array)
_NO_VALUES = np.empty(0, dtype=np.float64)

#: :func:`gather_mean` / :func:`gather_system` prefetch the values of the row ``PREFETCH_ROWS``
#: ahead from this size of the laid-out value vector on (bytes): a table larger than the
#: caches nearest the core (``k >= 38`` on the warehouse). Smaller tables stay in cache,
#: and the hints there only cost instructions
PREFETCH_MIN_BYTES = 1 << 22
#: rows ahead of the current one whose values the products prefetch (fewer leave part of
#: the miss latency exposed, more are evicted before use: 4-8 measured alike at k = 50)
PREFETCH_ROWS = 6
#: entries ahead that :func:`_unpermute` prefetches (one gather per entry, little work)
_PREFETCH_AHEAD = 64
#: rows ahead whose output rows the backup prefetches for writing (its rows are written
#: in table order, scattered over the output by the store's layout)
_PREFETCH_OUT_ROWS = 8
#: histograms ahead whose stream windows :func:`_pool_ranks` prefetches, one hint per
#: ``_WINDOW_STRIDE`` entries (8 int64 = one 64-byte cache line)
_PREFETCH_POOL_AHEAD = 8
_WINDOW_STRIDE = 8


def _no_prefetch(a: Any, i: Any) -> None:
    """What ``prefetch`` is until a kernel is compiled: a no-op."""


#: ``prefetch(a, i)`` in the kernels: a hint to the processor to load the cache line of
#: ``a[i]`` (no value changes); the LLVM ``llvm.prefetch`` intrinsic once a kernel is
#: compiled (:func:`_prefetch_intrinsic`, set as ``prange`` is)
prefetch: Any = _no_prefetch
#: ``prefetch_write(a, i)``: the same for a line about to be written (``a`` flat)
prefetch_write: Any = _no_prefetch


@cache
def _prefetch_intrinsic(write: bool = False) -> Any:
    """``prefetch(a, i)`` as a Numba intrinsic: ``llvm.prefetch`` (high locality, data
    cache; for a read, or with ``write`` for a store) of the address of element ``i`` of
    ``a``'s data counted flat from its first element (C order for a C-contiguous ``a``).
    Nothing is loaded into a register and no bound is checked: a prefetch never faults."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    rw = int(write)

    @intrinsic  # type: ignore[misc]
    def prefetch_line(typingctx: Any, arr: Any, idx: Any) -> Any:
        if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0i8")
            builder.call(fn, [ptr, i32(rw), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(arr, idx), codegen

    return prefetch_line


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


def _policy_columns(nxt: Any, sg: Any, actions: Any, out: Any) -> None:
    S, N, E, m = nxt.shape
    for s in range(S):
        for x in range(N):
            a = actions[s, x]
            e = a if E > 1 else 0
            r = s * N + x
            for j in range(m):
                out[r, j] = nxt[s, x, e, j] * S + sg[s, x, a, j]


def _recolumn(cols: Any, sg: Any, old: Any, new: Any) -> None:
    S, N, A, m = sg.shape
    for s in range(S):
        for x in range(N):
            a, b = old[s, x], new[s, x]
            if a != b:
                r = s * N + x
                for j in range(m):
                    cols[r, j] += sg[s, x, b, j] - sg[s, x, a, j]


# the serial kernels below repeat their row-parallel twins (``*_par``) on purpose: Numba's
# on-disk cache keys a function by its bytecode, not by ``parallel=``, so one function
# compiled both ways would load the other flavour from the cache
def _backup_cols(cols: Any, sg: Any, actions: Any, v: Any, w: float, order: Any,
                 rg: Any, rl: Any, gamma: float, out: Any) -> None:
    # up to five actions per pass over the row's samples (lanes past the last action repeat
    # it and are not written): independent sums, each still in order j = 0..m-1, so the
    # same numbers as one action at a time, without waiting on one chain of adds; unsigned
    # indices (every flat index is >= 0) skip Numba's negative-index wraparound
    S, N, A, m = sg.shape
    D = _PREFETCH_OUT_ROWS
    for s in range(S):
        for x in range(N):
            r = s * N + x
            o = np.int64(order[r]) if order.size else np.int64(r)
            if order.size and r + D < S * N:
                ow = np.int64(order[r + D]) * A
                prefetch_write(out, ow)
                prefetch_write(out, ow + A - 1)
            so = o // N
            cr = cols[r]
            sgr = sg[s, x]
            sc = sgr[actions[s, x]]
            rr = rl[r]
            t = A - 1
            a0 = 0
            while a0 < A:
                if A - a0 >= 3:
                    s0 = sgr[min(a0, t)]
                    s1 = sgr[min(a0 + 1, t)]
                    s2 = sgr[min(a0 + 2, t)]
                    s3 = sgr[min(a0 + 3, t)]
                    s4 = sgr[min(a0 + 4, t)]
                    acc0 = 0.0
                    acc1 = 0.0
                    acc2 = 0.0
                    acc3 = 0.0
                    acc4 = 0.0
                    for j in range(m):
                        b = np.uint64(cr[j] - sc[j])
                        acc0 += w * v[b + np.uint64(s0[j])]
                        acc1 += w * v[b + np.uint64(s1[j])]
                        acc2 += w * v[b + np.uint64(s2[j])]
                        acc3 += w * v[b + np.uint64(s3[j])]
                        acc4 += w * v[b + np.uint64(s4[j])]
                    out[o, a0] = (rg[so, a0] + rr) + gamma * acc0
                    out[o, a0 + 1] = (rg[so, a0 + 1] + rr) + gamma * acc1
                    out[o, a0 + 2] = (rg[so, a0 + 2] + rr) + gamma * acc2
                    if a0 + 3 < A:
                        out[o, a0 + 3] = (rg[so, a0 + 3] + rr) + gamma * acc3
                    if a0 + 4 < A:
                        out[o, a0 + 4] = (rg[so, a0 + 4] + rr) + gamma * acc4
                    a0 += 5
                else:
                    s0 = sgr[a0]
                    s1 = sgr[min(a0 + 1, t)]
                    acc0 = 0.0
                    acc1 = 0.0
                    for j in range(m):
                        b = np.uint64(cr[j] - sc[j])
                        acc0 += w * v[b + np.uint64(s0[j])]
                        acc1 += w * v[b + np.uint64(s1[j])]
                    out[o, a0] = (rg[so, a0] + rr) + gamma * acc0
                    if a0 + 1 < A:
                        out[o, a0 + 1] = (rg[so, a0 + 1] + rr) + gamma * acc1
                    a0 += 2


def _gather_rows(cols: Any, v: Any, w: float, out: Any, ahead: int) -> None:
    # written in the store's row order (sequential stores); _unpermute reads them back in
    # table order. ahead > 0: the values of row r + ahead are prefetched while row r sums
    # (the same sums)
    R, m = cols.shape
    for r in range(R):
        acc = 0.0
        if ahead > 0 and r + ahead < R:
            cp = cols[r + ahead]
            for j in range(m):
                prefetch(v, np.uint64(cp[j]))
                acc += w * v[np.uint64(cols[r, j])]
        else:
            for j in range(m):
                acc += w * v[np.uint64(cols[r, j])]
        out[r] = acc


def _unpermute(acc: Any, inv: Any, x: Any, gamma: float, out: Any) -> None:
    # out[i] = x[i] - gamma acc[inv[i]] (x empty: acc[inv[i]]; inv empty: the identity)
    n = out.shape[0]
    D = _PREFETCH_AHEAD
    if x.size and inv.size:
        for i in range(n):
            if i + D < n:
                prefetch(acc, np.int64(inv[i + D]))
            out[i] = x[i] - gamma * acc[np.int64(inv[i])]
    elif x.size:
        for i in range(n):
            out[i] = x[i] - gamma * acc[i]
    else:
        for i in range(n):
            if i + D < n:
                prefetch(acc, np.int64(inv[i + D]))
            out[i] = acc[np.int64(inv[i])]


def _combine(w: Any, h: Any, V: Any, sign: float) -> None:
    # w[i] += sign sum_a h[a] V[a, i], the sum in order a = 0..J-1 from 0.0
    J, n = V.shape
    for i in range(n):
        acc = 0.0
        for a in range(J):
            acc += h[a] * V[a, i]
        w[i] += sign * acc


def _value_layout(x: Any, pos: Any, S: int, out: Any) -> None:
    N = pos.shape[0]
    for h in range(N):
        p = pos[h] * S
        for s in range(S):
            out[p + s] = x[s * N + h]


def _permute_rows(a: Any, order: Any, done: Any) -> None:
    R, C = a.shape
    tmp = np.empty(C, dtype=a.dtype)
    for i in range(R):
        if done[i] or order[i] == i:
            continue
        for c in range(C):
            tmp[c] = a[i, c]
        j = i
        while True:
            done[j] = True
            src = order[j]
            if src == i:
                for c in range(C):
                    a[j, c] = tmp[c]
                break
            for c in range(C):
                a[j, c] = a[src, c]
            j = src


def _shear(H: Any, btab: Any, coef: Any, c: Any, i: int, j: int, out: Any) -> None:
    N, d = H.shape
    C = c.shape[1]
    k = btab.shape[0] - 1
    y = np.empty(d, dtype=np.int64)
    for r in range(N):
        n = H[r, i]
        for b in range(n + 1):
            w = coef[n, b]
            if w == 0.0:
                continue
            for t in range(d):
                y[t] = H[r, t]
            y[i] -= b
            y[j] += b
            rk = 0
            rem = k
            for t in range(d - 1):
                e = d - 1 - t
                nx = rem - y[t]
                rk += btab[rem, e] - btab[nx, e]
                rem = nx
            for col in range(C):
                out[rk, col] += w * c[r, col]


def _remap(a: Any, pos: Any) -> None:
    for i in range(a.size):
        a[i] = pos[a[i]]


def _global_weights(P_g: Any, V: Any, out: Any) -> None:
    S, A, S2 = P_g.shape
    N = V.shape[1]
    for s in range(S):
        for a in range(A):
            for x in range(N):
                acc = 0.0
                for b in range(S2):
                    acc += P_g[s, a, b] * V[b, x]
                out[s, x, a] = acc


def _expect_all_eg(nxt: Any, W: Any, w: float, out: Any) -> None:
    # shared next local states: five actions per pass over a row's samples (lanes past the
    # last action repeat it and are not written; independent sums, each in order
    # j = 0..m-1: the same numbers)
    S, N, E, m = nxt.shape
    A = W.shape[2]
    for s in range(S):
        for x in range(N):
            t = A - 1
            if E > 1:  # one next local state per action (crn="none"): one action at a time
                for a in range(A):
                    acc = 0.0
                    for j in range(m):
                        acc += w * W[s, nxt[s, x, a, j], a]
                    out[s, x, a] = acc
            else:
                nr = nxt[s, x, 0]
                Ws = W[s]
                a0 = 0
                while a0 < A:
                    l0 = min(a0, t)
                    l1 = min(a0 + 1, t)
                    l2 = min(a0 + 2, t)
                    l3 = min(a0 + 3, t)
                    l4 = min(a0 + 4, t)
                    acc0 = 0.0
                    acc1 = 0.0
                    acc2 = 0.0
                    acc3 = 0.0
                    acc4 = 0.0
                    for j in range(m):
                        b = np.uint64(nr[j])
                        acc0 += w * Ws[b, l0]
                        acc1 += w * Ws[b, l1]
                        acc2 += w * Ws[b, l2]
                        acc3 += w * Ws[b, l3]
                        acc4 += w * Ws[b, l4]
                    out[s, x, a0] = acc0
                    if a0 + 1 < A:
                        out[s, x, a0 + 1] = acc1
                    if a0 + 2 < A:
                        out[s, x, a0 + 2] = acc2
                    if a0 + 3 < A:
                        out[s, x, a0 + 3] = acc3
                    if a0 + 4 < A:
                        out[s, x, a0 + 4] = acc4
                    a0 += 5


def _policy_matvec_eg(nxt: Any, W: Any, actions: Any, w: float, out: Any) -> None:
    S, N, E, m = nxt.shape
    for s in range(S):
        for x in range(N):
            a = actions[s, x]
            e = a if E > 1 else 0
            acc = 0.0
            for j in range(m):
                acc += w * W[s, nxt[s, x, e, j], a]
            out[s * N + x] = acc


# row-parallel variants (``threads > 1``): every output row is computed by the same
# operations in the same order as above, only the rows are spread over threads. They are
# separate Python functions on purpose: Numba's on-disk cache (``cache=True``) keys a
# compiled kernel by the function's bytecode and signature, not by ``parallel=``
# (numba.core.caching.Cache._index_key; numba issue #6845), so compiling one function
# both ways would let the serial and the parallel build overwrite each other's cache entry.
prange = range  # replaced by numba.prange when a parallel kernel is compiled


def _expect_all_par(nxt: Any, sg: Any, VT: Any, w: float, out: Any) -> None:
    S, N, E, m = nxt.shape
    A = sg.shape[2]
    for r in prange(S * N):
        s = r // N
        x = r - s * N
        for a in range(A):
            e = a if E > 1 else 0
            acc = 0.0
            for j in range(m):
                acc += w * VT[nxt[s, x, e, j], sg[s, x, a, j]]
            out[s, x, a] = acc


def _policy_matvec_par(nxt: Any, sg: Any, actions: Any, VT: Any, w: float, out: Any) -> None:
    S, N, E, m = nxt.shape
    for r in prange(S * N):
        s = r // N
        x = r - s * N
        a = actions[s, x]
        e = a if E > 1 else 0
        acc = 0.0
        for j in range(m):
            acc += w * VT[nxt[s, x, e, j], sg[s, x, a, j]]
        out[r] = acc


def _backup_cols_par(cols: Any, sg: Any, actions: Any, v: Any, w: float, order: Any,
                     rg: Any, rl: Any, gamma: float, out: Any) -> None:
    S, N, A, m = sg.shape
    D = _PREFETCH_OUT_ROWS
    for r in prange(S * N):
        s = r // N
        x = r - s * N
        o = np.int64(order[r]) if order.size else np.int64(r)
        if order.size and r + D < S * N:
            ow = np.int64(order[r + D]) * A
            prefetch_write(out, ow)
            prefetch_write(out, ow + A - 1)
        so = o // N
        cr = cols[r]
        sgr = sg[s, x]
        sc = sgr[actions[s, x]]
        rr = rl[r]
        t = A - 1
        a0 = 0
        while a0 < A:
            if A - a0 >= 3:
                s0 = sgr[min(a0, t)]
                s1 = sgr[min(a0 + 1, t)]
                s2 = sgr[min(a0 + 2, t)]
                s3 = sgr[min(a0 + 3, t)]
                s4 = sgr[min(a0 + 4, t)]
                acc0 = 0.0
                acc1 = 0.0
                acc2 = 0.0
                acc3 = 0.0
                acc4 = 0.0
                for j in range(m):
                    b = np.uint64(cr[j] - sc[j])
                    acc0 += w * v[b + np.uint64(s0[j])]
                    acc1 += w * v[b + np.uint64(s1[j])]
                    acc2 += w * v[b + np.uint64(s2[j])]
                    acc3 += w * v[b + np.uint64(s3[j])]
                    acc4 += w * v[b + np.uint64(s4[j])]
                out[o, a0] = (rg[so, a0] + rr) + gamma * acc0
                out[o, a0 + 1] = (rg[so, a0 + 1] + rr) + gamma * acc1
                out[o, a0 + 2] = (rg[so, a0 + 2] + rr) + gamma * acc2
                if a0 + 3 < A:
                    out[o, a0 + 3] = (rg[so, a0 + 3] + rr) + gamma * acc3
                if a0 + 4 < A:
                    out[o, a0 + 4] = (rg[so, a0 + 4] + rr) + gamma * acc4
                a0 += 5
            else:
                s0 = sgr[a0]
                s1 = sgr[min(a0 + 1, t)]
                acc0 = 0.0
                acc1 = 0.0
                for j in range(m):
                    b = np.uint64(cr[j] - sc[j])
                    acc0 += w * v[b + np.uint64(s0[j])]
                    acc1 += w * v[b + np.uint64(s1[j])]
                out[o, a0] = (rg[so, a0] + rr) + gamma * acc0
                if a0 + 1 < A:
                    out[o, a0 + 1] = (rg[so, a0 + 1] + rr) + gamma * acc1
                a0 += 2


def _gather_rows_par(cols: Any, v: Any, w: float, out: Any, ahead: int) -> None:
    R, m = cols.shape
    for r in prange(R):
        acc = 0.0
        if ahead > 0 and r + ahead < R:
            cp = cols[r + ahead]
            for j in range(m):
                prefetch(v, np.uint64(cp[j]))
                acc += w * v[np.uint64(cols[r, j])]
        else:
            for j in range(m):
                acc += w * v[np.uint64(cols[r, j])]
        out[r] = acc


def _unpermute_par(acc: Any, inv: Any, x: Any, gamma: float, out: Any) -> None:
    n = out.shape[0]
    D = _PREFETCH_AHEAD
    if x.size and inv.size:
        for i in prange(n):
            if i + D < n:
                prefetch(acc, np.int64(inv[i + D]))
            out[i] = x[i] - gamma * acc[np.int64(inv[i])]
    elif x.size:
        for i in prange(n):
            out[i] = x[i] - gamma * acc[i]
    else:
        for i in prange(n):
            if i + D < n:
                prefetch(acc, np.int64(inv[i + D]))
            out[i] = acc[np.int64(inv[i])]


def _combine_par(w: Any, h: Any, V: Any, sign: float) -> None:
    J, n = V.shape
    for i in prange(n):
        acc = 0.0
        for a in range(J):
            acc += h[a] * V[a, i]
        w[i] += sign * acc


def _value_layout_par(x: Any, pos: Any, S: int, out: Any) -> None:
    N = pos.shape[0]
    for h in prange(N):
        p = pos[h] * S
        for s in range(S):
            out[p + s] = x[s * N + h]


def _pool_ranks_par(flat_p: Any, starts: Any, m: int, k: int, bits: int, cols: Any,
                    rows: Any, pos: Any, out: Any) -> None:
    N, d = starts.shape
    mask = np.int64((1 << bits) - 1)
    D = _PREFETCH_POOL_AHEAD
    for h in prange(N):
        if h + D < N:
            for x in range(d):
                for c in range(0, m, _WINDOW_STRIDE):
                    prefetch(flat_p, np.int64(starts[h + D, x]) + c)
        o = rows[h]
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
            out[o, j] = pos[r]


def _expect_all_eg_par(nxt: Any, W: Any, w: float, out: Any) -> None:
    S, N, E, m = nxt.shape
    A = W.shape[2]
    for r in prange(S * N):
        s = r // N
        x = r - s * N
        t = A - 1
        if E > 1:  # one next local state per action (crn="none"): one action at a time
            for a in range(A):
                acc = 0.0
                for j in range(m):
                    acc += w * W[s, nxt[s, x, a, j], a]
                out[s, x, a] = acc
        else:
            nr = nxt[s, x, 0]
            Ws = W[s]
            a0 = 0
            while a0 < A:
                l0 = min(a0, t)
                l1 = min(a0 + 1, t)
                l2 = min(a0 + 2, t)
                l3 = min(a0 + 3, t)
                l4 = min(a0 + 4, t)
                acc0 = 0.0
                acc1 = 0.0
                acc2 = 0.0
                acc3 = 0.0
                acc4 = 0.0
                for j in range(m):
                    b = np.uint64(nr[j])
                    acc0 += w * Ws[b, l0]
                    acc1 += w * Ws[b, l1]
                    acc2 += w * Ws[b, l2]
                    acc3 += w * Ws[b, l3]
                    acc4 += w * Ws[b, l4]
                out[s, x, a0] = acc0
                if a0 + 1 < A:
                    out[s, x, a0 + 1] = acc1
                if a0 + 2 < A:
                    out[s, x, a0 + 2] = acc2
                if a0 + 3 < A:
                    out[s, x, a0 + 3] = acc3
                if a0 + 4 < A:
                    out[s, x, a0 + 4] = acc4
                a0 += 5


def _policy_matvec_eg_par(nxt: Any, W: Any, actions: Any, w: float, out: Any) -> None:
    S, N, E, m = nxt.shape
    for r in prange(S * N):
        s = r // N
        x = r - s * N
        a = actions[s, x]
        e = a if E > 1 else 0
        acc = 0.0
        for j in range(m):
            acc += w * W[s, nxt[s, x, e, j], a]
        out[r] = acc


def _categorical(u: Any, thr: Any, out: Any) -> None:
    # thresholds outer, columns inner: the comparisons of one row vectorize
    R, C = u.shape
    T = thr.shape[0]
    y = np.empty(C, dtype=np.int64)
    for i in range(R):
        for j in range(C):
            y[j] = 0
        for t in range(T):
            th = thr[t]
            for j in range(C):
                y[j] += np.int64(u[i, j]) >= th
        for j in range(C):
            out[i, j] = y[j]


def _stream_sums(u: Any, thr: Any, unit: Any, out: Any) -> None:
    # _categorical's rule row by row (thresholds outer, columns inner), then the sums
    R, P = u.shape
    T = thr.shape[0]
    y = np.empty(P, dtype=np.int64)
    for c in range(R):
        for p in range(P):
            y[p] = 0
        for t in range(T):
            th = thr[t]
            for p in range(P):
                y[p] += np.int64(u[c, p]) >= th
        for p in range(P):
            out[c + 1, p] = out[c, p] + unit[y[p]]


def _pool_ranks(flat_p: Any, starts: Any, m: int, k: int, bits: int, cols: Any,
                rows: Any, pos: Any, out: Any) -> None:
    N, d = starts.shape
    mask = np.int64((1 << bits) - 1)
    D = _PREFETCH_POOL_AHEAD
    for h in range(N):
        if h + D < N:
            for x in range(d):
                for c in range(0, m, _WINDOW_STRIDE):
                    prefetch(flat_p, np.int64(starts[h + D, x]) + c)
        o = rows[h]
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
            out[o, j] = pos[r]


def _max_argmax(q: Any, best: Any, arg: Any) -> None:
    R, A = q.shape
    for r in range(R):
        b = q[r, 0]
        i = 0
        if not np.isnan(b):
            for a in range(1, A):
                v = q[r, a]
                if np.isnan(v):  # NumPy: the first NaN is the maximum
                    b = v
                    i = a
                    break
                if v > b:
                    b = v
                    i = a
        best[r] = b
        arg[r] = i


def max_argmax(Q: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
    """``(Q.max(axis=-1), Q.argmax(axis=-1))`` in one pass (the same numbers: the first
    maximizer, NaN first as NumPy has it; a zero maximum keeps the sign of the first zero,
    where NumPy's SIMD reductions may return either), about 15x faster than NumPy's
    reductions over a short last axis: policy iteration's greedy step (SPEC 4). NumPy's
    without Numba."""
    q = np.asarray(Q, dtype=np.float64)
    if not HAVE_NUMBA or q.ndim == 0 or q.shape[-1] == 0:
        return q.max(axis=-1), np.asarray(q.argmax(axis=-1), dtype=np.int64)
    # C-ordered and writable: one compiled specialisation (Numba types read-only apart)
    q2 = np.require(q.reshape(-1, q.shape[-1]), requirements=["C", "W"])
    best = np.empty(q2.shape[0])
    arg = np.empty(q2.shape[0], dtype=np.int64)
    _jit("max_argmax")(q2, best, arg)
    return best.reshape(q.shape[:-1]), arg.reshape(q.shape[:-1])


def _max_abs(a: Any) -> float:
    best = 0.0
    for i in range(a.size):
        d = abs(a[i])
        if np.isnan(d):
            return d
        best = d if d > best else best
    return best


def max_abs(a: FloatArray) -> float:
    """:func:`altmarl.planning.sup_norm` (the sup norm of GMRES's residuals, SPEC 4) in one
    pass without the temporary: the same number (NaN when ``a`` holds one). ``sup_norm``
    itself without Numba, for an empty array or other dtypes."""
    x = np.asarray(a)
    if not HAVE_NUMBA or x.size == 0 or x.dtype != np.float64:
        return sup_norm(x)
    return float(_jit("max_abs")(np.require(x.reshape(-1), requirements=["C", "W"])))


def _max_abs_diff(a: Any, b: Any) -> float:
    best = 0.0
    for i in range(a.size):
        d = abs(a[i] - b[i])
        if np.isnan(d):
            return d
        if d > best:
            best = d
    return best


def max_abs_diff(a: FloatArray, b: FloatArray) -> float:
    """``float(np.abs(a - b).max())`` (the sup-norm distance of value iteration's stopping
    test, SPEC 4) in one pass without the two table-sized temporaries; for float64 inputs
    the same number (a maximum does not depend on the order; NaN propagates as in NumPy;
    other dtypes are converted to float64 first). NumPy's without Numba or for arrays of
    different shapes or none."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if not HAVE_NUMBA or x.shape != y.shape or x.size == 0:
        return float(np.abs(x - y).max())
    return float(_jit("max_abs_diff")(
        np.require(x.reshape(-1), requirements=["C", "W"]),
        np.require(y.reshape(-1), requirements=["C", "W"])))


#: vectors from this length on take :func:`combine_rows` (NumPy's ``einsum`` for
#: ``"i,in->n"`` sums in the same order there; at length 1 it reduces along ``i``)
COMBINE_MIN = 1 << 12


def combine_rows(w: FloatArray, h: FloatArray, V: FloatArray, sign: float = -1.0,
                 threads: int | None = 1) -> None:
    """``w += sign * np.einsum("i,in->n", h, V)`` in place (``sign`` is ``+1`` or ``-1``,
    exact), the same numbers: from :data:`COMBINE_MIN` entries on in one kernel pass
    without the temporary, each ``w[i]`` summing its ``J`` terms in order from ``0.0`` as
    ``einsum`` does there (GMRES's Gram-Schmidt updates, SPEC 4; ``threads > 1`` splits
    ``i``, the same numbers); shorter vectors with ``einsum`` itself."""
    if w.size < COMBINE_MIN or not HAVE_NUMBA:
        einsum_combine(w, h, V, sign)
        return
    _product("combine", threads)(w, np.ascontiguousarray(h, dtype=np.float64),
                                 np.ascontiguousarray(V), float(sign))


#: sampled operators below this many stored samples per action (``|S_g| N m``) run on one
#: thread when ``threads`` is left to the default: there a thread hand-off per product
#: costs more than the second core gains (warehouse, ``m = 30``: ``k <= 17``; G-LEARN at
#: ``k = 10`` took 22 ms on one thread against 29 ms on two)
PARALLEL_MIN_SAMPLES = 1 << 20


def operator_threads(threads: int | None, samples_per_action: int) -> int | None:
    """The ``threads`` a sampled operator of ``|S_g| N m = samples_per_action`` uses:
    ``threads`` when given; for the default ``None``, 1 below
    :data:`PARALLEL_MIN_SAMPLES`, else ``None`` (:func:`altmarl.threads.default_threads`
    at each product and draw). Threads never change the numbers."""
    if threads is None and samples_per_action < PARALLEL_MIN_SAMPLES:
        return 1
    return threads


def use_fused(samples_per_action: int) -> bool:
    """Whether an operator with ``|S_g| N m = samples_per_action`` uses the fused kernels:
    Numba installed and at least :data:`FUSED_MIN_SAMPLES`, or at least
    :data:`FUSED_WARM_MIN_SAMPLES` once the kernels are loaded (:func:`loaded`)."""
    if not HAVE_NUMBA:
        return False
    return samples_per_action >= FUSED_MIN_SAMPLES or (
        samples_per_action >= min(FUSED_WARM_MIN_SAMPLES, FUSED_MIN_SAMPLES) and loaded())


def loaded() -> bool:
    """Whether the products' kernels are compiled or loaded in this process."""
    return _compiled.cache_info().currsize > 0


def warm_up(threads: int | None = None) -> float:
    """Compile (or load from Numba's on-disk cache) every kernel now, on tiny inputs, so
    that later G-LEARN calls of any size from :data:`FUSED_WARM_MIN_SAMPLES` samples per
    action use them; returns the seconds taken (``0`` without Numba). About 0.5 s once per
    process from Numba's on-disk cache (the first compile on a machine takes several
    seconds); nothing is computed differently. ``threads > 1`` also loads the row-parallel
    kernels (G-LEARN's ``threads`` option); ``None``, like G-LEARN's default,
    :func:`altmarl.threads.default_threads`."""
    import time

    t = time.perf_counter()
    if not HAVE_NUMBA:
        return 0.0
    threads = resolve_threads(threads)
    nxt = np.zeros((1, 2, 1, 2), dtype=np.int32)
    sg = np.zeros((1, 2, 2, 2), dtype=np.uint8)
    acts = np.zeros((1, 2), dtype=np.int64)
    for nt in sorted({1, threads}):
        expect_all(nxt, sg, np.zeros((1, 2)), 2, nt)
        policy_matvec(nxt, sg, acts, np.zeros(2), 2, nt)
        cols = policy_columns(nxt, sg, acts)
        gather_mean(cols, np.zeros(2), 1, 2, nt)
        expect_all_cols(cols, sg, acts, np.zeros((1, 2)), 2, nt)
    recolumn(cols, sg, acts, acts)
    order = np.array([1, 0], dtype=np.int32)
    for nt in sorted({1, threads}):
        gather_mean(cols, np.zeros(2), 1, 2, nt, order, order)
        gather_system(cols, np.zeros(2), 1, 2, 0.5, nt, order, order)
        expect_all_cols(cols, sg, acts, np.zeros((1, 2)), 2, nt, order, order)
        backup_cols(cols, sg, acts, np.zeros((1, 2)), 2, np.zeros((1, 2)), np.zeros((1, 2)),
                    0.5, nt, order, order)
    permute_rows(cols, order)
    permute_rows(sg.reshape(2, -1), order)
    remap(cols, np.zeros(1, dtype=np.int32))
    morton_codes(np.zeros((MORTON_KERNEL_MIN, 1), dtype=np.int64))  # its Numba pass
    max_argmax(np.zeros((2, 2)))
    greedy_kernels()  # the greedy policy's one-pass kernels (altmarl.policy_kernels)
    max_abs_diff(np.zeros(2), np.ones(2))
    max_abs(np.zeros(2))
    for nt in sorted({1, threads}):
        _product("combine", nt)(np.zeros(2), np.zeros(1), np.zeros((1, 2)), -1.0)
    P_g = np.full((1, 2, 1), 1.0)
    P_g.flags.writeable = False  # games hold read-only tables
    W = global_weights(P_g, np.zeros((1, 2)))
    for nt in sorted({1, threads}):
        expect_all_exact_global(nxt, W, 2, nt)
        policy_matvec_exact_global(nxt, W, acts, 2, nt)
    u = np.zeros((1, 2), dtype=np.uint32)
    # the outputs are strided views in G-LEARN (``sg[s, :, a, :]``, ``eta[s, :, 0, :]``):
    # compile those layouts, not only the contiguous ones
    for out8 in (np.zeros((1, 2, 2), dtype=np.uint8)[:, :, 0], np.zeros((1, 2), dtype=np.uint8)):
        categorical_into(u, [1], out8)
    stream_sums_into(u, [1], np.zeros(2, dtype=np.int64), np.zeros((2, 2), dtype=np.int64))
    for nt in sorted({1, threads}):
        for out32 in (np.zeros((2, 2, 2), dtype=np.int32)[:, :, 0],
                      np.zeros((2, 2), dtype=np.int32)):
            pool_ranks(np.zeros(4, dtype=np.int64), np.zeros((1, 1), dtype=np.int32), 1, 1,
                       1, np.ones((1, 2), dtype=np.int64), out32, nt)
    return time.perf_counter() - t


def categorical_into(u: NDArray[np.uint32], thr: list[int], out: NDArray[Any]) -> None:
    """``out[i, j] = #{t : u[i, j] >= thr_t}`` (thresholds ``>= 2^32`` never count): the
    category of each 32-bit uniform, as :func:`altmarl.glearn.draws` computes it."""
    t = np.array([v for v in thr if v < 2**32], dtype=np.int64)
    _jit("categorical")(u, t, out)


def stream_sums_into(u: NDArray[np.uint32], thr: list[int], unit: NDArray[np.int64],
                     out: NDArray[np.int64]) -> None:
    """``out[c + 1, p] = out[c, p] + unit[y]`` with ``y`` the category of ``u[c, p]``
    (:func:`categorical_into`'s rule): the packed running histograms of the streams of
    ``crn="pool"``, as :func:`altmarl.glearn.draws.stream_pools` computes them row by row."""
    t = np.array([v for v in thr if v < 2**32], dtype=np.int64)
    _jit("streams")(u, t, unit, out)  # categories and sums in one pass, no temporary


def pool_ranks(flat_p: NDArray[np.int64], starts: NDArray[np.int32], m: int, k: int,
               bits: int, cols: NDArray[np.int64], out: NDArray[np.int32],
               threads: int | None = 1, rows: NDArray[np.int32] | None = None,
               pos: NDArray[np.int32] | None = None) -> None:
    """``out[rows[h], j] = pos[r]`` with ``r`` the rank in ``H_k`` of the packed histogram
    ``sum_x flat_p[starts[h, x] + j]`` (``bits`` per bin; ``cols[e, r] = C(r + e, e)``;
    ``rows`` and ``pos`` default the identity): the window sums and ranks of
    ``crn="pool"`` sampling in one pass, written straight into a laid-out store
    (:class:`altmarl.glearn.layout.StoreLayout`: its rows and value positions) when given
    (``threads > 1``: the rows ``h`` spread over threads; integers, so the same numbers)."""
    if rows is None:
        rows = np.arange(starts.shape[0], dtype=np.int32)
    if pos is None:
        pos = np.arange(int(cols[cols.shape[0] - 1, k]), dtype=np.int32)
    _product("pool", threads)(flat_p, starts, m, k, bits, cols, rows, pos, out)


_PARALLEL = {"expect": _expect_all_par, "policy": _policy_matvec_par,
             "gather": _gather_rows_par, "unpermute": _unpermute_par,
             "backup_cols": _backup_cols_par,
             "expect_eg": _expect_all_eg_par, "policy_eg": _policy_matvec_eg_par,
             "layout": _value_layout_par, "pool": _pool_ranks_par, "combine": _combine_par}


#: serializes the first load of each kernel (threads drawing streams at once would each
#: compile or load it)
_JIT_LOCK = threading.Lock()


def _jit(name: str, parallel: bool = False) -> Any:
    """The Numba-compiled kernel ``name`` (compiled once per process, cached on disk);
    ``parallel``: its row-parallel variant (``prange`` over the output rows). Thread-safe."""
    with _JIT_LOCK:
        return _compiled(name, parallel)


@cache
def _compiled(name: str, parallel: bool) -> Any:
    import numba

    global prefetch, prefetch_write
    prefetch = _prefetch_intrinsic()
    prefetch_write = _prefetch_intrinsic(True)
    if parallel:
        global prange
        prange = numba.prange
        return numba.njit(cache=True, nogil=True, boundscheck=False,
                          parallel=True)(_PARALLEL[name])
    fn = {"expect": _expect_all, "policy": _policy_matvec, "categorical": _categorical,
          "pool": _pool_ranks, "weights": _global_weights, "expect_eg": _expect_all_eg,
          "policy_eg": _policy_matvec_eg, "streams": _stream_sums,
          "columns": _policy_columns, "gather": _gather_rows, "recolumn": _recolumn,
          "layout": _value_layout,
          "permute": _permute_rows, "remap": _remap, "shear": _shear,
          "max_argmax": _max_argmax, "backup_cols": _backup_cols,
          "max_abs_diff": _max_abs_diff, "max_abs": _max_abs, "unpermute": _unpermute,
          "combine": _combine}[name]
    return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)


def _product(name: str, threads: int | None) -> Any:
    """The product kernel ``name`` for ``threads`` threads (the serial one for 1; ``None``:
    :func:`altmarl.threads.default_threads` now)."""
    threads = resolve_threads(threads)
    if threads <= 1:
        return _jit(name)
    import numba

    numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    return _jit(name, True)


def expect_all(nxt: NDArray[np.int32], sg: NDArray[Any], V: FloatArray, m: int,
               threads: int | None = 1) -> FloatArray:
    """``out[s, x, a] = sum_j (1/m) V[sg[s, x, a, j], nxt[s, x, e, j]]`` (``e = a`` when
    ``nxt`` has one column per action, else ``0``), summed in order ``j = 0..m-1``."""
    S, N = V.shape
    out = np.empty((S, N, sg.shape[2]))
    VT = np.ascontiguousarray(V.T, dtype=np.float64)
    _product("expect", threads)(nxt, sg, VT, 1.0 / m, out)
    return out


def policy_matvec(nxt: NDArray[np.int32], sg: NDArray[Any], actions: NDArray[np.int64],
                  x: FloatArray, m: int, threads: int | None = 1) -> FloatArray:
    """``out[s N + x] = sum_j (1/m) x[sg[s, x, a, j] N + nxt[s, x, e, j]]`` with
    ``a = actions[s, x]`` (the policy's transition matrix times ``x``, flat vectors)."""
    out = np.empty(x.size)
    S, N = nxt.shape[:2]
    VT = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(S, N).T)
    _product("policy", threads)(nxt, sg, actions, VT, 1.0 / m, out)
    return out


def policy_columns(nxt: NDArray[np.int32], sg: NDArray[Any], actions: NDArray[np.int64],
                   out: NDArray[Any] | None = None) -> NDArray[Any]:
    """``cols[s N + x, j] = nxt[s, x, e, j] |S_g| + sg[s, x, a, j]`` with ``a = actions[s,
    x]``: the policy's sampled next states as flat indices into ``V`` laid out ``(N,
    |S_g|)`` (int32 while ``|S_g| N < 2^31``), for :func:`gather_mean`. One pass over the
    chosen action's samples; written into ``out`` when given (shape ``(|S_g| N, m)``)."""
    S, N, _, m = nxt.shape
    if out is None:
        out = np.empty((S * N, m), dtype=column_dtype(S * N))
    _jit("columns")(nxt, sg, actions, out)
    return out


def recolumn(cols: NDArray[Any], sg: NDArray[Any], old: NDArray[np.int64],
             new: NDArray[np.int64]) -> None:
    """Rewrite, in place, the :func:`policy_columns` of the policy ``old`` into those of
    ``new`` (only the rows whose action changed: ``cols += sg[.., new, :] - sg[.., old,
    :]``). Needs one action per row in ``nxt`` (``E = 1``)."""
    _jit("recolumn")(cols, sg, old, new)


def expect_all_cols(cols: NDArray[Any], sg: NDArray[Any], actions: NDArray[np.int64],
                    V: FloatArray, m: int, threads: int | None = 1,
                    order: NDArray[np.int32] | None = None,
                    pos: NDArray[np.int32] | None = None) -> FloatArray:
    """:func:`expect_all` (``E = 1``) read from the :func:`policy_columns` ``cols`` of the
    policy ``actions`` instead of ``nxt``: the index ``nxt |S_g| + sg[a]`` is ``cols -
    sg[actions] + sg[a]``, the same index, so the same numbers in the same order. Lets an
    operator keep one int32 per sample (the columns) instead of ``nxt`` and the columns.

    ``order`` and ``pos`` (a :class:`altmarl.glearn.layout.StoreLayout`): the rows of
    ``cols``, ``sg`` and ``actions`` are stored in processing order (row ``r`` is the
    table's row ``order[r]``, where its result is written) and the columns index ``V``
    laid out by :func:`value_layout` with ``pos``; the same sums.

    Computed by :func:`backup_cols` with zero rewards and ``gamma = 1``: ``(0 + 0) + 1 E``
    is ``E`` exactly (a sum that starts at ``+0.0`` is never ``-0.0``)."""
    S, N = V.shape
    return backup_cols(cols, sg, actions, V, m, np.zeros((S, sg.shape[2])), np.zeros((S, N)),
                       1.0, threads, order, pos, r_loc_rows=np.zeros(S * N))


def backup_cols(cols: NDArray[Any], sg: NDArray[Any], actions: NDArray[np.int64],
                V: FloatArray, m: int, r_g: FloatArray, r_loc: FloatArray, gamma: float,
                threads: int | None = 1, order: NDArray[np.int32] | None = None,
                pos: NDArray[np.int32] | None = None,
                r_loc_rows: FloatArray | None = None) -> FloatArray:
    """The Bellman backup ``(T Q)(s, x, a) = (r_g[s, a] + r_loc[s, x]) + gamma E`` with
    ``E`` :func:`expect_all_cols` (SPEC 4), in one pass: the same operations in the same
    order as :func:`altmarl.glearn.operator.backup` on ``expect_all_cols``, hence the same
    numbers, without its three table-sized temporaries. ``cols`` must be the
    :func:`policy_columns` of ``actions`` on this ``sg`` (the kernel does not check its
    indices). ``r_loc_rows``: ``r_loc`` flat in the store's row order (``r_loc.ravel()[order]``,
    computed when not given), so the kernel reads it sequentially."""
    S, N = V.shape
    out = np.empty((S, N, sg.shape[2]))
    vt = value_layout(np.asarray(V, dtype=np.float64).reshape(-1), S, pos, threads)
    if r_loc_rows is None:
        flat = np.asarray(r_loc, dtype=np.float64).reshape(-1)
        r_loc_rows = flat if order is None else flat[order]
    _product("backup_cols", threads)(cols, sg, actions, vt, 1.0 / m,
                                     _IDENTITY if order is None else order,
                                     _writable(r_g), _writable(r_loc_rows),
                                     float(gamma), out.reshape(S * N, -1))
    return out


def _writable(a: ArrayLike) -> FloatArray:
    """``a`` as a C-ordered, writable float64 array (copied only when it is not): Numba
    compiles a read-only array as a separate type, so a read-only reward table would load
    a second specialisation (~4 ms) on a process's first G-LEARN call."""
    return np.require(np.asarray(a, dtype=np.float64), requirements=["C", "W"])


def column_dtype(n: int) -> Any:
    """The index type of :func:`policy_columns` for ``n = |S_g| N`` values."""
    return np.int32 if n < 2**31 else np.int64


def _gather_in_rows(cols: NDArray[Any], x: FloatArray, n_sg: int, m: int,
                    threads: int | None, pos: NDArray[np.int32] | None) -> FloatArray:
    """The ``m``-term means of the rows of ``cols`` in the store's row order."""
    acc = np.empty(cols.shape[0])
    vt = value_layout(x, n_sg, pos, threads)
    ahead = PREFETCH_ROWS if vt.nbytes >= PREFETCH_MIN_BYTES else 0
    _product("gather", threads)(cols, vt, 1.0 / m, acc, ahead)
    return acc


def _row_inverse(order: NDArray[np.int32] | None,
                 inverse: NDArray[np.int32] | None) -> NDArray[np.int32]:
    if order is None:
        return _IDENTITY
    return inverse_order(order) if inverse is None else inverse


def gather_mean(cols: NDArray[Any], x: FloatArray, n_sg: int, m: int,
                threads: int | None = 1, order: NDArray[np.int32] | None = None,
                pos: NDArray[np.int32] | None = None,
                inverse: NDArray[np.int32] | None = None) -> FloatArray:
    """``out[s N + x] = sum_j (1/m) V[cols[s N + x, j]]`` with ``V = x`` (flat, in the
    solver's ``(|S_g|, N)`` order) laid out ``(N, |S_g|)``, summed in order ``j = 0..m-1``:
    :func:`policy_matvec` on the columns of :func:`policy_columns` (the same numbers),
    reading one contiguous index per sample instead of two arrays. ``order``, ``pos``:
    as in :func:`expect_all_cols` (row ``r`` of ``cols`` is the table's row ``order[r]``);
    ``inverse``: :func:`altmarl.glearn.layout.inverse_order` of ``order`` (computed when
    not given). The means are written in row order and read back through ``inverse``:
    sequential stores instead of a scatter over the table."""
    acc = _gather_in_rows(cols, np.asarray(x, dtype=np.float64), n_sg, m, threads, pos)
    if order is None:
        return acc
    out = np.empty(acc.size)
    _product("unpermute", threads)(acc, _row_inverse(order, inverse), _NO_VALUES, 0.0, out)
    return out


def gather_system(cols: NDArray[Any], x: FloatArray, n_sg: int, m: int, gamma: float,
                  threads: int | None = 1, order: NDArray[np.int32] | None = None,
                  pos: NDArray[np.int32] | None = None,
                  inverse: NDArray[np.int32] | None = None) -> FloatArray:
    """``x - gamma P_pi x`` with ``P_pi x`` :func:`gather_mean` (policy evaluation's system
    ``(I - gamma P_pi)``, SPEC 4): the same operations as ``x - gamma * gather_mean(...)``,
    hence the same numbers, the subtraction fused into the pass that reads the means back
    in table order."""
    xf = np.ascontiguousarray(x, dtype=np.float64)
    acc = _gather_in_rows(cols, xf, n_sg, m, threads, pos)
    out = np.empty(xf.size)
    _product("unpermute", threads)(acc, _row_inverse(order, inverse), xf, float(gamma), out)
    return out


def value_layout(x: FloatArray, n_sg: int, pos: NDArray[np.int32] | None = None,
                 threads: int | None = 1) -> FloatArray:
    """The flat value vector ``x`` (the solver's ``(|S_g|, N)`` order) laid out ``(N,
    |S_g|)`` for the gathers, flat: ``out[pos[h] |S_g| + s] = x[s N + h]`` (``pos=None``:
    ``pos[h] = h``, the transpose; ``threads > 1``: the histograms spread over threads, a
    copy, so the same numbers)."""
    if pos is None:
        return np.ascontiguousarray(x.reshape(n_sg, -1).T).reshape(-1)
    out = np.empty(x.size)
    _product("layout", threads)(x, pos, int(n_sg), out)
    return out


def permute_rows(a: NDArray[Any], order: NDArray[np.int32]) -> None:
    """In place, ``a[r] <- a[order[r]]`` for the rows of the 2-D C-contiguous ``a``
    (``order`` a permutation; follows its cycles: one row of extra memory)."""
    _jit("permute")(a, order, np.zeros(a.shape[0], dtype=np.bool_))


def shear(H: NDArray[np.int64], btab: NDArray[np.int64], coef: FloatArray, c: FloatArray,
          i: int, j: int) -> FloatArray:
    """The coefficients, in the monomial basis ``t^h`` (``h`` the rows of ``H``, rank order
    of ``H_k``), of ``p`` after the substitution ``t_i -> alpha t_i + beta t_j``, with ``p``'s
    coefficients the rows of ``c`` (``(N, C)``, ``C`` polynomials at once) and ``coef[n, b]
    = C(n, b) alpha^(n - b) beta^b``; ``btab`` is :func:`altmarl.histogram.binomial_table`."""
    out = np.zeros_like(c)
    _jit("shear")(H, btab, coef, c, int(i), int(j), out)
    return out


def remap(a: NDArray[np.int32], pos: NDArray[np.int32]) -> None:
    """In place, ``a[i] <- pos[a[i]]`` over the flat C-contiguous ``a``."""
    _jit("remap")(a.reshape(-1), pos)


def global_weights(P_g: FloatArray, V: FloatArray) -> FloatArray:
    """``W[s, x', a] = sum_{s'} P_g[s, a, s'] V[s', x']`` (summed in order ``s' = 0, 1, ...``
    from ``0.0``): the exact expectation over the next global state of ``V(s', x')``, the
    value table of ``exact_global=True``."""
    S, A, _ = P_g.shape
    out = np.empty((S, V.shape[1], A))
    _jit("weights")(np.ascontiguousarray(P_g, dtype=np.float64),
                    np.ascontiguousarray(V, dtype=np.float64), out)
    return out


def expect_all_exact_global(nxt: NDArray[np.int32], W: FloatArray, m: int,
                            threads: int | None = 1) -> FloatArray:
    """``out[s, x, a] = sum_j (1/m) W[s, nxt[s, x, e, j], a]`` (``W`` of
    :func:`global_weights`; ``e = a`` when ``nxt`` has one column per action, else ``0``),
    summed in order ``j = 0..m-1``."""
    S, N = nxt.shape[:2]
    out = np.empty((S, N, W.shape[2]))
    _product("expect_eg", threads)(nxt, W, 1.0 / m, out)
    return out


def policy_matvec_exact_global(nxt: NDArray[np.int32], W: FloatArray,
                               actions: NDArray[np.int64], m: int,
                               threads: int | None = 1) -> FloatArray:
    """``out[s N + x] = sum_j (1/m) W[s, nxt[s, x, e, j], a]`` with ``a = actions[s, x]``
    (the policy's transition matrix times ``V`` under ``exact_global=True``)."""
    S, N = nxt.shape[:2]
    out = np.empty(S * N)
    _product("policy_eg", threads)(nxt, W, actions, 1.0 / m, out)
    return out


__all__ = ["FUSED_MIN_SAMPLES", "HAVE_NUMBA", "categorical_into", "column_dtype",
           "expect_all", "expect_all_cols", "gather_mean", "permute_rows", "policy_columns",
           "recolumn", "remap", "shear", "value_layout",
           "expect_all_exact_global", "global_weights", "policy_matvec",
           "policy_matvec_exact_global", "pool_ranks", "stream_sums_into", "use_fused",
           "loaded", "warm_up", "FUSED_WARM_MIN_SAMPLES", "max_argmax", "max_abs_diff",
           "backup_cols", "gather_system", "combine_rows", "COMBINE_MIN", "max_abs",
           "PARALLEL_MIN_SAMPLES", "operator_threads"]
