"""``altmarl continuous ...``: continuous states, neural G-LEARN and TRPO L-LEARN on the
continuous warehouse (paper Appendix G.2, SPEC 8.2; docs/continuous.md).

    altmarl continuous run    [--k K] [--seed S] [--g-method ce|rollout] [--out DIR] [--track KIND ...] ...
    altmarl continuous sweep  [--ks 1,5,10,25,50,75] [--seeds 15] [--workers 2] [--backend local|ray] [--out DIR] [--track KIND ...] ...
    altmarl continuous random [--seeds 15] [--rollouts 50] [--horizon 100]
    altmarl continuous plot   RUN_DIR

PyTorch is imported only when a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from altmarl.cli.common import (
    close_trackers,
    echo,
    echo_plots,
    fail,
    no_progress_option,
    open_trackers,
    parse_int_list,
    parse_sets,
    redraw,
    track_option,
)


def build_config(quick: bool, config: Path | None, g_method: str | None,
                 alternations: int | None, n: int | None, sets: list[str]) -> Any:
    """Resolve a :class:`ContinuousConfig` from the defaults (or ``--quick``), a JSON file,
    flags and ``--set key=value`` overrides (``trpo.max_kl=0.02`` for the TRPO block)."""
    from altmarl.continuous.alternating import ContinuousConfig
    from altmarl.continuous.sweep import quick_config

    base = quick_config() if quick else ContinuousConfig()
    d = base.to_json()
    if config is not None:
        loaded = json.loads(config.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: expected a JSON object of ContinuousConfig fields")
        trpo = loaded.pop("trpo", None)
        d.update(loaded)
        if trpo is not None:
            d["trpo"] = {**d["trpo"], **trpo}
    if g_method is not None:
        d["g_method"] = g_method
    if alternations is not None:
        d["alternations"] = alternations
    if n is not None:
        d["n"] = n
    overrides = parse_sets(sets)
    # errors name where the bad value came from: the file / flags first, then --set
    cfg = ContinuousConfig.parse(d, source=str(config) if config is not None else "options")
    if not overrides:
        return cfg
    for key, val in overrides.items():
        if key.startswith("trpo."):
            d["trpo"] = {**d["trpo"], key[5:]: val}
        else:
            d[key] = val
    return ContinuousConfig.parse(d, source="--set")


def _format_result(summary: dict[str, Any]) -> str:
    ev = summary["evaluation"]
    h50 = ev["short_horizons"].get("50", {}).get("mean")
    short = "" if h50 is None or ev["horizon"] <= 50 else f"horizon-50 return {h50:.2f}; "
    return (f"k = {summary['k']}, seed = {summary['seed']}: V = {ev['mean']:.2f} "
            f"(stderr {ev['stderr']:.2f}, {ev['rollouts']} rollouts, horizon {ev['horizon']}); "
            f"{short}the dispatcher targets the fullest zone on "
            f"{100 * ev['mode_match_rate']:.1f}% of steps; sweeps {summary['sweeps']} "
            f"(accepted: global {summary['accepted_global']}, local {summary['accepted_local']}); "
            f"training {summary['train_s']:.1f} s wall / {summary['train_cpu_s']:.1f} s CPU")


def _n(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _pm(stats: dict[str, Any]) -> str:
    """``mean ± sd`` (only the mean with one seed, where the spread is undefined)."""
    mean, sd = _n(stats.get("mean")), _n(stats.get("std"))
    return f"{mean:.2f}" if sd != sd else f"{mean:.2f} ± {sd:.2f}"


def format_sweep(summary: dict[str, Any]) -> str:
    """Plain-text table of a sweep summary (the evaluation horizon and the authors'
    horizon 50 as in the configuration; the horizon-50 column only when the evaluation is
    longer than 50 steps)."""
    cfg = summary.get("config") or {}
    horizon = int(cfg.get("eval_horizon") or (summary.get("random") or {}).get("horizon") or 100)
    short = horizon > 50
    head = f"{'k':>4} {'seeds':>5} {f'V (H={horizon})':>16}"
    if short:
        head += f" {'V (H=50)':>16}"
    lines = [head + f" {'mode %':>7} {'reset acc %':>11} {'train s':>8} {'CPU s':>7}"]
    for r in summary["per_k"]:
        row = f"{r['k']:>4} {r['seeds']:>5} {_pm(r['value']):>16}"
        if short:
            row += f" {_pm(r['value_h50']):>16}"
        lines.append(row + f" {100 * _n(r['mode_match_rate']['mean']):>7.1f} "
                     f"{100 * _n(r['mode_accuracy_reset']['mean']):>11.1f} "
                     f"{_n(r['train_s']['mean']):>8.1f} {_n(r['train_cpu_s']['mean']):>7.1f}")
    rnd = summary.get("random")
    if rnd:
        text = (f"random play (both players uniform), same evaluation: V = "
                f"{_n(rnd['value']['mean']):.2f} over horizon {rnd['horizon']} (sd over "
                f"rollouts {_n(rnd['rollout_std']):.2f})")
        if short and rnd.get("short_horizon") != rnd.get("horizon"):
            text += (f"; {_n(rnd['value_h50']['mean']):.2f} over horizon "
                     f"{rnd['short_horizon']} (sd over rollouts "
                     f"{_n(rnd['rollout_std_h50']):.2f})")
        lines.append(text)
    lines.append("V: discounted return, mean over training seeds of each seed's evaluation; "
                 "± its standard deviation over training seeds; mode %: steps where the "
                 "dispatcher targets the population's most occupied zone")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``continuous`` command group to the ``altmarl`` app."""
    c_app = typer.Typer(help="Continuous states (paper Appendix G.2): neural G-LEARN and TRPO "
                             "L-LEARN on the continuous warehouse.", no_args_is_help=True)
    app.add_typer(c_app, name="continuous")

    quick_opt = typer.Option(False, "--quick", help="small smoke configuration (seconds)")
    config_opt = typer.Option(None, "--config", help="JSON file of ContinuousConfig fields")
    gm_opt = typer.Option(None, "--g-method", help="G-LEARN: 'ce' (paper, mode labels) or "
                          "'rollout' (label-free rollout policy iteration)")
    alt_opt = typer.Option(None, "--alternations", help="maximum number of sweeps")
    n_opt = typer.Option(None, "--n", help="number of robots (default 500)")
    set_opt = typer.Option([], "--set", metavar="KEY=VALUE",
                           help="override a config field, e.g. --set update_rollouts=32 or "
                                "--set trpo.max_kl=0.02 (repeatable)")

    @c_app.command("run")
    def run_cmd(
        k: int = typer.Option(5, "--k", help="subsample size"),
        seed: int = typer.Option(0, "--seed", help="seed"),
        out: Path = typer.Option(Path("runs/continuous-run"), "--out", help="run directory"),
        quick: bool = quick_opt,
        config: Path | None = config_opt,
        g_method: str | None = gm_opt,
        alternations: int | None = alt_opt,
        n: int | None = n_opt,
        sets: list[str] = set_opt,
        resume: bool = typer.Option(True, "--resume/--no-resume",
                                    help="continue from OUT/checkpoint if present"),
        no_progress: bool = no_progress_option(),
        track: list[str] = track_option(),
    ) -> None:
        """One ALTERNATING-MARL run (writes OUT/result.json and OUT/policies.pt)."""
        import shutil

        from altmarl.continuous.alternating import run_continuous
        from altmarl.progress import Progress

        try:
            cfg = build_config(quick, config, g_method, alternations, n, sets)
        except (ValueError, OSError, TypeError) as exc:
            fail(str(exc))
        ckpt = out / "checkpoint"
        trackers = open_trackers(track, out, name=f"{out.name}-k{k}-seed{seed}")
        if not resume:
            shutil.rmtree(ckpt, ignore_errors=True)
        with trackers, Progress(not no_progress) as bar:
            task = bar.add_task("alternating", total=cfg.alternations)

            def on_sweep(t: int, e: dict[str, Any]) -> None:
                bar.update(task, completed=t + 1,
                           status=f"V={e['v_end']:.1f} G:{e['global']['decision']} "
                                  f"L:{e['local']['decision']}")

            try:
                res = run_continuous(k, seed, cfg, checkpoint_dir=ckpt, resume=True,
                                     on_sweep=on_sweep, callbacks=trackers)
            except ValueError as exc:
                fail(str(exc))
            bar.update(task, completed=cfg.alternations)
        res.save(out)
        shutil.rmtree(ckpt, ignore_errors=True)
        echo(_format_result(res.summary()))
        echo(f"run directory: {out} (result.json, policies.pt)")
        close_trackers(trackers)

    @c_app.command("sweep")
    def sweep_cmd(
        ks: str | None = typer.Option(None, "--ks", help="subsample sizes (default "
                                      "1,5,10,25,50,75; with --quick 1,5,10)"),
        seeds: int | None = typer.Option(None, "--seeds", min=1, help="training seeds per k "
                                         "(0..seeds-1; default 15, with --quick 3)"),
        workers: int = typer.Option(2, "--workers", help="parallel runs"),
        backend: str = typer.Option("local", "--backend", help="local (process pool) or ray"),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address "
                                                                    "(backend ray)"),
        out: Path = typer.Option(Path("runs/continuous-sweep"), "--out", help="run directory"),
        quick: bool = quick_opt,
        config: Path | None = config_opt,
        g_method: str | None = gm_opt,
        alternations: int | None = alt_opt,
        n: int | None = n_opt,
        sets: list[str] = set_opt,
        resume: bool = typer.Option(True, "--resume/--no-resume",
                                    help="reuse finished runs in OUT"),
        no_progress: bool = no_progress_option(),
        track: list[str] = track_option(),
    ) -> None:
        """The k-sweep: reward / runtime / mode accuracy vs k, zone heat map, CSV + JSON."""
        from altmarl.continuous.sweep import (
            DEFAULT_KS,
            DEFAULT_SEEDS,
            QUICK_KS,
            QUICK_SEEDS,
            run_sweep,
        )
        from altmarl.experiments.backends import WorkerDied

        try:
            cfg = build_config(quick, config, g_method, alternations, n, sets)
            k_list = (parse_int_list(ks, "--ks", example="1,5,10") if ks is not None
                      else list(QUICK_KS if quick else DEFAULT_KS))
            big = [k for k in k_list if k > cfg.n]
            if big:
                raise ValueError(f"--ks: {', '.join(map(str, big))} exceed the number of robots "
                                 f"n = {cfg.n}; pass smaller --ks or a larger --n")
            n_seeds = seeds if seeds is not None else (QUICK_SEEDS if quick else DEFAULT_SEEDS)
        except (ValueError, OSError, TypeError) as exc:
            fail(str(exc))
        trackers = open_trackers(track, out)
        try:
            with trackers:
                summary = run_sweep(out, k_list, n_seeds, cfg, workers=workers, resume=resume,
                                    progress=not no_progress, backend=backend,
                                    address=address, callbacks=trackers)
        except WorkerDied as exc:
            fail(str(exc), 1)
        except (ValueError, OSError, TypeError) as exc:
            fail(str(exc))
        echo(format_sweep(summary))
        echo(f"run directory: {out} (config.json, summary.json, per_k.csv, per_run.csv, runs/)")
        echo_plots(summary.get("plots", []))
        close_trackers(trackers)

    @c_app.command("random")
    def random_cmd(
        seeds: int = typer.Option(15, "--seeds", help="evaluation seeds"),
        rollouts: int = typer.Option(50, "--rollouts", help="rollouts per seed"),
        horizon: int = typer.Option(100, "--horizon", help="horizon"),
        n: int = typer.Option(500, "--n", help="number of robots"),
    ) -> None:
        """Random-play baseline (both players uniform), same protocol as the sweep."""
        from altmarl.continuous.env import ContinuousWarehouse
        from altmarl.continuous.sweep import random_baseline

        try:
            env = ContinuousWarehouse(n=n)
            rb = random_baseline(env, list(range(seeds)), rollouts, horizon)
        except ValueError as exc:
            fail(str(exc))
        text = (f"random play, {seeds} seed(s) x {rollouts} rollouts, n = {n}: "
                f"H={horizon}: {_n(rb['value']['mean']):.2f} (sd over rollouts "
                f"{_n(rb['rollout_std']):.2f}, sd over seeds {_n(rb['value']['std']):.2f})")
        if rb["short_horizon"] != horizon:
            text += (f"; H={rb['short_horizon']}: {_n(rb['value_h50']['mean']):.2f} (sd over "
                     f"rollouts {_n(rb['rollout_std_h50']):.2f})")
        echo(text)

    @c_app.command("plot")
    def plot_cmd(run_dir: Path = typer.Argument(..., help="a `continuous sweep` directory")) -> None:
        """Re-aggregate a sweep directory and redraw its plots."""
        from altmarl.cli.experiments import expect_kind

        expect_kind(run_dir, "continuous-sweep", "altmarl continuous sweep")
        replot_sweep(run_dir)


def replot_sweep(run_dir: Path) -> None:
    """Re-aggregate a ``continuous sweep`` directory, print its table, redraw its plots."""
    from altmarl.continuous.sweep import aggregate, plot_sweep

    def draw() -> list[Path]:
        echo(format_sweep(aggregate(run_dir)))
        return plot_sweep(run_dir)

    redraw(run_dir, "continuous sweep",
           f"run `altmarl continuous sweep --out {run_dir}` again to complete it", draw)
