"""Best responses on the ``(s_g, N)`` chain (SPEC 7, Definition D.1).

* :func:`full_info_best_response` — the full-information global best response (policy
  iteration on the chain, exact; a :class:`GlobalPolicy` with ``k = n``; the comparator of
  Theorem 4.4);
* :func:`restricted_best_response` — best response among global policies that see a
  ``k``-sample histogram. This is *not* an MDP on ``(s_g, N)`` (the policy is a function of
  the sample ``h``, not of ``N``): exhaustive enumeration of the deterministic policies when
  ``|A_g|^{|S_g| |H_k|}`` is small (exact), otherwise a policy-improvement search whose
  value is a *lower bound*;
* :func:`local_best_response` — the best shared local policy: the representative agent's
  MDP when ``pi_g`` ignores the sample (exact), else exhaustive enumeration of the
  deterministic shared local policies (``|A_l|^{|S_l| |S_g|}``) or coordinate ascent,
  optionally refined by a local search over stochastic shared policies.

Every function takes a :class:`~altmarl.exact.chain.CountChain` and returns a
:class:`BestResponse` whose ``value`` is an exact value (:mod:`altmarl.exact.values`) of
the policy it returns.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl import planning
from altmarl._validate import check_choice
from altmarl.exact.chain import BATCH_ENTRIES, CountChain, count_transition, onehot
from altmarl.exact.values import (
    discounted_occupancy,
    evaluate_chain,
    evaluate_chain_batch,
    policy_values,
    q_values,
)
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: default limit on ``|A_g|^{|S_g| |H_k|}`` for exhaustive restricted best response
MAX_RESTRICTED_POLICIES = 4096
#: default limit on ``|A_l|^{|S_l| |S_g|}`` for exhaustive local best response
MAX_LOCAL_POLICIES = 4096
#: the search methods of the best responses (``"auto"`` picks one)
METHODS = ("auto", "enumerate", "search")


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
        """JSON-friendly summary (the policy left out)."""
        return {"value": self.value, "exact": self.exact, "comparator": self.comparator,
                "method": self.method, "evaluations": self.evaluations,
                "seconds": self.seconds, **{k: v for k, v in self.info.items()
                                            if isinstance(v, int | float | str | bool)}}


def policy_count(base: int, exponent: int) -> float:
    """``base ** exponent`` (the number of deterministic policies with ``exponent`` cells
    and ``base`` actions) as a float, ``inf`` when it would overflow."""
    if base <= 1:
        return 1.0
    return math.inf if exponent * math.log(base) > 700 else float(base) ** exponent


def _digits(idx: IntArray, base: int, width: int) -> IntArray:
    """Base-``base`` digits of each index (most significant first), ``(len(idx), width)``."""
    idx = np.asarray(idx, dtype=np.int64)
    powers = base ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return np.asarray((idx[:, None] // powers[None, :]) % base, dtype=np.int64)


# ---------------------------------------------------------------------------
# global player
# ---------------------------------------------------------------------------


def full_info_best_response(chain: CountChain, pi_l: LocalPolicy,
                            max_iter: int = 200) -> BestResponse:
    """Optimal global policy with full information (sees ``N``), for fixed ``pi_l``:
    policy iteration on the chain over actions ``a_g`` (exact; Theorem 4.4's comparator).
    The policy is a :class:`GlobalPolicy` with ``k = n`` (a ``k = n`` sample is the whole
    count vector); its ``q`` holds ``Q*(s_g, N, a_g)``."""
    t0 = time.perf_counter()
    g = chain.game
    T = chain.count_transitions(pi_l)
    rloc = chain.local_reward(pi_l)
    res = planning.policy_iteration(
        lambda acts: evaluate_chain(chain, onehot(acts, g.n_ag), T, rloc),
        lambda V: q_values(chain, V, T, rloc),
        np.zeros((g.n_sg, chain.n_counts), dtype=np.int64), max_iter, scale="best")
    if not res.converged:
        raise RuntimeError("full_info_best_response: policy iteration did not converge")
    assert res.actions is not None
    actions, V, Q, evals = res.actions, res.v, res.q, res.iterations
    policy = GlobalPolicy(chain.n, actions, g.n_ag, q=Q,
                          info={"kind": "full-information best response (exact)",
                                "method": "policy iteration"}, game=g,
                          sampling=chain.full_scheme)
    value = chain.initial_value(V)
    return BestResponse(policy, value, V, True, "full information (policies of (s_g, N))",
                        "policy iteration on the (s_g, N) chain", evals,
                        time.perf_counter() - t0)


def restricted_best_response(
    chain: CountChain,
    pi_l: LocalPolicy,
    k: int | Scheme,
    starts: list[GlobalPolicy] | None = None,
    method: str = "auto",
    max_evals: int = 300,
    max_policies: int = MAX_RESTRICTED_POLICIES,
) -> BestResponse:
    """Best global policy among those that see a ``k``-sample histogram
    (``pi_g(s_g, h)``, ``h in H_k``; deterministic maps as in SPEC 2). ``k`` may be a
    sampling scheme (SPEC 12): the policies then see its samples (its observations ``O``
    in place of ``H_k``, its law ``W``).

    ``method="enumerate"`` evaluates all ``|A_g|^{|S_g| |H_k|}`` policies (exact;
    refused above ``max_policies``). ``method="search"`` is a policy-improvement search
    (not exact: the problem is not an MDP on ``(s_g, N)``): from each start (``starts``,
    the occupancy-weighted projection of the full-information optimum and the constant
    policies) it repeatedly proposes
    ``pi'(s_g, h) = argmax_a sum_N d(s_g, N) W[N, h] Q(s_g, N, a)`` (first-order
    improvement, performance-difference lemma) and, if that does not improve the exact
    value, single-cell changes in order of estimated gain; every candidate is evaluated
    exactly and only improvements are kept. Its value is a lower bound on the restricted
    optimum. ``"auto"``: exact MDP when ``k = n``, enumeration when allowed, otherwise
    search.
    """
    check_choice("method", method, METHODS)
    g = chain.game
    scheme = chain.scheme(k)
    H = scheme.num_observations(chain.d)
    count = policy_count(g.n_ag, g.n_sg * H)
    if method == "auto":
        if scheme.k == chain.n:  # every scheme that samples everyone sees N
            br = full_info_best_response(chain, pi_l)
            br.comparator = f"k-sample policies (k = n = {chain.n}: full information)"
            return br
        method = "enumerate" if count <= max_policies else "search"
    if method == "enumerate":
        if count > max_policies:
            raise ValueError(
                f"restricted_best_response: |A_g|^(|S_g| |H_k|) = {g.n_ag}^({g.n_sg} * {H})"
                f" = {count:.4g} policies, above max_restricted_policies = "
                f"{max_policies}; use method='search' (lower bound)")
        return _restricted_enumerate(chain, pi_l, scheme)
    return _restricted_search(chain, pi_l, scheme, starts or [], max_evals)


def _comparator(scheme: Scheme) -> str:
    """The restricted comparator's label (``k``-sample policies, with the scheme when it is
    not uniform)."""
    if scheme.kind == "uniform":
        return f"k-sample policies (k = {scheme.k})"
    return f"k-sample policies ({scheme.describe()})"


def _restricted_enumerate(chain: CountChain, pi_l: LocalPolicy, scheme: Scheme) -> BestResponse:
    t0 = time.perf_counter()
    g = chain.game
    k = scheme.k
    H = scheme.num_observations(chain.d)
    T = chain.count_transitions(pi_l)
    rloc = chain.local_reward(pi_l)
    cells = g.n_sg * H
    total = g.n_ag ** cells
    best_v, best_idx, best_V = -np.inf, 0, None
    S = chain.n_states
    chunk = max(1, BATCH_ENTRIES // (S * S))
    for lo in range(0, total, chunk):
        idx = np.arange(lo, min(total, lo + chunk))
        acts = _digits(idx, g.n_ag, cells).reshape(-1, g.n_sg, H)
        pa = chain.sample_action_probs(scheme, acts)
        Vb = evaluate_chain_batch(chain, pa, T[None], rloc[None])
        vals = (Vb * chain.init_prob).sum(axis=(1, 2))
        j = int(vals.argmax())
        if vals[j] > best_v:
            best_v, best_idx, best_V = float(vals[j]), int(idx[j]), Vb[j]
    best_acts = _digits(np.array([best_idx]), g.n_ag, cells).reshape(g.n_sg, H)
    policy = GlobalPolicy(k, best_acts, g.n_ag,
                          info={"kind": "restricted best response (exhaustive)"}, game=g,
                          sampling=scheme)
    assert best_V is not None
    return BestResponse(policy, best_v, best_V, True, _comparator(scheme),
                        "exhaustive enumeration of deterministic policies", total,
                        time.perf_counter() - t0)


def _restricted_search(chain: CountChain, pi_l: LocalPolicy, scheme: Scheme,
                       starts: list[GlobalPolicy], max_evals: int) -> BestResponse:
    t0 = time.perf_counter()
    g = chain.game
    k = scheme.k
    H = scheme.num_observations(chain.d)
    W = chain.sample_law(scheme)
    T = chain.count_transitions(pi_l)
    rloc = chain.local_reward(pi_l)
    evals = 0

    def evaluate(acts: IntArray) -> tuple[float, FloatArray]:
        nonlocal evals
        evals += 1
        V = evaluate_chain(chain, chain.sample_action_probs(scheme, acts), T, rloc)
        return chain.initial_value(V), V

    # candidate starts: given ones, projection of the full-information optimum, constants
    cands: list[IntArray] = []
    for s in starts:
        chain.check_global(s)
        if s.sampling.bind(g).observation_key != scheme.observation_key:
            raise ValueError(f"starts: expected policies on the samples of "
                             f"{scheme.describe()}, got one for {s.sampling.describe()}")
        cands.append(np.asarray(s.actions, dtype=np.int64))
    full = full_info_best_response(chain, pi_l)
    evals += full.evaluations
    assert full.policy.q is not None
    d_full = discounted_occupancy(
        chain, chain.global_kernel(onehot(full.policy.actions, g.n_ag)), T)
    cands.append(np.einsum("gm,mh,gma->gha", d_full, W, full.policy.q).argmax(axis=-1))
    for a in range(g.n_ag):
        cands.append(np.full((g.n_sg, H), a, dtype=np.int64))
    best_acts, best_v, best_V = cands[0], -np.inf, np.zeros_like(chain.init_prob)
    for c in cands:
        v, V = evaluate(c)
        if v > best_v:
            best_acts, best_v, best_V = c, v, V
    rounds = 0
    tol = 1e-12 * max(1.0, abs(best_v))
    while evals < max_evals:
        rounds += 1
        pa = chain.sample_action_probs(scheme, best_acts)
        Q = q_values(chain, best_V, T, rloc)
        dist = discounted_occupancy(chain, chain.global_kernel(pa), T)
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
    policy = GlobalPolicy(k, best_acts, g.n_ag,
                          info={"kind": "restricted best response (search, lower bound)"},
                          game=g, sampling=scheme)
    return BestResponse(policy, best_v, best_V, False, _comparator(scheme),
                        "policy-improvement search (lower bound)", evals,
                        time.perf_counter() - t0,
                        info={"rounds": rounds, "budget_exhausted": evals >= max_evals})


# ---------------------------------------------------------------------------
# local player
# ---------------------------------------------------------------------------


def local_best_response(
    chain: CountChain,
    pi_g: GlobalPolicy,
    method: str = "auto",
    refine: bool = True,
    max_refine_evals: int = 400,
    max_search_evals: int = 2000,
    start: LocalPolicy | None = None,
    max_policies: int = MAX_LOCAL_POLICIES,
) -> BestResponse:
    """Best shared local policy for fixed ``pi_g`` (SPEC 5's objective).

    ``method``:

    * ``"enumerate"`` — all ``|A_l|^{|S_l| |S_g|}`` deterministic shared policies
      (refused above ``max_policies``), vectorized: the count transition is built
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
    check_choice("method", method, METHODS)
    t0 = time.perf_counter()
    g = chain.game
    chain.check_global(pi_g)
    decoupled = bool((pi_g.actions == pi_g.actions[:, :1]).all())
    count = policy_count(g.n_al, g.n_sl * g.n_sg)
    if method == "auto":
        if decoupled:
            return _local_decoupled(chain, pi_g, t0)
        method = "enumerate" if count <= max_policies else "search"
    if method == "enumerate":
        if count > max_policies:
            raise ValueError(
                f"local_best_response: |A_l|^(|S_l| |S_g|) = {g.n_al}^({g.n_sl} * {g.n_sg})"
                f" = {count:.4g} deterministic shared policies, above max_local_policies = "
                f"{max_policies}; use method='search' (lower bound) or "
                "altmarl.exact.estimate_nash_gap")
        policy, best_v, best_V, evals = _local_enumerate(chain, pi_g)
        how = "exhaustive enumeration of deterministic shared policies"
    else:
        st = start if start is not None else LocalPolicy.uniform(g)
        policy, best_v, best_V, evals = _local_search(chain, pi_g, st.greedy_actions(),
                                                      max_search_evals)
        how = "coordinate ascent over deterministic shared policies (lower bound)"
    refined_gain = 0.0
    if refine and g.n_al > 1:
        r_pol, r_v, r_V, r_evals = _refine_local(
            chain, pi_g, [policy] + ([start] if start is not None else []), max_refine_evals)
        evals += r_evals
        how += " + stochastic refinement (L-BFGS-B)"
        if r_v > best_v + 1e-12 * max(1.0, abs(best_v)):
            refined_gain = r_v - best_v
            policy, best_v, best_V = r_pol, r_v, r_V
    exact = decoupled or (chain.n == 1 and method == "enumerate")
    return BestResponse(policy, best_v, best_V, exact, "shared local policies Pi_l",
                        how, evals, time.perf_counter() - t0,
                        info={"refinement_gain": refined_gain,
                              "deterministic_optimal_proven": exact})


def _local_decoupled(chain: CountChain, pi_g: GlobalPolicy, t0: float) -> BestResponse:
    """``pi_g`` depends on ``s_g`` only: the representative agent's MDP on
    ``(s_l, s_g)`` with kernel ``P_l[x, g, a, x'] P_g[g, pi_g(g), g']`` is exact; its
    optimal deterministic policy is optimal for every agent from every state."""
    g = chain.game
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
    values = policy_values(chain, pi_g, policy)
    value = chain.initial_value(values)
    return BestResponse(policy, value, values, True, "shared local policies Pi_l",
                        "representative-agent MDP (pi_g ignores the sample: exact)", 1,
                        time.perf_counter() - t0,
                        info={"refinement_gain": 0.0, "deterministic_optimal_proven": True})


def _local_enumerate(chain: CountChain,
                     pi_g: GlobalPolicy) -> tuple[LocalPolicy, float, FloatArray, int]:
    g = chain.game
    pa = chain.action_probs(pi_g)
    cols = np.array(list(itertools.product(range(g.n_al), repeat=g.n_sl)), dtype=np.int64)
    C = cols.shape[0]
    # T[g, c] and rloc[g, c] for every s_g and column of actions c (actions per s_l)
    Tc = np.empty((g.n_sg, C, chain.n_counts, chain.n_counts))
    rc = np.empty((g.n_sg, C, chain.n_counts))
    xs = np.arange(g.n_sl)
    for gi in range(g.n_sg):
        for ci, col in enumerate(cols):
            K = g.P_l[xs, gi, col, :]
            Tc[gi, ci] = count_transition(K, chain.states)
            rc[gi, ci] = chain.states @ g.r_l[xs, gi, col] / chain.n
    total = C ** g.n_sg
    S = chain.n_states
    chunk = max(1, BATCH_ENTRIES // (S * S))
    best_v, best_idx, best_V = -np.inf, 0, None
    gidx = np.arange(g.n_sg)
    for lo in range(0, total, chunk):
        idx = np.arange(lo, min(total, lo + chunk))
        choice = _digits(idx, C, g.n_sg)  # (B, S_g): column index per s_g
        Tb = Tc[gidx[None, :], choice]  # (B, S_g, M, M)
        rb = rc[gidx[None, :], choice]  # (B, S_g, M)
        Vb = evaluate_chain_batch(chain, pa[None], Tb, rb)
        vals = (Vb * chain.init_prob).sum(axis=(1, 2))
        j = int(vals.argmax())
        if vals[j] > best_v:
            best_v, best_idx, best_V = float(vals[j]), int(idx[j]), Vb[j]
    choice = _digits(np.array([best_idx]), C, g.n_sg)[0]
    acts = cols[choice].T  # (S_l, S_g)
    policy = LocalPolicy.deterministic(g, acts)
    policy.info = {"kind": "local best response (exhaustive deterministic)"}
    assert best_V is not None
    return policy, best_v, best_V, total


def _local_search(chain: CountChain, pi_g: GlobalPolicy, acts0: IntArray,
                  max_evals: int) -> tuple[LocalPolicy, float, FloatArray, int]:
    g = chain.game
    pa = chain.action_probs(pi_g)
    evals = 0

    def evaluate(acts: IntArray) -> tuple[float, FloatArray]:
        nonlocal evals
        evals += 1
        tab = onehot(acts, g.n_al)
        V = evaluate_chain(chain, pa, chain.count_transitions(tab), chain.local_reward(tab))
        return chain.initial_value(V), V

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


def _refine_local(chain: CountChain, pi_g: GlobalPolicy, starts: list[LocalPolicy],
                  max_evals: int) -> tuple[LocalPolicy, float, FloatArray, int]:
    from scipy.optimize import minimize

    g = chain.game
    pa = chain.action_probs(pi_g)
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
        V = evaluate_chain(chain, pa, chain.count_transitions(tab), chain.local_reward(tab))
        v = chain.initial_value(V)
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


__all__ = [
    "MAX_LOCAL_POLICIES",
    "METHODS",
    "MAX_RESTRICTED_POLICIES",
    "BestResponse",
    "full_info_best_response",
    "local_best_response",
    "policy_count",
    "restricted_best_response",
]
