"""Values and discounted occupancy of a joint policy on the ``(s_g, N)`` chain (SPEC 7,
SPEC eq. 2), by the shared solves of :mod:`altmarl.planning`.

With ``A[s_g, N, s_g']`` the global kernel, ``T[s_g, N, N']`` the count transition and
``r[s_g, N]`` the expected stage reward (:mod:`altmarl.exact.chain`), the chain's
transition is ``P[(s_g, N), (s_g', N')] = A[s_g, N, s_g'] T[s_g, N, N']`` and

* ``V = (I - gamma P)^{-1} r`` (:func:`evaluate_chain`): one dense LU solve up to
  ``chain.dense_limit`` states, GMRES on the structured operator above (the full matrix is
  never formed);
* ``d = sum_t gamma^t (P^T)^t mu`` (:func:`discounted_occupancy`): the same dense solve on
  ``P^T``, or the power series above ``dense_limit``;
* ``Q(s_g, N, a_g) = r_g(s_g, a_g) + rloc(s_g, N) + gamma E[V(s_g', N') | s_g, N, a_g]``
  (:func:`q_values`): one Bellman backup over the global action.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from altmarl import planning
from altmarl.exact.chain import CountChain
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme

FloatArray = NDArray[np.float64]


def evaluate_chain(chain: CountChain, pa: FloatArray, T: FloatArray,
                   rloc: FloatArray) -> FloatArray:
    """``V(s_g, N)`` of the chain with action law ``pa`` (``(|S_g|, M, |A_g|)``), count
    transition ``T`` (``(|S_g|, M, M)``) and local reward ``rloc`` (``(|S_g|, M)``):
    ``(I - gamma P) V = r`` (SPEC 7), ``(|S_g|, M)``."""
    g = chain.game
    A = chain.global_kernel(pa)  # (g, m, g')
    r = np.einsum("gma,ga->gm", pa, g.r_g) + rloc
    S = chain.n_states
    if S <= chain.dense_limit:
        P = np.einsum("gmh,gmn->gmhn", A, T).reshape(S, S)
        return planning.evaluate_dense(P, r.reshape(S), g.gamma).reshape(r.shape)
    return _evaluate_iterative(chain, A, T, r)


def _evaluate_iterative(chain: CountChain, A: FloatArray, T: FloatArray,
                        r: FloatArray) -> FloatArray:
    """GMRES on the structured chain operator ``V -> E[V(s_g', N') | s_g, N]``
    (:func:`altmarl.planning.evaluate_scipy_gmres`), for chains above ``dense_limit``."""
    shape = r.shape

    def p_matvec(v: FloatArray) -> FloatArray:
        V = v.reshape(shape)
        EV = np.matmul(T, V.T)
        return np.asarray((A * EV).sum(axis=-1).reshape(-1))

    V = planning.evaluate_scipy_gmres(p_matvec, r.reshape(-1), chain.game.gamma,
                                      rtol=1e-13, restart=60, maxiter=200, check=1e-9,
                                      name="ExactSolver")
    return V.reshape(shape)


def evaluate_chain_batch(chain: CountChain, pa: FloatArray, T: FloatArray,
                         rloc: FloatArray) -> FloatArray:
    """Values of a batch of chains: ``pa`` (B|1, S_g, M, A), ``T`` (B|1, S_g, M, M),
    ``rloc`` (B|1, S_g, M) -> (B, S_g, M), by batched dense solves (one by one above
    ``dense_limit``)."""
    g = chain.game
    B = max(pa.shape[0], T.shape[0], rloc.shape[0])
    S = chain.n_states
    if S > chain.dense_limit:
        return np.stack([evaluate_chain(chain, pa[min(b, pa.shape[0] - 1)],
                                        T[min(b, T.shape[0] - 1)],
                                        rloc[min(b, rloc.shape[0] - 1)]) for b in range(B)])
    A = np.einsum("bgma,gah->bgmh", pa, g.P_g)
    r = np.einsum("bgma,ga->bgm", pa, g.r_g) + rloc
    P = (A[:, :, :, :, None] * T[:, :, :, None, :]).reshape(-1, S, S)
    sol = planning.evaluate_dense_batch(P, r.reshape(-1, S), g.gamma)
    return sol.reshape(B, g.n_sg, chain.n_counts)


def policy_values(chain: CountChain, pi_g: GlobalPolicy, pi_l: LocalPolicy,
                  sampling: Scheme | None = None) -> FloatArray:
    """``V(s_g, N)`` of the joint policy for every chain state, ``(|S_g|, |H_n|)``; the
    global agent's samples drawn by ``sampling`` (default the policy's own scheme, SPEC 12)."""
    pa = chain.action_probs(pi_g, sampling)
    return evaluate_chain(chain, pa, chain.count_transitions(pi_l), chain.local_reward(pi_l))


def policy_value(chain: CountChain, pi_g: GlobalPolicy, pi_l: LocalPolicy,
                 sampling: Scheme | None = None) -> float:
    """``V(pi_g, pi_l)`` from the initial distribution (SPEC eq. 2), exactly."""
    return chain.initial_value(policy_values(chain, pi_g, pi_l, sampling))


def discounted_occupancy(chain: CountChain, A: FloatArray, T: FloatArray) -> FloatArray:
    """``d(s) = sum_t gamma^t P(s_t = s)`` from the initial law for the chain with global
    kernel ``A`` and count transition ``T``; sums to ``1 / (1 - gamma)``, ``(|S_g|, M)``."""
    S = chain.n_states
    gamma = chain.game.gamma
    if S <= chain.dense_limit:
        # d = sum_t gamma^t (P^T)^t mu: the dense policy-evaluation solve on P^T
        P = np.einsum("gmh,gmn->gmhn", A, T).reshape(S, S)
        d = planning.evaluate_dense(P.T, chain.init_prob.reshape(S), gamma)
        return d.reshape(chain.init_prob.shape)
    # power series (gamma-contraction), to relative accuracy 1e-12
    d = chain.init_prob.copy()
    cur = chain.init_prob.copy()
    for _ in range(int(np.ceil(np.log(1e-12) / np.log(max(gamma, 1e-3)))) + 1):
        # (P^T cur)[h, n] = sum_{g, m} cur[g, m] A[g, m, h] T[g, m, n]
        cur = gamma * np.einsum("gm,gmh,gmn->hn", cur, A, T)
        d += cur
    return d


def occupancy(chain: CountChain, pi_g: GlobalPolicy, pi_l: LocalPolicy,
              sampling: Scheme | None = None) -> FloatArray:
    """Discounted state occupancy of the joint policy from the initial distribution
    (sums to ``1 / (1 - gamma)``), ``(|S_g|, |H_n|)``."""
    return discounted_occupancy(chain, chain.global_kernel(chain.action_probs(pi_g, sampling)),
                                chain.count_transitions(pi_l))


def q_values(chain: CountChain, V: FloatArray, T: FloatArray, rloc: FloatArray) -> FloatArray:
    """``Q(s_g, N, a_g) = r_g(s_g, a_g) + rloc(s_g, N) + gamma sum_{s_g'} P_g[s_g, a_g, s_g']
    E[V(s_g', N') | s_g, N]``: one Bellman backup over the global action, ``(|S_g|, M, |A_g|)``."""
    g = chain.game
    EV = np.matmul(T, V.T)  # E[V(s_g', N') | s_g, N] for each s_g'
    return np.asarray(g.r_g[:, None, :] + rloc[:, :, None]
                      + g.gamma * np.einsum("gah,gmh->gma", g.P_g, EV), dtype=np.float64)


__all__ = [
    "discounted_occupancy",
    "evaluate_chain",
    "evaluate_chain_batch",
    "occupancy",
    "policy_value",
    "policy_values",
    "q_values",
]
