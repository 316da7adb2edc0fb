"""Figures of a continuous k-sweep directory (paper Appendix G.2, Table 4; SPEC 8.2).

Drawn from the directory's ``summary.json`` and ``runs/*/result.json`` only (written by
:func:`altmarl.continuous.sweep.run_sweep`):

* ``reward_vs_k.png`` — discounted return vs ``k`` (horizon 100 and 50, random play);
* ``runtime_vs_k.png`` — training wall and CPU time vs ``k``;
* ``mode_accuracy_vs_k.png`` — how often ``a_g`` is the population mode;
* ``zone_heatmap.png`` — occupancy of the bins over one evaluation rollout per ``k``, with
  the dispatcher's action, the population mode and ``s_g``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from altmarl.plots.style import (
    AXES_TITLE_SIZE,
    HEATMAP,
    PALETTE,
    integer_ticks,
    k_ticks,
    legend,
    legend_below,
    pyplot,
    save_figure,
)


def plot_sweep(out: str | Path) -> list[Path]:
    """Draw the sweep's PNG plots from its directory (``summary.json`` and the runs)."""
    plt = pyplot()
    out = Path(out)
    summ = json.loads((out / "summary.json").read_text())
    per_k = summ["per_k"]
    if not per_k:
        return []
    ks = np.array([r["k"] for r in per_k])
    paths = []

    def num(v: Any) -> float:
        return float("nan") if v is None else float(v)

    def err(key: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([num(r[key]["mean"]) for r in per_k]),
                np.nan_to_num(np.array([num(r[key]["std"]) for r in per_k])))

    horizon = int((summ.get("config") or {}).get("eval_horizon") or 100)
    short = horizon > 50  # the authors' horizon 50 is a second curve only when shorter
    where = (f"continuous warehouse, n = {summ['env']['n']}, {per_k[0]['seeds']} training "
             f"seed(s) per k")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    m, s = err("value")
    ax.errorbar(ks, m, yerr=s, fmt="o-", capsize=4, color=PALETTE["value"],
                label=f"ALTERNATING-MARL, horizon {horizon}")
    if short:
        m50, s50 = err("value_h50")
        ax.errorbar(ks, m50, yerr=s50, fmt="s--", capsize=4, color=PALETTE["action"],
                    label="same runs, horizon 50")
    rnd = summ.get("random")
    if rnd:
        for key, ls in (("value", "-"), ("value_h50", "--"))[: 2 if short else 1]:
            ax.axhline(num(rnd[key]["mean"]), color=PALETTE["baseline"], ls=ls, lw=1.2,
                       label=f"random play (horizon {horizon if key == 'value' else 50})")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("discounted return (mean ± sd over seeds)")
    ax.set_title(f"Discounted return vs k\n{where}", fontsize=AXES_TITLE_SIZE)
    ax.grid(alpha=0.3)
    legend(ax, loc="best")
    k_ticks(ax, ks)
    fig.tight_layout()
    paths.append(out / "reward_vs_k.png")
    save_figure(fig, paths[-1], dpi=120, tight=False)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    runs = _per_run(out)
    for key, fmt, colour, label in (("train_s", "o-", PALETTE["runtime"], "wall time"),
                                    ("train_cpu_s", "s--", PALETTE["cpu"], "CPU time")):
        med, lo, hi = _median_range(runs, ks, key)
        ax.errorbar(ks, med, yerr=[med - lo, hi - med], fmt=fmt, capsize=4, color=colour,
                    label=f"{label} (median over seeds; bars: min to max)")
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("training time per run (s)")
    ax.set_title(f"Training time vs k\n{where}\n(each worker's first run also pays "
                 "PyTorch's start-up)", fontsize=AXES_TITLE_SIZE)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    legend(ax, loc="upper right")
    k_ticks(ax, ks)
    fig.tight_layout()
    paths.append(out / "runtime_vs_k.png")
    save_figure(fig, paths[-1], dpi=120, tight=False)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, lab, fmt in (
            ("mode_match_rate", "target = the current fullest bin (all steps)", "o-"),
            ("initial_mode_match_rate", "target = the initial fullest bin (all steps)", "s--"),
            ("mode_accuracy_reset", "target = the fullest bin at reset (first step)", "^:")):
        m, s = err(key)  # markers and dashes tell apart curves that coincide
        ax.errorbar(ks, 100 * m, yerr=100 * s, fmt=fmt, capsize=4, label=lab)
    ax.set_ylim(0, 105)
    ax.set_xlabel("subsample size k")
    ax.set_ylabel("steps where the dispatcher targets it (%)")
    ax.set_title(f"How often the dispatcher targets the most occupied bin\n{where}",
                 fontsize=AXES_TITLE_SIZE)
    ax.grid(alpha=0.3)
    legend(ax, loc="best")
    k_ticks(ax, ks)
    fig.tight_layout()
    paths.append(out / "mode_accuracy_vs_k.png")
    save_figure(fig, paths[-1], dpi=120, tight=False)

    # zone heat map: the first evaluation rollout of the smallest seed, for each k
    traces = []
    for r in per_k:
        k = r["k"]
        files = sorted((out / "runs").glob(f"k{k:03d}_s*/result.json"))
        if files:
            tr = json.loads(files[0].read_text())["evaluation"]["trace"]
            traces.append((k, tr))
    if traces:
        ncol = min(3, len(traces))
        nrow = math.ceil(len(traces) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.4 * nrow), squeeze=False,
                                 sharey=True, layout="constrained")
        centres = np.asarray(summ["env"]["targets"])
        im = None
        for ax, (k, tr) in zip(axes.ravel(), traces, strict=False):
            occ = np.asarray(tr["occupancy"])
            H = occ.shape[0]
            im = ax.imshow(occ.T, aspect="auto", origin="lower", cmap=HEATMAP, vmin=0, vmax=1,
                           extent=(0, H, -0.5, occ.shape[1] - 0.5), interpolation="nearest")
            t = np.arange(H) + 0.5
            ax.step(t, tr["a_g"], where="mid", color=PALETTE["action"], lw=2, label="dispatcher's target")
            ax.step(t, tr["mode"], where="mid", color=PALETTE["population_mode"], lw=1.2, ls="--",
                    label="fullest bin")
            lo, hi = summ["env"]["low"], summ["env"]["high"]
            width = (hi - lo) / occ.shape[1]
            ax.plot(t, (np.asarray(tr["s_g"]) - lo) / width - 0.5, color=PALETTE["state"], lw=0.8,
                    label="dispatcher's position")
            acc = 100 * float(np.mean(np.asarray(tr["a_g"]) == np.asarray(tr["mode"])))
            ax.set_title(f"k = {k}  (targets the fullest bin on {acc:.0f}% of steps)", fontsize=10)
            ax.set_yticks(range(len(centres)))
            ax.set_yticklabels([f"{c:+.1f}" for c in centres], fontsize=8)
            ax.set_xlabel("time step")
            integer_ticks(ax)
        for ax in axes.ravel()[len(traces):]:
            ax.axis("off")
        axes[0, 0].set_ylabel("bin (centre)")
        legend_below(fig, axes, ncol=3)
        fig.suptitle("Robots per bin over one evaluation rollout (the smallest seed of each k)",
                     fontsize=AXES_TITLE_SIZE + 1)
        if im is not None:
            fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="fraction of robots")
        paths.append(out / "zone_heatmap.png")
        save_figure(fig, paths[-1], dpi=110)  # cropped to include the legend below
    return paths


def _per_run(out: Path) -> list[dict[str, Any]]:
    """Rows of ``per_run.csv`` (empty without it)."""
    from altmarl.io import read_csv_rows

    p = out / "per_run.csv"
    return read_csv_rows(p) if p.is_file() else []


def _median_range(runs: list[dict[str, Any]], ks: Any, key: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ``k``: median, minimum and maximum of ``key`` over the training seeds."""
    med, lo, hi = [], [], []
    for k in ks:
        v = np.array([float(r[key]) for r in runs if int(r["k"]) == int(k)
                      and isinstance(r.get(key), int | float)], dtype=float)
        v = v[np.isfinite(v)]
        med.append(np.median(v) if v.size else np.nan)
        lo.append(v.min() if v.size else np.nan)
        hi.append(v.max() if v.size else np.nan)
    return np.array(med), np.array(lo), np.array(hi)


__all__ = ["plot_sweep"]
