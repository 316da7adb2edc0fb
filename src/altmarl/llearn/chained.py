"""Chained MDPs and the UCFH route of L-LEARN (SPEC 5.2; paper Algorithms 21, 28, 17).

For a fixed global policy ``pi_g`` with subsample size ``k``, the representative local
agent's problem is not Markov in ``(s_l, s_g)``. The paper (Appendix C.3) unfolds each
step of the ``k``-agent surrogate into a chain of micro-steps, giving an episodic MDP
whose action space is ``A_l``:

* **k-chained MDP** (paper Algorithm 21). State ``(j, s_g, s_g', s_1..s_k)``; micro-step
  ``j = 0`` (the *global* step) evaluates ``a_g = pi_g(s_g, hist(s_1..s_k))``, collects
  ``r_g(s_g, a_g)`` and samples the pending ``s_g' ~ P_g(. | s_g, a_g)`` *before* any
  replica moves; micro-step ``j = 1..k`` lets the learner pick ``a_j`` for replica ``j``
  (it should only look at ``(s_j, s_g)``), collects ``r_l(s_j, s_g, a_j) / k`` and moves
  replica ``j`` with ``P_l(. | s_j, s_g, a_j)`` (the *current* ``s_g``); after micro-step
  ``k`` the chain commits ``s_g <- s_g'``. ``k + 1`` micro-steps per macro step;
  ``|S_g| |S_l|^k (1 + k |S_g|)`` states.
* **mean-field chained MDP** (paper Algorithm 28; SPEC 5). The same over a histogram:
  micro-step 0 is the global step on ``(s_g, h)``; micro-step ``1 + x`` (``x = 0..|S_l|-1``)
  processes bin ``x``: the learner picks one action ``a`` for the whole bin (the shared
  deterministic policy at ``(x, s_g)``), collects ``h[x] r_l(x, s_g, a) / k`` and moves
  the bin's mass, ``Multinomial(h[x], P_l(. | x, s_g, a))``, into a new histogram; after
  the last bin the chain commits ``(s_g, h) <- (s_g', h')``. ``|S_l| + 1`` micro-steps per
  macro step. A state of bin step ``x`` is ``(s_g, s_g', old[x:], new)``: the bins not yet
  processed and the histogram of the agents already moved (total ``k``).

**Discount and normalisation.** Every reward collected during macro step ``t`` is weighted
by ``gamma^t`` (a time-dependent reward: ``time_weight[micro t'] = gamma^(t' // micro)``),
and local rewards carry the ``1/k`` of SPEC eq. 1. Summing a chain's micro rewards gives
exactly ``gamma^t (r_g(s_g, a_g) + (1/k) sum_i r_l(s_i, s_g, a_i))``, so the chained MDP's
value of a shared policy equals the ``k``-agent surrogate's (``n = k``, the global agent
sees every replica) discounted return truncated at ``H`` macro steps.

**Horizon.** ``H = ceil(log(r_max / (eps (1 - gamma))) / (1 - gamma))`` macro steps
(:func:`truncation_horizon`), so the discarded tail ``gamma^H r_max / (1 - gamma)`` is at
most ``eps``.

**Shared policy.** UCFH learns a time-dependent policy over whole chained states. The
paper constrains the policy class to actions that depend only on ``(s_active, s_g)``; we
impose the constraint when extracting the policy (see :func:`chained_best_response`,
whose options are one frozen :class:`ChainedOptions`). The episodic-MDP machinery (exact DP,
Algorithm 17, UCFH) is :mod:`altmarl.llearn.ucfh`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import product
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from altmarl._validate import check_choice, check_float, check_instance, check_int, check_positive
from altmarl.game import TabularGame
from altmarl.histogram import enumerate_histograms, num_histograms, rank
from altmarl.llearn.ucfh import (
    UPDATE_RULES,
    EpisodicMDP,
    UCFHResult,
    bounded_policy_value,
    confidence_intervals,
    empirical_prob,
    policy_value,
    to_state_rewards,
    ucfh,
)
from altmarl.policies import GlobalPolicy, one_hot
from altmarl.simulate import check_joint

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: the chained MDPs: paper Algorithm 28 (over a histogram) and Algorithm 21 (over replicas)
VARIANTS: Final = ("mean-field", "k-chained")
#: the shared-policy extraction methods of :func:`extract_shared_policy`
EXTRACTION: Final = ("auto", "vote", "search", "exhaustive")
#: refuse chained MDPs whose transition tables would exceed this many entries
MAX_TABLE_ENTRIES: Final = 30_000_000
#: exhaustive search over shared deterministic policies when at most this many
EXHAUSTIVE_LIMIT: Final = 256
#: truncation accuracy ``eps`` (and UCFH's accuracy)
DEFAULT_EPS: Final = 0.1
#: UCFH's failure probability ``delta``
DEFAULT_DELTA: Final = 0.1
#: refuse chained MDPs with more states than this (unless raised)
DEFAULT_MAX_STATES: Final = 20_000
#: UCFH episodes at most when running until its certificate holds
DEFAULT_MAX_EPISODES: Final = 100_000


# ---------------------------------------------------------------------------
# horizon truncation
# ---------------------------------------------------------------------------


def truncation_horizon(gamma: float, r_max: float, eps: float) -> int:
    """``H = ceil(log(r_max / (eps (1 - gamma))) / (1 - gamma))`` macro steps, at least 1
    (paper Lemma C.1 / Corollary C.2; SPEC 5): then ``gamma^H r_max / (1 - gamma) <= eps``."""
    eps = check_positive("eps", eps)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma = {gamma!r}: expected a number in [0, 1)")
    ratio = r_max / (eps * (1.0 - gamma))
    if ratio <= 1.0:
        return 1
    return max(1, math.ceil(math.log(ratio) / (1.0 - gamma)))


# ---------------------------------------------------------------------------
# the chained MDP
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ChainedMDP:
    """A chained MDP built from ``(game, pi_g)``.

    ``mdp``: the episodic MDP with state-action rewards (before Algorithm 17);
    ``active_sl[s]``, ``active_sg[s]``: the local state and global state the learner's
    action at ``s`` applies to (``-1`` at global micro-steps); ``stage[s]``: micro-step
    index within the macro step; ``micro``: micro-steps per macro step; ``macro_horizon``:
    ``H``.
    """

    mdp: EpisodicMDP
    variant: str
    k: int
    macro_horizon: int
    micro: int
    active_sl: IntArray
    active_sg: IntArray
    stage: IntArray
    gamma: float
    n_sl: int
    n_sg: int
    n_al: int

    @property
    def n_states(self) -> int:
        return self.mdp.n_states

    def policy_actions(self, actions: ArrayLike) -> IntArray:
        """Chained-MDP actions ``(S,)`` of the shared deterministic policy
        ``actions[s_l, s_g]`` (action 0 at global micro-steps)."""
        a = np.asarray(actions, dtype=np.int64)
        if a.shape != (self.n_sl, self.n_sg):
            raise ValueError(f"actions: expected shape (|S_l|, |S_g|) = {(self.n_sl, self.n_sg)}, "
                             f"got {a.shape}")
        act = self.active_sl >= 0
        out = np.zeros(self.n_states, dtype=np.int64)
        out[act] = a[self.active_sl[act], self.active_sg[act]]
        out[self.mdp.action_free] = 0
        return out


def _check_game_policy(game: Any, pi_g: Any) -> tuple[TabularGame, GlobalPolicy]:
    game = check_instance("game", game, TabularGame, "an altmarl.TabularGame")
    pi_g = check_instance("pi_g", pi_g, GlobalPolicy, "an altmarl.GlobalPolicy")
    check_joint(game, pi_g)
    if pi_g.sampling.kind != "uniform":
        raise ValueError(f"pi_g.sampling = {pi_g.sampling.describe()}: the chained MDPs "
                         "(Algorithms 21, 28) model uniform k-samples only; use "
                         "solver='induced-vi' or 'direct' (SPEC 12)")
    return game, pi_g


def chained_num_states(game: TabularGame, k: int, variant: str) -> int:
    """Number of states of the chained MDP (before Algorithm 17)."""
    check_choice("variant", variant, VARIANTS)
    G, d = game.n_sg, game.n_sl
    if variant == "k-chained":
        return G * d**k * (1 + k * G)
    NH = num_histograms(k, d)
    return G * NH + G * G * (NH + sum(num_histograms(k, 2 * d - x) for x in range(1, d)))


def _time_weight(gamma: float, H: int, micro: int) -> FloatArray:
    return np.asarray(gamma ** (np.arange(H * micro) // micro), dtype=np.float64)


def _initial_global(game: TabularGame, hists: IntArray, k: int) -> FloatArray:
    """``P(s_g, h)`` for every ``s_g`` and histogram row of ``hists``: the law of the
    initial global state and of the histogram of ``k`` agents, from
    ``game.init.log_pmf(s_g, h, k)`` (the law of a ``k``-subsample of the initial
    population for the built-in exchangeable initial laws)."""
    G = game.n_sg
    sg = np.repeat(np.arange(G), hists.shape[0])
    hh = np.tile(hists, (G, 1))
    lp = np.asarray(game.init.log_pmf(sg, hh, k), dtype=np.float64).reshape(G, -1)
    p = np.exp(lp)
    return np.asarray(p, dtype=np.float64)


def build_chained_mdp(game: TabularGame, pi_g: GlobalPolicy, *, variant: str = "mean-field",
                      horizon: int, max_states: int = DEFAULT_MAX_STATES,
                      pi_l_table: ArrayLike | None = None) -> ChainedMDP:
    """Build the chained MDP of ``(game, pi_g)`` (paper Algorithm 21 or 28) as an explicit
    episodic MDP with ``horizon`` macro steps (``horizon * micro`` micro-steps).

    With ``pi_l_table`` the result has a single action whose transitions and rewards are
    those of the (possibly stochastic) shared policy: each agent of a bin or replica draws
    its action and next state independently (``K[x, s_g] = sum_a pi_l P_l``, expected
    reward ``sum_a pi_l r_l``), which evaluates stochastic policies exactly in both
    variants.

    Raises ``ValueError`` when the chained MDP would have more than ``max_states`` states
    or more than ``MAX_TABLE_ENTRIES`` transition entries.
    """
    game, pi_g = _check_game_policy(game, pi_g)
    check_choice("variant", variant, VARIANTS)
    check_int("horizon", horizon)
    check_int("max_states", max_states)
    k = pi_g.k
    G, d, A = game.n_sg, game.n_sl, game.n_al
    n_states = chained_num_states(game, k, variant)
    if n_states > max_states:
        raise ValueError(
            f"max_states = {max_states}: the {variant} chained MDP for k = {k}, |S_g| = {G}, "
            f"|S_l| = {d} has {n_states} states; use a smaller k, "
            + ("variant='mean-field', " if variant == "k-chained" else "")
            + "or raise max_states")
    if pi_l_table is None:
        kern = np.transpose(game.P_l, (2, 0, 1, 3))  # (A, d, G, d)
        rew = np.transpose(game.r_l, (2, 0, 1))  # (A, d, G)
    else:
        t = np.asarray(pi_l_table, dtype=np.float64)
        if t.shape != (d, G, A):
            raise ValueError(f"pi_l_table: expected shape (|S_l|, |S_g|, |A_l|) = {(d, G, A)}, "
                             f"got {t.shape}")
        kern = game.local_kernel(t)[None]
        rew = game.local_reward(t)[None]
    n_act = kern.shape[0]
    C = max(G, d) if variant == "k-chained" else max(G, num_histograms(k, d))
    if n_states * n_act * C > MAX_TABLE_ENTRIES:
        raise ValueError(
            f"max_states: the {variant} chained MDP would hold {n_states * n_act * C} "
            f"transition entries (> {MAX_TABLE_ENTRIES}); use a smaller k")
    if variant == "k-chained":
        parts = _build_k_chained(game, pi_g, kern, rew, C)
        micro = k + 1
    else:
        parts = _build_mean_field(game, pi_g, kern, rew, C)
        micro = d + 1
    succ, prob, reward, init, af, act_sl, act_sg, stage = parts
    # drop zero-probability successors from the support (structural zeros of P_g, P_l)
    zero = (prob == 0) & (succ >= 0)
    if zero.any():
        succ, prob = _compact(np.where(zero, -1, succ), prob)
    assert succ.shape[0] == n_states
    H = int(horizon)
    tw = _time_weight(game.gamma, H, micro)
    init = init / init.sum()
    mdp = EpisodicMDP(succ, prob, reward, init, H * micro, tw, af,
                      name=f"{variant} chained MDP (k={k})")
    return ChainedMDP(mdp, variant, k, H, micro, act_sl, act_sg, stage, game.gamma,
                      d, G, A)


def _empty_tables(S: int, nA: int, C: int) -> tuple[
        IntArray, FloatArray, FloatArray, NDArray[np.bool_], IntArray, IntArray, IntArray]:
    """Blank chained-MDP tables for ``S`` states, ``nA`` actions, ``C`` successor slots:
    successors (-1 = none), probabilities, rewards, action-free flags, the active
    ``(s_l, s_g)`` of each state (-1 = none) and its micro-stage."""
    return (np.full((S, nA, C), -1, dtype=np.int64), np.zeros((S, nA, C)), np.zeros((S, nA)),
            np.zeros(S, dtype=bool), np.full(S, -1, dtype=np.int64),
            np.full(S, -1, dtype=np.int64), np.zeros(S, dtype=np.int64))


def _build_k_chained(game: TabularGame, pi_g: GlobalPolicy, kern: FloatArray,
                     rew: FloatArray, C: int) -> tuple[Any, ...]:
    """Tables of paper Algorithm 21. State layout: global stage ``s_g * T + tau``;
    replica stage ``j`` (1..k): ``off_j + (s_g * G + p) * T + tau``, with ``tau`` the
    base-``|S_l|`` index of the replica tuple (replica 1 most significant)."""
    k = pi_g.k
    G, d = game.n_sg, game.n_sl
    nA = kern.shape[0]
    T = d**k
    tuples = np.stack(np.unravel_index(np.arange(T), (d,) * k), axis=1).astype(np.int64)
    hists = (tuples[:, :, None] == np.arange(d)).sum(axis=1)
    a_g = pi_g.actions[:, rank(hists, k)]  # (G, T)
    n_glob = G * T
    n_rep = G * G * T
    S = n_glob + k * n_rep
    succ, prob, reward, af, act_sl, act_sg, stage = _empty_tables(S, nA, C)
    sg = np.arange(G)
    tau = np.arange(T)
    # global stage: (s_g, tau) -> (1, s_g, p, tau) w.p. P_g[s_g, a_g, p]
    nxt = n_glob + ((sg[:, None, None] * G + np.arange(G)[None, None, :]) * T
                    + tau[None, :, None])  # (G, T, G)
    pg = game.P_g[sg[:, None], a_g]  # (G, T, G)
    succ[:n_glob, :, :G] = nxt.reshape(n_glob, 1, G)
    prob[:n_glob, :, :G] = pg.reshape(n_glob, 1, G)
    reward[:n_glob] = game.r_g[sg[:, None], a_g].reshape(n_glob, 1)
    af[:n_glob] = True
    # replica stages
    for j in range(1, k + 1):
        off = n_glob + (j - 1) * n_rep
        x = tuples[:, j - 1]  # (T,)
        w = d ** (k - j)
        tau_next = tau[:, None] + (np.arange(d)[None, :] - x[:, None]) * w  # (T, d)
        if j < k:
            base = n_glob + j * n_rep + (sg[:, None] * G + np.arange(G)[None, :]) * T  # (G, G)
        else:
            base = np.broadcast_to(np.arange(G)[None, :] * T, (G, G))  # commit s_g <- p
        nx = base[:, :, None, None] + tau_next[None, None]  # (G, G, T, d)
        # kern[a, x, s_g, x'] -> (G, T, nA, d)
        pl = np.transpose(kern[:, x][:, :, sg], (2, 1, 0, 3))
        rl = np.transpose(rew[:, x][:, :, sg], (2, 1, 0)) / k  # (G, T, nA)
        sl = slice(off, off + n_rep)
        succ[sl, :, :d] = np.broadcast_to(nx[:, :, :, None, :], (G, G, T, nA, d)).reshape(
            n_rep, nA, d)
        prob[sl, :, :d] = np.broadcast_to(pl[:, None], (G, G, T, nA, d)).reshape(n_rep, nA, d)
        reward[sl] = np.broadcast_to(rl[:, None], (G, G, T, nA)).reshape(n_rep, nA)
        act_sl[sl] = np.broadcast_to(x[None, None, :], (G, G, T)).reshape(-1)
        act_sg[sl] = np.broadcast_to(sg[:, None, None], (G, G, T)).reshape(-1)
        stage[sl] = j
    # initial law on the global stage: P(s_g, hist(tau)) / multinomial(k; hist(tau))
    p_glob = _initial_global(game, hists, k)  # (G, T)
    log_coef = gammaln(k + 1) - gammaln(hists + 1).sum(axis=1)
    init = np.zeros(S)
    init[:n_glob] = (p_glob / np.exp(log_coef)[None, :]).reshape(-1)
    return succ, prob, reward, init, af, act_sl, act_sg, stage


def _build_mean_field(game: TabularGame, pi_g: GlobalPolicy, kern: FloatArray,
                      rew: FloatArray, C: int) -> tuple[Any, ...]:
    """Tables of paper Algorithm 28. State layout: global stage ``s_g * |H_k| + rank(h)``;
    bin stage ``x``: ``off_x + (s_g * G + p) * N_x + rank(vec)`` with ``vec = old`` for
    ``x = 0`` (``N_0 = |H_k|``) and ``vec = (old[x:], new)`` (``2|S_l| - x`` bins summing to
    ``k``) for ``x >= 1``."""
    k = pi_g.k
    G, d = game.n_sg, game.n_sl
    nA = kern.shape[0]
    HK = enumerate_histograms(k, d)
    NH = HK.shape[0]
    vecs = [HK] + [enumerate_histograms(k, 2 * d - x) for x in range(1, d)]
    sizes = [v.shape[0] for v in vecs]
    n_glob = G * NH
    offs = [n_glob]
    for x in range(d - 1):
        offs.append(offs[-1] + G * G * sizes[x])
    S = offs[-1] + G * G * sizes[d - 1]
    succ, prob, reward, af, act_sl, act_sg, stage = _empty_tables(S, nA, C)
    sg = np.arange(G)
    a_g = pi_g.actions  # (G, NH)
    # global stage: (s_g, h) -> bin stage 0 (s_g, p, old = h)
    nxt = offs[0] + ((sg[:, None, None] * G + np.arange(G)[None, None, :]) * NH
                     + np.arange(NH)[None, :, None])  # (G, NH, G)
    succ[:n_glob, :, :G] = nxt.reshape(n_glob, 1, G)
    prob[:n_glob, :, :G] = game.P_g[sg[:, None], a_g].reshape(n_glob, 1, G)
    reward[:n_glob] = game.r_g[sg[:, None], a_g].reshape(n_glob, 1)
    af[:n_glob] = True
    with np.errstate(divide="ignore"):
        logk = np.log(kern)  # (nA, d, G, d)
    for x in range(d):
        V = vecs[x]
        Nx = sizes[x]
        if x == 0:
            old = V
            new = np.zeros_like(V)
        else:
            old = np.concatenate([np.zeros((Nx, x), dtype=np.int64), V[:, : d - x]], axis=1)
            new = V[:, d - x:]
        cnt = old[:, x]  # agents in bin x
        rows = (offs[x] + (sg[:, None, None] * G + np.arange(G)[None, :, None]) * Nx
                + np.arange(Nx)[None, None, :])  # (G, G, Nx)
        # reward h[x] r_l(x, s_g, a) / k: (G, Nx, nA)
        rw = cnt[None, :, None] * np.transpose(rew[:, x, :], (1, 0))[:, None, :] / k
        reward[rows.reshape(-1)] = np.broadcast_to(rw[:, None], (G, G, Nx, nA)).reshape(-1, nA)
        af[rows.reshape(-1)] = np.broadcast_to((cnt == 0)[None, None, :], (G, G, Nx)).reshape(-1)
        act_sl[rows.reshape(-1)] = x
        act_sg[rows.reshape(-1)] = np.broadcast_to(sg[:, None, None], (G, G, Nx)).reshape(-1)
        stage[rows.reshape(-1)] = x + 1
        for c in range(k + 1):
            sel = np.flatnonzero(cnt == c)
            if sel.size == 0:
                continue
            M = enumerate_histograms(c, d)  # (nc, d) moved agents' next bins
            nc = M.shape[0]
            new_next = new[sel][:, None, :] + M[None, :, :]  # (ns, nc, d)
            if x < d - 1:
                vec_next = np.concatenate(
                    [np.broadcast_to(old[sel][:, None, x + 1:], (sel.size, nc, d - x - 1)),
                     new_next], axis=2)
                r_next = rank(vec_next, k)  # (ns, nc)
                nxt_idx = (offs[x + 1] + (sg[:, None, None, None] * G
                                          + np.arange(G)[None, :, None, None]) * sizes[x + 1]
                           + r_next[None, None])  # (G, G, ns, nc)
            else:  # commit (s_g, h) <- (p, new)
                r_next = rank(new_next, k)
                nxt_idx = np.broadcast_to(
                    np.arange(G)[None, :, None, None] * NH + r_next[None, None], (G, G) + r_next.shape)
            # multinomial pmf of M under kern[a, x, s_g, :]: (nA, G, nc)
            coef = gammaln(c + 1) - gammaln(M + 1).sum(axis=1)  # (nc,)
            lk = logk[:, x]  # (nA, G, d)
            with np.errstate(invalid="ignore"):
                term = np.where(M[None, None] > 0, M[None, None] * lk[:, :, None, :], 0.0)
            term = term.sum(-1)
            pmf = np.exp(coef[None, None] + term)  # (nA, G, nc)
            rr = rows[:, :, sel].reshape(-1)
            succ[rr, :, :nc] = np.broadcast_to(nxt_idx[:, :, :, None, :],
                                               (G, G, sel.size, nA, nc)).reshape(-1, nA, nc)
            pm = np.transpose(pmf, (1, 0, 2))  # (G, nA, nc)
            prob[rr, :, :nc] = np.broadcast_to(pm[:, None, None], (G, G, sel.size, nA, nc)
                                               ).reshape(-1, nA, nc)
    init = np.zeros(S)
    init[:n_glob] = _initial_global(game, HK, k).reshape(-1)
    return succ, prob, reward, init, af, act_sl, act_sg, stage


def _compact(succ: IntArray, prob: FloatArray) -> tuple[IntArray, FloatArray]:
    """Move valid entries to the front of each row (padding last), keeping rows aligned."""
    order = np.argsort(succ < 0, axis=-1, kind="stable")
    s2 = np.take_along_axis(succ, order, axis=-1)
    p2 = np.take_along_axis(prob, order, axis=-1)
    p2 = np.where(s2 >= 0, p2, 0.0)
    keep = max(int((s2 >= 0).sum(axis=-1).max()), 1)
    return s2[..., :keep], p2[..., :keep]


# ---------------------------------------------------------------------------
# values of shared policies
# ---------------------------------------------------------------------------


def chained_policy_value(chain: ChainedMDP, pi_l_table: ArrayLike, game: TabularGame | None = None,
                         pi_g: GlobalPolicy | None = None, prob: FloatArray | None = None) -> float:
    """Value of the shared local policy ``pi_l_table`` ``(S_l, S_g, A_l)`` in the chained
    MDP: the ``k``-agent surrogate's discounted return truncated at ``H`` macro steps.

    Deterministic tables are evaluated on ``chain`` directly (optionally under an
    estimated model ``prob``). A stochastic table is exact in the k-chained variant
    (each replica randomizes independently); in the mean-field variant a whole bin moves
    with one action, so a stochastic table needs ``game`` and ``pi_g`` to rebuild the
    chain with the policy's mixed kernel (:func:`build_chained_mdp` with ``pi_l_table``).
    """
    t = np.asarray(pi_l_table, dtype=np.float64)
    if t.shape != (chain.n_sl, chain.n_sg, chain.n_al):
        raise ValueError(f"pi_l_table: expected shape {(chain.n_sl, chain.n_sg, chain.n_al)}, "
                         f"got {t.shape}")
    if (t < 0).any() or (np.abs(t.sum(-1) - 1) > 1e-8).any():
        raise ValueError("pi_l_table: expected rows of probabilities summing to 1")
    det = bool(np.all((t == 0) | (t == 1)))
    mdp = chain.mdp
    if det:
        return policy_value(mdp, chain.policy_actions(t.argmax(axis=-1)), prob)
    if chain.variant == "k-chained":
        probs = np.zeros((mdp.n_states, mdp.n_actions))
        act = (chain.active_sl >= 0) & ~mdp.action_free
        probs[act] = t[chain.active_sl[act], chain.active_sg[act]]
        probs[~act, 0] = 1.0
        return policy_value(mdp, probs, prob)
    if game is None or pi_g is None:
        raise ValueError("pi_l_table is stochastic: the mean-field chained value needs game "
                         "and pi_g to rebuild the chain with the mixed kernel")
    if prob is not None:
        raise ValueError("prob: a model can only be given for deterministic tables")
    mixed = build_chained_mdp(game, pi_g, variant="mean-field", horizon=chain.macro_horizon,
                              max_states=chain.n_states, pi_l_table=t)
    return policy_value(mixed.mdp, np.zeros(mixed.n_states, np.int64))


# ---------------------------------------------------------------------------
# policy extraction (the shared-policy constraint)
# ---------------------------------------------------------------------------


def _vote(chain: ChainedMDP, prob: FloatArray, policy: IntArray) -> FloatArray:
    """``score[s_l, s_g, a]``: occupancy (under ``prob``) of chained states whose active
    ``(s_l, s_g)`` is the given pair and where ``policy`` (``(H, S)``) plays ``a``."""
    mdp = chain.mdp
    S = mdp.n_states
    rows = np.arange(S)
    ss = mdp.succ_safe
    score = np.zeros((chain.n_sl, chain.n_sg, chain.n_al))
    act = (chain.active_sl >= 0) & ~mdp.action_free
    dist: FloatArray = mdp.init.copy()
    for t in range(mdp.horizon):
        a = policy[t]
        np.add.at(score, (chain.active_sl[act], chain.active_sg[act], a[act]), dist[act])
        if t + 1 < mdp.horizon:
            w = dist[:, None] * prob[rows, a]
            dist = np.bincount(ss[rows, a].reshape(-1), weights=w.reshape(-1),
                               minlength=S).astype(np.float64)
    return score


def _model_value(chain: ChainedMDP, prob: FloatArray, actions: IntArray) -> float:
    return policy_value(chain.mdp, chain.policy_actions(actions), prob)


def extract_shared_policy(chain: ChainedMDP, prob: FloatArray, policy: IntArray,
                          method: str = "auto") -> tuple[IntArray, dict[str, Any]]:
    """Shared deterministic actions ``(S_l, S_g)`` from a chained-MDP policy.

    1. *Vote* (tying): each chained state whose action applies to ``(s_l, s_g)`` votes
       for the action ``policy`` plays there, weighted by its occupancy under the model
       ``prob``; the table takes the most-voted action (ties and pairs never active: the
       lowest action index).
    2. *Search* on the model: ``"exhaustive"`` evaluates every shared deterministic
       policy (``|A_l|^(#active pairs)``); ``"search"`` runs coordinate ascent from the
       vote (one ``(s_l, s_g)`` entry at a time, best action, until a sweep changes
       nothing; at most 20 sweeps); ``"auto"`` is exhaustive when there are at most
       ``EXHAUSTIVE_LIMIT`` candidates and coordinate ascent otherwise; ``"vote"`` stops
       after step 1.
    """
    check_choice("extract", method, EXTRACTION)
    score = _vote(chain, prob, policy)
    actions = score.argmax(axis=-1).astype(np.int64)
    mdp = chain.mdp
    act = (chain.active_sl >= 0) & ~mdp.action_free
    pairs_mask = np.zeros((chain.n_sl, chain.n_sg), dtype=bool)
    pairs_mask[chain.active_sl[act], chain.active_sg[act]] = True
    pairs = [tuple(int(v) for v in p) for p in np.argwhere(pairs_mask)]
    A = chain.n_al
    n_cand = A ** len(pairs)
    info: dict[str, Any] = {"active_pairs": len(pairs), "candidates": n_cand}
    value = _model_value(chain, prob, actions)
    info["value_vote"] = value
    if method == "vote" or A == 1 or not pairs:
        info["extraction"] = "vote"
        return actions, info
    if method == "exhaustive" or (method == "auto" and n_cand <= EXHAUSTIVE_LIMIT):
        best = (value, actions.copy())
        for combo in product(range(A), repeat=len(pairs)):
            cand = actions.copy()
            for (sl, sg), a in zip(pairs, combo, strict=True):
                cand[sl, sg] = a
            v = _model_value(chain, prob, cand)
            if v > best[0] + 1e-12:
                best = (v, cand)
        info["extraction"] = "exhaustive"
        return best[1], info
    sweeps = 0
    changed = True
    while changed and sweeps < 20:
        changed = False
        sweeps += 1
        for sl, sg in pairs:
            for a in range(A):
                if a == actions[sl, sg]:
                    continue
                cand = actions.copy()
                cand[sl, sg] = a
                v = _model_value(chain, prob, cand)
                if v > value + 1e-12:
                    value, actions, changed = v, cand, True
    info["extraction"] = "coordinate-ascent"
    info["sweeps"] = sweeps
    return actions, info


# ---------------------------------------------------------------------------
# the solver entry point
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainedOptions:
    """Options of :func:`chained_best_response` (SPEC 5.2), validated on construction.

    ``variant``: one of :data:`VARIANTS`; ``eps``: truncation and UCFH accuracy;
    ``delta``: UCFH's failure probability, in ``(0, 1)``; ``episodes``: a fixed number of
    UCFH episodes, or ``None`` to run until its certificate holds (at most
    ``max_episodes``); ``horizon``: macro steps, or ``None`` for
    :func:`truncation_horizon`; ``max_states``: refuse larger chained MDPs;
    ``width_scale``, ``m``, ``update``: UCFH's knobs (see :func:`chained_best_response`);
    ``extract``: one of :data:`EXTRACTION`. ``ValueError`` names the offending field.
    """

    variant: str = "mean-field"
    eps: float = DEFAULT_EPS
    delta: float = DEFAULT_DELTA
    episodes: int | None = None
    horizon: int | None = None
    max_states: int = DEFAULT_MAX_STATES
    width_scale: float = 1.0
    m: float | None = None
    update: str = "batch"
    max_episodes: int = DEFAULT_MAX_EPISODES
    extract: str = "auto"

    def __post_init__(self) -> None:
        put = object.__setattr__
        check_choice("variant", self.variant, VARIANTS)
        put(self, "eps", check_positive("eps", self.eps))
        delta = check_float("delta", self.delta)
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta = {self.delta!r}: expected a number in (0, 1)")
        put(self, "delta", delta)
        for name in ("episodes", "horizon"):
            if getattr(self, name) is not None:
                put(self, name, check_int(name, getattr(self, name)))
        put(self, "max_states", check_int("max_states", self.max_states))
        put(self, "width_scale", check_positive("width_scale", self.width_scale))
        if self.m is not None:
            put(self, "m", check_positive("m", self.m))
        check_choice("update", self.update, UPDATE_RULES)
        put(self, "max_episodes", check_int("max_episodes", self.max_episodes))
        check_choice("extract", self.extract, EXTRACTION)


def chained_best_response(
    game: TabularGame,
    pi_g: GlobalPolicy,
    seed: int = 0,
    options: ChainedOptions | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """Local best response to ``pi_g`` by UCFH on a chained MDP (SPEC 5, item 2; paper
    Algorithm 2 via Algorithms 21/28, 17 and UCFH, Theorem C.4).

    Options: :class:`ChainedOptions` (default: its defaults); the names below are its
    fields; ``seed`` seeds UCFH's episodes.

    Steps: truncate at ``H = horizon`` or :func:`truncation_horizon` macro steps; build the
    chained MDP of ``variant`` for ``k = pi_g.k`` replicas (:func:`build_chained_mdp`);
    convert its state-action rewards with Algorithm 17
    (:func:`altmarl.llearn.ucfh.to_state_rewards`); run :func:`altmarl.llearn.ucfh.ucfh` with accuracy ``eps`` and failure probability ``delta``
    (``episodes`` episodes, or until its certificate holds / ``max_episodes``); extract a
    shared policy with :func:`extract_shared_policy` on the empirical model of all
    samples (unvisited pairs: uniform over their possible successors).

    Knobs (theory defaults): ``width_scale`` multiplies UCFH's confidence widths; ``m``
    replaces UCFH's ``m`` (theory ``m`` is ~1e9 or more even on toy problems, so no model
    update would ever happen: use e.g. ``m=1000, width_scale=0.3`` in practice);
    ``update="batch"`` merges every qualifying pair at once (``"paper"``: one per check).

    Returns
    -------
    table : ``(S_l, S_g, A_l)`` one-hot shared local policy.
    info : dict with ``value`` -- the exact chained-MDP value of ``table`` (the
        ``k``-agent surrogate, ``n = k``, truncated at ``H``; computed from the tables,
        not from samples; **not** the ``n``-agent value: evaluate that with
        :func:`altmarl.evaluate`), ``value_model`` (its value under the learned model),
        ``value_lower`` (pessimistic value of ``table`` over UCFH's confidence set),
        ``value_upper`` (UCFH's optimistic value: an upper bound on the best chained
        policy, hence on the best shared one), ``certified``, ``samples`` (chained
        micro-steps sampled = episodes * H * micro), ``episodes``, ``horizon`` (macro),
        ``micro_horizon``, ``ucfh_horizon``, ``states`` (chained MDP), ``ucfh_states``,
        ``truncation_bound``, ``wall_time`` and UCFH's constants.
    """
    t0 = time.perf_counter()
    game, pi_g = _check_game_policy(game, pi_g)
    o = ChainedOptions() if options is None else check_instance("options", options,
                                                                ChainedOptions)
    variant, eps = o.variant, o.eps
    H = truncation_horizon(game.gamma, game.r_max, eps) if o.horizon is None else o.horizon
    chain = build_chained_mdp(game, pi_g, variant=variant, horizon=H, max_states=o.max_states)
    smdp = to_state_rewards(chain.mdp)
    res: UCFHResult = ucfh(smdp, eps=eps, delta=o.delta, episodes=o.episodes,
                           max_episodes=o.max_episodes, m=o.m, width_scale=o.width_scale,
                           update=o.update, seed=seed)
    S, A, C = chain.mdp.succ.shape
    counts = res.counts[S:, 0, :].reshape(S, A, C)  # node (s, a) = S + s * A + a
    prob_hat = empirical_prob(chain.mdp, counts)
    dec_policy = res.policy[0::2, :S]
    actions, xinfo = extract_shared_policy(chain, prob_hat, dec_policy, o.extract)
    table = one_hot(actions, game.n_al)
    pol_chain = chain.policy_actions(actions)
    value = policy_value(chain.mdp, pol_chain)
    value_model = policy_value(chain.mdp, pol_chain, prob_hat)
    lo, hi = confidence_intervals(res.counts, smdp.valid, res.constants.log_term,
                                  res.constants.width_scale)
    pol_s = np.zeros(smdp.n_states, dtype=np.int64)
    pol_s[:S] = pol_chain
    value_lower = float(smdp.init @ bounded_policy_value(smdp, lo, hi, pol_s, optimistic=False))
    info: dict[str, Any] = {
        "solver": "chained",
        "variant": variant,
        "k": pi_g.k,
        "value": value,
        "value_model": value_model,
        "value_lower": value_lower,
        "value_upper": res.value_upper,
        "certified": res.certified,
        "samples": int(res.episodes * H * chain.micro),
        "ucfh_steps": int(res.samples),
        "episodes": int(res.episodes),
        "horizon": H,
        "micro_horizon": chain.mdp.horizon,
        "ucfh_horizon": smdp.horizon,
        "states": chain.n_states,
        "ucfh_states": smdp.n_states,
        "truncation_bound": float(game.gamma**H * game.r_max / (1.0 - game.gamma)),
        "eps": eps,
        "delta": o.delta,
        "updates": res.updates,
        "update_rule": res.update_rule,
        "ucfh": res.constants.to_dict(),
        **xinfo,
    }
    info["wall_time"] = time.perf_counter() - t0
    return table, info
