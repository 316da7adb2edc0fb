"""Neural G-LEARN: the dispatcher's best response to a fixed local policy (paper
Appendix G.2; the function-approximation analogue of SPEC 4).

The dispatcher is an MLP (2 layers, 64 tanh units) on its observation

    o = (h / k, s_g / 2)          h = bin counts of the k sampled robots (5 bins)

(the ``s_g`` input can be switched off with ``use_s_g=False``; the authors' code feeds the
histogram only). It outputs one number per global action and acts greedily (argmax,
ties to the lowest action). Two learners are offered:

``"ce"`` — the paper's contextual-bandit shortcut. Draw ``samples`` initial states, a
    ``k``-subsample of each, and label it with the true population-mode bin of the full
    population; minimize the cross-entropy of the outputs (as logits) with Adam
    (``epochs`` full-batch steps, gradient norm clipped at 1). Needs the mode label.

``"rollout"`` — a general learner that needs no label, only the simulator and the return:
    one step of approximate policy iteration with Monte-Carlo Q-values (rollout-based
    policy iteration, Lagoudakis & Parr 2003; the neural counterpart of the empirical
    Bellman operator of SPEC 4). For ``states`` population states visited by the current
    joint policy (time drawn with weight ``gamma^t``), every global action ``a`` is tried
    once and the current policies are followed for ``rollout_len - 1`` more steps, all
    ``|A_g|`` branches sharing their random numbers; ``Q(s, a)`` is the discounted return of
    the branch. The network regresses the centred values ``A(s, a) = Q(s, a) - mean_a
    Q(s, a)`` (scaled by ``1 / r_max``) from ``hist_draws`` independent ``k``-samples of
    each state (so it learns ``E[A(s, a) | o]``), and the new policy is greedy in them.
    Truncating the branches is harmless for the comparison between actions: ``s_g``
    forgets its first action geometrically (factor ``1 - steer = 0.4`` per step), so the
    branches merge within a few steps.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, get_args

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from altmarl._random import child
from altmarl.continuous.env import (
    ContinuousWarehouse,
    GlobalActor,
    LocalActor,
    simulate,
)
from altmarl.continuous.nets import forward_chunked, mlp, seeded_torch
from altmarl.simulate import subsample_histograms

#: the G-LEARN methods (``ContinuousConfig.g_method``)
GMethod = Literal["ce", "rollout"]
G_METHODS: tuple[str, ...] = get_args(GMethod)


class GlobalAgent:
    """The dispatcher network and its observation map.

    Parameters
    ----------
    env : the continuous warehouse
    k : subsample size
    hidden : hidden units (paper: 64)
    use_s_g : whether ``s_g`` is part of the input
    init_seed : seed of the network initialisation
    """

    def __init__(self, env: ContinuousWarehouse, k: int, hidden: int = 64, use_s_g: bool = True,
                 init_seed: int = 0) -> None:
        self.env = env
        self.k = env.check_k(k)
        self.use_s_g = bool(use_s_g)
        self.hidden = int(hidden)
        self.in_dim = env.n_bins + (1 if self.use_s_g else 0)
        self.scale = max(abs(env.low), abs(env.high))
        with seeded_torch(init_seed):
            self.net = mlp(self.in_dim, env.n_ag, hidden=self.hidden)

    def features(self, s_g: NDArray[Any], hist: NDArray[Any]) -> torch.Tensor:
        """Observation ``(h / k, s_g / 2)`` as a float32 tensor ``(R, in_dim)``."""
        h = np.asarray(hist, dtype=np.float32) / np.float32(self.k)
        if self.use_s_g:
            sg = (np.asarray(s_g, dtype=np.float32) / np.float32(self.scale)).reshape(-1, 1)
            h = np.concatenate([h, sg], axis=1)
        return torch.from_numpy(np.ascontiguousarray(h))

    def outputs(self, s_g: NDArray[Any], hist: NDArray[Any]) -> NDArray[np.float32]:
        """Network outputs ``(R, |A_g|)`` (logits or scaled advantages), via PyTorch."""
        return forward_chunked(self.net, self.features(s_g, hist)).numpy()

    def act(self, s_g: NDArray[Any], hist: NDArray[Any]) -> NDArray[np.int64]:
        """Greedy action (ties: lowest index)."""
        return self.actor()(np.asarray(s_g), np.asarray(hist), self.k, np.zeros(0))

    def actor(self) -> GlobalActor:
        """The greedy policy as a simulator callable: a snapshot of the network's current
        weights, evaluated in NumPy (small batches are dominated by PyTorch's per-call
        overhead)."""
        return _NumpyGreedy(self)

    def clone(self) -> GlobalAgent:
        """Deep copy (the network is copied, the game shared)."""
        out = copy.copy(self)
        out.net = copy.deepcopy(self.net)
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Network weights."""
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load weights saved by :meth:`state_dict` (shapes checked by PyTorch)."""
        self.net.load_state_dict(sd)


class _NumpyGreedy:
    """Greedy dispatcher from a weight snapshot of a :class:`GlobalAgent` network."""

    def __init__(self, agent: GlobalAgent) -> None:
        lin = [m for m in agent.net if isinstance(m, nn.Linear)]
        self.w = [np.ascontiguousarray(m.weight.detach().numpy().T, dtype=np.float32) for m in lin]
        self.b = [m.bias.detach().numpy().astype(np.float32) for m in lin]
        self.k, self.use_s_g, self.scale = agent.k, agent.use_s_g, agent.scale

    def __call__(self, s_g: NDArray[Any], hist: NDArray[Any], k: int, u: NDArray[Any]
                 ) -> NDArray[np.int64]:
        x = np.asarray(hist, dtype=np.float32) / np.float32(self.k)
        if self.use_s_g:
            sg = np.asarray(s_g, dtype=np.float32).reshape(-1, 1) / np.float32(self.scale)
            x = np.concatenate([x, sg], axis=1)
        for w, b in zip(self.w[:-1], self.b[:-1], strict=True):
            x = np.tanh(x @ w + b)
        out = x @ self.w[-1] + self.b[-1]
        return np.asarray(np.argmax(out, axis=1), dtype=np.int64)


def _adam_fit(net: nn.Module, loss_fn: Any, steps: int, lr: float, clip: float) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_val = float("nan")
    for _ in range(int(steps)):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        loss_val = float(loss.detach())
    return loss_val


def reset_mode_samples(env: ContinuousWarehouse, k: int, samples: int,
                       rng: np.random.Generator) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """``(s_g, hist, mode)`` of ``samples`` fresh initial states: the histogram of a uniform
    ``k``-subset of each population (without replacement: a multivariate hypergeometric
    draw from the bin counts) and the population-mode bin. Uses
    :meth:`ContinuousWarehouse.reset_counts` (same law as sampling every position)."""
    s_g, counts = env.reset_counts(rng, samples)
    hist = counts if k == env.n else subsample_histograms(counts, k, rng)
    return s_g, hist, env.population_mode(counts)


def g_learn_ce(agent: GlobalAgent, rng: np.random.Generator, samples: int = 3000,
               epochs: int = 20, lr: float = 3e-3, grad_clip: float = 1.0) -> dict[str, Any]:
    """Paper G.2 G-LEARN: cross-entropy on the population-mode bin at reset (in place).

    Returns diagnostics: final loss, training accuracy, samples used.
    """
    s_g, hist, mode = reset_mode_samples(agent.env, agent.k, int(samples), rng)
    x = agent.features(s_g, hist)
    y = torch.from_numpy(mode)
    loss = _adam_fit(agent.net, lambda: nn.functional.cross_entropy(agent.net(x), y),
                     epochs, lr, grad_clip)
    acc = float((agent.act(s_g, hist) == mode).mean())
    return {"method": "ce", "loss": loss, "train_accuracy": acc, "samples": int(samples)}


def harvest_states(positions: NDArray[np.float32], s_g: NDArray[Any], count: int, gamma: float,
                   rng: np.random.Generator) -> tuple[NDArray[Any], NDArray[np.float32]]:
    """Pick ``count`` population states from recorded trajectories: rollout uniform, time
    with weight ``gamma^t`` (the discounted state distribution). Returns ``(s_g, s_l)``."""
    R, H, _ = positions.shape
    w = gamma ** np.arange(H)
    t = rng.choice(H, size=count, p=w / w.sum())
    r = rng.integers(R, size=count)
    return np.asarray(s_g[r, t], dtype=np.float64), positions[r, t]


def rollout_q_values(env: ContinuousWarehouse, pi_g: GlobalActor, pi_l: LocalActor, k: int,
                     s_g: NDArray[Any], s_l: NDArray[Any], rollout_len: int,
                     seed: np.random.SeedSequence | int) -> NDArray[np.float64]:
    """Monte-Carlo ``Q(s, a)`` for every global action ``a`` at each of the ``N`` states:
    force ``a`` at ``t = 0``, then follow ``(pi_g, pi_l)`` for ``rollout_len - 1`` steps;
    the ``|A_g|`` branches of a state share their random numbers. Shape ``(N, |A_g|)``."""
    N, A = s_g.shape[0], env.n_ag
    init = (np.tile(s_g, A), np.tile(s_l, (A, 1)))
    first = np.repeat(np.arange(A), N)
    tr = simulate(env, pi_g, pi_l, k, N * A, int(rollout_len), seed, init=init,
                  first_action=first, repeat=A)
    q = tr.discounted_returns(env.gamma)
    return q.reshape(A, N).T


def g_learn_rollout(agent: GlobalAgent, pi_l: LocalActor, s_g: NDArray[Any], s_l: NDArray[Any],
                    seed: np.random.SeedSequence, rollout_len: int = 10, hist_draws: int = 4,
                    epochs: int = 50, lr: float = 3e-3, grad_clip: float = 1.0,
                    continuation: GlobalAgent | None = None) -> dict[str, Any]:
    """General G-LEARN (no mode label): one rollout policy-iteration step (in place).

    ``s_g (N,)``, ``s_l (N, n)`` are the states to learn on (see :func:`harvest_states`);
    the branches follow ``continuation`` after their first step (default: the agent's
    network before the update); the agent's network is warm-started.
    """
    env = agent.env
    frozen = (continuation or agent).clone()
    ss_q, ss_h = child(seed, 0), child(seed, 1)
    q = rollout_q_values(env, frozen.actor(), pi_l, agent.k, s_g, s_l, rollout_len, ss_q)
    adv = (q - q.mean(axis=1, keepdims=True)) / env.r_max
    rng = np.random.default_rng(ss_h)
    N = s_g.shape[0]
    J = int(hist_draws)
    sg_rep = np.tile(s_g, J)
    sl_rep = np.tile(s_l, (J, 1))
    if agent.k == env.n:
        hist = env.bin_counts(sl_rep)
    else:
        keys = rng.random(sl_rep.shape, dtype=np.float32)
        idx = np.argpartition(keys, agent.k - 1, axis=1)[:, : agent.k]
        hist = env.bin_counts(np.take_along_axis(sl_rep, idx, axis=1))
    x = agent.features(sg_rep, hist)
    y = torch.from_numpy(np.tile(adv, (J, 1)).astype(np.float32))
    loss = _adam_fit(agent.net, lambda: nn.functional.mse_loss(agent.net(x), y),
                     epochs, lr, grad_clip)
    greedy_ok = float((agent.act(sg_rep, hist) == np.tile(np.argmax(q, axis=1), J)).mean())
    return {"method": "rollout", "loss": loss, "states": int(N), "hist_draws": J,
            "rollout_len": int(rollout_len),
            "agent_steps": int(N * env.n_ag * rollout_len * env.n),
            "q_spread": float(np.mean(q.max(axis=1) - q.min(axis=1))),
            "argmax_agreement": greedy_ok}


def mode_accuracy_at_reset(agent: GlobalAgent, samples: int = 1000, seed: int = 0) -> float:
    """Fraction of fresh initial states where the greedy action is the population-mode
    bin (the authors' "single-step mode accuracy")."""
    rng = np.random.default_rng(seed)
    s_g, hist, mode = reset_mode_samples(agent.env, agent.k, int(samples), rng)
    return float((agent.act(s_g, hist) == mode).mean())
