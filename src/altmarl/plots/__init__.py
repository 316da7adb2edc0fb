"""Every figure of altmarl, drawn from the files of a run directory (SPEC 10).

* :mod:`~altmarl.plots.style` — the pyplot backend (``Agg``), :data:`PALETTE`,
  :func:`save_figure`;
* :mod:`~altmarl.plots.runs` — tabular runs and sweeps (paper Figures 6 and 7):
  :func:`make_plots` and one ``plot_*`` / ``figure_*`` pair per figure;
* :mod:`~altmarl.plots.continuous` — the continuous k-sweep (:func:`plot_sweep`);
* :mod:`~altmarl.plots.federated` — the federated experiment (:func:`plot_federated_run`);
* :mod:`~altmarl.plots.theory` — the O(1/sqrt(k)) experiment (:func:`plot_theory`).

The figure modules read files (through :mod:`altmarl.io` and :mod:`altmarl.rundir`) or take
the data as arguments; they never import the code that runs the experiments.
"""

from altmarl.plots.continuous import plot_sweep
from altmarl.plots.federated import plot_federated_run
from altmarl.plots.runs import (
    figure_alternation,
    figure_mode_mismatch_vs_k,
    figure_occupancy,
    figure_reward_vs_k,
    figure_runtime_vs_k,
    make_plots,
    plot_alternation,
    plot_mode_mismatch_vs_k,
    plot_occupancy,
    plot_reward_vs_k,
    plot_runtime_vs_k,
)
from altmarl.plots.style import PALETTE, integer_ticks, pyplot, save_figure, series_color
from altmarl.plots.theory import plot_theory

__all__ = [
    "PALETTE",
    "figure_alternation",
    "figure_mode_mismatch_vs_k",
    "figure_occupancy",
    "figure_reward_vs_k",
    "figure_runtime_vs_k",
    "integer_ticks",
    "make_plots",
    "plot_alternation",
    "plot_federated_run",
    "plot_mode_mismatch_vs_k",
    "plot_occupancy",
    "plot_reward_vs_k",
    "plot_runtime_vs_k",
    "plot_sweep",
    "plot_theory",
    "pyplot",
    "save_figure",
    "series_color",
]
