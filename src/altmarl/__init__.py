"""altmarl — ALTERNATING-MARL: approximate Nash equilibria for one global agent and ``n``
local agents via mean-field subsampling (arXiv 2603.03759). See SPEC.md / docs/."""

from altmarl import envs
from altmarl.evaluation import Evaluation, evaluate
from altmarl.game import DirichletInit, IIDInit, TabularGame
from altmarl.histogram import enumerate_histograms, num_histograms, rank, unrank
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.simulate import rollout_agents, rollout_counts

__version__ = "0.1.0"

__all__ = [
    "DirichletInit",
    "Evaluation",
    "GlobalPolicy",
    "IIDInit",
    "LocalPolicy",
    "TabularGame",
    "enumerate_histograms",
    "envs",
    "evaluate",
    "num_histograms",
    "rank",
    "rollout_agents",
    "rollout_counts",
    "unrank",
]
