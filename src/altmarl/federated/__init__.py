"""Federated optimization with partial participation (paper Example 2.6, SPEC 8.3).

* :mod:`.simulator` — a federated-learning simulator that really trains a multinomial
  logistic regression on scikit-learn's bundled ``load_digits``, split non-IID across
  ``n`` clients, vectorized over clients;
* :mod:`.game` — estimation of the tabular game (SPEC 1) from observed transitions;
* :mod:`.controllers` — online execution of a joint policy, the baselines and the
  exploratory behaviour, and the episode loop;
* :mod:`.experiment` — explore, estimate, ALTERNATING-MARL for several ``k``, evaluation
  in the real simulator, tables and plots (``altmarl federated run --experiment
  estimated``: the estimated-table baseline);
* :mod:`.drift` — clustered federated learning under data drift as a generative game
  (SPEC 11): the server's best broadcast depends on the population;
* :mod:`.drift_eval` — its real deployment simulator with common random numbers, and the
  FedAvg baselines.

Needs scikit-learn (extra ``fed``) for the data set; see docs/federated.md.
"""

from altmarl.federated.controllers import (
    EpisodeLog,
    ExploreController,
    FedAvgController,
    FixedController,
    PolicyController,
    run_episode,
)
from altmarl.federated.drift import DriftConfig, DriftData, drift_game, make_drift_data
from altmarl.federated.drift_eval import Method, MethodRun, run_method
from altmarl.federated.experiment import FederatedExperiment, run_experiment
from altmarl.federated.game import (
    EstimationReport,
    TransitionCounts,
    collect_tabular,
    estimate_game,
)
from altmarl.federated.simulator import (
    FederatedConfig,
    FederatedSimulator,
    Federation,
    make_federation,
)

__all__ = [
    "DriftConfig",
    "DriftData",
    "Method",
    "MethodRun",
    "drift_game",
    "make_drift_data",
    "run_method",
    "EpisodeLog",
    "EstimationReport",
    "ExploreController",
    "FedAvgController",
    "FederatedConfig",
    "FederatedExperiment",
    "FederatedSimulator",
    "Federation",
    "FixedController",
    "PolicyController",
    "TransitionCounts",
    "collect_tabular",
    "estimate_game",
    "make_federation",
    "run_episode",
    "run_experiment",
]
