"""How the global agent summarizes its ``k``-sample (SPEC 11): permutation-invariant
observers.

An observer maps the sampled agents' local states ``sample`` of shape
``(R, k, *local_shape)`` to one summary per rollout, ``(R, dim)``:

* :class:`Counts` — the count vector over ``d`` discrete local states (the mean-field
  histogram ``h in H_k`` of SPEC 2; what tabular :class:`altmarl.GlobalPolicy` objects read);
* :class:`Histogram` — a binned histogram of scalar local states (``len(edges) + 1`` bins:
  below the first edge, between consecutive edges, at or above the last edge);
* :class:`SetEncoder` — ``phi(sample) = mean_i f(s_i)`` for vector states. ``f`` is any
  vectorized callable ``(R, k, *local_shape) -> (R, k, dim)``; without one it is the fixed
  moment features ``f(s) = (s, s^2)`` (flattened). Neural learners replace ``f`` by a learned
  embedding (the hook: :meth:`SetEncoder.with_embedding`);
* :class:`LearnedEncoder` — ``phi(sample) = mean_i f_theta(s_i)`` with ``f_theta`` a small
  network trained end-to-end inside neural G-LEARN (for vector states where no count or
  fixed moment summary is good enough). The observer hands the set itself on, shape
  ``(R, k, prod(local_shape))``; the learned global policy holds ``f_theta`` and applies it
  (a hand-written global policy receives the raw set).

The summaries are invariant to the order of the sampled agents (the learned encoder's by
the mean pooling inside the policy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import check_int

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@runtime_checkable
class Observer(Protocol):
    """A permutation-invariant summary of a ``k``-sample of local states."""

    @property
    def kind(self) -> str:
        """``"counts"``, ``"histogram"`` or ``"encoder"``."""
        ...

    def dim(self, local_shape: tuple[int, ...]) -> int:
        """Length of the summary for local states of shape ``local_shape``."""
        ...

    def __call__(self, sample: NDArray[Any]) -> NDArray[Any]:
        """``(R, k, *local_shape) -> (R, dim)``."""
        ...

    def to_json(self) -> dict[str, Any]:
        """A JSON description (policy files, run directories)."""
        ...


def bincount_rows(values: NDArray[np.integer[Any]], d: int) -> IntArray:
    """Per-row counts of integer ``values`` in ``0..d-1``: ``(R, m) -> (R, d)``, one
    ``bincount`` over all rows at once (row offsets, no Python loop over rows or agents)."""
    R = values.shape[0]
    flat = values.reshape(R, -1)
    offsets = (np.arange(R, dtype=np.int64) * d)[:, None]
    return np.bincount((flat + offsets).ravel(), minlength=R * d).reshape(R, d)


@dataclass(frozen=True)
class Counts:
    """Count vector over ``num_local_states`` discrete local states (SPEC 2's histogram)."""

    num_local_states: int
    kind: str = field(default="counts", init=False)

    def __post_init__(self) -> None:
        check_int("observe.num_local_states", self.num_local_states, 1)

    def dim(self, local_shape: tuple[int, ...]) -> int:
        return int(self.num_local_states)

    def __call__(self, sample: NDArray[Any]) -> IntArray:
        return bincount_rows(sample, int(self.num_local_states))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "counts", "num_local_states": int(self.num_local_states)}


@dataclass(frozen=True)
class Histogram:
    """Binned histogram of scalar local states: ``len(edges) + 1`` bins (values below
    ``edges[0]`` fall in bin 0, values at or above ``edges[-1]`` in the last bin)."""

    edges: tuple[float, ...]
    kind: str = field(default="histogram", init=False)

    def __init__(self, edges: ArrayLike) -> None:
        e = np.asarray(edges, dtype=np.float64).ravel()
        if e.size < 1 or not np.isfinite(e).all() or np.any(np.diff(e) <= 0):
            raise ValueError(f"observe.bins = {edges!r}: expected finite, strictly increasing "
                             "bin edges (at least one)")
        object.__setattr__(self, "edges", tuple(float(x) for x in e))
        object.__setattr__(self, "kind", "histogram")

    def dim(self, local_shape: tuple[int, ...]) -> int:
        if local_shape != ():
            raise ValueError(f"observe = 'histogram' needs scalar local states, got local_shape "
                             f"{local_shape}; use a SetEncoder for vector states")
        return len(self.edges) + 1

    def __call__(self, sample: NDArray[Any]) -> IntArray:
        bins = np.searchsorted(np.asarray(self.edges), sample, side="right")
        return bincount_rows(bins, len(self.edges) + 1)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "histogram", "edges": list(self.edges)}


def moment_features(sample: NDArray[Any]) -> FloatArray:
    """The default set-encoder embedding ``f(s) = (s, s^2)`` (flattened per agent)."""
    R, k = sample.shape[:2]
    s = np.asarray(sample, dtype=np.float64).reshape(R, k, -1)
    return np.concatenate([s, s * s], axis=-1)


@dataclass(frozen=True)
class SetEncoder:
    """``phi(sample) = mean_i f(s_i)`` (SPEC 11): a permutation-invariant set encoder.

    ``embed`` maps ``(R, k, *local_shape)`` to ``(R, k, dim)``; ``None`` uses
    :func:`moment_features` (``dim = 2 * prod(local_shape)``). ``dim`` must be given with a
    custom ``embed``. Learners install a learned embedding with :meth:`with_embedding`.
    """

    embed: Callable[[NDArray[Any]], NDArray[Any]] | None = None
    embed_dim: int | None = None
    kind: str = field(default="encoder", init=False)

    def __post_init__(self) -> None:
        if self.embed is not None:
            if not callable(self.embed):
                raise ValueError(f"observe.embed = {self.embed!r}: expected a callable")
            check_int("observe.dim", self.embed_dim, 1)

    def dim(self, local_shape: tuple[int, ...]) -> int:
        if self.embed is None:
            return 2 * int(np.prod(local_shape, dtype=np.int64))
        return int(self.embed_dim)  # type: ignore[arg-type]

    def __call__(self, sample: NDArray[Any]) -> FloatArray:
        f = moment_features(sample) if self.embed is None else np.asarray(self.embed(sample),
                                                                          dtype=np.float64)
        if f.ndim != 3 or f.shape[:2] != sample.shape[:2]:
            raise ValueError(f"observe.embed returned shape {f.shape}: expected (R, k, dim) = "
                             f"{sample.shape[:2] + (self.embed_dim,)}")
        return np.asarray(f.mean(axis=1), dtype=np.float64)

    def with_embedding(self, embed: Callable[[NDArray[Any]], NDArray[Any]],
                       dim: int) -> SetEncoder:
        """The same encoder with another per-agent embedding (e.g. a trained network)."""
        return SetEncoder(embed, dim)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "encoder", "embedding": "moments" if self.embed is None else "custom",
                "dim": self.embed_dim}


@dataclass(frozen=True)
class LearnedEncoder:
    """A permutation-invariant set encoder learned by neural G-LEARN (SPEC 11):
    ``phi(sample) = mean_i f_theta(s_i)``, ``f_theta`` an MLP with one hidden layer of
    ``hidden`` tanh units and ``embed_dim`` outputs on the standardized flattened local
    state, trained end-to-end with the Q-network
    (:func:`altmarl.generative.neural.neural_g_learn`).

    As an observer it passes the sampled set on, ``(R, k, prod(local_shape))`` floats
    (:meth:`dim` is the length of the learned summary, ``embed_dim``)."""

    embed_dim: int = 16
    hidden: int = 32
    kind: str = field(default="learned", init=False)

    def __post_init__(self) -> None:
        check_int("observe.embed_dim", self.embed_dim, 1)
        check_int("observe.hidden", self.hidden, 1)

    def dim(self, local_shape: tuple[int, ...]) -> int:
        return int(self.embed_dim)

    def __call__(self, sample: NDArray[Any]) -> FloatArray:
        R, k = sample.shape[:2]
        return np.asarray(sample, dtype=np.float64).reshape(R, k, -1)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "learned", "embed_dim": int(self.embed_dim), "hidden": int(self.hidden)}


def make_observer(observe: Any, num_local_states: int | None,
                  bins: ArrayLike | None) -> Observer:
    """The observer of a :class:`~altmarl.generative.GenerativeGame`: ``"counts"`` (needs
    ``num_local_states``), ``"histogram"`` (needs ``bins``), ``"encoder"``, or an
    :class:`Observer` object."""
    if isinstance(observe, str):
        if observe == "counts":
            if num_local_states is None:
                raise ValueError("observe = 'counts': give num_local_states (the number of "
                                 "discrete local states)")
            return Counts(num_local_states)
        if observe == "histogram":
            if bins is None:
                raise ValueError("observe = 'histogram': give bins (the bin edges)")
            return Histogram(bins)
        if observe == "encoder":
            return SetEncoder()
        if observe == "learned":
            return LearnedEncoder()
        raise ValueError(f"observe = {observe!r}: expected 'counts', 'histogram', 'encoder', "
                         "'learned' or an observer object (Counts, Histogram, SetEncoder, "
                         "LearnedEncoder)")
    if isinstance(observe, Observer):
        return observe
    raise ValueError(f"observe = {observe!r}: expected 'counts', 'histogram', 'encoder', "
                     "'learned' or an observer object (Counts, Histogram, SetEncoder, "
                     "LearnedEncoder)")
