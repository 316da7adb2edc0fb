"""Figures of a theory run directory (SPEC 7, Theorem 4.4; docs/theory.md).

Drawn from ``gap_vs_k.csv``, ``table_size.csv``, ``cost_vs_n.csv`` and ``summary.json``:

* ``gap_vs_k.png`` — the exact full-information gap of G-LEARN vs ``k`` and vs the
  finite-population-corrected ``k`` (:func:`altmarl.histogram.effective_k`), with the fitted
  log-log slopes and the ``-1/2`` reference;
* ``table_size.png`` — mean-field ``|H_k|`` vs standard ``|S_l|^k`` table sizes;
* ``cost_vs_n.png`` — wall time of G-LEARN and of the exact solver vs ``n``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from altmarl.histogram import effective_k
from altmarl.io import read_csv_rows
from altmarl.plots.style import PALETTE, legend, plain_log, pyplot, save_figure, series_color


def plot_theory(run_dir: str | Path) -> list[Path]:
    """Draw ``gap_vs_k.png``, ``table_size.png`` and ``cost_vs_n.png`` from the CSV files
    and ``summary.json`` of a theory run directory (written by
    :func:`altmarl.experiments.theory.run_theory`)."""
    plt = pyplot()
    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    paths = []

    # (a) gap vs k (left) and vs the effective sample size (right)
    rows = read_csv_rows(run / "gap_vs_k.csv")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.0, 4.8))
    for ci, label in enumerate(dict.fromkeys(r["game"] for r in rows)):
        color = series_color(ci)
        ex = [r for r in rows if r["game"] == label and r["m"] == "exact" and r["gap_full"] > 0]
        zero = [r for r in rows if r["game"] == label and r["m"] == "exact" and r["gap_full"] <= 0]
        if zero:  # a log axis has no 0: mark the zero gaps (k = n: full information) below
            ax.scatter([r["k"] for r in zero], [min(r["gap_full"] for r in ex) / 2 if ex else 1]
                       * len(zero), marker="v", color=color, zorder=3,
                       label=f"gap = 0 (k = {', '.join(str(r['k']) for r in zero)})")
        if ex:
            ax.loglog([r["k"] for r in ex], [r["gap_full"] for r in ex], "o-", color=color,
                      label=f"{label}: G-LEARN (m exact)")
            ax2.loglog([effective_k(r["k"], r["n"]) for r in ex], [r["gap_full"] for r in ex],
                       "o-", color=color, label=f"{label}: G-LEARN (m exact)")
        fm = [r for r in rows if r["game"] == label and r["m"] != "exact"]
        if fm:
            ks = sorted({r["k"] for r in fm})
            vals = [[r["gap_full"] for r in fm if r["k"] == k] for k in ks]
            mean = np.array([np.mean(v) for v in vals])
            sd = np.array([np.std(v) for v in vals])
            keep = mean > 0
            ax.errorbar(np.array(ks)[keep], mean[keep], yerr=sd[keep], fmt="s--", color=color,
                        alpha=0.6, capsize=3,
                        label=f"{label}: G-LEARN (m={fm[0]['m']}, mean +- sd over seeds)")
        entry = summary["gap_vs_k"].get(label, {})
        for axis, key, what in ((ax, "fit_exact_expectation", "k <= {k_max:g}"),
                                (ax2, "fit_effective_k", "all k < n")):
            fit = entry.get(key, {})
            if fit.get("slope") is None:
                continue
            kk = np.array([min(fit["x_used"]), max(fit["x_used"])], dtype=float)
            axis.loglog(kk, np.exp(fit["intercept"]) * kk ** fit["slope"], ":", color=color,
                        lw=2, label=f"fit {what.format(**fit)}: slope {fit['slope']:.2f}")
            axis.loglog(kk, np.exp(fit["intercept"]) * kk ** -0.5, color=PALETTE["reference"], lw=1,
                        alpha=0.7, label="slope -1/2 (Theorem 4.4)" if ci == 0 else None)
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("full-information gap  V* - V(G-LEARN_k, pi_l)")
    ax.set_title("Exact full-information gap of G-LEARN vs k")
    ax2.set_xlabel("effective sample size k (n - 1) / (n - k)")
    ax2.set_title("Same gaps vs the finite-population-corrected k")
    for axis in (ax, ax2):
        legend(axis, fontsize=7)
        axis.grid(True, which="both", alpha=0.3)
        plain_log(axis, "x")
        plain_log(axis, "y")
    paths.append(save_figure(fig, run / "gap_vs_k.png"))

    # (b) table sizes
    rows = read_csv_rows(run / "table_size.csv")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for ci, d in enumerate(dict.fromkeys(r["d"] for r in rows)):
        sub = [r for r in rows if r["d"] == d]
        ax.semilogy([r["k"] for r in sub], [r["mean_field"] for r in sub], "-", color=series_color(ci),
                    label=f"|S_l|={d}: mean-field |H_k|")
        ax.semilogy([r["k"] for r in sub], [r["standard"] for r in sub], "--", color=series_color(ci),
                    label=f"|S_l|={d}: standard |S_l|^k")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("table entries per (s_g, a_g)")
    ax.set_title("Q-table size: mean-field vs standard parameterization")
    legend(ax)
    ax.grid(True, which="both", alpha=0.3)
    paths.append(save_figure(fig, run / "table_size.png"))

    # (c) cost vs n
    rows = read_csv_rows(run / "cost_vs_n.csv")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    g = [r for r in rows if r["method"] == "g_learn"]
    e = [r for r in rows if r["method"] == "exact"]
    if g:
        ax.loglog([r["n"] for r in g], [r["seconds"] for r in g], "o-",
                  label=f"G-LEARN (k={g[0]['k']}, m={g[0]['m']})")
    if e:
        ax.loglog([r["n"] for r in e], [r["seconds"] for r in e], "s-",
                  label="exact solver (value + full-info best response)")
        for r in e:
            ax.annotate(f"{r['states']}", (r["n"], r["seconds"]), fontsize=7,
                        textcoords="offset points", xytext=(3, -10))
    ax.set_xlabel("number of local agents n")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Cost vs n (labels: exact chain states)")
    legend(ax)
    plain_log(ax, "x")
    ax.grid(True, which="both", alpha=0.3)
    paths.append(save_figure(fig, run / "cost_vs_n.png"))
    return paths


__all__ = ["plot_theory"]
