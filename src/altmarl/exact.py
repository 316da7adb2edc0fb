"""Exact solver for small games: the ``n``-agent system as a Markov chain on ``(s_g, N)``
(SPEC 7, Definition D.1).

Local agents are exchangeable, so under a joint policy ``(pi_g, pi_l)`` the ``n``-agent
system is a Markov chain on ``(s_g, N)`` with ``N in H_n`` a count vector; it has
``|S_g| * C(n + |S_l| - 1, |S_l| - 1)`` states. Its exact transition is::

    P(a_g | s_g, N)   = sum_{h in H_k} W[N, h] [pi_g(s_g, h) = a_g],
                        W[N, h] = prod_x C(N_x, h_x) / C(n, k)     (multivariate hypergeometric)
    P(N' | N, s_g)    = law of sum_x Multinomial(N_x, K[x, s_g, .]),
                        K[x, s_g, x'] = sum_a pi_l[x, s_g, a] P_l[x, s_g, a, x']
    P(s_g' | s_g, N)  = sum_a P(a_g | s_g, N) P_g[s_g, a_g, s_g']

and, given the state, ``s_g'`` and ``N'`` are independent (``N'`` does not depend on
``a_g``; SPEC 1). The expected stage reward (SPEC eq. 1) is
``r_g(s_g, a_g) + (1/n) sum_x N_x rbar[x, s_g]`` with ``rbar`` from
:meth:`TabularGame.local_reward`.

The convolution over bins is computed with the probability generating function
``G_N(z) = prod_x (sum_y K[x, s_g, y] z_y)^{N_x}`` evaluated on the grid of
``(n + 1)``-th roots of unity in ``|S_l| - 1`` variables (the last coordinate of ``N'``
is ``n`` minus the others) and inverted with an FFT: exact up to floating-point round-off
(about ``1e-15`` per entry), vectorized over all ``N``.

What it offers:

* :meth:`ExactSolver.value` / :meth:`ExactSolver.values` — ``V(pi_g, pi_l)`` by one
  linear solve (dense LU, or GMRES on the structured operator for large chains);
* :meth:`ExactSolver.full_info_best_response` — the full-information global best
  response (policy iteration on the chain, exact; a :class:`GlobalPolicy` with ``k = n``);
* :meth:`ExactSolver.restricted_best_response` — best response among global policies
  that see a ``k``-sample histogram. This is *not* an MDP on ``(s_g, N)`` (the policy is a
  function of the sample ``h``, not of ``N``): exhaustive enumeration of the
  deterministic policies when ``|A_g|^{|S_g| |H_k|}`` is small (exact), otherwise a
  policy-improvement search whose value is a *lower bound*;
* :meth:`ExactSolver.local_best_response` — exhaustive enumeration of the deterministic
  shared local policies (``|A_l|^{|S_l| |S_g|}``), optionally refined by a local search
  over stochastic shared policies;
* :meth:`ExactSolver.nash_gap` — Definition D.1 with both global comparators.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from altmarl import planning
from altmarl.game import TabularGame
from altmarl.histogram import enumerate_histograms, num_histograms
from altmarl.policies import GlobalPolicy, LocalPolicy

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: default limit on the number of chain states ``|S_g| * |H_n|``
MAX_STATES = 6000
#: default limit on ``|A_g|^{|S_g| |H_k|}`` for exhaustive restricted best response
MAX_RESTRICTED_POLICIES = 4096
#: default limit on ``|A_l|^{|S_l| |S_g|}`` for exhaustive local best response
MAX_LOCAL_POLICIES = 4096
#: chains up to this many states are solved by dense LU; larger ones by GMRES
DENSE_LIMIT = 1000
#: complex entries per FFT chunk when building the count transition
_FFT_CHUNK = 1 << 21
#: float entries per batch of stacked chain matrices in the enumerations
_BATCH_ENTRIES = 1 << 23


# ---------------------------------------------------------------------------
# building blocks (pure functions, testable alone)
# ---------------------------------------------------------------------------


def hypergeometric_weights(states: IntArray, hists: IntArray) -> FloatArray:
    """``W[N, h] = prod_x C(N_x, h_x) / C(n, k)`` for every count vector ``N`` (rows of
    ``states``, each summing to ``n``) and histogram ``h`` (rows of ``hists``, each summing
    to ``k``): the law of the histogram of a uniform ``k``-subset drawn without replacement
    (SPEC 3). Rows sum to 1 (renormalized against round-off)."""
    N = np.asarray(states, dtype=np.int64)
    H = np.asarray(hists, dtype=np.int64)
    out = np.empty((N.shape[0], H.shape[0]))
    lgN = gammaln(N + 1.0)  # (M, d)
    lgH = gammaln(H + 1.0)  # (Hk, d)
    step = max(1, _BATCH_ENTRIES // max(1, H.size))
    for lo in range(0, N.shape[0], step):
        Nb = N[lo:lo + step, None, :]
        diff = Nb - H[None, :, :]
        ok = (diff >= 0).all(axis=-1)
        logc = (lgN[lo:lo + step, None, :] - lgH[None, :, :]
                - gammaln(np.maximum(diff, 0) + 1.0)).sum(axis=-1)
        w = np.where(ok, np.exp(logc - logc.max(axis=1, keepdims=True, where=ok,
                                                   initial=-np.inf)), 0.0)
        out[lo:lo + step] = w / w.sum(axis=1, keepdims=True)
    return out


def count_transition(K: FloatArray, states: IntArray) -> FloatArray:
    """``T[N, N'] = P(N' | N)`` when each of the ``N_x`` agents in bin ``x`` moves to
    ``x'`` with probability ``K[x, x']`` independently: the convolution over bins of
    ``Multinomial(N_x, K[x, .])`` (SPEC 7).

    ``K`` is ``(d, d)``, ``states`` the ``(M, d)`` enumeration of ``H_n`` in rank order;
    returns ``(M, M)`` with rows summing to 1. Computed by evaluating the generating
    function on a grid of roots of unity and inverting it with an FFT (exact up to
    round-off), vectorized over ``N``.
    """
    K = np.asarray(K, dtype=np.float64)
    S = np.asarray(states, dtype=np.int64)
    M, d = S.shape
    if d == 1:
        return np.ones((1, 1))
    n = int(S[0].sum())
    L = n + 1
    grid_shape = (L,) * (d - 1)
    # omega_y = exp(-2 pi i j_y / L) on the grid, for y < d - 1 (z_{d-1} = 1)
    w1 = np.exp(-2j * np.pi * np.arange(L) / L)
    base = np.broadcast_to(K[:, d - 1].astype(np.complex128).reshape((d,) + (1,) * (d - 1)),
                           (d,) + grid_shape).copy()
    for y in range(d - 1):
        shape = [1] * (d - 1)
        shape[y] = L
        base += K[:, y].reshape((d,) + (1,) * (d - 1)) * w1.reshape(shape)[None]
    base_flat = base.reshape(d, -1)  # (d, G)
    G = base_flat.shape[1]
    # flat grid index of every N' (its first d - 1 coordinates)
    strides = L ** np.arange(d - 2, -1, -1)
    col = (S[:, : d - 1] * strides).sum(axis=1)
    # G_N = exp(sum_x N_x log base_x): one complex matmul + exp; a zero base gets a log of
    # -800 so that base^0 = 1 and base^c = 0 (c >= 1) without 0 * inf
    mag = np.abs(base_flat)
    log_base = np.where(mag > 1e-300, np.log(np.where(mag > 1e-300, base_flat, 1.0)), -800.0)
    T = np.empty((M, M))
    step = max(1, _FFT_CHUNK // G)
    for lo in range(0, M, step):
        Nb = S[lo:lo + step]
        gen = np.exp(Nb.astype(np.float64) @ log_base)
        coef = np.fft.ifftn(gen.reshape((Nb.shape[0],) + grid_shape),
                            axes=tuple(range(1, d))).real.reshape(Nb.shape[0], G)
        T[lo:lo + step] = coef[:, col]
    np.clip(T, 0.0, None, out=T)
    T /= T.sum(axis=1, keepdims=True)
    return T


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------


@dataclass
class BestResponse:
    """A best response found by the exact solver.

    ``value`` is ``V`` from the initial distribution, ``values`` per chain state
    ``(|S_g|, |H_n|)``. ``exact`` says whether ``value`` is the maximum over the stated
    ``comparator`` class (otherwise it is a lower bound: the best deviation found).
    """

    policy: Any
    value: float
    values: FloatArray
    exact: bool
    comparator: str
    method: str
    evaluations: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"value": self.value, "exact": self.exact, "comparator": self.comparator,
                "method": self.method, "evaluations": self.evaluations,
                "seconds": self.seconds, **{k: v for k, v in self.info.items()
                                            if isinstance(v, int | float | str | bool)}}


@dataclass
class NashGapResult:
    """Exact Nash gap of ``(pi_g, pi_l)`` (Definition D.1, SPEC 7).

    * ``gap_g`` — restricted comparator (global policies of a ``k``-sample histogram);
      ``None`` if not computed. Exact iff ``gap_g_exact``, otherwise a lower bound.
    * ``gap_g_full`` — full-information comparator (policies of ``(s_g, N)``, Theorem 4.4);
      always exact. ``gap_g <= gap_g_full``.
    * ``gap_l`` — shared local policies ``Pi_l``. ``gap_l_exact`` is true when the maximum
      over ``Pi_l`` is provably attained by a deterministic policy (``n = 1`` or ``pi_g``
      ignores the sample); otherwise it is exact over deterministic shared policies and a
      lower bound over stochastic ones.
    * ``nash_gap = max(gap_g, gap_l)`` (``None`` without ``gap_g``),
      ``nash_gap_full = max(gap_g_full, gap_l)``.
    """

    value: float
    k: int
    n: int
    gap_g: float | None
    gap_g_exact: bool
    gap_g_full: float
    gap_l: float
    gap_l_exact: bool
    nash_gap: float | None
    nash_gap_full: float
    br_g: BestResponse | None
    br_g_full: BestResponse
    br_l: BestResponse

    @property
    def exact(self) -> bool:
        """True when ``nash_gap`` is exact (not a lower bound)."""
        return self.gap_g is not None and self.gap_g_exact and self.gap_l_exact

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "value": self.value, "k": self.k, "n": self.n,
            "gap_g": self.gap_g, "gap_g_exact": self.gap_g_exact,
            "gap_g_full": self.gap_g_full, "gap_l": self.gap_l, "gap_l_exact": self.gap_l_exact,
            "nash_gap": self.nash_gap, "nash_gap_full": self.nash_gap_full,
            "br_g": None if self.br_g is None else self.br_g.summary(),
            "br_g_full": self.br_g_full.summary(), "br_l": self.br_l.summary(),
        }

    def __str__(self) -> str:
        def fmt(v: float | None, exact: bool = True) -> str:
            if v is None:
                return "not computed"
            return f"{v:.6g}" + ("" if exact else " (lower bound)")

        return (
            f"Exact Nash gap (n={self.n}, k={self.k}), V(pi_g, pi_l) = {self.value:.6g}\n"
            f"  gap_g  (k-sample policies)     = {fmt(self.gap_g, self.gap_g_exact)}\n"
            f"  gap_g  (full information)      = {fmt(self.gap_g_full)}\n"
            f"  gap_l  (shared local policies) = {fmt(self.gap_l, self.gap_l_exact)}\n"
            f"  NashGap = {fmt(self.nash_gap, self.exact)}, "
            f"full-information NashGap = {fmt(self.nash_gap_full, self.gap_l_exact)}"
        )


# ---------------------------------------------------------------------------
# the solver
# ---------------------------------------------------------------------------


class ExactSolver:
    """Exact Markov chain of the ``n``-agent system on ``(s_g, N)`` (SPEC 7).

    Parameters
    ----------
    game
        A tabular game whose ``init`` has an exact ``log_pmf``.
    k
        Subsample size of the restricted global policy class (``1 <= k <= n``).
        :meth:`value` accepts global policies of any ``k``.
    max_states
        Refuse games whose chain has more than this many states ``|S_g| |H_n|``.
    max_restricted_policies, max_local_policies
        Limits for the exhaustive enumerations in the best responses.
    dense_limit
        Chains up to this size are solved by dense LU, larger ones by GMRES.
    """

    def __init__(
        self,
        game: TabularGame,
        k: int,
        *,
        max_states: int = MAX_STATES,
        max_restricted_policies: int = MAX_RESTRICTED_POLICIES,
        max_local_policies: int = MAX_LOCAL_POLICIES,
        dense_limit: int = DENSE_LIMIT,
    ) -> None:
        if not isinstance(game, TabularGame):
            raise ValueError(f"game: expected a TabularGame, got {type(game).__name__}")
        self.game = game
        self.k = game.check_k(k)
        self.n = game.n
        self.d = game.n_sl
        self.max_states = int(max_states)
        self.max_restricted_policies = int(max_restricted_policies)
        self.max_local_policies = int(max_local_policies)
        self.dense_limit = int(dense_limit)
        self.n_counts = num_histograms(self.n, self.d)
        self.n_states = game.n_sg * self.n_counts
        if self.n_states > self.max_states:
            raise ValueError(
                f"ExactSolver: game {game.name!r} is too large: its chain has |S_g| * "
                f"C(n + |S_l| - 1, |S_l| - 1) = {game.n_sg} * {self.n_counts} = "
                f"{self.n_states} states (n = {self.n}, |S_l| = {self.d}), above the limit "
                f"max_states = {self.max_states}; use a smaller n, raise max_states, or "
                "estimate the gap with altmarl.nash.estimate_nash_gap"
            )
        #: the count vectors ``H_n`` in rank order, ``(|H_n|, |S_l|)``
        self.states: IntArray = enumerate_histograms(self.n, self.d)
        self.init_prob: FloatArray = self._init_prob()
        self._W: dict[int, FloatArray] = {}
        self._T_cache: dict[bytes, FloatArray] = {}

    # --- pieces of the chain ---------------------------------------------------
    def _init_prob(self) -> FloatArray:
        g = self.game
        if not hasattr(g.init, "log_pmf"):
            raise ValueError("game.init: the exact solver needs an initial distribution "
                             "with log_pmf(s_g, counts, n)")
        sg = np.repeat(np.arange(g.n_sg), self.n_counts)
        cnt = np.tile(self.states, (g.n_sg, 1))
        p = np.exp(np.asarray(g.init.log_pmf(sg, cnt, self.n), dtype=np.float64))
        p = p.reshape(g.n_sg, self.n_counts)
        tot = float(p.sum())
        if not np.isfinite(tot) or abs(tot - 1.0) > 1e-6:
            raise ValueError(f"game.init.log_pmf: probabilities over (s_g, N) sum to {tot!r}: "
                             "expected 1")
        return p / tot

    def hypergeometric(self, k: int) -> FloatArray:
        """``W[N, h]``: law of the ``k``-sample histogram given the counts, ``(|H_n|, |H_k|)``."""
        k = self.game.check_k(k)
        if k not in self._W:
            if k == self.n:
                self._W[k] = np.eye(self.n_counts)
            else:
                self._W[k] = hypergeometric_weights(self.states,
                                                    enumerate_histograms(k, self.d))
        return self._W[k]

    def count_transitions(self, pi_l: LocalPolicy | FloatArray) -> FloatArray:
        """``T[s_g, N, N'] = P(N' | N, s_g)`` under the shared local policy, ``(|S_g|, M, M)``."""
        table = self._local_table(pi_l)
        key = table.tobytes()
        T = self._T_cache.get(key)
        if T is None:
            K = self.game.local_kernel(table)  # (x, g, x')
            T = np.stack([count_transition(K[:, g, :], self.states)
                          for g in range(self.game.n_sg)])
            if len(self._T_cache) >= 4:
                self._T_cache.pop(next(iter(self._T_cache)))
            self._T_cache[key] = T
        return T

    def action_probs(self, pi_g: GlobalPolicy) -> FloatArray:
        """``P(a_g | s_g, N)``, ``(|S_g|, M, |A_g|)`` (hypergeometric mixture, SPEC 7)."""
        self._check_global(pi_g)
        W = self.hypergeometric(pi_g.k)
        onehot = np.zeros(pi_g.actions.shape + (self.game.n_ag,))
        np.put_along_axis(onehot, pi_g.actions[..., None], 1.0, axis=-1)
        return np.einsum("mh,gha->gma", W, onehot)

    def local_reward(self, pi_l: LocalPolicy | FloatArray) -> FloatArray:
        """``(1/n) sum_x N_x rbar[x, s_g]`` per chain state, ``(|S_g|, M)``."""
        rbar = self.game.local_reward(self._local_table(pi_l))  # (x, g)
        return np.asarray((self.states @ rbar).T / self.n, dtype=np.float64)

    def transition_matrix(self, pi_g: GlobalPolicy, pi_l: LocalPolicy) -> FloatArray:
        """The full chain ``P[s_g, N, s_g', N']``, shape ``(|S_g|, M, |S_g|, M)``."""
        A = self._global_kernel(self.action_probs(pi_g))
        T = self.count_transitions(pi_l)
        return np.einsum("gmh,gmn->gmhn", A, T)

    def expected_reward(self, pi_g: GlobalPolicy, pi_l: LocalPolicy) -> FloatArray:
        """Expected stage reward per chain state (SPEC eq. 1), ``(|S_g|, M)``."""
        pa = self.action_probs(pi_g)
        return np.asarray(np.einsum("gma,ga->gm", pa, self.game.r_g) + self.local_reward(pi_l),
                          dtype=np.float64)

    # --- values ---------------------------------------------------------------
    def values(self, pi_g: GlobalPolicy, pi_l: LocalPolicy) -> FloatArray:
        """``V(s_g, N)`` of the joint policy for every chain state, ``(|S_g|, |H_n|)``."""
        pa = self.action_probs(pi_g)
        return self._evaluate(pa, self.count_transitions(pi_l), self.local_reward(pi_l))

    def value(self, pi_g: GlobalPolicy, pi_l: LocalPolicy) -> float:
        """``V(pi_g, pi_l)`` from the initial distribution (SPEC eq. 2), exactly."""
        return float((self.init_prob * self.values(pi_g, pi_l)).sum())

    def _evaluate(self, pa: FloatArray, T: FloatArray, rloc: FloatArray) -> FloatArray:
        g = self.game
        A = self._global_kernel(pa)  # (g, m, g')
        r = np.einsum("gma,ga->gm", pa, g.r_g) + rloc
        S = self.n_states
        if S <= self.dense_limit:
            P = np.einsum("gmh,gmn->gmhn", A, T).reshape(S, S)
            return planning.evaluate_dense(P, r.reshape(S), g.gamma).reshape(r.shape)
        return self._evaluate_iterative(A, T, r)

    def _evaluate_iterative(self, A: FloatArray, T: FloatArray, r: FloatArray) -> FloatArray:
        """GMRES on the structured chain operator ``V -> E[V(s_g', N') | s_g, N]``
        (:func:`altmarl.planning.evaluate_scipy_gmres`), for chains above ``dense_limit``."""
        shape = r.shape

        def p_matvec(v: FloatArray) -> FloatArray:
            V = v.reshape(shape)
            EV = np.matmul(T, V.T)
            return np.asarray((A * EV).sum(axis=-1).reshape(-1))

        V = planning.evaluate_scipy_gmres(p_matvec, r.reshape(-1), self.game.gamma,
                                          rtol=1e-13, restart=60, maxiter=200, check=1e-9,
                                          name="ExactSolver")
        return V.reshape(shape)

    def occupancy(self, pi_g: GlobalPolicy, pi_l: LocalPolicy) -> FloatArray:
        """Discounted state occupancy ``d(s) = sum_t gamma^t P(s_t = s)`` from the initial
        distribution (sums to ``1 / (1 - gamma)``), ``(|S_g|, |H_n|)``."""
        return self._occupancy(self._global_kernel(self.action_probs(pi_g)),
                               self.count_transitions(pi_l))

    def _occupancy(self, A: FloatArray, T: FloatArray) -> FloatArray:
        S = self.n_states
        gamma = self.game.gamma
        if S <= self.dense_limit:
            # d = sum_t gamma^t (P^T)^t mu: the dense policy-evaluation solve on P^T
            P = np.einsum("gmh,gmn->gmhn", A, T).reshape(S, S)
            d = planning.evaluate_dense(P.T, self.init_prob.reshape(S), gamma)
            return d.reshape(self.init_prob.shape)
        # power series (gamma-contraction), to relative accuracy 1e-12
        d = self.init_prob.copy()
        cur = self.init_prob.copy()
        for _ in range(int(np.ceil(np.log(1e-12) / np.log(max(gamma, 1e-3)))) + 1):
            # (P^T cur)[h, n] = sum_{g, m} cur[g, m] A[g, m, h] T[g, m, n]
            cur = gamma * np.einsum("gm,gmh,gmn->hn", cur, A, T)
            d += cur
        return d

    # --- best responses ---------------------------------------------------------
    def full_info_best_response(self, pi_l: LocalPolicy, max_iter: int = 200) -> BestResponse:
        """Optimal global policy with full information (sees ``N``), for fixed ``pi_l``:
        policy iteration on the chain over actions ``a_g`` (exact). The policy is a
        :class:`GlobalPolicy` with ``k = n`` (a ``k = n`` sample is the whole count vector);
        its ``q`` holds ``Q*(s_g, N, a_g)``."""
        t0 = time.perf_counter()
        g = self.game
        T = self.count_transitions(pi_l)
        rloc = self.local_reward(pi_l)
        res = planning.policy_iteration(
            lambda acts: self._evaluate(_onehot(acts, g.n_ag), T, rloc),
            lambda V: self._q_from_v(V, T, rloc),
            np.zeros((g.n_sg, self.n_counts), dtype=np.int64), max_iter, scale="best")
        if not res.converged:
            raise RuntimeError("full_info_best_response: policy iteration did not converge")
        assert res.actions is not None
        actions, V, Q, evals = res.actions, res.v, res.q, res.iterations
        policy = GlobalPolicy(self.n, actions, g.n_ag, q=Q,
                              info={"kind": "full-information best response (exact)",
                                    "method": "policy iteration"}, game=g)
        value = float((self.init_prob * V).sum())
        return BestResponse(policy, value, V, True, "full information (policies of (s_g, N))",
                            "policy iteration on the (s_g, N) chain", evals,
                            time.perf_counter() - t0)

    def _q_from_v(self, V: FloatArray, T: FloatArray, rloc: FloatArray) -> FloatArray:
        g = self.game
        EV = np.matmul(T, V.T)  # E[V(s_g', N') | s_g, N] for each s_g'
        return np.asarray(g.r_g[:, None, :] + rloc[:, :, None]
                          + g.gamma * np.einsum("gah,gmh->gma", g.P_g, EV), dtype=np.float64)

    def restricted_best_response(
        self,
        pi_l: LocalPolicy,
        starts: list[GlobalPolicy] | None = None,
        method: str = "auto",
        max_evals: int = 300,
        k: int | None = None,
    ) -> BestResponse:
        """Best global policy among those that see a ``k``-sample histogram
        (``pi_g(s_g, h)``, ``h in H_k``; deterministic maps as in SPEC 2).

        ``method="enumerate"`` evaluates all ``|A_g|^{|S_g| |H_k|}`` policies (exact;
        refused above ``max_restricted_policies``). ``method="search"`` is a
        policy-improvement search (not exact: the problem is not an MDP on ``(s_g, N)``):
        from each start (``starts``, the occupancy-weighted projection of the
        full-information optimum and the constant policies) it repeatedly proposes
        ``pi'(s_g, h) = argmax_a sum_N d(s_g, N) W[N, h] Q(s_g, N, a)`` (first-order
        improvement, performance-difference lemma) and, if that does not improve the
        exact value, single-cell changes in order of estimated gain; every candidate is
        evaluated exactly and only improvements are kept. Its value is a lower bound on
        the restricted optimum. ``"auto"``: exact MDP when ``k = n``, enumeration when
        allowed, otherwise search. ``k`` overrides the solver's subsample size.
        """
        if method not in ("auto", "enumerate", "search"):
            raise ValueError(f"method = {method!r}: expected 'auto', 'enumerate' or 'search'")
        if k is not None and k != self.k:
            other = ExactSolver.__new__(ExactSolver)
            other.__dict__.update(self.__dict__)
            other.k = self.game.check_k(k)
            return other.restricted_best_response(pi_l, starts, method, max_evals)
        g = self.game
        H = num_histograms(self.k, self.d)
        count = _count(g.n_ag, g.n_sg * H)
        if method == "auto":
            if self.k == self.n:
                br = self.full_info_best_response(pi_l)
                br.comparator = f"k-sample policies (k = n = {self.n}: full information)"
                return br
            method = "enumerate" if count <= self.max_restricted_policies else "search"
        if method == "enumerate":
            if count > self.max_restricted_policies:
                raise ValueError(
                    f"restricted_best_response: |A_g|^(|S_g| |H_k|) = {g.n_ag}^({g.n_sg} * {H})"
                    f" = {count:.4g} policies, above max_restricted_policies = "
                    f"{self.max_restricted_policies}; use method='search' (lower bound)")
            return self._restricted_enumerate(pi_l)
        return self._restricted_search(pi_l, starts or [], max_evals)

    def _restricted_enumerate(self, pi_l: LocalPolicy) -> BestResponse:
        t0 = time.perf_counter()
        g = self.game
        H = num_histograms(self.k, self.d)
        W = self.hypergeometric(self.k)
        T = self.count_transitions(pi_l)
        rloc = self.local_reward(pi_l)
        cells = g.n_sg * H
        total = g.n_ag ** cells
        best_v, best_idx, best_V = -np.inf, 0, None
        S = self.n_states
        chunk = max(1, _BATCH_ENTRIES // (S * S))
        for lo in range(0, total, chunk):
            idx = np.arange(lo, min(total, lo + chunk))
            acts = _digits(idx, g.n_ag, cells).reshape(-1, g.n_sg, H)
            onehot = np.zeros(acts.shape + (g.n_ag,))
            np.put_along_axis(onehot, acts[..., None], 1.0, axis=-1)
            pa = np.einsum("mh,bgha->bgma", W, onehot)
            Vb = self._evaluate_batch(pa, T[None], rloc[None])
            vals = (Vb * self.init_prob).sum(axis=(1, 2))
            j = int(vals.argmax())
            if vals[j] > best_v:
                best_v, best_idx, best_V = float(vals[j]), int(idx[j]), Vb[j]
        best_acts = _digits(np.array([best_idx]), g.n_ag, cells).reshape(g.n_sg, H)
        policy = GlobalPolicy(self.k, best_acts, g.n_ag,
                              info={"kind": "restricted best response (exhaustive)"}, game=g)
        assert best_V is not None
        return BestResponse(policy, best_v, best_V, True, f"k-sample policies (k = {self.k})",
                            "exhaustive enumeration of deterministic policies", total,
                            time.perf_counter() - t0)

    def _restricted_search(self, pi_l: LocalPolicy, starts: list[GlobalPolicy],
                           max_evals: int) -> BestResponse:
        t0 = time.perf_counter()
        g = self.game
        H = num_histograms(self.k, self.d)
        W = self.hypergeometric(self.k)
        T = self.count_transitions(pi_l)
        rloc = self.local_reward(pi_l)
        evals = 0

        def evaluate(acts: IntArray) -> tuple[float, FloatArray]:
            nonlocal evals
            evals += 1
            V = self._evaluate(np.einsum("mh,gha->gma", W, _onehot(acts, g.n_ag)), T, rloc)
            return float((self.init_prob * V).sum()), V

        # candidate starts: given ones, projection of the full-information optimum, constants
        cands: list[IntArray] = []
        for s in starts:
            self._check_global(s)
            if s.k != self.k:
                raise ValueError(f"starts: expected policies with k = {self.k}, got k = {s.k}")
            cands.append(np.asarray(s.actions, dtype=np.int64))
        full = self.full_info_best_response(pi_l)
        evals += full.evaluations
        assert full.policy.q is not None
        d_full = self._occupancy(self._global_kernel(_onehot(full.policy.actions, g.n_ag)), T)
        cands.append(np.einsum("gm,mh,gma->gha", d_full, W, full.policy.q).argmax(axis=-1))
        for a in range(g.n_ag):
            cands.append(np.full((g.n_sg, H), a, dtype=np.int64))
        best_acts, best_v, best_V = cands[0], -np.inf, np.zeros_like(self.init_prob)
        for c in cands:
            v, V = evaluate(c)
            if v > best_v:
                best_acts, best_v, best_V = c, v, V
        rounds = 0
        tol = 1e-12 * max(1.0, abs(best_v))
        while evals < max_evals:
            rounds += 1
            pa = np.einsum("mh,gha->gma", W, _onehot(best_acts, g.n_ag))
            Q = self._q_from_v(best_V, T, rloc)
            dist = self._occupancy(self._global_kernel(pa), T)
            score = np.einsum("gm,mh,gma->gha", dist, W, Q)
            cur = np.take_along_axis(score, best_acts[..., None], axis=-1)[..., 0]
            gain = score.max(axis=-1) - cur
            prop = np.where(gain > 1e-12 * np.maximum(1.0, np.abs(cur)),
                            score.argmax(axis=-1), best_acts)
            improved = False
            if (prop != best_acts).any():
                v, V = evaluate(prop)
                if v > best_v + tol:
                    best_acts, best_v, best_V, improved = prop, v, V, True
            if not improved:
                # single-cell changes, best estimated gain first (every action per cell)
                order = np.dstack(np.unravel_index(np.argsort(-(score - cur[..., None]),
                                                              axis=None), score.shape))[0]
                for gi, hi, ai in order:
                    if evals >= max_evals:
                        break
                    if ai == best_acts[gi, hi]:
                        continue
                    trial = best_acts.copy()
                    trial[gi, hi] = ai
                    v, V = evaluate(trial)
                    if v > best_v + tol:
                        best_acts, best_v, best_V, improved = trial, v, V, True
                        break
            if not improved:
                break
        policy = GlobalPolicy(self.k, best_acts, g.n_ag,
                              info={"kind": "restricted best response (search, lower bound)"},
                              game=g)
        return BestResponse(policy, best_v, best_V, False, f"k-sample policies (k = {self.k})",
                            "policy-improvement search (lower bound)", evals,
                            time.perf_counter() - t0,
                            info={"rounds": rounds, "budget_exhausted": evals >= max_evals})

    def local_best_response(
        self,
        pi_g: GlobalPolicy,
        method: str = "auto",
        refine: bool = True,
        max_refine_evals: int = 400,
        max_search_evals: int = 2000,
        start: LocalPolicy | None = None,
    ) -> BestResponse:
        """Best shared local policy for fixed ``pi_g`` (SPEC 5's objective).

        ``method``:

        * ``"enumerate"`` — all ``|A_l|^{|S_l| |S_g|}`` deterministic shared policies
          (refused above ``max_local_policies``), vectorized: the count transition is built
          once per ``(s_g, column of actions)``;
        * ``"search"`` — coordinate ascent over deterministic tables from the greedy
          actions of ``start`` (every cell, every action, exact values; a lower bound);
        * ``"auto"`` — if ``pi_g`` ignores the sample (its action depends on ``s_g``
          only), every agent faces its own MDP on ``(s_l, s_g)`` and its optimal
          deterministic policy is the exact best response (solved directly, any size);
          else enumeration when allowed, else search.

        With ``refine``, a bounded local search (L-BFGS-B on softmax logits, numerical
        gradients of the exact value) from the best deterministic policy and from
        ``start`` looks for a better *stochastic* shared policy. ``exact`` is true only
        when the maximum over ``Pi_l`` is certain: ``pi_g`` ignores the sample, or ``n = 1``
        with enumeration (a single agent faces an MDP); otherwise the value is exact over
        deterministic shared policies (enumeration) and a lower bound over ``Pi_l``.
        """
        if method not in ("auto", "enumerate", "search"):
            raise ValueError(f"method = {method!r}: expected 'auto', 'enumerate' or 'search'")
        t0 = time.perf_counter()
        g = self.game
        self._check_global(pi_g)
        decoupled = bool((pi_g.actions == pi_g.actions[:, :1]).all())
        count = _count(g.n_al, g.n_sl * g.n_sg)
        if method == "auto":
            if decoupled:
                return self._local_decoupled(pi_g, t0)
            method = "enumerate" if count <= self.max_local_policies else "search"
        if method == "enumerate":
            if count > self.max_local_policies:
                raise ValueError(
                    f"local_best_response: |A_l|^(|S_l| |S_g|) = {g.n_al}^({g.n_sl} * {g.n_sg})"
                    f" = {count:.4g} deterministic shared policies, above max_local_policies = "
                    f"{self.max_local_policies}; use method='search' (lower bound) or "
                    "altmarl.nash.estimate_nash_gap")
            policy, best_v, best_V, evals = self._local_enumerate(pi_g)
            how = "exhaustive enumeration of deterministic shared policies"
        else:
            st = start if start is not None else LocalPolicy.uniform(g)
            policy, best_v, best_V, evals = self._local_search(pi_g, st.greedy_actions(),
                                                               max_search_evals)
            how = "coordinate ascent over deterministic shared policies (lower bound)"
        refined_gain = 0.0
        if refine and g.n_al > 1:
            r_pol, r_v, r_V, r_evals = self._refine_local(
                pi_g, [policy] + ([start] if start is not None else []), max_refine_evals)
            evals += r_evals
            how += " + stochastic refinement (L-BFGS-B)"
            if r_v > best_v + 1e-12 * max(1.0, abs(best_v)):
                refined_gain = r_v - best_v
                policy, best_v, best_V = r_pol, r_v, r_V
        exact = decoupled or (self.n == 1 and method == "enumerate")
        return BestResponse(policy, best_v, best_V, exact, "shared local policies Pi_l",
                            how, evals, time.perf_counter() - t0,
                            info={"refinement_gain": refined_gain,
                                  "deterministic_optimal_proven": exact})

    def _local_decoupled(self, pi_g: GlobalPolicy, t0: float) -> BestResponse:
        """``pi_g`` depends on ``s_g`` only: the representative agent's MDP on
        ``(s_l, s_g)`` with kernel ``P_l[x, g, a, x'] P_g[g, pi_g(g), g']`` is exact; its
        optimal deterministic policy is optimal for every agent from every state."""
        g = self.game
        Pg = g.P_g[np.arange(g.n_sg), pi_g.actions[:, 0]]  # (g, g')
        kernel = np.einsum("xgay,gh->xgayh", g.P_l, Pg)
        xs, gs = np.meshgrid(np.arange(g.n_sl), np.arange(g.n_sg), indexing="ij")

        def evaluate(acts: IntArray) -> FloatArray:
            P = kernel[xs, gs, acts].reshape(g.n_sl * g.n_sg, -1)
            r = g.r_l[xs, gs, acts].reshape(-1)
            return planning.evaluate_dense(P, r, g.gamma).reshape(g.n_sl, g.n_sg)

        def q_from_v(V: FloatArray) -> FloatArray:
            return np.asarray(g.r_l + g.gamma * np.einsum("xgayh,yh->xga", kernel, V))

        # policy iteration (exact, finite)
        res = planning.policy_iteration(evaluate, q_from_v,
                                        np.zeros((g.n_sl, g.n_sg), dtype=np.int64), 1000,
                                        scale="current")
        assert res.actions is not None
        acts = res.actions
        policy = LocalPolicy.deterministic(g, acts)
        policy.info = {"kind": "local best response (decoupled: representative-agent MDP)"}
        values = self.values(pi_g, policy)
        value = float((self.init_prob * values).sum())
        return BestResponse(policy, value, values, True, "shared local policies Pi_l",
                            "representative-agent MDP (pi_g ignores the sample: exact)", 1,
                            time.perf_counter() - t0,
                            info={"refinement_gain": 0.0, "deterministic_optimal_proven": True})

    def _local_enumerate(self, pi_g: GlobalPolicy) -> tuple[LocalPolicy, float, FloatArray, int]:
        g = self.game
        pa = self.action_probs(pi_g)
        cols = np.array(list(itertools.product(range(g.n_al), repeat=g.n_sl)), dtype=np.int64)
        C = cols.shape[0]
        # T[g, c] and rloc[g, c] for every s_g and column of actions c (actions per s_l)
        Tc = np.empty((g.n_sg, C, self.n_counts, self.n_counts))
        rc = np.empty((g.n_sg, C, self.n_counts))
        xs = np.arange(g.n_sl)
        for gi in range(g.n_sg):
            for ci, col in enumerate(cols):
                K = g.P_l[xs, gi, col, :]
                Tc[gi, ci] = count_transition(K, self.states)
                rc[gi, ci] = self.states @ g.r_l[xs, gi, col] / self.n
        total = C ** g.n_sg
        S = self.n_states
        chunk = max(1, _BATCH_ENTRIES // (S * S))
        best_v, best_idx, best_V = -np.inf, 0, None
        gidx = np.arange(g.n_sg)
        for lo in range(0, total, chunk):
            idx = np.arange(lo, min(total, lo + chunk))
            choice = _digits(idx, C, g.n_sg)  # (B, S_g): column index per s_g
            Tb = Tc[gidx[None, :], choice]  # (B, S_g, M, M)
            rb = rc[gidx[None, :], choice]  # (B, S_g, M)
            Vb = self._evaluate_batch(pa[None], Tb, rb)
            vals = (Vb * self.init_prob).sum(axis=(1, 2))
            j = int(vals.argmax())
            if vals[j] > best_v:
                best_v, best_idx, best_V = float(vals[j]), int(idx[j]), Vb[j]
        choice = _digits(np.array([best_idx]), C, g.n_sg)[0]
        acts = cols[choice].T  # (S_l, S_g)
        policy = LocalPolicy.deterministic(g, acts)
        policy.info = {"kind": "local best response (exhaustive deterministic)"}
        assert best_V is not None
        return policy, best_v, best_V, total

    def _local_search(self, pi_g: GlobalPolicy, acts0: IntArray,
                      max_evals: int) -> tuple[LocalPolicy, float, FloatArray, int]:
        g = self.game
        pa = self.action_probs(pi_g)
        evals = 0

        def evaluate(acts: IntArray) -> tuple[float, FloatArray]:
            nonlocal evals
            evals += 1
            tab = _onehot(acts, g.n_al)
            V = self._evaluate(pa, self.count_transitions(tab), self.local_reward(tab))
            return float((self.init_prob * V).sum()), V

        acts = np.asarray(acts0, dtype=np.int64).copy()
        best_v, best_V = evaluate(acts)
        improved = True
        while improved and evals < max_evals:
            improved = False
            for x, gi, a in itertools.product(range(g.n_sl), range(g.n_sg), range(g.n_al)):
                if evals >= max_evals:
                    break
                if acts[x, gi] == a:
                    continue
                trial = acts.copy()
                trial[x, gi] = a
                v, V = evaluate(trial)
                if v > best_v + 1e-12 * max(1.0, abs(best_v)):
                    acts, best_v, best_V, improved = trial, v, V, True
        policy = LocalPolicy.deterministic(g, acts)
        policy.info = {"kind": "local best response (coordinate ascent, lower bound)"}
        return policy, best_v, best_V, evals

    def _refine_local(self, pi_g: GlobalPolicy, starts: list[LocalPolicy],
                      max_evals: int) -> tuple[LocalPolicy, float, FloatArray, int]:
        from scipy.optimize import minimize

        g = self.game
        pa = self.action_probs(pi_g)
        shape = (g.n_sl, g.n_sg, g.n_al)
        evals = 0
        best: tuple[float, FloatArray | None, FloatArray | None] = (-np.inf, None, None)

        def table_of(theta: FloatArray) -> FloatArray:
            z = theta.reshape(shape)
            z = z - z.max(axis=-1, keepdims=True)
            e = np.exp(z)
            return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)

        def neg_value(theta: FloatArray) -> float:
            nonlocal evals, best
            evals += 1
            tab = table_of(theta)
            V = self._evaluate(pa, self.count_transitions(tab), self.local_reward(tab))
            v = float((self.init_prob * V).sum())
            if v > best[0]:
                best = (v, tab, V)
            return -v

        per_start = max(1, max_evals // max(1, len(starts)))
        for s in starts:
            # soften one-hot starts so the softmax gradient does not vanish
            theta0 = np.log(0.9 * s.table + 0.1 / g.n_al).reshape(-1)
            budget = max(1, min(per_start, max_evals - evals))
            minimize(neg_value, theta0, method="L-BFGS-B",
                     options={"maxfun": budget, "maxiter": budget})
            if evals >= max_evals:
                break
        v, tab, V = best
        assert tab is not None and V is not None
        pol = LocalPolicy(tab, {"kind": "local best response (stochastic refinement)"}, g)
        return pol, v, V, evals

    def _evaluate_batch(self, pa: FloatArray, T: FloatArray, rloc: FloatArray) -> FloatArray:
        """Values of a batch of chains: ``pa`` (B|1, S_g, M, A), ``T`` (B|1, S_g, M, M),
        ``rloc`` (B|1, S_g, M) -> (B, S_g, M), by batched dense solves (or one by one)."""
        g = self.game
        B = max(pa.shape[0], T.shape[0], rloc.shape[0])
        S = self.n_states
        if S > self.dense_limit:
            return np.stack([self._evaluate(pa[min(b, pa.shape[0] - 1)],
                                            T[min(b, T.shape[0] - 1)],
                                            rloc[min(b, rloc.shape[0] - 1)]) for b in range(B)])
        A = np.einsum("bgma,gah->bgmh", pa, g.P_g)
        r = np.einsum("bgma,ga->bgm", pa, g.r_g) + rloc
        P = (A[:, :, :, :, None] * T[:, :, :, None, :]).reshape(-1, S, S)
        sol = planning.evaluate_dense_batch(P, r.reshape(-1, S), g.gamma)
        return sol.reshape(B, g.n_sg, self.n_counts)

    # --- Nash gap ------------------------------------------------------------------
    def nash_gap(
        self,
        pi_g: GlobalPolicy,
        pi_l: LocalPolicy,
        restricted: str = "auto",
        local: str = "auto",
        refine_local: bool = True,
        max_search_evals: int = 300,
    ) -> NashGapResult:
        """Nash gap of ``(pi_g, pi_l)`` (Definition D.1, SPEC 7) with both global
        comparators.

        ``restricted``: ``"auto"`` (exact when ``k = n`` or enumeration is allowed,
        otherwise a search that gives a lower bound), ``"enumerate"``, ``"search"`` or
        ``"skip"``; ``local``: ``"auto"``, ``"enumerate"`` or ``"search"`` (see
        :meth:`local_best_response`). The deviation sets contain the current policies, so
        every gap is ``>= 0``; values are computed exactly, gaps are differences of exact values.
        """
        if restricted not in ("auto", "enumerate", "search", "skip"):
            raise ValueError(f"restricted = {restricted!r}: expected 'auto', 'enumerate', "
                             "'search' or 'skip'")
        v0 = self.value(pi_g, pi_l)
        br_full = self.full_info_best_response(pi_l)
        gap_full = max(0.0, br_full.value - v0)
        br_g: BestResponse | None = None
        gap_g: float | None = None
        gap_g_exact = False
        if restricted != "skip":
            starts = [pi_g] if pi_g.k == self.k else []
            br_g = self.restricted_best_response(pi_l, starts=starts, method=restricted,
                                                 max_evals=max_search_evals)
            gap_g = max(0.0, br_g.value - v0)
            gap_g_exact = br_g.exact
        br_l = self.local_best_response(pi_g, method=local, refine=refine_local, start=pi_l)
        gap_l = max(0.0, br_l.value - v0)
        return NashGapResult(
            value=v0, k=self.k, n=self.n,
            gap_g=gap_g, gap_g_exact=gap_g_exact, gap_g_full=gap_full,
            gap_l=gap_l, gap_l_exact=br_l.exact,
            nash_gap=None if gap_g is None else max(gap_g, gap_l),
            nash_gap_full=max(gap_full, gap_l),
            br_g=br_g, br_g_full=br_full, br_l=br_l,
        )

    # --- helpers ----------------------------------------------------------------
    def _global_kernel(self, pa: FloatArray) -> FloatArray:
        """``A[s_g, N, s_g'] = sum_a P(a | s_g, N) P_g[s_g, a, s_g']``."""
        return np.asarray(np.einsum("gma,gah->gmh", pa, self.game.P_g), dtype=np.float64)

    def _local_table(self, pi_l: LocalPolicy | FloatArray) -> FloatArray:
        table = pi_l.table if isinstance(pi_l, LocalPolicy) else np.asarray(pi_l, np.float64)
        g = self.game
        if table.shape != (g.n_sl, g.n_sg, g.n_al):
            raise ValueError(f"pi_l.table: expected shape {(g.n_sl, g.n_sg, g.n_al)} for game "
                             f"{g.name!r}, got {table.shape}")
        return np.ascontiguousarray(table)

    def _check_global(self, pi_g: GlobalPolicy) -> None:
        g = self.game
        if (pi_g.n_sg, pi_g.n_sl, pi_g.n_ag) != (g.n_sg, g.n_sl, g.n_ag):
            raise ValueError(f"pi_g: made for |S_g|={pi_g.n_sg}, |S_l|={pi_g.n_sl}, "
                             f"|A_g|={pi_g.n_ag}; game {g.name!r} has {g.spaces}")
        g.check_k(pi_g.k)

    def __repr__(self) -> str:
        return (f"ExactSolver(game={self.game.name!r}, n={self.n}, k={self.k}, "
                f"states={self.n_states})")


def _count(base: int, exponent: int) -> float:
    """``base ** exponent`` as a float, ``inf`` when it would overflow."""
    if base <= 1:
        return 1.0
    return math.inf if exponent * math.log(base) > 700 else float(base) ** exponent


def _onehot(actions: IntArray, n_actions: int) -> FloatArray:
    out = np.zeros(actions.shape + (n_actions,))
    np.put_along_axis(out, actions[..., None], 1.0, axis=-1)
    return out


def _digits(idx: IntArray, base: int, width: int) -> IntArray:
    """Base-``base`` digits of each index (most significant first), ``(len(idx), width)``."""
    idx = np.asarray(idx, dtype=np.int64)
    powers = base ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return np.asarray((idx[:, None] // powers[None, :]) % base, dtype=np.int64)


__all__ = [
    "BestResponse",
    "ExactSolver",
    "NashGapResult",
    "count_transition",
    "hypergeometric_weights",
]
