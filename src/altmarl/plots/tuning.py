"""Figures of a tuning directory (``altmarl tune``; docs/tracking.md), in the shared style.

Drawn from plain data that :func:`altmarl.experiments.tuning.make_tuning_plots` reads off
the Optuna study (this module never imports Optuna):

* ``optimization_history.png`` — the objective of every finished trial and the best so far,
  pruned trials marked where they stopped;
* ``intermediate_values.png`` — each trial's played value after every proposal (what the
  median pruning rule compares);
* ``param_importances.png`` — how much of the objective's variation each setting explains;
* ``slice.png`` — the objective against each setting, one panel per setting.

A figure that needs more trials than there are (importances: two finished trials) is left
out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from altmarl.plots.style import (
    PALETTE,
    TITLE_SIZE,
    integer_ticks,
    legend,
    plain_log,
    pyplot,
    save_figure,
    series_color,
)

#: trials drawn one by one with a legend entry each (more: no legend)
MAX_NAMED_TRIALS = 10


def plot_tuning(trials: list[dict[str, Any]], plots_dir: str | Path, *,
                importances: dict[str, float] | None = None,
                scales: dict[str, str] | None = None, title: str = "") -> list[Path]:
    """Draw the figures of a study into ``plots_dir``; returns their paths.

    ``trials``: one dict per trial with ``number``, ``state`` (``complete``, ``pruned``,
    ...), ``objective`` (``None`` unless complete), ``intermediate`` (proposal index from
    0 -> played value) and ``params`` (setting -> value); ``importances``: setting ->
    share of the objective's variation; ``scales``: setting -> ``"log"``, ``"linear"`` or
    ``"categorical"``; ``title``: the study's name in the figure titles."""
    plt = pyplot()
    out = Path(plots_dir)
    paths: list[Path] = []
    where = f" ({title})" if title else ""
    done = [t for t in trials if t["state"] == "complete" and t["objective"] is not None]
    pruned = [t for t in trials if t["state"] == "pruned" and t["intermediate"]]

    # (a) optimization history
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if done:
        ax.plot([t["number"] for t in done], [t["objective"] for t in done], "o",
                color=PALETTE["value"], label="finished trial: objective")
        best, xs, ys = -math.inf, [], []
        for t in sorted(done, key=lambda t: t["number"]):
            best = max(best, t["objective"])
            xs.append(t["number"])
            ys.append(best)
        last = max(t["number"] for t in trials)
        ax.step([*xs, last], [*ys, ys[-1]], where="post", color=PALETTE["runtime"],
                label="best so far")
    if pruned:
        ax.plot([t["number"] for t in pruned],
                [t["intermediate"][max(t["intermediate"])] for t in pruned], "x",
                color=PALETTE["reference"], label="pruned trial: its last played value")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective (held-out value)")
    ax.set_title(f"Tuning{where}: the objective of each trial", fontsize=TITLE_SIZE)
    ax.grid(alpha=0.3)
    integer_ticks(ax)
    legend(ax, outside=True)
    paths.append(save_figure(fig, out / "optimization_history.png"))

    # (b) intermediate values: the played value after each proposal
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    named = len(trials) <= MAX_NAMED_TRIALS
    for i, t in enumerate(trials):
        steps = sorted(t["intermediate"])
        if not steps:
            continue
        ax.plot([s + 1 for s in steps], [t["intermediate"][s] for s in steps],
                "o-" if t["state"] == "complete" else "x--", ms=3.5, lw=1.2,
                color=series_color(i) if named else PALETTE["value"],
                alpha=1.0 if named else 0.5,
                label=(f"trial {t['number']}" + (" (pruned)" if t["state"] == "pruned"
                                                 else "")) if named else None)
    ax.set_xlabel("proposal (G-LEARN and L-LEARN alternate)")
    ax.set_ylabel("estimated value of the played pair")
    ax.set_title(f"Tuning{where}: each trial's value after every proposal",
                 fontsize=TITLE_SIZE)
    ax.grid(alpha=0.3)
    integer_ticks(ax)
    legend(ax, outside=True)
    paths.append(save_figure(fig, out / "intermediate_values.png"))

    # (c) parameter importances
    if importances:
        items = sorted(importances.items(), key=lambda kv: kv[1])
        fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.42 * len(items)))
        ax.barh([k for k, _ in items], [v for _, v in items], color=PALETTE["value"])
        top = max([v for _, v in items] + [1e-12])
        for j, (_, v) in enumerate(items):
            ax.text(v + 0.01 * top, j, f"{v:.2f}" if v >= 0.005 else "< 0.01", va="center",
                    fontsize=8)
        ax.set_xlim(0, top * 1.15)  # room for the numbers
        ax.set_xlabel("share of the objective's variation explained (PED-ANOVA)")
        ax.set_title(f"Tuning{where}: which settings matter", fontsize=TITLE_SIZE)
        ax.grid(axis="x", alpha=0.3)
        paths.append(save_figure(fig, out / "param_importances.png"))

    # (d) slices: the objective against each setting
    names = sorted({name for t in done for name in t["params"]})
    if done and names:
        cols = min(4, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows + 0.6),
                                 sharey=True, squeeze=False)
        kinds = scales or {}
        for ax, name in zip(axes.flat, names, strict=False):
            use = [t for t in done if name in t["params"]]
            vals = [t["params"][name] for t in use]
            numeric = not (kinds.get(name) == "categorical"
                           or any(isinstance(v, str) for v in vals))
            if not numeric:
                cats = sorted({str(v) for v in vals})
                x: list[float] = [float(cats.index(str(v))) for v in vals]
                ax.set_xticks(range(len(cats)))
                ax.set_xticklabels(cats)
                ax.set_xlim(-0.5, len(cats) - 0.5)
            else:
                x = [float(v) for v in vals]
            ax.scatter(x, [t["objective"] for t in use], s=22,
                       c=[t["number"] for t in use], cmap="viridis",
                       vmin=0, vmax=max(1, max(t["number"] for t in trials)))
            if numeric and kinds.get(name) == "log" and min(x) > 0 and max(x) >= 10 * min(x):
                ax.set_xscale("log")  # a log axis only where the values span a decade
                plain_log(ax, "x")
            elif numeric and all(isinstance(v, int) and not isinstance(v, bool)
                                 for v in vals):
                distinct = sorted(set(x))  # integer settings: ticks only at integers
                if len(distinct) <= 6:
                    ax.set_xticks(distinct)
                    ax.set_xticklabels([str(int(v)) for v in distinct])
                else:
                    integer_ticks(ax)
            ax.set_xlabel(name, fontsize=9)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        for r in range(rows):
            axes[r, 0].set_ylabel("objective")
        fig.suptitle(f"Tuning{where}: the objective against each setting (colour: trial "
                     "number, dark = early)", fontsize=TITLE_SIZE)
        fig.tight_layout()
        paths.append(save_figure(fig, out / "slice.png"))
    return paths


__all__ = ["MAX_NAMED_TRIALS", "plot_tuning"]
