"""Figures of a run directory (paper Figures 6 and 7; SPEC 8.1, 10).

Every figure is drawn from the files of a run directory (``per_k.csv``, ``metrics.csv``,
``units/*/steps.csv``, ``units/*/trajectory.csv``, ``units/*/history.csv``), never from
numbers typed into code. Matplotlib runs with the non-interactive ``Agg`` backend.

* ``reward_vs_k.png`` (Figure 6, left): discounted reward vs ``k``: mean over all
  evaluation seeds (and training runs), a band of +-1 standard deviation over seeds, and
  the individual seed means as dots;
* ``runtime_vs_k.png`` (Figure 6, right): training wall time (and CPU time) vs ``k``;
* ``occupancy.png`` (Figure 7, left): fraction of robots per zone over time for a few
  ``k``; top row one example rollout (with the fraction of robots in the dispatcher's
  zone ``s_g``); bottom row means over rollouts: per zone (``Evaluation.occupancy``,
  flat at ``1/|S_l|`` when game and policies treat all zones alike), in zone ``s_g``,
  and in the fullest zone (informative under symmetry too);
* ``mode_mismatch_vs_k.png`` (Figure 7, right): how often ``a_g`` differs from the
  population mode (``1 - Evaluation.mode_match``) vs ``k``;
* ``alternation.png`` (single-``k`` runs): the value estimates of ALTERNATING-MARL's
  proposals, step by step (from ``history.csv``).

The ``*_vs_k`` figures need at least two values of ``k``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from altmarl.io import read_csv_columns
from altmarl.plots.style import (
    CATEGORICAL,
    PALETTE,
    integer_ticks,
    pyplot,
    save_figure,
)
from altmarl.rundir import is_finished, read_run_record, read_summary, unit_name, units_dir


def _title(summary: dict[str, Any]) -> str:
    ev = summary.get("evaluation", {})
    return (f"{summary.get('name', '')}  (n = {summary.get('env', {}).get('params', {}).get('n', '?')}, "
            f"{ev.get('seeds', '?')} seeds x {ev.get('rollouts', '?')} rollouts, "
            f"H = {ev.get('horizon', '?')})")


def plot_reward_vs_k(run_dir: str | os.PathLike[str], path: Path | None = None) -> Path:
    """Figure 6 (left): discounted reward vs ``k``, mean and spread over seeds."""
    return save_figure(figure_reward_vs_k(run_dir), path or Path(run_dir) / "plots" / "reward_vs_k.png")


def figure_reward_vs_k(run_dir: str | os.PathLike[str]) -> Any:
    """The figure of :func:`plot_reward_vs_k` (not saved)."""
    rd = Path(run_dir)
    summary = read_summary(rd)
    pk = read_csv_columns(rd / "per_k.csv")
    mt = read_csv_columns(rd / "metrics.csv")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    k, mean, std = pk["k"], pk["mean"], pk["std"]
    ax.scatter(mt["k"], mt["value"], s=8, color=PALETTE["value"], alpha=0.25, lw=0,
               label="one evaluation seed")
    ax.fill_between(k, mean - std, mean + std, color=PALETTE["value"], alpha=0.2, label="±1 std over seeds")
    ax.plot(k, mean, "o-", color=PALETTE["value"], ms=3.5, label="mean")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("discounted reward")
    ax.set_title("Discounted reward vs k\n" + _title(summary), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    integer_ticks(ax)
    return fig


def plot_runtime_vs_k(run_dir: str | os.PathLike[str], path: Path | None = None) -> Path:
    """Figure 6 (right): training time of ALTERNATING-MARL vs ``k``."""
    return save_figure(figure_runtime_vs_k(run_dir), path or Path(run_dir) / "plots" / "runtime_vs_k.png")


def figure_runtime_vs_k(run_dir: str | os.PathLike[str]) -> Any:
    """The figure of :func:`plot_runtime_vs_k` (not saved)."""
    rd = Path(run_dir)
    pk = read_csv_columns(rd / "per_k.csv")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    k = pk["k"]
    ax.errorbar(k, pk["train_wall_s"], yerr=pk["train_wall_s_std"], fmt="o-", ms=3.5,
                color=PALETTE["runtime"], capsize=2, label="wall time (mean over training runs)")
    ax.plot(k, pk["train_cpu_s"], "s--", ms=3, color=PALETTE["cpu"], label="CPU time")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("training time per run (s)")
    ax.set_title("Runtime of ALTERNATING-MARL vs k", fontsize=9)
    if np.nanmax(pk["train_wall_s"]) > 20 * max(np.nanmin(pk["train_wall_s"]), 1e-3):
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    integer_ticks(ax)
    return fig


def plot_mode_mismatch_vs_k(run_dir: str | os.PathLike[str], path: Path | None = None) -> Path | None:
    """Figure 7 (right): fraction of steps where ``a_g`` differs from the population mode."""
    fig = figure_mode_mismatch_vs_k(run_dir)
    if fig is None:
        return None
    return save_figure(fig, path or Path(run_dir) / "plots" / "mode_mismatch_vs_k.png")


def figure_mode_mismatch_vs_k(run_dir: str | os.PathLike[str]) -> Any:
    """The figure of :func:`plot_mode_mismatch_vs_k` (``None`` without mode data)."""
    rd = Path(run_dir)
    pk = read_csv_columns(rd / "per_k.csv")
    if np.all(np.isnan(pk["mode_mismatch_mean"])):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    k, m, s = pk["k"], pk["mode_mismatch_mean"], pk["mode_mismatch_std"]
    ax.fill_between(k, m - s, m + s, color=PALETTE["mode"], alpha=0.2, label="±1 std over seeds")
    ax.plot(k, m, "o-", ms=3.5, color=PALETTE["mode"], label="mean")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("fraction of steps with a_g != population mode")
    ax.set_ylim(bottom=0)
    ax.set_title("How often the dispatcher misses the population mode", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    integer_ticks(ax)
    return fig


def _pick_ks(ks: list[int], wanted: list[int] | None, most: int = 3) -> list[int]:
    if wanted:
        return [k for k in wanted if k in ks]
    if len(ks) <= most:
        return ks
    idx = np.unique(np.round(np.linspace(0, len(ks) - 1, most)).astype(int))
    return [ks[i] for i in idx]


def plot_occupancy(run_dir: str | os.PathLike[str], ks: list[int] | None = None,
                   path: Path | None = None) -> Path | None:
    """Figure 7 (left): fraction of robots per zone over time for a few ``k`` (training
    run 0 of each)."""
    fig = figure_occupancy(run_dir, ks)
    if fig is None:
        return None
    return save_figure(fig, path or Path(run_dir) / "plots" / "occupancy.png")


def figure_occupancy(run_dir: str | os.PathLike[str], ks: list[int] | None = None) -> Any:
    """The figure of :func:`plot_occupancy` (``None`` when no unit has finished)."""
    rd = Path(run_dir)
    rec = read_run_record(rd)
    cfg = rec["config"]  # resolved: sweep.k is the sorted list of k
    have = sorted(k for k in cfg["sweep"]["k"]
                  if is_finished(rd, unit_name(k, 0), rec.get("fingerprint")))
    chosen = _pick_ks(have, ks if ks is not None else cfg.get("plots", {}).get("occupancy_k"))
    if not chosen:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(2, len(chosen), figsize=(4.2 * len(chosen) + 0.6, 6.2),
                             sharex=True, sharey=True, squeeze=False)
    colors = plt.get_cmap(CATEGORICAL)
    for j, k in enumerate(chosen):
        ud = units_dir(rd) / unit_name(k, 0)
        tr = read_csv_columns(ud / "trajectory.csv")
        st = read_csv_columns(ud / "steps.csv")
        zones = sorted(c for c in tr if c.startswith("frac_"))
        t = tr["t"]
        ax = axes[0, j]
        for z, c in enumerate(zones):
            ax.plot(t, tr[c], color=colors(z), lw=1.2, label=f"zone {z}")
        ax.plot(t, tr["in_sg"], color=PALETTE["in_sg"], lw=1.0, ls="--", label="in zone s_g")
        ax.set_title(f"k = {k}: one rollout", fontsize=9)
        ax.grid(alpha=0.3)
        ax2 = axes[1, j]
        for z in range(len(zones)):
            ax2.plot(st["t"], st[f"occ_{z}"], color=colors(z), lw=0.8, alpha=0.8)
        ax2.plot(t, tr["mean_in_sg"], color=PALETTE["in_sg"], lw=1.4, ls="--", label="in zone s_g")
        ax2.plot(t, tr["mean_largest"], color=PALETTE["fullest"], lw=1.4, ls=":",
                 label="in the fullest zone")
        ax2.set_title(f"k = {k}: mean over rollouts", fontsize=9)
        ax2.set_xlabel("time step")
        ax2.grid(alpha=0.3)
    axes[0, 0].set_ylabel("fraction of robots")
    axes[1, 0].set_ylabel("fraction of robots")
    axes[0, 0].set_ylim(0, 1)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    axes[1, -1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Fraction of robots per zone over time", fontsize=10)
    return fig


def plot_alternation(run_dir: str | os.PathLike[str], path: Path | None = None) -> Path | None:
    """Value estimates along the ALTERNATING-MARL history of each unit (``history.csv``)."""
    fig = figure_alternation(run_dir)
    if fig is None:
        return None
    return save_figure(fig, path or Path(run_dir) / "plots" / "alternation.png")


def figure_alternation(run_dir: str | os.PathLike[str]) -> Any:
    """The figure of :func:`plot_alternation` (``None`` without value columns).

    For each unit (up to 4): the value of the current joint policy after each proposal
    (step line) and every proposal's estimated value ``v_new`` (marker: circle for
    G-LEARN, square for L-LEARN; filled green if accepted, red if rejected, grey if no
    improvement).
    """
    import csv

    rd = Path(run_dir)
    udir = units_dir(rd)
    udirs = sorted(p for p in udir.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and is_finished(rd, p.name)) if udir.is_dir() else []
    series = []
    for ud in udirs[:4]:
        with open(ud / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and "v_new" in rows[0]:
            series.append((ud.name, rows))
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    face = {"accept": PALETTE["accepted"], "initial": PALETTE["accepted"],
            "reject": PALETTE["rejected"]}
    for i, (name, rows) in enumerate(series):
        color = plt.get_cmap(CATEGORICAL)(i)
        x = np.arange(1, len(rows) + 1)
        v_new = np.array([_float(r.get("v_new")) for r in rows])
        acc = np.array([r.get("accepted", "") in ("True", "true", "1") for r in rows])
        current = np.empty_like(v_new)
        cur = np.nan
        for j in range(len(rows)):
            if acc[j]:
                cur = v_new[j]
            current[j] = cur
        ax.step(x, current, where="post", color=color, lw=1.5, label=f"{name}: current V")
        for j, r in enumerate(rows):
            ax.scatter(x[j], v_new[j], marker="o" if r.get("player") == "global" else "s",
                       s=36, color=face.get(r.get("decision", ""), PALETTE["no_improvement"]),
                       edgecolors=color, zorder=3)
    from matplotlib.lines import Line2D

    grey = PALETTE["legend_marker"]
    handles = ax.get_legend_handles_labels()[0] + [
        Line2D([], [], ls="", marker="o", color=grey, label="G-LEARN proposal"),
        Line2D([], [], ls="", marker="s", color=grey, label="L-LEARN proposal"),
        Line2D([], [], ls="", marker="o", color=PALETTE["accepted"], label="accepted"),
        Line2D([], [], ls="", marker="o", color=PALETTE["rejected"], label="rejected"),
        Line2D([], [], ls="", marker="o", color=PALETTE["no_improvement"],
               label="no improvement")]
    ax.legend(handles=handles, fontsize=7)
    ax.set_xlabel("proposal (G-LEARN and L-LEARN alternate)")
    ax.set_ylabel("estimated value V (common random numbers)")
    ax.set_title("ALTERNATING-MARL: proposals and the UPDATE rule", fontsize=9)
    ax.grid(alpha=0.3)
    integer_ticks(ax)
    return fig


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def make_plots(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw every figure that the run directory has data for; returns the PNG paths."""
    rd = Path(run_dir)
    summary = read_summary(rd)
    out: list[Path | None] = []
    if len(summary.get("per_k", [])) >= 2:
        out += [plot_reward_vs_k(rd), plot_runtime_vs_k(rd), plot_mode_mismatch_vs_k(rd)]
    out.append(plot_occupancy(rd))
    if len(summary.get("per_k", [])) == 1:
        out.append(plot_alternation(rd))
    return [p for p in out if p is not None]
