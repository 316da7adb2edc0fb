"""A federated-learning simulator that really trains a model (paper Example 2.6, SPEC 8.3).

A server holds a multinomial logistic-regression model ``W`` (65 x 10: 64 pixel features
plus a bias, 10 classes) for scikit-learn's bundled ``load_digits`` images (no download).
``n`` clients each hold a small non-IID shard of the training split; the server holds the
validation split. One *round*:

1. every client evaluates the broadcast model on its own shard (local loss ``L_i``); the
   server evaluates it on the validation split (``L_val``, accuracy);
2. the server picks a server step size ``eta = server_lrs[a_g]`` (the global action);
3. client ``i`` picks ``a_i``: ``local_steps[a_i]`` full-batch gradient steps from the
   broadcast model on its shard (``0`` = skip the round: no compute, no upload);
4. aggregation ``W <- W + (eta / |P|) sum_{i in P} (W_i - W)`` over the set ``P`` of
   clients that trained (no update when ``P`` is empty): FedAvg's average of the
   participants' models (equal shard sizes) with a server step ``eta`` (FedOpt, Reddi et
   al. 2021). With ``eta = 1`` this is plain FedAvg, whoever participates.

Everything is vectorized over clients: the shards form a ``(n, m, 65)`` tensor, local
training is batched matrix products (``np.matmul``) over all clients that run the same
number of steps (a loop over the few *step levels*, never over clients). Given the
actions the dynamics are deterministic (full-batch gradient descent); the randomness is
in the data split (seeded) and in the policies.

Observation (the game's states, see docs/federated.md):

* global state ``s_g``: the bucket of ``L_val`` on ``val_loss_edges`` (decreasing edges:
  ``s_g = #{e : L_val < e}``, so ``0`` is the untrained phase and ``len(edges)`` the
  converged phase);
* local state ``s_i``: the bucket of ``L_i / L_val`` on ``local_ratio_edges`` (``0`` = the
  client's data is fitted better than the validation set, last bucket = it lags behind).

Rewards (non-negative by construction, Assumption 2.2). Let ``progress = log L_val(t) -
log L_val(t+1)`` (relative progress), ``c_i = -<grad L_val(W), W_i - W>`` (0 when
client ``i`` skips) and ``credit_i = clip(progress_scale * eta * (n / |P|) * c_i / L_val,
-1, 1)``: client ``i``'s first-order share of the progress (unclipped, ``mean_i
credit_i`` over all ``n`` clients is the first-order prediction of ``progress_scale *
progress``). Then

* ``r_i = credit_i + 1 + c_max - cost_i`` with ``cost_i = upload_cost [a_i trains] +
  step_cost steps_i`` and ``c_max`` the largest cost;
* ``r_g = clip(c0 + progress_scale * progress - mean_i credit_i, 0, 2 c0)`` with ``c0 =
  reward_offset``: the part of the progress that the first-order attribution misses
  (curvature: overshooting server steps make it negative).

The stage reward is SPEC eq. (1), ``r_g + (1/n) sum_i r_i = c0 + 1 + c_max +
progress_scale * progress - mean_i cost_i`` whenever ``r_g`` is not clipped: progress
minus communication and compute cost, plus a constant.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator

from altmarl._validate import check_positive
from altmarl.settings import LISTS_AS_TUPLES, CheckedConfig

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

N_CLASSES = 10


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


#: a finite number > 0
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: a finite number >= 0
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: bucket edges: finite numbers > 0 (the order is checked per field)
Edges = Annotated[tuple[PositiveFloat, ...], LISTS_AS_TUPLES]


class FederatedConfig(CheckedConfig):
    """Configuration of the federation, the game it induces and the rewards (SPEC 8.3).

    Data: ``n_clients`` shards of ``samples_per_client`` images each, label skew
    ``Dirichlet(alpha)`` per client, ``val_fraction`` of the images kept by the server.
    Training: ``local_lr`` (gradient step on a client), ``l2`` (ridge penalty).
    Actions: ``server_lrs[a_g]`` and ``local_steps[a_l]`` (``0`` = skip the round).
    States: ``val_loss_edges`` (strictly decreasing) and ``local_ratio_edges`` (strictly
    increasing). Rewards: ``progress_scale``, ``reward_offset``, ``upload_cost``,
    ``step_cost``. ``gamma`` discounts rounds; ``horizon`` is the number of rounds.

    Validated and frozen (:class:`altmarl.settings.CheckedConfig`): a bad value raises a
    ``ValueError`` naming the key (``config: n_clients: ...``); lists are accepted for the
    tuple fields.
    """

    config_what: ClassVar[str] = "federated configuration"

    n_clients: int = Field(default=300, ge=2)
    samples_per_client: int = Field(default=24, ge=1)
    alpha: PositiveFloat = 0.3
    val_fraction: float = Field(default=0.25, gt=0, lt=1)
    local_lr: PositiveFloat = 1.0
    l2: NonNegativeFloat = 1e-4
    server_lrs: Annotated[tuple[PositiveFloat, ...], Field(min_length=1),
                          LISTS_AS_TUPLES] = (1.0, 2.0, 4.0)
    local_steps: Annotated[tuple[Annotated[int, Field(ge=0)], ...], Field(min_length=1),
                           LISTS_AS_TUPLES] = (0, 1, 5)
    val_loss_edges: Edges = (1.5, 0.9, 0.55, 0.35, 0.25)
    local_ratio_edges: Edges = (0.75, 1.25)
    progress_scale: PositiveFloat = 5.0
    reward_offset: PositiveFloat = 3.0
    upload_cost: NonNegativeFloat = 0.04
    step_cost: NonNegativeFloat = 0.01
    gamma: float = Field(default=0.95, ge=0, lt=1)
    horizon: int = Field(default=40, ge=1)

    @field_validator("val_loss_edges")
    @classmethod
    def _decreasing(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(b >= a for a, b in itertools.pairwise(v)):
            raise ValueError("expected strictly decreasing numbers")
        return v

    @field_validator("local_ratio_edges")
    @classmethod
    def _increasing(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("expected strictly increasing numbers")
        return v

    # --- sizes of the induced game -------------------------------------------
    @property
    def n_sg(self) -> int:
        """``|S_g|`` = number of validation-loss buckets."""
        return len(self.val_loss_edges) + 1

    @property
    def n_ag(self) -> int:
        """``|A_g|`` = number of server step sizes."""
        return len(self.server_lrs)

    @property
    def n_sl(self) -> int:
        """``|S_l|`` = number of local-loss-ratio buckets."""
        return len(self.local_ratio_edges) + 1

    @property
    def n_al(self) -> int:
        """``|A_l|`` = number of local-step settings."""
        return len(self.local_steps)

    @property
    def max_cost(self) -> float:
        """``c_max``: the largest per-round cost of a client (the reward offset)."""
        return self.upload_cost * any(s > 0 for s in self.local_steps) + self.step_cost * max(
            self.local_steps)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples as lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FederatedConfig:
        """Inverse of :meth:`to_json`; unknown keys raise ``ValueError``."""
        return cls.parse(d)

    def replace(self, **changes: Any) -> FederatedConfig:
        """A copy with some fields changed (validated)."""
        return self.parse({**dict(self), **changes}, source="replace")


# ---------------------------------------------------------------------------
# data: load_digits split non-IID across clients
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Federation:
    """The data of one federation.

    ``X`` ``(n, m, 65)`` client features (pixels / 16 plus a bias column), ``Y`` ``(n, m,
    10)`` one-hot labels, ``labels`` ``(n, m)``, ``label_dist`` ``(n, 10)`` the Dirichlet
    draw of each client; ``X_val`` ``(v, 65)``, ``y_val`` ``(v,)`` the server's split.
    """

    X: FloatArray
    Y: FloatArray
    labels: IntArray
    label_dist: FloatArray
    X_val: FloatArray
    y_val: IntArray
    seed: int
    Xt: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "Xt", np.ascontiguousarray(self.X.transpose(0, 2, 1)))

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[2])


def check_ks_within_clients(ks: tuple[int, ...], fed: Any) -> tuple[int, ...]:
    """``ks`` itself when every subsample size is at most ``fed.n_clients`` (``fed`` a
    :class:`FederatedConfig` or drift config; ``None``, when ``fed`` itself failed
    validation, checks nothing); the pydantic ``ks`` validator of the federated
    experiments."""
    if fed is not None and max(ks) > fed.n_clients:
        raise ValueError(f"expected integers in 1..n_clients = {fed.n_clients}")
    return ks


def load_digits_arrays() -> tuple[FloatArray, IntArray]:
    """``load_digits`` (ships with scikit-learn, no download): features in ``[0, 1]``
    with a bias column appended, and labels."""
    from sklearn.datasets import load_digits

    ds = load_digits()
    X = np.asarray(ds.data, dtype=np.float64) / 16.0
    X = np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)
    return X, np.asarray(ds.target, dtype=np.int64)


def make_federation(config: FederatedConfig, seed: int | np.random.SeedSequence = 0,
                    data: tuple[FloatArray, IntArray] | None = None,
                    iid: bool = False) -> Federation:
    """Split ``load_digits`` into a validation set and ``n`` non-IID client shards.

    Each client draws label proportions ``p_i ~ Dirichlet(alpha * 1_10)`` (label skew;
    ``iid=True``: ``p_i`` uniform), then ``samples_per_client`` labels from ``p_i`` and,
    for each, a training image of that class uniformly at random. ``load_digits`` has
    only 1797 images, so shards are drawn *with replacement* from the training split
    (clients may share images). Vectorized: no loop over clients.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    seed_int = int(seed) if not isinstance(seed, np.random.SeedSequence) else -1
    X, y = data if data is not None else load_digits_arrays()
    perm = rng.permutation(X.shape[0])
    n_val = int(round(config.val_fraction * X.shape[0]))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    tr_idx = tr_idx[np.argsort(y[tr_idx], kind="stable")]  # grouped by class
    class_count = np.bincount(y[tr_idx], minlength=N_CLASSES)
    if (class_count == 0).any():
        raise ValueError("data: every class needs at least one training image")
    class_start = np.concatenate([[0], np.cumsum(class_count)[:-1]])
    n, m = config.n_clients, config.samples_per_client
    if iid:
        p = np.full((n, N_CLASSES), 1.0 / N_CLASSES)
    else:
        p = rng.dirichlet(np.full(N_CLASSES, config.alpha), size=n)
        p /= p.sum(axis=1, keepdims=True)
    cdf = np.cumsum(p, axis=1)
    u = rng.random((n, m))
    labels = np.minimum((cdf[:, None, :] < u[..., None]).sum(axis=-1), N_CLASSES - 1)
    pick = class_start[labels] + np.floor(rng.random((n, m)) * class_count[labels]).astype(
        np.int64)
    idx = tr_idx[pick]
    Xc = X[idx]
    Yc = np.zeros((n, m, N_CLASSES))
    np.put_along_axis(Yc, labels[..., None], 1.0, axis=-1)
    return Federation(X=Xc, Y=Yc, labels=labels.astype(np.int64), label_dist=p,
                      X_val=X[val_idx], y_val=y[val_idx], seed=seed_int)


# ---------------------------------------------------------------------------
# model: multinomial logistic regression, batched over clients
# ---------------------------------------------------------------------------


def _log_softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=-1, keepdims=True)
    return np.asarray(z - np.log(np.exp(z).sum(axis=-1, keepdims=True)), dtype=np.float64)


def client_losses(fed: Federation, W: FloatArray, l2: float = 0.0) -> FloatArray:
    """Cross-entropy of the model ``W`` ``(65, 10)`` on every client's shard, ``(n,)``
    (plus ``l2/2 ||W||^2``)."""
    logp = _log_softmax(np.matmul(fed.X, W))  # (n, m, C)
    ce = -(logp * fed.Y).sum(axis=(1, 2)) / fed.X.shape[1]
    return np.asarray(ce + 0.5 * l2 * float(np.sum(W * W)), dtype=np.float64)


def val_metrics(fed: Federation, W: FloatArray) -> tuple[float, float]:
    """Validation cross-entropy and accuracy of ``W``."""
    logits = fed.X_val @ W
    logp = _log_softmax(logits)
    loss = -float(np.mean(logp[np.arange(fed.y_val.size), fed.y_val]))
    acc = float(np.mean(logits.argmax(axis=1) == fed.y_val))
    return loss, acc


def local_train(X: FloatArray, Y: FloatArray, W0: FloatArray, steps: int, lr: float,
                l2: float, Xt: FloatArray | None = None) -> FloatArray:
    """``steps`` full-batch gradient steps of regularized cross-entropy, batched over the
    leading axis: ``X`` ``(b, m, d)``, ``Y`` ``(b, m, C)``, ``W0`` ``(d, C)`` or ``(b, d,
    C)``; returns ``(b, d, C)``. ``Xt`` optionally gives ``X.transpose(0, 2, 1)``
    (contiguous). Batched matrix products: no loop over the ``b`` clients."""
    b, m, _ = X.shape
    if Xt is None:
        Xt = np.ascontiguousarray(X.transpose(0, 2, 1))
    W = np.broadcast_to(W0, (b, *W0.shape[-2:])).copy()
    for _ in range(steps):
        logits = np.matmul(X, W)
        logits -= logits.max(axis=-1, keepdims=True)
        P = np.exp(logits)
        P /= P.sum(axis=-1, keepdims=True)
        G = np.matmul(Xt, P - Y)
        G /= m
        G += l2 * W
        W -= lr * G
    return W


# ---------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------


@dataclass
class Observation:
    """What the system looks like at the start of a round.

    ``s_g`` global state; ``s_l`` ``(n,)`` local states; ``val_loss``, ``val_acc`` of the
    current model; ``local_loss`` ``(n,)`` (cross-entropy of the current model on each
    shard); ``round`` index.
    """

    s_g: int
    s_l: IntArray
    val_loss: float
    val_acc: float
    local_loss: FloatArray
    round: int


@dataclass
class RoundResult:
    """One round: the actions, the rewards and the next observation.

    ``r_g`` global reward; ``r_l`` ``(n,)`` local rewards; ``progress`` = ``L_val(t) -
    L_val(t+1)``; ``improvement`` ``(n,)`` = ``L_i(W) - L_i(W_i)`` (the client's own
    training progress, 0 for skipping clients); ``contribution`` ``(n,)`` = ``-<grad
    L_val(W), W_i - W>`` (0 for skipping clients); ``server_lr`` the step used;
    ``uploads`` number of clients that trained (model uploads); ``steps`` total local
    gradient steps; ``next`` the observation after the round.
    """

    a_g: int
    a_l: IntArray
    r_g: float
    r_l: FloatArray
    progress: float
    improvement: FloatArray
    contribution: FloatArray
    server_lr: float
    uploads: int
    steps: int
    next: Observation

    @property
    def reward(self) -> float:
        """Stage reward, SPEC eq. (1): ``r_g + (1/n) sum_i r_i``."""
        return float(self.r_g + self.r_l.mean())


@dataclass
class FederatedSimulator:
    """Runs rounds of federated training on a :class:`Federation` (module docstring).

    ``reset()`` starts from ``W = 0`` (every client's local loss is ``log 10``);
    ``step(a_g, a_l)`` runs one round.
    """

    config: FederatedConfig
    fed: Federation
    W: FloatArray = field(init=False)
    obs: Observation = field(init=False)

    @classmethod
    def make(cls, config: FederatedConfig | None = None, seed: int = 0,
             iid: bool = False) -> FederatedSimulator:
        """Build the federation (seeded split) and reset."""
        cfg = config or FederatedConfig()
        return cls(cfg, make_federation(cfg, seed, iid=iid))

    def __post_init__(self) -> None:
        if self.fed.n != self.config.n_clients:
            raise ValueError(f"fed: has {self.fed.n} clients, config.n_clients = "
                             f"{self.config.n_clients}")
        self.reset()

    @property
    def n(self) -> int:
        return self.fed.n

    def global_state(self, val_loss: float) -> int:
        """``s_g = #{e in val_loss_edges : L_val < e}``."""
        return int(np.sum(val_loss < np.asarray(self.config.val_loss_edges)))

    def local_states(self, local_loss: FloatArray, val_loss: float) -> IntArray:
        """``s_i = #{e in local_ratio_edges : L_i / L_val >= e}``."""
        ratio = local_loss / max(val_loss, 1e-12)
        return np.searchsorted(np.asarray(self.config.local_ratio_edges), ratio,
                               side="right").astype(np.int64)

    def observe(self, W: FloatArray, t: int) -> Observation:
        """The observation of model ``W`` at round ``t``."""
        vl, va = val_metrics(self.fed, W)
        ll = client_losses(self.fed, W)
        return Observation(self.global_state(vl), self.local_states(ll, vl), vl, va, ll, t)

    def reset(self) -> Observation:
        """Start again from the zero model."""
        self.W = np.zeros((self.fed.dim, N_CLASSES))
        self.obs = self.observe(self.W, 0)
        return self.obs

    def step(self, a_g: int, a_l: IntArray, server_lr: float | None = None) -> RoundResult:
        """One round with server step ``server_lrs[a_g]`` and client actions ``a_l`` ``(n,)``
        (``local_steps[a_l[i]]`` gradient steps; 0 = skip). Vectorized over clients.

        ``server_lr`` overrides ``server_lrs[a_g]``.
        """
        cfg = self.config
        a_l = np.asarray(a_l, dtype=np.int64)
        if a_l.shape != (self.n,):
            raise ValueError(f"a_l: expected shape ({self.n},), got {a_l.shape}")
        if a_l.size and (a_l.min() < 0 or a_l.max() >= cfg.n_al):
            raise ValueError(f"a_l: expected values in 0..{cfg.n_al - 1}")
        if not 0 <= int(a_g) < cfg.n_ag:
            raise ValueError(f"a_g = {a_g!r}: expected an integer in 0..{cfg.n_ag - 1}")
        eta = (float(cfg.server_lrs[int(a_g)]) if server_lr is None
               else check_positive("server_lr", server_lr))
        steps = np.asarray(cfg.local_steps, dtype=np.int64)[a_l]
        obs, fed, m = self.obs, self.fed, self.fed.X.shape[1]
        g_val = val_gradient(fed, self.W)
        delta_sum = np.zeros_like(self.W)
        improvement = np.zeros(self.n)
        contribution = np.zeros(self.n)
        for level in np.unique(steps):  # a loop over the few step levels, not over clients
            if level == 0:
                continue
            idx = np.flatnonzero(steps == level)
            Wi = local_train(fed.X[idx], fed.Y[idx], self.W, int(level), cfg.local_lr,
                             cfg.l2, fed.Xt[idx])
            D = Wi - self.W
            delta_sum += D.sum(axis=0)
            contribution[idx] = -np.einsum("bdc,dc->b", D, g_val)
            logp = _log_softmax(np.matmul(fed.X[idx], Wi))
            improvement[idx] = obs.local_loss[idx] + (logp * fed.Y[idx]).sum(axis=(1, 2)) / m
        uploads = int(np.count_nonzero(steps))
        if uploads:
            self.W = self.W + (eta / uploads) * delta_sum
        nxt = self.observe(self.W, obs.round + 1)
        # relative (log) progress of the validation loss and its first-order attribution
        progress = math.log(obs.val_loss) - math.log(nxt.val_loss)
        weight = eta * self.n / max(uploads, 1)
        credit = np.clip(cfg.progress_scale * weight * contribution / obs.val_loss, -1.0, 1.0)
        c0 = cfg.reward_offset
        r_g = float(np.clip(c0 + cfg.progress_scale * progress - credit.mean(), 0.0, 2 * c0))
        cost = cfg.upload_cost * (steps > 0) + cfg.step_cost * steps
        r_l = credit + 1.0 + cfg.max_cost - cost
        self.obs = nxt
        return RoundResult(int(a_g), a_l, r_g, r_l, float(progress), improvement, contribution,
                           eta, uploads, int(steps.sum()), nxt)


def val_gradient(fed: Federation, W: FloatArray) -> FloatArray:
    """Gradient of the validation cross-entropy at ``W``, ``(65, 10)``."""
    logits = fed.X_val @ W
    P = np.exp(_log_softmax(logits))
    P[np.arange(fed.y_val.size), fed.y_val] -= 1.0
    return np.asarray(fed.X_val.T @ P / fed.y_val.size, dtype=np.float64)


__all__ = [
    "FederatedConfig",
    "FederatedSimulator",
    "Federation",
    "Observation",
    "RoundResult",
    "check_ks_within_clients",
    "client_losses",
    "load_digits_arrays",
    "local_train",
    "make_federation",
    "val_gradient",
    "val_metrics",
]
