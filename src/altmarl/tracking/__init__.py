"""Experiment tracking (SPEC 10): one callback interface, four backends.

``am.alternating_marl(..., callbacks=[...])``, the sweep runner
(:func:`altmarl.experiments.sweep.run_sweep`), the continuous runs and the ``--track``
option of ``altmarl run / sweep / continuous run / continuous sweep`` report to
:class:`Tracker` objects (:mod:`altmarl.tracking.base`: the events and their tags); the
backends are in :mod:`altmarl.tracking.writers`:

=============== ======================================= =============================
``--track``     class                                   where it writes
=============== ======================================= =============================
``csv``         :class:`CSVTracker`                     ``RUN_DIR/tracking/``
``tensorboard`` :class:`TensorBoardTracker`             ``RUN_DIR/tensorboard/``
``mlflow``      :class:`MLflowTracker`                  ``mlruns/`` (SQLite), or ``MLFLOW_TRACKING_URI``
``wandb``       :class:`WandbTracker`                   ``RUN_DIR/wandb/`` (offline unless ``WANDB_MODE``)
=============== ======================================= =============================

Example::

    from altmarl.tracking import TensorBoardTracker
    with TensorBoardTracker("tb/warehouse") as tb:
        am.alternating_marl(game, k=5, callbacks=[tb])
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from altmarl._validate import check_choice
from altmarl.tracking.base import (
    DECISION_CODES,
    BaseTracker,
    Tracker,
    Trackers,
    as_trackers,
    final_of_result,
    final_of_summary,
    flatten_params,
    proposal_metrics,
    unit_metrics,
)
from altmarl.tracking.writers import CSVTracker, MLflowTracker, TensorBoardTracker, WandbTracker

#: ``--track`` kinds -> the package each needs and the extra that installs it
TRACKERS = {"csv": (None, None), "tensorboard": ("tensorboard", "tensorboard"),
            "mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}


def check_kinds(kinds: Iterable[str], flag: str = "--track") -> list[str]:
    """Validate tracker kinds (each once, in order) before any work: an unknown kind or a
    missing package is a ``ValueError`` naming the option and the extra to install."""
    out: list[str] = []
    for kind in kinds:
        check_choice(flag, kind, TRACKERS)
        pkg, extra = TRACKERS[kind]
        if pkg is not None and importlib.util.find_spec(pkg) is None:
            raise ValueError(f"{flag} {kind}: needs the {pkg} package: pip install "
                             f"'altmarl[{extra}]'")
        if kind not in out:
            out.append(kind)
    return out


def make_tracker(kind: str, run_dir: str | os.PathLike[str], name: str | None = None
                 ) -> BaseTracker:
    """The tracker of one ``--track`` kind for the run directory ``run_dir`` (see the
    table of the module docstring); ``name`` names the MLflow / W&B run (default: the
    directory's name)."""
    rd = Path(run_dir)
    run_name = name or rd.resolve().name
    kind = check_kinds([kind])[0]
    if kind == "csv":
        return CSVTracker(rd / "tracking")
    if kind == "tensorboard":
        return TensorBoardTracker(rd / "tensorboard")
    if kind == "mlflow":
        return MLflowTracker(run_name)
    return WandbTracker(rd, run_name)


def make_trackers(kinds: Iterable[str], run_dir: str | os.PathLike[str],
                  name: str | None = None) -> Trackers:
    """:func:`make_tracker` for each kind (validated first by :func:`check_kinds`)."""
    return Trackers([make_tracker(k, run_dir, name) for k in check_kinds(kinds)])


__all__ = ["DECISION_CODES", "TRACKERS", "BaseTracker", "CSVTracker", "MLflowTracker",
           "TensorBoardTracker", "Tracker", "Trackers", "WandbTracker", "as_trackers",
           "check_kinds", "final_of_result", "final_of_summary", "flatten_params",
           "make_tracker", "make_trackers", "proposal_metrics", "unit_metrics"]
