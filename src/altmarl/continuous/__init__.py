"""Continuous states (paper Appendix G.2, SPEC 8.2): the continuous warehouse, neural
G-LEARN, TRPO L-LEARN, ALTERNATING-MARL and the k-sweep. See docs/continuous.md.

The environment and the evaluation (:mod:`.env`, :mod:`.evaluation`) need only NumPy; the
learners need PyTorch (``pip install altmarl[torch]``). Names are imported lazily, so
``import altmarl.continuous`` works without PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ContinuousWarehouse": "env",
    "ContinuousTrajectories": "env",
    "simulate": "env",
    "random_global": "env",
    "random_local": "env",
    "mode_global": "env",
    "constant_global": "env",
    "ContinuousEvaluation": "evaluation",
    "evaluate_continuous": "evaluation",
    "random_play": "evaluation",
    "GlobalAgent": "global_agent",
    "g_learn_ce": "global_agent",
    "g_learn_rollout": "global_agent",
    "LocalAgent": "trpo",
    "TRPOConfig": "trpo",
    "l_learn_trpo": "trpo",
    "ContinuousConfig": "alternating",
    "ContinuousResult": "alternating",
    "run_continuous": "alternating",
    "load_policies": "alternating",
    "run_sweep": "sweep",
    "plot_sweep": "sweep",
    "quick_config": "sweep",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'altmarl.continuous' has no attribute {name!r}")
    return getattr(importlib.import_module(f"altmarl.continuous.{mod}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
