"""The layout of a tabular run directory (``altmarl run / sweep / reproduce``; SPEC 10) and
its readers.

Written by :mod:`altmarl.experiments` (the sweep driver and the unit runner), read by
:mod:`altmarl.plots` and the command line. This module imports neither, so the figures
never import the code that runs experiments. The files of a run directory are listed in
:mod:`altmarl.experiments.sweep`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: ``format`` tag and version of ``summary.json``
SUMMARY_FORMAT = "altmarl.run_summary"
SUMMARY_VERSION = 1


def unit_name(k: int, t: int) -> str:
    """Directory name of unit ``(k, t)``: ``k0005_t00``."""
    return f"k{k:04d}_t{t:02d}"


def units_dir(run_dir: str | os.PathLike[str]) -> Path:
    """``RUN_DIR/units``: one sub-directory per finished unit (:func:`unit_name`)."""
    return Path(run_dir) / "units"


def read_run_record(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` record of a run directory (``"config"`` holds the resolved
    configuration: every default filled in, ``sweep.k`` the sorted list of ``k``)."""
    p = Path(run_dir) / "config.json"
    if not p.is_file():
        raise ValueError(f"{run_dir}: not an altmarl run directory (no config.json)")
    return json.loads(p.read_text())  # type: ignore[no-any-return]


def read_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``summary.json`` of a run directory (checks the format tag)."""
    p = Path(run_dir) / "summary.json"
    if not p.is_file():
        raise ValueError(f"{run_dir}: no summary.json (not a run directory, or no unit has "
                         "finished yet)")
    d = json.loads(p.read_text())
    if d.get("format") != SUMMARY_FORMAT:
        raise ValueError(f"{p}: not an altmarl run summary")
    return d  # type: ignore[no-any-return]


__all__ = [
    "SUMMARY_FORMAT",
    "SUMMARY_VERSION",
    "read_run_record",
    "read_summary",
    "unit_name",
    "units_dir",
]
