"""The exact solver for small games (SPEC 7), built from small parts like OpenSpiel's
NashConv:

* :mod:`altmarl.exact.chain` — the ``(s_g, N)`` state space, the hypergeometric action law,
  the count transitions and the exact transition matrix (:class:`CountChain`);
* :mod:`altmarl.exact.values` — values and discounted occupancy of a joint policy (through
  :mod:`altmarl.planning`);
* :mod:`altmarl.exact.best_response` — full-information, restricted (``k``-sample) and
  local best responses (:class:`BestResponse`);
* :mod:`altmarl.exact.nash_gap` — the exact Nash gap (best-response values minus the
  value; :class:`NashGapResult`) and, for large games, the Monte-Carlo *estimate*
  (:func:`estimate_nash_gap`, a lower bound), and the certificate every run directory
  carries (:func:`nash_gap_certificate`);
* :mod:`altmarl.exact.solver` — :class:`ExactSolver`, the facade
  (``am.exact.ExactSolver(game, k)``, SPEC 10).
"""

from altmarl.exact.best_response import BestResponse
from altmarl.exact.chain import CountChain, count_transition, hypergeometric_weights
from altmarl.exact.nash_gap import (
    GapEstimate,
    NashGapCertificate,
    NashGapEstimate,
    NashGapResult,
    estimate_nash_gap,
    exact_nash_gap,
    nash_gap_certificate,
)
from altmarl.exact.solver import ExactSolver

__all__ = [
    "BestResponse",
    "CountChain",
    "ExactSolver",
    "GapEstimate",
    "NashGapCertificate",
    "NashGapEstimate",
    "NashGapResult",
    "count_transition",
    "estimate_nash_gap",
    "exact_nash_gap",
    "hypergeometric_weights",
    "nash_gap_certificate",
]
