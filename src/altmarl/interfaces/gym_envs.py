"""Gymnasium environments for one player of the ALTERNATING-MARL game (SPEC 1, 3).

* :class:`GlobalAgentEnv` — the global agent's MDP for a fixed shared local policy
  ``pi_l`` (what G-LEARN, SPEC 4, solves): observation ``(s_g, h)`` with ``h`` the
  histogram of a fresh uniform ``k``-subset of the ``n`` local agents, action ``a_g``,
  reward the stage reward ``r(s, a)`` of SPEC eq. 1.
* :class:`LocalAgentEnv` — one *representative* local agent's world for a fixed global
  policy ``pi_g`` and a fixed policy ``pi_l`` of the other ``n - 1`` agents (what
  L-LEARN, SPEC 5, faces): observation ``(s_l, s_g)``, action ``a_l``, reward
  ``r_l(s_l, s_g, a_l)`` (or the joint reward, ``reward="joint"``).

Both run on the count simulator (SPEC 3), so a step costs ``O(|S_l|^2 |A_l|)`` whatever
``n``; they are seeded through ``reset(seed=...)`` (Gymnasium's ``np_random``), and an
episode is truncated after ``horizon`` steps (never terminated: the game is
infinite-horizon and discounted, ``gamma = game.gamma``). See docs/interfaces.md.

Needs the ``gym`` extra: ``pip install 'altmarl[gym]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import numpy as np
from numpy.typing import ArrayLike

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError as _exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "altmarl.interfaces.gym_envs needs gymnasium, which is not installed; install the "
        "optional extra with: pip install 'altmarl[gym]'"
    ) from _exc

from altmarl._validate import check_choice, check_int
from altmarl.game import TabularGame, check_game
from altmarl.interfaces._core import (
    CountStepper,
    FloatArray,
    GlobalObsCodec,
    LocalObsCodec,
    check_action,
    check_initial_state,
    draw_representative,
)
from altmarl.policies import GlobalPolicy, LocalPolicy, check_global_policy, check_local_policy
from altmarl.sampling import Scheme, Uniform, check_observable, resolve
from altmarl.simulate import subsample_histograms

#: reward options of :class:`LocalAgentEnv`
LOCAL_REWARDS = ("individual", "joint")


def global_obs_space(codec: GlobalObsCodec) -> spaces.Space[Any]:
    """The Gymnasium observation space of the global agent's ``(s_g, h)`` in ``codec``'s
    encoding (shared by :class:`GlobalAgentEnv` and the PettingZoo environment)."""
    d, k = codec.n_sl, codec.k
    if codec.mode == "dict":
        return spaces.Dict({
            "s_g": spaces.Discrete(codec.n_sg),
            "hist": spaces.MultiDiscrete(np.full(d, k + 1, dtype=np.int64)),
        })
    if codec.mode == "multidiscrete":
        return spaces.MultiDiscrete(np.array([codec.n_sg] + [k + 1] * d, dtype=np.int64))
    if codec.mode == "discrete":
        return spaces.Discrete(codec.n_sg * codec.n_hist)
    return spaces.Box(0.0, 1.0, shape=(codec.n_sg + d,), dtype=np.float32)


def local_obs_space(codec: LocalObsCodec) -> spaces.Space[Any]:
    """The Gymnasium observation space of a local agent's ``(s_l, s_g)`` in ``codec``'s
    encoding (shared by :class:`LocalAgentEnv` and the PettingZoo environment)."""
    if codec.mode == "multidiscrete":
        return spaces.MultiDiscrete(np.array([codec.n_sl, codec.n_sg], dtype=np.int64))
    if codec.mode == "discrete":
        return spaces.Discrete(codec.n_sl * codec.n_sg)
    return spaces.Box(0.0, 1.0, shape=(codec.n_sl + codec.n_sg,), dtype=np.float32)


class GlobalAgentEnv(gym.Env[Any, np.int64]):
    """The global agent's environment for a fixed shared local policy ``pi_l`` (SPEC 3-4).

    Parameters
    ----------
    game
        A :class:`~altmarl.TabularGame` (any ``n``; the cost per step does not depend on it).
    pi_l
        The shared policy every local agent follows.
    k
        Subsample size, ``1 <= k <= n``; ``k = n`` shows the whole count vector.
    sampling
        The global agent's sampling scheme (SPEC 12, :mod:`altmarl.sampling`; default
        ``Uniform(k)``; ``k`` may then be left out): the observed histogram is drawn by it,
        and ``"discrete"`` observations index its observations.
    horizon
        Episode length; the episode is *truncated* (``truncated=True``) after it.
    obs
        Observation encoding of ``(s_g, h)``: ``"dict"`` (default) ``Dict(s_g=Discrete(|S_g|),
        hist=MultiDiscrete([k+1]*|S_l|))``; ``"multidiscrete"`` ``[s_g, h...]``;
        ``"discrete"`` ``s_g * |H_k| + rank(h)``; ``"box"`` float32 ``[one_hot(s_g), h/k]``.

    Notes
    -----
    Dynamics (paper Algorithm 5 seen by the global agent): the state is ``(s_g, N)``;
    the observation is ``(s_g, h)`` with ``h`` the histogram of a fresh uniform
    ``k``-subset (without replacement) of the population; the reward of ``step(a_g)`` is
    ``r(s, a) = r_g(s_g, a_g) + (1/n) sum_i r_l(s_i, s_g, a_i)`` (SPEC eq. 1) with
    ``a_i ~ pi_l(. | s_i, s_g)``; then ``s_g' ~ P_g(. | s_g, a_g)`` and every agent moves with
    ``P_l(. | s_i, s_g, a_i)``. So ``E[sum_t gamma^t r_t]`` under a policy that maps the
    observation to ``pi_g(s_g, h)`` is ``V(pi_g, pi_l)`` truncated at ``horizon`` — what
    :func:`altmarl.evaluate` estimates.

    ``info`` holds ``s_g``, ``counts`` (the full count vector behind the observation:
    privileged, for diagnostics only) and ``t``; after a step also ``a_g``,
    ``global_reward`` (``r_g``) and ``local_reward`` (the population mean of ``r_l``).
    ``reset(options={"init": (s_g, counts)})`` fixes the initial state; otherwise it is
    drawn from ``game.init``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, game: TabularGame, pi_l: LocalPolicy | FloatArray, k: int | None = None,
                 horizon: int = 100, obs: str = "dict", *,
                 sampling: Scheme | None = None) -> None:
        self.game = check_game(game)
        self.pi_l = check_local_policy(game, pi_l)
        self.scheme: Scheme = resolve(sampling, k, game)
        self.k = self.scheme.k
        self.horizon = check_int("horizon", horizon, 1)
        uniform = isinstance(self.scheme, Uniform)
        self.codec = GlobalObsCodec(game.n_sg, game.n_sl, self.k, obs,
                                    None if uniform else self.scheme)
        self.observation_space = global_obs_space(self.codec)
        self.action_space = spaces.Discrete(game.n_ag)
        self._stepper = CountStepper(game, self.pi_l)
        self._s_g = 0
        self._N = np.zeros(game.n_sl, dtype=np.int64)
        self._h = np.zeros(game.n_sl, dtype=np.int64)
        self._t = 0
        self._needs_reset = True

    # --- gymnasium API --------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        if options and "init" in options:
            self._s_g, self._N = check_initial_state(self.game, options["init"])
        else:
            s_g, N = self.game.sample_init(rng, 1)
            self._s_g, self._N = int(s_g[0]), np.asarray(N[0], dtype=np.int64)
        self._t = 0
        self._needs_reset = False
        self._observe()
        return self.codec.encode_one(self._s_g, self._h), self._info()

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("GlobalAgentEnv.step called before reset() or after the episode "
                               "ended; call reset()")
        a_g = check_action("action", action, self.game.n_ag)
        rng, st, n = self.np_random, self._stepper, self.game.n
        s_g = self._s_g
        cs = st.step(s_g, self._N, a_g, rng)
        assert cs.local_sum is not None
        r_glob = float(self.game.r_g[s_g, a_g])
        r_loc = float(cs.local_sum[0]) / n
        self._s_g = int(cs.s_g[0])
        self._N = cs.counts[0]
        self._t += 1
        self._observe()
        truncated = self._t >= self.horizon
        self._needs_reset = truncated
        info = self._info()
        info.update(a_g=a_g, global_reward=r_glob, local_reward=r_loc)
        return self.codec.encode_one(self._s_g, self._h), r_glob + r_loc, False, truncated, info

    # --- helpers --------------------------------------------------------------
    def _observe(self) -> None:
        if not isinstance(self.scheme, Uniform):  # SPEC 12
            self._h = np.asarray(self.scheme.sample(self._N[None, :], self.np_random,
                                                    self.game.n)[0]).copy()
            return
        self._h = (self._N.copy() if self.k == self.game.n
                   else subsample_histograms(self._N, self.k, self.np_random))

    def _info(self) -> dict[str, Any]:
        return {"s_g": self._s_g, "counts": self._N.copy(), "t": self._t}

    def tabulate(self, predict: Callable[[Any], ArrayLike],
                 info: dict[str, Any] | None = None) -> GlobalPolicy:
        """Turn an observation -> action map into a :class:`~altmarl.GlobalPolicy`.

        ``predict`` receives the batch of *all* ``|S_g| |H_k|`` observations (in this
        env's encoding) and returns one action per row, e.g.
        ``lambda o: model.predict(o, deterministic=True)[0]`` for a Stable-Baselines3
        model. Exact, since the observation is ``(s_g, h)`` itself.
        """
        _, _, batch = self.codec.all_observations()
        acts = np.asarray(predict(batch), dtype=np.int64).reshape(self.game.n_sg,
                                                                  self.codec.n_hist)
        return GlobalPolicy(self.k, acts, self.game.n_ag, info=dict(info or {}), game=self.game,
                            sampling=self.scheme)

    def policy_action(self, pi_g: GlobalPolicy, obs: Any) -> int:
        """``pi_g``'s action for an observation of this env (``pi_g.k`` must equal ``k``;
        ``pi_g`` must be able to act on the env's samples)."""
        if pi_g.k != self.k:
            raise ValueError(f"pi_g.k = {pi_g.k}: expected the env's k = {self.k}")
        check_observable(pi_g.sampling.bind(self.game), self.scheme)
        s_g, h = self.codec.decode(obs)
        return int(pi_g.act_ranked(s_g, pi_g.sampling.index(h))[0])


class LocalAgentEnv(gym.Env[Any, np.int64]):
    """A representative local agent's environment (SPEC 3, 5): the global agent follows
    ``pi_g``, the other ``n - 1`` local agents follow ``pi_l``.

    Parameters
    ----------
    game
        A :class:`~altmarl.TabularGame`.
    pi_g
        The global policy (its ``k`` is the subsample size).
    pi_l
        The shared policy of the other ``n - 1`` local agents.
    horizon
        Episode length (truncation).
    obs
        Encoding of ``(s_l, s_g)``: ``"multidiscrete"`` (default) ``[s_l, s_g]``,
        ``"discrete"`` ``s_l * |S_g| + s_g``, ``"box"`` float32 ``[one_hot(s_l), one_hot(s_g)]``.
    reward
        ``"individual"`` (default): ``r_l(s_l, s_g, a_l)`` of the representative;
        ``"joint"``: the stage reward of SPEC eq. 1 (the team reward every agent shares).
        Both are always in ``info`` (``individual_reward``, ``joint_reward``).

    Notes
    -----
    Exact simulation: the state is ``(s_g, s_rep, N_others)`` with ``N_others`` the count
    vector of the other ``n - 1`` agents. Each step the global agent's ``k``-subset is
    drawn from *all* ``n`` agents (histogram ``~ MultivariateHypergeometric(N_others +
    e_{s_rep}, k)``, so the representative is sampled with probability ``k/n``); the others
    move by the count step under ``pi_l``; the representative plays ``a_l`` and moves with
    ``P_l(. | s_rep, s_g, a_l)``; ``s_g`` moves with ``P_g(. | s_g, a_g)``. At reset the
    representative is a uniformly chosen agent of the initial population. If it follows
    ``pi_l`` too, the joint process is the count simulator's.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy | FloatArray,
                 horizon: int = 100, obs: str = "multidiscrete",
                 reward: str = "individual") -> None:
        self.game = check_game(game)
        self.pi_g = check_global_policy(game, pi_g)
        self.pi_l = check_local_policy(game, pi_l)
        self.k = self.pi_g.k
        self.horizon = check_int("horizon", horizon, 1)
        self.reward_mode = check_choice("reward", reward, LOCAL_REWARDS)
        self.codec = LocalObsCodec(game.n_sl, game.n_sg, obs)
        self.observation_space = local_obs_space(self.codec)
        self.action_space = spaces.Discrete(game.n_al)
        self._stepper = CountStepper(game, self.pi_l)
        self._s_g = 0
        self._s = 0
        self._N_oth = np.zeros(game.n_sl, dtype=np.int64)
        self._t = 0
        self._needs_reset = True

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode. ``options={"init": (s_g, counts)}`` fixes the initial population
        (``counts`` over all ``n`` agents); ``options={"s_l": x}`` additionally places the
        representative in state ``x`` (which must have ``counts[x] >= 1``)."""
        super().reset(seed=seed)
        rng = self.np_random
        options = options or {}
        if "init" in options:
            s_g, N = check_initial_state(self.game, options["init"])
        else:
            sg_arr, N_arr = self.game.sample_init(rng, 1)
            s_g, N = int(sg_arr[0]), np.asarray(N_arr[0], dtype=np.int64)
        if "s_l" in options:
            s = check_action("options['s_l']", options["s_l"], self.game.n_sl)
            if N[s] < 1:
                raise ValueError(f"options['s_l'] = {s}: the initial population has no agent "
                                 f"in that state (counts {N.tolist()})")
        else:
            s = draw_representative(N, rng)
        N = N.copy()
        N[s] -= 1
        self._s_g, self._s, self._N_oth, self._t = s_g, s, N, 0
        self._needs_reset = False
        return self.codec.encode_one(self._s, self._s_g), self._info()

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("LocalAgentEnv.step called before reset() or after the episode "
                               "ended; call reset()")
        a_l = check_action("action", action, self.game.n_al)
        rng, st, game = self.np_random, self._stepper, self.game
        s_g, s = self._s_g, self._s
        N_all = self._N_oth.copy()
        N_all[s] += 1
        scheme = self.pi_g.sampling.bind(game)
        if isinstance(scheme, Uniform):
            h = N_all if self.k == game.n else subsample_histograms(N_all, self.k, rng)
        else:  # SPEC 12: the global agent's sample by its policy's scheme
            h = np.asarray(scheme.sample(N_all[None, :], rng, game.n)[0])
        a_g = int(self.pi_g.act_ranked(np.array([s_g]), scheme.index(h[None, :]))[0])
        # draw order: the others' move, the representative's move, then s_g'
        M = st.moves(s_g, self._N_oth, rng)
        r_own = float(game.r_l[s, s_g, a_l])
        self._s = st.local_next(s, s_g, a_l, rng)
        cs = st.step(s_g, self._N_oth, a_g, rng, moves=M)
        assert cs.local_sum is not None
        r_joint = float(game.r_g[s_g, a_g]) + (float(cs.local_sum[0]) + r_own) / game.n
        self._s_g = int(cs.s_g[0])
        self._N_oth = cs.counts[0]
        self._t += 1
        truncated = self._t >= self.horizon
        self._needs_reset = truncated
        info = self._info()
        info.update(a_g=a_g, hist=h, individual_reward=r_own, joint_reward=r_joint)
        reward = r_own if self.reward_mode == "individual" else r_joint
        return self.codec.encode_one(self._s, self._s_g), reward, False, truncated, info

    def _info(self) -> dict[str, Any]:
        counts = self._N_oth.copy()
        counts[self._s] += 1
        return {"s_l": self._s, "s_g": self._s_g, "counts": counts, "t": self._t}

    def tabulate(self, predict: Callable[[Any], ArrayLike],
                 info: dict[str, Any] | None = None) -> LocalPolicy:
        """Turn an observation -> action map into a deterministic shared
        :class:`~altmarl.LocalPolicy` (``predict`` gets all ``|S_l| |S_g|`` observations)."""
        _, _, batch = self.codec.all_observations()
        acts = np.asarray(predict(batch), dtype=np.int64).reshape(self.game.n_sl,
                                                                  self.game.n_sg)
        pol = LocalPolicy.deterministic(self.game, acts)
        pol.info.update(info or {})
        return pol


def register_envs() -> None:
    """Register ``"altmarl/GlobalAgent-v0"`` and ``"altmarl/LocalAgent-v0"`` with Gymnasium,
    so that ``gymnasium.make("altmarl/GlobalAgent-v0", game=..., pi_l=..., k=...)`` works.
    Idempotent."""
    for env_id, cls in (("altmarl/GlobalAgent-v0", "GlobalAgentEnv"),
                        ("altmarl/LocalAgent-v0", "LocalAgentEnv")):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"altmarl.interfaces.gym_envs:{cls}")
