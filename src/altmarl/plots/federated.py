"""Figures of a federated run directory (paper Example 2.6, SPEC 8.3; docs/federated.md).

Drawn from the per-method rows of ``summary.json`` (passed in) and ``curves.csv``
(written by :func:`altmarl.federated.experiment.run_experiment`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from altmarl.plots.style import (
    AXES_TITLE_SIZE,
    PALETTE,
    TITLE_SIZE,
    integer_ticks,
    k_ticks,
    legend,
    plain_log,
    pyplot,
    save_figure,
    series_color,
)

#: line styles and markers that keep overlapping curves apart
_STYLES = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"))

#: method families, in the order of their colours
FAMILIES = ("learned", "fedavg", "fixed", "explore")


def plot_federated_run(run: str | Path, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """Draw ``accuracy_vs_k.png`` (accuracy and uploads per round vs ``k``), ``pareto.png``
    (accuracy vs uploads per round, every method) and ``curves.png`` (validation accuracy
    per round) into ``run``, from the per-method summary ``rows`` (``summary.json``,
    :func:`altmarl.federated.experiment.read_summary`) and ``run/curves.csv``."""
    plt = pyplot()
    run = Path(run)
    paths: list[Path] = []

    def save(fig: Any, name: str) -> None:
        paths.append(save_figure(fig, run / name, dpi=110))

    learned = sorted((r for r in rows if r["family"] == "learned"), key=lambda r: r["k"])
    fedavg = sorted((r for r in rows if r["family"] == "fedavg"), key=lambda r: r["k"])
    fixed = [r for r in rows if r["family"] in ("fixed", "explore")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for fam, rs, mk in (("learned (ALTERNATING-MARL)", learned, "o-"),
                        ("FedAvg, k sampled clients", fedavg, "s--")):
        if rs:
            ks = [r["k"] for r in rs]
            axes[0].errorbar(ks, [r["final_acc"] for r in rs],
                             yerr=[r["final_acc_se"] for r in rs], fmt=mk, label=fam, capsize=3)
            axes[1].plot(ks, [r["uploads_per_round"] for r in rs], mk, label=fam)
    best = max(fixed, key=lambda r: r["final_acc"], default=None)
    if best is not None:
        axes[0].axhline(best["final_acc"], color=PALETTE["reference"], ls=":",
                        label=f"best fixed: {best['method']}")
        axes[1].axhline(best["uploads_per_round"], color=PALETTE["reference"], ls=":",
                        label=f"best fixed: {best['method']}")
    axes[0].set(xscale="log", xlabel="k (clients polled / sampled per round)",
                ylabel="final validation accuracy")
    axes[1].set(xscale="log", yscale="log", xlabel="k (clients polled / sampled per round)",
                ylabel="model uploads per round")
    axes[0].set_title("Accuracy reached vs k", fontsize=AXES_TITLE_SIZE)
    axes[1].set_title("Communication vs k", fontsize=AXES_TITLE_SIZE)
    all_k = sorted({r["k"] for r in learned + fedavg})
    plain_log(axes[1])
    for ax in axes:
        ax.grid(alpha=0.3)
        legend(ax, loc="best")
        k_ticks(ax, all_k)
    fig.suptitle("Federated optimization: the learned server policy vs FedAvg and fixed "
                 "schedules", fontsize=TITLE_SIZE)
    fig.tight_layout()
    save(fig, "accuracy_vs_k.png")

    fig, ax = plt.subplots(figsize=(7, 5))
    colors = {fam: series_color(i) for i, fam in enumerate(FAMILIES)}
    for r in rows:
        ax.errorbar(r["uploads_per_round"], r["final_acc"], yerr=r["final_acc_se"],
                    fmt="o", color=colors.get(r["family"], PALETTE["other"]), capsize=2, ms=4)
        if r["family"] != "learned":
            label = r["method"].replace("fixed ", "")
            ax.annotate(label, (r["uploads_per_round"], r["final_acc"]), fontsize=6,
                        xytext=(4, -2), textcoords="offset points")
    if learned:
        ks_txt = ", ".join(str(r["k"]) for r in learned)
        ax.annotate(f"learned, k = {ks_txt}", (learned[0]["uploads_per_round"],
                    max(r["final_acc"] for r in learned)), fontsize=7, color=colors["learned"],
                    xytext=(-20, 10), textcoords="offset points", ha="right")
    for fam, c in colors.items():
        ax.plot([], [], "o", color=c, label=fam)
    ax.set(xscale="log", xlabel="model uploads per round (communication)",
           ylabel="final validation accuracy")
    ax.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, hi * 2.2)  # labels are written to the right of their points
    ax.set_title("Accuracy vs communication, every method (up and left is better)",
                 fontsize=AXES_TITLE_SIZE)
    ax.grid(alpha=0.3)
    legend(ax, loc="upper left")
    save(fig, "pareto.png")

    with open(run / "curves.csv", newline="") as fh:
        crow = list(csv.DictReader(fh))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    pick = [r["method"] for r in learned[-1:] + fedavg[-1:]]
    if best is not None:
        pick.append(best["method"])
    pick += [r["method"] for r in fixed if r["method"].startswith("fixed lr=1 ")][-1:]
    rounds = [int(c["round"]) for c in crow]
    lowest = 1.0
    for i, name in enumerate(dict.fromkeys(pick)):
        acc = [float(c[f"{name} acc"]) for c in crow]
        up = [float(c[f"{name} uploads"]) if c[f"{name} uploads"] else np.nan for c in crow]
        ls, mk = _STYLES[i % len(_STYLES)]
        kw = {"color": series_color(i), "ls": ls, "marker": mk, "ms": 3.5, "label": name,
              "lw": 1.4}
        axes[0].plot(rounds, acc, **kw)
        axes[1].plot(rounds, up, **kw)
        lowest = min(lowest, float(np.nanmin(acc)))
    axes[0].set(xlabel="round", ylabel="validation accuracy (mean over episodes)",
                ylim=(max(0.0, lowest - 0.05), 1.0))
    axes[1].set(xlabel="round", ylabel="model uploads in the round (mean)", yscale="log")
    axes[0].set_title("Validation accuracy per round", fontsize=AXES_TITLE_SIZE)
    axes[1].set_title("Uploads per round (overlapping lines: same schedule)",
                      fontsize=AXES_TITLE_SIZE)
    plain_log(axes[1])
    for ax in axes:
        ax.grid(alpha=0.3)
        legend(ax, loc="best")
        integer_ticks(ax)
    fig.suptitle("Federated training curves of a few methods", fontsize=TITLE_SIZE)
    fig.tight_layout()
    save(fig, "curves.png")
    return paths


__all__ = ["FAMILIES", "plot_federated_run"]
