"""The per-agent simulator of a generative game (paper Algorithm 5, SPEC 3 and 11).

One step, batched over ``R`` rollouts and all ``n`` agents (no Python loop over agents):

1. ``Delta_t``: a uniform ``k``-subset of the agents drawn *without replacement*, fresh
   every step, independently per rollout (:func:`subsample_indices`);
2. ``a_g = pi_g.act(s_g, observe(s_l[Delta_t]))``;
3. ``a_l = pi_l.act(s_l, s_g, rng)`` for every agent;
4. ``(s_g', s_l', r_g, r_l) = step(s_g, s_l, a_g, a_l, rng)``; stage reward
   ``r_g + (1/n) sum_i r_l[i]`` (SPEC eq. 1).

Random numbers of one batch all come from one ``numpy`` generator, in this order per step:
subsample, local actions, ``step``. :func:`rollout` can also follow ``track``-ed agents
(their local states, actions and own rewards: the samples of neural L-LEARN) and let them
play a ``deviation`` policy instead of ``pi_l`` (a representative agent's deviation
against the population; its draws come after ``pi_l``'s). :func:`simulate` cuts ``R`` rollouts into fixed chunks of
:data:`CHUNK` rollouts; chunk ``j`` uses ``altmarl._random.rng(seed, j)``, so the numbers
depend on the seed only (not on the number of worker threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl._random import SeedLike, as_seed_sequence
from altmarl._random import rng as child_rng
from altmarl._validate import check_int
from altmarl.generative.game import GenerativeGame
from altmarl.generative.policies import check_policies
from altmarl.threads import default_threads, map_threads

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: rollouts per independently seeded chunk of :func:`simulate`
CHUNK = 32
#: Floyd's sampler is used while ``k * k <= FLOYD_FACTOR * n`` (cost ``O(k^2)`` per rollout
#: against ``O(n)`` for the partition of ``n`` random keys)
FLOYD_FACTOR = 16


def subsample_indices(rng: np.random.Generator, R: int, n: int, k: int) -> IntArray:
    """``(R, k)`` agent indices: per row a uniform ``k``-subset of ``0..n-1`` without
    replacement (SPEC 3), vectorized over rows.

    Small ``k``: Floyd's algorithm over all rows at once (for ``j = n-k .. n-1`` draw
    ``t ~ U{0..j}``, take ``t`` unless already taken, else ``j``); large ``k``: the ``k``
    smallest of ``n`` uniform keys (``argpartition``); ``k = n``: every agent. The order of
    the indices within a row is not uniform (only the set is), which is all a
    permutation-invariant observer needs.
    """
    if k == n:
        return np.broadcast_to(np.arange(n, dtype=np.int64), (R, n)).copy()
    if k * k <= FLOYD_FACTOR * n:
        sel = np.empty((R, k), dtype=np.int64)
        for i, j in enumerate(range(n - k, n)):
            t = rng.integers(0, j + 1, size=R, dtype=np.int64)
            if i:
                dup = (sel[:, :i] == t[:, None]).any(axis=1)
                t = np.where(dup, j, t)
            sel[:, i] = t
        return sel
    return np.asarray(np.argpartition(rng.random((R, n)), k - 1, axis=1)[:, :k], dtype=np.int64)


@dataclass
class GenerativeTrajectories:
    """Per-step records of ``R`` rollouts of horizon ``H`` on a generative game.

    ``rewards[r, t]`` stage reward (SPEC eq. 1); ``a_g[r, t]``; ``s_g[r, t]`` (discrete or
    scalar global states, else ``None``); ``counts[r, t, x]`` agents per population bin
    *before* step ``t`` (:attr:`GenerativeGame.population_bins`: per local state when they
    are discrete, per histogram bin for scalar states; when recorded); ``mode_match[r, t]``
    whether ``a_g`` equals the fullest bin (only when ``|A_g|`` equals the number of bins).
    """

    rewards: FloatArray
    a_g: IntArray
    s_g: NDArray[Any] | None
    counts: IntArray | None
    mode_match: NDArray[np.bool_] | None
    tracked: TrackedAgents | None = None

    def discounted_returns(self, gamma: float) -> FloatArray:
        """``sum_t gamma^t r_t`` per rollout."""
        disc = gamma ** np.arange(self.rewards.shape[1])
        return np.asarray(self.rewards @ disc, dtype=np.float64)


@dataclass
class TrackedAgents:
    """What :func:`rollout` records about ``m`` tracked agents per rollout (``track``).

    ``s_l[r, t, j]`` local state of tracked agent ``j`` before step ``t``, ``s_g[r, t]`` the
    global state, ``a_l[r, t, j]`` its action, ``r_l[r, t, j]`` its own local reward;
    ``last_s_l`` ``(R, m, *local_shape)`` and ``last_s_g`` ``(R, *global_shape)`` the states
    after the last step (for bootstrapping at the horizon).
    """

    s_l: NDArray[Any]
    s_g: NDArray[Any]
    a_l: IntArray
    r_l: FloatArray
    last_s_l: NDArray[Any]
    last_s_g: NDArray[Any]


def _actions(what: str, value: Any, shape: tuple[int, ...], size: int) -> IntArray:
    a = np.asarray(value)
    if a.shape != shape or a.dtype.kind not in "iu":
        raise ValueError(f"{what} returned an array of shape {a.shape} and dtype {a.dtype}: "
                         f"expected integer actions of shape {shape}")
    if a.size and (a.min() < 0 or a.max() >= size):
        raise ValueError(f"{what} returned actions in {int(a.min())}..{int(a.max())}: expected "
                         f"0..{size - 1}")
    return a


def rollout(
    game: GenerativeGame,
    pi_g: Any,
    pi_l: Any,
    rollouts: int,
    horizon: int,
    rng: np.random.Generator,
    record_counts: bool = True,
    init: tuple[Any, Any] | None = None,
    return_states: bool = False,
    track: IntArray | None = None,
    deviation: Any = None,
) -> Any:
    """Simulate ``rollouts`` runs of ``horizon`` steps with one state per agent (module
    docstring). ``init`` optionally fixes the initial ``(s_g, s_l)``; with
    ``return_states=True`` the final ``(s_g, s_l)`` are returned too.

    ``track`` ``(R, m)`` agent indices (distinct per row): their states, actions and own
    rewards are recorded in ``traj.tracked`` (:class:`TrackedAgents`). With ``deviation``
    (a local policy) the tracked agents play it instead of ``pi_l``: every agent's action is
    drawn from ``pi_l`` first, then the tracked agents' from ``deviation``.
    """
    k = check_policies(game, pi_g, pi_l)
    if deviation is not None:
        check_policies(game, pi_g, deviation)
        if track is None:
            raise ValueError("deviation: give track, the agents that play it")
    R, H, n = int(rollouts), int(horizon), game.n
    if init is None:
        s_g, s_l = game.reset(rng, R)
    else:
        s_g, s_l = np.asarray(init[0]), np.asarray(init[1])
    d = game.population_bins
    rows = np.arange(R)[:, None]
    rewards = np.empty((R, H))
    ag_hist = np.empty((R, H), dtype=np.int64)
    sg_hist = (np.empty((R, H), dtype=np.int64) if game.discrete_global
               else np.empty((R, H)) if game.global_shape == () else None)
    counts_hist = (np.empty((R, H, d), dtype=np.int64)
                   if record_counts and d is not None else None)
    mode = np.empty((R, H), dtype=bool) if d is not None and game.n_ag == d else None
    rec: TrackedAgents | None = None
    if track is not None:
        track = np.asarray(track, dtype=np.int64)
        if track.ndim != 2 or track.shape[0] != R or track.size == 0 or track.min() < 0 \
                or track.max() >= n:
            raise ValueError(f"track: expected an (R, m) = ({R}, m) array of agent indices in "
                             f"0..{n - 1}, got shape {track.shape}")
        m = track.shape[1]
        rec = TrackedAgents(
            s_l=np.empty((R, H, m, *game.local_shape), dtype=s_l.dtype),
            s_g=np.empty((R, H, *game.global_shape), dtype=s_g.dtype),
            a_l=np.empty((R, H, m), dtype=np.int64), r_l=np.empty((R, H, m)),
            last_s_l=s_l[:0], last_s_g=s_g[:0])
    for t in range(H):
        idx = subsample_indices(rng, R, n, k)
        obs = game.observe(s_l[rows, idx])
        a_g = _actions("pi_g.act", pi_g.act(s_g, obs), (R,), game.n_ag)
        a_l = _actions("pi_l.act", pi_l.act(s_l, s_g, rng), (R, n), game.n_al)
        if rec is not None:
            assert track is not None
            s_tr = s_l[rows, track]
            if deviation is not None:
                a_l = a_l.copy()
                a_l[rows, track] = _actions("deviation.act", deviation.act(s_tr, s_g, rng),
                                            track.shape, game.n_al)
            rec.s_l[:, t] = s_tr
            rec.s_g[:, t] = s_g
            rec.a_l[:, t] = a_l[rows, track]
        if d is not None and (counts_hist is not None or mode is not None):
            N = game.population_counts(s_l)
            if counts_hist is not None:
                counts_hist[:, t] = N
            if mode is not None:
                mode[:, t] = a_g == N.argmax(axis=1)
        ag_hist[:, t] = a_g
        if sg_hist is not None:
            sg_hist[:, t] = s_g
        s_g, s_l, r_g, r_l = game.step(s_g, s_l, a_g, a_l, rng)
        rewards[:, t] = r_g + r_l.mean(axis=1)
        if rec is not None:
            rec.r_l[:, t] = r_l[rows, track]
    if rec is not None:
        rec.last_s_l, rec.last_s_g = s_l[rows, track], s_g
    traj = GenerativeTrajectories(rewards, ag_hist, sg_hist, counts_hist, mode, rec)
    if return_states:
        return traj, (s_g, s_l)
    return traj


def chunk_sizes(rollouts: int, chunk: int = CHUNK) -> list[int]:
    """Sizes of the fixed chunks of ``rollouts`` (all ``chunk`` but the last)."""
    sizes = [chunk] * (rollouts // chunk)
    if rollouts % chunk:
        sizes.append(rollouts % chunk)
    return sizes


def concat_chunks(parts: Sequence[Any], name: str) -> Any:
    """The attribute ``name`` of the chunks' trajectories ``parts``, concatenated over the
    rollouts (axis 0); ``None`` when the chunks did not record it."""
    vals = [getattr(p, name) for p in parts]
    return None if vals[0] is None else np.concatenate(vals, axis=0)


def simulate(
    game: GenerativeGame,
    pi_g: Any,
    pi_l: Any,
    rollouts: int,
    horizon: int,
    seed: SeedLike,
    workers: int | None = None,
    record_counts: bool = True,
) -> GenerativeTrajectories:
    """:func:`rollout` in fixed chunks of :data:`CHUNK` rollouts, chunk ``j`` seeded by
    ``altmarl._random.rng(seed, j)``, run on ``workers`` threads (default: the CPU count,
    at most 8); same seed, same numbers for any ``workers``. ``game.step`` and the policies
    must be thread-safe (pure NumPy functions are)."""
    R = check_int("rollouts", rollouts, 1)
    H = check_int("horizon", horizon, 1)
    ss = as_seed_sequence(seed)
    sizes = chunk_sizes(R)
    check_policies(game, pi_g, pi_l)

    def run(j: int) -> GenerativeTrajectories:
        out: GenerativeTrajectories = rollout(game, pi_g, pi_l, sizes[j], H, child_rng(ss, j),
                                              record_counts=record_counts)
        return out

    w = default_threads() if workers is None else check_int("workers", workers, 1)
    parts = map_threads(run, len(sizes), w)
    return GenerativeTrajectories(*(concat_chunks(parts, name) for name in
                                    ("rewards", "a_g", "s_g", "counts", "mode_match")))
