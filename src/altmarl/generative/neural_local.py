"""Neural L-LEARN on generative games (SPEC 5.3, 8.2, 11): TRPO for the shared local policy,
and the neural local policy with its pickle-free file format. Needs PyTorch.

**Policy.** A categorical MLP (``layers`` x ``hidden`` tanh units, paper G.2) on the local
observation ``phi(s_l, s_g)``: one-hot vectors for discrete states, the flattened state
standardized by the mean and standard deviation of a reset population otherwise
(:class:`LocalFeatures`). The output layer starts at zero, so a fresh policy is uniform
(SPEC 6's ``pi_l^0``). The policy acts greedily (``argmax``, the authors' evaluation
protocol, no random draws) or by sampling (one uniform per agent); on games whose local
and global states are both discrete it is compiled to a ``(|S_l|, |S_g|, |A_l|)`` table
(exactly the network's probabilities), which is also an :class:`altmarl.LocalPolicy`
(:meth:`NeuralLocalPolicy.to_local_policy`).

**Data** (one TRPO iteration): ``rollouts`` runs of ``horizon`` steps of the full
``n``-agent per-agent simulator (:func:`altmarl.generative.simulator.rollout`) with ``pi_g``
fixed, following ``tracked`` distinct agents per rollout, chosen uniformly; each tracked
agent's ``(s_l, s_g)``, action and own reward ``r_l`` is one path of the representative
agent (agents are exchangeable). Two variants:

* ``variant="population"`` (default): *every* agent plays the candidate (sampled), so the
  data are those of the shared deviation ``pi_l'`` that ``V(pi_g, pi_l')`` scores
  (Definition 2.4) — the continuous extension's protocol (:mod:`altmarl.continuous.trpo`);
* ``variant="representative"``: the population plays the current ``pi_l`` and only the
  tracked agents play the candidate: the representative agent's best response to the
  population as it is, the neural, model-free analogue of induced-VI (SPEC 5.1, the
  practice of the paper's experiments). The tracked agents are part of the population the
  global agent samples, so keep ``tracked`` small next to ``n``.

**Update** (:mod:`altmarl.continuous.trpo`, reused as is): returns of the own local rewards
bootstrapped with the critic at the horizon (GAE, :func:`returns_and_advantages`),
normalised advantages, one TRPO step (conjugate gradient on the Fisher matrix, KL radius,
backtracking line search; :func:`trpo_step`), then the critic by MSE with Adam
(:func:`fit_critic`). The critic predicts ``V / value_scale`` with ``value_scale =
max |r_l| / (1 - gamma)`` of the first batch.

Like the paper, the representative agent's return counts only its own rewards: the effect
of one agent's action on the others (through the global agent's ``k``-sample) is left out.

**Files.** :meth:`NeuralLocalPolicy.save` writes one file loaded with
``torch.load(weights_only=True)``: ``{"meta": JSON string, "policy": state dict, "critic":
state dict}``; ``meta`` has ``format = "altmarl.neural_local_policy"``, ``version = 1``, the
features, the architecture, the game's name and fingerprint and the learner's diagnostics.
Loading with another game's fingerprint is refused with a clear message.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from altmarl._random import SeedLike, as_seed_sequence, child
from altmarl._random import rng as child_rng
from altmarl._validate import check_choice, check_float, check_int
from altmarl.continuous.nets import forward_chunked, load_state, mlp, save_state, seeded_torch
from altmarl.continuous.nets import torch_seed as make_torch_seed
from altmarl.continuous.trpo import (
    Batch,
    TRPOConfig,
    fit_critic,
    returns_and_advantages,
    trpo_step,
)
from altmarl.game import check_recorded_game
from altmarl.generative.game import PROBE_SEED, GenerativeGame
from altmarl.generative.neural import game_meta, read_meta
from altmarl.generative.policies import UniformLocalPolicy, check_policies
from altmarl.generative.simulator import rollout, subsample_indices
from altmarl.io import to_jsonable
from altmarl.progress import Progress
from altmarl.threads import limit_torch_threads

FORMAT = "altmarl.neural_local_policy"
FORMAT_VERSION = 1
#: the variants of :func:`neural_l_learn` (module docstring)
VARIANTS = ("population", "representative")
#: reset rollouts used to standardize continuous states (:meth:`LocalFeatures.for_game`)
_FEATURE_ROLLOUTS = 32

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class LocalFeatures:
    """``phi(s_l, s_g)``, one row per agent: one-hot (discrete) or standardized flattened
    (continuous) local state, then the same for the global state."""

    def __init__(self, n_sl: int | None, local_shape: tuple[int, ...], n_sg: int | None,
                 global_shape: tuple[int, ...], local_mean: list[float] | None = None,
                 local_std: list[float] | None = None, global_mean: list[float] | None = None,
                 global_std: list[float] | None = None) -> None:
        self.n_sl, self.n_sg = n_sl, n_sg
        self.local_shape, self.global_shape = tuple(local_shape), tuple(global_shape)
        dl = int(np.prod(self.local_shape, dtype=np.int64))
        dg = int(np.prod(self.global_shape, dtype=np.int64))
        self.local_mean = np.asarray(local_mean if local_mean is not None else [0.0] * dl,
                                     dtype=np.float32)
        self.local_std = np.asarray(local_std if local_std is not None else [1.0] * dl,
                                    dtype=np.float32)
        self.global_mean = np.asarray(global_mean if global_mean is not None else [0.0] * dg,
                                      dtype=np.float32)
        self.global_std = np.asarray(global_std if global_std is not None else [1.0] * dg,
                                     dtype=np.float32)
        self.local_dim = n_sl if n_sl is not None else dl
        self.global_dim = n_sg if n_sg is not None else dg
        self.dim = int(self.local_dim + self.global_dim)

    @classmethod
    def for_game(cls, game: GenerativeGame) -> LocalFeatures:
        """Features of ``game``; continuous states are standardized with the mean and
        standard deviation of a reset population (a fixed private seed: the same features
        for every run on the game)."""
        lm = ls = gm = gs = None
        if game.n_sl is None or game.n_sg is None:
            s_g, s_l = game.reset(child_rng(PROBE_SEED, 1), _FEATURE_ROLLOUTS)
            if game.n_sl is None:
                x = np.asarray(s_l, dtype=np.float64).reshape(-1, max(1, int(np.prod(
                    game.local_shape, dtype=np.int64))))
                lm, ls = _moments(x)
            if game.n_sg is None:
                y = np.asarray(s_g, dtype=np.float64).reshape(len(s_g), -1)
                gm, gs = _moments(y)
        return cls(game.n_sl, game.local_shape, game.n_sg, game.global_shape, lm, ls, gm, gs)

    def __call__(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> NDArray[np.float32]:
        """``s_l`` ``(R, m, *local_shape)``, ``s_g`` ``(R, *global_shape)`` ->
        ``(R m, dim)`` float32 (rows in the order of ``s_l``)."""
        s_l = np.asarray(s_l)
        R, m = int(s_l.shape[0]), int(s_l.shape[1])
        out = np.zeros((R * m, self.dim), dtype=np.float32)
        rows = np.arange(R * m)
        if self.n_sl is not None:
            out[rows, s_l.reshape(-1).astype(np.int64)] = 1.0
        else:
            x = s_l.reshape(R * m, -1).astype(np.float32)
            out[:, :self.local_dim] = (x - self.local_mean) / self.local_std
        g0 = self.local_dim
        if self.n_sg is not None:
            out[rows, g0 + np.repeat(np.asarray(s_g, dtype=np.int64).reshape(R), m)] = 1.0
        else:
            y = (np.asarray(s_g, dtype=np.float32).reshape(R, -1) - self.global_mean) \
                / self.global_std
            out[:, g0:] = np.repeat(y, m, axis=0)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"n_sl": self.n_sl, "local_shape": list(self.local_shape), "n_sg": self.n_sg,
                "global_shape": list(self.global_shape),
                "local_mean": self.local_mean.tolist(), "local_std": self.local_std.tolist(),
                "global_mean": self.global_mean.tolist(), "global_std": self.global_std.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LocalFeatures:
        return cls(d["n_sl"], tuple(d["local_shape"]), d["n_sg"], tuple(d["global_shape"]),
                   d["local_mean"], d["local_std"], d["global_mean"], d["global_std"])


def _moments(x: FloatArray) -> tuple[list[float], list[float]]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return [float(v) for v in mean], [float(v) for v in std]


class NeuralLocalPolicy:
    """A shared local policy network with its critic (SPEC 5.3, 11); follows the local
    policy protocol ``act(s_l, s_g, rng)``: greedy (``greedy=True``, no random draws) or
    sampled (one uniform per agent). Trained in place by :func:`neural_l_learn`."""

    def __init__(self, features: LocalFeatures, n_al: int, hidden: int = 64, layers: int = 2,
                 init_seed: int = 0, greedy: bool = True, value_scale: float = 0.0,
                 info: dict[str, Any] | None = None,
                 game_meta: dict[str, Any] | None = None) -> None:
        self.features = features
        self.n_al = check_int("num_local_actions", n_al, 1)
        self.arch = {"in_dim": features.dim, "out_dim": self.n_al, "hidden": int(hidden),
                     "layers": int(layers)}
        with seeded_torch(init_seed):
            self.policy = mlp(features.dim, self.n_al, int(hidden), int(layers))
            self.critic = mlp(features.dim, 1, int(hidden), int(layers))
        out = self.policy[-1]
        assert isinstance(out, nn.Linear)
        with torch.no_grad():  # pi_l^0 uniform (SPEC 6)
            out.weight.zero_()
            out.bias.zero_()
        self.greedy = bool(greedy)
        #: the critic predicts ``V / value_scale``; 0: not set yet (fixed by the first
        #: TRPO batch as ``max |r_l| / (1 - gamma)``)
        self.value_scale = float(value_scale)
        self.info: dict[str, Any] = dict(info or {})
        self.game_meta: dict[str, Any] = dict(game_meta or {})
        self._table: FloatArray | None = None

    @classmethod
    def for_game(cls, game: GenerativeGame, hidden: int = 64, layers: int = 2,
                 init_seed: int = 0, greedy: bool = True) -> NeuralLocalPolicy:
        """A fresh (uniform) policy for ``game``."""
        return cls(LocalFeatures.for_game(game), game.n_al, hidden, layers, init_seed, greedy,
                   game_meta=game_meta(game))

    @classmethod
    def imitate(cls, game: GenerativeGame, target: Any, *, confidence: float = 0.9,
                steps: int = 400, lr: float = 1e-2, hidden: int = 64, layers: int = 2,
                seed: SeedLike = 0, greedy: bool = True, threads: int = 1
                ) -> NeuralLocalPolicy:
        """A policy network cloned from a hand-written or tabular local rule (behaviour
        cloning, for a warm start of neural L-LEARN / ALTERNATING-MARL from a heuristic).

        ``target`` has a ``(|S_l|, |S_g|, |A_l|)`` probability table (``table`` attribute or
        method: an :class:`altmarl.LocalPolicy`, a compiled :class:`NeuralLocalPolicy`);
        the network is fitted by full-batch Adam (``steps``, ``lr``) on the cross-entropy
        to ``confidence * target + (1 - confidence) * uniform`` over every discrete state
        pair, so its sampled actions still explore (TRPO's gradient does not vanish) while
        its greedy actions are the target's. ``info["agreement"]``: the share of state
        pairs where the greedy actions agree; ``info["max_prob_error"]``. Needs discrete
        local and global states.
        """
        if game.n_sl is None or game.n_sg is None:
            raise ValueError(f"imitate: game {game.name!r} does not have discrete local and "
                             "global states (a target table needs them)")
        conf = check_float("confidence", confidence, 0.0, 1.0)
        n_steps = check_int("steps", steps, 1)
        check_float("lr", lr, positive=True)
        tab = getattr(target, "table", None)
        tab = tab() if callable(tab) else tab
        want = (game.n_sl, game.n_sg, game.n_al)
        if not isinstance(tab, np.ndarray) or tab.shape != want:
            raise ValueError(f"imitate: target must have a probability table of shape "
                             f"(|S_l|, |S_g|, |A_l|) = {want}, got "
                             f"{getattr(tab, 'shape', type(tab).__name__)}")
        ss = as_seed_sequence(seed)
        pol = cls.for_game(game, hidden, layers, make_torch_seed(child(ss, 0)), greedy)
        soft = conf * np.asarray(tab, dtype=np.float64) + (1.0 - conf) / game.n_al
        sl = np.broadcast_to(np.arange(game.n_sl)[None, :], (game.n_sg, game.n_sl))
        x = torch.from_numpy(pol.features(sl, np.arange(game.n_sg)))
        y = torch.from_numpy(np.ascontiguousarray(soft.transpose(1, 0, 2)).reshape(-1, game.n_al)
                             .astype(np.float32))
        with limit_torch_threads(threads), seeded_torch(make_torch_seed(child(ss, 1))):
            opt = torch.optim.Adam(pol.policy.parameters(), lr=lr)
            for _ in range(n_steps):
                loss = -(y * torch.log_softmax(pol.policy(x), dim=1)).sum(dim=1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        pol.invalidate()
        got = pol.table()
        pol.info = {"method": "imitation", "confidence": conf, "steps": n_steps,
                    "agreement": float((got.argmax(-1) == np.asarray(tab).argmax(-1)).mean()),
                    "max_prob_error": float(np.abs(got - soft).max())}
        return pol

    # --- acting --------------------------------------------------------------------------
    @property
    def tabular(self) -> bool:
        """Whether both state spaces are discrete (the policy is compiled to a table)."""
        return self.features.n_sl is not None and self.features.n_sg is not None

    def table(self) -> FloatArray:
        """``(|S_l|, |S_g|, |A_l|)`` action probabilities (discrete states only; cached
        until the weights change, :meth:`invalidate`)."""
        f = self.features
        if f.n_sl is None or f.n_sg is None:
            raise ValueError("table: the policy's states are not both discrete")
        if self._table is None:
            sl = np.broadcast_to(np.arange(f.n_sl)[None, :], (f.n_sg, f.n_sl))
            sg = np.arange(f.n_sg)
            p = self._network_probs(sl, sg)  # (S_g, S_l, A)
            self._table = np.ascontiguousarray(p.transpose(1, 0, 2))
        return self._table

    def _network_probs(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> FloatArray:
        logits = forward_chunked(self.policy, torch.from_numpy(self.features(s_l, s_g)))
        p = torch.softmax(logits.double(), dim=1).numpy()
        return np.asarray(p.reshape(np.shape(s_l)[:2] + (self.n_al,)), dtype=np.float64)

    def probs(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> FloatArray:
        """Action probabilities ``(R, m, |A_l|)`` of agents ``s_l`` ``(R, m, ...)``."""
        s_l = np.asarray(s_l)
        if self.tabular:
            sg = np.asarray(s_g, dtype=np.int64).reshape(s_l.shape[0], 1)
            return np.asarray(self.table()[s_l.astype(np.int64), sg])
        return self._network_probs(s_l, np.asarray(s_g))

    def act(self, s_l: Any, s_g: Any, rng: np.random.Generator) -> IntArray:
        """Greedy actions (ties: lowest index; no random draws) or, with ``greedy=False``,
        one inverse-CDF draw per agent; shape ``s_l.shape[:2]``."""
        p = self.probs(np.asarray(s_l), np.asarray(s_g))
        if self.greedy:
            return np.asarray(p.argmax(axis=-1), dtype=np.int64)
        u = rng.random(p.shape[:2])
        cdf = np.cumsum(p, axis=-1)[..., :-1]
        return np.asarray((u[..., None] > cdf).sum(axis=-1), dtype=np.int64)

    def sampler(self) -> NeuralLocalPolicy:
        """The same networks (shared, not copied) acting by sampling: what TRPO collects
        data with."""
        out = copy.copy(self)
        out.greedy = False
        out._table = None
        return out

    def with_greedy(self, greedy: bool) -> NeuralLocalPolicy:
        """A copy (networks copied) acting greedily or by sampling."""
        out = self.clone()
        out.greedy = bool(greedy)
        return out

    def invalidate(self) -> None:
        """Forget the compiled table (after the weights changed)."""
        self._table = None

    def clone(self) -> NeuralLocalPolicy:
        """Deep copy of both networks."""
        out = copy.copy(self)
        out.policy = copy.deepcopy(self.policy)
        out.critic = copy.deepcopy(self.critic)
        out.info = dict(self.info)
        out._table = None
        return out

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """Critic value of feature rows ``x``."""
        return self.critic(x).squeeze(-1) * self.value_scale

    def to_local_policy(self, game: Any) -> Any:
        """The policy as an :class:`altmarl.LocalPolicy` of a tabular ``game`` (its exact
        probabilities, or one-hot greedy actions when ``greedy``)."""
        from altmarl.policies import LocalPolicy

        p = self.table()
        if self.greedy:
            p = np.eye(self.n_al)[p.argmax(axis=-1)]
        return LocalPolicy(np.asarray(p, dtype=np.float64), dict(self.info), game)

    # --- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], game: GenerativeGame | None = None) -> Path:
        """Write the policy (module docstring: one ``weights_only`` file); returns the path."""
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "n_al": self.n_al,
                "greedy": self.greedy, "value_scale": self.value_scale,
                "features": self.features.to_json(), "arch": self.arch,
                "game": game_meta(game) if game is not None else self.game_meta,
                "info": to_jsonable(self.info)}
        p = Path(path)
        save_state(p, {"meta": json.dumps(meta, sort_keys=True),
                       "policy": {k: v.detach().cpu() for k, v in self.policy.state_dict().items()},
                       "critic": {k: v.detach().cpu() for k, v in self.critic.state_dict().items()}})
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str], game: GenerativeGame | None = None,
             strict: bool = True) -> NeuralLocalPolicy:
        """Read a policy file; with ``game``, refuse a file made for another game
        (``strict=False`` accepts a game with the same features and actions)."""
        blob = load_state(path)
        meta = read_meta(blob, str(path), "neural local policy", FORMAT, FORMAT_VERSION,
                         ("policy", "critic"), {"features": dict, "arch": dict, "n_al": int,
                                                "greedy": bool, "value_scale": float})
        try:
            feats = LocalFeatures.from_json(meta["features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: meta 'features' cannot be read ({exc!r})") from None
        if game is not None:
            check_recorded_game(meta.get("game"), game, str(path), "policy made for", strict,
                                required=True)
            want = LocalFeatures.for_game(game)
            if (want.dim, game.n_al) != (feats.dim, meta["n_al"]):
                raise ValueError(f"{path}: policy reads {feats.dim} features and plays "
                                 f"{meta['n_al']} actions; game {game.name!r} gives {want.dim} "
                                 f"features and {game.n_al} actions")
        arch = meta["arch"]
        try:
            pol = cls(feats, int(meta["n_al"]), int(arch["hidden"]), int(arch["layers"]),
                      greedy=bool(meta["greedy"]), value_scale=float(meta["value_scale"]),
                      info=meta.get("info", {}), game_meta=meta.get("game", {}))
            pol.policy.load_state_dict(blob["policy"])
            pol.critic.load_state_dict(blob["critic"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: weights do not match the architecture {arch} "
                             f"({exc})") from None
        return pol

    def __repr__(self) -> str:
        return (f"NeuralLocalPolicy(|A_l|={self.n_al}, features={self.features.dim}, "
                f"hidden={self.arch['hidden']}x{self.arch['layers']}, greedy={self.greedy})")


# ---------------------------------------------------------------------------------------
# TRPO on the per-agent simulator
# ---------------------------------------------------------------------------------------


def collect_batch(game: GenerativeGame, pi_g: Any, agent: NeuralLocalPolicy, population: Any,
                  rollouts: int, horizon: int, tracked: int, rng: np.random.Generator,
                  gae_lambda: float) -> Batch:
    """One TRPO batch (module docstring): ``rollouts`` x ``horizon`` steps of the ``n``-agent
    simulator, ``tracked`` uniformly chosen agents per rollout; everyone plays the sampled
    candidate (``population is None``) or the population plays ``population`` and the
    tracked agents the candidate."""
    R, H = int(rollouts), int(horizon)
    m = min(int(tracked), game.n)
    track = subsample_indices(rng, R, game.n, m)
    cand = agent.sampler()
    if population is None:
        traj = rollout(game, pi_g, cand, R, H, rng, record_counts=False, track=track)
    else:
        traj = rollout(game, pi_g, population, R, H, rng, record_counts=False, track=track,
                       deviation=cand)
    tr = traj.tracked
    assert tr is not None
    obs = agent.features(tr.s_l.reshape(R * H, m, *game.local_shape),
                         tr.s_g.reshape(R * H, *game.global_shape))
    last = agent.features(tr.last_s_l, tr.last_s_g)
    r = np.asarray(tr.r_l, dtype=np.float64)
    if not agent.value_scale > 0:  # a fresh critic: its scale from the first batch
        agent.value_scale = float(max(1e-8, float(np.abs(r).max())) / (1.0 - game.gamma))
    x, x_last = torch.from_numpy(obs), torch.from_numpy(last)
    with torch.inference_mode():
        v = agent.value(x).numpy().reshape(R, H, m).astype(np.float64)
        v_last = agent.value(x_last).numpy().reshape(R, m).astype(np.float64)
    ret, adv = returns_and_advantages(r, v, v_last, game.gamma, gae_lambda)
    disc = game.gamma ** np.arange(H)
    return Batch(obs=x, actions=torch.from_numpy(tr.a_l.reshape(-1).astype(np.int64)),
                 returns=torch.from_numpy(ret.reshape(-1).astype(np.float32)),
                 advantages=torch.from_numpy(adv.astype(np.float32)),
                 mean_local_return=float((r * disc[None, :, None]).sum(1).mean()),
                 agent_steps=R * H * game.n)


def neural_l_learn(
    game: GenerativeGame,
    pi_g: Any,
    pi_l: Any = None,
    seed: SeedLike = 0,
    *,
    variant: str = "population",
    iterations: int = 20,
    rollouts: int = 8,
    horizon: int = 50,
    tracked: int = 64,
    trpo: TRPOConfig | None = None,
    hidden: int = 64,
    layers: int = 2,
    warm_start: bool = True,
    greedy: bool = True,
    threads: int = 1,
    progress: bool = False,
) -> NeuralLocalPolicy:
    """Neural L-LEARN (SPEC 5.3, 11; module docstring): TRPO for the shared local policy
    against the fixed ``pi_g`` on the per-agent simulator. ``am.l_learn(game, pi_g, pi_l)``
    calls it for generative games.

    Parameters
    ----------
    pi_l
        The current local policy (default uniform): with ``variant="representative"`` the
        population plays it; a :class:`NeuralLocalPolicy` is also the starting point
        (``warm_start``, its networks copied); otherwise training starts from a uniform
        policy.
    variant
        ``"population"`` (everyone plays the candidate: the shared deviation) or
        ``"representative"`` (only the tracked agents do: best response to the population).
    iterations, rollouts, horizon, tracked
        TRPO iterations; per iteration ``rollouts`` x ``horizon`` simulator steps of all
        ``n`` agents, ``tracked`` agents per rollout giving samples.
    trpo
        :class:`altmarl.continuous.TRPOConfig` (defaults: paper Table 4).
    hidden, layers
        Architecture of a fresh policy and critic.
    greedy
        How the returned policy acts (greedy: the authors' protocol).
    threads
        Torch threads during the fit (restored afterwards).

    Returns
    -------
    NeuralLocalPolicy
        ``info``: ``method = "neural-trpo"``, ``variant``, per-iteration diagnostics
        (accepted step, KL, critic loss, mean own discounted return), ``samples``
        (representative-agent samples), ``agent_steps`` (simulator agent-steps), wall time.
    """
    check_choice("variant", variant, VARIANTS)
    iters = check_int("iterations", iterations, 1)
    R = check_int("rollouts", rollouts, 1)
    H = check_int("horizon", horizon, 1)
    m = check_int("tracked", tracked, 1)
    check_int("hidden", hidden, 1)
    check_int("layers", layers, 1)
    cfg = trpo if trpo is not None else TRPOConfig()
    if not isinstance(cfg, TRPOConfig):
        raise ValueError(f"trpo: expected an altmarl.continuous.TRPOConfig, got "
                         f"{type(cfg).__name__}")
    population = pi_l if pi_l is not None else UniformLocalPolicy(game.n_al)
    check_policies(game, pi_g, population)
    ss = as_seed_sequence(seed)
    t0 = time.perf_counter()
    if warm_start and isinstance(pi_l, NeuralLocalPolicy):
        want = LocalFeatures.for_game(game)
        if (pi_l.features.dim, pi_l.n_al) != (want.dim, game.n_al):
            raise ValueError(f"pi_l: a neural policy for {pi_l.features.dim} features and "
                             f"{pi_l.n_al} actions; game {game.name!r} gives {want.dim} and "
                             f"{game.n_al}")
        agent = pi_l.clone()
        agent.greedy = bool(greedy)
        fresh = False
    else:
        agent = NeuralLocalPolicy.for_game(game, hidden, layers,
                                           make_torch_seed(child(ss, 0)), greedy)
        fresh = True
    agent.game_meta = game_meta(game)
    steps: list[dict[str, Any]] = []
    agent_steps = samples = 0
    with limit_torch_threads(threads), Progress(enabled=progress) as bar:
        task = bar.add_task(f"neural L-LEARN (TRPO, {variant})", total=iters, status="")
        for i in range(iters):
            rng = child_rng(ss, 1, i)
            batch = collect_batch(game, pi_g, agent,
                                  None if variant == "population" else population, R, H, m, rng,
                                  cfg.gae_lambda)
            rng_f = child_rng(ss, 2, i)
            info = trpo_step(agent, batch, cfg, rng_f)
            info["critic_loss"] = fit_critic(agent, batch, cfg, rng_f)
            info["mean_local_return"] = batch.mean_local_return
            info["samples"] = int(batch.obs.shape[0])
            steps.append(info)
            agent_steps += batch.agent_steps
            samples += int(batch.obs.shape[0])
            bar.advance(task, status=f"mean own return {batch.mean_local_return:.4g}")
    agent.invalidate()
    agent.info = {
        "method": "neural-trpo", "variant": variant, "iterations": len(steps),
        "accepted_steps": [s.get("accepted_step") for s in steps],
        "kl": [s.get("kl") for s in steps],
        "critic_loss": [s.get("critic_loss") for s in steps],
        "mean_local_return": [s.get("mean_local_return") for s in steps],
        "samples": samples, "agent_steps": agent_steps, "warm_start": not fresh,
        "wall_time": time.perf_counter() - t0, "threads": int(threads),
    }
    return agent


#: L-LEARN solvers of generative games (``am.l_learn``'s ``solver``)
GENERATIVE_SOLVERS = ("trpo", "trpo-representative")


def l_learn_generative(
    game: GenerativeGame,
    pi_g: Any,
    solver: Any = None,
    seed: SeedLike = 0,
    *,
    pi_l: Any = None,
    evaluator: Any = None,
    estimate_value: bool = True,
    eval_rollouts: int = 50,
    eval_horizon: int = 100,
    **options: Any,
) -> NeuralLocalPolicy:
    """``am.l_learn`` on a generative game: :func:`neural_l_learn`, then (``estimate_value``)
    ``info["value"]`` / ``info["value_stderr"]`` by ``evaluator(pi_g, pi_l')`` or
    ``am.evaluate`` (``eval_rollouts`` x ``eval_horizon``, a seed derived from ``seed``).

    ``solver``: ``None`` or ``"trpo"`` (``variant="population"``), ``"trpo-representative"``
    (``variant="representative"``); a local policy in its place is taken as ``pi_l`` (the
    call ``am.l_learn(game, pi_g, pi_l)`` of SPEC 11). ``options`` go to
    :func:`neural_l_learn`; unknown names raise ``ValueError``.
    """
    if solver is not None and not isinstance(solver, str):
        if pi_l is not None:
            raise ValueError("l_learn: pi_l given twice (third argument and pi_l=)")
        solver, pi_l = None, solver
    name = check_choice("solver", "trpo" if solver is None else solver, GENERATIVE_SOLVERS)
    allowed = [p for p in inspect.signature(neural_l_learn).parameters
               if p not in ("game", "pi_g", "pi_l", "seed")]
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise ValueError(f"options {bad}: not accepted by neural L-LEARN ({name!r}); expected "
                         f"some of {sorted(allowed)}")
    if name == "trpo-representative":
        if options.get("variant", "representative") != "representative":
            raise ValueError(f"variant = {options['variant']!r}: solver "
                             "'trpo-representative' is variant 'representative'")
        options["variant"] = "representative"
    s_solver, s_eval = as_seed_sequence(seed).spawn(2)
    pol = neural_l_learn(game, pi_g, pi_l, s_solver, **options)
    pol.info["solver"] = name
    if estimate_value:
        if evaluator is not None:
            est = evaluator(pi_g, pol)
        else:
            from altmarl.evaluation import evaluate_generative

            est = evaluate_generative(game, pi_g, pol, check_int("eval_rollouts", eval_rollouts,
                                                                 2),
                                      check_int("eval_horizon", eval_horizon, 1),
                                      seed=int(s_eval.generate_state(1)[0]))
        pol.info["value"], pol.info["value_stderr"] = float(est.mean), float(est.stderr)
    else:
        pol.info["value"] = pol.info["value_stderr"] = None
    return pol


__all__ = [
    "FORMAT",
    "GENERATIVE_SOLVERS",
    "VARIANTS",
    "LocalFeatures",
    "NeuralLocalPolicy",
    "collect_batch",
    "l_learn_generative",
    "neural_l_learn",
]
