"""Online execution (paper Algorithm 5, SPEC 3): the population simulators.

Two simulators of the ``n``-agent system under a joint policy ``(pi_g, pi_l)``:

* :func:`rollout_counts` — the default. Agents are exchangeable, so the population is
  the count vector ``N_t`` (``sum N_t = n``). One step, batched over ``R`` rollouts:

  1. ``h ~ MultivariateHypergeometric(N_t, k)`` — the histogram of a uniform
     ``k``-subset drawn *without replacement*, fresh every step;
  2. ``a_g = pi_g(s_g, h)``;
  3. for every state bin ``x``, the joint (action, next state) counts of its ``N_t[x]``
     agents are ``Multinomial(N_t[x], pi_l[x, s_g, a] P_l[x, s_g, a, x'])`` — the same
     law as "actions multinomial per bin, next states multinomial per (bin, action)
     cell";
  4. reward ``r_g(s_g, a_g) + (1/n) sum_{x,a} M[x, a] r_l(x, s_g, a)`` (SPEC eq. 1);
  5. ``s_g' ~ P_g(. | s_g, a_g)``, ``N_{t+1}[x'] = sum_{x,a} M[x, a, x']``.

  This is exact in distribution and costs ``O(|S_l|^2 |A_l|)`` draws per step,
  independent of ``n``.
* :func:`rollout_agents` — one state per agent (for tracking individuals and for
  tests); ``O(n)`` per step.

Both use the state *before* the step for every transition (SPEC 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._random import check_generator
from altmarl._validate import as_int_array
from altmarl.game import TabularGame
from altmarl.histogram import binomial_table, num_histograms
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import HYPERGEOM_LIMIT as HYPERGEOM_LIMIT
from altmarl.sampling import SCALAR_ROWS as SCALAR_ROWS
from altmarl.sampling import SUBSAMPLE_METHODS as SUBSAMPLE_METHODS
from altmarl.sampling import (
    Scheme,
    Uniform,
    check_observable,
    hypergeometric_kernel,
    multivariate_hypergeometric,
)
from altmarl.sampling import sequential_subsample as sequential_subsample
from altmarl.sampling import subsample_histograms as subsample_histograms

if TYPE_CHECKING:
    from altmarl.glearn.rewards import RewardModel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]



@dataclass
class Trajectories:
    """Per-step records of a batch of rollouts (``R`` rollouts, horizon ``H``).

    ``rewards[r, t]`` stage reward; ``s_g[r, t]`` and ``a_g[r, t]``; ``counts[r, t, x]``
    the count vector *before* step ``t`` (when recorded); ``mode_match[r, t]`` whether
    ``a_g`` equals the most populated local state (``None`` unless ``|A_g| = |S_l|``).
    """

    rewards: FloatArray
    s_g: IntArray
    a_g: IntArray
    counts: IntArray | None
    mode_match: NDArray[np.bool_] | None

    def discounted_returns(self, gamma: float) -> FloatArray:
        """``sum_t gamma^t r_t`` per rollout."""
        disc = gamma ** np.arange(self.rewards.shape[1])
        return np.asarray(self.rewards @ disc, dtype=np.float64)


# ---------------------------------------------------------------------------
# sampling primitives (explicit generator or explicit uniforms)
# ---------------------------------------------------------------------------


def inverse_cdf_rows(cdf_rows: FloatArray, u: FloatArray) -> IntArray:
    """One categorical draw per row by inverse CDF: the number of entries of
    ``cdf_rows[r]`` (cumulative tables, shape ``(R, m)``) below ``u[r]``, capped at
    ``m - 1`` (round-off in the last entry)."""
    x = (cdf_rows < u[:, None]).sum(axis=1)
    return np.minimum(x, cdf_rows.shape[1] - 1).astype(np.int64)


def sample_rows(cdf_rows: FloatArray, rng: np.random.Generator) -> IntArray:
    """One categorical draw per row from cumulative tables ``cdf_rows`` (shape ``(R, m)``),
    one uniform per row from ``rng`` (:func:`inverse_cdf_rows`)."""
    u = np.asarray(rng.random(int(cdf_rows.shape[0])), dtype=np.float64)
    return inverse_cdf_rows(cdf_rows, u)


def global_actions(pi_g: GlobalPolicy, s_g: IntArray, counts: IntArray, rng: np.random.Generator,
                   n: int, sampling: Scheme | None = None) -> IntArray:
    """``a_g = pi_g(s_g, h)`` with ``h`` the histogram of a fresh sample per rollout (SPEC 3,
    Algorithm 5; SPEC 12): drawn by ``sampling`` (a scheme bound to the game, default the
    policy's own, ``pi_g.sampling``)."""
    scheme = pi_g.sampling if sampling is None else sampling
    h = scheme.sample(counts, rng, n)
    return pi_g.act_ranked(s_g, pi_g.sampling.index(h))


def resolve_sampling(game: TabularGame, pi_g: GlobalPolicy,
                     sampling: Scheme | None) -> Scheme | None:
    """The scheme a simulation of ``pi_g`` on ``game`` draws its samples with (SPEC 12):
    ``None`` (the policy's own, ``pi_g.sampling``, bound to ``game``) or ``sampling`` bound
    to ``game`` and checked to produce histograms ``pi_g`` can act on."""
    own = pi_g.sampling.bind(game)
    if sampling is None or sampling == own:
        return None
    scheme = sampling.bind(game)
    check_observable(own, scheme)
    return scheme


# ---------------------------------------------------------------------------
# the count step (SPEC 3): one pure, batched transition of (s_g, N)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepTables:
    """What one count step reads, for a game and one shared local policy (or a batch of
    ``C`` candidate policies, then ``joint`` has a leading ``C`` axis).

    ``joint[..., s_g, x, a * |S_l| + x']`` the rows of :meth:`TabularGame.joint_kernel`
    (clipped at 0 and renormalized: the multinomial's cell probabilities for bin ``x``);
    ``r_g[s_g, a_g]``; ``r_l[s_g, x, a]``; ``cdf_g[s_g, a_g, :]`` cumulative ``P_g``.
    """

    joint: FloatArray
    r_g: FloatArray
    r_l: FloatArray
    cdf_g: FloatArray
    n: int
    n_sl: int
    n_al: int

    def stage_reward(self, s_g: IntArray, a_g: IntArray, cells: IntArray,
                     denom: int) -> tuple[FloatArray, FloatArray]:
        """The stage reward of ``R`` rows and its local sum (SPEC eq. 1): ``loc[r] =
        sum_{x,a} cells[r, x, a] r_l(x, s_g, a)`` over the action counts ``cells`` (``(R,
        |S_l|, |A_l|)``) and ``r_g(s_g, a_g) + loc / denom``; returns ``(reward, loc)``."""
        loc = np.einsum("rxa,rxa->r", cells, self.r_l[s_g])
        return self.r_g[s_g, a_g] + loc / denom, loc


def step_tables(game: TabularGame, pi_l_table: ArrayLike) -> StepTables:
    """The :class:`StepTables` of ``game`` under the local policy table ``pi_l_table``
    (``(|S_l|, |S_g|, |A_l|)``, or ``(C, |S_l|, |S_g|, |A_l|)`` for a batch)."""
    K = game.joint_kernel(pi_l_table)  # (..., x, s_g, a, x')
    d, A = game.n_sl, game.n_al
    lead = K.shape[:-4]
    axes = tuple(range(len(lead)))
    b = len(lead)
    J = K.transpose(*axes, b + 1, b, b + 2, b + 3).reshape(*lead, game.n_sg, d, A * d)
    J = np.clip(J, 0.0, None)
    J /= J.sum(axis=-1, keepdims=True)
    # the reshape above is a strided view: store the rows in C order once, so that the
    # kernels reading them (multinomial_moves, every step) need no copy
    J = np.ascontiguousarray(J)
    return StepTables(
        joint=J,
        r_g=game.r_g,
        r_l=np.ascontiguousarray(game.r_l.transpose(1, 0, 2)),
        cdf_g=np.cumsum(game.P_g, axis=-1),
        n=game.n,
        n_sl=d,
        n_al=A,
    )


@cache
def _kernels() -> Any:
    """:mod:`altmarl.simulate_kernels` (``None`` when it cannot be built: no Numba, or a
    NumPy without the C sampler symbol it binds)."""
    try:
        from altmarl import simulate_kernels
    except Exception:  # pragma: no cover - Numba is a dependency
        return None
    return simulate_kernels


def multinomial_moves(joint: FloatArray, s_g: IntArray, counts: IntArray,
                      rng: np.random.Generator) -> IntArray:
    """The population move of the count step: for every row and bin ``x``, the joint
    (action, next state) counts of its ``counts[r, x]`` agents, ``Multinomial(counts[r, x],
    joint[s_g[r], x])`` (one table ``joint`` of :class:`StepTables`). Shape ``(R, |S_l|,
    |A_l| |S_l|)``.

    The draws are those of ``rng.multinomial(counts, joint[s_g])`` (same numbers, same
    state of ``rng`` afterwards), made by a Numba kernel that releases the GIL (the
    rollout chunks of :func:`altmarl.evaluate` overlap on threads) and skips NumPy's
    per-call gathering and checks."""
    mod = _kernels()
    counts = np.asarray(counts)
    bitgen = check_generator(rng).bit_generator
    if mod is None or counts.dtype != np.int64 \
            or joint.dtype != np.float64:
        return np.asarray(rng.multinomial(counts, joint[s_g]), dtype=np.int64)
    out = np.empty((*counts.shape, joint.shape[-1]), dtype=np.int64)
    with bitgen.lock:  # the kernel releases the GIL: threads sharing rng stay safe
        mod.multinomial_rows(rng, np.ascontiguousarray(joint),
                             np.ascontiguousarray(s_g, dtype=np.int64),
                             np.ascontiguousarray(counts), out)
    return out


@dataclass(frozen=True)
class CountStep:
    """Result of :func:`count_step` (``R`` rows).

    ``reward`` stage reward; ``s_g`` and ``counts`` the next state; ``moves[r, x, a, x']``
    the agents of bin ``x`` that played ``a`` and moved to ``x'``; ``act_counts[r, x, a]``;
    ``local_sum[r] = sum_{x,a} act_counts r_l(x, s_g, a)`` (``None`` with a reward model or
    a reward sample); ``sampled`` the sampled agents' action counts when a ``sample`` was
    given (else ``None``).
    """

    reward: FloatArray
    s_g: IntArray
    counts: IntArray
    moves: IntArray
    act_counts: IntArray
    local_sum: FloatArray | None = None
    sampled: IntArray | None = None


def count_step(
    tables: StepTables,
    s_g: IntArray,
    counts: IntArray,
    a_g: IntArray,
    rng: np.random.Generator | None,
    *,
    moves: IntArray | None = None,
    u_g: FloatArray | None = None,
    sample: IntArray | None = None,
    reward_model: RewardModel | None = None,
) -> CountStep:
    """One step of the count simulator (SPEC 3, Algorithm 5), batched over ``R`` rows and
    pure: every random draw comes from ``rng`` or from the arguments.

    Given the state ``(s_g, counts)`` and the global action ``a_g`` (compute it with
    :func:`global_actions` for a policy, or pass any behaviour's action):

    1. ``moves`` — the population move, :func:`multinomial_moves` from ``rng`` unless the
       caller passes its own draw (shape ``(R, |S_l|, |A_l| |S_l|)`` or
       ``(R, |S_l|, |A_l|, |S_l|)``; e.g. common random numbers);
    2. with ``sample`` (histograms ``(R, |S_l|)`` of ``k`` sampled agents, Appendix E) the
       sampled agents' action counts, a :func:`multivariate_hypergeometric` sub-draw of
       each bin's action counts (no draw when ``k = n``);
    3. the reward ``r_g(s_g, a_g) + (1/n) sum_{x,a} M[x, a] r_l(x, s_g, a)`` (SPEC eq. 1),
       over the sampled agents with ``1/k`` when ``sample`` is given, or the draws of
       ``reward_model`` (Appendix F) from ``rng``;
    4. ``s_g' ~ P_g(. | s_g, a_g)`` by inverse CDF of ``u_g``, or of one uniform per row
       from ``rng``; ``N'[x'] = sum_{x,a} M[x, a, x']``.

    Both transitions use the state before the step (SPEC 1). ``rng`` may be ``None`` when
    no draw is left to it (``moves`` and ``u_g`` given, no ``reward_model``, no ``sample``
    with ``k < n``).
    """
    R, d, A = s_g.shape[0], tables.n_sl, tables.n_al

    def gen() -> np.random.Generator:
        if rng is None:
            raise ValueError("count_step: rng = None, but this step has a draw to make")
        return rng

    if moves is None:
        moves = multinomial_moves(tables.joint, s_g, counts, gen())
    M = moves.reshape(R, d, A, d)
    # integer sums by einsum: exact, and ~4x faster than .sum over short axes
    act = np.einsum("rxay->rxa", M)  # (R, d, A)
    sampled: IntArray | None = None
    cells, denom = act, tables.n
    if sample is not None:
        k = int(sample[0].sum())
        # the sampled agents: a uniform h[x]-subset of each bin, independent of the
        # actions, so their action counts are a sub-draw of the bin's
        sampled = act.copy() if k == tables.n else multivariate_hypergeometric(act, sample, gen())
        cells, denom = sampled, k
    local_sum: FloatArray | None = None
    if reward_model is None:
        reward, loc = tables.stage_reward(s_g, a_g, cells, denom)
        if sample is None:
            local_sum = loc
    else:
        reward = reward_model.stage_reward(gen(), s_g, a_g, cells, denom)
    cdf = tables.cdf_g[s_g, a_g]
    s_next = sample_rows(cdf, gen()) if u_g is None else inverse_cdf_rows(cdf, u_g)
    return CountStep(reward=reward, s_g=s_next, counts=np.einsum("rxay->ry", M), moves=M,
                     act_counts=act, local_sum=local_sum, sampled=sampled)


def check_joint(game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy | None = None) -> None:
    """Check that ``pi_g`` and ``pi_l`` (when given) fit ``game`` (spaces, ``1 <= k <= n``);
    ``ValueError`` naming the policy otherwise."""
    if pi_l is not None and pi_l.table.shape != (game.n_sl, game.n_sg, game.n_al):
        raise ValueError(
            f"pi_l.table: expected shape {(game.n_sl, game.n_sg, game.n_al)} for game "
            f"{game.name!r}, got {pi_l.table.shape}"
        )
    if (pi_g.n_sg, pi_g.n_sl, pi_g.n_ag) != (game.n_sg, game.n_sl, game.n_ag):
        raise ValueError(
            f"pi_g: made for |S_g|={pi_g.n_sg}, |S_l|={pi_g.n_sl}, |A_g|={pi_g.n_ag}; "
            f"game {game.name!r} has {game.spaces}"
        )
    game.check_k(pi_g.k)
    pi_g.sampling.bind(game)


# ---------------------------------------------------------------------------
# rollouts
# ---------------------------------------------------------------------------


def initial_counts(game: TabularGame, rng: np.random.Generator, rollouts: int,
                   init: tuple[ArrayLike, ArrayLike] | None = None) -> tuple[IntArray, IntArray]:
    """The initial ``(s_g, counts)`` of ``rollouts`` rollouts: copies of ``init`` (arrays of
    length ``rollouts``) when given, else drawn from ``game.init`` (SPEC 1). ``init`` is
    checked (``ValueError`` naming the field): ``s_g`` of shape ``(rollouts,)`` in ``[0,
    |S_g|)``, ``counts`` of shape ``(rollouts, |S_l|)``, non-negative, each row summing to
    ``n``."""
    if init is None:
        return game.sample_init(rng, rollouts)
    if not isinstance(init, tuple | list) or len(init) != 2:
        raise ValueError("init: expected a pair (s_g, counts) of arrays")
    s_g = as_int_array("init[0] (s_g)", init[0], 1).copy()
    counts = as_int_array("init[1] (counts)", init[1], 2).copy()
    if s_g.shape != (rollouts,) or counts.shape != (rollouts, game.n_sl):
        raise ValueError(f"init: expected s_g of shape {(rollouts,)} and counts of shape "
                         f"{(rollouts, game.n_sl)}, got {s_g.shape} and {counts.shape}")
    if s_g.size and (s_g.min() < 0 or s_g.max() >= game.n_sg):
        raise ValueError(f"init[0] (s_g): expected global states in 0..{game.n_sg - 1}, got "
                         f"{s_g.min()} .. {s_g.max()}")
    if counts.size and counts.min() < 0:
        raise ValueError(f"init[1] (counts): expected non-negative counts, got {counts.min()}")
    sums = counts.sum(axis=1)
    if np.any(sums != game.n):
        bad = int(np.flatnonzero(sums != game.n)[0])
        raise ValueError(f"init[1] (counts): expected every row to sum to n = {game.n}, row "
                         f"{bad} sums to {int(sums[bad])}")
    return s_g, counts


class _History:
    """The per-step records of a batch of rollouts as they are simulated
    (:class:`Trajectories` when done)."""

    def __init__(self, R: int, H: int, d: int, record_counts: bool, track_mode: bool) -> None:
        self.rewards = np.empty((R, H))
        self.s_g = np.empty((R, H), dtype=np.int64)
        self.a_g = np.empty((R, H), dtype=np.int64)
        self.counts = np.empty((R, H, d), dtype=np.int64) if record_counts else None
        self.mode = np.empty((R, H), dtype=bool) if track_mode else None

    def record(self, t: int, reward: FloatArray, s_g: IntArray, a_g: IntArray,
               N: IntArray) -> None:
        """Step ``t``: its stage reward, and the state, global action and count vector
        before the step."""
        self.rewards[:, t] = reward
        self.s_g[:, t] = s_g
        self.a_g[:, t] = a_g
        if self.counts is not None:
            self.counts[:, t] = N
        if self.mode is not None:
            self.mode[:, t] = a_g == N.argmax(axis=1)

    def trajectories(self) -> Trajectories:
        """The records as :class:`Trajectories`."""
        return Trajectories(self.rewards, self.s_g, self.a_g, self.counts, self.mode)


def rollout_counts(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    rollouts: int,
    horizon: int,
    rng: np.random.Generator,
    record_counts: bool = False,
    init: tuple[IntArray, IntArray] | None = None,
    reward_model: RewardModel | None = None,
    sampling: Scheme | None = None,
    fused: bool = True,
) -> Trajectories:
    """Simulate ``rollouts`` independent runs of ``horizon`` steps on count vectors.

    ``init`` optionally fixes the initial ``(s_g, counts)`` (arrays of length ``rollouts``);
    by default it is drawn from ``game.init``. ``sampling`` (an :mod:`altmarl.sampling`
    scheme) draws the global agent's samples; default the policy's own (``pi_g.sampling``;
    SPEC 12). ``reward_model`` (an
    :class:`altmarl.RewardModel`, Appendix F) replaces ``r_g`` / ``r_l`` by
    draws: ``r_g ~ D_g(s_g, a_g)`` and, per (state, action) cell, the sum of the ``M[x, a]``
    agents' local draws, drawn in aggregate (exact; see ``altmarl.glearn.rewards``). Without
    it the deterministic path is unchanged.

    Each step is :func:`global_actions` then :func:`count_step`. With ``fused`` (the
    default), a policy on its own uniform sample (:class:`altmarl.sampling.Uniform`, ``n <
    10^9``) without a reward model runs the whole horizon in one compiled loop instead
    (:func:`altmarl.simulate_kernels.uniform_rollout_block`, GIL released): the same draws
    from the same stream, so the same numbers; ``fused=False`` runs the step-by-step loop.
    """
    check_joint(game, pi_g, pi_l)
    scheme = resolve_sampling(game, pi_g, sampling)
    if reward_model is not None:
        reward_model.check_game(game)
    R, H, n, d = int(rollouts), int(horizon), game.n, game.n_sl
    s_g, N = initial_counts(game, rng, R, init)
    tables = step_tables(game, pi_l.table)
    hist = _History(R, H, d, record_counts, game.n_ag == game.n_sl)
    if fused and reward_model is None and scheme is None \
            and _fused_rollout(pi_g, tables, s_g, N, H, rng, hist):
        return hist.trajectories()
    for t in range(H):
        a_g = global_actions(pi_g, s_g, N, rng, n, scheme)
        step = count_step(tables, s_g, N, a_g, rng, reward_model=reward_model)
        hist.record(t, step.reward, s_g, a_g, N)
        s_g, N = step.s_g, step.counts
    return hist.trajectories()


#: action-count entries one compiled block of :func:`rollout_counts` records at most (8 MB
#: of int64; a longer horizon runs in several blocks)
FUSED_BLOCK_ENTRIES = 1 << 20


def _fused_rollout(pi_g: GlobalPolicy, tables: StepTables, s_g: IntArray, N: IntArray,
                   H: int, rng: np.random.Generator, hist: _History) -> bool:
    """The horizon of :func:`rollout_counts` in compiled blocks, recorded into ``hist``
    (``False``, nothing drawn, when the case is not covered: no kernels, a scheme other
    than :class:`~altmarl.sampling.Uniform`, ``n >= HYPERGEOM_LIMIT``, a policy class that
    acts otherwise than by its ``actions`` table). The stage rewards are
    :meth:`StepTables.stage_reward` of the recorded action counts, as in
    :func:`count_step`."""
    mod = _kernels()
    if mod is None or hypergeometric_kernel() is None or type(pi_g.sampling) is not Uniform \
            or type(pi_g).act_ranked is not GlobalPolicy.act_ranked \
            or tables.n >= HYPERGEOM_LIMIT:
        return False
    R, d, A = N.shape[0], tables.n_sl, tables.n_al
    k = int(pi_g.sampling.k)
    actions = np.ascontiguousarray(pi_g.actions, dtype=np.int64)
    S, G = tables.cdf_g.shape[0], tables.cdf_g.shape[1]
    if actions.shape != (S, num_histograms(k, d)) or (
            actions.size and (actions.min() < 0 or actions.max() >= G)):
        raise ValueError(f"pi_g.actions: expected a table of shape {(S, num_histograms(k, d))} "
                         f"with actions in 0..{G - 1}, got shape {actions.shape}")
    s_g = np.array(s_g, dtype=np.int64)
    N = np.array(N, dtype=np.int64)
    rec_n = np.empty((0, 0, 0), dtype=np.int64) if hist.counts is None else hist.counts
    rec_mode = np.empty((0, 0), dtype=bool) if hist.mode is None else hist.mode
    block = max(1, min(H, FUSED_BLOCK_ENTRIES // max(1, R * d * A)))
    acts = np.empty((block, R, d, A), dtype=np.int64)
    table = np.ascontiguousarray(binomial_table(k, d))
    bitgen = check_generator(rng).bit_generator
    state = bitgen.ctypes.bit_generator.value
    for t0 in range(0, H, block):
        t1 = min(H, t0 + block)
        with bitgen.lock:  # the kernel releases the GIL: threads sharing rng stay safe
            mod.uniform_rollout_block(rng, state, tables.joint, tables.cdf_g, actions, table,
                                      k, int(tables.n), HYPERGEOM_LIMIT, s_g, N, t0, t1,
                                      hist.s_g, hist.a_g, rec_n, rec_mode, acts)
        for t in range(t0, t1):
            hist.rewards[:, t] = tables.stage_reward(hist.s_g[:, t], hist.a_g[:, t],
                                                     acts[t - t0], tables.n)[0]
    return True


def rollout_agents(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    rollouts: int,
    horizon: int,
    rng: np.random.Generator,
    record_counts: bool = False,
    init: tuple[IntArray, IntArray] | None = None,
    return_states: bool = False,
    sampling: Scheme | None = None,
) -> Any:
    """Per-agent simulator: every agent has its own state (``O(n)`` per step).

    Same law as :func:`rollout_counts`; use it to follow individual agents (with
    ``return_states=True`` it also returns the final per-agent states ``(R, n)``).
    ``sampling`` as in :func:`rollout_counts`: each scheme draws its sample from the agents
    themselves (``scheme.sample_agents``).
    """
    check_joint(game, pi_g, pi_l)
    resolved = resolve_sampling(game, pi_g, sampling)
    scheme = pi_g.sampling.bind(game) if resolved is None else resolved
    R, H, n = int(rollouts), int(horizon), game.n
    d, A = game.n_sl, game.n_al
    s_g, N = initial_counts(game, rng, R, init)
    # agents' states from the counts, in a random order
    states = np.stack([rng.permutation(np.repeat(np.arange(d), N[r])) for r in range(R)])
    cdf_l = np.cumsum(pi_l.table, axis=-1)  # (d, S_g, A)
    cdf_p = np.cumsum(game.P_l, axis=-1)  # (d, S_g, A, d)
    cdf_g = np.cumsum(game.P_g, axis=-1)
    offsets = (np.arange(R) * d)[:, None]
    hist = _History(R, H, d, record_counts, game.n_ag == game.n_sl)
    for t in range(H):
        N = np.bincount((states + offsets).ravel(), minlength=R * d).reshape(R, d)
        # the sample, drawn from the agents (uniform: the k smallest of n uniform keys)
        h = scheme.sample_agents(states, N, d, rng)
        a_g = pi_g.act_ranked(s_g, pi_g.sampling.index(h))
        sgb = np.broadcast_to(s_g[:, None], states.shape)
        u = rng.random((R, n))
        acts = (cdf_l[states, sgb] < u[..., None]).sum(axis=-1).clip(max=A - 1)
        hist.record(t, game.r_g[s_g, a_g] + game.r_l[states, sgb, acts].mean(axis=1),
                    s_g, a_g, N)
        u2 = rng.random((R, n))
        states = (cdf_p[states, sgb, acts] < u2[..., None]).sum(axis=-1).clip(max=d - 1)
        s_g = sample_rows(cdf_g[s_g, a_g], rng)
    traj = hist.trajectories()
    if return_states:
        return traj, states
    return traj
