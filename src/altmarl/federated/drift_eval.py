"""The real deployment simulator of the drifting federation, with common random numbers
(paper Example 2.6, SPEC 3 and 8.3; docs/federated.md).

:func:`run_method` runs one method for ``R`` rollouts of ``horizon`` rounds on ``n``
clients, vectorized over rollouts x clients. Three random streams, all children of the
evaluation seed (SPEC 9): the **environment** (initial composition, then every round the
clients' batches and drift, :func:`altmarl.federated.drift.draw_exogenous`), the **server**
(its uniform ``k``-subsets without replacement, :func:`altmarl.generative.subsample_indices`;
FedAvg's sampled participants) and the **policies** (local actions of sampling policies).
The environment draws do not depend on the actions, so every method run with the same seed
sees the same clients, the same data and the same drift: differences between methods are
paired (common random numbers).

Methods (:class:`Method`):

* a **policy pair** of the game (``pi_g``, ``pi_l``; learned, fixed or the plug-in rule):
  paper Algorithm 5 on the model bank: every round the server draws ``k`` clients, reads the
  counts of their local states, offers ``pi_g.act(s_g, counts)`` next round; clients act with
  ``pi_l`` and the round is :func:`altmarl.federated.drift.transition`, the law of the game.
  ``full_info=True`` shows the server the counts of *all* clients, rescaled to ``k``
  (what a ``k``-policy would see if its sample were the population);
* **FedAvg** (``fedavg_k = None``: full participation; else ``k`` uniformly sampled
  clients): one model, starting from the pre-trained global model, that keeps training:
  every participant downloads it, is scored on its batch with it (test, then train), runs
  ``local_steps`` gradient steps on the batch and uploads; the server averages the
  uploads. A client that is not sampled keeps the version it last downloaded and is scored
  with it. Each participant pays ``2 * transfer_cost`` (download and upload).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl._random import rng as child_rng
from altmarl.federated.drift import (
    DriftData,
    draw_exogenous,
    drift_regimes,
    initial_state,
    split_state,
    transition,
)
from altmarl.federated.simulator import local_train
from altmarl.generative.game import GenerativeGame
from altmarl.generative.simulator import subsample_indices

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: child keys of an evaluation seed: environment, server, policies
ENV, SERVER, POLICY = 0, 1, 2


@dataclass
class Method:
    """One method to run: ``name``, ``family`` (``learned``, ``plugin``, ``fixed``,
    ``fedavg``), the ``k`` it polls or samples (``None`` for full participation or no
    polls), and either a policy pair or FedAvg (module docstring). ``polls = False``: a
    policy that ignores its sample (a constant offer); it is run the same way, but no polls
    are counted."""

    name: str
    family: str
    k: int | None = None
    pi_g: Any = None
    pi_l: Any = None
    fedavg: bool = False
    full_info: bool = False
    polls: bool = True
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodRun:
    """Per rollout and round: ``reward`` (mean client reward, SPEC eq. 1 with ``r_g = 0``),
    ``accuracy`` (mean client batch accuracy), ``transfers`` (model downloads + uploads),
    ``polls`` (clients whose state the server read)."""

    reward: FloatArray
    accuracy: FloatArray
    transfers: FloatArray
    polls: FloatArray

    def returns(self, gamma: float) -> FloatArray:
        """Discounted return per rollout."""
        return np.asarray(self.reward @ (gamma ** np.arange(self.reward.shape[1])))


def run_method(data: DriftData, game: GenerativeGame, method: Method, rollouts: int,
               horizon: int, seed: int) -> MethodRun:
    """Run ``method`` for ``rollouts`` x ``horizon`` rounds with evaluation seed ``seed``
    (module docstring)."""
    cfg = data.config
    R, H, n = int(rollouts), int(horizon), cfg.n_clients
    env, server, pol = (child_rng(int(seed), key) for key in (ENV, SERVER, POLICY))
    s_g, s_l = initial_state(env, R, cfg)
    out = MethodRun(*(np.zeros((R, H)) for _ in range(4)))
    rows = np.arange(R)[:, None]
    if method.fedavg:
        return _run_fedavg(data, method, s_l, env, server, out)
    k = int(method.pi_g.k)
    for t in range(H):
        ex = draw_exogenous(env, R, n, cfg, data.pool)
        if method.full_info:
            obs = game.observe(s_l) * (k / n)
            out.polls[:, t] = n * method.polls
        else:
            idx = subsample_indices(server, R, n, k)
            obs = game.observe(s_l[rows, idx])
            out.polls[:, t] = k * method.polls
        a_g = np.asarray(method.pi_g.act(s_g, obs), dtype=np.int64)
        a_l = np.asarray(method.pi_l.act(s_l, s_g, pol), dtype=np.int64)
        s_g, s_l, _, r_l, acc = transition(data, s_g, s_l, a_g, a_l, ex)
        out.reward[:, t] = r_l.mean(axis=1)
        out.accuracy[:, t] = acc.mean(axis=1)
        out.transfers[:, t] = (a_l == 1).sum(axis=1)
    return out


def _run_fedavg(data: DriftData, method: Method, s_l: IntArray, env: np.random.Generator,
                server: np.random.Generator, out: MethodRun) -> MethodRun:
    cfg = data.config
    R, H = out.reward.shape
    n, M = cfg.n_clients, cfg.n_models
    c, _ = split_state(s_l, M)
    d, K = data.models.shape[1:]
    b = cfg.batch
    hist = np.empty((R, H + 1, d, K))
    hist[:, 0] = data.models[cfg.regimes]  # the pre-trained global model
    version = np.zeros((R, n), dtype=np.int64)
    rows = np.arange(R)[:, None]
    kp = n if method.k is None else int(method.k)
    for t in range(H):
        ex = draw_exogenous(env, R, n, cfg, data.pool)
        part = (np.broadcast_to(np.arange(n), (R, n)) if method.k is None
                else subsample_indices(server, R, n, kp))
        version[rows, part] = t
        Xb = data.X[c[..., None], ex.batch]                       # (R, n, b, d)
        if method.k is None:  # everybody holds the current model
            logits = np.matmul(Xb.reshape(R, n * b, d), hist[:, t]).reshape(R, n, b, K)
        else:
            logits = np.matmul(Xb, hist[rows, version])            # (R, n, b, K)
        acc = (logits.argmax(axis=-1) == data.y[ex.batch]).mean(axis=-1)
        paid = np.zeros((R, n), dtype=bool)
        paid[rows, part] = True
        out.reward[:, t] = (acc - 2 * cfg.transfer_cost * paid).mean(axis=1)
        out.accuracy[:, t] = acc.mean(axis=1)
        out.transfers[:, t] = 2 * kp
        Xp = Xb[rows, part].reshape(R * kp, b, d)
        lab = data.y[ex.batch[rows, part]].reshape(R * kp, b)
        Yp = np.zeros((R * kp, b, K))
        np.put_along_axis(Yp, lab[..., None], 1.0, axis=-1)
        Wi = local_train(Xp, Yp, np.repeat(hist[:, t], kp, axis=0), cfg.local_steps,
                         cfg.local_lr, cfg.l2)
        hist[:, t + 1] = Wi.reshape(R, kp, d, K).mean(axis=1)
        c = drift_regimes(c, ex, cfg.regimes)
    return out


__all__ = ["ENV", "POLICY", "SERVER", "Method", "MethodRun", "run_method"]
