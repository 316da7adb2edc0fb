"""G-LEARN's surrogate model and its empirical Bellman operator ``T_hat`` (SPEC 4, paper
Algorithm 22, Definition B.10).

The global agent plans in a *surrogate* system of ``k`` local agents. For a state
``(s_g, h)`` (``h in H_k`` a histogram of ``k`` local states, or an ordered tuple: see
:mod:`altmarl.glearn.states`) and an action ``a_g``::

    r_k(s_g, h, a_g) = r_g(s_g, a_g) + (1/k) sum_x h[x] sum_a pi_l[x, s_g, a] r_l[x, s_g, a]
    (T_hat Q)(s_g, h, a_g) = r_k(s_g, h, a_g) + gamma (1/m) sum_j max_a' Q(s_g^j, h^j, a')

with ``s_g^j ~ P_g(. | s_g, a_g)`` and ``h^j = sum_x Multinomial(h[x], K[x, s_g, :])``,
``K = game.local_kernel(pi_l)``. The ``m`` samples (:mod:`altmarl.glearn.draws`) are drawn
once from ``seed`` and held fixed, so ``T_hat`` is a ``gamma``-contraction with a unique
fixed point ``Q_hat``. ``m=None`` replaces the sample mean by the exact expectation (small
``k`` only).

A *model* (:class:`OperatorModel`) is what the solvers need: ``r_g``, ``r_loc`` (the two
parts of ``r_k``) and ``E[V(next) | s_g, x, a_g]``; three implement it (sampled; exact on
histograms; exact on tuples). :func:`empirical_operator` builds the
:class:`EmpiricalOperator` around one. Seeds (:mod:`altmarl._random`): child 0 of ``seed``
drives the local moves, child 1 the global moves, child 2 the tie-breaking
(:func:`altmarl._random.tie_seed`), child 3 the reward draws of Appendix F.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from altmarl._random import child
from altmarl._validate import check_int
from altmarl.game import TabularGame
from altmarl.glearn import kernels
from altmarl.glearn.draws import (
    HistogramLaw,
    StratifiedRanks,
    check_law_size,
    exact_next_histograms,
    exact_next_stratified,
    lay_out,
    sample_global,
    sample_hist_pool,
    sample_hist_states,
    sample_tuples,
)
from altmarl.glearn.layout import StoreLayout, store_layout, wants_layout
from altmarl.glearn.options import GLearnOptions
from altmarl.glearn.states import num_states, state_counts
from altmarl.policies import LocalPolicy
from altmarl.sampling import (
    Scheme,
    Stratified,
    Uniform,
    resolve,
    stratified_histograms,
    type_groups,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# ---------------------------------------------------------------------------
# models of the surrogate: E[V(next) | s_g, state, a_g]
# ---------------------------------------------------------------------------


class OperatorModel(Protocol):
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


def backup(model: OperatorModel, V: FloatArray) -> FloatArray:
    """``(T Q)(s, a) = r_k(s, a) + gamma E[V(s')]`` with ``V = max_a Q`` given (SPEC 4).
    A model with a one-pass ``fused_backup(V)`` (same numbers) computes it; else ``(r_g +
    r_loc) + gamma * expect(V)``."""
    fused = getattr(model, "fused_backup", None)
    out = fused(V) if fused is not None else None
    if out is not None:
        return np.asarray(out)
    return model.r_g[:, None, :] + model.r_loc[:, :, None] + model.gamma * model.expect(V)


def policy_reward(model: OperatorModel, actions: IntArray) -> FloatArray:
    """``r_k(s, pi(s))`` as an ``(S_g, N)`` table for the deterministic policy ``actions``."""
    rg = model.r_g[np.arange(model.n_sg)[:, None], actions]
    return np.asarray(rg + model.r_loc, dtype=np.float64)


class _SampledModel:
    """Empirical operator from fixed samples (SPEC 4), stored compactly.

    ``nxt[s, x, e, j]`` (int32) is the index of the ``j``-th sampled next local state of
    ``(s_g = s, x)``, shared by every ``a_g`` (``e = 0``; ``P_l`` does not depend on
    ``a_g``) or, with ``crn="none"``, one per action (``e = a_g``); ``sg[s, x, a, j]`` (one
    byte when ``|S_g| <= 256``) the next global state of ``(s, x, a, j)``. The flat index
    of a sampled next state is ``sg * N + nxt`` (:meth:`columns`). Products with ``V``:
    the fused kernels of :mod:`altmarl.glearn.kernels` for large stores, CSR matrices (one
    per ``a_g``, built on first use) for small ones; both sum the ``m`` terms in the same
    order, so they agree to the last bit.

    ``layout``: ``nxt`` and ``sg`` are stored in that Z-order layout
    (:mod:`altmarl.glearn.layout`), as :func:`empirical_operator` draws them
    (:func:`~altmarl.glearn.draws.sample_hist_pool` with ``layout=``,
    :func:`~altmarl.glearn.draws.lay_out`).
    """

    def __init__(self, nxt: NDArray[np.int32], sg: NDArray[Any], r_g: FloatArray,
                 r_loc: FloatArray, gamma: float, fused: bool | None = None,
                 threads: int | None = 1, layout: StoreLayout | None = None) -> None:
        self.threads = None if threads is None else int(threads)
        self._store = nxt
        self._sg = sg
        self.n_sg, self.n_states, self.n_ag, self.m = (int(v) for v in sg.shape)
        self.r_g = r_g
        self.r_loc = r_loc
        self.gamma = float(gamma)
        per_row = self.n_sg * self.n_states * self.m
        self.fused = kernels.use_fused(per_row) if fused is None else bool(fused)
        self._P: list[sp.csr_matrix] | None = None
        self._sel: NDArray[np.int32] | None = None
        self._sel_actions: IntArray | None = None
        # fused, one next local state per sample (E = 1): once a policy is evaluated, the
        # store holds its columns (kernels.policy_columns) in place of ``nxt``
        self._col_actions: NDArray[np.int64] | None = None
        self._col_generation = 0  # bumped whenever the store's columns are rewritten
        # the Z-order layout (altmarl.glearn.layout): rows of the store and of ``sg`` in
        # processing order, next local states as positions in the laid-out value table
        self.layout: StoreLayout | None = None
        if layout is not None:
            if not (self.fused and nxt.shape[2] == 1 and nxt.flags.c_contiguous
                    and nxt.flags.writeable and sg.flags.c_contiguous and sg.flags.writeable):
                raise ValueError("layout: needs a fused, writeable store with one next local "
                                 "state per sample (crn 'pool' or 'states')")
            self.layout = layout

    def _natural(self, a: NDArray[Any]) -> NDArray[Any]:
        """A per-row array of the store (``(|S_g|, N, ...)``) back in table order."""
        if self.layout is None:
            return a
        out = np.empty_like(a)
        rows = self.n_sg * self.n_states
        out.reshape(rows, -1)[self.layout.order] = a.reshape(rows, -1)
        return out

    def _layout_arrays(self) -> tuple[NDArray[np.int32] | None, NDArray[np.int32] | None]:
        """The products' ``order`` and ``pos`` (``None, None`` without a layout)."""
        lay = self.layout
        return (None, None) if lay is None else (lay.order, lay.pos)

    def _stored(self, actions: IntArray) -> NDArray[np.int64]:
        """A policy's ``(|S_g|, N)`` actions in the store's row order."""
        acts = np.ascontiguousarray(actions, dtype=np.int64)
        if self.layout is None:
            return acts
        return np.ascontiguousarray(acts.reshape(-1)[self.layout.order].reshape(acts.shape))

    @property
    def sg(self) -> NDArray[Any]:
        """``sg[s, x, a, j]``: the sampled next global states."""
        return self._natural(self._sg)

    @property
    def nxt(self) -> NDArray[np.int32]:
        """``nxt[s, x, e, j]``: the sampled next local states (recovered from the columns,
        ``cols // |S_g|``, when the store holds them)."""
        store = self._store
        if self._col_actions is not None:
            store = (store // np.int32(self.n_sg)).astype(np.int32)
        if self.layout is None:
            return store
        return self._natural(self.layout.hperm[store])

    def columns(self, a: int) -> NDArray[np.int32]:
        """``cols[s, x, j] = sg * N + nxt``: flat indices of the samples of action ``a``."""
        e = a if self.nxt.shape[2] > 1 else 0
        out = self.sg[:, :, a, :].astype(np.int32)
        out *= np.int32(self.n_states)
        out += self.nxt[:, :, e, :]
        return out

    @property
    def cols(self) -> list[NDArray[np.int32]]:
        """:meth:`columns` of every action."""
        return [self.columns(a) for a in range(self.n_ag)]

    def _csr(self, indices: NDArray[np.int32]) -> sp.csr_matrix:
        rows = self.n_sg * self.n_states
        nnz = rows * self.m
        idx_t = np.int32 if nnz < 2**31 - 1 else np.int64
        indptr = np.arange(0, nnz + 1, self.m, dtype=idx_t)
        data = np.full(nnz, 1.0 / self.m)
        return sp.csr_matrix((data, indices, indptr), shape=(rows, rows), copy=False)

    def _can_hold_columns(self) -> bool:
        """Whether the fused store can be rewritten in place as a policy's columns (one
        next local state per sample, a writable C-ordered int32 store, flat indices below
        ``2^31``)."""
        store = self._store
        return bool(self.fused and store.shape[2] == 1 and store.flags.c_contiguous
                    and store.flags.writeable and self.n_sg * self.n_states < 2**31)

    def _column_actions(self) -> NDArray[np.int64] | None:
        """The policy whose columns the fused store holds (``None``: it holds next local
        states); a store that can hold columns is turned into the all-zeros policy's
        columns first (a laid-out store's products read only columns; value iteration's
        backups then take the one-pass kernel, the same numbers)."""
        if self._col_actions is None and self._can_hold_columns():
            self.policy_matrix(np.zeros((self.n_sg, self.n_states), dtype=np.int64))
        return self._col_actions

    def expect(self, V: FloatArray) -> FloatArray:
        v = np.ascontiguousarray(V, dtype=np.float64)
        if self.fused:
            acts = self._column_actions()
            if acts is not None:
                return kernels.expect_all_cols(self._store.reshape(-1, self.m), self._sg, acts,
                                               v, self.m, self.threads, *self._layout_arrays())
            return kernels.expect_all(self._store, self._sg, v, self.m, self.threads)
        if self._P is None:
            self._P = [self._csr(self.columns(a).reshape(-1)) for a in range(self.n_ag)]
        out = np.empty((self.n_sg, self.n_states, self.n_ag))
        for a, P in enumerate(self._P):
            out[:, :, a] = (P @ v.reshape(-1)).reshape(self.n_sg, self.n_states)
        return out

    def fused_backup(self, V: FloatArray) -> FloatArray | None:
        """:func:`backup` in one kernel pass once the store holds a policy's columns
        (:func:`altmarl.glearn.kernels.backup_cols`: the same numbers); else ``None``."""
        acts = self._column_actions() if self.fused else None
        if acts is None:
            return None
        return kernels.backup_cols(
            self._store.reshape(-1, self.m), self._sg, acts,
            np.ascontiguousarray(V, dtype=np.float64), self.m, self.r_g, self.r_loc,
            self.gamma, self.threads, *self._layout_arrays())

    def policy_matrix(self, actions: IntArray) -> Callable[[FloatArray], FloatArray]:
        if self.fused:
            acts = self._stored(actions)
            store = self._store
            if not self._can_hold_columns():
                return lambda x: kernels.policy_matvec(store, self._sg, acts, x, self.m,
                                                       self.threads)
            # the store becomes the policy's columns (flat indices of the chosen action's
            # next states, kernels.policy_columns) in place, rewritten only where the policy
            # changed: every product then reads one int32 per sample (same sums, same order)
            cols = store.reshape(-1, self.m)
            if self._col_actions is None:
                kernels.policy_columns(store, self._sg, acts, cols)
            else:
                kernels.recolumn(cols, self._sg, self._col_actions, acts)
            self._col_actions = acts.copy()
            self._col_generation += 1
            order, pos = self._layout_arrays()
            return ColumnsProduct(cols, self.n_sg, self.m, self.threads, order, pos, self,
                                  self._col_generation,
                                  None if self.layout is None else self.layout.rows)
        # one reusable (S_g, N, m) buffer; only the rows whose action changed are rewritten
        if self._sel is None:
            self._sel = self.columns(0)
            self._sel_actions = np.zeros((self.n_sg, self.n_states), dtype=np.int64)
        assert self._sel_actions is not None
        changed = actions != self._sel_actions
        if changed.any():
            for a in range(self.n_ag):
                mask = changed & (actions == a)
                if mask.any():
                    self._sel[mask] = self.columns(a)[mask]
            self._sel_actions = np.array(actions, dtype=np.int64)
        P = self._csr(self._sel.reshape(-1))
        return lambda x: np.asarray(P @ x)


@dataclass(frozen=True)
class ColumnsProduct:
    """``x -> P_pi x`` on a store holding the policy's columns
    (:func:`altmarl.glearn.kernels.gather_mean`); :meth:`system` is ``x -> x - gamma P_pi
    x`` in one pass (:func:`~altmarl.glearn.kernels.gather_system`, the same numbers).
    ``rows``: the layout's inverse row order (:attr:`altmarl.glearn.layout.StoreLayout.rows`),
    through which the products read their row-ordered means back in table order.

    The store is rewritten in place by the operator's next ``policy_matrix`` call: a
    product used after that raises ``RuntimeError`` instead of applying the newer policy."""

    cols: NDArray[Any]
    n_sg: int
    m: int
    threads: int | None
    order: NDArray[np.int32] | None
    pos: NDArray[np.int32] | None
    owner: _SampledModel
    generation: int
    rows: NDArray[np.int32] | None = None

    def _check(self) -> None:
        if self.owner._col_generation != self.generation:
            raise RuntimeError("this P_pi product is stale: a later policy_matrix call "
                               "rewrote the operator's store for another policy; call "
                               "policy_matrix again for this policy")

    def __call__(self, x: FloatArray) -> FloatArray:
        self._check()
        return kernels.gather_mean(self.cols, x, self.n_sg, self.m, self.threads, self.order,
                                   self.pos, self.rows)

    def system(self, gamma: float) -> Callable[[FloatArray], FloatArray]:
        """``x -> x - gamma P_pi x``."""
        self._check()

        def system(x: FloatArray) -> FloatArray:
            self._check()
            return kernels.gather_system(self.cols, x, self.n_sg, self.m, gamma, self.threads,
                                         self.order, self.pos, self.rows)

        return system


class ExactGlobalModel:
    """Empirical operator with the exact expectation over the next global state
    (``exact_global=True``): the ``m`` next local states ``nxt`` are sampled and stored as in
    :class:`_SampledModel`, the next global state enters through its law,

        E_hat[V(next) | s, x, a] = (1/m) sum_j sum_{s'} P_g(s' | s, a) V(s', nxt[s, x, e, j]).

    The inner sum is the table ``W[s, x', a]`` (:func:`altmarl.glearn.kernels.global_weights`,
    ``|S_g|^2 |A_g| N`` products per backup), so each stored sample costs one gather of a
    row ``W[s, x', :]`` for every ``a_g`` at once; no next global state is drawn or stored.
    An unbiased estimator of the same expectation as the sampled operator, with lower
    variance (Rao-Blackwellized over ``s_g'``); a different operator, hence different numbers.
    Products: the Numba kernels for large stores, NumPy loops for small ones, both summing
    in the same order (the same numbers to the last bit).
    """

    def __init__(self, nxt: NDArray[np.int32], P_g: FloatArray, r_g: FloatArray,
                 r_loc: FloatArray, gamma: float, fused: bool | None = None,
                 threads: int | None = 1) -> None:
        self.threads = None if threads is None else int(threads)
        self.nxt = nxt
        self.P_g = np.ascontiguousarray(P_g, dtype=np.float64)
        self.n_sg, self.n_states, _, self.m = (int(v) for v in nxt.shape)
        self.n_ag = int(P_g.shape[1])
        self.r_g, self.r_loc, self.gamma = r_g, r_loc, float(gamma)
        per_row = self.n_sg * self.n_states * self.m
        self.fused = kernels.use_fused(per_row) if fused is None else bool(fused)

    def weights(self, V: FloatArray) -> FloatArray:
        """``W[s, x', a] = sum_{s'} P_g(s' | s, a) V(s', x')``, summed over ``s' = 0, 1, ...``."""
        v = np.ascontiguousarray(V, dtype=np.float64).reshape(self.n_sg, self.n_states)
        if self.fused:
            return kernels.global_weights(self.P_g, v)
        W = np.zeros((self.n_sg, self.n_states, self.n_ag))
        for b in range(self.n_sg):
            W += self.P_g[:, None, :, b] * v[b][None, :, None]
        return W

    def expect(self, V: FloatArray) -> FloatArray:
        W = self.weights(V)
        if self.fused:
            return kernels.expect_all_exact_global(self.nxt, W, self.m, self.threads)
        S, N, E, m = self.nxt.shape
        w = 1.0 / m
        out = np.zeros((S, N, self.n_ag))
        s_idx = np.arange(S)[:, None, None]
        a_idx = np.arange(self.n_ag)[None, None, :]
        for j in range(m):
            if E == 1:
                out += w * W[s_idx[:, :, 0], self.nxt[:, :, 0, j]]
            else:
                out += w * W[s_idx, self.nxt[:, :, :, j], a_idx]
        return out

    def policy_matrix(self, actions: IntArray) -> Callable[[FloatArray], FloatArray]:
        acts = np.ascontiguousarray(actions, dtype=np.int64)
        if self.fused:
            return lambda x: kernels.policy_matvec_exact_global(
                self.nxt, self.weights(x), acts, self.m, self.threads)
        S, N, E, m = self.nxt.shape
        s_idx = np.arange(S)[:, None]
        x_idx = np.arange(N)[None, :]
        e_idx = acts if E > 1 else np.zeros_like(acts)
        sel = self.nxt[s_idx, x_idx, e_idx]  # (S, N, m): the chosen action's next states
        w = 1.0 / m

        def mv(x: FloatArray) -> FloatArray:
            W = self.weights(x)
            out = np.zeros((S, N))
            for j in range(m):
                out += w * W[s_idx, sel[:, :, j], acts]
            return out.ravel()

        return mv


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


class _LawHistModel(_ExactHistModel):
    """:class:`_ExactHistModel` without the dense matrices: ``D[s] @ V`` by the
    matrix-free :class:`altmarl.glearn.draws.HistogramLaw` of each ``s_g`` (``m=None``
    when the dense law would exceed ``max_exact_entries``)."""

    def __init__(self, laws: list[HistogramLaw], P_g: FloatArray, r_g: FloatArray,
                 r_loc: FloatArray, gamma: float) -> None:
        self.laws = laws
        self.P_g = P_g
        self.n_sg, self.n_states = len(laws), int(laws[0].H.shape[0])
        self.n_ag = int(P_g.shape[1])
        self.r_g, self.r_loc, self.gamma = r_g, r_loc, float(gamma)

    def _next_local(self, V: FloatArray) -> FloatArray:
        VT = np.ascontiguousarray(np.asarray(V, dtype=np.float64).T)
        return np.stack([law.apply(VT) for law in self.laws])


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
# the operator
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
    #: the sampling scheme the policy is made for (SPEC 12; ``None`` = ``Uniform(k)``)
    sampling: Scheme | None = None
    #: ``"uniform"`` (``k`` agents) or ``"stratified"`` (``k_c`` agents of type ``c``)
    surrogate: str = "uniform"

    @property
    def gamma(self) -> float:
        return float(self.model.gamma)

    def apply(self, Q: FloatArray) -> FloatArray:
        """``T_hat Q`` (SPEC 4)."""
        q = np.asarray(Q, dtype=np.float64)
        if q.shape != self.shape:
            raise ValueError(f"Q: expected shape {self.shape}, got {q.shape}")
        return np.asarray(backup(self.model, q.max(axis=-1)))

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


def check_sizes(game: TabularGame, k: int, options: GLearnOptions) -> int:
    """The number of surrogate states ``N`` (``|H_k|`` or ``|S_l|^k``) of G-LEARN on ``game``
    with ``k`` (SPEC 4), after checking the size limits of ``options`` (``max_table``,
    ``max_samples``, ``max_exact_entries``): a ``ValueError`` says which limit is exceeded
    and how to raise it. Cheap (no table is built), so a run can check before it starts."""
    opts = options
    m, param = opts.m, opts.parameterization
    S, A, d = game.n_sg, game.n_ag, game.n_sl
    max_samples, max_table = opts.max_samples, opts.max_table
    max_exact_entries = opts.max_exact_entries
    n_states = num_states(k, d, param)
    size = S * n_states * A
    if size > max_table:
        kind = "|H_k|" if param == "mean-field" else "|S_l|^k"
        raise ValueError(
            f"k = {k}: the {param} Q table has |S_g| {kind} |A_g| = {S} x {n_states} x {A} = "
            f"{size:.3g} entries, above max_table = {max_table:.3g}; use a smaller k"
            + (" or parameterization='mean-field'" if param == "standard" else "")
            + (f", or raise the limit: in a configuration file, a section "
               f"[algorithm.options.g_options] with max_table = {_round_up(size)}; in Python, "
               f"am.g_learn(..., max_table={_round_up(size)}) (the table needs about "
               f"{_gigabytes(size)} of memory)" if size <= MEMORY_SANE_ENTRIES else
               f" (the table would need {_gigabytes(size)} of memory)")
            + ". Large tables are a case for the neural route (neural G-LEARN on a generative "
            "game): am.g_learn(game.as_generative(), pi_l, k) (docs/generative.md)"
        )
    if m is not None and size * m > max_samples:
        raise ValueError(
            f"m = {m}: |S_g| N |A_g| m = {size * m:.3g} stored samples exceed max_samples = "
            f"{max_samples:.3g}; use a smaller k or m, or raise the limit: in a configuration "
            f"file, [algorithm.options.g_options] max_samples = {_round_up(size * m)}; in "
            f"Python, am.g_learn(..., max_samples={_round_up(size * m)})"
        )
    if m is None and param == "mean-field" and S * n_states**2 > max_exact_entries:
        check_law_size(k, d)  # the matrix-free law replaces the dense one
    return n_states


#: above this many ``Q`` entries (80 GB of float64) the table-size message no longer
#: suggests raising ``max_table``
MEMORY_SANE_ENTRIES = 10**10


def _round_up(x: int) -> int:
    """A round number at least ``x`` (for "raise the limit to ..." hints)."""
    mag = 10 ** max(len(str(int(x))) - 2, 0)
    return int(-(-int(x) // mag) * mag)


def _gigabytes(entries: int) -> str:
    """Memory of ``entries`` float64 values, in words."""
    gb = 8 * entries / 1e9
    if gb >= 1e4:
        return f"{gb:.1e} GB"
    return f"{gb:.1f} GB" if gb >= 0.1 else f"{8 * entries / 1e6:.0f} MB"


def empirical_operator(
    game: TabularGame,
    pi_l: LocalPolicy | FloatArray,
    k: int | None,
    seed: int = 0,
    options: GLearnOptions | None = None,
    sampling: Scheme | None = None,
) -> EmpiricalOperator:
    """Build SPEC 4's operator ``T_hat`` (paper Algorithm 22): draw the ``m`` next-state
    samples of every ``(s_g, x, a_g)`` once from ``seed`` (or, with ``options.m=None``, the
    exact expectation). ``options`` (default ``GLearnOptions()``) supplies ``m``,
    ``parameterization``, ``crn``, ``pool_size`` and the size limits.

    ``sampling`` (SPEC 12, default ``Uniform(k)``): under ``Stratified(ks)`` on a typed
    game the surrogate has ``k_c`` agents of type ``c`` (:func:`stratified_operator`);
    under ``Uniform`` and ``Weighted`` it is the uniform ``k``-agent surrogate (``Weighted``
    changes what the global agent sees, not the surrogate: the policy is then executed
    under the weighted scheme)."""
    opts = GLearnOptions.from_keywords(options)
    if not isinstance(game, TabularGame):
        raise ValueError(f"game: expected an altmarl.TabularGame, got {type(game).__name__}")
    scheme = resolve(sampling, k, game)
    if isinstance(scheme, Stratified) and len(scheme.ks) > 1:
        return stratified_operator(game, pi_l, scheme, seed, opts)
    table = pi_l_table(game, pi_l)
    k = game.check_k(scheme.k)
    seed = check_int("seed", seed, 0)
    m, param, crn = opts.m, opts.parameterization, opts.crn_mode
    pool_size = opts.pool_size
    S, A, d = game.n_sg, game.n_ag, game.n_sl
    n_states = check_sizes(game, k, opts)

    K = game.local_kernel(table)  # (S_l, S_g, S_l)
    rbar = game.local_reward(table)  # (S_l, S_g)
    H = state_counts(k, d, param)  # agents per local state of every surrogate state
    r_loc = np.ascontiguousarray((H @ rbar / k).T)  # (S_g, N)
    r_g = np.asarray(game.r_g, dtype=np.float64)
    t0 = time.perf_counter()
    draws: dict[str, int] = {"global": 0, "local_multinomial": 0, "local_agent": 0}
    model: Any
    if m is None:
        if param == "mean-field":
            if S * n_states**2 <= opts.max_exact_entries:
                D = np.stack([exact_next_histograms(K[:, s, :], k) for s in range(S)])
                model = _ExactHistModel(D, game.P_g, r_g, r_loc, game.gamma)
            else:  # the dense law would be too large: the same expectation, matrix-free
                model = _LawHistModel([HistogramLaw(K[:, s, :], k) for s in range(S)],
                                      game.P_g, r_g, r_loc, game.gamma)
        else:
            model = _ExactTupleModel(K, k, game.P_g, r_g, r_loc, game.gamma)
    else:
        ss_local, ss_global = child(seed, 0), child(seed, 1)
        per_action = crn == "none"
        fused = kernels.use_fused(S * n_states * m)
        # None: default_threads() at each product and draw (1 for small operators)
        threads = kernels.operator_threads(opts.threads, S * n_states * m)
        n_e = A if per_action else 1
        chunk = max(64, (1 << 19) // (m * n_e * max(d, k if param == "standard" else 1)))
        # the Z-order store layout (altmarl.glearn.layout): the draws are written in it
        layout = (store_layout(H, K) if fused and param == "mean-field" and not per_action
                  and not opts.exact_global and wants_layout(S, n_states) else None)
        if param == "mean-field":
            if crn == "pool":
                eta = sample_hist_pool(K, H, k, m, pool_size, ss_local, chunk, fused=fused,
                                       threads=threads, layout=layout)
                draws["local_agent"] = S * d * k * max(pool_size, m)
            else:
                eta = sample_hist_states(K, H, k, m, n_e, ss_local, chunk)
                if layout is not None:
                    lay_out(eta, layout, values=True)
                draws["local_multinomial"] = int(S * n_e * m * (H > 0).sum())
        else:
            eta = sample_tuples(K, k, m, n_e, ss_local, chunk)
            draws["local_agent"] = S * n_states * n_e * m * k
        if opts.exact_global:
            model = ExactGlobalModel(eta, game.P_g, r_g, r_loc, game.gamma, fused,
                                     threads)
        else:
            sg = sample_global(n_states, m, game.P_g, ss_global, fused, threads)
            if layout is not None:
                lay_out(sg, layout)
            draws["global"] = S * n_states * A * m
            model = _SampledModel(eta, sg, r_g, r_loc, game.gamma, fused, threads,
                                  layout)
    pool = max(pool_size, m) if m is not None and crn == "pool" else None
    return EmpiricalOperator(model, param, k, m, None if m is None else crn, (S, n_states, A),
                             draws, time.perf_counter() - t0, pool,
                             sampling=None if isinstance(scheme, Uniform) else scheme)


def stratified_reward_weights(game: TabularGame, scheme: Stratified) -> FloatArray:
    """``c[x] = (n_c / n) / k_c`` for ``c = type(x)`` (SPEC 12): the stratified surrogate's
    local reward ``sum_x c[x] h[x] rbar[x, s_g]`` weighs each type's sample mean by the
    type's population share, so it estimates the ``n``-agent reward ``(1/n) sum_i r_l``
    without bias whatever the ``k_c`` (with ``k_c / k = n_c / n`` it is ``(1/k) sum_x h[x]
    rbar``)."""
    t = np.asarray(game.types, dtype=np.int64)
    share = np.asarray(game.type_counts, dtype=np.float64) / game.n
    return np.asarray(share[t] / np.asarray(scheme.ks, dtype=np.float64)[t], dtype=np.float64)


def stratified_operator(
    game: TabularGame,
    pi_l: LocalPolicy | FloatArray,
    scheme: Stratified,
    seed: int,
    options: GLearnOptions,
) -> EmpiricalOperator:
    """SPEC 4's operator on the stratified surrogate (SPEC 12): ``k_c`` agents of type ``c``,
    states the histograms with per-type sums ``k_c`` (``prod_c C(k_c + |S_c| - 1, |S_c| - 1)``
    of them, in the order of :class:`altmarl.sampling.Stratified`), reward
    ``r_g + sum_x c[x] h[x] rbar[x, s_g]`` (:func:`stratified_reward_weights`), every agent
    moving by ``K = game.local_kernel(pi_l)`` (which keeps its type). Same draws and seeds
    as the uniform surrogate (``crn="pool"`` streams of depth ``max_c k_c``); mean-field
    parameterization only."""
    opts = options
    table = pi_l_table(game, pi_l)
    scheme = scheme.bind(game)
    seed = check_int("seed", seed, 0)
    if opts.parameterization != "mean-field":
        raise ValueError("parameterization = 'standard': a Stratified surrogate is "
                         "mean-field only (use parameterization='mean-field')")
    m, crn = opts.m, opts.crn_mode
    S, A, d = game.n_sg, game.n_ag, game.n_sl
    assert scheme.types is not None
    groups = type_groups(scheme.types)
    n_states = scheme.num_observations(d)
    size = S * n_states * A
    if size > opts.max_table:
        raise ValueError(
            f"sampling = {scheme.describe()}: the Q table has |S_g| |O| |A_g| = {S} x "
            f"{n_states} x {A} = {size:.3g} entries, above max_table = {opts.max_table:.3g}; "
            "use smaller per-type sample sizes or raise max_table")
    if m is not None and size * m > opts.max_samples:
        raise ValueError(f"m = {m}: |S_g| |O| |A_g| m = {size * m:.3g} stored samples exceed "
                         f"max_samples = {opts.max_samples:.3g}; use smaller ks or m")
    if m is None and S * n_states**2 > opts.max_exact_entries:
        raise ValueError(f"m = None (exact expectation): {scheme.describe()} needs |S_g| |O|^2 "
                         f"= {S * n_states**2:.3g} transition entries, above max_exact_entries "
                         f"= {opts.max_exact_entries:.3g}; use a sampled operator")
    K = game.local_kernel(table)
    rbar = game.local_reward(table)
    H = stratified_histograms(scheme.ks, scheme.types)
    coef = stratified_reward_weights(game, scheme)
    r_loc = np.ascontiguousarray(((H * coef) @ rbar).T)
    r_g = np.asarray(game.r_g, dtype=np.float64)
    t0 = time.perf_counter()
    draws: dict[str, int] = {"global": 0, "local_multinomial": 0, "local_agent": 0}
    model: Any
    depth = max(scheme.ks)
    if m is None:
        D = np.stack([exact_next_stratified(K[:, s, :], scheme.ks, groups) for s in range(S)])
        model = _ExactHistModel(D, game.P_g, r_g, r_loc, game.gamma)
    else:
        ranks = StratifiedRanks(scheme.ks, groups)
        ss_local, ss_global = child(seed, 0), child(seed, 1)
        # the products and the next global states on the kernels and threads of the uniform
        # surrogate (the same numbers for any thread count)
        fused = kernels.use_fused(S * n_states * m)
        threads = kernels.operator_threads(opts.threads, S * n_states * m)
        n_e = A if crn == "none" else 1
        chunk = max(64, (1 << 19) // (m * n_e * d))
        if crn == "pool":
            eta = sample_hist_pool(K, H, depth, m, opts.pool_size, ss_local, chunk, ranks)
            draws["local_agent"] = S * d * depth * max(opts.pool_size, m)
        else:
            eta = sample_hist_states(K, H, depth, m, n_e, ss_local, chunk, ranks)
            draws["local_multinomial"] = int(S * n_e * m * (H > 0).sum())
        if opts.exact_global:
            model = ExactGlobalModel(eta, game.P_g, r_g, r_loc, game.gamma, fused, threads)
        else:
            sg = sample_global(n_states, m, game.P_g, ss_global, fused, threads)
            draws["global"] = S * n_states * A * m
            model = _SampledModel(eta, sg, r_g, r_loc, game.gamma, fused, threads)
    pool = max(opts.pool_size, m) if m is not None and crn == "pool" else None
    return EmpiricalOperator(model, "mean-field", scheme.k, m, None if m is None else crn,
                             (S, n_states, A), draws, time.perf_counter() - t0, pool,
                             sampling=scheme, surrogate="stratified")
