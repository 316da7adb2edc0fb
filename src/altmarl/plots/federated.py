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
    plain_log(ax, "x")
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


def _band(ax: Any, rows: Sequence[dict[str, Any]], key: str, label: str, color: str,
          style: tuple[str, str], value: str = "mean") -> None:
    """A line over ``k`` with its 95% interval as a band; ``key`` names a paired-difference
    entry of the rows, or ``"return"``."""
    ks = [r["k"] for r in rows]
    if key == "return":
        mid = [r["return"] for r in rows]
        ci = [r["return_ci95"] or [r["return"]] * 2 for r in rows]
    else:
        mid = [r[key][value] for r in rows]
        ci = [r[key]["ci95"] or [r[key][value]] * 2 for r in rows]
    ls, mk = style
    ax.plot(ks, mid, ls=ls, marker=mk, color=color, label=label, lw=1.5, ms=4)
    ax.fill_between(ks, [c[0] for c in ci], [c[1] for c in ci], color=color, alpha=0.18,
                    lw=0)


def _hline(ax: Any, row: dict[str, Any] | None, label: str, color: str, ls: str) -> None:
    if row is None:
        return
    ax.axhline(row["return"], color=color, ls=ls, lw=1.2, label=label)
    if row.get("return_ci95"):
        lo, hi = row["return_ci95"]
        ax.axhspan(lo, hi, color=color, alpha=0.10, lw=0)


def plot_drift_run(run: Path, rows: Sequence[dict[str, Any]],
                   curves: Sequence[dict[str, str]]) -> list[Path]:
    """Figures of a federated drift run (docs/federated.md): ``value_vs_k.png`` (return vs
    ``k`` with 95% bands; paired differences), ``pareto.png`` (return vs model transfers per
    round), ``information.png`` (value of full information vs ``k`` samples) and
    ``curves.png`` (mean client accuracy per round)."""
    plt = pyplot()
    paths: list[Path] = []
    fam = {f: sorted((r for r in rows if r["family"] == f), key=lambda r: r["k"] or 0)
           for f in ("learned", "plugin", "fedavg", "fixed", "plugin-full", "learned-full")}
    fedavg_k = [r for r in fam["fedavg"] if r["k"] is not None]
    full = next((r for r in fam["fedavg"] if r["k"] is None), None)
    best_name = rows[0]["best_fixed"] if rows else None
    best = next((r for r in rows if r["method"] == best_name), None)
    col = {"learned": series_color(0), "plugin": series_color(1), "fedavg": series_color(2),
           "fixed": PALETTE["reference"], "full": series_color(4)}
    all_k = sorted({r["k"] for r in fam["learned"] + fam["plugin"] + fedavg_k})

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    _band(ax, fam["learned"], "return", "ALTERNATING-MARL (learned), k polled",
          col["learned"], _STYLES[0])
    _band(ax, fam["plugin"], "return", "plug-in server, k polled", col["plugin"], _STYLES[1])
    _band(ax, fedavg_k, "return", "FedAvg, k sampled clients", col["fedavg"], _STYLES[2])
    _hline(ax, full, "FedAvg, full participation", col["fedavg"], ":")
    _hline(ax, best, f"best fixed: {best_name}", col["fixed"], "--")
    _hline(ax, fam["plugin-full"][0] if fam["plugin-full"] else None,
           "plug-in server, full information", col["full"], "-.")
    ax.set(xscale="log", xlabel="k (clients polled or sampled per round)",
           ylabel="discounted return (mean over seeds)")
    ax.set_title("Value vs k (bands: Student-t 95% over seeds)", fontsize=AXES_TITLE_SIZE)
    ax = axes[1]
    ax.axhline(0.0, color=PALETTE["other"], lw=0.8)
    if fam["learned"]:
        _band(ax, fam["learned"], "vs_best_fixed", "learned - best fixed", col["fixed"],
              _STYLES[0])
        if all("vs_fedavg_k" in r for r in fam["learned"]):
            _band(ax, fam["learned"], "vs_fedavg_k", "learned - FedAvg k", col["fedavg"],
                  _STYLES[2])
        _band(ax, fam["learned"], "vs_fedavg_full", "learned - FedAvg full", col["full"],
              _STYLES[3])
    ax.set(xscale="log", xlabel="k (clients polled or sampled per round)",
           ylabel="paired difference in return")
    ax.set_title("Paired differences of the learned server (common random numbers)",
                 fontsize=AXES_TITLE_SIZE)
    for a in axes:
        a.grid(alpha=0.3)
        legend(a, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
        k_ticks(a, all_k)
    fig.suptitle("Federated learning under drift: which model to offer, from k polled "
                 "clients", fontsize=TITLE_SIZE)
    fig.tight_layout()
    paths.append(save_figure(fig, run / "value_vs_k.png", dpi=110))

    fig, ax = plt.subplots(figsize=(8, 5.2))
    groups = (("learned", "learned (k polled)", "o"), ("plugin", "plug-in (k polled)", "^"),
              ("fedavg", "FedAvg", "s"), ("fixed", "fixed offer", "D"))
    for f, label, mk in groups:
        rs = fam[f]
        if not rs:
            continue
        x = [r["transfers_per_round"] for r in rs]
        y = [r["return"] for r in rs]
        err = np.array([[r["return"] - (r["return_ci95"] or [r["return"]] * 2)[0],
                         (r["return_ci95"] or [r["return"]] * 2)[1] - r["return"]] for r in rs])
        ax.errorbar(x, y, yerr=err.T, fmt=mk, color=col[f], label=label, capsize=2, ms=5)
        if f in ("learned", "plugin", "fedavg"):  # the k-curves (FedAvg full off the line)
            line = [(a, b) for a, b, r in zip(x, y, rs, strict=True) if r["k"] is not None]
            ax.plot([a for a, _ in line], [b for _, b in line], color=col[f], lw=0.8,
                    alpha=0.6)
        # labels alternate above and below, in the order of their points, so that
        # neighbouring points (e.g. two fixed offers) do not write over each other
        for i, r in enumerate(sorted(rs, key=lambda r: (r["transfers_per_round"],
                                                         r["return"]))):
            tag = (f"k={r['k']}" if r["k"] is not None else
                   "full" if f == "fedavg" else r["method"].replace("fixed offer=", ""))
            ax.annotate(tag, (r["transfers_per_round"], r["return"]), fontsize=6,
                        xytext=(4, 3 if i % 2 == 0 else -9), textcoords="offset points",
                        color=col[f])
    ax.set_xscale("symlog", linthresh=1.0)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set(xlabel="model transfers per round (downloads + uploads; symmetric log scale)",
           ylabel="discounted return (mean over seeds, 95% CI)")
    ax.set_title("Return vs communication (up and left is better)\nthe learned and plug-in "
                 "servers also read k small state reports per round", fontsize=AXES_TITLE_SIZE)
    ax.grid(alpha=0.3)
    legend(ax, loc="upper left")
    paths.append(save_figure(fig, run / "pareto.png", dpi=110))

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ax.axhline(0.0, color=PALETTE["other"], lw=0.8, label="full information")
    if fam["plugin"] and all("vs_plugin_full" in r for r in fam["plugin"]):
        _band(ax, fam["plugin"], "vs_plugin_full", "plug-in: k samples - full information",
              col["plugin"], _STYLES[1])
    lf = [r for r in fam["learned-full"] if "vs_learned_k" in r]
    if lf:
        neg = [{**r, "neg": {"mean": -r["vs_learned_k"]["mean"],
                             "ci95": None if r["vs_learned_k"]["ci95"] is None else
                             [-r["vs_learned_k"]["ci95"][1], -r["vs_learned_k"]["ci95"][0]]}}
               for r in lf]
        _band(ax, neg, "neg", "learned k-policy: k samples - shown everyone", col["learned"],
              _STYLES[0])
    ax.set(xscale="log", xlabel="k (clients polled per round)",
           ylabel="paired difference in return")
    ax.set_title("Value of information: k samples against the whole population",
                 fontsize=AXES_TITLE_SIZE)
    ax.grid(alpha=0.3)
    legend(ax, outside=True)
    k_ticks(ax, all_k)
    paths.append(save_figure(fig, run / "information.png", dpi=110))

    if curves:
        fig, ax = plt.subplots(figsize=(8, 4.4))
        pick = [r["method"] for r in fam["learned"][-1:] + fam["plugin"][:1] + fam["plugin"][-1:]]
        pick += ["FedAvg full"] + [r["method"] for r in fedavg_k[-1:]]
        if best_name:
            pick.append(best_name)
        rounds = [int(c["round"]) for c in curves]
        for i, name in enumerate(dict.fromkeys(pick)):
            key = f"{name} accuracy"
            if key not in curves[0]:
                continue
            ls, mk = _STYLES[i % len(_STYLES)]
            ax.plot(rounds, [float(c[key]) for c in curves], ls=ls, marker=mk, ms=3,
                    color=series_color(i), label=name, lw=1.3)
        ax.set(xlabel="round", ylabel="mean client accuracy (over seeds and episodes)")
        ax.set_title("Client accuracy per round", fontsize=AXES_TITLE_SIZE)
        ax.grid(alpha=0.3)
        legend(ax, outside=True)
        integer_ticks(ax)
        paths.append(save_figure(fig, run / "curves.png", dpi=110))
    return paths


__all__ = ["FAMILIES", "plot_drift_run", "plot_federated_run"]
