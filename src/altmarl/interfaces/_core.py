"""NumPy-only building blocks shared by the Gymnasium and PettingZoo environments.

A single-rollout view of the count simulator's step (SPEC 3,
:func:`altmarl.simulate.count_step`, the step :func:`altmarl.simulate.rollout_counts` runs),
plus the validation of what environments receive (actions, an initial state) and the
observation encoders. Nothing here imports gymnasium or pettingzoo, so
this module is importable (and testable) without the optional extras.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl._validate import check_choice
from altmarl.game import TabularGame
from altmarl.histogram import num_histograms
from altmarl.policies import LocalPolicy
from altmarl.sampling import Scheme, Uniform
from altmarl.simulate import CountStep, count_step, multinomial_moves, step_tables

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: observation encodings of the global agent's ``(s_g, h)``
GLOBAL_OBS_MODES = ("dict", "multidiscrete", "discrete", "box")
#: observation encodings of a local agent's ``(s_l, s_g)``
LOCAL_OBS_MODES = ("multidiscrete", "discrete", "box")


def check_action(name: str, action: Any, n: int) -> int:
    """An action index in ``0..n-1`` (NumPy scalars and 0-d/1-element arrays accepted)."""
    arr = np.asarray(action)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name} = {action!r}: expected an integer in 0..{n - 1}")
    a = int(arr.reshape(()))
    if not 0 <= a < n:
        raise ValueError(f"{name} = {a}: expected an integer in 0..{n - 1}")
    return a


def check_initial_state(game: TabularGame, init: Any) -> tuple[int, IntArray]:
    """``options={"init": (s_g, counts)}``: a fixed initial state, validated."""
    try:
        s_g_raw, counts_raw = init
    except (TypeError, ValueError):
        raise ValueError("options['init']: expected a pair (s_g, counts)") from None
    s_g = check_action("options['init'] s_g", s_g_raw, game.n_sg)
    counts = np.asarray(counts_raw)
    if counts.shape != (game.n_sl,) or counts.dtype.kind not in "iu":
        raise ValueError(
            f"options['init'] counts: expected {game.n_sl} non-negative integers, "
            f"got {counts_raw!r}"
        )
    if counts.min() < 0 or counts.sum() != game.n:
        raise ValueError(
            f"options['init'] counts = {counts.tolist()}: expected non-negative integers "
            f"summing to n = {game.n}"
        )
    return s_g, counts.astype(np.int64)


class CountStepper:
    """Single-rollout count-simulator step for a fixed shared local policy (SPEC 3).

    Holds the :func:`~altmarl.simulate.step_tables` of ``(game, pi_l)`` and runs
    :func:`~altmarl.simulate.count_step` on one row, so an environment step has exactly the
    law (and, for the same draws, the numbers) of :func:`altmarl.simulate.rollout_counts`.
    """

    def __init__(self, game: TabularGame, pi_l: LocalPolicy) -> None:
        self.game = game
        self.tables = step_tables(game, pi_l.table)
        self._cdf_l = np.cumsum(game.P_l, axis=-1)  # (S_l, S_g, A_l, S_l)

    def moves(self, s_g: int, counts: IntArray, rng: np.random.Generator) -> IntArray:
        """The population move of one step (:func:`~altmarl.simulate.multinomial_moves`,
        one row): ``M[0, x, a * |S_l| + x']``."""
        return multinomial_moves(self.tables.joint, np.array([s_g]),
                                 np.asarray(counts, dtype=np.int64)[None, :], rng)

    def step(self, s_g: int, counts: IntArray, a_g: int, rng: np.random.Generator,
             moves: IntArray | None = None) -> CountStep:
        """One :func:`~altmarl.simulate.count_step` of the population ``counts`` (one row):
        draws the move (unless ``moves`` is given), then ``s_g'`` from ``rng``."""
        return count_step(self.tables, np.array([s_g]), np.asarray(counts, np.int64)[None, :],
                          np.array([a_g]), rng, moves=moves)

    def local_next(self, s_l: int, s_g: int, a_l: int, rng: np.random.Generator) -> int:
        """``s_l' ~ P_l(. | s_l, s_g, a_l)`` for one agent."""
        return _draw(self._cdf_l[s_l, s_g, a_l], rng)


def _draw(cdf: FloatArray, rng: np.random.Generator) -> int:
    x = int(np.searchsorted(cdf, rng.random(), side="right"))
    return min(x, cdf.size - 1)


def draw_representative(counts: IntArray, rng: np.random.Generator) -> int:
    """The state of one agent picked uniformly from a population (``counts[x] / n``)."""
    c = np.asarray(counts, dtype=np.float64)
    return _draw(np.cumsum(c / c.sum()), rng)


# ---------------------------------------------------------------------------
# observation encoders (vectorized over a batch)
# ---------------------------------------------------------------------------


class GlobalObsCodec:
    """Encode the global agent's observation ``(s_g, h)`` (``h in H_k``) and back.

    Modes: ``"dict"`` ``{"s_g": int, "hist": int64[|S_l|]}``; ``"multidiscrete"``
    ``[s_g, h_0, ..., h_{d-1}]``; ``"discrete"`` the index ``s_g * |H_k| + rank(h)``;
    ``"box"`` float32 ``[one_hot(s_g), h / k]``. With a sampling ``scheme`` (SPEC 12) the
    histograms are its observations (``|H_k|`` and ``rank`` become its count and index).
    """

    def __init__(self, n_sg: int, n_sl: int, k: int, mode: str,
                 scheme: Scheme | None = None) -> None:
        self.n_sg, self.n_sl, self.k = int(n_sg), int(n_sl), int(k)
        self.mode = check_choice("obs", mode, GLOBAL_OBS_MODES)
        self.scheme: Scheme = Uniform(self.k) if scheme is None else scheme
        self.n_hist = (num_histograms(self.k, self.n_sl) if scheme is None
                       else self.scheme.num_observations(self.n_sl))

    def encode(self, s_g: IntArray, h: IntArray) -> Any:
        """Observations for ``s_g`` (shape ``(B,)``) and histograms ``h`` (``(B, |S_l|)``)."""
        s_g = np.asarray(s_g, dtype=np.int64)
        h = np.asarray(h, dtype=np.int64)
        if self.mode == "dict":
            return {"s_g": s_g.copy(), "hist": h.copy()}
        if self.mode == "multidiscrete":
            return np.concatenate([s_g[:, None], h], axis=1)
        if self.mode == "discrete":
            return s_g * self.n_hist + self.scheme.index(h)
        out = np.zeros((s_g.shape[0], self.n_sg + self.n_sl), dtype=np.float32)
        out[np.arange(s_g.shape[0]), s_g] = 1.0
        out[:, self.n_sg:] = h / self.k
        return out

    def encode_one(self, s_g: int, h: IntArray) -> Any:
        """One observation (what ``reset`` / ``step`` return)."""
        obs = self.encode(np.array([s_g]), np.asarray(h)[None, :])
        if self.mode == "dict":
            return {"s_g": np.int64(obs["s_g"][0]), "hist": obs["hist"][0]}
        if self.mode == "discrete":
            return np.int64(obs[0])
        return obs[0]

    def all_observations(self) -> tuple[IntArray, IntArray, Any]:
        """Every ``(s_g, h)`` pair in ``GlobalPolicy`` table order, and its encoding."""
        hs = self.scheme.observations(self.n_sl)
        sg = np.repeat(np.arange(self.n_sg), hs.shape[0])
        hh = np.tile(hs, (self.n_sg, 1))
        return sg, hh, self.encode(sg, hh)

    def decode(self, obs: Any) -> tuple[IntArray, IntArray]:
        """Inverse of :meth:`encode` (batched): ``(s_g, h)``."""
        if self.mode == "dict":
            return (np.asarray(obs["s_g"], dtype=np.int64).reshape(-1),
                    np.asarray(obs["hist"], dtype=np.int64).reshape(-1, self.n_sl))
        a = np.asarray(obs)
        if self.mode == "multidiscrete":
            a = a.reshape(-1, 1 + self.n_sl).astype(np.int64)
            return a[:, 0], a[:, 1:]
        if self.mode == "discrete":
            idx = a.reshape(-1).astype(np.int64)
            hs = self.scheme.observations(self.n_sl)
            return idx // self.n_hist, hs[idx % self.n_hist]
        a = a.reshape(-1, self.n_sg + self.n_sl)
        h = np.rint(a[:, self.n_sg:] * self.k).astype(np.int64)
        return a[:, : self.n_sg].argmax(axis=1).astype(np.int64), h


class LocalObsCodec:
    """Encode a local agent's observation ``(s_l, s_g)`` and back.

    Modes: ``"multidiscrete"`` ``[s_l, s_g]``; ``"discrete"`` ``s_l * |S_g| + s_g``;
    ``"box"`` float32 ``[one_hot(s_l), one_hot(s_g)]``.
    """

    def __init__(self, n_sl: int, n_sg: int, mode: str) -> None:
        self.n_sl, self.n_sg = int(n_sl), int(n_sg)
        self.mode = check_choice("obs", mode, LOCAL_OBS_MODES)

    def encode(self, s_l: IntArray, s_g: IntArray) -> Any:
        """Observations for ``s_l``, ``s_g`` (shape ``(B,)`` each)."""
        s_l = np.asarray(s_l, dtype=np.int64)
        s_g = np.asarray(s_g, dtype=np.int64)
        if self.mode == "multidiscrete":
            return np.stack([s_l, s_g], axis=1)
        if self.mode == "discrete":
            return s_l * self.n_sg + s_g
        out = np.zeros((s_l.shape[0], self.n_sl + self.n_sg), dtype=np.float32)
        rows = np.arange(s_l.shape[0])
        out[rows, s_l] = 1.0
        out[rows, self.n_sl + s_g] = 1.0
        return out

    def encode_one(self, s_l: int, s_g: int) -> Any:
        obs = self.encode(np.array([s_l]), np.array([s_g]))
        return np.int64(obs[0]) if self.mode == "discrete" else obs[0]

    def decode(self, obs: Any) -> tuple[IntArray, IntArray]:
        """Inverse of :meth:`encode` (batched): ``(s_l, s_g)``."""
        a = np.asarray(obs)
        if self.mode == "multidiscrete":
            a = a.reshape(-1, 2).astype(np.int64)
            return a[:, 0], a[:, 1]
        if self.mode == "discrete":
            idx = a.reshape(-1).astype(np.int64)
            return idx // self.n_sg, idx % self.n_sg
        a = a.reshape(-1, self.n_sl + self.n_sg)
        return (a[:, : self.n_sl].argmax(axis=1).astype(np.int64),
                a[:, self.n_sl:].argmax(axis=1).astype(np.int64))

    def all_observations(self) -> tuple[IntArray, IntArray, Any]:
        """Every ``(s_l, s_g)`` pair in ``LocalPolicy`` table order, and its encoding."""
        s_l = np.repeat(np.arange(self.n_sl), self.n_sg)
        s_g = np.tile(np.arange(self.n_sg), self.n_sl)
        return s_l, s_g, self.encode(s_l, s_g)
