"""L-LEARN (paper Algorithm 2, SPEC 5): best response of the shared local policy.

For a fixed global policy ``pi_g``, L-LEARN looks for ``argmax_{pi_l in Pi_l} V(pi_g, pi_l)``
over shared policies ``S_l x S_g -> Delta(A_l)`` (a deviation changes the policy of *all*
local agents, Definition 2.4). One entry point, :func:`l_learn` (``am.l_learn``), three
solvers, each with one frozen options object:

=====================  ============================  =================================
module                 SPEC / paper                  public names
=====================  ============================  =================================
``induced_vi.py``      5.1 (authors' practice)       :func:`induced_vi`,
                                                     :func:`global_action_distribution`,
                                                     :class:`InducedVIOptions`
``direct.py``          5.3 (direct optimizer)        :func:`direct_search`,
                                                     :class:`CRNEvaluator`,
                                                     :class:`DirectOptions`
``chained.py``         5.2, Alg. 21 / 28 / 17        :func:`chained_best_response`,
                                                     :func:`build_chained_mdp`,
                                                     :class:`ChainedOptions`
``ucfh.py``            5.2, App. C.1 (UCFH)          :class:`EpisodicMDP`, :func:`ucfh`,
                                                     :func:`solve`, :func:`policy_value`
``api.py``             5, 10                         :func:`l_learn`, :data:`SOLVERS`,
                                                     :data:`REGISTRY`,
                                                     :func:`solver_options`
=====================  ============================  =================================

Every solver returns a :class:`~altmarl.policies.LocalPolicy` (through :func:`l_learn`)
whose ``info`` holds ``"solver"``, ``"value"`` (estimated ``V(pi_g, pi_l')``),
``"value_stderr"``, ``"samples"`` (generative-model calls spent learning) and
``"wall_time"``.
"""

from altmarl.llearn.api import REGISTRY, SOLVERS, Solver, SolverOptions, l_learn, solver_options
from altmarl.llearn.chained import (
    ChainedMDP,
    ChainedOptions,
    build_chained_mdp,
    chained_best_response,
    chained_policy_value,
    extract_shared_policy,
    truncation_horizon,
)
from altmarl.llearn.direct import CRNEvaluator, DirectOptions, direct_search
from altmarl.llearn.induced_vi import (
    InducedVIOptions,
    global_action_distribution,
    induced_vi,
    policy_from_q,
)
from altmarl.llearn.ucfh import EpisodicMDP, UCFHResult, ucfh

__all__ = [
    "REGISTRY",
    "SOLVERS",
    "CRNEvaluator",
    "ChainedMDP",
    "ChainedOptions",
    "DirectOptions",
    "EpisodicMDP",
    "InducedVIOptions",
    "Solver",
    "SolverOptions",
    "UCFHResult",
    "build_chained_mdp",
    "chained_best_response",
    "chained_policy_value",
    "direct_search",
    "extract_shared_policy",
    "global_action_distribution",
    "induced_vi",
    "l_learn",
    "policy_from_q",
    "solver_options",
    "truncation_horizon",
    "ucfh",
]
