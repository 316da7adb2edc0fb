"""altmarl — ALTERNATING-MARL: approximate Nash equilibria for one global agent and ``n``
local agents via mean-field subsampling (arXiv 2603.03759). See docs/ (docs/math.md for the
formulas, docs/architecture.md for the layout)."""

from importlib import metadata as _metadata

from altmarl import envs, exact, generative, glearn, sampling
from altmarl.alternating import AlternatingResult, alternating_marl
from altmarl.evaluation import Evaluation, evaluate
from altmarl.game import DirichletInit, IIDInit, TabularGame
from altmarl.generative import GenerativeGame
from altmarl.glearn import GLearnOptions, RewardModel, g_learn, g_learn_stochastic
from altmarl.histogram import enumerate_histograms, num_histograms, rank, unrank
from altmarl.llearn import l_learn
from altmarl.offpolicy import (
    OfflineDataset,
    g_learn_offpolicy,
    load_dataset,
    offpolicy_evaluate,
    record_logs,
)
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.simulate import rollout_agents, rollout_counts

try:  # the one source of the version is pyproject.toml, read from the installed metadata
    __version__: str = _metadata.version("altmarl")
except _metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

__all__ = [
    "AlternatingResult",
    "DirichletInit",
    "Evaluation",
    "GLearnOptions",
    "GenerativeGame",
    "GlobalPolicy",
    "IIDInit",
    "LocalPolicy",
    "OfflineDataset",
    "RewardModel",
    "TabularGame",
    "alternating_marl",
    "enumerate_histograms",
    "envs",
    "exact",
    "evaluate",
    "g_learn",
    "g_learn_offpolicy",
    "g_learn_stochastic",
    "generative",
    "glearn",
    "l_learn",
    "load_dataset",
    "num_histograms",
    "offpolicy_evaluate",
    "rank",
    "record_logs",
    "rollout_agents",
    "rollout_counts",
    "sampling",
    "unrank",
]
