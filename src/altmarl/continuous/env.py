"""The continuous-state warehouse (paper Appendix G.2, SPEC 8.2) and its batched simulator.

States ``S_g = S_l = [-2, 2]``; the dispatcher (global agent) picks one of five targets
``tau = (-1.6, -0.8, 0, 0.8, 1.6)``; every robot (local agent) stays or moves by
``delta = (0, +0.05, -0.05)``::

    s_g' = clip(s_g + 0.6 (tau[a_g] - s_g) + N(0, 0.08^2), -2, 2)
    s_l' = clip(s_l + delta[a_l] + N(0, 0.04^2), -2, 2)
    r_g  = 5 exp(-(s_g - tau[a_g])^2 / (2 * 0.3^2))
    r_l  = 10 exp(-(s_l - s_g)^2 / (2 * 0.2^2)) - 5 |delta[a_l]|
    r    = r_g + (1/n) sum_i r_l(s_i, s_g, a_i)                       (SPEC eq. 1)

Initial state per rollout: ``s_g ~ U(-1, 1)``; two distinct bin centres ``c_main != c_sec``
drawn uniformly; ``int(0.55 n)`` robots at ``N(c_main, 0.18^2)``, the rest at
``N(c_sec, 0.18^2)``, clipped to ``[-2, 2]``. Histograms use 5 equal bins on ``[-2, 2]``
(right edge included in the last bin, as ``numpy.histogram``); the population mode is the
fullest bin (ties: lowest bin).

The simulator :func:`simulate` keeps the positions of all ``n`` robots of ``R`` rollouts
as an ``(R, n)`` array (no loop over agents). Every step draws, per rollout, a fresh
uniform ``k``-subset of the robots *without replacement* (SPEC 3): by default by giving
every robot a uniform key and taking the ``k`` smallest (``subsample="agents"``), or, in
distribution identically, by a multivariate hypergeometric draw from the bin counts
(``subsample="counts"``).

Common random numbers: the randomness comes from six independent streams spawned from
one seed (initial state, subsample keys, global noise, local noise, local-action
uniforms, global-action uniforms), each consuming a fixed number of draws per step
whatever the policies do (with ``subsample="agents"``). Two simulations with the same
seed but different policies therefore share initial states, noises and subsample indices
(the coupling used by the UPDATE comparisons of ALTERNATING-MARL). Seeds are split with
the side-effect-free :func:`altmarl._random.child`. This module needs only NumPy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from altmarl._random import child
from altmarl._validate import check_float, check_gamma, check_int, check_k, check_positive
from altmarl.simulate import subsample_histograms

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: names of the random streams, in spawn order (see module docstring)
STREAMS = ("init", "subsample", "global_noise", "local_noise", "local_action", "global_action")


@dataclass(frozen=True)
class ContinuousWarehouse:
    """Constants of the continuous warehouse (SPEC 8.2, paper Table 4).

    The defaults are exactly those of SPEC 8.2; every field is validated.
    """

    n: int = 500
    gamma: float = 0.95
    low: float = -2.0
    high: float = 2.0
    targets: tuple[float, ...] = (-1.6, -0.8, 0.0, 0.8, 1.6)
    moves: tuple[float, ...] = (0.0, 0.05, -0.05)
    steer: float = 0.6
    sigma_g: float = 0.08
    sigma_l: float = 0.04
    r_g_amp: float = 5.0
    r_g_width: float = 0.3
    r_l_amp: float = 10.0
    r_l_width: float = 0.2
    move_cost: float = 5.0
    n_bins: int = 5
    init_split: float = 0.55
    init_spread: float = 0.18
    init_sg_low: float = -1.0
    init_sg_high: float = 1.0
    name: str = field(default="continuous-warehouse", compare=False)

    def __post_init__(self) -> None:
        check_int("n", self.n, 2)
        check_gamma(self.gamma)
        if not float(self.low) < float(self.high):
            raise ValueError(f"low, high = {self.low!r}, {self.high!r}: expected low < high")
        if len(self.targets) < 2:
            raise ValueError(f"targets = {self.targets!r}: expected at least 2 global actions")
        if len(self.moves) < 1:
            raise ValueError(f"moves = {self.moves!r}: expected at least 1 local action")
        for nm in ("targets", "moves"):
            arr = np.asarray(getattr(self, nm), dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{nm} = {getattr(self, nm)!r}: expected finite numbers")
        if not 0.0 <= float(self.steer) <= 1.0:
            raise ValueError(f"steer = {self.steer!r}: expected a number in [0, 1]")
        for nm in ("sigma_g", "sigma_l", "r_g_width", "r_l_width", "init_spread"):
            check_positive(nm, getattr(self, nm))
        for nm in ("r_g_amp", "r_l_amp", "move_cost"):
            check_float(nm, getattr(self, nm), minimum=0)
        check_int("n_bins", self.n_bins, 2)
        if not 0.5 <= float(self.init_split) < 1.0:
            raise ValueError(f"init_split = {self.init_split!r}: expected a number in [0.5, 1)")
        if not self.low <= self.init_sg_low <= self.init_sg_high <= self.high:
            raise ValueError(
                f"init_sg_low, init_sg_high = {self.init_sg_low!r}, {self.init_sg_high!r}: "
                f"expected low <= init_sg_low <= init_sg_high <= high")

    # --- derived quantities ---------------------------------------------------
    @property
    def n_ag(self) -> int:
        """Number of global actions (targets)."""
        return len(self.targets)

    @property
    def n_al(self) -> int:
        """Number of local actions (moves)."""
        return len(self.moves)

    @cached_property
    def bin_edges(self) -> FloatArray:
        """The ``n_bins + 1`` equally spaced histogram edges on ``[low, high]``."""
        e = np.linspace(self.low, self.high, self.n_bins + 1)
        e.setflags(write=False)
        return e

    @cached_property
    def _inner_edges(self) -> dict[Any, NDArray[Any]]:
        # float32 positions are compared with the smallest float32 >= each float64 edge,
        # which gives exactly the comparison with the float64 edge
        e64 = np.ascontiguousarray(self.bin_edges[1:-1])
        e32 = e64.astype(np.float32)
        e32 = np.where(e32.astype(np.float64) < e64, np.nextafter(e32, np.float32(np.inf)), e32)
        return {np.dtype(np.float64): e64, np.dtype(np.float32): e32.astype(np.float32)}

    @property
    def bin_centres(self) -> FloatArray:
        """Centres of the histogram bins (with the defaults: the targets ``tau``)."""
        e = self.bin_edges
        return 0.5 * (e[:-1] + e[1:])

    @property
    def r_max(self) -> float:
        """Upper bound of the stage reward, ``r_g_amp + r_l_amp``."""
        return float(self.r_g_amp + self.r_l_amp)

    @property
    def r_min(self) -> float:
        """Lower bound of the stage reward, ``-move_cost max |delta|`` (negative: the
        Gaussian bumps are ``>= 0``, a move costs ``move_cost |delta|``)."""
        return -float(self.move_cost * np.max(np.abs(np.asarray(self.moves, dtype=np.float64))))

    def with_n(self, n: int) -> ContinuousWarehouse:
        """Same game with ``n`` robots."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["n"] = int(n)
        return ContinuousWarehouse(**d)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly constants."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["targets"] = list(self.targets)
        d["moves"] = list(self.moves)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ContinuousWarehouse:
        """Inverse of :meth:`to_json` (unknown keys rejected)."""
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"env: unknown fields {bad}; expected a subset of {sorted(known)}")
        dd = dict(d)
        for nm in ("targets", "moves"):
            if nm in dd:
                dd[nm] = tuple(float(x) for x in dd[nm])
        return cls(**dd)

    def fingerprint(self) -> str:
        """Short hash of the constants (to match checkpoints to games)."""
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def check_k(self, k: Any) -> int:
        """Validate a subsample size ``1 <= k <= n``."""
        return check_k(k, self.n)

    # --- model pieces -----------------------------------------------------------
    def bin_of(self, x: NDArray[Any]) -> IntArray:
        """Bin index of positions ``x``: bin ``i`` holds ``edges[i] <= x < edges[i+1]``, the
        last bin also ``x = high`` (exactly ``numpy.histogram``'s rule; values outside
        ``[low, high]`` go to the end bins)."""
        x = np.asarray(x)
        inner = self._inner_edges.get(x.dtype, self._inner_edges[np.dtype(np.float64)])
        return np.asarray(np.searchsorted(inner, x, side="right"), dtype=np.int64)

    def bin_counts(self, s_l: NDArray[Any]) -> IntArray:
        """Bin counts of every row of ``s_l`` (shape ``(R, m)`` -> ``(R, n_bins)``)."""
        s = np.atleast_2d(s_l)
        R = s.shape[0]
        b = self.bin_of(s) + self.n_bins * np.arange(R)[:, None]
        return np.bincount(b.ravel(), minlength=R * self.n_bins).reshape(R, self.n_bins)

    def population_mode(self, counts: IntArray) -> IntArray:
        """Fullest bin of each row of ``counts`` (ties: the lowest bin)."""
        return np.asarray(np.argmax(counts, axis=-1), dtype=np.int64)

    def r_g(self, s_g: FloatArray, a_g: IntArray) -> FloatArray:
        """``r_g = A_g exp(-(s_g - tau[a_g])^2 / (2 w_g^2))``."""
        tau = np.asarray(self.targets)[a_g]
        return np.asarray(self.r_g_amp * np.exp(-((s_g - tau) ** 2) / (2 * self.r_g_width**2)))

    def r_l(self, s_l: NDArray[Any], s_g: NDArray[Any], a_l: NDArray[Any]) -> NDArray[Any]:
        """``r_l = A_l exp(-(s_l - s_g)^2 / (2 w_l^2)) - c |delta[a_l]|`` (broadcasting)."""
        cost = self.move_cost * np.abs(np.asarray(self.moves, dtype=np.float64))[a_l]
        align = self.r_l_amp * np.exp(-((s_l - s_g) ** 2) / (2 * self.r_l_width**2))
        return np.asarray(align - cost)

    def step_global(self, s_g: FloatArray, a_g: IntArray, noise: FloatArray) -> FloatArray:
        """``clip(s_g + steer (tau[a_g] - s_g) + sigma_g * noise)`` (``noise`` standard normal)."""
        tau = np.asarray(self.targets)[a_g]
        return np.clip(s_g + self.steer * (tau - s_g) + self.sigma_g * noise, self.low, self.high)

    def step_local(self, s_l: NDArray[Any], a_l: NDArray[Any], noise: NDArray[Any]) -> NDArray[Any]:
        """``clip(s_l + delta[a_l] + sigma_l * noise)`` (``noise`` standard normal)."""
        d = np.asarray(self.moves, dtype=s_l.dtype)[a_l]
        out = s_l + d
        out += (self.sigma_l * noise).astype(s_l.dtype, copy=False)
        return np.clip(out, self.low, self.high, out=out)

    def reset(self, rng: np.random.Generator, rollouts: int) -> tuple[FloatArray, FloatArray]:
        """Initial states of ``rollouts`` rollouts: ``s_g (R,)`` and positions ``(R, n)``."""
        R = int(rollouts)
        s_g = rng.uniform(self.init_sg_low, self.init_sg_high, size=R)
        keys = rng.random((R, self.n_bins))
        pair = np.argsort(keys, axis=1)[:, :2]  # two distinct bins, uniformly
        centres = self.bin_centres[pair]  # (R, 2)
        n_main = int(self.init_split * self.n)
        which = np.zeros(self.n, dtype=np.int64)
        which[n_main:] = 1
        c = centres[:, which]  # (R, n)
        s_l = np.clip(c + self.init_spread * rng.standard_normal((R, self.n)), self.low, self.high)
        return s_g, s_l

    def init_bin_probs(self) -> FloatArray:
        """``P[c, b]``: probability that a robot of the cluster centred on bin ``c`` starts in
        bin ``b`` (normal with sd ``init_spread``, clipped to ``[low, high]``)."""
        e = self.bin_edges
        z = (e[None, 1:-1] - self.bin_centres[:, None]) / self.init_spread  # inner edges
        cdf = np.concatenate([np.zeros((self.n_bins, 1)), ndtr(z), np.ones((self.n_bins, 1))],
                             axis=1)
        return np.diff(cdf, axis=1)

    def reset_counts(self, rng: np.random.Generator, rollouts: int) -> tuple[FloatArray, IntArray]:
        """Initial ``s_g (R,)`` and bin counts ``(R, n_bins)`` without positions: the same law
        as :meth:`reset` followed by :meth:`bin_counts` (a sum of two multinomials)."""
        R = int(rollouts)
        s_g = rng.uniform(self.init_sg_low, self.init_sg_high, size=R)
        keys = rng.random((R, self.n_bins))
        pair = np.argsort(keys, axis=1)[:, :2]
        P = self.init_bin_probs()
        n_main = int(self.init_split * self.n)
        counts = (rng.multinomial(n_main, P[pair[:, 0]])
                  + rng.multinomial(self.n - n_main, P[pair[:, 1]]))
        return s_g, np.asarray(counts, dtype=np.int64)


# ---------------------------------------------------------------------------
# policies seen by the simulator
# ---------------------------------------------------------------------------


class GlobalActor(Protocol):
    """``a_g = pi_g(s_g, h)`` for a batch: ``s_g (R,)``, ``hist (R, n_bins)`` counts of the
    ``k`` sampled robots, ``u (R,)`` uniforms (for stochastic policies) -> ``a_g (R,)``."""

    def __call__(self, s_g: FloatArray, hist: IntArray, k: int, u: FloatArray) -> IntArray: ...


class LocalActor(Protocol):
    """Shared local policy for a batch: ``s_l (R, n)``, ``s_g (R,)``, uniforms ``u (R, n)``
    -> ``a_l (R, n)`` ints. A deterministic actor may carry ``uses_uniforms = False``; the
    simulator then skips drawing ``u`` (other streams are unaffected)."""

    def __call__(self, s_l: NDArray[Any], s_g: FloatArray, u: NDArray[Any]) -> IntArray: ...


def random_global(n_ag: int) -> GlobalActor:
    """Uniformly random dispatcher (ignores its observation)."""

    def act(s_g: FloatArray, hist: IntArray, k: int, u: FloatArray) -> IntArray:
        return np.minimum((u * n_ag).astype(np.int64), n_ag - 1)

    return act


def random_local(n_al: int) -> LocalActor:
    """Uniformly random robots."""

    def act(s_l: NDArray[Any], s_g: FloatArray, u: NDArray[Any]) -> IntArray:
        return np.minimum((u * n_al).astype(np.int64), n_al - 1)

    return act


def constant_global(action: int) -> GlobalActor:
    """Dispatcher that always picks ``action``."""

    def act(s_g: FloatArray, hist: IntArray, k: int, u: FloatArray) -> IntArray:
        return np.full(s_g.shape[0], int(action), dtype=np.int64)

    return act


def mode_global() -> GlobalActor:
    """Dispatcher that points at the fullest bin of its sample (ties: lowest bin)."""

    def act(s_g: FloatArray, hist: IntArray, k: int, u: FloatArray) -> IntArray:
        return np.asarray(np.argmax(hist, axis=1), dtype=np.int64)

    return act


# ---------------------------------------------------------------------------
# simulator
# ---------------------------------------------------------------------------


@dataclass
class ContinuousTrajectories:
    """Records of :func:`simulate` (``R`` rollouts, horizon ``H``, ``B`` bins).

    ``rewards (R, H)`` stage rewards; ``s_g (R, H)`` and ``a_g (R, H)``; ``counts (R, H, B)``
    bin counts of the population *before* each step; ``mode_match (R, H)`` whether ``a_g``
    is the current population mode; ``initial_mode (R,)``; optional ``positions
    (R, H, n)`` (float32); optional tracked-robot records ``obs (R, H, m, 2)`` =
    ``(s_l, s_g)``, ``actions (R, H, m)``, ``local_rewards (R, H, m)`` and the final
    ``last_obs (R, m, 2)``; ``hists (R, H, B)`` the sampled histograms.
    """

    rewards: FloatArray
    s_g: FloatArray
    a_g: IntArray
    counts: IntArray
    hists: IntArray
    mode_match: NDArray[np.bool_]
    initial_mode: IntArray
    final_s_g: FloatArray
    final_s_l: NDArray[Any] | None = None
    positions: NDArray[np.float32] | None = None
    obs: NDArray[np.float32] | None = None
    actions: IntArray | None = None
    local_rewards: NDArray[np.float32] | None = None
    last_obs: NDArray[np.float32] | None = None

    def discounted_returns(self, gamma: float, horizon: int | None = None) -> FloatArray:
        """``sum_{t < horizon} gamma^t r_t`` per rollout (default: the whole horizon)."""
        H = self.rewards.shape[1] if horizon is None else int(horizon)
        if not 1 <= H <= self.rewards.shape[1]:
            raise ValueError(f"horizon = {horizon!r}: expected 1..{self.rewards.shape[1]}")
        disc = gamma ** np.arange(H)
        return np.asarray(self.rewards[:, :H] @ disc, dtype=np.float64)


def streams(seed: int | np.random.SeedSequence | None) -> dict[str, np.random.Generator]:
    """The six independent generators of one simulation (see module docstring); a pure
    function of ``seed``."""
    return {name: np.random.default_rng(child(seed, i)) for i, name in enumerate(STREAMS)}


def subsample_histogram(env: ContinuousWarehouse, s_l: NDArray[Any], k: int,
                        rng: np.random.Generator, method: str = "agents", repeat: int = 1,
                        counts: IntArray | None = None) -> IntArray:
    """Bin counts ``(R, n_bins)`` of a uniform ``k``-subset of the robots of each row of
    ``s_l (R, n)``, drawn without replacement (SPEC 3).

    ``method="agents"``: every robot gets a uniform key, the ``k`` smallest are taken (the
    keys of the first ``R / repeat`` rows are reused for the other groups of rows, so
    branches of the same state see the same robots); ``"counts"``: multivariate
    hypergeometric draw from the bin counts (same law, cheaper, no coupling across rows).
    With ``k = n`` the histogram is the population's bin counts.
    """
    R, n = s_l.shape
    if counts is None:
        counts = env.bin_counts(s_l)
    if k == n:
        return np.array(counts, dtype=np.int64, copy=True)
    if method == "counts":
        return subsample_histograms(counts, k, rng)
    if method != "agents":
        raise ValueError(f"method = {method!r}: expected 'agents' or 'counts'")
    R0 = R // repeat
    keys = rng.random((R0, n))
    if repeat > 1:
        keys = np.tile(keys, (repeat, 1))
    if k == 1:
        idx = np.argmin(keys, axis=1)[:, None]
    else:
        idx = np.argpartition(keys, k - 1, axis=1)[:, :k]
    return env.bin_counts(np.take_along_axis(s_l, idx, axis=1))


def simulate(
    env: ContinuousWarehouse,
    pi_g: GlobalActor,
    pi_l: LocalActor,
    k: int,
    rollouts: int,
    horizon: int,
    seed: int | np.random.SeedSequence | None,
    *,
    subsample: str = "agents",
    init: tuple[FloatArray, NDArray[Any]] | None = None,
    first_action: IntArray | None = None,
    repeat: int = 1,
    track: IntArray | None = None,
    record_positions: bool = False,
    dtype: type = np.float32,
    on_step: Callable[[int], None] | None = None,
) -> ContinuousTrajectories:
    """Online execution (paper Algorithm 5, SPEC 3) of the continuous warehouse, batched.

    Parameters
    ----------
    pi_g, pi_l
        Batch policies (:class:`GlobalActor`, :class:`LocalActor`).
    k
        Subsample size, ``1 <= k <= n``; with ``k = n`` the dispatcher sees the whole
        population.
    rollouts, horizon
        ``R`` rollouts of ``H`` steps.
    seed
        Drives every draw through six streams (common random numbers across policies).
    subsample
        ``"agents"`` (uniform keys, the ``k`` smallest: a uniform ``k``-subset without
        replacement; best coupling) or ``"counts"`` (multivariate hypergeometric on the
        bin counts; same law).
    init
        Start from ``(s_g (R,), s_l (R, n))`` instead of the initial distribution.
    first_action
        Force ``a_g`` at ``t = 0`` (rollout Q-estimates).
    repeat
        Draw the randomness for ``R / repeat`` rows and reuse it for each of the
        ``repeat`` groups of rows (row ``j R0 + i`` shares noise with row ``i``).
    track
        ``(R, m)`` robot indices whose ``(s_l, s_g)``, action and local reward are recorded.
    record_positions
        Keep every robot's position before every step (``(R, H, n)`` float32).
    dtype
        Floating type of the positions (float32 default: the simulator is memory-bound).
    """
    k = env.check_k(k)
    if subsample not in ("agents", "counts"):
        raise ValueError(f"subsample = {subsample!r}: expected 'agents' or 'counts'")
    for nm, v in (("rollouts", rollouts), ("horizon", horizon), ("repeat", repeat)):
        check_int(nm, v, 1)
    R, H, n, B = int(rollouts), int(horizon), env.n, env.n_bins
    if R % repeat:
        raise ValueError(f"repeat = {repeat}: expected a divisor of rollouts = {R}")
    R0 = R // repeat
    rng = streams(seed)

    def tile(x: NDArray[Any]) -> NDArray[Any]:
        return np.tile(x, (repeat,) + (1,) * (x.ndim - 1)) if repeat > 1 else x

    if init is None:
        s_g0, s_l0 = env.reset(rng["init"], R0)
        s_g = tile(s_g0)
        s_l: NDArray[Any] = tile(s_l0).astype(dtype)
    else:
        s_g = np.array(init[0], dtype=np.float64).reshape(-1)
        s_l = np.array(init[1], dtype=dtype)
        if s_g.shape != (R,) or s_l.shape != (R, n):
            raise ValueError(f"init: expected shapes ({R},) and ({R}, {n}), got "
                             f"{s_g.shape} and {s_l.shape}")
    if first_action is not None:
        first_action = np.asarray(first_action, dtype=np.int64).reshape(-1)
        if first_action.shape != (R,):
            raise ValueError(f"first_action: expected shape ({R},), got {first_action.shape}")
    m = 0
    if track is not None:
        track = np.asarray(track, dtype=np.int64)
        if track.ndim != 2 or track.shape[0] != R or track.min() < 0 or track.max() >= n:
            raise ValueError(f"track: expected an ({R}, m) array of indices in 0..{n - 1}")
        m = track.shape[1]

    rewards = np.empty((R, H))
    sg_rec = np.empty((R, H))
    ag_rec = np.empty((R, H), dtype=np.int64)
    counts_rec = np.empty((R, H, B), dtype=np.int64)
    hist_rec = np.empty((R, H, B), dtype=np.int64)
    positions = np.empty((R, H, n), dtype=np.float32) if record_positions else None
    obs = np.empty((R, H, m, 2), dtype=np.float32) if m else None
    acts = np.empty((R, H, m), dtype=np.int64) if m else None
    lrew = np.empty((R, H, m), dtype=np.float32) if m else None
    moves_abs = env.move_cost * np.abs(np.asarray(env.moves))
    initial_mode = np.zeros(R, dtype=np.int64)
    uses_u = bool(getattr(pi_l, "uses_uniforms", True))
    zeros_u = np.zeros((1, 1), dtype=np.float32)
    for t in range(H):
        counts = env.bin_counts(s_l)
        if t == 0:
            initial_mode = env.population_mode(counts)
        counts_rec[:, t] = counts
        sg_rec[:, t] = s_g
        if positions is not None:
            positions[:, t] = s_l
        hist = subsample_histogram(env, s_l, k, rng["subsample"], subsample, repeat, counts)
        hist_rec[:, t] = hist
        u_g = tile(rng["global_action"].random(R0))
        if t == 0 and first_action is not None:
            a_g = first_action
        else:
            a_g = np.asarray(pi_g(s_g, hist, k, u_g), dtype=np.int64)
        ag_rec[:, t] = a_g
        if uses_u:
            u_l = tile(rng["local_action"].random((R0, n), dtype=np.float32))
        else:  # deterministic local policy: its stream is not consumed (streams independent)
            u_l = zeros_u
        a_l = np.asarray(pi_l(s_l, s_g, u_l))
        # stage reward (SPEC eq. 1), state before the step
        diff = s_l - s_g[:, None].astype(dtype)
        align = np.exp(diff * diff * np.asarray(-1.0 / (2 * env.r_l_width**2), dtype=dtype))
        r_loc = env.r_l_amp * align.mean(axis=1, dtype=np.float64) - moves_abs[a_l].mean(axis=1)
        rewards[:, t] = env.r_g(s_g, a_g) + r_loc
        if m:
            assert obs is not None and acts is not None and lrew is not None and track is not None
            sl_tr = np.take_along_axis(s_l, track, axis=1)
            obs[:, t, :, 0] = sl_tr
            obs[:, t, :, 1] = s_g[:, None]
            acts[:, t] = np.take_along_axis(a_l, track, axis=1)
            lrew[:, t] = (env.r_l_amp * np.take_along_axis(align, track, axis=1)
                          - moves_abs[acts[:, t]])
        # transitions (both use the state before the step, SPEC 1)
        g_noise = tile(rng["global_noise"].standard_normal(R0))
        l_noise = tile(rng["local_noise"].standard_normal((R0, n), dtype=np.float32))
        s_l = env.step_local(s_l, a_l, l_noise)
        s_g = env.step_global(s_g, a_g, g_noise)
        if on_step is not None:
            on_step(t)
    counts_final = counts_rec
    mode_match = ag_rec == np.argmax(counts_final, axis=2)
    last_obs = None
    if m:
        assert track is not None
        last_obs = np.empty((R, m, 2), dtype=np.float32)
        last_obs[:, :, 0] = np.take_along_axis(s_l, track, axis=1)
        last_obs[:, :, 1] = s_g[:, None]
    return ContinuousTrajectories(
        rewards=rewards, s_g=sg_rec, a_g=ag_rec, counts=counts_rec, hists=hist_rec,
        mode_match=mode_match, initial_mode=initial_mode, final_s_g=s_g, final_s_l=s_l,
        positions=positions, obs=obs, actions=acts, local_rewards=lrew, last_obs=last_obs)
