"""Figures of a run directory (paper Figures 6 and 7; SPEC 8.1, 10).

Every figure is drawn from the files of a run directory (``per_k.csv``, ``metrics.csv``,
``units/*/steps.csv``, ``units/*/trajectory.csv``, ``units/*/history.csv``), never from
numbers typed into code. Matplotlib runs with the non-interactive ``Agg`` backend; the look
(colour-blind-safe palette, ticks at the sampled ``k``, titles naming the run and its
evaluation) is :mod:`altmarl.plots.style`'s.

* ``reward_vs_k.png`` (Figure 6, left): discounted reward vs ``k``: mean over all
  evaluation seeds (and training runs), a band of +-1 standard deviation over seeds, and
  the individual seed means as dots;
* ``runtime_vs_k.png`` (Figure 6, right): training wall time (and CPU time) vs ``k``;
* ``occupancy.png`` (Figure 7, left): fraction of agents per local state (robots per zone
  on the warehouse) over time for a few ``k``; top row one example rollout (with the
  fraction in the local state named by ``s_g``); bottom row means over rollouts: per state
  (``Evaluation.occupancy``, flat at ``1/|S_l|`` when game and policies treat all states
  alike, which the panel then says), in the state ``s_g``, and in the fullest state
  (informative under symmetry too);
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
    AXES_TITLE_SIZE,
    PALETTE,
    TITLE_SIZE,
    categorical,
    integer_ticks,
    k_ticks,
    legend,
    legend_below,
    population_words,
    pyplot,
    save_figure,
    series_color,
)
from altmarl.rundir import is_finished, read_run_record, read_summary, unit_name, units_dir


def _env_name(summary: dict[str, Any]) -> str:
    return str(summary.get("env", {}).get("name", ""))


def _subtitle(summary: dict[str, Any]) -> str:
    """``NAME: ENV, n = N; E seeds x R rollouts x horizon H``."""
    ev = summary.get("evaluation", {})
    env = summary.get("env", {})
    n = env.get("params", {}).get("n")
    name = summary.get("name", "")
    head = env.get("name", "?") if name == env.get("name") else f"{name}: {env.get('name', '?')}"
    return (f"{head}"
            f"{f', n = {n}' if n is not None else ''}; evaluation {ev.get('seeds', '?')} seeds "
            f"x {ev.get('rollouts', '?')} rollouts x horizon {ev.get('horizon', '?')}")


def _titles(ax: Any, title: str, summary: dict[str, Any]) -> None:
    ax.set_title(f"{title}\n{_subtitle(summary)}", fontsize=AXES_TITLE_SIZE)


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
    ax.fill_between(k, mean - std, mean + std, color=PALETTE["value"], alpha=0.2,
                    label="±1 standard deviation over seeds")
    ax.plot(k, mean, "o-", color=PALETTE["value"], ms=3.5, label="mean over seeds")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("discounted reward")
    _titles(ax, "Discounted reward of the learned policies vs k", summary)
    ax.grid(alpha=0.3)
    legend(ax, loc="best")
    k_ticks(ax, k)
    return fig


def plot_runtime_vs_k(run_dir: str | os.PathLike[str], path: Path | None = None) -> Path:
    """Figure 6 (right): training time of ALTERNATING-MARL vs ``k``."""
    return save_figure(figure_runtime_vs_k(run_dir), path or Path(run_dir) / "plots" / "runtime_vs_k.png")


def figure_runtime_vs_k(run_dir: str | os.PathLike[str]) -> Any:
    """The figure of :func:`plot_runtime_vs_k` (not saved)."""
    rd = Path(run_dir)
    summary = read_summary(rd)
    pk = read_csv_columns(rd / "per_k.csv")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    k = pk["k"]
    ax.errorbar(k, pk["train_wall_s"], yerr=pk["train_wall_s_std"], fmt="o-", ms=3.5,
                color=PALETTE["runtime"], capsize=2, label="wall time (mean over training runs)")
    ax.plot(k, pk["train_cpu_s"], "s--", ms=3, color=PALETTE["cpu"], label="CPU time")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("training time per run (s)")
    _titles(ax, "Training time of ALTERNATING-MARL vs k", summary)
    positive = pk["train_wall_s"][pk["train_wall_s"] > 0]
    if positive.size and np.nanmax(positive) > 20 * max(np.nanmin(positive), 1e-3):
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    legend(ax)
    k_ticks(ax, k)
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
    summary = read_summary(rd)
    pk = read_csv_columns(rd / "per_k.csv")
    if np.all(np.isnan(pk["mode_mismatch_mean"])):
        return None
    _, state = population_words(_env_name(summary))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    k, m, s = pk["k"], pk["mode_mismatch_mean"], pk["mode_mismatch_std"]
    ax.fill_between(k, m - s, m + s, color=PALETTE["mode"], alpha=0.2,
                    label="±1 standard deviation over seeds")
    ax.plot(k, m, "o-", ms=3.5, color=PALETTE["mode"], label="mean over seeds")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel(f"fraction of steps: global action ≠\nmost populated {state}")
    ax.set_ylim(bottom=0)
    _titles(ax, f"How often the global action misses the most populated {state}", summary)
    ax.grid(alpha=0.3)
    legend(ax)
    k_ticks(ax, k)
    return fig


def _pick_ks(ks: list[int], wanted: list[int] | None, most: int = 3) -> list[int]:
    """The ``k`` of the occupancy panels: the ``wanted`` ones that have finished (all
    of them absent: up to ``most`` spread over ``ks``)."""
    if wanted:
        chosen = [k for k in wanted if k in ks]
        if chosen:
            return chosen
    if len(ks) <= most:
        return ks
    idx = np.unique(np.round(np.linspace(0, len(ks) - 1, most)).astype(int))
    return [ks[i] for i in idx]


def plot_occupancy(run_dir: str | os.PathLike[str], ks: list[int] | None = None,
                   path: Path | None = None) -> Path | None:
    """Figure 7 (left): fraction of agents per local state over time for a few ``k``
    (training run 0 of each)."""
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
    agents, state = population_words(str(cfg.get("env", {}).get("name", "")))
    named = state == "zone"
    plt = pyplot()
    fig, axes = plt.subplots(2, len(chosen), figsize=(max(6.4, 4.2 * len(chosen) + 0.6), 6.6),
                             sharex=True, sharey=True, squeeze=False)
    flat_note = False
    for j, k in enumerate(chosen):
        ud = units_dir(rd) / unit_name(k, 0)
        tr = read_csv_columns(ud / "trajectory.csv")
        st = read_csv_columns(ud / "steps.csv")
        zones = sorted((c for c in tr if c.startswith("frac_")), key=lambda c: int(c[5:]))
        colors = categorical(len(zones))
        t = tr["t"]
        ax = axes[0, j]
        many = len(zones) > 8  # too many states for a legend entry each
        for z, c in enumerate(zones):
            ax.plot(t, tr[c], color=colors[z], lw=1.0 if many else 1.2, alpha=0.6 if many else 1,
                    label=None if many else f"{state} {z}")
        if named:  # the warehouse's global state names a zone; other games' does not
            ax.plot(t, tr["in_sg"], color=PALETTE["in_sg"], lw=1.0, ls="--",
                    label=f"in the {state} named by the global state")
        ax.set_title(f"k = {k}: one rollout", fontsize=AXES_TITLE_SIZE)
        ax.grid(alpha=0.3)
        ax2 = axes[1, j]
        occ = [st[f"occ_{z}"] for z in range(len(zones)) if f"occ_{z}" in st]
        for z, o in enumerate(occ):
            ax2.plot(st["t"], o, color=colors[z], lw=0.8, alpha=0.8)
        if occ and np.nanmax(np.ptp(np.vstack(occ)[:, len(t) // 5:], axis=0)) < 0.02:
            flat_note = True
        if named:
            ax2.plot(t, tr["mean_in_sg"], color=PALETTE["in_sg"], lw=1.4, ls="--",
                     label=f"in the {state} named by the global state (mean)")
        ax2.plot(t, tr["mean_largest"], color=PALETTE["fullest"], lw=1.4, ls=":",
                 label=f"in the fullest {state} (mean)")
        ax2.set_title(f"k = {k}: mean over rollouts", fontsize=AXES_TITLE_SIZE)
        ax2.set_xlabel("time step")
        ax2.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"fraction of {agents}")
    axes[1, 0].set_ylabel(f"fraction of {agents}")
    axes[0, 0].set_ylim(0, 1)
    legend_below(fig, axes, ncol=4 if len(chosen) > 1 else 2)
    if flat_note:
        axes[1, 0].text(0.02, 0.97, f"thin lines: each {state}; their means meet at "
                        f"1/{len(zones)}\nbecause no {state} is special on average",
                        transform=axes[1, 0].transAxes, va="top", fontsize=7,
                        color=PALETTE["reference"])
    fig.suptitle(f"Fraction of {agents} per {state} over time ({cfg.get('name', '')}, "
                 "training run 0)", fontsize=TITLE_SIZE)
    return fig


def plot_alternation(run_dir: str | os.PathLike[str], path: Path | None = None) -> Path | None:
    """Value estimates along the ALTERNATING-MARL history of each unit (``history.csv``)."""
    fig = figure_alternation(run_dir)
    if fig is None:
        return None
    return save_figure(fig, path or Path(run_dir) / "plots" / "alternation.png")


def _unit_label(name: str, several_runs: bool) -> str:
    """``k0010_t01`` -> ``k = 10`` (``k = 10, training run 1`` when a ``k`` has several)."""
    k, t = (int(x) for x in name[1:].split("_t"))
    return f"k = {k}, training run {t}" if several_runs else f"k = {k}"


def figure_alternation(run_dir: str | os.PathLike[str]) -> Any:
    """The figure of :func:`plot_alternation` (``None`` without value columns).

    For each unit (up to 4): the value of the current joint policy after each proposal
    (step line) and every proposal's estimated value ``v_new`` (marker: circle for
    G-LEARN, square for L-LEARN; filled green if accepted, vermilion if rejected, grey if no
    improvement; the legend lists only the decisions that occur).
    """
    import csv

    rd = Path(run_dir)
    summary = read_summary(rd)
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
    several = any(not name.endswith("_t00") for name, _ in series)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    face = {"accept": PALETTE["accepted"], "initial": PALETTE["accepted"],
            "reject": PALETTE["rejected"]}
    seen: set[str] = set()
    for i, (name, rows) in enumerate(series):
        color = series_color(i)
        x = np.arange(1, len(rows) + 1)
        v_new = np.array([_float(r.get("v_new")) for r in rows])
        acc = np.array([r.get("accepted", "") in ("True", "true", "1") for r in rows])
        current = np.empty_like(v_new)
        cur = np.nan
        for j in range(len(rows)):
            if acc[j]:
                cur = v_new[j]
            current[j] = cur
        label = _unit_label(name, several)
        ax.step(x, current, where="post", color=color, lw=1.5,
                label=f"{label}: value of the current pair" if len(series) > 1
                else "value of the current pair")
        for j, r in enumerate(rows):
            decision = r.get("decision", "")
            seen.add({"initial": "accept"}.get(decision, decision))
            ax.scatter(x[j], v_new[j], marker="o" if r.get("player") == "global" else "s",
                       s=36, color=face.get(decision, PALETTE["no_improvement"]),
                       edgecolors=color, zorder=3)
    from matplotlib.lines import Line2D

    grey = PALETTE["legend_marker"]
    handles = ax.get_legend_handles_labels()[0] + [
        Line2D([], [], ls="", marker="o", color=grey, label="G-LEARN proposal"),
        Line2D([], [], ls="", marker="s", color=grey, label="L-LEARN proposal")]
    for decision, colour, text in (("accept", PALETTE["accepted"], "accepted"),
                                   ("reject", PALETTE["rejected"], "rejected"),
                                   ("no-improvement", PALETTE["no_improvement"],
                                    "no improvement")):
        if decision in seen:
            handles.append(Line2D([], [], ls="", marker="o", color=colour, label=text))
    legend(ax, handles=handles, loc="best")
    ax.set_xlabel("proposal (G-LEARN and L-LEARN alternate)")
    ax.set_ylabel("estimated value V (common random numbers)")
    _titles(ax, "ALTERNATING-MARL: each proposal and the UPDATE decision", summary)
    ax.grid(alpha=0.3)
    integer_ticks(ax)
    return fig


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


#: what each figure of :func:`make_plots` shows, in a few words (printed next to its path)
FIGURE_WORDS = {
    "reward_vs_k.png": "discounted reward vs k",
    "runtime_vs_k.png": "training time vs k",
    "mode_mismatch_vs_k.png": "how often the global action misses the population mode, vs k",
    "occupancy.png": "where the agents are over time",
    "alternation.png": "each G-LEARN and L-LEARN proposal and UPDATE's decision on it",
}


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
