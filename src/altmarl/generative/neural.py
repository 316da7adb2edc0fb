"""Neural G-LEARN on generative games (SPEC 11): fitted Q-iteration on the ``k``-agent
surrogate, and the neural global policy with its pickle-free file format. Needs PyTorch.

**Surrogate.** A state of the ``k``-agent surrogate is ``x = (s_g, s_Delta)``, ``k`` local
states; the network reads ``phi(x) = (g(s_g), observe(s_Delta) / scale)``: ``g`` one-hot for
discrete global states (the flattened state otherwise), the observer's summary divided by
``k`` for counts and histograms (so it is the empirical distribution). The global agent acts
on the same summary of its ``k``-sample of the ``n``-agent system (SPEC 3).

**Data.** ``states`` surrogate states: half drawn from the reset law (``reset`` then a
uniform ``k``-subset), half visited by rollouts of the surrogate from such states under
``pi_l`` and ``pi_g`` (uniform random global actions, or the given ``pi_g`` with probability
``1 - explore``). For every state and global action, ``m`` transitions of the surrogate
(``step`` with ``k`` agents, local actions from ``pi_l``) give rewards ``r^j`` and next
states ``x^j`` (SPEC 4's ``m`` draws per Bellman target).

**Fit.** Fitted Q-iteration: ``y(x, a) = (1/m) sum_j [r^j + gamma max_a' Q_target(x^j, a')]``
with ``Q_target`` the previous iterate (the target network), then ``epochs`` of Adam on the
squared error (all actions of a state at once). A fraction ``holdout`` of the states is kept
out: after each iteration its Bellman residual ``mean (Q(x, a) - (T Q)(x, a))^2`` is
computed with the new network; the fit stops when it has not improved for ``patience``
iterations (or after ``iterations``) and returns the network with the smallest residual.

**Files.** :meth:`NeuralGlobalPolicy.save` writes one file loaded with
``torch.load(weights_only=True)`` (tensors, strings and numbers only, no pickled objects):
``{"meta": JSON string, "q": state dict}``. ``meta`` has ``format =
"altmarl.neural_global_policy"``, ``version = 1``, the spaces, ``k``, the features, the
architecture, the game's name and fingerprint, and the learner's diagnostics; loading with
a game whose fingerprint differs is refused with a clear message.
"""

from __future__ import annotations

import json
import math
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
from altmarl.continuous.nets import load_state, mlp, save_state, seeded_torch, torch_seed
from altmarl.game import check_recorded_game, game_record
from altmarl.generative.game import GenerativeGame
from altmarl.generative.observe import LearnedEncoder
from altmarl.generative.policies import FunctionGlobalPolicy, check_policies
from altmarl.generative.simulator import subsample_indices
from altmarl.io import to_jsonable
from altmarl.progress import Progress
from altmarl.threads import limit_torch_threads

FORMAT = "altmarl.neural_global_policy"
FORMAT_VERSION = 1
#: surrogate states replicated per batch when drawing transitions
_BATCH_STATES = 512
#: the most nested base policies a cautious policy file may hold
MAX_BASE_DEPTH = 64


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``."""
    check_choice("device", device, ["auto", "cpu", "cuda"])
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device = 'cuda': no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(device)


class Features:
    """``phi(s_g, obs)``: one-hot (or flattened) global state and the scaled summary."""

    def __init__(self, n_sg: int | None, global_shape: tuple[int, ...], obs_dim: int,
                 scale: float, set_dim: int | None = None) -> None:
        self.n_sg = n_sg
        self.global_shape = tuple(global_shape)
        self.obs_dim = int(obs_dim)
        self.scale = float(scale)
        #: with a learned set encoder: the length of one agent's flattened local state (the
        #: observation is then the ``k`` sampled states, ``obs_dim = k * set_dim``)
        self.set_dim = None if set_dim is None else int(set_dim)
        g = n_sg if n_sg is not None else int(np.prod(self.global_shape, dtype=np.int64))
        self.global_dim = int(g)
        self.dim = int(g) + self.obs_dim

    @classmethod
    def for_game(cls, game: GenerativeGame, k: int) -> Features:
        """Features of ``game``'s ``k``-sample summaries (counts and histograms / ``k``; a
        :class:`~altmarl.generative.observe.LearnedEncoder`'s raw set of ``k`` states)."""
        if isinstance(game.observe, LearnedEncoder):
            d = int(np.prod(game.local_shape, dtype=np.int64))
            return cls(game.n_sg, game.global_shape, int(k) * d, 1.0, set_dim=d)
        scale = float(k) if game.observe.kind in ("counts", "histogram") else 1.0
        return cls(game.n_sg, game.global_shape, game.obs_dim, scale)

    def __call__(self, s_g: NDArray[Any], obs: NDArray[Any]) -> NDArray[np.float32]:
        R = int(np.shape(obs)[0])
        out = np.empty((R, self.dim), dtype=np.float32)
        if self.n_sg is not None:
            out[:, :self.n_sg] = 0.0
            out[np.arange(R), np.asarray(s_g, dtype=np.int64)] = 1.0
            g = self.n_sg
        else:
            g = self.dim - self.obs_dim
            out[:, :g] = np.asarray(s_g, dtype=np.float32).reshape(R, g)
        out[:, g:] = np.asarray(obs, dtype=np.float32).reshape(R, -1) / self.scale
        return out

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n_sg": self.n_sg, "global_shape": list(self.global_shape),
                             "obs_dim": self.obs_dim, "scale": self.scale}
        if self.set_dim is not None:
            d["set_dim"] = self.set_dim
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Features:
        return cls(d["n_sg"], tuple(d["global_shape"]), int(d["obs_dim"]), float(d["scale"]),
                   None if d.get("set_dim") is None else int(d["set_dim"]))


class SetQNet(nn.Module):
    """The Q-network of a learned set encoder (SPEC 11): the first ``global_dim`` inputs are
    the global features, the rest ``k`` local states of ``set_dim`` values; ``Q = head(g,
    mean_i embed((s_i - mean) / std))`` with ``embed`` one hidden layer of ``embed_hidden``
    tanh units to ``embed_dim`` outputs, ``head`` an MLP. Invariant to the order of the
    ``k`` states."""

    def __init__(self, global_dim: int, set_dim: int, embed_dim: int, embed_hidden: int,
                 out_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.global_dim, self.set_dim = int(global_dim), int(set_dim)
        self.embed = mlp(self.set_dim, int(embed_dim), int(embed_hidden), 1)
        self.head = mlp(self.global_dim + int(embed_dim), int(out_dim), int(hidden), int(layers))
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(self.set_dim))
        self.register_buffer("std", torch.ones(self.set_dim))

    def set_moments(self, states: NDArray[Any]) -> None:
        """Standardize by the mean and standard deviation of ``states`` ``(N, set_dim)``."""
        x = np.asarray(states, dtype=np.float64).reshape(-1, self.set_dim)
        sd = x.std(axis=0)
        with torch.no_grad():
            self.mean.copy_(torch.from_numpy(x.mean(axis=0).astype(np.float32)))
            self.std.copy_(torch.from_numpy(np.where(sd > 1e-8, sd, 1.0).astype(np.float32)))

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        """The learned summary ``mean_i f_theta(s_i)`` of feature rows ``x``."""
        s = x[:, self.global_dim:].reshape(x.shape[0], -1, self.set_dim)
        return self.embed((s - self.mean) / self.std).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([x[:, :self.global_dim], self.summary(x)], dim=1))


def q_network(arch: dict[str, Any]) -> nn.Module:
    """The Q-network of an architecture record: an MLP, or a :class:`SetQNet` when
    ``arch`` has an ``encoder`` entry."""
    enc = arch.get("encoder")
    if enc is None:
        return mlp(int(arch["in_dim"]), int(arch["out_dim"]), int(arch["hidden"]),
                   int(arch["layers"]))
    return SetQNet(int(enc["global_dim"]), int(enc["set_dim"]), int(enc["embed_dim"]),
                   int(enc["embed_hidden"]), int(arch["out_dim"]), int(arch["hidden"]),
                   int(arch["layers"]))


class NeuralGlobalPolicy:
    """Greedy policy of a Q-network ``Q(phi(s_g, obs), .)`` (SPEC 11); follows the global
    policy protocol (``k``, ``act(s_g, obs)``).

    With a ``base`` policy (neural G-LEARN's ``improve="cautious"``) it is the *cautious*
    improvement of ``base``: the greedy action ``a* = argmax_a Q(x, a)`` where its fitted
    advantage ``Q(x, a*) - Q(x, base(x))`` exceeds ``margin``, ``base``'s action elsewhere
    (``margin = 0``: the greedy step, ties to ``base``; a margin above every advantage:
    ``base`` itself)."""

    def __init__(self, k: int, net: nn.Module, features: Features, n_ag: int,
                 arch: dict[str, int], info: dict[str, Any] | None = None,
                 game_meta: dict[str, Any] | None = None, base: Any = None,
                 margin: float = 0.0) -> None:
        self.k = check_int("k", k, 1)
        self.net = net.to("cpu").eval()
        self.features = features
        self.n_ag = int(n_ag)
        self.arch = dict(arch)
        self.info: dict[str, Any] = dict(info or {})
        self.game_meta: dict[str, Any] = dict(game_meta or {})
        if base is not None and not callable(getattr(base, "act", None)):
            raise ValueError(f"base = {base!r}: expected a global policy with act(s_g, obs)")
        if base is not None and getattr(base, "k", k) != k:
            raise ValueError(f"base: a policy for k = {getattr(base, 'k', None)}, expected "
                             f"k = {k}")
        self.base = base
        self.margin = check_float("margin", margin, 0.0)

    def q_values(self, s_g: NDArray[Any], obs: NDArray[Any]) -> NDArray[np.float64]:
        """``Q(s_g, obs, a)`` for every action, ``(R, |A_g|)``."""
        x = torch.from_numpy(self.features(s_g, obs))
        with torch.no_grad():
            return np.asarray(self.net(x).double().numpy())

    def act(self, s_g: Any, obs: Any) -> NDArray[np.int64]:
        """``argmax_a Q(s_g, obs, a)`` (lowest index on ties), batched over rollouts; with a
        ``base``: the cautious step (class docstring)."""
        q = self.q_values(np.asarray(s_g), np.asarray(obs))
        if self.base is None:
            return np.asarray(q.argmax(axis=1), dtype=np.int64)
        return self.cautious(q, np.asarray(self.base.act(s_g, obs), dtype=np.int64))

    def cautious(self, q: NDArray[np.float64], base_actions: NDArray[np.int64]
                 ) -> NDArray[np.int64]:
        """The cautious step from ``base_actions`` given the Q-values ``q`` ``(R, |A_g|)``:
        ``argmax q`` where ``q[argmax] - q[base] > margin``, the base action elsewhere."""
        b = np.asarray(base_actions, dtype=np.int64).reshape(-1)
        if b.shape != (len(q),) or (len(b) and (b.min() < 0 or b.max() >= self.n_ag)):
            raise ValueError(f"base: returned actions of shape {b.shape} (values in "
                             f"[{b.min() if len(b) else 0}, {b.max() if len(b) else 0}]), "
                             f"expected ({len(q)},) in [0, {self.n_ag})")
        greedy = np.asarray(q.argmax(axis=1), dtype=np.int64)
        r = np.arange(len(q))
        gain = q[r, greedy] - q[r, b]
        return np.where(gain > self.margin, greedy, b)

    # --- files -------------------------------------------------------------------------
    def to_blob(self, game: GenerativeGame | None = None,
                external_base: bool = False) -> dict[str, Any]:
        """The file's content (module docstring): ``{"meta", "q"}`` and, for a cautious
        policy with a neural base, ``"base"`` (the base's own content, nested)."""
        meta: dict[str, Any] = {
            "format": FORMAT, "version": FORMAT_VERSION, "k": self.k, "n_ag": self.n_ag,
            "features": self.features.to_json(), "arch": self.arch,
            "game": (game_meta(game) if game is not None else self.game_meta),
            "info": to_jsonable(self.info),
        }
        blob: dict[str, Any] = {}
        if self.base is not None:
            if isinstance(self.base, NeuralGlobalPolicy):
                blob["base"] = self.base.to_blob(game, external_base)
                kind = "file"
            elif external_base:
                kind = "external"
            else:
                raise ValueError(
                    f"base = {self.base!r}: this cautious policy's base cannot be written (only "
                    "a neural base is stored in the file); save(..., external_base=True) writes "
                    "the network and margin only, then load(..., base=...) supplies the base")
            meta["cautious"] = {"margin": self.margin, "base": kind, "base_repr": repr(self.base)}
        blob["meta"] = json.dumps(meta, sort_keys=True)
        blob["q"] = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        return blob

    def save(self, path: str | os.PathLike[str], game: GenerativeGame | None = None,
             external_base: bool = False) -> Path:
        """Write the policy (module docstring: one ``weights_only`` file); returns the path.
        A cautious policy stores a neural base in the same file; another base (a function,
        a tabular policy) is code or data of its own: ``external_base=True`` leaves it out
        and :meth:`load` then needs ``base=``."""
        p = Path(path)
        save_state(p, self.to_blob(game, external_base))
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str], game: GenerativeGame | None = None,
             strict: bool = True, base: Any = None) -> NeuralGlobalPolicy:
        """Read a policy file; with ``game``, refuse a file made for another game
        (``strict=False`` accepts a game with the same spaces and features); ``base``: the
        base policy of a cautious policy saved with ``external_base=True``."""
        return cls.from_blob(load_state(path), str(path), game, strict, base, 0)

    @classmethod
    def from_blob(cls, blob: dict[str, Any], path: str, game: GenerativeGame | None,
                  strict: bool, base: Any, depth: int) -> NeuralGlobalPolicy:
        """The policy of a file's content (:meth:`to_blob`); ``depth`` counts the nested
        bases read so far (at most ``MAX_BASE_DEPTH``)."""
        meta = read_meta(blob, path, "neural policy", FORMAT, FORMAT_VERSION, ("q",),
                         {"features": dict, "arch": dict, "k": int, "n_ag": int})
        try:
            feats = Features.from_json(meta["features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: meta 'features' cannot be read ({exc!r})") from None
        arch = meta["arch"]
        if game is not None:
            check_recorded_game(meta.get("game"), game, path, "policy made for", strict,
                                required=True)
            want = Features.for_game(game, int(meta["k"]))
            if (want.dim, meta["n_ag"]) != (feats.dim, game.n_ag):
                raise ValueError(f"{path}: policy reads {feats.dim} features and plays "
                                 f"{meta['n_ag']} actions; game {game.name!r} gives {want.dim} "
                                 f"features and {game.n_ag} actions")
        try:
            net = q_network(arch)
            net.load_state_dict(blob["q"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: weights do not match the architecture {arch} "
                             f"({exc})") from None
        caut = meta.get("cautious")
        margin, pol_base = 0.0, None
        if caut is None:
            if base is not None and depth == 0:
                raise ValueError(f"{path}: base given, but this policy is not a cautious policy "
                                 "with an external base")
        else:
            if not isinstance(caut, dict) or caut.get("base") not in ("file", "external"):
                raise ValueError(f"{path}: meta 'cautious' = {caut!r}: expected a margin and "
                                 "base 'file' or 'external'")
            got = caut.get("margin")
            if (not isinstance(got, int | float) or isinstance(got, bool)
                    or not math.isfinite(got) or got < 0):
                raise ValueError(f"{path}: cautious margin = {got!r}: expected a finite "
                                 "number >= 0")
            margin = float(got)
            if caut["base"] == "file":
                if depth + 1 > MAX_BASE_DEPTH:
                    raise ValueError(f"{path}: more than {MAX_BASE_DEPTH} nested base policies")
                inner = blob.get("base")
                if not isinstance(inner, dict):
                    raise ValueError(f"{path}: meta names a base policy in the file, but the "
                                     "'base' entry is missing")
                pol_base = cls.from_blob(inner, f"{path} (base)", game, strict, base, depth + 1)
            elif base is None:
                raise ValueError(f"{path}: a cautious policy whose base "
                                 f"({caut.get('base_repr', '?')}) was not written; pass base=")
            else:
                pol_base = base
        return cls(int(meta["k"]), net, feats, int(meta["n_ag"]), arch, meta.get("info", {}),
                   meta.get("game", {}), pol_base, float(margin))

    def __repr__(self) -> str:
        caut = "" if self.base is None else f", cautious from {self.base!r}, margin={self.margin}"
        return (f"NeuralGlobalPolicy(k={self.k}, |A_g|={self.n_ag}, features={self.features.dim}"
                f", hidden={self.arch.get('hidden')}x{self.arch.get('layers')}{caut})")


def game_meta(game: GenerativeGame) -> dict[str, Any]:
    """What a neural policy file records about its game: name, fingerprint, ``n``, spaces."""
    return {**game_record(game), "spaces": game.spaces}


#: JSON types of the metadata fields, for the error messages of :func:`read_meta`
_JSON_NAMES = {dict: "an object", int: "an integer", bool: "true or false",
               float: "a number", str: "a string"}


def read_meta(blob: dict[str, Any], path: str, kind: str, fmt: str, version: int,
              entries: tuple[str, ...], fields: dict[str, type]) -> dict[str, Any]:
    """The JSON metadata of a neural policy file's content ``blob``, checked: a ``meta``
    string and the weight ``entries`` present, valid JSON, the expected ``fmt`` and
    ``version``, every key of ``fields`` present with its JSON type (``float`` accepts
    integers), ``game`` an object when present (a clear error naming ``path`` otherwise)."""
    if not isinstance(blob.get("meta"), str) or not all(isinstance(blob.get(e), dict)
                                                        for e in entries):
        want = [repr(e) for e in ("meta", *entries)]
        names = ", ".join(want[:-1]) + " and " + want[-1]
        raise ValueError(f"{path}: not an altmarl {kind} file (expected {names} entries)")
    try:
        meta = json.loads(blob["meta"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: meta is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: meta is {type(meta).__name__}, expected a JSON object")
    if meta.get("format") != fmt:
        raise ValueError(f"{path}: format = {meta.get('format')!r}, expected {fmt!r}")
    if meta.get("version") != version:
        raise ValueError(f"{path}: format version {meta.get('version')!r} is not supported "
                         f"(this altmarl reads version {version})")
    for key, typ in {**fields, "game": dict}.items():
        if key not in meta:
            if key == "game":
                continue
            raise ValueError(f"{path}: meta has no {key!r} entry")
        v = meta[key]
        ok = (isinstance(v, int | float) and not isinstance(v, bool) if typ is float
              else isinstance(v, typ) and (typ is bool or not isinstance(v, bool)))
        if not ok:
            raise ValueError(f"{path}: meta {key!r} = {v!r}: expected {_JSON_NAMES[typ]}")
    return meta


# ---------------------------------------------------------------------------------------
# data: surrogate states and their m transitions per action
# ---------------------------------------------------------------------------------------


def surrogate_states(game: GenerativeGame, pi_l: Any, k: int, count: int,
                     rng: np.random.Generator, pi_g: Any = None, explore: float = 1.0,
                     horizon: int = 20) -> tuple[NDArray[Any], NDArray[Any]]:
    """``count`` surrogate states ``(s_g, s_Delta)``: half from the reset law (a uniform
    ``k``-subset of a reset population), half visited by surrogate rollouts from such states
    (global actions uniform, or ``pi_g``'s with probability ``1 - explore``)."""
    n_reset = max(1, count // 2)
    sg_list, sl_list = [], []
    got = 0
    while got < n_reset:
        R = min(64, n_reset - got)
        s_g, s_l = game.reset(rng, R)
        idx = subsample_indices(rng, R, game.n, k)
        sg_list.append(s_g)
        sl_list.append(s_l[np.arange(R)[:, None], idx])
        got += R
    sg0, sl0 = np.concatenate(sg_list), np.concatenate(sl_list)
    n_roll = count - n_reset
    if n_roll <= 0:
        return sg0, sl0
    # rollouts: start from random reset states, record one visited state per step
    starts = rng.integers(0, n_reset, size=max(1, math.ceil(n_roll / horizon)))
    s_g, s_l = sg0[starts], sl0[starts]
    vis_g, vis_l = [], []
    for _ in range(horizon):
        a_g = rng.integers(0, game.n_ag, size=len(s_g))
        if pi_g is not None and explore < 1.0:
            greedy = np.asarray(pi_g.act(s_g, game.observe(s_l)), dtype=np.int64)
            a_g = np.where(rng.random(len(s_g)) < explore, a_g, greedy)
        a_l = np.asarray(pi_l.act(s_l, s_g, rng), dtype=np.int64)
        s_g, s_l, _, _ = game.step(s_g, s_l, a_g, a_l, rng)
        vis_g.append(s_g)
        vis_l.append(s_l)
    vg, vl = np.concatenate(vis_g)[:n_roll], np.concatenate(vis_l)[:n_roll]
    return np.concatenate([sg0, vg]), np.concatenate([sl0, vl])


def surrogate_transitions(game: GenerativeGame, pi_l: Any, feats: Features, s_g: NDArray[Any],
                          s_l: NDArray[Any], m: int, rng: np.random.Generator,
                          common: bool = False, pi_next: Any = None
                          ) -> tuple[NDArray[np.float32], NDArray[np.float32],
                                     NDArray[np.int64] | None]:
    """For every state and global action, ``m`` surrogate transitions: rewards
    ``(N, |A_g|, m)`` (SPEC eq. 1 with ``k`` agents) and next-state features
    ``(N, |A_g|, m, dim)``. ``common=True``: the ``j``-th draw of every global action uses
    the same random numbers (one generator seed per batch, restarted for each action), so
    the actions of a state differ only by what the action changes (common random numbers;
    exact for a ``step`` that draws the same amount of randomness whatever ``a_g``).
    ``pi_next``: a global policy whose actions at the next states are returned too
    ``(N, |A_g|, m)`` (its ``k``-sample is the surrogate's ``k`` agents), else ``None``."""
    N, A = len(s_g), game.n_ag
    rew = np.empty((N, A, m), dtype=np.float32)
    nxt = np.empty((N, A, m, feats.dim), dtype=np.float32)
    act = None if pi_next is None else np.empty((N, A, m), dtype=np.int64)
    for lo in range(0, N, _BATCH_STATES):
        hi = min(N, lo + _BATCH_STATES)
        b = hi - lo
        if common:
            rep = np.repeat(np.arange(lo, hi), m)
            g, loc = s_g[rep], s_l[rep]
            batch_seed = int(rng.integers(2**63))
            for a in range(A):
                r_a = np.random.default_rng(batch_seed)
                a_l = np.asarray(pi_l.act(loc, g, r_a), dtype=np.int64)
                g2, l2, r_g, r_l = game.step(g, loc, np.full(len(g), a, dtype=np.int64), a_l,
                                             r_a)
                rew[lo:hi, a] = (r_g + r_l.mean(axis=1)).reshape(b, m)
                obs = game.observe(l2)
                nxt[lo:hi, a] = feats(g2, obs).reshape(b, m, feats.dim)
                if act is not None:
                    act[lo:hi, a] = np.asarray(pi_next.act(g2, obs)).reshape(b, m)
            continue
        rep = np.repeat(np.arange(lo, hi), A * m)
        g, loc = s_g[rep], s_l[rep]
        a_g = np.tile(np.repeat(np.arange(A, dtype=np.int64), m), b)
        a_l = np.asarray(pi_l.act(loc, g, rng), dtype=np.int64)
        g2, l2, r_g, r_l = game.step(g, loc, a_g, a_l, rng)
        rew[lo:hi] = (r_g + r_l.mean(axis=1)).reshape(b, A, m)
        obs = game.observe(l2)
        nxt[lo:hi] = feats(g2, obs).reshape(b, A, m, feats.dim)
        if act is not None:
            act[lo:hi] = np.asarray(pi_next.act(g2, obs)).reshape(b, A, m)
    return rew, nxt, act


def surrogate_returns(game: GenerativeGame, pi_l: Any, pi_g: Any, s_g: NDArray[Any],
                      s_l: NDArray[Any], m: int, length: int, rng: np.random.Generator
                      ) -> NDArray[np.float64]:
    """Monte-Carlo returns of ``pi_g`` in the ``k``-agent surrogate, ``(N, |A_g|, m)``: for
    every state ``x``, global action ``a`` and draw ``j``, the discounted return
    ``sum_t gamma^t (r_g + mean r_l)`` over ``length`` steps of the surrogate (``step`` with
    the ``k`` agents of ``x``) that starts with ``a`` and then plays ``pi_g`` on the ``k``
    agents' summary and ``pi_l`` (SPEC 11; the rollout estimate of ``Q^{pi_g}(x, a)``).
    The ``j``-th draw of every action of a state uses the same random numbers (common random
    numbers, as :func:`surrogate_transitions` with ``common=True``), so the differences
    between actions carry little of the returns' noise."""
    N, A, gamma = len(s_g), game.n_ag, game.gamma
    out = np.empty((N, A, m), dtype=np.float64)
    for lo in range(0, N, _BATCH_STATES):
        hi = min(N, lo + _BATCH_STATES)
        rep = np.repeat(np.arange(lo, hi), m)
        batch_seed = int(rng.integers(2**63))
        for a in range(A):
            r_a = np.random.default_rng(batch_seed)
            g, loc = s_g[rep], s_l[rep]
            a_g = np.full(len(g), a, dtype=np.int64)
            total, disc = np.zeros(len(g)), 1.0
            for t in range(length):
                if t > 0:
                    a_g = np.asarray(pi_g.act(g, game.observe(loc)), dtype=np.int64)
                a_l = np.asarray(pi_l.act(loc, g, r_a), dtype=np.int64)
                g, loc, r_g, r_l = game.step(g, loc, a_g, a_l, r_a)
                total += disc * (np.asarray(r_g, dtype=np.float64) + r_l.mean(axis=1))
                disc *= gamma
            out[lo:hi, a] = total.reshape(hi - lo, m)
    return out


def rollout_advantages(game: GenerativeGame, pi_l: Any, pi_g: Any, s_g: NDArray[Any],
                       s_l: NDArray[Any], m: int, length: int, rng: np.random.Generator
                       ) -> NDArray[np.float32]:
    """The rollout estimate of ``Q^{pi_g}(x, a) - Q^{pi_g}(x, pi_g(x))``, ``(N, |A_g|)``:
    the mean over the ``m`` draws of :func:`surrogate_returns` (common random numbers), minus
    its value at ``pi_g``'s action (zero there)."""
    q = surrogate_returns(game, pi_l, pi_g, s_g, s_l, m, length, rng).mean(axis=2)
    b = np.asarray(pi_g.act(s_g, game.observe(s_l)), dtype=np.int64)
    return np.asarray(q - q[np.arange(len(q)), b][:, None], dtype=np.float32)


# ---------------------------------------------------------------------------------------
# fitted Q-iteration
# ---------------------------------------------------------------------------------------


def _max_q(net: nn.Module, x: torch.Tensor, chunk: int = 65_536) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net(x[i:i + chunk]).max(dim=1).values
                          for i in range(0, x.shape[0], chunk)])


def _gather_q(net: nn.Module, x: torch.Tensor, a: torch.Tensor,
              chunk: int = 65_536) -> torch.Tensor:
    """``net(x, a)`` row by row (fitted policy evaluation's target value)."""
    with torch.no_grad():
        return torch.cat([net(x[i:i + chunk]).gather(1, a[i:i + chunk]).squeeze(1)
                          for i in range(0, x.shape[0], chunk)])


def _chosen_q(net: nn.Module, chooser: nn.Module, x: torch.Tensor,
              chunk: int = 65_536) -> torch.Tensor:
    """``net(x, argmax_a chooser(x, a))``: the double-Q target value."""
    with torch.no_grad():
        out = []
        for i in range(0, x.shape[0], chunk):
            xb = x[i:i + chunk]
            a = chooser(xb).argmax(dim=1, keepdim=True)
            out.append(net(xb).gather(1, a).squeeze(1))
        return torch.cat(out)


def output_layer(net: nn.Module) -> nn.Linear:
    """The last linear layer of a Q-network (its outputs are the Q-values)."""
    return [mod for mod in net.modules() if isinstance(mod, nn.Linear)][-1]


def warm_up_rounds(gamma: float, share: float = 0.05) -> int:
    """The default warm-up of neural G-LEARN's early stopping: the fewest rounds ``M`` with
    ``gamma^M <= share``, after which fitted Q-iteration has propagated all but ``share`` of
    the discounted values (``gamma = 0.95``: 59; ``0.9``: 29)."""
    return max(1, math.ceil(math.log(share) / math.log(gamma))) if gamma > 0 else 1


def rollout_steps(targets: str, pi_g: Any, rollout_length: int | None, gamma: float) -> int:
    """The length of the Monte-Carlo rollouts of ``targets="rollout"`` (``None``:
    :func:`warm_up_rounds` of ``gamma``); ``ValueError`` for rollout targets without ``pi_g``
    or a bad length."""
    if targets == "rollout" and pi_g is None:
        raise ValueError("targets = 'rollout': needs the pi_g whose returns are rolled out")
    if rollout_length is None:
        return warm_up_rounds(gamma)
    return check_int("rollout_length", rollout_length, 1, 100_000)


def neural_g_learn(
    game: GenerativeGame,
    pi_l: Any,
    k: int,
    m: int = 10,
    seed: SeedLike = 0,
    *,
    states: int = 4000,
    pi_g: Any = None,
    explore: float = 1.0,
    rollout_horizon: int = 20,
    iterations: int = 300,
    epochs: int = 2,
    batch: int = 256,
    lr: float = 3e-3,
    hidden: int = 64,
    layers: int = 2,
    holdout: float = 0.2,
    patience: int = 10,
    min_iterations: int | None = None,
    double: bool = False,
    common_draws: bool = False,
    targets: str = "max",
    rollout_length: int | None = None,
    improve: str = "greedy",
    margin: float = 0.0,
    threads: int = 1,
    device: str = "auto",
    progress: bool = False,
) -> NeuralGlobalPolicy:
    """Neural G-LEARN (SPEC 11, module docstring): the global agent's best response to
    ``pi_l`` in the ``k``-agent surrogate by fitted Q-iteration, as a greedy
    :class:`NeuralGlobalPolicy`. ``am.g_learn(game, pi_l, k)`` calls it for generative games.

    ``m`` next-state draws per Bellman target; ``states`` surrogate states (reset law and
    rollouts, see :func:`surrogate_states`); ``iterations`` FQI rounds of ``epochs`` Adam
    epochs each, early-stopped on the held-out Bellman residual (``holdout``, ``patience``);
    ``min_iterations`` rounds run before early stopping may end the fit (``None``:
    :func:`warm_up_rounds` of ``gamma``, so the values have propagated; the residual of an
    almost constant first iterate is small and would stop the fit too early);
    ``double=True``: double-Q targets; ``common_draws=True``: the ``m`` draws of every
    global action share their random numbers (:func:`surrogate_transitions`: the action
    gaps are then estimated with far less noise than the values); ``targets="pi_g"``:
    fitted *evaluation* of the given ``pi_g`` (targets ``r + gamma Q(x', pi_g(x'))`` instead
    of the max) and its greedy policy, one policy-improvement step from ``pi_g`` (without
    ``pi_g``: the max); ``targets="rollout"`` (needs ``pi_g``): Monte-Carlo evaluation of
    ``pi_g`` instead (:func:`surrogate_returns`: ``m`` surrogate rollouts of
    ``rollout_length`` steps per state and action, ``None``: :func:`warm_up_rounds` of
    ``gamma``, with common random numbers across the actions), the network regressed on the
    advantage ``Q(x, a) - Q(x, pi_g(x))`` (its ``q_values`` are these advantages; no
    bootstrapping, so no error of the network at unseen next states enters the targets;
    early stopping on the held-out squared error, ``min_iterations`` defaults to 1) and its
    greedy policy: one rollout policy-improvement step from ``pi_g``;
    ``improve="cautious"`` (with ``targets="pi_g"`` or ``"rollout"``): the returned policy
    switches from ``pi_g``'s action to the greedy one only where the fitted advantage
    ``Q(x, a*) - Q(x, pi_g(x))`` exceeds ``margin`` (in units of ``Q``, the discounted
    return; :class:`NeuralGlobalPolicy` with ``base=pi_g``), so that fitting noise of
    order ``margin`` changes no decision (without ``pi_g``: the greedy policy); ``improve="greedy"``: the greedy policy of ``Q``
    everywhere; an MLP of ``layers`` x ``hidden`` tanh units; ``threads`` torch threads during the fit
    (restored afterwards); ``device="auto"`` uses CUDA when present. ``seed`` drives every
    draw (data, initialization, minibatches); on CPU the fit is reproducible.
    """
    k = game.check_k(k)
    m = check_int("m", m, 1)
    count = check_int("states", states, 10)
    check_int("iterations", iterations, 1)
    check_int("epochs", epochs, 1)
    check_int("batch", batch, 1)
    check_int("patience", patience, 1)
    check_choice("targets", targets, ["max", "pi_g", "rollout"])
    if min_iterations is None and targets == "rollout":  # regression: no propagation
        warm = 1
    elif min_iterations is None:  # the rounds for gamma^M to fall below 0.05
        warm = min(int(iterations), warm_up_rounds(game.gamma))
    else:
        warm = check_int("min_iterations", min_iterations, 0)
    if warm > iterations:
        raise ValueError(f"min_iterations = {warm}: expected at most iterations = {iterations}")
    if not isinstance(double, bool):
        raise ValueError(f"double = {double!r}: expected True or False")
    if not isinstance(common_draws, bool):
        raise ValueError(f"common_draws = {common_draws!r}: expected True or False")
    evaluated = pi_g if targets == "pi_g" else None  # without pi_g: the max (FQI)
    length = rollout_steps(targets, pi_g, rollout_length, game.gamma)
    improved = pi_g if targets == "rollout" else evaluated  # the policy a step improves on
    check_choice("improve", improve, ["greedy", "cautious"])
    gap = check_float("margin", margin, 0.0)
    if improve == "cautious" and targets not in ("pi_g", "rollout"):
        raise ValueError("improve = 'cautious': needs targets = 'pi_g' or 'rollout' (the "
                         "margin is measured on the estimated advantage over pi_g)")
    if improve == "greedy" and gap != 0.0:
        raise ValueError(f"margin = {margin!r}: applies only to improve = 'cautious' (the "
                         "greedy step changes every decision)")
    check_float("lr", lr, positive=True)
    hold = check_float("holdout", holdout, 0.0, 0.9)
    check_float("explore", explore, 0.0, 1.0)
    check_policies(game, FunctionGlobalPolicy(k, lambda s, o: s), pi_l)
    dev = resolve_device(device)
    ss = as_seed_sequence(seed)
    t0 = time.perf_counter()
    feats = Features.for_game(game, k)
    rng = child_rng(ss, 0)
    s_g, s_l = surrogate_states(game, pi_l, k, count, rng, pi_g, explore, rollout_horizon)
    if targets == "rollout":  # advantages over pi_g's action from Monte-Carlo returns
        adv = rollout_advantages(game, pi_l, pi_g, s_g, s_l, m, length, child_rng(ss, 1))
        rew = nxt = nxt_act = None
    else:
        rew, nxt, nxt_act = surrogate_transitions(game, pi_l, feats, s_g, s_l, m,
                                                  child_rng(ss, 1), common_draws, evaluated)
    X = feats(s_g, game.observe(s_l))
    t_data = time.perf_counter() - t0
    perm = child_rng(ss, 2).permutation(len(X))
    n_hold = int(round(hold * len(X))) if hold > 0 else 0
    hold_idx, train_idx = perm[:n_hold], perm[n_hold:]
    gamma = game.gamma
    arch: dict[str, Any] = {"in_dim": feats.dim, "out_dim": game.n_ag, "hidden": int(hidden),
                            "layers": int(layers)}
    if feats.set_dim is not None:
        assert isinstance(game.observe, LearnedEncoder)
        arch["encoder"] = {"global_dim": feats.global_dim, "set_dim": feats.set_dim,
                           "embed_dim": int(game.observe.embed_dim),
                           "embed_hidden": int(game.observe.hidden)}
    history: list[float] = []
    with limit_torch_threads(threads), seeded_torch(torch_seed(child(ss, 3))):
        net = q_network(arch)
        if isinstance(net, SetQNet):  # standardize the local states by the data's moments
            net.set_moments(X[:, feats.global_dim:])
        net = net.to(dev)
        target = q_network(arch).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        Xt = torch.from_numpy(X).to(dev)
        tr = torch.from_numpy(train_idx).to(dev)
        ho = torch.from_numpy(hold_idx).to(dev)
        fixed: torch.Tensor | None = None
        if rew is None:  # rollout targets: fixed advantages / scale, output bias 0
            scale = float(max(1e-8, float(np.abs(adv).max())))
            with torch.no_grad():
                last = output_layer(net)
                last.bias.fill_(0.0)
            fixed = torch.from_numpy(adv).to(dev) / scale
        else:
            assert nxt is not None
            Rt = torch.from_numpy(rew).to(dev)
            Nt = torch.from_numpy(nxt.reshape(-1, feats.dim)).to(dev)
            At = None if nxt_act is None else torch.from_numpy(nxt_act).to(dev)
            shape = rew.shape

            # the network predicts Q / scale (values of order one); its output bias starts
            # at the discounted mean reward, so FQI only has to propagate the differences
            scale = float(max(1e-8, float(np.abs(rew).max())) / (1.0 - gamma))
            with torch.no_grad():
                last = output_layer(net)
                last.bias.fill_(float(rew.mean()) / (1.0 - gamma) / scale)
            Rt = Rt / scale

        def bellman(q_net: nn.Module, idx: torch.Tensor | None = None,
                    chooser: nn.Module | None = None) -> torch.Tensor:
            if fixed is not None:  # rollout targets do not depend on the network
                return fixed if idx is None else fixed[idx]
            r = Rt if idx is None else Rt[idx]
            nx = Nt if idx is None else Nt.reshape(*shape, -1)[idx].reshape(-1, feats.dim)
            if At is not None:  # fitted evaluation of pi_g: its actions at the next states
                a = (At if idx is None else At[idx]).reshape(-1, 1)
                nq = _gather_q(q_net, nx, a).reshape(r.shape)
            elif chooser is None:
                nq = _max_q(q_net, nx).reshape(r.shape)
            else:  # double Q: chooser's argmax, q_net's value
                nq = _chosen_q(q_net, chooser, nx).reshape(r.shape)
            return (r + gamma * nq).mean(dim=2)

        best, best_state, since = math.inf, None, 0
        with Progress(enabled=progress) as bar:
            task = bar.add_task("neural G-LEARN (fitted Q-iteration)", total=iterations,
                                status="")
            for it in range(iterations):
                if double and it > 0:  # the two previous iterates: choose with the newer
                    Y = bellman(target, chooser=net)
                    target.load_state_dict(net.state_dict())
                else:
                    target.load_state_dict(net.state_dict())
                    Y = bellman(target)
                for _ in range(epochs):
                    order = tr[torch.randperm(len(tr), device=dev)]
                    for i in range(0, len(order), batch):
                        b = order[i:i + batch]
                        loss = ((net(Xt[b]) - Y[b]) ** 2).mean()
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                check_idx = ho if len(ho) else tr
                with torch.no_grad():
                    diff = net(Xt[check_idx]) - bellman(net, check_idx)
                    res = float((diff ** 2).mean()) * scale ** 2
                history.append(res)
                bar.advance(task, status=f"held-out Bellman residual {res:.3g}")
                if it + 1 < warm:  # warm-up: values still propagating, no stopping yet
                    continue
                if res < best - 1e-12:
                    best, since = res, 0
                    best_state = {kk: v.detach().clone() for kk, v in net.state_dict().items()}
                else:
                    since += 1
                    if since >= patience:
                        break
        assert best_state is not None
        net.load_state_dict(best_state)
        with torch.no_grad():  # fold the scale into the output layer: net(x) = Q(x, .)
            last = output_layer(net)
            last.weight.mul_(scale)
            last.bias.mul_(scale)
    info = {"method": "neural-fqi", "k": k, "m": m, "states": len(X), "iterations": len(history),
            "min_iterations": warm,
            "targets": "max" if targets == "pi_g" and evaluated is None else targets,
            "common_draws": common_draws,
            "holdout_residual": best, "residual_history": history, "seed": to_jsonable(
                int(seed) if isinstance(seed, int | np.integer) else None),
            "wall_data_s": t_data, "wall_s": time.perf_counter() - t0, "device": str(dev),
            "threads": int(threads)}
    if targets == "rollout":
        info.update(rollout_length=length, q="advantage over pi_g")
    if improve == "cautious" and improved is not None:  # without pi_g: greedy, as the max
        info.update(improve="cautious", margin=gap)
        return NeuralGlobalPolicy(k, net.cpu(), feats, game.n_ag, arch, info, game_meta(game),
                                  base=improved, margin=gap)
    return NeuralGlobalPolicy(k, net.cpu(), feats, game.n_ag, arch, info, game_meta(game))
