"""Clustered federated learning under data drift, as a generative game (paper Example 2.6,
SPEC 8.3 and 11; docs/federated.md).

The server's best broadcast depends on where the client population is:

* **Data regimes.** ``C`` regimes (clusters) of scikit-learn's bundled ``load_digits``:
  regime ``c`` is the 8x8 images rotated by ``c * 90`` degrees (the rotated-digits set-up
  of clustered FL, Ghosh et al. 2020). A client's data stream comes from one regime at a
  time; every round its data switch to another regime (uniform among the other ``C - 1``)
  with probability ``drift``. Each episode starts from a random composition
  ``p ~ Dirichlet(mix_alpha * 1_C)``, every client's regime drawn from ``p``.
* **Models.** ``M = C + 1`` multinomial logistic regressions, really trained by FedAvg
  before deployment (:func:`make_drift_data`): one cluster model per regime (trained on
  pilot clients of that regime) and one global model (trained on the pilot clients of all
  regimes). Only the server can send them.
* **A round** (prequential: test, then train). The server offers one model (the global
  state ``s_g``, chosen by the previous global action: ``s_g' = a_g``). Client ``i`` in
  regime ``c_i`` holding model ``m_i`` (local state ``s_i = c_i * M + m_i``) either keeps
  its model (``a_i = 0``) or downloads the offered one (``a_i = 1``, one model transfer,
  cost ``transfer_cost``). It then receives a fresh batch of ``batch`` images of its
  regime (drawn from the deployment split) and its reward is the **real accuracy** of the
  model it now holds on that batch, minus its transfer cost. Then its data drift.
  ``r_g = 0``: the stage reward (SPEC eq. 1) is the mean client accuracy minus the mean
  communication cost.

The accuracy of every model on every image of every regime is computed once
(:attr:`DriftData.correct`, ``(M, C, P)`` booleans from the models' real predictions), so a
client's batch accuracy is a gather and a mean: the game's ``step`` *is* the deployment
simulator, vectorized over rollouts x clients, with no estimated table anywhere. The
FedAvg baselines, whose model changes every round, run in :mod:`altmarl.federated.drift_eval`
on the same images and the same exogenous draws.

Random numbers of one ``step`` (:func:`draw_exogenous`, one generator, in this order): the
batch indices ``(R, m, batch)``, the drift coins ``(R, m)``, the drift targets ``(R, m)``.
None depends on the actions, so every policy evaluated on the same stream sees the same
data and the same drift (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from altmarl._random import rng as child_rng
from altmarl.federated.simulator import N_CLASSES, load_digits_arrays, local_train
from altmarl.generative.game import GenerativeGame
from altmarl.settings import CheckedConfig

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: seed domains of :func:`make_drift_data` (SPEC 9)
SPLIT, PILOT = 0, 1


class DriftConfig(CheckedConfig):
    """The drifting federation, its models and the game (module docstring; SPEC 8.3).

    ``n_clients`` clients, ``regimes`` data regimes (rotations, 2..4), ``drift`` the
    per-round probability that a client's data switch regime, ``mix_alpha`` the Dirichlet
    concentration of an episode's initial composition, ``batch`` images per client and
    round, ``transfer_cost`` the cost of one model transfer (reward units: accuracy
    points), ``gamma`` and ``horizon`` (rounds). Pre-training: ``pilot_clients`` per regime
    with ``pilot_samples`` images each, ``pilot_rounds`` FedAvg rounds of ``local_steps``
    gradient steps (rate ``local_lr``, ridge ``l2``); ``deploy_fraction`` of the images form
    the deployment split that the clients' data streams come from (the rest trains the
    models). ``local_steps`` / ``local_lr`` are also the FedAvg baselines' local training.
    """

    config_what: ClassVar[str] = "federated drift configuration"

    n_clients: int = Field(default=100, ge=2, le=100_000)
    regimes: int = Field(default=4, ge=2, le=4)
    drift: float = Field(default=0.05, ge=0, le=1)
    mix_alpha: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    batch: int = Field(default=16, ge=1, le=1024)
    transfer_cost: float = Field(default=0.05, ge=0, le=10, allow_inf_nan=False)
    gamma: float = Field(default=0.9, ge=0, lt=1)
    horizon: int = Field(default=40, ge=1, le=10_000)
    pilot_clients: int = Field(default=20, ge=1, le=10_000)
    pilot_samples: int = Field(default=32, ge=1, le=4096)
    pilot_rounds: int = Field(default=30, ge=1, le=10_000)
    local_steps: int = Field(default=5, ge=1, le=1000)
    local_lr: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    l2: float = Field(default=1e-4, ge=0, allow_inf_nan=False)
    deploy_fraction: float = Field(default=0.5, gt=0, lt=1)

    @property
    def n_models(self) -> int:
        """``M = C + 1``: the cluster models and the global model (index ``C``)."""
        return self.regimes + 1

    @property
    def n_sl(self) -> int:
        """``|S_l| = C * M``: (regime, model held)."""
        return self.regimes * self.n_models

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> DriftConfig:
        """A copy with some fields changed (validated)."""
        return self.parse({**dict(self), **changes}, source="replace")


# ---------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------


def rotate_images(X: FloatArray, quarter_turns: int) -> FloatArray:
    """The 8x8 images of ``X`` (``(N, 65)``: 64 pixels and a bias column) rotated by
    ``quarter_turns * 90`` degrees; the bias column is kept."""
    im = np.rot90(X[:, :64].reshape(-1, 8, 8), int(quarter_turns), axes=(1, 2))
    return np.concatenate([im.reshape(-1, 64), X[:, 64:]], axis=1)


def one_hot(labels: IntArray) -> FloatArray:
    """``(N,) -> (N, 10)``."""
    Y = np.zeros((labels.size, N_CLASSES))
    Y[np.arange(labels.size), labels] = 1.0
    return Y


def fedavg_train(X: FloatArray, Y: FloatArray, W0: FloatArray, rounds: int, steps: int,
                 lr: float, l2: float) -> FloatArray:
    """FedAvg with full participation: ``rounds`` rounds in which every client (leading
    axis of ``X`` ``(b, m, d)``, ``Y`` ``(b, m, 10)``) runs ``steps`` gradient steps from the
    server model and the server averages (equal shard sizes); returns ``(d, 10)``."""
    W = np.array(W0, dtype=np.float64)
    Xt = np.ascontiguousarray(X.transpose(0, 2, 1))
    for _ in range(rounds):
        W = local_train(X, Y, W, steps, lr, l2, Xt).mean(axis=0)
    return W


@dataclass(frozen=True, eq=False)
class DriftData:
    """Images, models and their accuracies.

    ``X`` ``(C, P, 65)`` the deployment split under every regime, ``y`` ``(P,)`` labels,
    ``models`` ``(M, 65, 10)`` (cluster models ``0..C-1``, global model ``C``), ``correct``
    ``(M, C, P)`` whether model ``j`` classifies image ``p`` of regime ``c`` correctly,
    ``accuracy`` ``(M, C)`` its mean over ``p``; ``published`` ``(M, C)`` the accuracy of
    every model on the pilot clients' (pre-training) images of every regime, which the
    server publishes with its models (what a client can know before downloading).
    """

    X: FloatArray
    y: IntArray
    models: FloatArray
    correct: BoolArray
    published: FloatArray
    config: DriftConfig
    seed: int

    @property
    def accuracy(self) -> FloatArray:
        """``(M, C)``: accuracy of every model on every regime's deployment images."""
        return np.asarray(self.correct.mean(axis=2), dtype=np.float64)

    @property
    def pool(self) -> int:
        """``P``: images per regime in the deployment split."""
        return int(self.y.size)


def model_correct(models: FloatArray, X: FloatArray, y: IntArray) -> BoolArray:
    """``(M, C, P)``: ``argmax(X[c, p] @ models[j]) == y[p]`` (the models' real
    predictions)."""
    logits = np.einsum("cpd,jdk->jcpk", X, models)
    return np.asarray(logits.argmax(axis=-1) == y[None, None, :])


def make_drift_data(config: DriftConfig, seed: int = 0,
                    data: tuple[FloatArray, IntArray] | None = None) -> DriftData:
    """Split ``load_digits`` into a pre-training and a deployment split (seeded), train the
    ``C`` cluster models and the global model by FedAvg on pilot clients (shards of
    ``pilot_samples`` images drawn with replacement from the pre-training split, rotated by
    their regime), and tabulate their predictions on the deployment split."""
    cfg = config
    X, y = data if data is not None else load_digits_arrays()
    r_split = child_rng(int(seed), SPLIT)
    perm = r_split.permutation(X.shape[0])
    n_dep = int(round(cfg.deploy_fraction * X.shape[0]))
    dep, pre = perm[:n_dep], perm[n_dep:]
    r_pilot = child_rng(int(seed), PILOT)
    C, d = cfg.regimes, X.shape[1]
    shards_X, shards_Y = [], []
    models = np.zeros((cfg.n_models, d, N_CLASSES))
    for c in range(C):
        pick = pre[r_pilot.integers(0, pre.size, size=(cfg.pilot_clients, cfg.pilot_samples))]
        Xc = rotate_images(X[pick.ravel()], c).reshape(cfg.pilot_clients, cfg.pilot_samples, d)
        Yc = one_hot(y[pick.ravel()]).reshape(cfg.pilot_clients, cfg.pilot_samples, N_CLASSES)
        shards_X.append(Xc)
        shards_Y.append(Yc)
        models[c] = fedavg_train(Xc, Yc, np.zeros((d, N_CLASSES)), cfg.pilot_rounds,
                                 cfg.local_steps, cfg.local_lr, cfg.l2)
    models[C] = fedavg_train(np.concatenate(shards_X), np.concatenate(shards_Y),
                             np.zeros((d, N_CLASSES)), cfg.pilot_rounds, cfg.local_steps,
                             cfg.local_lr, cfg.l2)
    Xd = np.stack([rotate_images(X[dep], c) for c in range(C)])
    yd = np.asarray(y[dep], dtype=np.int64)
    published = np.stack([
        model_correct(models, shards_X[c].reshape(1, -1, d),
                      shards_Y[c].reshape(-1, N_CLASSES).argmax(axis=1))[:, 0].mean(axis=1)
        for c in range(C)], axis=1)
    return DriftData(X=Xd, y=yd, models=models, correct=model_correct(models, Xd, yd),
                     published=np.asarray(published, dtype=np.float64), config=cfg,
                     seed=int(seed))


# ---------------------------------------------------------------------------
# the law of one round
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Exogenous:
    """The action-independent draws of one round: ``batch`` ``(R, m, b)`` image indices,
    ``switch`` ``(R, m)`` drift coins, ``target`` ``(R, m)`` offsets ``1..C-1`` of the new
    regime."""

    batch: IntArray
    switch: BoolArray
    target: IntArray


def draw_exogenous(rng: np.random.Generator, R: int, m: int, config: DriftConfig,
                   pool: int) -> Exogenous:
    """One round's draws for ``R`` rollouts of ``m`` clients, in the order of the module
    docstring."""
    batch = rng.integers(0, pool, size=(R, m, config.batch), dtype=np.int64)
    switch = rng.random((R, m)) < config.drift
    target = rng.integers(1, max(config.regimes, 2), size=(R, m), dtype=np.int64)
    return Exogenous(batch, switch, target)


def split_state(s_l: IntArray, n_models: int) -> tuple[IntArray, IntArray]:
    """``s_l = c * M + m -> (c, m)``."""
    s = np.asarray(s_l, dtype=np.int64)
    return s // n_models, s % n_models


def drift_regimes(c: IntArray, ex: Exogenous, regimes: int) -> IntArray:
    """Next regimes: ``(c + target) mod C`` where the coin says so."""
    return np.where(ex.switch, (c + ex.target) % regimes, c)


def transition(data: DriftData, s_g: IntArray, s_l: IntArray, a_g: IntArray, a_l: IntArray,
               ex: Exogenous) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
    """One round of the deployment game (module docstring): ``(s_g', s_l', r_g, r_l,
    acc)`` with ``acc`` ``(R, m)`` the clients' batch accuracies; vectorized over rollouts
    and clients."""
    cfg = data.config
    M = cfg.n_models
    c, held = split_state(s_l, M)
    s_g = np.asarray(s_g, dtype=np.int64)
    download = np.asarray(a_l, dtype=np.int64) == 1
    held = np.where(download, s_g[:, None], held)
    acc = data.correct[held[..., None], c[..., None], ex.batch].mean(axis=-1)
    r_l = acc - cfg.transfer_cost * download
    c2 = drift_regimes(c, ex, cfg.regimes)
    s_l2 = c2 * M + held
    r_g = np.zeros(s_g.shape[0])
    return np.asarray(a_g, dtype=np.int64).copy(), s_l2, r_g, r_l, acc


def initial_state(rng: np.random.Generator, R: int, config: DriftConfig
                  ) -> tuple[IntArray, IntArray]:
    """``R`` initial states: composition ``p ~ Dirichlet(mix_alpha)``, regimes from ``p``,
    everybody holding the global model, which is on offer."""
    C, M, n = config.regimes, config.n_models, config.n_clients
    p = rng.dirichlet(np.full(C, config.mix_alpha), size=R)
    u = rng.random((R, n))
    c = np.minimum((np.cumsum(p, axis=1)[:, None, :] < u[..., None]).sum(axis=-1), C - 1)
    return np.full(R, C, dtype=np.int64), (c * M + C).astype(np.int64)


def drift_game(data: DriftData, check: str = "first") -> GenerativeGame:
    """The deployment game as an :class:`altmarl.GenerativeGame` (SPEC 11): ``|S_g| = |A_g|
    = M`` (the model on offer / to offer next), ``|S_l| = C M``, ``|A_l| = 2`` (keep,
    download); counts observation; reward bounds ``[-transfer_cost, 1]``."""
    cfg = data.config

    def reset(rng: np.random.Generator, R: int) -> tuple[IntArray, IntArray]:
        return initial_state(rng, R, cfg)

    def step(s_g: IntArray, s_l: IntArray, a_g: IntArray, a_l: IntArray,
             rng: np.random.Generator) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        R, m = np.shape(s_l)[:2]
        ex = draw_exogenous(rng, int(R), int(m), cfg, data.pool)
        g2, l2, r_g, r_l, _ = transition(data, s_g, s_l, a_g, a_l, ex)
        return g2, l2, r_g, r_l

    meta = {"federated_drift": cfg.to_json(), "data_seed": data.seed}
    return GenerativeGame(cfg.n_clients, cfg.gamma, cfg.n_models, 2, reset, step, "counts",
                          "federated-drift", num_global_states=cfg.n_models,
                          num_local_states=cfg.n_sl, r_max=1.0, r_min=-cfg.transfer_cost,
                          check=check, meta=meta)


def myopic_table(data: DriftData) -> FloatArray:
    """The myopic client rule as a deterministic ``(|S_l|, |S_g|, 2)`` table: download the
    offered model iff its published accuracy on the client's regime exceeds that of the
    model it holds by more than ``transfer_cost``."""
    cfg = data.config
    M = cfg.n_models
    c, held = split_state(np.arange(cfg.n_sl), M)
    gain = data.published[:, c].T - data.published[held, c][:, None]  # (S_l, S_g)
    down = gain > cfg.transfer_cost
    return np.stack([~down, down], axis=-1).astype(np.float64)


def state_labels(config: DriftConfig) -> list[str]:
    """Readable names of the local states, ``"regime 90deg, holds cluster 0"``."""
    C = config.regimes
    names = [f"cluster {j}" for j in range(C)] + ["global"]
    return [f"r{c * 90} holds {names[m]}" for c in range(C) for m in range(C + 1)]


__all__ = [
    "DriftConfig",
    "DriftData",
    "Exogenous",
    "draw_exogenous",
    "drift_game",
    "drift_regimes",
    "fedavg_train",
    "initial_state",
    "make_drift_data",
    "model_correct",
    "myopic_table",
    "one_hot",
    "rotate_images",
    "split_state",
    "state_labels",
    "transition",
]
