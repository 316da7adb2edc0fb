"""The policy a dispatcher service answers with (SPEC 2, 11; Algorithm 5's ``a_g =
pi_g(s_g, hist(s_Delta))``): request validation and batched decisions.

:class:`ServedPolicy` wraps a loaded global policy (a tabular
:class:`~altmarl.GlobalPolicy` or a neural
:class:`~altmarl.generative.neural.NeuralGlobalPolicy`, or any object with ``k`` and
``act(s_g, obs)``) and the game it was checked against. It turns the local states of the
``k`` sampled agents into the policy's observation (the count vector ``h`` for discrete
local states, the game's observer otherwise), checks every request first (global state in
range, sample of the policy's size ``k`` and, for a stratified scheme, of its per-type
sizes, local states in range) and raises :class:`RequestError` naming the field.

Local states are what the game's are: an integer per sampled agent (discrete states), a
number (continuous scalar states, ``local_shape`` ``()`` or ``(1,)``) or a list of ``d``
numbers (vector states, ``local_shape = (d,)``: ``"sample": [[x_0, y_0], [x_1, y_1], ...]``).
The global state likewise: an integer, a number, or a list for a vector global state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]

#: most decisions in one batch request
MAX_BATCH = 10_000
#: longest state vector (one agent's, or the global state's) the service takes
MAX_STATE_DIM = 4096


def _vector_shape(shape: tuple[int, ...], what: str, source: str) -> int | None:
    """``None`` for a scalar state (shape ``()`` or ``(1,)``), else the vector's length."""
    if shape in ((), (1,)):
        return None
    if len(shape) != 1 or not 1 <= shape[0] <= MAX_STATE_DIM:
        raise ValueError(f"policy {source}: {what} states of shape {shape}; the service takes "
                         f"a number or a vector of at most {MAX_STATE_DIM} numbers per state")
    return int(shape[0])


def _finite(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and bool(np.isfinite(v))


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


class RequestError(ValueError):
    """A request that does not fit the policy: ``loc`` is the field's path, e.g.
    ``("requests", 3, "sample", 1)``."""

    def __init__(self, loc: Sequence[str | int], msg: str) -> None:
        super().__init__(msg)
        self.loc = tuple(loc)
        self.msg = msg

    def detail(self) -> list[dict[str, Any]]:
        """The FastAPI-style 422 body entry."""
        return [{"loc": ["body", *self.loc], "msg": self.msg, "type": "value_error"}]


def policy_fingerprint(pi_g: Any) -> str:
    """A short SHA-256 of what the policy *does*: the action table, ``k`` and sampling
    scheme of a tabular policy; the weights, features and architecture of a neural one
    (independent of the file it came from)."""
    h = hashlib.sha256()
    h.update(type(pi_g).__name__.encode())
    h.update(str(getattr(pi_g, "k", None)).encode())
    actions = getattr(pi_g, "actions", None)
    if isinstance(actions, np.ndarray):
        h.update(np.ascontiguousarray(actions, dtype="<i8").tobytes())
        h.update(str(actions.shape).encode())
        sampling = getattr(pi_g, "sampling", None)
        if sampling is not None:
            h.update(json.dumps(sampling.to_json(), sort_keys=True).encode())
        return h.hexdigest()[:16]
    net = getattr(pi_g, "net", None)
    if net is not None:
        for name, tensor in sorted(net.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().astype("<f4").tobytes())
        h.update(json.dumps(getattr(pi_g, "arch", {}), sort_keys=True).encode())
        feats = getattr(pi_g, "features", None)
        if feats is not None:
            h.update(json.dumps(feats.to_json(), sort_keys=True).encode())
        return h.hexdigest()[:16]
    h.update(repr(pi_g).encode())
    return h.hexdigest()[:16]


@dataclass
class Decision:
    """A batch of validated decisions: global states, summaries ``(R, d)``, actions."""

    s_g: NDArray[Any]
    obs: NDArray[Any]
    a_g: IntArray


class ServedPolicy:
    """A global policy ready to serve on ``game`` (module docstring).

    Attributes: ``k``, ``n_sg`` / ``n_sl`` (``None`` for continuous states), ``n_ag``,
    ``fingerprint`` (:func:`policy_fingerprint`), ``game_fingerprint``, ``scheme`` (a
    description of the sampling scheme), ``summary_columns`` (the decision log's names of
    the observation's entries)."""

    def __init__(self, pi_g: Any, game: Any, source: str = "") -> None:
        from altmarl.game import TabularGame

        if not callable(getattr(pi_g, "act", None)) or not hasattr(pi_g, "k"):
            raise ValueError(f"policy {source}: expected a global policy (k, act(s_g, obs))")
        self.pi_g = pi_g
        self.game = game
        self.source = source
        self.k = int(pi_g.k)
        self.tabular = isinstance(game, TabularGame)
        gen = game.as_generative() if self.tabular else game
        self.n_sg: int | None = gen.n_sg
        self.n_sl: int | None = gen.n_sl
        self.n_ag = int(gen.n_ag)
        if getattr(pi_g, "n_ag", self.n_ag) != self.n_ag:
            raise ValueError(f"policy {source}: plays {pi_g.n_ag} global actions, the game "
                             f"{getattr(game, 'name', '?')!r} has {self.n_ag}")
        self.local_shape = tuple(getattr(gen, "local_shape", ()) or ())
        self.global_shape = tuple(getattr(gen, "global_shape", ()) or ())
        #: length of a vector local / global state (``None``: one number per state)
        self.local_dim = _vector_shape(self.local_shape, "local", source)
        self.global_dim = (None if self.n_sg is not None
                           else _vector_shape(self.global_shape, "global", source))
        self.observe = gen.observe
        self.n = int(getattr(game, "n", 0)) or None
        if self.n is not None and self.k > self.n:
            raise ValueError(f"policy {source}: k = {self.k} > n = {self.n}")
        self.gamma = float(game.gamma)
        self.fingerprint = policy_fingerprint(pi_g)
        self.game_fingerprint = str(game.fingerprint())
        self.game_name = str(getattr(game, "name", "?"))
        sampling = getattr(pi_g, "sampling", None)
        self.sampling = sampling
        self.scheme = sampling.describe() if sampling is not None else f"Uniform({self.k})"
        self.type_of: IntArray | None = None
        self.type_ks: list[int] | None = None
        from altmarl.sampling import Stratified

        if isinstance(sampling, Stratified):
            assert sampling.types is not None
            self.type_of = np.asarray(sampling.types, dtype=np.int64)
            self.type_ks = [int(v) for v in sampling.ks]
        # the observation's width, from one probe sample (a learned set encoder hands on the
        # k states themselves, k * d numbers, not its summary's dim)
        zero = np.zeros((1, self.k, *self.local_shape),
                        dtype=np.int64 if self.n_sl is not None else np.float64)
        width = int(np.asarray(self.observe(zero)).reshape(1, -1).shape[1])
        self.summary_columns = [f"h_{x}" for x in range(width)]
        self.global_columns = (["s_g"] if self.global_dim is None
                               else [f"s_g_{j}" for j in range(self.global_dim)])

    # --- validation -------------------------------------------------------------------
    def _check_one(self, s_g: Any, sample: Sequence[Any], loc: tuple[Any, ...]) -> None:
        if self.n_sg is not None:
            if type(s_g) is not int or not 0 <= s_g < self.n_sg:
                raise RequestError((*loc, "s_g"), f"s_g = {s_g!r}: expected an integer global "
                                   f"state in 0..{self.n_sg - 1}")
        elif self.global_dim is not None:
            self._check_vector(s_g, self.global_dim, (*loc, "s_g"), "s_g", "global state")
        elif not _finite(s_g):
            raise RequestError((*loc, "s_g"), f"s_g = {_show(s_g)}: expected a finite number")
        if len(sample) != self.k:
            raise RequestError((*loc, "sample"), f"sample: {len(sample)} local states, "
                               f"expected the k = {self.k} sampled agents of {self.scheme}")
        if self.n_sl is not None:
            for i, x in enumerate(sample):
                if type(x) is not int or not 0 <= x < self.n_sl:
                    raise RequestError((*loc, "sample", i), f"sample[{i}] = {x!r}: expected an "
                                       f"integer local state in 0..{self.n_sl - 1}")
            if self.type_of is not None and self.type_ks is not None:
                got = np.bincount(self.type_of[np.asarray(sample, dtype=np.int64)],
                                  minlength=len(self.type_ks)).tolist()
                if got != self.type_ks:
                    raise RequestError((*loc, "sample"), f"sample: {got} agents per type, "
                                       f"expected {self.type_ks} ({self.scheme})")
        elif self.local_dim is not None:
            for i, x in enumerate(sample):
                self._check_vector(x, self.local_dim, (*loc, "sample", i), f"sample[{i}]",
                                   "local state")
        else:
            for i, x in enumerate(sample):
                if not _finite(x):
                    raise RequestError((*loc, "sample", i), f"sample[{i}] = {_show(x)}: "
                                       "expected a finite number")

    @staticmethod
    def _check_vector(x: Any, d: int, loc: tuple[Any, ...], name: str, what: str) -> None:
        if not isinstance(x, list | tuple) or len(x) != d:
            got = f"{len(x)} numbers" if isinstance(x, list | tuple) else _show(x)
            raise RequestError(loc, f"{name}: expected the {what} vector of {d} numbers, got "
                               f"{got}")
        for j, v in enumerate(x):
            if not _finite(v):
                raise RequestError((*loc, j), f"{name}[{j}] = {_show(v)}: expected a finite "
                                   "number")

    # --- decisions --------------------------------------------------------------------
    def decide(self, s_g: Sequence[Any], samples: Sequence[Sequence[Any]],
               locs: Sequence[tuple[Any, ...]] | None = None) -> Decision:
        """Validate and answer ``R`` requests at once (``RequestError`` for the first bad
        one, named by ``locs[i]``)."""
        R = len(s_g)
        for i in range(R):
            self._check_one(s_g[i], samples[i], () if locs is None else locs[i])
        if self.n_sl is not None:
            states = np.asarray(samples, dtype=np.int64).reshape(R, self.k)
        else:
            states = np.asarray(samples, dtype=np.float64).reshape((R, self.k,
                                                                    *self.local_shape))
        obs = np.asarray(self.observe(states))
        sg = np.asarray(s_g, dtype=np.int64 if self.n_sg is not None else np.float64)
        if self.global_dim is not None:
            sg = sg.reshape(R, *self.global_shape)
        acts = np.asarray(self.pi_g.act(sg, obs), dtype=np.int64).reshape(R)
        return Decision(sg, obs, acts)

    def describe(self) -> dict[str, Any]:
        """What ``GET /health`` reports."""
        return {"policy": self.fingerprint, "policy_kind": type(self.pi_g).__name__,
                "source": self.source, "k": self.k, "sampling": self.scheme,
                "game": {"name": self.game_name, "fingerprint": self.game_fingerprint,
                         "n": self.n},
                "spaces": {"S_g": self.n_sg, "S_l": self.n_sl, "A_g": self.n_ag},
                "local_shape": list(self.local_shape), "global_shape": list(self.global_shape)}


__all__ = ["MAX_BATCH", "MAX_STATE_DIM", "Decision", "RequestError", "ServedPolicy", "policy_fingerprint"]
