"""Generative games (SPEC 11): any simulator, any state space.

* :class:`GenerativeGame` — a game given by ``reset`` / ``step`` functions, validated;
* observers (:mod:`altmarl.generative.observe`): :class:`Counts`, :class:`Histogram`,
  :class:`SetEncoder`, :class:`LearnedEncoder` — the global agent's permutation-invariant summary of its ``k``-sample;
* the policy protocol and wrappers (:mod:`altmarl.generative.policies`);
* the per-agent simulator (:mod:`altmarl.generative.simulator`), vectorized over rollouts
  and agents;
* the generative view of a tabular game (:mod:`altmarl.generative.tabular`,
  ``TabularGame.as_generative()``).
"""

from altmarl.generative.game import GenerativeGame
from altmarl.generative.observe import (
    Counts,
    Histogram,
    LearnedEncoder,
    Observer,
    SetEncoder,
)
from altmarl.generative.policies import (
    FunctionGlobalPolicy,
    FunctionLocalPolicy,
    GlobalActor,
    LocalActor,
    UniformGlobalPolicy,
    UniformLocalPolicy,
    check_policies,
)
from altmarl.generative.simulator import (
    GenerativeTrajectories,
    rollout,
    simulate,
    subsample_indices,
)

__all__ = [
    "Counts",
    "FunctionGlobalPolicy",
    "FunctionLocalPolicy",
    "GenerativeGame",
    "GenerativeTrajectories",
    "GlobalActor",
    "Histogram",
    "LearnedEncoder",
    "LocalActor",
    "Observer",
    "SetEncoder",
    "UniformGlobalPolicy",
    "UniformLocalPolicy",
    "check_policies",
    "rollout",
    "simulate",
    "subsample_indices",
]
