"""The look shared by every figure: the pyplot backend, the colours and saving a PNG.

Matplotlib runs on the non-interactive ``Agg`` backend and is imported only when a figure
is drawn. :data:`PALETTE` names every colour the figures use (the colour-blind-safe
Okabe-Ito palette), so a restyle happens here; :func:`k_ticks` puts ticks at the sampled
``k``, :func:`legend` and :func:`legend_below` draw legends alike (outside the axes
where they would hide data), :func:`population_words` names the agents in the
words of the game.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

#: the Okabe-Ito palette: eight colours told apart with every common colour-vision deficiency
OKABE_ITO: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
                              "#56B4E9", "#F0E442", "#000000")

#: the colour of each role in the figures (from :data:`OKABE_ITO`, plus greys)
PALETTE: dict[str, str] = {
    "value": "#0072B2",  # discounted reward / value estimates (blue)
    "runtime": "#D55E00",  # training wall time (vermilion)
    "cpu": "#7F7F7F",  # CPU time (grey)
    "mode": "#CC79A7",  # a_g != population mode (reddish purple)
    "accepted": "#009E73",  # UPDATE accepted the proposal (bluish green)
    "rejected": "#D55E00",  # UPDATE rejected it (vermilion)
    "no_improvement": "#D9D9D9",  # the proposal did not improve (light grey)
    "legend_marker": "#7F7F7F",  # marker shapes in legends
    "in_sg": "#000000",  # fraction of agents in the local state named by s_g
    "fullest": "#7F7F7F",  # fraction of agents in the fullest local state
    "baseline": "#E69F00",  # random / uniform play (orange)
    "action": "#56B4E9",  # the global action a_g (sky blue)
    "population_mode": "#000000",  # the population mode
    "state": "#009E73",  # the global state s_g
    "reference": "#7F7F7F",  # reference lines (best fixed policy, slope -1/2)
    "other": "#000000",  # anything without a role
}

#: colours of categorical series (zones, methods, units), in order: :data:`OKABE_ITO`
CATEGORICAL = "okabe-ito"

#: colour map of occupancy heat maps (fraction of agents, 0 to 1; perceptually uniform and
#: readable with colour-vision deficiencies)
HEATMAP = "cividis"

#: font sizes: figure title, axes title, legend
TITLE_SIZE, AXES_TITLE_SIZE, LEGEND_SIZE = 11, 9, 8


def series_color(i: int) -> str:
    """The colour of the ``i``-th series of a figure (:data:`OKABE_ITO`, cycled)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def categorical(n: int) -> list[str]:
    """``n`` colours for ``n`` categories (:func:`series_color`)."""
    return [series_color(i) for i in range(n)]


def population_words(env_name: str | None) -> tuple[str, str]:
    """How the figures name the local agents and their states: ``("robots", "zone")`` on
    the warehouse games, ``("agents", "local state")`` elsewhere."""
    if env_name and "warehouse" in env_name:
        return "robots", "zone"
    return "agents", "local state"


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend, with the colour cycle of
    :data:`OKABE_ITO` (so every series without an explicit colour is colour-blind safe)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams["axes.prop_cycle"] = cycler(color=list(OKABE_ITO))
    return plt


def plain_log(ax: Any, axis: str = "y") -> None:
    """Label a log axis with plain numbers (``3``, ``40``, not ``3 x 10^0``); an axis that
    spans less than about two and a half decades (call after plotting) gets ticks at 1, 2
    and 5 times the powers of ten, so it never shows a single labelled tick."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if 0 < lo < hi < lo * 10 ** 2.5:
        target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(fmt)
    target.set_minor_formatter(NullFormatter())


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG atomically (``dpi``; ``tight``: crop to the drawn area) and
    close it; returns the path."""
    import warnings

    from altmarl.io import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # matplotlib's note that placing a legend took long
        warnings.filterwarnings("ignore", message="Creating legend with loc=\"best\"")
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


def k_ticks(ax: Any, ks: Any, most: int = 12) -> None:
    """x ticks at the sampled values of ``k`` (integers written plainly, no others, on a
    linear or a log axis) when there are at most ``most`` of them; else integer ticks (a
    log axis then keeps its own)."""
    from matplotlib.ticker import NullLocator

    vals = sorted({int(round(float(k))) for k in ks})
    if 0 < len(vals) <= most:
        ax.set_xticks(vals)
        ax.set_xticklabels([str(v) for v in vals])
        ax.xaxis.set_minor_locator(NullLocator())
    elif ax.get_xscale() != "log":
        integer_ticks(ax)


def legend(ax: Any, outside: bool = False, **kwargs: Any) -> Any:
    """The legend of ``ax`` in the shared style (small font, translucent frame); nothing
    when the axes have no labelled artist. ``outside``: to the right of the axes, so it
    never hides a curve (:func:`save_figure` crops to include it)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles and "handles" not in kwargs:
        return None
    kwargs.setdefault("fontsize", LEGEND_SIZE)
    kwargs.setdefault("framealpha", 0.85)
    if outside:
        kwargs.setdefault("loc", "upper left")
        kwargs.setdefault("bbox_to_anchor", (1.02, 1.0))
        kwargs.setdefault("borderaxespad", 0.0)
    return ax.legend(**kwargs)


def legend_below(fig: Any, axes: Any, ncol: int = 3, **kwargs: Any) -> Any:
    """One legend for the whole figure, below its axes (so it never hides a curve): the
    labelled artists of every axes in ``axes``, each label once; nothing without any."""
    handles: list[Any] = []
    labels: list[str] = []
    for ax in getattr(axes, "flat", axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if not handles:
        return None
    kwargs.setdefault("fontsize", LEGEND_SIZE)
    kwargs.setdefault("frameon", False)
    return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      ncol=min(ncol, len(handles)), **kwargs)


__all__ = ["AXES_TITLE_SIZE", "CATEGORICAL", "HEATMAP", "LEGEND_SIZE", "OKABE_ITO", "PALETTE",
           "TITLE_SIZE", "categorical", "integer_ticks", "k_ticks", "legend", "legend_below",
           "plain_log", "population_words", "pyplot", "save_figure", "series_color"]
