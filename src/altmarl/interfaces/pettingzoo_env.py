"""PettingZoo ``ParallelEnv`` for the whole ``(n + 1)``-agent game (SPEC 1, 3).

Agents ``"global"`` and ``"local_0" .. "local_{n-1}"``, all acting at once each step
(paper Algorithm 5 with every policy supplied from outside). Unlike the Gymnasium
environments, every local agent has its own state here (``O(n)`` per step, vectorized
with NumPy but with per-agent observation/action dicts), so it is meant for small ``n``
and for users who want per-agent control or heterogeneous local policies.

Needs the ``gym`` extra: ``pip install 'altmarl[gym]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
except ImportError as _exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "altmarl.interfaces.pettingzoo_env needs pettingzoo and gymnasium, which are not "
        "installed; install the optional extra with: pip install 'altmarl[gym]'"
    ) from _exc

from altmarl import _random
from altmarl._validate import check_choice, check_int
from altmarl.game import TabularGame, check_game
from altmarl.interfaces._core import (
    GlobalObsCodec,
    IntArray,
    LocalObsCodec,
    check_action,
    check_initial_state,
)
from altmarl.interfaces.gym_envs import global_obs_space, local_obs_space
from altmarl.sampling import Scheme, Uniform, resolve

#: reward options of :class:`AltMarlParallelEnv`
PARALLEL_REWARDS = ("joint", "individual")
GLOBAL_AGENT = "global"


class AltMarlParallelEnv(ParallelEnv[str, Any, Any]):
    """The ``(n + 1)``-agent game as a PettingZoo parallel environment.

    Parameters
    ----------
    game
        A :class:`~altmarl.TabularGame` (small ``n``: the cost per step is ``O(n)``).
    k
        The global agent's subsample size, ``1 <= k <= n``.
    sampling
        The global agent's sampling scheme (SPEC 12, :mod:`altmarl.sampling`; default
        ``Uniform(k)``; ``k`` may then be left out): the sampled agents are drawn by it
        (``infos["global"]["sample"]``: their indices).
    horizon
        Episode length; every agent is truncated after it.
    global_obs, local_obs
        Observation encodings, as in :class:`~altmarl.interfaces.GlobalAgentEnv`
        (default ``"dict"``) and :class:`~altmarl.interfaces.LocalAgentEnv` (default
        ``"multidiscrete"``, i.e. ``[s_i, s_g]``).
    reward
        ``"joint"`` (default): every agent receives the stage reward of SPEC eq. 1,
        ``r_g(s_g, a_g) + (1/n) sum_i r_l(s_i, s_g, a_i)`` — the game is cooperative, every
        player's payoff is ``V`` (SPEC 6). ``"individual"``: ``"global"`` receives
        ``r_g(s_g, a_g)`` and ``"local_i"`` receives ``r_l(s_i, s_g, a_i)``.

    Notes
    -----
    Each step the global agent observes ``(s_g, h)`` with ``h`` the histogram of a fresh
    uniform ``k``-subset (without replacement) of the local agents (their indices are in
    ``infos["global"]["sample"]``), and local agent ``i`` observes ``(s_i, s_g)``. Given
    the actions, rewards are collected and then ``s_g' ~ P_g(. | s_g, a_g)`` and
    ``s_i' ~ P_l(. | s_i, s_g, a_i)`` independently (the state before the step, SPEC 1).
    ``state()`` returns ``[s_g, s_0, ..., s_{n-1}]``. ``reset(options={"init": (s_g,
    counts)})`` fixes the initial counts (agents are assigned states in a random order);
    ``options={"state": [s_g, s_0, ...]}`` fixes every agent's state.
    """

    metadata: dict[str, Any] = {"name": "altmarl_parallel_v0", "render_modes": [],
                                "is_parallelizable": True}

    def __init__(self, game: TabularGame, k: int | None = None, horizon: int = 100,
                 global_obs: str = "dict", local_obs: str = "multidiscrete",
                 reward: str = "joint", *, sampling: Scheme | None = None) -> None:
        self.game = check_game(game)
        self.scheme: Scheme = resolve(sampling, k, game)
        self.k = self.scheme.k
        self.horizon = check_int("horizon", horizon, 1)
        self.reward_mode = check_choice("reward", reward, PARALLEL_REWARDS)
        uniform = isinstance(self.scheme, Uniform)
        self.gcodec = GlobalObsCodec(game.n_sg, game.n_sl, self.k, global_obs,
                                     None if uniform else self.scheme)
        self.lcodec = LocalObsCodec(game.n_sl, game.n_sg, local_obs)
        n = game.n
        self.local_agents: list[str] = [f"local_{i}" for i in range(n)]
        self.possible_agents: list[str] = [GLOBAL_AGENT, *self.local_agents]
        self.agents: list[str] = []
        self._obs_spaces: dict[str, spaces.Space[Any]] = {
            GLOBAL_AGENT: global_obs_space(self.gcodec)}
        self._act_spaces: dict[str, spaces.Space[Any]] = {GLOBAL_AGENT: spaces.Discrete(game.n_ag)}
        for name in self.local_agents:
            self._obs_spaces[name] = local_obs_space(self.lcodec)
            self._act_spaces[name] = spaces.Discrete(game.n_al)
        self.observation_spaces = self._obs_spaces
        self.action_spaces = self._act_spaces
        self.state_space = spaces.MultiDiscrete(
            np.array([game.n_sg] + [game.n_sl] * n, dtype=np.int64))
        self._cdf_g = np.cumsum(game.P_g, axis=-1)
        self._cdf_l = np.cumsum(game.P_l, axis=-1)
        self._rng: np.random.Generator = _random.rng(None)
        self._s_g = 0
        self._states = np.zeros(n, dtype=np.int64)
        self._sample = np.zeros(self.k, dtype=np.int64)
        self._h = np.zeros(game.n_sl, dtype=np.int64)
        self._t = 0

    # --- spaces ---------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._act_spaces[agent]

    # --- API ------------------------------------------------------------------
    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            self._rng = _random.rng(seed)
        rng, game = self._rng, self.game
        options = options or {}
        if "state" in options:
            st = np.asarray(options["state"])
            if (st.shape != (game.n + 1,) or st.dtype.kind not in "iu" or not
                    0 <= st[0] < game.n_sg or st[1:].min() < 0 or st[1:].max() >= game.n_sl):
                raise ValueError(
                    f"options['state']: expected [s_g, s_0, ..., s_{{n-1}}] with s_g in "
                    f"0..{game.n_sg - 1} and local states in 0..{game.n_sl - 1} (n = {game.n})"
                )
            self._s_g, self._states = int(st[0]), st[1:].astype(np.int64)
        else:
            if "init" in options:
                s_g, N = check_initial_state(game, options["init"])
            else:
                sg_arr, N_arr = game.sample_init(rng, 1)
                s_g, N = int(sg_arr[0]), np.asarray(N_arr[0], dtype=np.int64)
            self._s_g = s_g
            self._states = rng.permutation(np.repeat(np.arange(game.n_sl), N)).astype(np.int64)
        self._t = 0
        self.agents = list(self.possible_agents)
        self._observe()
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float],
                                                     dict[str, bool], dict[str, bool],
                                                     dict[str, Any]]:
        if not self.agents:
            raise RuntimeError("AltMarlParallelEnv.step called before reset() or after the "
                               "episode ended; call reset()")
        missing = [a for a in self.possible_agents if a not in actions]
        if missing:
            raise ValueError(f"actions: missing for {len(missing)} agent(s), e.g. {missing[:3]}; "
                             "expected an action for every live agent")
        game, rng, n = self.game, self._rng, self.game.n
        a_g = check_action("actions['global']", actions[GLOBAL_AGENT], game.n_ag)
        try:
            acts = np.array([actions[a] for a in self.local_agents], dtype=np.int64).reshape(n)
        except (TypeError, ValueError):
            raise ValueError("actions['local_i']: expected one integer action per local "
                             "agent") from None
        if acts.min() < 0 or acts.max() >= game.n_al:
            bad = int(np.flatnonzero((acts < 0) | (acts >= game.n_al))[0])
            raise ValueError(f"actions['local_{bad}'] = {acts[bad]}: expected an integer in "
                             f"0..{game.n_al - 1}")
        s_g, states = self._s_g, self._states
        r_loc = game.r_l[states, s_g, acts]
        r_glob = float(game.r_g[s_g, a_g])
        u = rng.random(n)
        nxt = (self._cdf_l[states, s_g, acts] < u[:, None]).sum(axis=1)
        self._states = np.minimum(nxt, game.n_sl - 1).astype(np.int64)
        x = int(np.searchsorted(self._cdf_g[s_g, a_g], rng.random(), side="right"))
        self._s_g = min(x, game.n_sg - 1)
        self._t += 1
        self._observe()
        if self.reward_mode == "joint":
            r = r_glob + float(r_loc.mean())
            rewards = dict.fromkeys(self.possible_agents, r)
        else:
            rewards = {GLOBAL_AGENT: r_glob}
            rewards.update(zip(self.local_agents, r_loc.astype(float).tolist(), strict=True))
        truncated = self._t >= self.horizon
        truncs = dict.fromkeys(self.possible_agents, truncated)
        terms = dict.fromkeys(self.possible_agents, False)
        obs, infos = self._observations(), self._infos()
        infos[GLOBAL_AGENT].update(a_g=a_g, global_reward=r_glob,
                                   local_reward=float(r_loc.mean()))
        if truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def state(self) -> IntArray:
        """``[s_g, s_0, ..., s_{n-1}]`` (for centralized training)."""
        return np.concatenate([[self._s_g], self._states]).astype(np.int64)

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None

    # --- helpers --------------------------------------------------------------
    def _observe(self) -> None:
        """Draw the global agent's fresh ``k``-subset (without replacement)."""
        n = self.game.n
        if self.k == n:
            self._sample = np.arange(n, dtype=np.int64)
        elif not isinstance(self.scheme, Uniform):  # SPEC 12
            idx = self.scheme.select_agents(self._states[None, :], self._rng)[0]
            self._sample = np.sort(idx).astype(np.int64)
        else:
            self._sample = np.sort(self._rng.choice(n, size=self.k, replace=False)).astype(np.int64)
        self._h = np.bincount(self._states[self._sample], minlength=self.game.n_sl).astype(np.int64)

    def counts(self) -> IntArray:
        """The current count vector of the local agents."""
        return np.bincount(self._states, minlength=self.game.n_sl).astype(np.int64)

    def _observations(self) -> dict[str, Any]:
        obs: dict[str, Any] = {GLOBAL_AGENT: self.gcodec.encode_one(self._s_g, self._h)}
        local = self.lcodec.encode(self._states, np.full(self.game.n, self._s_g))
        obs.update(zip(self.local_agents, (np.int64(o) if np.ndim(o) == 0 else o for o in local),
                       strict=True))
        return obs

    def _infos(self) -> dict[str, Any]:
        infos: dict[str, Any] = {a: {} for a in self.local_agents}
        infos[GLOBAL_AGENT] = {"s_g": self._s_g, "counts": self.counts(), "t": self._t,
                               "sample": self._sample.copy()}
        return infos


def parallel_env(game: TabularGame, k: int | None = None, **kwargs: Any) -> AltMarlParallelEnv:
    """PettingZoo-style constructor: ``parallel_env(game, k, horizon=..., reward=...)``."""
    return AltMarlParallelEnv(game, k, **kwargs)
