"""Figures read from run directories (paper Figures 6-7; altmarl.plots)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from altmarl import plots
from altmarl.experiments import parse_config, run_sweep
from altmarl.io import read_csv_columns

PNG = b"\x89PNG\r\n\x1a\n"

BASE: dict[str, Any] = {
    "name": "tiny-plots",
    "seed": 2,
    # |A_g| = |S_l| so that the population mode is defined
    "env": {"name": "random", "params": {"n_sg": 2, "n_ag": 3, "n_sl": 3, "n_al": 2, "n": 10,
                                         "seed": 4}},
    "algorithm": {"sweeps": 2, "m": 4, "local_solver": "induced-vi", "eval_rollouts": 8,
                  "eval_horizon": 10},
    "evaluation": {"seeds": 3, "rollouts": 4, "horizon": 12},
    "sweep": {"k": [1, 2, 3, 4], "train_seeds": 1},
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plots") / "sweep"
    run_sweep(parse_config(BASE), out, workers=1, progress=False, plots=False)
    return out


def test_make_plots_writes_readable_pngs(sweep_dir: Path) -> None:
    paths = plots.make_plots(sweep_dir)
    names = sorted(p.name for p in paths)
    assert names == ["mode_mismatch_vs_k.png", "occupancy.png", "reward_vs_k.png",
                     "runtime_vs_k.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000
    import matplotlib.image as mpimg

    img = mpimg.imread(sweep_dir / "plots" / "reward_vs_k.png")
    assert img.shape[0] > 300 and img.shape[1] > 500


def _line_y(fig: Any, label: str) -> np.ndarray:
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label() == label:
                return np.asarray(line.get_ydata(), dtype=float)
    raise AssertionError(f"no line labelled {label!r}")


def test_reward_figure_reads_the_run_directory(sweep_dir: Path) -> None:
    pk = read_csv_columns(sweep_dir / "per_k.csv")
    fig = plots.figure_reward_vs_k(sweep_dir)
    np.testing.assert_array_equal(_line_y(fig, "mean over seeds"), pk["mean"])
    # edit the file: the figure follows (nothing is typed into the plotting code)
    path = sweep_dir / "per_k.csv"
    rows = list(csv.reader(path.open()))
    j = rows[0].index("mean")
    rows[1][j] = "123.5"
    backup = path.read_text()
    try:
        with path.open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        assert plots.figure_reward_vs_k(sweep_dir) is not None
        assert _line_y(plots.figure_reward_vs_k(sweep_dir), "mean over seeds")[0] == 123.5
    finally:
        path.write_text(backup)


def test_mismatch_and_runtime_figures_match_metrics(sweep_dir: Path) -> None:
    mt = read_csv_columns(sweep_dir / "metrics.csv")
    fig = plots.figure_mode_mismatch_vs_k(sweep_dir)
    expected = [1 - mt["mode_match_rate"][mt["k"] == k].mean() for k in (1, 2, 3, 4)]
    np.testing.assert_allclose(_line_y(fig, "mean over seeds"), expected, rtol=1e-12)
    fig = plots.figure_runtime_vs_k(sweep_dir)
    np.testing.assert_allclose(_line_y(fig, "CPU time"),
                               read_csv_columns(sweep_dir / "per_k.csv")["train_cpu_s"])


def test_occupancy_figure_uses_the_stored_trajectories(sweep_dir: Path) -> None:
    fig = plots.figure_occupancy(sweep_dir)
    # default: up to three k spread over the grid
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:1] == ["k = 1: one rollout"] and "k = 4: one rollout" in titles
    tr = read_csv_columns(sweep_dir / "units" / "k0001_t00" / "trajectory.csv")
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), tr["frac_0"])
    # fractions of a population sum to one
    fr = np.stack([tr[f"frac_{x}"] for x in range(3)], axis=1)
    np.testing.assert_allclose(fr.sum(axis=1), 1.0)
    assert np.all((tr["in_sg"] >= 0) & (tr["in_sg"] <= tr["mean_largest"] + 1))
    picked = plots.figure_occupancy(sweep_dir, ks=[2])
    assert [ax.get_title() for ax in picked.axes][0] == "k = 2: one rollout"


def test_single_k_run_gets_occupancy_and_alternation(tmp_path: Path) -> None:
    cfg = parse_config({**BASE, "sweep": {"k": [2]}})
    rep = run_sweep(cfg, tmp_path / "one", workers=1, progress=False)
    assert sorted(p.name for p in rep.plots) == ["alternation.png", "occupancy.png"]
    assert rep.summary["plots"] == ["plots/occupancy.png", "plots/alternation.png"]


def test_no_mode_plot_when_mode_undefined(tmp_path: Path) -> None:
    env = {"name": "random", "params": {"n_sg": 2, "n_ag": 2, "n_sl": 3, "n_al": 2, "n": 10}}
    cfg = parse_config({**BASE, "env": env, "sweep": {"k": [1, 2]}})
    rep = run_sweep(cfg, tmp_path / "nomode", workers=1, progress=False, plots=False)
    assert all(p["mode_mismatch_mean"] is None for p in rep.summary["per_k"])
    assert plots.figure_mode_mismatch_vs_k(rep.run_dir) is None
    assert plots.plot_mode_mismatch_vs_k(rep.run_dir) is None


def test_plots_refuse_a_non_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="summary.json"):
        plots.make_plots(tmp_path)


def test_occupancy_follows_the_configured_ks(sweep_dir: Path) -> None:
    # [plots] occupancy_k of the stored configuration picks the panels (config.json record)
    import json

    rec_path = sweep_dir / "config.json"
    saved = rec_path.read_text()
    rec = json.loads(saved)
    rec["config"]["plots"] = {"occupancy_k": [3, 1]}
    try:
        rec_path.write_text(json.dumps(rec))
        fig = plots.figure_occupancy(sweep_dir)
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[:2] == ["k = 3: one rollout", "k = 1: one rollout"]
    finally:
        rec_path.write_text(saved)
    default = [ax.get_title() for ax in plots.figure_occupancy(sweep_dir).axes]
    assert default[:3] == ["k = 1: one rollout", "k = 3: one rollout", "k = 4: one rollout"]


def test_save_figure_is_atomic_and_keeps_the_settings(tmp_path: Path) -> None:
    plt = plots.pyplot()
    sizes = {}
    for dpi, tight in ((60, True), (120, True), (120, False)):
        fig, ax = plt.subplots(figsize=(2.0, 1.0))
        ax.plot([0, 1], [0, 1], color=plots.PALETTE["value"])
        path = plots.save_figure(fig, tmp_path / "sub" / f"f{dpi}{tight}.png", dpi=dpi,
                                 tight=tight)
        assert path.read_bytes().startswith(PNG)
        assert not plt.fignum_exists(fig.number)  # closed
        sizes[dpi, tight] = path.stat().st_size
    assert sizes[60, True] < sizes[120, True]
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.endswith(".tmp")]
    # the colour-blind-safe Okabe-Ito palette, cycled
    assert plots.series_color(3) == "#D55E00" == plots.series_color(3 + 8)


def test_k_ticks_sit_at_the_sampled_k() -> None:
    from altmarl.plots.style import k_ticks, pyplot

    plt = pyplot()
    for scale in ("linear", "log"):
        fig, ax = plt.subplots()
        ax.plot([1, 3, 7], [1, 2, 3])
        ax.set_xscale(scale)
        k_ticks(ax, [1.0, 3.0, 7.0])
        assert list(ax.get_xticks()) == [1, 3, 7]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "3", "7"]
        plt.close(fig)


def test_occupancy_legend_sits_below_the_panels_and_speaks_the_game(sweep_dir: Path) -> None:
    fig = plots.figure_occupancy(sweep_dir)
    assert all(ax.get_legend() is None for ax in fig.axes)  # no legend over the curves
    (leg,) = fig.legends
    labels = [t.get_text() for t in leg.get_texts()]
    assert "local state 0" in labels and "in the fullest local state (mean)" in labels
    # a random game's global state names no local state: no such line
    assert not any("named by the global state" in text for text in labels)
    fig.canvas.draw()
    below = leg.get_window_extent().y1
    assert all(below <= ax.get_window_extent().y0 + 1 for ax in fig.axes)
    plots.pyplot().close(fig)


def test_alternation_legend_names_k_and_only_decisions_that_occur(sweep_dir: Path) -> None:
    fig = plots.figure_alternation(sweep_dir)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any("_t0" in text for text in labels)  # no internal unit ids
    assert any(text.startswith("k = ") for text in labels)
    import csv

    decisions = set()
    for ud in sorted((sweep_dir / "units").iterdir())[:4]:
        with open(ud / "history.csv", newline="") as f:
            decisions |= {r["decision"] for r in csv.DictReader(f)}
    assert ("rejected" in labels) == ("reject" in decisions)
    assert ("no improvement" in labels) == ("no-improvement" in decisions)


def test_figures_never_import_the_experiment_code() -> None:
    import subprocess
    import sys

    code = ("import sys, altmarl.plots; bad = [m for m in sys.modules if m.startswith(("
            "'altmarl.experiments', 'altmarl.federated', 'altmarl.continuous', "
            "'altmarl.cli', 'matplotlib'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_old_plotting_names_still_work() -> None:
    from altmarl.continuous.sweep import plot_sweep
    from altmarl.experiments.theory import effective_k, plot_theory
    from altmarl.federated.experiment import plot_run

    assert plot_sweep is plots.plot_sweep and plot_theory is plots.plot_theory
    assert callable(plot_run)
    import altmarl.continuous as C

    assert C.plot_sweep is plots.plot_sweep
    assert effective_k(5, 5) == float("inf") and effective_k(2, 5) == 2 * 4 / 3
