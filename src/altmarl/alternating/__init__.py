"""ALTERNATING-MARL (paper Algorithm 14, SPEC 6): one loop for every kind of game.

* :mod:`~altmarl.alternating.loop` — the loop (:func:`run_alternating`), the adapter
  protocol a game supplies (:class:`GameAdapter`: proposals, paired evaluations, seeds,
  hooks), the per-proposal history record (:class:`StepRecord`);
* :mod:`~altmarl.alternating.tabular` — tabular games: ``am.alternating_marl``, its
  validated settings (:class:`AlternatingOptions`) and result (:class:`AlternatingResult`);
* :mod:`~altmarl.alternating.generative` — generative games (SPEC 11): neural G-LEARN and
  L-LEARN, per-sweep common random numbers, checkpoints (``am.alternating_marl`` dispatches
  to it; imported on use, it needs PyTorch).

The continuous warehouse plugs into the same loop (:mod:`altmarl.continuous.alternating`);
the UPDATE comparison all of them use is :mod:`altmarl.update`.
"""

from altmarl.alternating.loop import (
    INITIAL,
    PLAYERS,
    GameAdapter,
    LoopResult,
    LoopState,
    Proposal,
    StepRecord,
    run_alternating,
)
from altmarl.alternating.tabular import (
    AlternatingOptions,
    AlternatingResult,
    GlobalLearner,
    LocalLearner,
    TabularAdapter,
    alternating_marl,
    run_tabular,
)

__all__ = [
    "INITIAL",
    "PLAYERS",
    "AlternatingOptions",
    "AlternatingResult",
    "GameAdapter",
    "GlobalLearner",
    "LocalLearner",
    "LoopResult",
    "LoopState",
    "Proposal",
    "StepRecord",
    "TabularAdapter",
    "alternating_marl",
    "run_alternating",
    "run_tabular",
]
