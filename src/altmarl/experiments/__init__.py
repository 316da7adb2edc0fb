"""Experiments: configuration files, runs, sweeps, backends, paper reproduction (SPEC 8.1,
9, 10).

* :mod:`~altmarl.experiments.config` — validated TOML experiment files;
* :mod:`~altmarl.experiments.runner` — one unit (one ``k`` x one training seed: train with
  ALTERNATING-MARL, evaluate with ``E`` seeds) and its atomic on-disk form;
* :mod:`~altmarl.experiments.backends` — in-process, process pool, Ray;
* :mod:`~altmarl.experiments.sweep` — run directories, ``--resume``, aggregation;
* :mod:`~altmarl.experiments.reproduce` — the warehouse of paper Appendix G.1.

Python use::

    from altmarl.experiments import load_config, run_sweep
    rep = run_sweep(load_config("my.toml"), "runs/my", workers=2)
    rep.summary["per_k"]
"""

from altmarl._random import derive_seed
from altmarl.experiments.config import (
    ExperimentConfig,
    load_config,
    packaged_config,
    packaged_configs,
    parse_config,
    resolve_target,
)
from altmarl.experiments.reproduce import reproduce_config
from altmarl.experiments.runner import UnitOutput, UnitTask, execute_unit
from altmarl.experiments.sweep import (
    SweepReport,
    aggregate,
    run_sweep,
    summary_table,
)
from altmarl.rundir import read_summary

__all__ = [
    "ExperimentConfig",
    "SweepReport",
    "UnitOutput",
    "UnitTask",
    "aggregate",
    "derive_seed",
    "execute_unit",
    "load_config",
    "packaged_config",
    "packaged_configs",
    "parse_config",
    "read_summary",
    "reproduce_config",
    "resolve_target",
    "run_sweep",
    "summary_table",
]
