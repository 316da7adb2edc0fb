"""G-LEARN (paper Algorithm 22, SPEC 4): the global agent's best response to a fixed ``pi_l``.

The global agent plans in a *surrogate* system of ``k`` local agents. For a state
``(s_g, h)`` (``h in H_k`` a histogram of ``k`` local states) and an action ``a_g``::

    r_k(s_g, h, a_g) = r_g(s_g, a_g) + (1/k) sum_x h[x] sum_a pi_l[x, s_g, a] r_l[x, s_g, a]
    (T_hat Q)(s_g, h, a_g) = r_k(s_g, h, a_g) + gamma (1/m) sum_j max_a' Q(s_g^j, h^j, a')

with ``s_g^j ~ P_g(. | s_g, a_g)`` and ``h^j = sum_x Multinomial(h[x], K[x, s_g, :])``,
``K = game.local_kernel(pi_l)`` (each of the ``k`` agents draws an action from ``pi_l`` and
a next state from ``P_l``). The ``m`` samples are drawn once from ``seed`` and held fixed,
so ``T_hat`` is a ``gamma``-contraction with a unique fixed point ``Q_hat``
(Definition B.10); the returned policy is greedy for it. ``m=None`` replaces the sample
mean by the exact expectation (small ``k`` only).

Entry point: :func:`g_learn` (exported as ``am.g_learn``). :func:`empirical_operator`
builds ``T_hat`` itself (used by tests and by anyone who wants to apply it). Note that
``altmarl.g_learn`` (the attribute) is the *function*; import helpers with
``from altmarl.g_learn import empirical_operator``.

Design choices where SPEC 4 is silent (details in ``docs/g_learn.md``):

* **Common random numbers** (``crn``). Every ``(s_g, h, a_g)`` always gets ``m`` i.i.d.
  draws of ``(s_g', h')`` from the right law. How draws are shared *across* entries:

  - ``"pool"`` (mean-field default): ``h'`` does not depend on ``a_g``, so the ``m``
    next histograms of ``(s_g, h)`` are shared by all ``a_g``. They are assembled bin by
    bin from *streams*: for each ``(s_g, x)`` there are ``P = max(pool_size, m)`` streams,
    each a sequence of ``k`` i.i.d. single-agent moves ``~ K[x, s_g, :]``; the bin-``x``
    part of draw ``j`` of ``(s_g, h)`` is the histogram of the first ``h[x]`` moves of
    stream ``(o[h, x] + j) mod P``, with ``o`` uniform random offsets. The ``m`` draws of
    one entry use ``m`` distinct streams per bin (and different bins use different
    streams), hence are i.i.d. with the exact law ``sum_x Multinomial(h[x], K[x, s_g])``;
    two histograms share randomness only through a common stream of a common bin (chance
    about ``2m / P`` per bin). Cost: ``|S_g| |S_l| k P`` single-agent draws instead of
    ``|S_g| |H_k| m |S_l|`` multinomials.
  - ``"states"``: independent next histograms for every ``(s_g, h)`` (shared across
    ``a_g``). Exact independence across states; ``|S_g| |H_k| m |S_l|`` multinomial draws.
  - ``"none"``: independent draws for every ``(s_g, h, a_g)``, the literal operator.

  The next global states ``s_g^j`` are always drawn independently for every
  ``(s_g, h, a_g, j)`` (32-bit uniform integers against the rounded CDF: each transition
  probability is reproduced within ``2^-32``, zeros exactly).
* **Solvers.** ``"vi"`` is SPEC 4's value iteration from ``Q = 0``, stopped when
  ``||Q_{t+1} - Q_t||_inf <= tol``. ``"pi"`` (default) is inexact policy iteration on the
  *same* operator: policy evaluation solves ``(I - gamma P_pi) V = r_pi`` with GMRES on a
  sparse ``P_pi``; improvement is greedy. Both report the true final residual
  ``||T_hat Q - Q||_inf`` of the returned ``Q`` (one extra backup) and reach the same
  fixed point within ``residual / (1 - gamma)``.
* **Standard parameterization.** ``Q`` over ``(s_g, ordered k-tuple, a_g)``; each agent of
  the tuple moves independently. The returned :class:`~altmarl.policies.GlobalPolicy` acts
  on histograms: its ``q`` is the tuple ``Q`` averaged over the orderings of each
  histogram (online execution draws an unordered ``k``-subset, so every ordering is
  equally likely), and the actions are greedy for that average. With ``m=None`` the tuple
  ``Q`` is permutation invariant and both parameterizations coincide.
* **Ties** in the greedy policy: :func:`altmarl.policies.greedy` — actions within
  ``1e-12`` (relative) of the maximum are tied; ``tie_break="seeded"`` (default) picks one
  uniformly at random with a generator seeded from ``seed``; ``"lowest"`` takes the lowest
  index.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, overload

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from altmarl import planning
from altmarl._random import tie_seed
from altmarl._validate import check_choice, check_int
from altmarl.game import TabularGame
from altmarl.generative.game import GenerativeGame
from altmarl.histogram import enumerate_histograms, num_histograms, num_tuples, rank
from altmarl.policies import GlobalPolicy, LocalPolicy

if TYPE_CHECKING:
    from altmarl.generative.neural import NeuralGlobalPolicy

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

PARAMETERIZATIONS = ("mean-field", "standard")
SOLVERS = ("pi", "vi")
CRN_MODES = ("pool", "states", "none")
TIE_BREAKS = ("seeded", "lowest")

#: default cap on ``|S_g| * N * |A_g| * m`` stored samples (about 6 bytes each: ~3 GB)
MAX_SAMPLES = 5 * 10**8
#: default cap on the ``Q`` table size ``|S_g| * N * |A_g|``
MAX_TABLE = 5 * 10**7
#: default cap on ``|S_g| * |H_k|^2`` for the exact next-histogram matrices (``m=None``)
MAX_EXACT_ENTRIES = 2 * 10**7
#: default pool size per ``(s_g, x, count)`` for ``crn="pool"``
POOL_SIZE = 8192
#: GMRES restart length used by the ``"pi"`` solver
GMRES_RESTART = 20
#: policy evaluation accuracy relative to the current Bellman residual (inexact PI)
FORCING = 0.05

_U32 = float(2**32)
#: histograms with ``|S_l| * bits(k) <= _PACK_LIMIT`` are packed into one int64 when sampling
_PACK_LIMIT = 62


class ConvergenceWarning(UserWarning):
    """G-LEARN stopped at ``max_iter`` before reaching ``tol``."""


# ---------------------------------------------------------------------------
# models of the surrogate: E[V(next) | s_g, state, a_g]
# ---------------------------------------------------------------------------


class _Model(Protocol):
    """What the solvers need from an (empirical or exact) Bellman operator."""

    n_sg: int
    n_states: int
    n_ag: int
    gamma: float
    r_g: FloatArray  # (S_g, A_g)
    r_loc: FloatArray  # (S_g, N)

    def expect(self, V: FloatArray) -> FloatArray:
        """``E[V(s_g', x') | s_g, x, a_g]`` for every ``(s_g, x, a_g)``; ``V`` is ``(S_g, N)``."""
        ...

    def policy_matrix(self, actions: IntArray) -> Callable[[FloatArray], FloatArray]:
        """``x -> P_pi x`` on flat ``(S_g * N,)`` vectors for the policy ``actions``."""
        ...


def _backup(model: _Model, V: FloatArray) -> FloatArray:
    """``(T Q)(s, a) = r_k(s, a) + gamma E[V(s')]`` with ``V = max_a Q`` given."""
    return model.r_g[:, None, :] + model.r_loc[:, :, None] + model.gamma * model.expect(V)


def _policy_reward(model: _Model, actions: IntArray) -> FloatArray:
    """``r_k(s, pi(s))`` as an ``(S_g, N)`` table."""
    rg = model.r_g[np.arange(model.n_sg)[:, None], actions]
    return np.asarray(rg + model.r_loc, dtype=np.float64)


class _SampledModel:
    """Empirical operator from fixed samples.

    ``cols[a][s, x, j]`` (int32; one array per ``a_g``) is the flat index
    ``s_g' * N + x'`` of the ``j``-th sampled next state of ``(s_g = s, x, a_g = a)``.
    ``P_a`` (one CSR matrix per ``a_g`` on ``cols[a]``, all sharing one data array ``1/m``)
    maps ``V`` to ``E_hat[V(next) | s, x, a]``.
    """

    def __init__(self, cols: list[NDArray[np.int32]], r_g: FloatArray, r_loc: FloatArray,
                 gamma: float) -> None:
        self.cols = cols
        self.n_ag = len(cols)
        self.n_sg, self.n_states, self.m = (int(v) for v in cols[0].shape)
        self.r_g = r_g
        self.r_loc = r_loc
        self.gamma = float(gamma)
        rows = self.n_sg * self.n_states
        nnz = rows * self.m
        idx_t = np.int32 if nnz < 2**31 - 1 else np.int64
        self._indptr = np.arange(0, nnz + 1, self.m, dtype=idx_t)
        self._data = np.full(nnz, 1.0 / self.m)
        self._P = [self._csr(cols[a].reshape(-1)) for a in range(self.n_ag)]
        self._sel: NDArray[np.int32] | None = None
        self._sel_actions: IntArray | None = None

    def _csr(self, indices: NDArray[np.int32]) -> sp.csr_matrix:
        rows = self.n_sg * self.n_states
        return sp.csr_matrix((self._data, indices, self._indptr), shape=(rows, rows), copy=False)

    def expect(self, V: FloatArray) -> FloatArray:
        v = np.ascontiguousarray(V, dtype=np.float64).reshape(-1)
        out = np.empty((self.n_sg, self.n_states, self.n_ag))
        for a, P in enumerate(self._P):
            out[:, :, a] = (P @ v).reshape(self.n_sg, self.n_states)
        return out

    def policy_matrix(self, actions: IntArray) -> Callable[[FloatArray], FloatArray]:
        # one reusable (S_g, N, m) buffer; only the rows whose action changed are rewritten
        if self._sel is None:
            self._sel = self.cols[0].copy()
            self._sel_actions = np.zeros((self.n_sg, self.n_states), dtype=np.int64)
        assert self._sel_actions is not None
        changed = actions != self._sel_actions
        if changed.any():
            for a in range(self.n_ag):
                mask = changed & (actions == a)
                if mask.any():
                    self._sel[mask] = self.cols[a][mask]
            self._sel_actions = np.array(actions, dtype=np.int64)
        P = self._csr(self._sel.reshape(-1))
        return lambda x: np.asarray(P @ x)


class _ExactHistModel:
    """Exact operator on histograms: ``D[s][h, h'] = P(h' | h, s_g = s)`` dense."""

    def __init__(self, D: FloatArray, P_g: FloatArray, r_g: FloatArray, r_loc: FloatArray,
                 gamma: float) -> None:
        self.D = D
        self.P_g = P_g
        self.n_sg, self.n_states = int(D.shape[0]), int(D.shape[1])
        self.n_ag = int(P_g.shape[1])
        self.r_g, self.r_loc, self.gamma = r_g, r_loc, float(gamma)

    def _next_local(self, V: FloatArray) -> FloatArray:
        # W[s, h, s'] = sum_h' D[s][h, h'] V[s', h']
        return np.stack([self.D[s] @ V.T for s in range(self.n_sg)])

    def expect(self, V: FloatArray) -> FloatArray:
        W = self._next_local(V)
        return np.einsum("shy,say->sha", W, self.P_g)

    def policy_matrix(self, actions: IntArray) -> Callable[[FloatArray], FloatArray]:
        S, N = self.n_sg, self.n_states
        pg = self.P_g[np.arange(S)[:, None], actions]  # (S, N, S')

        def mv(x: FloatArray) -> FloatArray:
            W = self._next_local(x.reshape(S, N))
            return np.asarray(np.einsum("shy,shy->sh", W, pg).ravel())

        return mv


class _ExactTupleModel:
    """Exact operator on ordered ``k``-tuples: every agent moves independently by ``K``."""

    def __init__(self, K: FloatArray, k: int, P_g: FloatArray, r_g: FloatArray,
                 r_loc: FloatArray, gamma: float) -> None:
        self.K = K  # (S_l, S_g, S_l)
        self.k = int(k)
        self.d = int(K.shape[0])
        self.P_g = P_g
        self.n_sg, self.n_ag = int(P_g.shape[0]), int(P_g.shape[1])
        self.n_states = self.d**self.k
        self.r_g, self.r_loc, self.gamma = r_g, r_loc, float(gamma)

    def _next_local(self, V: FloatArray) -> FloatArray:
        S, d, k = self.n_sg, self.d, self.k
        out = np.empty((S, self.n_states, S))
        for s in range(S):
            X = np.ascontiguousarray(V.T)  # (N, S') ; tuple axes lead
            for i in range(k):
                X = X.reshape(d**i, d, -1)
                X = np.einsum("xy,lyr->lxr", self.K[:, s, :], X)
            out[s] = X.reshape(self.n_states, S)
        return out

    def expect(self, V: FloatArray) -> FloatArray:
        return np.einsum("sty,say->sta", self._next_local(V), self.P_g)

    def policy_matrix(self, actions: IntArray) -> Callable[[FloatArray], FloatArray]:
        S, N = self.n_sg, self.n_states
        pg = self.P_g[np.arange(S)[:, None], actions]

        def mv(x: FloatArray) -> FloatArray:
            W = self._next_local(x.reshape(S, N))
            return np.asarray(np.einsum("sty,sty->st", W, pg).ravel())

        return mv


# ---------------------------------------------------------------------------
# sampling (all draws flow from one SeedSequence)
# ---------------------------------------------------------------------------


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


def _small_int_dtype(n: int) -> Any:
    return np.int8 if n <= 127 else (np.int16 if n <= 32767 else np.int32)


def _sample_global(eta: NDArray[np.int32], P_g: FloatArray,
                   ss: np.random.SeedSequence) -> list[NDArray[np.int32]]:
    """Combine the next local states ``eta[s, x, e, j]`` with next global states
    ``s_g' ~ P_g(. | s, a)`` drawn i.i.d. for every ``(s, x, a, j)``: returns
    ``cols[a][s, x, j] = s_g' * N + eta[s, x, e, j]`` (``e = a`` or ``0`` when shared)."""
    S, A, _ = P_g.shape
    _, N, n_e, m = eta.shape
    children = ss.spawn(S * A)
    cols = [np.empty((S, N, m), dtype=np.int32) for _ in range(A)]
    for s in range(S):
        for a in range(A):
            rng = np.random.default_rng(children[s * A + a])
            u = rng.integers(0, 2**32, size=(N, m), dtype=np.uint32)
            out = cols[a][s]
            out[...] = _categorical_u32(u, _thresholds(P_g[s, a]), np.int32)
            out *= np.int32(N)
            out += eta[s, :, a if n_e > 1 else 0, :]
    return cols


def _histograms(k: int, d: int) -> IntArray:
    """``H_k`` in :func:`altmarl.histogram.rank` order (stars and bars over
    ``itertools.combinations``, which is lexicographic: the same order)."""
    if d == 1:
        return np.array([[k]], dtype=np.int64)
    bars = np.fromiter(itertools.combinations(range(k + d - 1), d - 1),
                       dtype=np.dtype((np.int64, d - 1)), count=num_histograms(k, d))
    n = bars.shape[0]
    full = np.concatenate([np.full((n, 1), -1), bars.reshape(n, d - 1),
                           np.full((n, 1), k + d - 1)], axis=1)
    return np.asarray(np.diff(full, axis=1) - 1, dtype=np.int64)


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


def _stream_pools(K_s: FloatArray, k: int, P: int, m: int, rng: np.random.Generator,
                  packed_bits: int = 0) -> NDArray[Any]:
    """``pools[x, c, p, :]`` = histogram of the first ``c`` moves of stream ``p mod P`` of
    bin ``x``, for ``p < P + m - 1`` (the last ``m - 1`` streams repeat the first ones so
    that a window of ``m`` consecutive streams never wraps).

    Stream ``p`` of bin ``x`` is a sequence of i.i.d. single-agent moves ``~ K_s[x]``; so for
    each ``(x, c)`` the ``P`` distinct entries are i.i.d. ``Multinomial(c, K_s[x])``.
    With ``packed_bits > 0`` each histogram is returned packed into one int64 (bin ``y``
    at bit ``y * packed_bits``), shape ``(d, k + 1, P + m - 1)``; else int16 ``(..., d)``.
    """
    d = int(K_s.shape[0])
    Pw = P + m - 1
    if packed_bits:
        out = np.zeros((d, k + 1, Pw), dtype=np.int64)
        unit = np.int64(1) << (np.arange(d, dtype=np.int64) * packed_bits)
        for x in range(d):
            u = rng.integers(0, 2**32, size=(k, P), dtype=np.uint32)
            moves = _categorical_u32(u, _thresholds(K_s[x]), np.int64)  # (k, P)
            np.cumsum(unit[moves], axis=0, out=out[x, 1:, :P])
        out[:, :, P:] = out[:, :, : m - 1]
        return out
    pools = np.zeros((d, k + 1, Pw, d), dtype=np.int16)
    cells = np.arange(P, dtype=np.int64) * d
    for x in range(d):
        u = rng.integers(0, 2**32, size=(k, P), dtype=np.uint32)
        moves = _categorical_u32(u, _thresholds(K_s[x]), np.int64)  # (k, P)
        flat = pools[x].reshape(k + 1, Pw * d)
        for c in range(1, k + 1):
            flat[c, : P * d] = flat[c - 1, : P * d]
            flat[c, cells + moves[c - 1]] += 1
        pools[x, :, P:] = pools[x, :, : m - 1]
    return pools


def _sample_hist_pool(K: FloatArray, H: IntArray, k: int, m: int, pool: int,
                      ss: np.random.SeedSequence, chunk: int) -> NDArray[np.int32]:
    """``crn="pool"``: draw ``j`` of ``(s_g, h)`` takes, for every bin ``x``, the first
    ``h[x]`` moves of stream ``(o[h, x] + j) mod P`` of bin ``x`` (``o`` uniform offsets).
    Returns next-histogram ranks ``eta[s, h, 0, j]``."""
    d, S, _ = K.shape
    N = H.shape[0]
    P = max(int(pool), m)
    Pw = P + m - 1
    eta = np.empty((S, N, 1, m), dtype=np.int32)
    children = ss.spawn(S)
    win = np.arange(m, dtype=np.int32)[None, :]
    H32 = H.astype(np.int32)
    bits = max(1, int(k).bit_length())
    packed = d * bits <= _PACK_LIMIT
    for s in range(S):
        rng = np.random.default_rng(children[s])
        pools = _stream_pools(K[:, s, :], k, P, m, rng, packed_bits=bits if packed else 0)
        # start of the window of (h, x): row (x, h[x], o[h, x]) of the flat pool table
        starts = rng.integers(0, P, size=(N, d), dtype=np.int32)
        starts += (np.arange(d, dtype=np.int32) * np.int32(k + 1) + H32) * np.int32(Pw)
        if packed:
            # each pool histogram is packed into one int64 (``bits`` per bin): sums of
            # packed values are packed sums, and 1-d gathers of int64 are fast
            flat_p = pools.reshape(-1)
            for a in range(0, N, chunk):
                b = min(N, a + chunk)
                acc = flat_p[starts[a:b, 0, None] + win]
                for x in range(1, d):
                    acc += flat_p[starts[a:b, x, None] + win]
                eta[s, a:b, 0] = _rank_packed(acc, k, d, bits)
        else:
            flat = pools.reshape(d * (k + 1) * Pw, d)
            for a in range(0, N, chunk):
                b = min(N, a + chunk)
                hn = flat[starts[a:b, 0, None] + win]
                for x in range(1, d):
                    hn += flat[starts[a:b, x, None] + win]
                eta[s, a:b, 0] = _rank_fast(hn, k)
    return eta


def _sample_hist_states(K: FloatArray, H: IntArray, k: int, m: int, n_e: int,
                        ss: np.random.SeedSequence, chunk: int) -> NDArray[np.int32]:
    """``crn="states"`` (``n_e = 1``) / ``"none"`` (``n_e = |A_g|``): independent
    ``sum_x Multinomial(h[x], K[x, s])`` draws for every ``(s, h, e, j)``."""
    d, S, _ = K.shape
    N = H.shape[0]
    eta = np.empty((S, N, n_e, m), dtype=np.int32)
    children = ss.spawn(S)
    for s in range(S):
        rng = np.random.default_rng(children[s])
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
            eta[s, a:b] = _rank_fast(hn, k)
    return eta


def _tuple_digits(idx: IntArray, k: int, d: int) -> IntArray:
    """Digits ``(tau_1, ..., tau_k)`` of tuple indices (``tau_1`` most significant)."""
    powers = d ** np.arange(k - 1, -1, -1, dtype=np.int64)
    return np.asarray((idx[:, None] // powers[None, :]) % d, dtype=np.int64)


def _sample_tuples(K: FloatArray, k: int, m: int, n_e: int, ss: np.random.SeedSequence,
                   chunk: int) -> NDArray[np.int32]:
    """Standard parameterization: each agent of the tuple draws its next state from ``K``;
    returns next-tuple indices ``eta[s, tau, e, j]``."""
    d, S, _ = K.shape
    N = d**k
    eta = np.empty((S, N, n_e, m), dtype=np.int32)
    children = ss.spawn(S)
    powers = (d ** np.arange(k - 1, -1, -1, dtype=np.int64)).astype(np.int32)
    for s in range(S):
        rng = np.random.default_rng(children[s])
        thr = [_thresholds(K[x, s]) for x in range(d)]
        for a in range(0, N, chunk):
            b = min(N, a + chunk)
            dig = _tuple_digits(np.arange(a, b, dtype=np.int64), k, d)  # (c, k)
            u = rng.integers(0, 2**32, size=(b - a, n_e, m, k), dtype=np.uint32)
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


# ---------------------------------------------------------------------------
# solvers
# ---------------------------------------------------------------------------


@dataclass
class _SolveStats:
    iterations: int = 0
    sweeps: int = 0
    matvecs: int = 0
    history: list[float] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    converged: bool = False


@contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[float], None]]:
    if not enabled:
        yield lambda res: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"),
                  TextColumn("residual {task.fields[res]}"), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task(label, total=total, res="-")

        def step(res: float) -> None:
            bar.update(task, advance=1, res=f"{res:.3g}")

        yield step


def _solve_vi(model: _Model, tol: float, max_iter: int, stats: _SolveStats,
              progress: bool) -> FloatArray:
    """SPEC 4: ``Q_0 = 0``, ``Q_{t+1} = T_hat Q_t`` until ``||Q_{t+1} - Q_t||_inf <= tol``
    (:func:`altmarl.planning.value_iteration`)."""
    Q0 = np.zeros((model.n_sg, model.n_states, model.n_ag))
    with _progress(progress, max_iter, "G-LEARN value iteration") as step:
        res = planning.value_iteration(lambda V: _backup(model, V), Q0, Q0.max(axis=-1), tol,
                                       max_iter, stop_on="q", callback=step)
    stats.sweeps += res.iterations
    stats.iterations += res.iterations
    stats.history.extend(res.history)
    stats.converged = res.converged
    return res.q


def _evaluate_policy(model: _Model, actions: IntArray, x0: FloatArray, eps: float,
                     stats: _SolveStats) -> FloatArray:
    """Solve ``(I - gamma P_pi) V = r_pi`` to ``||residual||_inf <= eps``
    (:func:`altmarl.planning.evaluate_gmres` on the sparse ``P_pi``)."""
    P = model.policy_matrix(actions)
    b = _policy_reward(model, actions).ravel()
    x, res, matvecs = planning.evaluate_gmres(P, b, model.gamma, x0.ravel(), eps,
                                              GMRES_RESTART, max_matvecs=2000)
    stats.matvecs += matvecs
    stats.evaluations.append({"matvecs": matvecs, "eps": eps, "residual": res})
    return np.asarray(x.reshape(model.n_sg, model.n_states))


def _solve_pi(model: _Model, tol: float, max_iter: int, stats: _SolveStats,
              progress: bool) -> FloatArray:
    """Inexact policy iteration on the same operator
    (:func:`altmarl.planning.inexact_policy_iteration`): greedy policy, GMRES evaluation
    to an accuracy that tightens with the residual, until the residual bound
    ``gamma ||max_a Q - V||_inf`` is ``<= tol``."""
    Q0 = model.r_g[:, None, :] + model.r_loc[:, :, None]  # T_hat applied to Q = 0
    V0 = np.zeros((model.n_sg, model.n_states))

    def evaluate(actions: IntArray, x0: FloatArray, eps: float) -> FloatArray:
        return _evaluate_policy(model, actions, x0, eps, stats)

    with _progress(progress, max_iter, "G-LEARN policy iteration") as step:
        res = planning.inexact_policy_iteration(lambda V: _backup(model, V), evaluate, Q0, V0,
                                                model.gamma, tol, max_iter, forcing=FORCING,
                                                callback=step)
    stats.iterations += res.iterations
    stats.sweeps += res.iterations
    stats.history.extend(res.history)
    stats.converged = res.converged
    return res.q


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


@dataclass
class EmpiricalOperator:
    """The operator ``T_hat`` of SPEC 4 for one ``(game, pi_l, k, m, seed)``.

    ``apply(Q)`` computes ``T_hat Q`` for a table ``Q`` of shape ``shape`` =
    ``(|S_g|, N, |A_g|)``, ``N = |H_k|`` (mean-field) or ``|S_l|^k`` (standard, tuple
    index ``sum_i tau_i |S_l|^(k-1-i)``). ``reward()`` is ``r_k`` on the same table.
    """

    model: Any
    parameterization: str
    k: int
    m: int | None
    crn: str | None
    shape: tuple[int, int, int]
    draws: dict[str, int]
    sample_seconds: float
    #: streams per ``(s_g, x)`` with ``crn="pool"`` (``max(pool_size, m)``), else ``None``
    pool_size: int | None = None

    @property
    def gamma(self) -> float:
        return float(self.model.gamma)

    def apply(self, Q: FloatArray) -> FloatArray:
        """``T_hat Q`` (SPEC 4)."""
        q = np.asarray(Q, dtype=np.float64)
        if q.shape != self.shape:
            raise ValueError(f"Q: expected shape {self.shape}, got {q.shape}")
        return np.asarray(_backup(self.model, q.max(axis=-1)))

    def reward(self) -> FloatArray:
        """``r_k(s_g, x, a_g)`` as a ``shape`` table."""
        return np.asarray(self.model.r_g[:, None, :] + self.model.r_loc[:, :, None])

    def residual(self, Q: FloatArray) -> float:
        """``||T_hat Q - Q||_inf``."""
        return float(np.abs(self.apply(Q) - Q).max())


def pi_l_table(game: TabularGame, pi_l: LocalPolicy | FloatArray) -> FloatArray:
    """The ``(|S_l|, |S_g|, |A_l|)`` table of the shared local policy ``pi_l`` (a
    :class:`LocalPolicy` or its table; SPEC 2), checked against ``game``'s spaces."""
    table = pi_l.table if isinstance(pi_l, LocalPolicy) else np.asarray(pi_l, dtype=np.float64)
    expected = (game.n_sl, game.n_sg, game.n_al)
    if table.shape != expected:
        raise ValueError(f"pi_l.table: expected shape (|S_l|, |S_g|, |A_l|) = {expected} for game "
                         f"{game.name!r}, got {table.shape}")
    if not isinstance(pi_l, LocalPolicy):
        LocalPolicy(table)  # validates the rows
    return np.asarray(table)


def empirical_operator(
    game: TabularGame,
    pi_l: LocalPolicy | FloatArray,
    k: int,
    m: int | None = 30,
    seed: int = 0,
    parameterization: str = "mean-field",
    crn: str | None = None,
    pool_size: int = POOL_SIZE,
    max_samples: int = MAX_SAMPLES,
    max_table: int = MAX_TABLE,
    max_exact_entries: int = MAX_EXACT_ENTRIES,
) -> EmpiricalOperator:
    """Build SPEC 4's operator ``T_hat`` (paper Algorithm 22): draw the ``m`` next-state
    samples of every ``(s_g, x, a_g)`` once from ``seed`` (or, with ``m=None``, the exact
    expectation). Arguments as in :func:`g_learn`."""
    if not isinstance(game, TabularGame):
        raise ValueError(f"game: expected an altmarl.TabularGame, got {type(game).__name__}")
    table = pi_l_table(game, pi_l)
    k = game.check_k(k)
    if m is not None:
        m = check_int("m", m, 1)
    seed = check_int("seed", seed, 0)
    param = check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    if crn is None:
        crn = "pool" if param == "mean-field" else "states"
    crn = check_choice("crn", crn, CRN_MODES)
    if param == "standard" and crn == "pool":
        raise ValueError("crn = 'pool': only for parameterization='mean-field' "
                         "(standard tuples use 'states' or 'none')")
    pool_size = check_int("pool_size", pool_size, 1)
    max_samples = check_int("max_samples", max_samples, 1)
    max_table = check_int("max_table", max_table, 1)
    max_exact_entries = check_int("max_exact_entries", max_exact_entries, 1)
    S, A, d = game.n_sg, game.n_ag, game.n_sl
    n_states = num_histograms(k, d) if param == "mean-field" else num_tuples(k, d)
    size = S * n_states * A
    if size > max_table:
        kind = "|H_k|" if param == "mean-field" else "|S_l|^k"
        raise ValueError(
            f"k = {k}: the {param} Q table has |S_g| {kind} |A_g| = {S} x {n_states} x {A} = "
            f"{size:.3g} entries, above max_table = {max_table:.3g}; use a smaller k (or raise max_table), "
            "or the neural route for large tables (SPEC 11): "
            "am.g_learn(game.as_generative(), pi_l, k)"
            + (" or parameterization='mean-field'" if param == "standard" else "")
        )
    if m is not None and size * m > max_samples:
        raise ValueError(
            f"m = {m}: |S_g| N |A_g| m = {size * m:.3g} stored samples exceed max_samples = "
            f"{max_samples:.3g}; use a smaller k or m (or raise max_samples)"
        )
    if m is None and param == "mean-field" and S * n_states**2 > max_exact_entries:
        raise ValueError(
            f"m = None (exact expectation): k = {k} needs |S_g| |H_k|^2 = {S} x {n_states}^2 = "
            f"{S * n_states**2:.3g} transition entries, above max_exact_entries = "
            f"{max_exact_entries:.3g}; use a sampled operator (e.g. m=30) or a smaller k"
        )

    K = game.local_kernel(table)  # (S_l, S_g, S_l)
    rbar = game.local_reward(table)  # (S_l, S_g)
    if param == "mean-field":
        H = _histograms(k, d)
        r_loc = np.ascontiguousarray((H @ rbar / k).T)  # (S_g, |H_k|)
    else:
        counts = np.zeros((n_states, d))
        dig = _tuple_digits(np.arange(n_states, dtype=np.int64), k, d)
        for x in range(d):
            counts[:, x] = (dig == x).sum(axis=1)
        r_loc = np.ascontiguousarray((counts @ rbar / k).T)
    r_g = np.asarray(game.r_g, dtype=np.float64)
    t0 = time.perf_counter()
    draws: dict[str, int] = {"global": 0, "local_multinomial": 0, "local_agent": 0}
    model: Any
    if m is None:
        if param == "mean-field":
            D = np.stack([exact_next_histograms(K[:, s, :], k) for s in range(S)])
            model = _ExactHistModel(D, game.P_g, r_g, r_loc, game.gamma)
        else:
            model = _ExactTupleModel(K, k, game.P_g, r_g, r_loc, game.gamma)
    else:
        ss_local, ss_global = np.random.SeedSequence(seed).spawn(3)[:2]
        per_action = crn == "none"
        n_e = A if per_action else 1
        chunk = max(64, (1 << 19) // (m * n_e * max(d, k if param == "standard" else 1)))
        if param == "mean-field":
            if crn == "pool":
                eta = _sample_hist_pool(K, H, k, m, pool_size, ss_local, chunk)
                draws["local_agent"] = S * d * k * max(pool_size, m)
            else:
                eta = _sample_hist_states(K, H, k, m, n_e, ss_local, chunk)
                draws["local_multinomial"] = int(S * n_e * m * (H > 0).sum())
        else:
            eta = _sample_tuples(K, k, m, n_e, ss_local, chunk)
            draws["local_agent"] = S * n_states * n_e * m * k
        cols = _sample_global(eta, game.P_g, ss_global)
        del eta
        draws["global"] = S * n_states * A * m
        model = _SampledModel(cols, r_g, r_loc, game.gamma)
    pool = max(pool_size, m) if m is not None and crn == "pool" else None
    return EmpiricalOperator(model, param, k, m, None if m is None else crn, (S, n_states, A),
                             draws, time.perf_counter() - t0, pool)


def solve(op: EmpiricalOperator, tol: float = 1e-6, max_iter: int | None = None,
          solver: str = "pi", progress: bool = False) -> tuple[FloatArray, dict[str, Any]]:
    """Fixed point of ``op`` (SPEC 4). Returns ``(Q, info)`` with the true final residual
    ``||T_hat Q - Q||_inf`` in ``info["residual"]``."""
    tol_f = float(tol) if isinstance(tol, int | float | np.floating) and not isinstance(tol, bool) \
        else float("nan")
    if not (math.isfinite(tol_f) and tol_f > 0):
        raise ValueError(f"tol = {tol!r}: expected a finite number > 0")
    solver = check_choice("solver", solver, SOLVERS)
    model = op.model
    g = model.gamma
    if max_iter is None:
        if solver == "vi":
            rmax = float(max(np.abs(op.reward()).max(), 1e-300))
            max_iter = 10 + (math.ceil(math.log(tol_f / rmax) / math.log(g)) if 0 < g and rmax > tol_f else 1)
        else:
            max_iter = 200
    max_iter = check_int("max_iter", max_iter, 1)
    stats = _SolveStats()
    t0 = time.perf_counter()
    c0 = time.process_time()
    if solver == "vi":
        Q = _solve_vi(model, tol_f, max_iter, stats, progress)
    else:
        Q = _solve_pi(model, tol_f, max_iter, stats, progress)
    t_solve = time.perf_counter() - t0
    residual = op.residual(Q)  # the true residual of the returned table (one more backup)
    stats.sweeps += 1
    if not stats.converged:
        why = (f"after max_iter = {max_iter} iterations" if stats.iterations >= max_iter
               else "(no progress: tol is below the round-off floor?)")
        warnings.warn(
            f"G-LEARN ({solver}) stopped {why} with residual {residual:.3g} > tol = {tol_f:g}",
            ConvergenceWarning, stacklevel=3)
    info = {
        "solver": solver,
        "iterations": stats.iterations,
        "sweeps": stats.sweeps,
        "matvecs": stats.matvecs,
        "residual": residual,
        "converged": bool(stats.converged),
        "tol": tol_f,
        "solve_seconds": t_solve,
        "solve_cpu_seconds": time.process_time() - c0,
        "residual_history": [float(v) for v in stats.history],
    }
    return Q, info


def histogram_q(q_tuples: FloatArray, k: int, d: int) -> FloatArray:
    """Standard -> mean-field: average a tuple-indexed ``Q`` (``(S_g, |S_l|^k, A_g)``) over
    the orderings of each histogram (uniform over the tuples with that histogram)."""
    n_t = q_tuples.shape[1]
    if n_t != d**k:
        raise ValueError(f"q_tuples: expected {d}^{k} = {d**k} tuples on axis 1, got {n_t}")
    dig = _tuple_digits(np.arange(n_t, dtype=np.int64), k, d)
    counts = np.stack([(dig == x).sum(axis=1) for x in range(d)], axis=1)
    hr = rank(counts, k)
    nh = num_histograms(k, d)
    mult = np.bincount(hr, minlength=nh).astype(np.float64)
    S, _, A = q_tuples.shape
    out = np.empty((S, nh, A))
    for s in range(S):
        for a in range(A):
            out[s, :, a] = np.bincount(hr, weights=q_tuples[s, :, a], minlength=nh) / mult
    return out


def policy_from_operator(
    game: TabularGame,
    op: EmpiricalOperator,
    seed: int,
    tie_break: str = "seeded",
    tol: float = 1e-6,
    max_iter: int | None = None,
    solver: str = "pi",
    progress: bool = False,
    *,
    method: str = "g-learn",
    extra_info: dict[str, Any] | None = None,
    started: tuple[float, float] | None = None,
) -> GlobalPolicy:
    """The last step of G-LEARN (SPEC 4), shared by :func:`g_learn` and
    :func:`altmarl.stochastic.g_learn_stochastic`: solve ``op`` (:func:`solve`), average a
    standard ``Q`` over orderings (:func:`histogram_q`), and return the greedy
    :class:`~altmarl.policies.GlobalPolicy` (ties: ``tie_break``, seeded by
    :func:`altmarl._random.tie_seed`) with G-LEARN's ``info`` (see :func:`g_learn`) under ``method``,
    plus ``extra_info``. ``started = (perf_counter, process_time)`` at the caller's start
    sets the origin of ``wall_seconds`` / ``cpu_seconds`` (default: now).
    """
    t0, c0 = started if started is not None else (time.perf_counter(), time.process_time())
    tie_break = check_choice("tie_break", tie_break, TIE_BREAKS)
    Q, sinfo = solve(op, tol, max_iter, solver, progress)
    d = game.n_sl
    n_h = num_histograms(op.k, d)
    n_t = num_tuples(op.k, d)
    S, A = game.n_sg, game.n_ag
    q_hist = Q if op.parameterization == "mean-field" else histogram_q(Q, op.k, d)
    info: dict[str, Any] = {
        "method": method,
        "parameterization": op.parameterization,
        "k": op.k,
        "m": op.m,
        "seed": int(seed),
        "crn": op.crn,
        "gamma": game.gamma,
        **sinfo,
        "samples": 0 if op.m is None else S * op.shape[1] * A * op.m,
        "samples_mean_field": None if op.m is None else S * n_h * A * op.m,
        "samples_standard": None if op.m is None else S * n_t * A * op.m,
        "draws": op.draws,
        "table_size": S * op.shape[1] * A,
        "table_size_mean_field": S * n_h * A,
        "table_size_standard": S * n_t * A,
        "n_states": op.shape[1],
        "tie_break": tie_break,
        "sample_seconds": op.sample_seconds,
    }
    if op.crn == "pool":
        info["pool_size"] = op.pool_size
    info.update(extra_info or {})
    ties = tie_seed(int(seed)) if tie_break == "seeded" else None
    info["wall_seconds"] = time.perf_counter() - t0
    info["cpu_seconds"] = time.process_time() - c0
    return GlobalPolicy.from_q(op.k, q_hist, info=info, game=game, tie_seed=ties)


@overload
def g_learn(game: TabularGame, pi_l: LocalPolicy | FloatArray, k: int, m: int | None = 30,
            seed: int = 0, *args: Any, **kwargs: Any) -> GlobalPolicy: ...


@overload
def g_learn(game: GenerativeGame, pi_l: Any, k: int, m: int | None = 30, seed: int = 0,
            *args: Any, **kwargs: Any) -> NeuralGlobalPolicy: ...


def g_learn(
    game: TabularGame | GenerativeGame,
    pi_l: LocalPolicy | FloatArray,
    k: int,
    m: int | None = 30,
    seed: int = 0,
    parameterization: str = "mean-field",
    tol: float = 1e-6,
    max_iter: int | None = None,
    solver: str = "pi",
    crn: str | None = None,
    tie_break: str = "seeded",
    pool_size: int = POOL_SIZE,
    progress: bool = False,
    max_samples: int = MAX_SAMPLES,
    max_table: int = MAX_TABLE,
    max_exact_entries: int = MAX_EXACT_ENTRIES,
) -> GlobalPolicy | NeuralGlobalPolicy:
    """G-LEARN (paper Algorithm 22, SPEC 4): the global agent's best response to ``pi_l``
    in the ``k``-agent surrogate, as a greedy :class:`~altmarl.policies.GlobalPolicy`.

    Parameters
    ----------
    game, pi_l
        The game and the fixed shared local policy (a :class:`LocalPolicy` or its table).
    k
        Subsample size, ``1 <= k <= n``.
    m
        Samples per ``(s_g, h, a_g)``, drawn once from ``seed``; ``None`` = exact
        expectation (small ``k`` only; refused above ``max_exact_entries``).
    seed
        Drives every draw (samples and tie-breaking).
    parameterization
        ``"mean-field"`` (``Q`` over histograms, default) or ``"standard"`` (``Q`` over
        ordered ``k``-tuples; the policy acts on the ordering-averaged ``Q``).
    tol, max_iter
        Stop when the residual ``||T_hat Q - Q||_inf`` is below ``tol`` (``"vi"``: when
        ``||Q_{t+1} - Q_t||_inf <= tol``); ``max_iter`` bounds the sweeps (``"vi"``) or
        policy-iteration rounds (``"pi"``); hitting it warns (:class:`ConvergenceWarning`).
    solver
        ``"pi"`` (inexact policy iteration with GMRES evaluation; default, fast) or
        ``"vi"`` (value iteration from ``Q = 0``, SPEC 4). Same operator, same fixed point.
    crn
        How sample draws are shared across entries (module docstring): ``"pool"``
        (mean-field default), ``"states"`` (standard default), ``"none"``.
    tie_break
        ``"seeded"`` (uniform among maximizers, seeded from ``seed``) or ``"lowest"``.
    progress
        Show a rich progress bar (off by default).

    On a :class:`~altmarl.GenerativeGame` this is neural G-LEARN (SPEC 11, fitted
    Q-iteration on the ``k``-agent surrogate with ``m`` draws per target, default 10;
    :func:`altmarl.generative.neural.neural_g_learn` has every option) and returns a
    :class:`~altmarl.generative.neural.NeuralGlobalPolicy`; the tabular keywords are then
    ignored.

    Returns
    -------
    GlobalPolicy
        With ``q`` (``(|S_g|, |H_k|, |A_g|)``) and ``info``: ``iterations``, ``sweeps``,
        ``matvecs``, ``residual`` (true ``||T_hat Q - Q||_inf``), ``converged``,
        ``samples`` (SPEC 4's count ``|S_g| N |A_g| m``), ``draws`` (random variates
        actually drawn), table sizes, ``wall_seconds``, ``parameterization``, ``m``,
        ``seed``, ...
    """
    if isinstance(game, GenerativeGame):
        # neural G-LEARN (SPEC 11); imported here: it needs PyTorch, ``import altmarl`` not
        from altmarl.generative.neural import neural_g_learn

        return neural_g_learn(game, pi_l, k, m=10 if m is None else m, seed=seed,
                              progress=progress)
    started = (time.perf_counter(), time.process_time())
    tie_break = check_choice("tie_break", tie_break, TIE_BREAKS)
    tol_ok = isinstance(tol, int | float | np.floating) and not isinstance(tol, bool)
    if not tol_ok or not (math.isfinite(float(tol)) and float(tol) > 0):
        raise ValueError(f"tol = {tol!r}: expected a finite number > 0")
    check_choice("solver", solver, SOLVERS)
    if max_iter is not None:
        check_int("max_iter", max_iter, 1)
    op = empirical_operator(game, pi_l, k, m, seed, parameterization, crn, pool_size,
                            max_samples, max_table, max_exact_entries)
    return policy_from_operator(game, op, seed, tie_break, tol, max_iter, solver, progress,
                                started=started)


__all__ = [
    "ConvergenceWarning",
    "EmpiricalOperator",
    "empirical_operator",
    "exact_next_histograms",
    "g_learn",
    "histogram_q",
    "pi_l_table",
    "policy_from_operator",
    "solve",
]
