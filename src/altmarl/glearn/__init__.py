"""G-LEARN (paper Algorithm 22, SPEC 4): the global agent's best response to a fixed shared
local policy ``pi_l``, planned in the ``k``-agent mean-field surrogate.

Modules, in the order the data flows (``docs/g_learn.md`` explains the design choices):

* :mod:`~altmarl.glearn.options` — :class:`GLearnOptions`, the frozen validated options and
  their named defaults;
* :mod:`~altmarl.glearn.states` — the surrogate's states: histograms ``H_k`` (mean-field)
  or ordered ``k``-tuples (standard), agent counts, the tuple-to-histogram ``Q`` average;
* :mod:`~altmarl.glearn.draws` — the fixed next-state samples (common random numbers:
  ``crn``) and the exact next-histogram law (``m=None``);
* :mod:`~altmarl.glearn.operator` — the surrogate model and the empirical operator
  ``T_hat`` (:func:`empirical_operator`);
* :mod:`~altmarl.glearn.solvers` — value / policy iteration on ``T_hat`` (over
  :mod:`altmarl.planning`), the greedy policy with seeded ties;
* :mod:`~altmarl.glearn.rewards` — stochastic reward models (Appendix F, Assumption F.1);
* :mod:`~altmarl.glearn.stochastic` — the randomized operator ``T_tilde`` (Definition F.2);
* :mod:`~altmarl.glearn.api` — :func:`g_learn` (``am.g_learn``) and
  :func:`g_learn_stochastic` (``am.g_learn_stochastic``).

The package is ``altmarl.glearn``; ``altmarl.g_learn`` is the function (SPEC 10).
"""

from altmarl.glearn.api import g_learn, g_learn_stochastic, mean_reward_q
from altmarl.glearn.draws import exact_next_histograms
from altmarl.glearn.operator import EmpiricalOperator, empirical_operator, pi_l_table
from altmarl.glearn.options import GLearnOptions
from altmarl.glearn.rewards import Noise, RewardModel, bernoulli, sampler, truncated_normal, uniform
from altmarl.glearn.solvers import ConvergenceWarning, policy_from_operator, solve
from altmarl.glearn.states import histogram_q, table_size
from altmarl.glearn.stochastic import averaged_rewards, randomized_operator

__all__ = [
    "ConvergenceWarning",
    "EmpiricalOperator",
    "GLearnOptions",
    "Noise",
    "RewardModel",
    "averaged_rewards",
    "bernoulli",
    "empirical_operator",
    "exact_next_histograms",
    "g_learn",
    "g_learn_stochastic",
    "histogram_q",
    "mean_reward_q",
    "pi_l_table",
    "policy_from_operator",
    "randomized_operator",
    "sampler",
    "solve",
    "table_size",
    "truncated_normal",
    "uniform",
]
