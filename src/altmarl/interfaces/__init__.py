"""Ecosystem interfaces: Gymnasium and PettingZoo environments of the game (docs/interfaces.md).

* :class:`GlobalAgentEnv` — the global agent's MDP for a fixed ``pi_l`` (Gymnasium);
* :class:`LocalAgentEnv` — a representative local agent's MDP for fixed ``pi_g``, ``pi_l``;
* :class:`AltMarlParallelEnv` / :func:`parallel_env` — the ``(n + 1)``-agent game
  (PettingZoo ``ParallelEnv``);
* :class:`GlobalObsCodec` / :class:`LocalObsCodec` — the observation encoders these
  environments use, for turning a trained external model's inputs back into ``(s_g, h)``
  (NumPy only).

gymnasium and pettingzoo are optional (``pip install 'altmarl[gym]'``); Stable-Baselines3
for the baseline in ``benchmarks/bench_sb3.py`` is ``pip install 'altmarl[sb3]'``. Importing
this package never needs them: the names are loaded on first access, and a missing extra
raises an ``ImportError`` naming it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altmarl.interfaces._core import GlobalObsCodec, LocalObsCodec
    from altmarl.interfaces.gym_envs import GlobalAgentEnv, LocalAgentEnv, register_envs
    from altmarl.interfaces.pettingzoo_env import AltMarlParallelEnv, parallel_env

_LAZY = {
    "GlobalObsCodec": "altmarl.interfaces._core",
    "LocalObsCodec": "altmarl.interfaces._core",
    "GlobalAgentEnv": "altmarl.interfaces.gym_envs",
    "LocalAgentEnv": "altmarl.interfaces.gym_envs",
    "register_envs": "altmarl.interfaces.gym_envs",
    "AltMarlParallelEnv": "altmarl.interfaces.pettingzoo_env",
    "parallel_env": "altmarl.interfaces.pettingzoo_env",
}

__all__ = [
    "AltMarlParallelEnv",
    "GlobalAgentEnv",
    "GlobalObsCodec",
    "LocalAgentEnv",
    "LocalObsCodec",
    "parallel_env",
    "register_envs",
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'altmarl.interfaces' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
