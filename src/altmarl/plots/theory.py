"""Figures of a theory run directory (SPEC 7, Theorem 4.4; docs/theory.md).

Drawn from ``gap_vs_k.csv``, ``table_size.csv``, ``cost_vs_n.csv`` and ``summary.json``:

* ``gap_vs_k.png`` — the exact sup-over-states gap (with the largest one-step regret, its
  lower bound) and the initial-distribution gap of G-LEARN vs ``k``, for the games whose
  optimal action depends on the population, with the fitted slopes over their windows
  (95% regression bands) and the ``-1/2`` and ``-1`` references;
* ``scaled_gaps.png`` — ``sqrt(k) gap(k)`` and ``k gap(k)`` of both gaps (flat = that rate);
* ``family_<name>.png`` — every game of a family of seeded random games, zero gaps marked;
* ``table_size.png`` — mean-field ``|H_k|`` vs standard ``|S_l|^k`` table sizes;
* ``cost_vs_n.png`` — wall time of G-LEARN and of the exact solver vs ``n``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from altmarl.io import read_csv_rows
from altmarl.plots.style import (
    PALETTE,
    k_ticks,
    legend,
    plain_log,
    pyplot,
    save_figure,
    series_color,
)

#: the quantities of the gap figures: column, name, axis label
GAPS = (("gap_sup", "sup-over-states gap", "largest gap over states  max_s V*(s) - V_k(s)"),
        ("gap_init", "initial-distribution gap",
         "gap from the initial distribution  E[V* - V_k]"))


def _is_true(v: Any) -> bool:
    return v is True or str(v) == "True"


def _fit_line(ax: Any, fit: dict[str, Any], color: str, label: str | None) -> None:
    """The fitted power law over its window with the band of its slope interval (pivoting
    at the window's geometric centre)."""
    if fit.get("slope") is None:
        return
    kk = np.geomspace(min(fit["k_used"]), max(fit["k_used"]), 20)
    x0 = float(np.mean(np.log(fit["k_used"])))
    y0 = fit["intercept"] + fit["slope"] * x0
    ax.plot(kk, np.exp(fit["intercept"]) * kk ** fit["slope"], "--", color=color, lw=1.6,
            label=label)
    lo, hi = fit["slope_ci"]
    band = np.exp(y0 + np.outer([lo, hi], np.log(kk) - x0))
    ax.fill_between(kk, band.min(axis=0), band.max(axis=0), color=color, alpha=0.18, lw=0)


def _reference(ax: Any, ks: list[float], y: float) -> None:
    """Grey slopes -1/2 and -1 through ``(ks[0], y)``."""
    kk = np.geomspace(ks[0], ks[-1], 20)
    ax.plot(kk, y * (kk / ks[0]) ** -0.5, color=PALETTE["reference"], lw=1, alpha=0.8)
    ax.plot(kk, y * (kk / ks[0]) ** -1.0, ":", color=PALETTE["reference"], lw=1.2)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "family"


def plot_theory(run_dir: str | Path) -> list[Path]:
    """Draw the figures of a theory run directory (written by
    :func:`altmarl.experiments.theory.run_theory`) from its CSV files and
    ``summary.json``; returns their paths."""
    plt = pyplot()
    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    gaps = summary["gap_vs_k"]
    fams = summary.get("families", {})
    rows = read_csv_rows(run / "gap_vs_k.csv")
    paths = []

    def game_rows(label: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["game"] == label]

    # games in the order of the configuration (summary.json sorts its keys)
    order = [g["label"] for g in json.loads((run / "config.json").read_text())["gap_games"]]
    order = [g for g in order if g in gaps] + [g for g in gaps if g not in order]
    shown = [g for g in order if gaps[g]["optimum_depends_on_N"]]

    # (a) the gaps vs k: one row of panels per game
    fig, axes = plt.subplots(max(1, len(shown)), 2, figsize=(12.0, 3.6 * max(1, len(shown))),
                             squeeze=False)
    for ci, label in enumerate(shown):
        color = series_color(ci)
        for ax, (q, what, ylabel) in zip(axes[ci], GAPS, strict=True):
            gr = [r for r in game_rows(label) if r[q] > gaps[label]["roundoff"]]
            if not gr:
                continue
            ks = [r["k"] for r in gr]
            ax.loglog(ks, [r[q] for r in gr], "o-", color=color, ms=4, label="exact gap")
            if q == "gap_sup":
                ax.loglog(ks, [r["one_step_sup"] for r in gr], ".:", color=color, alpha=0.8,
                          label="largest one-step regret (a lower bound)")
            fits = [f for f in gaps[label]["fits"][q] if f["slope"] is not None]
            for fi, fit in enumerate(fits):
                lo, hi = fit["slope_ci"]
                _fit_line(ax, fit, series_color(ci + 1 + fi),
                          f"fit k in [{fit['k_lo']:g}, {fit['k_hi']:g}]: slope "
                          f"{fit['slope']:.2f} [{lo:.2f}, {hi:.2f}]")
            cut = [r for r in game_rows(label) if r[q] <= gaps[label]["roundoff"]]
            if cut:
                ax.scatter([cut[0]["k"]], [min(r[q] for r in gr) / 3], marker="v",
                           color=color, label=f"gap 0 or round-off from k = {cut[0]['k']}")
            if fits:
                f0 = fits[-1]
                _reference(ax, [f0["k_lo"], max(ks)],
                           float(np.exp(f0["intercept"]) * f0["k_lo"] ** f0["slope"]) * 1.6)
            ax.set_title(f"{label}: {what}", fontsize=9)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
            plain_log(ax, "y")
            k_ticks(ax, [r["k"] for r in game_rows(label)])
            legend(ax, fontsize=6.5)
    for ax in axes[-1]:
        ax.set_xlabel("subsample size k")
    fig.suptitle("Exact gap of G-LEARN (m exact) to the full-information optimum, uniform "
                 "local policy\n(bands: 95% regression interval of the fitted slope; grey: "
                 "slopes -1/2 and -1)", fontsize=10)
    fig.tight_layout(h_pad=1.5)
    paths.append(save_figure(fig, run / "gap_vs_k.png"))

    # (b) scaled gaps: flat = that rate
    fig, axes = plt.subplots(2, 2, figsize=(12.0, 8.0), sharex=True)
    for i, (q, what_q, _) in enumerate(GAPS):
        for j, (scale, what) in enumerate((("sqrtk", "sqrt(k) x"), ("k", "k x"))):
            ax = axes[i, j]
            for ci, label in enumerate(shown):
                gr = [r for r in game_rows(label) if r[q] > gaps[label]["roundoff"]]
                if gr:
                    top = max(r[f"{scale}_{q}"] for r in gr)
                    ax.loglog([r["k"] for r in gr], [r[f"{scale}_{q}"] / top for r in gr],
                              "o-", ms=3.5, color=series_color(ci), label=label)
                    if q == "gap_sup" and scale == "sqrtk":
                        ax.loglog([r["k"] for r in gr],
                                  [r["sqrtk_one_step_sup"] / top for r in gr], ".:",
                                  color=series_color(ci), alpha=0.8,
                                  label="  sqrt(k) x largest one-step regret (same scale)")
            ax.set_ylabel(f"{what} gap, relative to its maximum over k")
            ax.set_title(f"{what} {what_q} (flat = rate k^-"
                         f"{'1/2' if scale == 'sqrtk' else '1'})", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            k_ticks(ax, [r["k"] for r in rows])
            if i == 1:
                ax.set_xlabel("subsample size k")
            legend(ax, fontsize=6.5)
    paths.append(save_figure(fig, run / "scaled_gaps.png"))

    # (c) families of random games: every game, zero gaps marked
    for fam, e in fams.items():
        members = [g for g in order if g in e["optimum_depends_on_N"]] + [
            g for g in order if g in e["optimum_ignores_N"]]
        fig, axes = plt.subplots(1, 2, figsize=(13.0, 4.8))
        positive = [r[q] for g in members for r in game_rows(g) for q, _, _ in GAPS
                    if r[q] > gaps[g]["roundoff"]]
        floor = min(positive) / 3 if positive else 1e-12
        for ax, (q, what, ylabel) in zip(axes, GAPS, strict=True):
            for ci, g in enumerate(members):
                gr = game_rows(g)
                moving = gaps[g]["optimum_depends_on_N"]
                color = series_color(ci) if moving else PALETTE["reference"]
                pos = [r for r in gr if r[q] > gaps[g]["roundoff"]]
                if pos:
                    ax.loglog([r["k"] for r in pos], [r[q] for r in pos],
                              "o-" if moving else ".-", color=color, ms=4 if moving else 3,
                              lw=1.4 if moving else 0.7, alpha=1.0 if moving else 0.6,
                              label=g if moving else None)
                zero = [r["k"] for r in gr if _is_true(r["zero_exact"])]
                if zero:
                    ax.scatter([zero[0]], [floor], marker="v", color=color, zorder=3, s=18)
            ax.scatter([], [], marker="v", color=PALETTE["reference"],
                       label="first k with gap exactly 0 (one marker per game)")
            ignoring = len(e["optimum_ignores_N"])
            ax.plot([], [], ".-", color=PALETTE["reference"], lw=0.7,
                    label=f"{ignoring} game{'' if ignoring == 1 else 's'} whose optimum "
                          "ignores N")
            ax.set_xlabel("subsample size k")
            ax.set_ylabel(ylabel)
            ax.set_title(what, fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            k_ticks(ax, [r["k"] for g in members for r in game_rows(g)])
            legend(ax, fontsize=6.5)
        fig.suptitle(f"{e['games']} seeded random games ({fam}): exact gaps of G-LEARN vs k",
                     fontsize=10)
        paths.append(save_figure(fig, run / f"family_{_slug(fam)}.png"))

    # (d) table sizes
    trows = read_csv_rows(run / "table_size.csv")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for ci, d in enumerate(dict.fromkeys(r["d"] for r in trows)):
        sub = [r for r in trows if r["d"] == d]
        ax.semilogy([r["k"] for r in sub], [r["mean_field"] for r in sub], "-",
                    color=series_color(ci),
                    label=f"{d} local states: mean-field (histograms of the k-sample)")
        ax.semilogy([r["k"] for r in sub], [r["standard"] for r in sub], "--",
                    color=series_color(ci),
                    label=f"{d} local states: standard (ordered k-tuples)")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("table entries per global state and action")
    k_ticks(ax, [r["k"] for r in trows])
    ax.set_title("Q-table size: mean-field vs standard parameterization")
    legend(ax)
    ax.grid(True, which="both", alpha=0.3)
    paths.append(save_figure(fig, run / "table_size.png"))

    # (e) cost vs n
    crows = read_csv_rows(run / "cost_vs_n.csv")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    g = [r for r in crows if r["method"] == "g_learn"]
    ex = [r for r in crows if r["method"] == "exact"]
    if g:
        ax.loglog([r["n"] for r in g], [r["seconds"] for r in g], "o-",
                  label=f"G-LEARN (k={g[0]['k']}, m={g[0]['m']})")
    if ex:
        ax.loglog([r["n"] for r in ex], [r["seconds"] for r in ex], "s-",
                  label="exact solver (value + full-info best response)")
        for r in ex:
            ax.annotate(f"{r['states']}", (r["n"], r["seconds"]), fontsize=7,
                        textcoords="offset points", xytext=(3, -10))
    ax.set_xlabel("number of local agents n")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Cost vs n (labels: exact chain states)")
    legend(ax)
    plain_log(ax, "x")
    plain_log(ax, "y")
    ax.grid(True, which="both", alpha=0.3)
    paths.append(save_figure(fig, run / "cost_vs_n.png"))
    return paths


__all__ = ["plot_theory"]
