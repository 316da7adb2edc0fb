"""Off-policy G-LEARN from logged data (paper Appendix E, eq. 38; SPEC 4 "Off-policy
variant"). Real dispatchers have logs, not generative models:

* :mod:`~altmarl.offpolicy.dataset` -- the documented on-disk log format (CSV + JSON
  sidecar, version 1), :class:`OfflineDataset` and the validating loader
  :func:`load_dataset` / :func:`read_metadata`;
* :mod:`~altmarl.offpolicy.record` -- :func:`record_logs`, logs of the ``n``-agent system
  under a behaviour policy, drawn with the count simulator's step (SPEC 3);
* :mod:`~altmarl.offpolicy.qlearning` -- :func:`g_learn_offpolicy`, Q-learning over
  ``(s_g, h, a_g)`` (eq. 38), and its step sizes :func:`step_sizes`;
* :mod:`~altmarl.offpolicy.compare` -- :func:`compare_generative`, the distance to the
  generative G-LEARN fixed point and the value gap;
* :mod:`~altmarl.offpolicy.ope` -- :func:`offpolicy_evaluate`, the value of a policy from
  logs (fitted-Q evaluation, per-decision importance sampling, weighted IS; joint policies
  ``(pi_g, pi_l)`` on logs with local actions) with bootstrap intervals and coverage
  diagnostics.

Data flow: ``record_logs`` (or any logger writing the format) -> ``OfflineDataset.save`` ->
``load_dataset`` -> ``g_learn_offpolicy`` -> a :class:`~altmarl.policies.GlobalPolicy`.
"""

from altmarl.offpolicy.compare import compare_generative
from altmarl.offpolicy.dataset import (
    LOG_FORMAT,
    LOG_VERSION,
    OfflineDataset,
    check_local_behaviour,
    columns,
    load_dataset,
    local_columns,
    read_metadata,
)
from altmarl.offpolicy.ope import CoverageWarning, OffPolicyEstimate, offpolicy_evaluate
from altmarl.offpolicy.qlearning import g_learn_offpolicy, step_sizes
from altmarl.offpolicy.record import record_logs

__all__ = [
    "LOG_FORMAT",
    "LOG_VERSION",
    "CoverageWarning",
    "OffPolicyEstimate",
    "OfflineDataset",
    "check_local_behaviour",
    "columns",
    "compare_generative",
    "g_learn_offpolicy",
    "load_dataset",
    "local_columns",
    "offpolicy_evaluate",
    "read_metadata",
    "record_logs",
    "step_sizes",
]
