"""Who decides what in a round of the federated simulator, and the episode loop.

A *controller* maps the round's :class:`~altmarl.federated.simulator.Observation` and a
random generator to an :class:`Action`: the global action ``a_g``, every client's local
action ``a_l`` ``(n,)``, an optional server-step override and the number of clients
polled. Controllers:

* :class:`PolicyController` — online execution of a joint policy (paper Algorithm 5,
  SPEC 3): the server polls a uniform ``k``-subset of clients *without replacement*,
  fresh every round, reads the histogram of their bucketed local states and plays
  ``a_g = pi_g(s_g, h)``; every client draws ``a_i ~ pi_l(. | s_i, s_g)``.
* :class:`FixedController` — a fixed setting: server step ``server_lrs[a_g]``, every
  client runs ``local_steps[a_l]`` steps (full participation).
* :class:`FedAvgController` — classic FedAvg with partial participation: ``k`` clients
  drawn uniformly each round train ``local_steps[a_l]`` steps and the server averages
  their models (server step ``server_lrs[a_g]``, default the first, ``1.0``).
* :class:`ExploreController` — the exploratory behaviour used to estimate the game:
  per episode, a random state-dependent table for each player (``Dirichlet(1)`` rows
  mixed with ``eps`` of the uniform distribution), so that every action has probability
  at least ``eps / |A|`` in every state and episodes differ in what they emphasize.

:func:`run_episode` runs one episode and returns an :class:`EpisodeLog`; with
``counts`` it also records every global and local transition for the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from altmarl.federated.game import TransitionCounts
from altmarl.federated.simulator import FederatedSimulator, Observation
from altmarl.histogram import rank
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.simulate import sample_rows

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass
class Action:
    """A round's decisions: ``a_g``, ``a_l`` ``(n,)``, ``server_lr`` override (or ``None``)
    and ``polls`` (clients whose state the server read)."""

    a_g: int
    a_l: IntArray
    server_lr: float | None = None
    polls: int = 0


class Controller(Protocol):
    """``controller(obs, rng) -> Action``; ``start(rng)`` is called at each episode start."""

    def start(self, sim: FederatedSimulator, rng: np.random.Generator) -> None: ...

    def __call__(self, obs: Observation, rng: np.random.Generator) -> Action: ...


class PolicyController:
    """Online execution of ``(pi_g, pi_l)`` (paper Algorithm 5; module docstring)."""

    def __init__(self, pi_g: GlobalPolicy, pi_l: LocalPolicy) -> None:
        if pi_l.table.shape[1] != pi_g.n_sg or pi_l.table.shape[0] != pi_g.n_sl:
            raise ValueError(f"pi_l: table shape {pi_l.table.shape} does not match pi_g "
                             f"(|S_l|={pi_g.n_sl}, |S_g|={pi_g.n_sg})")
        self.pi_g, self.pi_l = pi_g, pi_l
        self._cdf = np.cumsum(pi_l.table, axis=-1)

    def start(self, sim: FederatedSimulator, rng: np.random.Generator) -> None:
        cfg = sim.config
        if (cfg.n_sg, cfg.n_ag, cfg.n_sl, cfg.n_al) != (self.pi_g.n_sg, self.pi_g.n_ag,
                                                        self.pi_g.n_sl, self.pi_l.table.shape[2]):
            raise ValueError("policies do not match the simulator's game sizes "
                             f"(S_g, A_g, S_l, A_l) = {(cfg.n_sg, cfg.n_ag, cfg.n_sl, cfg.n_al)}")
        if not 1 <= self.pi_g.k <= sim.n:
            raise ValueError(f"pi_g.k = {self.pi_g.k}: expected 1 <= k <= n = {sim.n}")

    def __call__(self, obs: Observation, rng: np.random.Generator) -> Action:
        n, k = obs.s_l.size, self.pi_g.k
        polled = obs.s_l if k == n else obs.s_l[rng.choice(n, k, replace=False)]
        h = np.bincount(polled, minlength=self.pi_g.n_sl)
        a_g = int(self.pi_g.act_ranked(np.asarray(obs.s_g), rank(h, k)))
        a_l = sample_rows(self._cdf[obs.s_l, obs.s_g], rng)
        return Action(a_g, a_l, None, k)


class FixedController:
    """Server step ``server_lrs[a_g]``; every client runs ``local_steps[a_l]`` steps."""

    def __init__(self, a_g: int, a_l: int) -> None:
        self.a_g, self.a_l = int(a_g), int(a_l)

    def start(self, sim: FederatedSimulator, rng: np.random.Generator) -> None:
        if not (0 <= self.a_g < sim.config.n_ag and 0 <= self.a_l < sim.config.n_al):
            raise ValueError(f"fixed setting (a_g={self.a_g}, a_l={self.a_l}) out of range")

    def __call__(self, obs: Observation, rng: np.random.Generator) -> Action:
        return Action(self.a_g, np.full(obs.s_l.size, self.a_l, dtype=np.int64))


class FedAvgController:
    """FedAvg with ``k`` uniformly sampled participants per round (module docstring)."""

    def __init__(self, k: int, a_l: int, a_g: int = 0) -> None:
        self.k, self.a_l, self.a_g = int(k), int(a_l), int(a_g)

    def start(self, sim: FederatedSimulator, rng: np.random.Generator) -> None:
        if not 1 <= self.k <= sim.n:
            raise ValueError(f"k = {self.k}: expected 1 <= k <= n = {sim.n}")
        if not 0 <= self.a_g < sim.config.n_ag:
            raise ValueError(f"a_g = {self.a_g}: expected 0..{sim.config.n_ag - 1}")
        if not (0 < self.a_l < sim.config.n_al):
            raise ValueError(f"a_l = {self.a_l}: expected a training action in 1..."
                             f"{sim.config.n_al - 1}")

    def __call__(self, obs: Observation, rng: np.random.Generator) -> Action:
        n = obs.s_l.size
        a_l = np.zeros(n, dtype=np.int64)
        a_l[rng.choice(n, self.k, replace=False)] = self.a_l
        return Action(self.a_g, a_l, None, 0)


class ExploreController:
    """Exploratory behaviour for model estimation (module docstring)."""

    def __init__(self, eps: float = 0.2) -> None:
        if not 0 < eps <= 1:
            raise ValueError(f"eps = {eps!r}: expected a number in (0, 1]")
        self.eps = float(eps)
        self._g: FloatArray | None = None
        self._l: FloatArray | None = None

    def start(self, sim: FederatedSimulator, rng: np.random.Generator) -> None:
        c = sim.config
        e = self.eps
        g = rng.dirichlet(np.ones(c.n_ag), size=c.n_sg)
        loc = rng.dirichlet(np.ones(c.n_al), size=(c.n_sl, c.n_sg))
        self._g = np.cumsum((1 - e) * g + e / c.n_ag, axis=-1)
        self._l = np.cumsum((1 - e) * loc + e / c.n_al, axis=-1)

    def __call__(self, obs: Observation, rng: np.random.Generator) -> Action:
        if self._g is None or self._l is None:
            raise RuntimeError("ExploreController.start() was not called")
        a_g = int(sample_rows(self._g[[obs.s_g]], rng)[0])
        a_l = sample_rows(self._l[obs.s_l, obs.s_g], rng)
        return Action(a_g, a_l)


@dataclass
class EpisodeLog:
    """Per-round records of one episode of ``H`` rounds.

    ``val_loss``, ``val_acc``, ``s_g`` have ``H + 1`` entries (before each round and at
    the end); ``a_g``, ``server_lr``, ``uploads``, ``steps``, ``polls``, ``reward``
    (stage reward, SPEC eq. 1), ``r_g``, ``r_l`` (mean local reward) have ``H``;
    ``local_states`` ``(H + 1, |S_l|)`` and ``local_actions`` ``(H, |A_l|)`` are fractions
    of clients.
    """

    val_loss: FloatArray
    val_acc: FloatArray
    s_g: IntArray
    a_g: IntArray
    server_lr: FloatArray
    uploads: IntArray
    steps: IntArray
    polls: IntArray
    reward: FloatArray
    r_g: FloatArray
    r_l: FloatArray
    local_states: FloatArray
    local_actions: FloatArray

    def discounted_return(self, gamma: float) -> float:
        """``sum_t gamma^t r_t`` (SPEC eq. 2, truncated at ``H``)."""
        return float(self.reward @ (gamma ** np.arange(self.reward.size)))

    def rounds_to(self, acc: float) -> float:
        """First round after which validation accuracy is ``>= acc`` (``inf`` if never)."""
        hit = np.flatnonzero(self.val_acc[1:] >= acc)
        return float(hit[0] + 1) if hit.size else float("inf")

    def metrics(self, gamma: float, target_acc: float) -> dict[str, Any]:
        """Scalar summary of the episode."""
        H = self.reward.size
        return {
            "return": self.discounted_return(gamma),
            "final_acc": float(self.val_acc[-1]),
            "final_loss": float(self.val_loss[-1]),
            "best_acc": float(self.val_acc.max()),
            "uploads_per_round": float(self.uploads.sum() / H),
            "steps_per_round": float(self.steps.sum() / H),
            "polls_per_round": float(self.polls.sum() / H),
            "total_uploads": int(self.uploads.sum()),
            "rounds_to_target": self.rounds_to(target_acc),
        }


def run_episode(sim: FederatedSimulator, controller: Controller, rounds: int,
                rng: np.random.Generator, counts: TransitionCounts | None = None) -> EpisodeLog:
    """Reset ``sim`` and run ``rounds`` rounds under ``controller``; with ``counts``,
    record the episode's first state and all its transitions (for :mod:`.game`)."""
    cfg = sim.config
    H, n = int(rounds), sim.n
    obs = sim.reset()
    controller.start(sim, rng)
    if counts is not None:
        counts.add_init(obs.s_g, obs.s_l)
    vl, va, sg = np.empty(H + 1), np.empty(H + 1), np.empty(H + 1, dtype=np.int64)
    ag, lr = np.empty(H, dtype=np.int64), np.empty(H)
    up, st, po = (np.empty(H, dtype=np.int64) for _ in range(3))
    rew, rg, rl = np.empty(H), np.empty(H), np.empty(H)
    ls, la = np.empty((H + 1, cfg.n_sl)), np.empty((H, cfg.n_al))
    for t in range(H):
        vl[t], va[t], sg[t] = obs.val_loss, obs.val_acc, obs.s_g
        ls[t] = np.bincount(obs.s_l, minlength=cfg.n_sl) / n
        act = controller(obs, rng)
        res = sim.step(act.a_g, act.a_l, act.server_lr)
        if counts is not None:
            counts.add_global(np.asarray([obs.s_g]), np.asarray([act.a_g]),
                              np.asarray([res.r_g]), np.asarray([res.next.s_g]))
            counts.add_local(obs.s_l, obs.s_g, act.a_l, res.r_l, res.next.s_l)
        ag[t], lr[t], up[t], st[t], po[t] = act.a_g, res.server_lr, res.uploads, res.steps, \
            act.polls
        rew[t], rg[t], rl[t] = res.reward, res.r_g, float(res.r_l.mean())
        la[t] = np.bincount(act.a_l, minlength=cfg.n_al) / n
        obs = res.next
    vl[H], va[H], sg[H] = obs.val_loss, obs.val_acc, obs.s_g
    ls[H] = np.bincount(obs.s_l, minlength=cfg.n_sl) / n
    return EpisodeLog(vl, va, sg, ag, lr, up, st, po, rew, rg, rl, ls, la)


__all__ = [
    "Action",
    "Controller",
    "EpisodeLog",
    "ExploreController",
    "FedAvgController",
    "FixedController",
    "PolicyController",
    "run_episode",
]
