"""The ``n``-agent system as a Markov chain on ``(s_g, N)`` (SPEC 7, Definition D.1).

Local agents are exchangeable, so under a joint policy ``(pi_g, pi_l)`` the ``n``-agent
system is a Markov chain on ``(s_g, N)`` with ``N in H_n`` a count vector; it has
``|S_g| * C(n + |S_l| - 1, |S_l| - 1)`` states. Its exact transition is::

    P(a_g | s_g, N)   = sum_{h in H_k} W[N, h] [pi_g(s_g, h) = a_g],
                        W[N, h] = prod_x C(N_x, h_x) / C(n, k)     (multivariate hypergeometric)

(SPEC 12: under another sampling scheme ``W`` is that scheme's law of ``h`` given ``N``,
:meth:`altmarl.sampling.Stratified.law` / :meth:`altmarl.sampling.Weighted.law`; for a typed
game the count vectors are those with per-type sums ``n_c``, ``prod_c C(n_c + |S_c| - 1,
|S_c| - 1)`` of them, in the index order of ``Stratified(type_counts)``)
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

This module holds the pieces: :func:`count_transition`
and :class:`CountChain` (the state space, the initial law and the per-policy kernels of
one game). Values are in :mod:`altmarl.exact.values`, best responses in
:mod:`altmarl.exact.best_response`, the Nash gap in :mod:`altmarl.exact.nash_gap`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from altmarl.game import TabularGame
from altmarl.glearn.operator import pi_l_table
from altmarl.histogram import num_histograms
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme, Stratified, Uniform, check_observable
from altmarl.sampling import hypergeometric_weights as hypergeometric_weights

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: default limit on the number of chain states ``|S_g| * |H_n|``
MAX_STATES = 6000
#: chains up to this many states are solved by dense LU; larger ones by GMRES
DENSE_LIMIT = 1000
#: complex entries per FFT chunk when building the count transition
FFT_CHUNK = 1 << 21
#: float entries per batch of stacked arrays (hypergeometric weights, enumerations)
BATCH_ENTRIES = 1 << 23
#: count transitions kept per chain (one per recently used local policy)
T_CACHE_SIZE = 4


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
    step = max(1, FFT_CHUNK // G)
    for lo in range(0, M, step):
        Nb = S[lo:lo + step]
        gen = np.exp(Nb.astype(np.float64) @ log_base)
        coef = np.fft.ifftn(gen.reshape((Nb.shape[0],) + grid_shape),
                            axes=tuple(range(1, d))).real.reshape(Nb.shape[0], G)
        T[lo:lo + step] = coef[:, col]
    np.clip(T, 0.0, None, out=T)
    T /= T.sum(axis=1, keepdims=True)
    return T


def onehot(actions: IntArray, n_actions: int) -> FloatArray:
    """The deterministic policy ``actions`` as a table of probabilities: shape
    ``actions.shape + (n_actions,)`` with a 1 at each chosen action."""
    out = np.zeros(actions.shape + (n_actions,))
    np.put_along_axis(out, actions[..., None], 1.0, axis=-1)
    return out


class CountChain:
    """The state space ``(s_g, N)``, ``N in H_n``, of one game and its per-policy pieces
    (SPEC 7): the initial law, the hypergeometric action law, the count transitions, the
    global kernel, the expected reward and the full transition matrix.

    Parameters
    ----------
    game
        A tabular game whose ``init`` has an exact ``log_pmf``.
    max_states
        Refuse games whose chain has more than this many states ``|S_g| |H_n|``.
    dense_limit
        Chains up to this size are solved by dense LU, larger ones by GMRES
        (read by :mod:`altmarl.exact.values`).

    Notes
    -----
    Caches the sample laws per scheme and the count transitions of the last
    :data:`T_CACHE_SIZE` local policies. For a typed game (SPEC 12) the count vectors are
    those of :attr:`full_scheme` (per-type sums ``n_c``).
    """

    def __init__(self, game: TabularGame, *, max_states: int = MAX_STATES,
                 dense_limit: int = DENSE_LIMIT) -> None:
        if not isinstance(game, TabularGame):
            raise ValueError(f"game: expected a TabularGame, got {type(game).__name__}")
        self.game = game
        self.n = game.n
        self.d = game.n_sl
        self.max_states = int(max_states)
        self.dense_limit = int(dense_limit)
        #: the scheme that samples everyone (its observations are the count vectors):
        #: ``Uniform(n)``, or ``Stratified(type_counts)`` for a typed game
        self.full_scheme: Scheme = (Stratified(game.type_counts).bind(game) if game.typed
                                    else Uniform(self.n))
        #: ``|H_n|`` (per-type for a typed game), the number of count vectors
        self.n_counts = (self.full_scheme.num_observations(self.d) if game.typed
                         else num_histograms(self.n, self.d))
        #: ``|S_g| |H_n|``, the number of chain states
        self.n_states = game.n_sg * self.n_counts
        if self.n_states > self.max_states:
            raise ValueError(
                f"ExactSolver: game {game.name!r} is too large: its chain has |S_g| * "
                f"C(n + |S_l| - 1, |S_l| - 1) = {game.n_sg} * {self.n_counts} = "
                f"{self.n_states} states (n = {self.n}, |S_l| = {self.d}), above the limit "
                f"max_states = {self.max_states}; use a smaller n, raise max_states, or "
                "estimate the gap with altmarl.exact.estimate_nash_gap"
            )
        #: the count vectors ``H_n`` in rank order, ``(|H_n|, |S_l|)``
        self.states: IntArray = self.full_scheme.observations(self.d)
        #: the initial law ``P(s_g, N)``, ``(|S_g|, |H_n|)``
        self.init_prob: FloatArray = initial_law(game, self.states)
        self._W: dict[Scheme, FloatArray] = {}
        self._T_cache: dict[bytes, FloatArray] = {}

    def hypergeometric(self, k: int) -> FloatArray:
        """``W[N, h]``: law of the uniform ``k``-sample histogram given the counts,
        ``(|H_n|, |H_k|)``."""
        return self.sample_law(Uniform(self.game.check_k(k)))

    def sample_law(self, scheme: Scheme) -> FloatArray:
        """``W[N, o] = P(h = o | N)`` under ``scheme`` (SPEC 7, 12), ``(M, |O|)`` with the
        scheme's observations ``o`` in index order (cached per scheme)."""
        scheme = scheme.bind(self.game)
        if scheme not in self._W:
            if isinstance(scheme, Uniform) and scheme.k == self.n and not self.game.typed:
                self._W[scheme] = np.eye(self.n_counts)
            else:
                self._W[scheme] = scheme.law(self.states)
        return self._W[scheme]

    def scheme(self, k: int | Scheme) -> Scheme:
        """A subsample size (``Uniform(k)``) or a scheme, bound to the game."""
        scheme = Uniform(k) if isinstance(k, int | np.integer) else k
        return scheme.bind(self.game)

    def local_table(self, pi_l: LocalPolicy | FloatArray) -> FloatArray:
        """The table of ``pi_l`` checked against the game (:func:`altmarl.glearn.operator.pi_l_table`),
        C-contiguous."""
        return np.ascontiguousarray(pi_l_table(self.game, pi_l))

    def count_transitions(self, pi_l: LocalPolicy | FloatArray) -> FloatArray:
        """``T[s_g, N, N'] = P(N' | N, s_g)`` under the shared local policy, ``(|S_g|, M, M)``."""
        table = self.local_table(pi_l)
        key = table.tobytes()
        T = self._T_cache.get(key)
        if T is None:
            K = self.game.local_kernel(table)  # (x, g, x')
            T = np.stack([count_transition(K[:, g, :], self.states)
                          for g in range(self.game.n_sg)])
            if len(self._T_cache) >= T_CACHE_SIZE:
                self._T_cache.pop(next(iter(self._T_cache)))
            self._T_cache[key] = T
        return T

    def check_global(self, pi_g: GlobalPolicy) -> None:
        """Raise a ``ValueError`` unless ``pi_g`` fits the game's spaces and ``n``."""
        g = self.game
        if (pi_g.n_sg, pi_g.n_sl, pi_g.n_ag) != (g.n_sg, g.n_sl, g.n_ag):
            raise ValueError(f"pi_g: made for |S_g|={pi_g.n_sg}, |S_l|={pi_g.n_sl}, "
                             f"|A_g|={pi_g.n_ag}; game {g.name!r} has {g.spaces}")
        g.check_k(pi_g.k)
        pi_g.sampling.bind(g)

    def executed_policy(self, pi_g: GlobalPolicy, sampling: Scheme | None = None) -> GlobalPolicy:
        """``pi_g`` as a policy on the samples of ``sampling`` (SPEC 12): ``pi_g`` itself when
        ``sampling`` is ``None`` or its own scheme, else the same map restricted to the
        observations ``sampling`` produces (``ValueError`` if ``pi_g`` cannot act on them)."""
        self.check_global(pi_g)
        own = pi_g.sampling.bind(self.game)
        if sampling is None or sampling.bind(self.game) == own:
            return pi_g
        run = sampling.bind(self.game)
        check_observable(own, run)
        cols = own.index(run.observations(self.d))  # the run's observations, as columns
        return GlobalPolicy(pi_g.k, pi_g.actions[:, cols], pi_g.n_ag,
                            q=None if pi_g.q is None else pi_g.q[:, cols],
                            info={**pi_g.info, "executed_under": run.describe()},
                            game=self.game, sampling=run)

    def action_probs(self, pi_g: GlobalPolicy, sampling: Scheme | None = None) -> FloatArray:
        """``P(a_g | s_g, N)``, ``(|S_g|, M, |A_g|)`` (the mixture over the sample law,
        SPEC 7): samples drawn by ``sampling`` (default the policy's own scheme)."""
        pol = self.executed_policy(pi_g, sampling)
        return self.sample_action_probs(pol.sampling.bind(self.game), pol.actions)

    def sample_action_probs(self, k: int | Scheme, actions: IntArray) -> FloatArray:
        """``P(a_g | s_g, N)`` of the deterministic policy ``actions`` on the observations of
        a scheme (``k``: ``Uniform(k)``; ``(|S_g|, |O|)``, or a batch ``(B, |S_g|, |O|)``):
        ``(..., |S_g|, M, |A_g|)``."""
        W = self.sample_law(self.scheme(k))
        oh = onehot(actions, self.game.n_ag)
        if oh.ndim == 4:
            return np.einsum("mh,bgha->bgma", W, oh)
        return np.einsum("mh,gha->gma", W, oh)

    def local_reward(self, pi_l: LocalPolicy | FloatArray) -> FloatArray:
        """``(1/n) sum_x N_x rbar[x, s_g]`` per chain state, ``(|S_g|, M)``."""
        rbar = self.game.local_reward(self.local_table(pi_l))  # (x, g)
        return np.asarray((self.states @ rbar).T / self.n, dtype=np.float64)

    def global_kernel(self, pa: FloatArray) -> FloatArray:
        """``A[s_g, N, s_g'] = sum_a P(a | s_g, N) P_g[s_g, a, s_g']`` from the action law
        ``pa`` (``(|S_g|, M, |A_g|)``)."""
        return np.asarray(np.einsum("gma,gah->gmh", pa, self.game.P_g), dtype=np.float64)

    def transition_matrix(self, pi_g: GlobalPolicy, pi_l: LocalPolicy,
                          sampling: Scheme | None = None) -> FloatArray:
        """The full chain ``P[s_g, N, s_g', N']``, shape ``(|S_g|, M, |S_g|, M)``."""
        A = self.global_kernel(self.action_probs(pi_g, sampling))
        T = self.count_transitions(pi_l)
        return np.einsum("gmh,gmn->gmhn", A, T)

    def expected_reward(self, pi_g: GlobalPolicy, pi_l: LocalPolicy,
                        sampling: Scheme | None = None) -> FloatArray:
        """Expected stage reward per chain state (SPEC eq. 1), ``(|S_g|, M)``."""
        pa = self.action_probs(pi_g, sampling)
        return np.asarray(np.einsum("gma,ga->gm", pa, self.game.r_g) + self.local_reward(pi_l),
                          dtype=np.float64)

    def initial_value(self, V: FloatArray) -> float:
        """``sum_{s_g, N} P_0(s_g, N) V(s_g, N)``: a value table seen from the initial law."""
        return float((self.init_prob * V).sum())


def initial_law(game: TabularGame, states: IntArray) -> FloatArray:
    """``P_0(s_g, N) = exp(game.init.log_pmf(s_g, N, n))`` on ``S_g x H_n`` (``states``
    the rows of ``H_n``), ``(|S_g|, |H_n|)``; checked to sum to 1 and renormalized."""
    if not hasattr(game.init, "log_pmf"):
        raise ValueError("game.init: the exact solver needs an initial distribution "
                         "with log_pmf(s_g, counts, n)")
    n_counts = states.shape[0]
    sg = np.repeat(np.arange(game.n_sg), n_counts)
    cnt = np.tile(states, (game.n_sg, 1))
    p = np.exp(np.asarray(game.init.log_pmf(sg, cnt, game.n), dtype=np.float64))
    p = p.reshape(game.n_sg, n_counts)
    tot = float(p.sum())
    if not np.isfinite(tot) or abs(tot - 1.0) > 1e-6:
        raise ValueError(f"game.init.log_pmf: probabilities over (s_g, N) sum to {tot!r}: "
                         "expected 1")
    return p / tot


__all__ = [
    "BATCH_ENTRIES",
    "DENSE_LIMIT",
    "MAX_STATES",
    "CountChain",
    "count_transition",
    "hypergeometric_weights",
    "initial_law",
    "onehot",
]
