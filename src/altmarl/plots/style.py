"""The look shared by every figure: the pyplot backend, the colours and saving a PNG.

Matplotlib runs on the non-interactive ``Agg`` backend and is imported only when a figure
is drawn. :data:`PALETTE` names every colour the figures use, so a restyle happens here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

#: the colour of each role in the figures (matplotlib colour specifications)
PALETTE: dict[str, str] = {
    "value": "tab:blue",  # discounted reward / value estimates
    "runtime": "tab:red",  # training wall time
    "cpu": "tab:gray",  # CPU time
    "mode": "tab:purple",  # a_g != population mode
    "accepted": "tab:green",  # UPDATE accepted the proposal
    "rejected": "tab:red",  # UPDATE rejected it
    "no_improvement": "lightgrey",  # the proposal did not improve
    "legend_marker": "grey",  # marker shapes in legends
    "in_sg": "black",  # fraction of robots in the dispatcher's zone s_g
    "fullest": "dimgray",  # fraction of robots in the fullest zone
    "baseline": "crimson",  # random play
    "action": "dodgerblue",  # the dispatcher's action a_g
    "population_mode": "black",  # the population mode
    "state": "green",  # the global state s_g
    "reference": "gray",  # reference lines (best fixed policy, slope -1/2)
    "other": "k",  # anything without a role
}

#: colour map of categorical series (zones, units)
CATEGORICAL = "tab10"

#: colour map of occupancy heat maps (fraction of robots, 0 to 1)
HEATMAP = "YlOrRd"


def series_color(i: int) -> str:
    """The colour of the ``i``-th series of a figure (matplotlib's colour cycle, ``C{i}``)."""
    return f"C{i}"


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG atomically (``dpi``; ``tight``: crop to the drawn area) and
    close it; returns the path."""
    from altmarl.io import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    if tight:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    else:
        fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    pyplot().close(fig)
    return path


def integer_ticks(ax: Any) -> None:
    """Integer ticks on the x axis (``k``, proposal numbers)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


__all__ = ["CATEGORICAL", "HEATMAP", "PALETTE", "integer_ticks", "pyplot", "save_figure",
           "series_color"]
