"""Neural L-LEARN: TRPO for the shared local policy (paper Appendix G.2, SPEC 8.2).

The local policy is an MLP (2 layers, 64 tanh units) on ``(s_l, s_g) / 2`` with a
categorical output over the three moves; the critic is the same architecture with one
output, ``V(s_l, s_g) = net(.) * r_l_amp / (1 - gamma)``.

Data: the full ``n``-robot system is simulated with the dispatcher fixed and *every*
robot drawing its action from the current shared policy (a policy in ``Pi_l`` is shared,
Definition 2.4). The robots are exchangeable, so each of ``tracked`` randomly chosen robots
per rollout is a representative agent: its ``(s_l, s_g)``, action and own local reward
``r_l`` are one sample path of the representative agent's problem (the paper tracks one
robot per episode; tracking many gives many correlated but valid samples at no extra
simulation cost). Returns are Monte-Carlo discounted sums of ``r_l``, bootstrapped with
the critic at the truncation horizon (``gae_lambda = 1``; GAE(lambda) optional);
advantages ``A = G - V`` are normalised to zero mean and unit variance.

Update (Schulman et al. 2015; paper G.2, Table 4): surrogate ``L(theta) =
mean(pi_theta(a|o) / pi_old(a|o) * A)``; ``g = grad L``; solve ``(F + damping I) x = g``
with ``cg_iters`` conjugate-gradient iterations, ``F`` the Hessian of the mean
``KL(pi_old || pi_theta)`` (Fisher-vector products by double back-propagation); full step
``sqrt(2 max_kl / x^T (F + damping I) x) x``; backtracking line search over
``backtrack_ratio^j`` (``j < backtracks``) accepting the first (largest) step that
improves ``L`` and keeps the KL below ``kl_accept * max_kl`` (1.5, as OpenAI baselines);
if none does, the policy is left unchanged. The critic is fitted separately by MSE with
Adam (gradient norm clipped at 1).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import Field
from torch import nn

from altmarl._random import child
from altmarl.continuous.env import ContinuousWarehouse, GlobalActor, LocalActor, simulate
from altmarl.continuous.nets import PolicyTable, forward_chunked, mlp, seeded_torch
from altmarl.settings import CheckedConfig


class TRPOConfig(CheckedConfig):
    """TRPO hyper-parameters (defaults: paper Table 4 where it gives them). Validated and
    frozen (:class:`altmarl.settings.CheckedConfig`): a bad value raises a ``ValueError``
    naming ``trpo.<field>``."""

    config_source: ClassVar[str] = "trpo"
    config_what: ClassVar[str] = "TRPO configuration"

    max_kl: float = Field(default=0.01, gt=0)
    cg_iters: int = Field(default=10, ge=1)
    damping: float = Field(default=0.1, ge=0)
    backtracks: int = Field(default=10, ge=1)
    backtrack_ratio: float = Field(default=0.5, gt=0, lt=1)
    kl_accept: float = Field(default=1.5, ge=1)
    gae_lambda: float = Field(default=1.0, ge=0, le=1)
    critic_lr: float = Field(default=3e-3, gt=0)
    #: 0: no critic training
    critic_epochs: int = Field(default=3, ge=0)
    critic_batch: int = Field(default=2048, ge=1)
    grad_clip: float = Field(default=1.0, ge=0)
    #: samples of the Fisher-vector products (0: the whole batch)
    fisher_samples: int = Field(default=1024, ge=0)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return self.model_dump()


class TRPOAgent(Protocol):
    """What :func:`trpo_step` and :func:`fit_critic` update: a categorical ``policy``
    network, a ``critic`` predicting ``V / value_scale``, and ``invalidate()`` (forget
    anything cached from the policy's weights). :class:`LocalAgent` (continuous warehouse)
    and :class:`altmarl.generative.neural_local.NeuralLocalPolicy` (any generative game)
    are two."""

    policy: nn.Sequential
    critic: nn.Sequential
    value_scale: float

    def invalidate(self) -> None:
        """Forget cached compilations of the policy."""
        ...


class LocalAgent:
    """Shared local policy (actor) and its critic."""

    def __init__(self, env: ContinuousWarehouse, hidden: int = 64, init_seed: int = 0,
                 table_grid: int = 401) -> None:
        self.env = env
        self.hidden = int(hidden)
        self.scale = max(abs(env.low), abs(env.high))
        self.value_scale = env.r_l_amp / (1.0 - env.gamma)
        self.table_grid = int(table_grid)
        with seeded_torch(init_seed):
            self.policy = mlp(2, env.n_al, hidden=self.hidden)
            self.critic = mlp(2, 1, hidden=self.hidden)
        # pi_l^0 uniform (SPEC 6): zero output layer; its greedy version is "stay" (ties go
        # to the lowest action)
        out = self.policy[-1]
        assert isinstance(out, nn.Linear)
        with torch.no_grad():
            out.weight.zero_()
            out.bias.zero_()
        self._table: PolicyTable | None = None

    # --- policy evaluation ------------------------------------------------------
    def obs(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> torch.Tensor:
        """Network input ``(s_l, s_g) / 2`` for ``s_l (R, m)``, ``s_g (R,)`` -> ``(R m, 2)``."""
        s_l = np.asarray(s_l, dtype=np.float32)
        sg = np.broadcast_to(np.asarray(s_g, dtype=np.float32).reshape(-1, 1), s_l.shape)
        x = np.stack([s_l, sg], axis=-1).reshape(-1, 2) / np.float32(self.scale)
        return torch.from_numpy(np.ascontiguousarray(x))

    def probs(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> NDArray[np.float64]:
        """Exact action probabilities of the network, shape ``s_l.shape + (|A_l|,)``."""
        logits = forward_chunked(self.policy, self.obs(s_l, s_g))
        p = torch.softmax(logits.double(), dim=1).numpy()
        return p.reshape(np.shape(s_l) + (self.env.n_al,))

    def table(self) -> PolicyTable:
        """The policy compiled to a bilinear table (cached until the policy changes)."""
        if self._table is None:
            self._table = PolicyTable(self.policy, self.env.low, self.env.high, self.env.n_al,
                                      grid=self.table_grid)
        return self._table

    def invalidate(self) -> None:
        """Forget the cached table (call after changing the policy weights)."""
        self._table = None

    def actor(self, greedy: bool, exact: bool = False) -> LocalActor:
        """The shared policy as a simulator callable: greedy or sampled; through the
        table (fast, default) or the network itself (``exact=True``)."""
        return _Actor(self, greedy, exact)

    def act(self, s_l: NDArray[Any], s_g: NDArray[Any], rng: np.random.Generator) -> NDArray[Any]:
        """The local-policy protocol of generative games (SPEC 11): the network's greedy
        actions (the evaluation protocol of ``run_continuous``; no random draws), so the
        agent acts on ``am.envs.make("continuous-warehouse")``; shape ``s_l.shape``."""
        a = self.actor(greedy=True, exact=True)(np.asarray(s_l, dtype=np.float32),
                                                np.asarray(s_g, dtype=np.float64), _NO_U)
        return np.asarray(a, dtype=np.int64)

    def clone(self) -> LocalAgent:
        """Deep copy of both networks (the game shared)."""
        out = copy.copy(self)
        out.policy = copy.deepcopy(self.policy)
        out.critic = copy.deepcopy(self.critic)
        out._table = None
        return out

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Weights of the policy and the critic."""
        return {"policy": {k: v.detach().clone() for k, v in self.policy.state_dict().items()},
                "critic": {k: v.detach().clone() for k, v in self.critic.state_dict().items()}}

    def load_state_dict(self, sd: dict[str, dict[str, torch.Tensor]]) -> None:
        """Load weights saved by :meth:`state_dict`."""
        self.policy.load_state_dict(sd["policy"])
        self.critic.load_state_dict(sd["critic"])
        self.invalidate()

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """Critic value of network inputs ``x (B, 2)``."""
        return self.critic(x).squeeze(-1) * self.value_scale


#: the uniforms a greedy actor ignores
_NO_U = np.zeros((1, 1), dtype=np.float32)


class _Actor:
    """Simulator callable of a :class:`LocalAgent` (see :meth:`LocalAgent.actor`)."""

    def __init__(self, agent: LocalAgent, greedy: bool, exact: bool) -> None:
        self.agent, self.greedy, self.exact = agent, bool(greedy), bool(exact)
        self.uses_uniforms = not self.greedy
        self.table = None if exact else agent.table()

    def __call__(self, s_l: NDArray[Any], s_g: NDArray[Any], u: NDArray[Any]) -> NDArray[Any]:
        if self.table is not None:
            if self.greedy:
                return self.table.greedy(s_l, s_g)
            return self.table.sample(s_l, s_g, u)
        logits = forward_chunked(self.agent.policy, self.agent.obs(s_l, s_g))
        if self.greedy:
            return np.asarray(torch.argmax(logits, dim=1).numpy().reshape(s_l.shape), dtype=np.int8)
        p = torch.softmax(logits.double(), dim=1).numpy()
        c = np.cumsum(p, axis=1)[:, :-1]
        a = (np.asarray(u, dtype=np.float64).reshape(-1, 1) > c).sum(axis=1)
        return np.asarray(a.reshape(s_l.shape), dtype=np.int8)


@dataclass
class Batch:
    """Representative-agent samples: inputs ``obs (B, 2)``, ``actions (B,)``,
    ``returns (B,)``, ``advantages (B,)`` (normalised) and bookkeeping."""

    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor
    advantages: torch.Tensor
    mean_local_return: float
    agent_steps: int


def collect(agent: LocalAgent, pi_g: GlobalActor, k: int, rollouts: int, horizon: int,
            tracked: int, seed: np.random.SeedSequence, gae_lambda: float = 1.0) -> Batch:
    """Simulate the ``n``-robot system (all robots on the current stochastic shared policy,
    through its table) and build a TRPO batch from ``tracked`` robots per rollout."""
    env = agent.env
    ss_sim, ss_track = child(seed, 0), child(seed, 1)
    rng = np.random.default_rng(ss_track)
    m = min(int(tracked), env.n)
    track = np.argsort(rng.random((rollouts, env.n)), axis=1)[:, :m]
    tr = simulate(env, pi_g, agent.actor(greedy=False), k, rollouts, horizon, ss_sim, track=track)
    assert tr.obs is not None and tr.actions is not None and tr.local_rewards is not None
    assert tr.last_obs is not None
    R, H = rollouts, horizon
    obs = torch.from_numpy(tr.obs.reshape(-1, 2) / np.float32(agent.scale))  # (R H m, 2)
    last = torch.from_numpy(tr.last_obs.reshape(-1, 2) / np.float32(agent.scale))
    with torch.inference_mode():
        v = agent.value(obs).numpy().reshape(R, H, m).astype(np.float64)
        v_last = agent.value(last).numpy().reshape(R, m).astype(np.float64)
    r = tr.local_rewards.astype(np.float64)
    ret, a = returns_and_advantages(r, v, v_last, env.gamma, gae_lambda)
    disc = env.gamma ** np.arange(H)
    return Batch(obs=obs, actions=torch.from_numpy(tr.actions.reshape(-1).astype(np.int64)),
                 returns=torch.from_numpy(ret.reshape(-1).astype(np.float32)),
                 advantages=torch.from_numpy(a.astype(np.float32)),
                 mean_local_return=float((r[:, :, :] * disc[None, :, None]).sum(1).mean()),
                 agent_steps=R * H * env.n)


def returns_and_advantages(r: NDArray[np.float64], v: NDArray[np.float64],
                           v_last: NDArray[np.float64], gamma: float, gae_lambda: float = 1.0
                           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Critic targets and normalised advantages of representative-agent paths.

    ``r`` and ``v`` ``(R, H, m)``: own rewards and critic values of ``m`` tracked agents per
    rollout, ``v_last`` ``(R, m)`` the critic at the truncation horizon (bootstrap).
    GAE(lambda) (``lambda = 1``: Monte-Carlo returns bootstrapped at the horizon):
    ``delta_t = r_t + gamma V_{t+1} - V_t``, ``A_t = delta_t + gamma lambda A_{t+1}``;
    returns ``(A + V, A normalised to zero mean and unit variance, flattened)``.
    """
    R, H, m = r.shape
    lam = float(gae_lambda)
    adv = np.empty((R, H, m))
    nxt_adv = np.zeros((R, m))
    for t in range(H - 1, -1, -1):
        v_next = v_last if t == H - 1 else v[:, t + 1]
        delta = r[:, t] + gamma * v_next - v[:, t]
        nxt_adv = delta + gamma * lam * nxt_adv
        adv[:, t] = nxt_adv
    ret = adv + v
    a = adv.reshape(-1)
    a = (a - a.mean()) / (a.std() + 1e-8)
    return ret, a


def _flat_params(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.data.reshape(-1) for p in net.parameters()])


def _set_flat_params(net: nn.Module, flat: torch.Tensor) -> None:
    i = 0
    for p in net.parameters():
        n = p.numel()
        p.data.copy_(flat[i:i + n].view_as(p))
        i += n


def _flat_grad(y: torch.Tensor, params: list[nn.Parameter], **kw: Any) -> torch.Tensor:
    grads = torch.autograd.grad(y, params, allow_unused=True, **kw)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])


def conjugate_gradient(avp: Any, b: torch.Tensor, iters: int, tol: float = 1e-10) -> torch.Tensor:
    """Solve ``A x = b`` for symmetric positive definite ``A`` given ``avp(v) = A v``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(int(iters)):
        if rr < tol:
            break
        Ap = avp(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def trpo_step(agent: TRPOAgent, batch: Batch, cfg: TRPOConfig,
              rng: np.random.Generator | None = None) -> dict[str, Any]:
    """One TRPO policy update on ``batch`` (in place); see the module docstring.

    The Fisher-vector products use a random subset of ``cfg.fisher_samples`` samples
    (0: all), a standard economy (the gradient and the line search use the whole batch).
    """
    policy = agent.policy
    params = [p for p in policy.parameters()]
    obs, act, adv = batch.obs, batch.actions, batch.advantages
    with torch.no_grad():
        old_logits = policy(obs)
        old_logp_all = torch.log_softmax(old_logits, dim=1)
        old_p = old_logp_all.exp()
        old_logp = old_logp_all.gather(1, act[:, None]).squeeze(1)

    def surrogate() -> torch.Tensor:
        logp = torch.log_softmax(policy(obs), dim=1).gather(1, act[:, None]).squeeze(1)
        return (torch.exp(logp - old_logp) * adv).mean()

    def mean_kl(sub: torch.Tensor | None = None) -> torch.Tensor:
        if sub is None:
            logp_all = torch.log_softmax(policy(obs), dim=1)
            return (old_p * (old_logp_all - logp_all)).sum(1).mean()
        logp_sub = torch.log_softmax(policy(obs[sub]), dim=1)
        return (old_p[sub] * (old_logp_all[sub] - logp_sub)).sum(1).mean()

    surr0 = surrogate()
    g = _flat_grad(surr0, params)
    B = obs.shape[0]
    sub = None
    if 0 < cfg.fisher_samples < B:
        r = rng if rng is not None else np.random.default_rng(0)
        sub = torch.from_numpy(np.sort(r.choice(B, size=cfg.fisher_samples, replace=False)))
    kl = mean_kl(sub)
    grad_kl = _flat_grad(kl, params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        hv = _flat_grad(grad_kl @ v, params, retain_graph=True)
        return hv + cfg.damping * v

    x = conjugate_gradient(fvp, g, cfg.cg_iters)
    shs = 0.5 * (x @ fvp(x))
    info: dict[str, Any] = {"surrogate_before": float(surr0.detach()), "accepted_step": None}
    if not torch.isfinite(shs) or shs <= 0:
        info["reason"] = "non-positive curvature"
        return info
    full = torch.sqrt(cfg.max_kl / shs) * x
    theta0 = _flat_params(policy).clone()
    s0 = float(surr0.detach())
    with torch.no_grad():
        for j in range(cfg.backtracks):
            frac = cfg.backtrack_ratio**j
            _set_flat_params(policy, theta0 + frac * full)
            s_new = float(surrogate())
            kl_new = float(mean_kl())
            if np.isfinite(s_new) and s_new > s0 and kl_new <= cfg.kl_accept * cfg.max_kl:
                info.update(accepted_step=frac, kl=kl_new, surrogate_after=s_new)
                break
        else:
            _set_flat_params(policy, theta0)
            info["reason"] = "line search failed"
    agent.invalidate()
    return info


def fit_critic(agent: TRPOAgent, batch: Batch, cfg: TRPOConfig, rng: np.random.Generator) -> float:
    """MSE regression of the critic on the batch returns with Adam (in place)."""
    if cfg.critic_epochs == 0:
        return float("nan")
    opt = torch.optim.Adam(agent.critic.parameters(), lr=cfg.critic_lr)
    B = batch.obs.shape[0]
    target = batch.returns / agent.value_scale
    loss_val = float("nan")
    for _ in range(cfg.critic_epochs):
        perm = torch.from_numpy(rng.permutation(B))
        for idx in perm.split(cfg.critic_batch):
            pred = agent.critic(batch.obs[idx]).squeeze(-1)
            loss = nn.functional.mse_loss(pred, target[idx])
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(agent.critic.parameters(), cfg.grad_clip)
            opt.step()
            loss_val = float(loss.detach())
    return loss_val


def l_learn_trpo(agent: LocalAgent, pi_g: GlobalActor, k: int, seed: np.random.SeedSequence,
                 iterations: int = 2, rollouts: int = 8, horizon: int = 50, tracked: int = 32,
                 cfg: TRPOConfig | None = None) -> dict[str, Any]:
    """L-LEARN proposal: ``iterations`` rounds of (collect, TRPO step, critic fit), in place."""
    cfg = cfg or TRPOConfig()
    steps = []
    agent_steps = 0
    for i in range(int(iterations)):
        ss_c, ss_f = child(seed, i, 0), child(seed, i, 1)
        batch = collect(agent, pi_g, k, rollouts, horizon, tracked, ss_c, cfg.gae_lambda)
        rng = np.random.default_rng(ss_f)
        info = trpo_step(agent, batch, cfg, rng)
        info["critic_loss"] = fit_critic(agent, batch, cfg, rng)
        info["mean_local_return"] = batch.mean_local_return
        info["samples"] = int(batch.obs.shape[0])
        steps.append(info)
        agent_steps += batch.agent_steps
    return {"method": "trpo", "iterations": steps, "agent_steps": agent_steps}
