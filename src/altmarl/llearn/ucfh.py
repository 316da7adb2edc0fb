"""Episodic fixed-horizon tabular MDPs, exact DP, and UCFH (SPEC 5.2; paper App. C.1).

The PAC route of L-LEARN runs UCFH ("Upper-Confidence Fixed-Horizon episodic RL",
Dann & Brunskill, *Sample Complexity of Episodic Fixed-Horizon Reinforcement Learning*,
NeurIPS 2015, pp. 2818-2826; paper Appendix C.1, Theorem C.3) on the chained MDPs of
:mod:`altmarl.llearn.chained`. This module is self-contained and usable on any small episodic
MDP:

* :class:`EpisodicMDP` -- a finite-horizon MDP with *sparse* transitions: for every pair
  ``(s, a)`` a fixed list of at most ``C`` possible successors ``succ[s, a, c]`` (``-1``
  pads) with probabilities ``prob[s, a, c]``. The list is the *structural support*: the
  successors the learner knows to be possible (``C`` is the "maximum number of possible
  successor states" of Dann & Brunskill). :meth:`EpisodicMDP.from_dense` builds one from
  a dense ``(S, A, S)`` table with full support (plain UCFH). Rewards are either state
  rewards ``reward[s]`` (UCFH's setting) or state-action rewards ``reward[s, a]``; both
  are scaled per time step by ``time_weight[t]`` (non-stationary rewards
  ``r_t = time_weight[t] * reward``, which is how the chained MDPs carry the discount).
* :func:`to_state_rewards` -- paper Algorithm 17: state-action rewards become state
  rewards through an intermediate "deciding" state.
* :func:`solve` / :func:`evaluate_policy` -- exact finite-horizon dynamic programming
  (the test oracle).
* :func:`fixed_horizon_evi` -- FixedHorizonEVI: optimistic planning over the confidence
  set, giving each ``(s, a)`` the largest admissible mass on the highest-value successors.
* :func:`ucfh` -- the learner.

Time convention: an episode visits ``s_0, ..., s_{H-1}``; at time ``t`` the agent
collects ``r_t(s_t)`` (state rewards) or ``r_t(s_t, a_t)`` (state-action rewards), plays
``a_t`` and moves to ``s_{t+1} ~ P(. | s_t, a_t)``; ``V_H = 0``. The value of a policy is
``init @ V_0``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import ROW_SUM_TOL, check_int, check_positive

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: the update rules of :func:`ucfh`
UPDATE_RULES: Final = ("paper", "batch")


# ---------------------------------------------------------------------------
# the MDP type
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EpisodicMDP:
    """An episodic fixed-horizon MDP with sparse (structural-support) transitions.

    Parameters
    ----------
    succ : int array ``(S, A, C)``
        Possible successors of each pair; ``-1`` marks padding. A successor may appear
        at most once per row.
    prob : float array ``(S, A, C)``
        Transition probabilities; ``0`` on padding; each row sums to 1.
    reward : float array ``(S,)`` or ``(S, A)``
        State rewards (UCFH's setting) or state-action rewards (convert them with
        :func:`to_state_rewards` before running :func:`ucfh`).
    init : float array ``(S,)``
        Initial-state distribution.
    horizon : int
        Episode length ``H >= 1``.
    time_weight : float array ``(H,)``, optional
        ``r_t = time_weight[t] * reward`` (default all ones: stationary rewards).
    action_free : bool array ``(S,)``, optional
        States where every action has the same successors, probabilities and reward
        (known structure: learners play action 0 there). Checked on construction.
    name : str
        A label.
    """

    succ: IntArray
    prob: FloatArray
    reward: FloatArray
    init: FloatArray
    horizon: int
    time_weight: FloatArray = field(default=None)  # type: ignore[arg-type,assignment]
    action_free: BoolArray = field(default=None)  # type: ignore[arg-type,assignment]
    name: str = "mdp"

    def __post_init__(self) -> None:
        succ = np.asarray(self.succ)
        if succ.ndim != 3 or succ.dtype.kind not in "iu":
            raise ValueError(f"succ: expected an integer array of shape (S, A, C), got "
                             f"{succ.dtype} {succ.shape}")
        succ = succ.astype(np.int64)
        S, A, C = succ.shape
        if S < 1 or A < 1 or C < 1:
            raise ValueError(f"succ: expected a non-empty (S, A, C) array, got {succ.shape}")
        prob = np.asarray(self.prob, dtype=np.float64)
        if prob.shape != succ.shape:
            raise ValueError(f"prob: expected shape {succ.shape} (same as succ), got {prob.shape}")
        valid = succ >= 0
        if (succ >= S).any() or (succ < -1).any():
            i = tuple(int(v) for v in np.argwhere((succ >= S) | (succ < -1))[0])
            raise ValueError(f"succ{list(i)} = {succ[i]}: expected a state in 0..{S - 1} or -1")
        if not valid.any(axis=-1).all():
            i = tuple(int(v) for v in np.argwhere(~valid.any(axis=-1))[0])
            raise ValueError(f"succ{list(i) + [':']}: expected at least one successor")
        if not np.isfinite(prob).all() or (prob < 0).any():
            i = tuple(int(v) for v in np.argwhere(~np.isfinite(prob) | (prob < 0))[0])
            raise ValueError(f"prob{list(i)} = {prob[i]}: expected a finite probability >= 0")
        if (prob[~valid] != 0).any():
            i = tuple(int(v) for v in np.argwhere(~valid & (prob != 0))[0])
            raise ValueError(f"prob{list(i)} = {prob[i]}: expected 0 on padding (succ = -1)")
        sums = prob.sum(axis=-1)
        bad = np.abs(sums - 1.0) > ROW_SUM_TOL
        if bad.any():
            i = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"prob{list(i) + [':']} sums to {sums[i]!r}: expected 1")
        # duplicates within a row
        srt = np.sort(np.where(valid, succ, -1 - np.arange(C)), axis=-1)
        dup = (srt[..., 1:] == srt[..., :-1]) & (srt[..., 1:] >= 0)
        if dup.any():
            i = tuple(int(v) for v in np.argwhere(dup.any(axis=-1))[0])
            raise ValueError(f"succ{list(i) + [':']}: a successor is listed twice")
        reward = np.asarray(self.reward, dtype=np.float64)
        if reward.shape not in ((S,), (S, A)):
            raise ValueError(f"reward: expected shape (S,) = ({S},) or (S, A) = {(S, A)}, "
                             f"got {reward.shape}")
        if not np.isfinite(reward).all():
            raise ValueError("reward: expected finite numbers")
        init = np.asarray(self.init, dtype=np.float64)
        if init.shape != (S,):
            raise ValueError(f"init: expected shape ({S},), got {init.shape}")
        if not np.isfinite(init).all() or (init < 0).any() or abs(init.sum() - 1) > 1e-6:
            raise ValueError(f"init: expected a probability vector (sum {init.sum()!r})")
        H = check_int("horizon", self.horizon)
        tw = np.ones(H) if self.time_weight is None else np.asarray(self.time_weight, float)
        if tw.shape != (H,) or not np.isfinite(tw).all():
            raise ValueError(f"time_weight: expected {H} finite numbers, got shape {tw.shape}")
        if self.action_free is None:
            af = np.zeros(S, dtype=bool)
        else:
            af = np.asarray(self.action_free, dtype=bool)
            if af.shape != (S,):
                raise ValueError(f"action_free: expected shape ({S},), got {af.shape}")
        if af.any() and A > 1:
            same = ((succ[af] == succ[af][:, :1]).all(axis=(1, 2))
                    & (prob[af] == prob[af][:, :1]).all(axis=(1, 2)))
            if reward.ndim == 2:
                same &= (reward[af] == reward[af][:, :1]).all(axis=1)
            if not same.all():
                s = int(np.flatnonzero(af)[np.argmin(same)])
                raise ValueError(f"action_free[{s}] = True: expected identical successors, "
                                 "probabilities and rewards for every action")
        for name, arr in (("succ", succ), ("prob", prob), ("reward", reward), ("init", init),
                          ("time_weight", tw), ("action_free", af)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "horizon", H)

    # --- sizes & views --------------------------------------------------------
    @property
    def n_states(self) -> int:
        return int(self.succ.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.succ.shape[1])

    @property
    def max_successors(self) -> int:
        """``C``: the largest number of possible successors of a pair."""
        return int((self.succ >= 0).sum(axis=-1).max())

    @property
    def state_rewards(self) -> bool:
        """``True`` for state rewards (UCFH's setting), ``False`` for state-action rewards."""
        return self.reward.ndim == 1

    @property
    def valid(self) -> BoolArray:
        return np.asarray(self.succ >= 0)

    @property
    def succ_safe(self) -> IntArray:
        """``succ`` with padding replaced by 0 (its probability is 0), for gathers."""
        return np.where(self.succ >= 0, self.succ, 0)

    def reward_at(self, t: int) -> FloatArray:
        """``r_t``: shape ``(S,)`` or ``(S, A)``."""
        return np.asarray(self.time_weight[t] * self.reward, dtype=np.float64)

    def dense(self) -> FloatArray:
        """The dense ``(S, A, S)`` transition table (small MDPs only)."""
        S, A, _ = self.succ.shape
        P = np.zeros((S, A, S))
        s, a, c = np.nonzero(self.succ >= 0)
        np.add.at(P, (s, a, self.succ[s, a, c]), self.prob[s, a, c])
        return P

    @classmethod
    def from_dense(cls, P: ArrayLike, reward: ArrayLike, init: ArrayLike, horizon: int,
                   time_weight: ArrayLike | None = None, support: str = "all",
                   name: str = "mdp") -> EpisodicMDP:
        """Build from a dense ``P[s, a, s']``.

        ``support="all"`` lists every state as a possible successor (plain UCFH, ``C =
        |S|``); ``support="nonzero"`` lists only successors with positive probability
        (the learner then knows the support).
        """
        PP = np.asarray(P, dtype=np.float64)
        if PP.ndim != 3 or PP.shape[0] != PP.shape[2]:
            raise ValueError(f"P: expected shape (S, A, S), got {PP.shape}")
        S, A, _ = PP.shape
        if support == "all":
            succ = np.broadcast_to(np.arange(S), (S, A, S)).copy()
            prob = PP
        elif support == "nonzero":
            mask = PP > 0
            C = max(int(mask.sum(axis=-1).max()), 1)
            order = np.argsort(~mask, axis=-1, kind="stable")[..., :C]
            keep = np.take_along_axis(mask, order, axis=-1)
            succ = np.where(keep, order, -1)
            prob = np.where(keep, np.take_along_axis(PP, order, axis=-1), 0.0)
        else:
            raise ValueError(f"support = {support!r}: expected 'all' or 'nonzero'")
        tw = None if time_weight is None else np.asarray(time_weight, float)
        return cls(succ, prob, np.asarray(reward, float), np.asarray(init, float), horizon,
                   tw, None, name)  # type: ignore[arg-type]

    def reachable(self, t: int) -> IntArray:
        """States that can be occupied at time ``t`` (from the initial support, through the
        structural support, under any actions); computed once and cached. Values at other
        states do not affect ``init @ V_0``, so planners skip them."""
        cache: list[IntArray] | None = self.__dict__.get("_reach")
        if cache is None:
            S = self.n_states
            ss, valid = self.succ_safe, self.valid
            rows = np.flatnonzero(self.init > 0)
            cache = [rows]
            for _ in range(1, self.horizon):
                mask = np.zeros(S, dtype=bool)
                mask[ss[rows][valid[rows]]] = True
                rows = np.flatnonzero(mask)
                cache.append(rows)
            object.__setattr__(self, "_reach", cache)
        return cache[t]

    def _pairs(self, t: int) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray, IntArray]:
        """Planning layout at time ``t`` (cached): the reachable ``rows``; the flat pair
        ids ``s * A + a`` that need an allocation over their successors and their
        positions in the flattened ``(rows, A)`` Q table; the single-successor pairs, their
        positions and their successor. Action-free states only list action 0."""
        cache: dict[int, Any] | None = self.__dict__.get("_pair_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_pair_cache", cache)
        if t not in cache:
            A = self.n_actions
            rows = self.reachable(t)
            valid = self.valid
            keep = np.ones((rows.size, A), dtype=bool)
            keep[self.action_free[rows], 1:] = False
            pos = np.flatnonzero(keep.reshape(-1))
            pid = rows[pos // A] * A + pos % A
            nval = valid.reshape(-1, valid.shape[-1])[pid].sum(axis=-1)
            single = nval == 1
            first = valid.reshape(-1, valid.shape[-1])[pid[single]].argmax(axis=-1)
            nxt = self.succ.reshape(-1, valid.shape[-1])[pid[single], first]
            cache[t] = (rows, pid[~single], pos[~single], pid[single], pos[single], nxt)
        out: tuple[IntArray, IntArray, IntArray, IntArray, IntArray, IntArray] = cache[t]
        return out

    def with_prob(self, prob: FloatArray) -> EpisodicMDP:
        """The same MDP with other transition probabilities on the same support."""
        return EpisodicMDP(self.succ, prob, self.reward, self.init, self.horizon,
                           self.time_weight, self.action_free, self.name)

    def __repr__(self) -> str:
        kind = "state" if self.state_rewards else "state-action"
        return (f"EpisodicMDP({self.name!r}, S={self.n_states}, A={self.n_actions}, "
                f"C={self.max_successors}, H={self.horizon}, {kind} rewards)")


# ---------------------------------------------------------------------------
# Algorithm 17: state-action rewards -> state rewards
# ---------------------------------------------------------------------------


def to_state_rewards(mdp: EpisodicMDP) -> EpisodicMDP:
    """Paper Algorithm 17: an equivalent MDP with state rewards only.

    Every original state ``s`` becomes a *deciding* state (index ``s``, reward 0) where
    the action is chosen; action ``a`` leads deterministically to the intermediate state
    ``(s, a)`` (index ``S + s * A + a``) which carries the reward ``r(s, a)`` and whose
    transition is the original ``P(. | s, a)`` for every action (it is action-free; at an
    action-free original state every action leads to the node ``(s, 0)``). The
    horizon doubles: time ``2t`` is a deciding step, ``2t + 1`` the rewarded step, with
    ``time_weight'[2t] = time_weight'[2t + 1] = time_weight[t]``. The value of any
    policy, and the optimal value, are preserved. An MDP that already has state rewards
    is returned unchanged.
    """
    if mdp.state_rewards:
        return mdp
    S, A, C = mdp.succ.shape
    n_new = S + S * A
    succ = np.full((n_new, A, C), -1, dtype=np.int64)
    prob = np.zeros((n_new, A, C))
    # deciding states: a -> node (s, a)
    succ[:S, :, 0] = S + np.arange(S)[:, None] * A + np.arange(A)[None, :]
    succ[:S, :, 0][mdp.action_free] = S + np.flatnonzero(mdp.action_free)[:, None] * A
    prob[:S, :, 0] = 1.0
    # node states: the original transition of (s, a), for every action
    succ[S:] = mdp.succ.reshape(S * A, 1, C)
    prob[S:] = mdp.prob.reshape(S * A, 1, C)
    reward = np.concatenate([np.zeros(S), mdp.reward.reshape(-1)])
    init = np.concatenate([mdp.init, np.zeros(S * A)])
    tw = np.repeat(mdp.time_weight, 2)
    af = np.concatenate([mdp.action_free, np.ones(S * A, dtype=bool)])
    return EpisodicMDP(succ, prob, reward, init, 2 * mdp.horizon, tw, af,
                       name=f"{mdp.name}+deciding")


def deciding_policy(mdp_sa: EpisodicMDP, policy_state_rewards: IntArray) -> IntArray:
    """Map a policy ``(2H, S + S A)`` of :func:`to_state_rewards`'s MDP back to ``(H, S)``."""
    S = mdp_sa.n_states
    return np.asarray(policy_state_rewards[0::2, :S], dtype=np.int64)


# ---------------------------------------------------------------------------
# exact dynamic programming
# ---------------------------------------------------------------------------


@dataclass
class DPSolution:
    """Exact finite-horizon solution: ``value = init @ v0``, ``policy[t, s]`` greedy."""

    value: float
    v0: FloatArray
    policy: IntArray


def _q_values(mdp: EpisodicMDP, t: int, v_next: FloatArray, prob: FloatArray,
              succ_safe: IntArray) -> FloatArray:
    r = mdp.reward_at(t)
    ev = (prob * v_next[succ_safe]).sum(axis=-1)
    return np.asarray(ev + (r[:, None] if r.ndim == 1 else r), dtype=np.float64)


def solve(mdp: EpisodicMDP, prob: FloatArray | None = None) -> DPSolution:
    """Exact finite-horizon value iteration (backward induction).

    ``prob`` optionally replaces ``mdp.prob`` (same support), e.g. an estimated model.
    Ties go to the lowest action; action-free states play action 0.
    """
    p = mdp.prob if prob is None else np.asarray(prob, dtype=np.float64)
    ss = mdp.succ_safe
    S, H = mdp.n_states, mdp.horizon
    v = np.zeros(S)
    policy = np.zeros((H, S), dtype=np.int64)
    af = mdp.action_free
    for t in range(H - 1, -1, -1):
        q = _q_values(mdp, t, v, p, ss)
        a = q.argmax(axis=1)
        a[af] = 0
        policy[t] = a
        v = q[np.arange(S), a]
    return DPSolution(float(mdp.init @ v), v, policy)


def _policy_at(policy: np.ndarray, t: int) -> np.ndarray:
    if policy.dtype.kind in "iu":
        return policy[t] if policy.ndim == 2 else policy
    return policy[t] if policy.ndim == 3 else policy


def check_policy(mdp: EpisodicMDP, policy: ArrayLike, name: str = "policy") -> np.ndarray:
    """Validate a policy: deterministic ``(S,)`` / ``(H, S)`` ints or stochastic
    ``(S, A)`` / ``(H, S, A)`` rows."""
    pol = np.asarray(policy)
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    if pol.dtype.kind in "iu":
        if pol.shape not in ((S,), (H, S)):
            raise ValueError(f"{name}: expected actions of shape ({S},) or {(H, S)}, "
                             f"got {pol.shape}")
        if pol.size and (pol.min() < 0 or pol.max() >= A):
            raise ValueError(f"{name}: expected actions in 0..{A - 1}")
        return pol.astype(np.int64)
    if pol.dtype.kind == "f":
        if pol.shape not in ((S, A), (H, S, A)):
            raise ValueError(f"{name}: expected probabilities of shape {(S, A)} or "
                             f"{(H, S, A)}, got {pol.shape}")
        if (pol < -1e-12).any() or (np.abs(pol.sum(-1) - 1) > 1e-8).any():
            raise ValueError(f"{name}: expected rows of probabilities summing to 1")
        return pol.astype(np.float64)
    raise ValueError(f"{name}: expected an integer or float array, got {pol.dtype}")


def evaluate_policy(mdp: EpisodicMDP, policy: ArrayLike,
                    prob: FloatArray | None = None) -> FloatArray:
    """``V_0^pi`` (shape ``(S,)``) of a deterministic or stochastic, stationary or
    time-dependent policy (see :func:`check_policy`), by backward induction.
    ``prob`` optionally replaces ``mdp.prob``. The policy's value is ``init @ V_0``."""
    pol = check_policy(mdp, policy)
    p = mdp.prob if prob is None else np.asarray(prob, dtype=np.float64)
    ss = mdp.succ_safe
    S = mdp.n_states
    rows = np.arange(S)
    v = np.zeros(S)
    for t in range(mdp.horizon - 1, -1, -1):
        pt = _policy_at(pol, t)
        r = mdp.reward_at(t)
        if pol.dtype.kind in "iu":
            ev = (p[rows, pt] * v[ss[rows, pt]]).sum(axis=-1)
            rr = r if r.ndim == 1 else r[rows, pt]
            v = ev + rr
        else:
            q = _q_values(mdp, t, v, p, ss)
            v = (pt * q).sum(axis=-1)
    return np.asarray(v, dtype=np.float64)


def policy_value(mdp: EpisodicMDP, policy: ArrayLike, prob: FloatArray | None = None) -> float:
    """``init @ V_0^pi``, computed only on the states reachable at each time step
    (:meth:`EpisodicMDP.reachable`); same number as ``init @ evaluate_policy(...)``."""
    pol = check_policy(mdp, policy)
    p = mdp.prob if prob is None else np.asarray(prob, dtype=np.float64)
    ss = mdp.succ_safe
    v = np.zeros(mdp.n_states)
    for t in range(mdp.horizon - 1, -1, -1):
        rows = mdp.reachable(t)
        pt = _policy_at(pol, t)
        r = mdp.reward_at(t)
        nv = np.zeros(mdp.n_states)
        if pol.dtype.kind in "iu":
            a = pt[rows]
            ev = (p[rows, a] * v[ss[rows, a]]).sum(axis=-1)
            nv[rows] = ev + (r[rows] if r.ndim == 1 else r[rows, a])
        else:
            ev = (p[rows] * v[ss[rows]]).sum(axis=-1)
            q = ev + (r[rows][:, None] if r.ndim == 1 else r[rows])
            nv[rows] = (pt[rows] * q).sum(axis=-1)
        v = nv
    return float(mdp.init @ v)


# ---------------------------------------------------------------------------
# confidence sets and FixedHorizonEVI
# ---------------------------------------------------------------------------


def confidence_intervals(counts: IntArray, valid: BoolArray, log_term: float,
                         width_scale: float = 1.0) -> tuple[FloatArray, FloatArray]:
    """Per-entry bounds ``[lo, hi]`` on ``P(s'|s, a)`` (UCFH's ConfidenceSet).

    From the ``ConfidenceSet(p, n)`` function of Dann & Brunskill (2015, Algorithm 1),
    with ``L = ln(6 / delta_1)``, empirical ``p = n(s, a, s') / n(s, a)`` and ``n =
    n(s, a)``, an admissible ``p'`` satisfies

    * ``|p - p'| <= min( sqrt(L / (2 n)),                                  (Hoeffding)
      sqrt(2 p (1 - p) L / n) + 7 L / (3 (n - 1)) )``                   (empirical Bernstein)
    * ``|sqrt(p'(1 - p')) - sqrt(p (1 - p))| <= sqrt(2 L / (n - 1))``     (variance; n > 1)

    (for ``n = 1`` only the Hoeffding width applies; for ``n = 0`` any ``p'`` in
    ``[0, 1]``). ``width_scale`` multiplies every width (``1`` = theory). The variance
    constraint can make the admissible set a union of two intervals; we return its
    *convex hull*, a superset, so the true model stays admissible whenever the paper's
    set contains it. Padding entries get ``[0, 0]``; pairs with a single possible
    successor are known exactly (``[1, 1]``).
    """
    n = counts.sum(axis=-1, keepdims=True).astype(np.float64)
    L = float(log_term)
    with np.errstate(divide="ignore", invalid="ignore"):
        ph = np.where(n > 0, counts / np.maximum(n, 1.0), 0.0)
        var = ph * (1.0 - ph)
        hoeff = np.sqrt(L / (2.0 * n))
        bern = np.where(n > 1, np.sqrt(2.0 * var * L / n) + 7.0 * L / (3.0 * (n - 1.0)), np.inf)
        w = width_scale * np.minimum(hoeff, bern)
        lo = np.maximum(ph - w, 0.0)
        hi = np.minimum(ph + w, 1.0)
        c = np.where(n > 1, width_scale * np.sqrt(2.0 * L / (n - 1.0)), np.inf)
    sig = np.sqrt(var)
    # sqrt(p'(1-p')) >= sig - c  <=>  p' in [r1, 1 - r1]
    low_v = np.clip(sig - c, 0.0, 0.5)
    r1 = 0.5 * (1.0 - np.sqrt(np.maximum(1.0 - 4.0 * low_v**2, 0.0)))
    lo = np.maximum(lo, r1)
    hi = np.minimum(hi, 1.0 - r1)
    # sqrt(p'(1-p')) <= sig + c  <=>  p' in [0, r2] U [1 - r2, 1]  (only binding if < 1/2)
    up_v = sig + c
    binding = up_v < 0.5
    r2 = 0.5 * (1.0 - np.sqrt(np.maximum(1.0 - 4.0 * np.minimum(up_v, 0.5) ** 2, 0.0)))
    lo = np.where(binding & (lo > r2), np.maximum(lo, 1.0 - r2), lo)
    hi = np.where(binding & (hi < 1.0 - r2), np.minimum(hi, r2), hi)
    # the empirical p always satisfies every constraint: guard against round-off
    lo = np.minimum(lo, ph)
    hi = np.maximum(hi, ph)
    unseen = np.broadcast_to(n == 0, counts.shape)
    lo = np.where(unseen, 0.0, lo)
    hi = np.where(unseen, 1.0, hi)
    lo = np.where(valid, lo, 0.0)
    hi = np.where(valid, hi, 0.0)
    single = np.broadcast_to(valid.sum(axis=-1, keepdims=True) == 1, valid.shape) & valid
    lo = np.where(single, 1.0, lo)
    hi = np.where(single, 1.0, hi)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


#: rows with at most this many successors use the sort-free pairwise allocation
_PAIRWISE_MAX_C = 8


class _Allocator:
    """Solve ``max`` / ``min`` of ``sum_c p_c v_c`` over ``lo <= p <= hi, sum p = 1`` for
    many value vectors with fixed intervals (the parts that do not depend on ``v`` are
    computed once)."""

    def __init__(self, lo: FloatArray, hi: FloatArray, valid: BoolArray) -> None:
        self.lo = lo
        self.valid = valid
        self.span = hi - lo
        self.rem = np.maximum(1.0 - lo.sum(axis=-1, keepdims=True), 0.0)
        C = lo.shape[-1]
        self.pairwise = C <= _PAIRWISE_MAX_C
        # earlier[c, c'] = c' < c (ties between equal values go to the lower index)
        self.earlier = np.tri(C, k=-1, dtype=bool)

    def expect(self, vals: FloatArray, maximize: bool = True,
               rows: IntArray | None = None) -> FloatArray:
        """The extreme expectation of ``vals`` (restricted to the leading-axis ``rows``)."""
        lo, span, rem, valid = self.lo, self.span, self.rem, self.valid
        if rows is not None:
            lo, span, rem, valid = lo[rows], span[rows], rem[rows], valid[rows]
        key = np.where(valid, vals if maximize else -vals, -np.inf)
        if self.pairwise:
            kc = key[..., :, None]
            ko = key[..., None, :]
            ahead = (ko > kc) | ((ko == kc) & self.earlier)
            before = (ahead * span[..., None, :]).sum(axis=-1)
            extra = np.minimum(np.maximum(rem - before, 0.0), span)
            return np.asarray(((lo + extra) * vals).sum(axis=-1), dtype=np.float64)
        order = np.argsort(-key, axis=-1, kind="stable")
        lo_s = np.take_along_axis(lo, order, axis=-1)
        span_s = np.take_along_axis(span, order, axis=-1)
        v_s = np.take_along_axis(vals, order, axis=-1)
        before = np.cumsum(span_s, axis=-1) - span_s
        extra = np.minimum(np.maximum(rem - before, 0.0), span_s)
        return np.asarray(((lo_s + extra) * v_s).sum(axis=-1), dtype=np.float64)


def extreme_expectation(lo: FloatArray, hi: FloatArray, vals: FloatArray, valid: BoolArray,
                        maximize: bool = True) -> FloatArray:
    """``max`` (or ``min``) of ``sum_c p_c vals_c`` over ``lo <= p <= hi, sum p = 1``,
    along the last axis.

    The inner step of FixedHorizonEVI: start from ``lo`` and hand the remaining mass
    ``1 - sum lo`` to the entries in decreasing (increasing, for ``min``) order of value,
    each up to its ``hi`` -- the exact solution of this linear program.
    """
    return _Allocator(lo, hi, valid).expect(vals, maximize)


def _state_reward(mdp: EpisodicMDP, t: int) -> FloatArray:
    if not mdp.state_rewards:
        raise ValueError(f"{mdp.name}: UCFH needs state rewards; convert state-action "
                         "rewards with altmarl.llearn.ucfh.to_state_rewards (paper Algorithm 17)")
    return mdp.reward_at(t)


def fixed_horizon_evi(mdp: EpisodicMDP, lo: FloatArray,
                      hi: FloatArray) -> tuple[FloatArray, IntArray]:
    """FixedHorizonEVI (Dann & Brunskill 2015): optimistic backward induction.

    For ``t = H-1 .. 0``: ``Q_t(s, a) = r_t(s) + max_{p in CI(s, a)} sum p V_{t+1}``
    (transitions may differ per time step, so each step's maximization is separate),
    ``V_t = max_a Q_t``. Returns the optimistic ``V_0`` and the greedy policy ``(H, S)``.
    Only states reachable at time ``t`` are computed (:meth:`EpisodicMDP.reachable`);
    elsewhere ``V`` is left at 0 and the policy at action 0, which does not change
    ``init @ V_0``.
    """
    _state_reward(mdp, 0)  # refuses state-action rewards
    S, A, C = mdp.succ.shape
    ss = mdp.succ_safe.reshape(S * A, C)
    v = np.zeros(S)
    policy = np.zeros((mdp.horizon, S), dtype=np.int64)
    alloc = _Allocator(lo.reshape(S * A, C), hi.reshape(S * A, C), mdp.valid.reshape(S * A, C))
    for t in range(mdp.horizon - 1, -1, -1):
        rows, pid, pos, pid1, pos1, nxt1 = mdp._pairs(t)
        qf = np.full(rows.size * A, -np.inf)
        if pid.size:
            qf[pos] = alloc.expect(v[ss[pid]], True, pid)
        qf[pos1] = v[nxt1]
        q = qf.reshape(rows.size, A) + (mdp.time_weight[t] * mdp.reward[rows])[:, None]
        a = q.argmax(axis=1)  # action-free rows: only action 0 is finite
        policy[t, rows] = a
        nv = np.zeros(S)
        nv[rows] = q[np.arange(rows.size), a]
        v = nv
    return v, policy


def bounded_policy_value(mdp: EpisodicMDP, lo: FloatArray, hi: FloatArray, policy: ArrayLike,
                         optimistic: bool) -> FloatArray:
    """Optimistic (or pessimistic) ``V_0`` of a fixed deterministic policy over the
    confidence set: an upper (lower) bound on its true value whenever the true model is
    admissible. Computed on reachable states only (valid for ``init @ V_0``)."""
    pol = check_policy(mdp, policy)
    if pol.dtype.kind not in "iu":
        raise ValueError("policy: bounded_policy_value needs a deterministic policy")
    ss, valid = mdp.succ_safe, mdp.valid
    S = mdp.n_states
    v = np.zeros(S)
    for t in range(mdp.horizon - 1, -1, -1):
        rows = mdp.reachable(t)
        a = _policy_at(pol, t)[rows]
        al = _Allocator(lo[rows, a], hi[rows, a], valid[rows, a])
        nv = np.zeros(S)
        nv[rows] = _state_reward(mdp, t)[rows] + al.expect(v[ss[rows, a]], optimistic)
        v = nv
    return v


# ---------------------------------------------------------------------------
# UCFH
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UCFHConstants:
    """Accuracy/confidence constants of UCFH (Dann & Brunskill 2015, Algorithm 1).

    With ``S``, ``A``, ``H``, ``C`` the MDP's sizes, and ``eps_n = eps / reward_scale``
    (the paper assumes rewards in ``[0, 1]``; we rescale by the largest ``|r_t(s)|``):

    * ``w_min = eps_n / (4 H S)``                     (smallest relevant visit weight)
    * ``U_max = S A log2(S H / w_min)``                (max number of model updates)
    * ``delta_1 = delta / (2 U_max C)``                (per-interval failure probability)
    * ``log_term = ln(6 / delta_1)``                   (``L`` in the widths)
    * ``m = 512 (log2 log2 H)^2 C H^2 / eps_n^2 * log2(8 H^2 S^2 / eps_n)^2 * L``
      (``(log2 log2 H)^2`` floored at 1; ``m`` may be overridden -- the theory value is
      astronomically large on anything but toy problems)
    * a pair is *updated* (its pending visits ``v`` merged into ``n`` and the policy
      recomputed) when ``v(s, a) >= max(m w_min, n(s, a))`` and ``n(s, a) < S m H``.

    ``width_scale`` multiplies every confidence width (1 = theory).
    """

    eps: float
    delta: float
    reward_scale: float
    eps_normalized: float
    n_states: int
    n_actions: int
    horizon: int
    C: int
    w_min: float
    U_max: float
    delta1: float
    log_term: float
    m_theory: float
    m: float
    width_scale: float

    @property
    def first_update(self) -> int:
        """Visits needed before a pair's first update: ``max(1, ceil(m w_min))``."""
        return max(1, math.ceil(self.m * self.w_min))

    @property
    def count_cap(self) -> float:
        """A pair stops being updated once ``n(s, a) >= S m H``."""
        return self.n_states * self.m * self.horizon

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["first_update"] = self.first_update
        d["count_cap"] = self.count_cap
        return d


def ucfh_constants(mdp: EpisodicMDP, eps: float, delta: float, m: float | None = None,
                   width_scale: float = 1.0) -> UCFHConstants:
    """Compute :class:`UCFHConstants` for ``mdp`` (see its docstring for the formulas)."""
    eps = check_positive("eps", eps)
    if not (isinstance(delta, int | float) and 0.0 < float(delta) < 1.0):
        raise ValueError(f"delta = {delta!r}: expected a number in (0, 1)")
    width_scale = check_positive("width_scale", width_scale)
    S, A, H, C = mdp.n_states, mdp.n_actions, mdp.horizon, mdp.max_successors
    tw = np.abs(mdp.time_weight)
    rscale = float(tw.max() * np.abs(mdp.reward).max()) if mdp.reward.size else 0.0
    rscale = rscale if rscale > 0 else 1.0
    eps_n = eps / rscale
    w_min = eps_n / (4.0 * H * S)
    U_max = S * A * math.log2(max(S * H / w_min, 2.0))
    delta1 = float(delta) / (2.0 * U_max * C)
    L = math.log(6.0 / delta1)
    loglog = max(math.log2(max(math.log2(max(H, 2)), 1.0)), 1.0)
    m_theory = (512.0 * loglog**2 * C * H**2 / eps_n**2
                * math.log2(8.0 * H**2 * S**2 / eps_n) ** 2 * L)
    if m is None:
        m_used = m_theory
    else:
        m_used = check_positive("m", m)
    return UCFHConstants(float(eps), float(delta), rscale, eps_n, S, A, H, C, w_min, U_max,
                         delta1, L, m_theory, float(m_used), float(width_scale))


@dataclass
class UCFHResult:
    """Outcome of :func:`ucfh`.

    ``policy`` ``(H, S)``: greedy optimistic policy for *all* collected data (or, when
    the run stopped on its certificate and the all-data plan is not certified, the
    certified policy);
    ``value_upper``: its optimistic value (an upper bound on the optimal value when the
    true model is admissible); ``value_lower``: its pessimistic value (a lower bound on
    its true value); ``certified``: ``value_upper - value_lower <= eps`` (then the
    policy is ``eps``-optimal with probability ``>= 1 - delta`` at theory widths);
    ``counts`` ``(S, A, C)``: all observed transitions; ``episodes``, ``samples``
    (= episodes * H environment steps), ``updates`` (policy recomputations), and the
    ``history`` of ``(episode, value_upper, value_lower)`` at each recomputation.
    """

    policy: IntArray
    value_upper: float
    value_lower: float
    certified: bool
    counts: IntArray
    episodes: int
    samples: int
    updates: int
    wall_time: float
    constants: UCFHConstants
    update_rule: str
    history: list[tuple[int, float, float]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {"value_upper": self.value_upper, "value_lower": self.value_lower,
                "certified": self.certified, "episodes": self.episodes,
                "samples": self.samples, "updates": self.updates,
                "wall_time": self.wall_time, "update_rule": self.update_rule,
                "constants": self.constants.to_dict()}


def empirical_prob(mdp: EpisodicMDP, counts: IntArray) -> FloatArray:
    """Maximum-likelihood transitions from ``counts``; unvisited pairs get the uniform
    distribution over their structural support."""
    valid = mdp.valid
    n = counts.sum(axis=-1, keepdims=True)
    uni = valid / valid.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, counts / np.maximum(n, 1), uni)
    return np.asarray(p, dtype=np.float64)


def _simulate(mdp: EpisodicMDP, cdf: FloatArray, nvalid: IntArray, policy: IntArray,
              batch: int, rng: np.random.Generator) -> tuple[IntArray, IntArray, IntArray]:
    """``batch`` episodes under a deterministic ``(H, S)`` policy: states, actions and
    successor slots, each ``(batch, H)``."""
    H = mdp.horizon
    init_cdf = np.cumsum(mdp.init)
    s = np.minimum(np.searchsorted(init_cdf, rng.random(batch) * init_cdf[-1], side="right"),
                   mdp.n_states - 1)
    S_hist = np.empty((batch, H), dtype=np.int64)
    A_hist = np.empty((batch, H), dtype=np.int64)
    C_hist = np.empty((batch, H), dtype=np.int64)
    u = rng.random((H, batch))
    for t in range(H):
        a = policy[t, s]
        c = (cdf[s, a] < u[t][:, None]).sum(axis=1)
        c = np.minimum(c, nvalid[s, a] - 1)
        S_hist[:, t], A_hist[:, t], C_hist[:, t] = s, a, c
        s = mdp.succ[s, a, c]
    return S_hist, A_hist, C_hist


def ucfh(mdp: EpisodicMDP, *, eps: float, delta: float = 0.1, episodes: int | None = None,
         max_episodes: int = 100_000, m: float | None = None, width_scale: float = 1.0,
         update: str = "paper", seed: int = 0) -> UCFHResult:
    """Run UCFH (Dann & Brunskill 2015, Algorithm 1) on ``mdp`` (state rewards).

    Loop: plan with :func:`fixed_horizon_evi` on the confidence set built from the
    model counts ``n``; run episodes with the greedy policy, accumulating *pending*
    visit counts ``v``; once a pair satisfies the update condition of
    :class:`UCFHConstants` (``v >= max(m w_min, n)``, ``n < S m H``), merge its
    pending counts into ``n`` and re-plan. ``update="paper"`` merges one pair per
    check and runs at least one episode between re-plans (the paper's
    ``repeat ... until``); ``update="batch"`` merges every pair that satisfies the
    condition at once (fewer re-plans; a documented practical variant).

    The learner only *samples* transitions from ``mdp.prob``; it uses ``mdp.succ`` (the
    structural support), the rewards, the horizon and the initial distribution (for
    reporting values). Pairs with a single possible successor are known and never
    trigger updates; action-free states always play action 0.

    Stopping: with ``episodes`` given, exactly that many episodes; with ``episodes=None``
    until the certificate ``value_upper - value_lower <= eps`` holds at a re-plan, or
    ``max_episodes``. Episodes are simulated in vectorized batches; episodes drawn after
    the one that triggers an update are discarded (never counted), so the procedure is
    the sequential algorithm exactly. Same ``seed`` => same result.
    """
    t0 = time.perf_counter()
    if not isinstance(mdp, EpisodicMDP):
        raise ValueError(f"mdp: expected an altmarl.llearn.ucfh.EpisodicMDP, got {type(mdp).__name__}")
    if not mdp.state_rewards:
        raise ValueError(f"{mdp.name}: UCFH needs state rewards; convert state-action "
                         "rewards with altmarl.llearn.ucfh.to_state_rewards (paper Algorithm 17)")
    if update not in UPDATE_RULES:
        raise ValueError(f"update = {update!r}: expected one of {list(UPDATE_RULES)}")
    if episodes is not None:
        check_int("episodes", episodes)
    check_int("max_episodes", max_episodes)
    check_int("seed", seed, minimum=None)
    const = ucfh_constants(mdp, eps, delta, m, width_scale)
    budget = int(episodes) if episodes is not None else int(max_episodes)
    stop_when_certified = episodes is None
    rng = np.random.default_rng(int(seed))

    S, A, C = mdp.succ.shape
    H = mdp.horizon
    valid = mdp.valid
    nvalid = valid.sum(axis=-1)
    learnable = (nvalid > 1).reshape(-1)
    cdf = np.cumsum(mdp.prob, axis=-1)
    n_cnt = np.zeros((S, A, C), dtype=np.int64)
    v_cnt = np.zeros((S, A, C), dtype=np.int64)
    first = const.first_update
    cap = const.count_cap

    def plan(counts: IntArray, lower: bool) -> tuple[IntArray, float, float]:
        lo, hi = confidence_intervals(counts, valid, const.log_term, const.width_scale)
        v0, pol = fixed_horizon_evi(mdp, lo, hi)
        if not lower:
            return pol, float(mdp.init @ v0), float("nan")
        vl = bounded_policy_value(mdp, lo, hi, pol, optimistic=False)
        return pol, float(mdp.init @ v0), float(mdp.init @ vl)

    policy, vu, vl = plan(n_cnt, stop_when_certified)
    history = [(0, vu, vl)]
    updates = 1
    done = 0
    batch = 1
    certified = bool(vu - vl <= eps)
    while done < budget and not (stop_when_certified and certified):
        n_pair = n_cnt.sum(axis=-1).reshape(-1)
        v_pair = v_cnt.sum(axis=-1).reshape(-1)
        thr = np.maximum(n_pair, first)
        eligible = learnable & (n_pair < cap)
        need = thr - v_pair
        ready = eligible & (need <= 0)
        B = 1 if ready.any() else min(batch, budget - done)
        s_h, a_h, c_h = _simulate(mdp, cdf, nvalid, policy, B, rng)
        pid = (s_h * A + a_h).reshape(-1)
        if ready.any():
            used = 1
            trigger = True
        else:
            # position (episode-major) at which some eligible pair reaches its threshold
            order = np.argsort(pid, kind="stable")
            sp = pid[order]
            starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
            grp = np.repeat(starts, np.diff(np.r_[starts, sp.size]))
            occ = np.empty_like(pid)
            occ[order] = np.arange(sp.size) - grp + 1
            hit = eligible[pid] & (occ == need[pid])
            if hit.any():
                used = int(np.argmax(hit)) // H + 1
                trigger = True
            else:
                used = B
                trigger = False
        sl = slice(0, used * H)
        s_f, a_f, c_f = s_h.reshape(-1)[sl], a_h.reshape(-1)[sl], c_h.reshape(-1)[sl]
        np.add.at(v_cnt, (s_f, a_f, c_f), 1)
        done += used
        batch = max(1, used) if trigger else min(2 * batch, 1024)
        if not trigger:
            continue
        v_pair = v_cnt.sum(axis=-1).reshape(-1)
        qualify = np.flatnonzero(eligible & (v_pair >= thr))
        if update == "paper":
            if ready.any():
                qualify = np.flatnonzero(ready)[:1]
            else:
                qualify = np.array([pid[int(np.argmax(hit))]])
        ps, pa = np.divmod(qualify, A)
        n_cnt[ps, pa] += v_cnt[ps, pa]
        v_cnt[ps, pa] = 0
        policy, vu, vl = plan(n_cnt, stop_when_certified)
        updates += 1
        history.append((done, vu, vl))
        certified = bool(vu - vl <= eps)
    total = n_cnt + v_cnt
    final = plan(total, True)
    if not (certified and final[1] - final[2] > eps):  # else keep the certified plan
        policy, vu, vl = final
    return UCFHResult(policy, vu, vl, bool(vu - vl <= eps), total, done, done * H, updates,
                      time.perf_counter() - t0, const, update, history)
