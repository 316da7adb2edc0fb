"""Small PyTorch building blocks of the continuous extension (paper Appendix G.2).

* :func:`mlp` — the paper's "two-layer feed-forward network, 64 hidden units, tanh".
  The activation is computed as ``tanh(x) = 2 sigmoid(2x) - 1`` (:class:`Tanh`): the same
  function, but PyTorch's CPU sigmoid kernel is several times faster than its tanh kernel
  on this build, and the local policy is evaluated for every robot at every step.
* :class:`PolicyTable` — the local policy network "compiled" to a bilinear table of its
  action probabilities on a fine ``(s_g, s_l)`` grid. The simulator calls it for all
  ``R * n`` robots per step at a few nanoseconds per robot instead of a 64x64 matrix
  product; the tests bound its deviation from the network (about ``1e-4`` in
  probability with the default 401 x 401 grid). Training uses the table to *generate*
  data (TRPO and the UPDATE comparisons); the reported evaluations use the network.
* state-dict helpers for pickle-free checkpoints (``torch.save`` of tensors only,
  loaded with ``weights_only=True``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from altmarl.io import atomic_write_bytes, read_bytes_bounded
from altmarl.limits import MAX_NPZ_BYTES


class Tanh(nn.Module):
    """``tanh(x)`` computed as ``2 sigmoid(2x) - 1`` (identical function, faster on CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(2.0 * x) - 1.0


def mlp(in_dim: int, out_dim: int, hidden: int = 64, layers: int = 2) -> nn.Sequential:
    """``layers`` hidden layers of ``hidden`` tanh units, linear output (paper G.2)."""
    if layers < 1 or hidden < 1:
        raise ValueError(f"layers = {layers}, hidden = {hidden}: expected integers >= 1")
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), Tanh()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run a block with PyTorch's global RNG seeded, restoring its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def torch_seed(ss: np.random.SeedSequence) -> int:
    """A 63-bit integer seed for PyTorch derived from a numpy ``SeedSequence``."""
    return int(ss.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array(
        [1, 2**31], dtype=np.uint64)) & (2**63 - 1)


def save_state(path: str | os.PathLike[str], tensors: Mapping[str, Any]) -> None:
    """Atomically ``torch.save`` a dict of state dicts (tensors only, no pickled objects)."""
    buf = io.BytesIO()
    torch.save(dict(tensors), buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    r"""Load a file written by :func:`save_state` with ``weights_only=True`` (no code runs).

    The file is untrusted: a FIFO or device is refused and so is a file larger than
    ``limits.MAX_NPZ_BYTES`` (both before reading); every tensor must be finite (a NaN
    network is refused here rather than resumed silently). Failures are ``ValueError``\ s
    naming the file (``FileNotFoundError`` when it is missing)."""
    data = read_bytes_bounded(path, MAX_NPZ_BYTES, "altmarl checkpoint")
    try:
        out = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted or foreign file, or one that needs pickle
        raise ValueError(f"{path}: not a valid altmarl checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:300]})") from None
    if not isinstance(out, dict):
        raise ValueError(f"{path}: expected a dict of state dicts, got {type(out).__name__}")
    _check_finite_tensors(out, str(path), "")
    return out


def _check_finite_tensors(obj: Any, path: str, key: str) -> None:
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            if not bool(torch.isfinite(obj).all()):
                raise ValueError(f"{path}: tensor {key or '<root>'} holds NaN or infinite "
                                 "values; refusing a diverged network")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite_tensors(v, path, f"{key}.{k}" if key else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_finite_tensors(v, path, f"{key}[{i}]")


def _forward_inplace(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for an :func:`mlp` without autograd, reusing buffers (same operations in
    the same order as :class:`Tanh`, so the same numbers)."""
    if not isinstance(net, nn.Sequential):
        return net(x)
    h = x
    for mod in net:
        if isinstance(mod, nn.Linear):
            h = torch.addmm(mod.bias, h, mod.weight.t())
        elif isinstance(mod, Tanh):
            h.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)
        else:
            h = mod(h)
    return h


def forward_chunked(net: nn.Module, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``net(x)`` in chunks of rows under ``inference_mode`` (large single batches are
    memory-bound and several times slower on CPU)."""
    with torch.inference_mode():
        if x.shape[0] <= chunk:
            return _forward_inplace(net, x)
        return torch.cat([_forward_inplace(net, c) for c in x.split(chunk)])


class PolicyTable:
    """Bilinear table of a local policy's action probabilities on a ``(s_g, s_l)`` grid.

    ``cdf[c, j, i] = sum_{a <= c} pi(a | s_l = x_i, s_g = x_j)`` for ``c < |A_l| - 1``
    on the grid ``x = linspace(low, high, grid)``; between grid points the probabilities
    are interpolated bilinearly (a convex combination of distributions, so still a
    distribution). The network input is ``(s_l, s_g) / max(|low|, |high|)``.
    """

    def __init__(self, net: nn.Module, low: float, high: float, n_actions: int,
                 grid: int = 401) -> None:
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ValueError(f"grid = {grid!r}: expected an integer >= 2")
        if n_actions < 2:
            raise ValueError(f"n_actions = {n_actions!r}: expected an integer >= 2")
        self.low, self.high, self.grid, self.n_actions = float(low), float(high), grid, n_actions
        x = np.linspace(self.low, self.high, self.grid)
        scale = max(abs(self.low), abs(self.high))
        sl, sg = np.meshgrid(x, x)  # [j, i] = (s_l = x_i, s_g = x_j)
        inp = np.stack([sl.ravel(), sg.ravel()], axis=1).astype(np.float32) / scale
        logits = forward_chunked(net, torch.from_numpy(inp))
        probs = torch.softmax(logits.double(), dim=1).numpy()
        cdf = np.cumsum(probs, axis=1)[:, : n_actions - 1]
        self.cdf = np.ascontiguousarray(
            cdf.reshape(self.grid, self.grid, n_actions - 1).transpose(2, 0, 1)
            .astype(np.float32))  # (C, G_g, G_l)
        self.step = (self.high - self.low) / (self.grid - 1)

    def _interp(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> list[NDArray[np.float32]]:
        """Interpolated cumulative probabilities: ``C`` arrays of shape ``(R, n)``."""
        R = s_l.shape[0]
        G = self.grid
        fy = (np.asarray(s_g, dtype=np.float64) - self.low) / self.step
        j = np.clip(np.floor(fy).astype(np.int64), 0, G - 2)
        wy = np.clip(fy - j, 0.0, 1.0).astype(np.float32)
        fx = (np.asarray(s_l, dtype=np.float32) - np.float32(self.low)) * np.float32(1.0 / self.step)
        i = np.clip(fx.astype(np.int64), 0, G - 2)  # truncation = floor since fx >= 0
        wx = fx - i
        idx = i + (np.arange(R) * G)[:, None]
        out = []
        for c in range(self.cdf.shape[0]):
            # the table row of each rollout, interpolated along s_g: (R, G) -> flat
            rows = (self.cdf[c, j] * (1.0 - wy)[:, None] + self.cdf[c, j + 1] * wy[:, None]).ravel()
            left = np.take(rows, idx)
            right = np.take(rows, idx + 1)
            right -= left
            right *= wx
            right += left
            out.append(right)
        return out

    def probs(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> NDArray[np.float64]:
        """Action probabilities ``(R, n, |A_l|)`` (for tests and diagnostics)."""
        c = np.stack(self._interp(np.atleast_2d(s_l), np.atleast_1d(s_g))).astype(np.float64)
        full = np.concatenate([c, np.ones((1,) + c.shape[1:])], axis=0)
        p = np.diff(full, axis=0, prepend=0.0)
        return np.moveaxis(p, 0, -1)

    def sample(self, s_l: NDArray[Any], s_g: NDArray[Any], u: NDArray[Any]) -> NDArray[np.int8]:
        """Inverse-CDF draw with uniforms ``u (R, n)``."""
        c = self._interp(s_l, s_g)
        a = (u > c[0]).astype(np.int8)
        for cc in c[1:]:
            a += u > cc
        return a

    def greedy(self, s_l: NDArray[Any], s_g: NDArray[Any]) -> NDArray[np.int8]:
        """Most probable action (ties: lowest index)."""
        c = self._interp(s_l, s_g)
        best = c[0]
        a = np.zeros(best.shape, dtype=np.int8)
        for j in range(1, len(c) + 1):
            pj = (c[j] if j < len(c) else np.float32(1.0)) - c[j - 1]
            better = pj > best
            a[better] = j
            best = np.maximum(best, pj)
        return a
