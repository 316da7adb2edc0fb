"""``altmarl envs / run / sweep / reproduce / plot`` (SPEC 10).

    altmarl envs
    altmarl run ENV_OR_CONFIG [--k K] [--seed S] [--resume] [--out DIR] [--track KIND ...]
    altmarl sweep CONFIG [--backend local|ray] [--workers N] [--address ADDR] [--resume] [--out DIR] [--track KIND ...]
    altmarl reproduce warehouse [--quick] [--train-seeds N] [--out DIR]
    altmarl plot RUN_DIR
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from altmarl.cli.common import (
    close_trackers,
    console,
    echo,
    fail,
    open_trackers,
    track_option,
)


def _report(rep: Any, title: str | None = None) -> None:
    from altmarl.experiments.sweep import summary_table

    con = console()
    for what, why in rep.repaired.items():
        echo(f"repaired: {what} ({why})")
    con.print(summary_table(rep.summary, title))
    s = rep.summary
    status = "complete" if s["complete"] else f"INCOMPLETE ({s['units_done']}/{s['units_total']})"
    echo(f"ran {rep.ran} unit(s), reused {rep.skipped}, {rep.wall_s:.1f} s; {status}")
    _explain(rep.run_dir, s)
    _files(rep.run_dir, rep.plots)


def _explain(run_dir: Path, summary: dict[str, Any]) -> None:
    """What the numbers mean (value against uniform play, why the runs stopped, settings)."""
    from altmarl.experiments.report import explain, run_baseline

    try:
        baseline = run_baseline(run_dir)
    except ValueError:  # an environment that cannot be rebuilt here: no reference line
        baseline = None
    for line in explain(run_dir, summary, baseline):
        echo(line)


def _files(run_dir: Path, plots: list[Path]) -> None:
    from altmarl.plots.runs import FIGURE_WORDS

    echo(f"run directory: {run_dir}  (summary.json, per_k.csv, metrics.csv, units/)")
    for p in plots:
        words = FIGURE_WORDS.get(p.name)
        echo(f"plot: {p}" + (f"  ({words})" if words else ""))


def _interrupted(out: Path, how: str) -> NoReturn:
    from altmarl.experiments.sweep import load_units

    n = len(load_units(out)) if out.exists() else 0
    echo(f"interrupted: {n} finished unit(s) are saved in {out}; continue with `{how}`",
         stderr=True)
    raise typer.Exit(130)


def _sweep(cfg: Any, out: Path, *, backend: str, workers: int | None, address: str | None,
           resume: bool, kind: str, how: str, title: str | None = None,
           track: list[str] | None = None) -> Any:
    """Run the units of ``cfg`` into ``out`` and report; ``how`` is the command that
    continues the run (printed after an interruption or a failed unit); ``track``: the
    ``--track`` kinds."""
    from altmarl.experiments.backends import WorkerDied
    from altmarl.experiments.runner import UnitFailed
    from altmarl.experiments.sweep import run_sweep

    trackers = open_trackers(track or [], out, name=Path(out).name)
    try:
        rep = run_sweep(cfg, out, backend=backend, workers=workers, address=address,
                        resume=resume, kind=kind, callbacks=trackers)
    except KeyboardInterrupt:
        trackers.close()
        _interrupted(out, how)
    except WorkerDied as exc:
        trackers.close()
        fail(str(exc), 1)
    except UnitFailed as exc:
        trackers.close()
        fail(f"{exc}\nfinished units are saved in {out}; continue with `{how}`", 1)
    except ValueError as exc:
        trackers.close()
        fail(str(exc))
    _report(rep, title)
    close_trackers(trackers)
    return rep


def _print_envs() -> None:
    from altmarl import envs

    for name in envs.names():
        info = envs.info(name)
        echo(f"{name}: {info.description}")
        echo(f"    parameters: {info.params_text()}")
    echo("use: altmarl run NAME, or [env] name = \"NAME\" with params = { ... } in a "
         "configuration file")


def register(app: typer.Typer) -> None:
    """Add the experiment commands to the ``altmarl`` app."""

    @app.command("envs")
    def envs_cmd() -> None:
        """List the built-in environments with a description and their parameters."""
        _print_envs()

    @app.command("run")
    def run_cmd(
        target: str = typer.Argument(..., metavar="ENV_OR_CONFIG",
                                     help="environment name (e.g. warehouse), packaged "
                                          "configuration name, or a TOML file"),
        k: int | None = typer.Option(None, "--k", min=1, help="subsample size k (overrides "
                                                              "the configuration)"),
        seed: int | None = typer.Option(None, "--seed", min=0, help="root seed (default 0)"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/NAME-kK-seedS)"),
        track: list[str] = track_option(),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted run "
                                                            "in OUT (same configuration), "
                                                            "recomputing damaged files"),
    ) -> None:
        """One ALTERNATING-MARL run (one k, one training seed), evaluated and plotted.

        Running the same command again re-uses a finished run in OUT (same configuration,
        same numbers); an interrupted one is continued with --resume."""
        from altmarl.experiments.config import resolve_target
        from altmarl.experiments.sweep import run_progress

        try:
            cfg = resolve_target(target)
            ks = [k] if k is not None else cfg.ks()
            if len(ks) != 1:
                raise ValueError(f"{target}: the configuration sweeps k = "
                                 f"{', '.join(map(str, ks))}; pass --k K for one run, or use "
                                 f"`altmarl sweep {target}`")
            flags = "".join(f" --{name} {v}" for name, v in (("k", k), ("seed", seed))
                            if v is not None)
            cfg = cfg.with_overrides(k=ks, seed=seed, train_seeds=1, source=target + flags)
        except ValueError as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / f"{cfg.name}-k{ks[0]}-seed{cfg.seed}"
        how = f"altmarl run {target} --k {ks[0]} --seed {cfg.seed} --resume --out {run_dir}"
        state = run_progress(run_dir, cfg)
        if state is not None and state[0] < state[1] and not resume:
            fail(f"{run_dir}: holds an unfinished run of this configuration ({state[0]} of "
                 f"{state[1]} unit(s) finished and intact); continue it with `{how}`, or "
                 "choose another --out")
        # a finished run of the same configuration is re-used (same numbers); a run of
        # another configuration is refused by run_sweep, naming the differences
        _sweep(cfg, run_dir, backend="local", workers=1, address=None, resume=True,
               kind="run", how=how, track=track)

    @app.command("sweep")
    def sweep_cmd(
        config: str = typer.Argument(..., metavar="CONFIG",
                                     help="experiment TOML file or packaged configuration "
                                          "name (e.g. random_small)"),
        backend: str = typer.Option("local", "--backend", help="local (process pool) or ray"),
        workers: int | None = typer.Option(None, "--workers", help="parallel workers "
                                                                   "(default: CPU count)"),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address "
                                                                    "(backend ray)"),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted sweep, "
                                                            "skipping finished units"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/NAME)"),
        track: list[str] = track_option(),
    ) -> None:
        """Run every (k, training seed) unit of a configuration; resumable."""
        from altmarl.experiments.backends import check_backend
        from altmarl.experiments.config import resolve_config

        try:
            cfg = resolve_config(config)
            check_backend(backend, workers, address)
        except ValueError as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / cfg.name
        _sweep(cfg, run_dir, backend=backend, workers=workers, address=address, resume=resume,
               kind="sweep", how=f"altmarl sweep {config} --resume --out {run_dir}",
               track=track)

    @app.command("reproduce")
    def reproduce_cmd(
        experiment: str = typer.Argument("warehouse", help="paper experiment (warehouse)"),
        quick: bool = typer.Option(False, "--quick", help="a small version (5 values of k, "
                                   "about 10 s)"),
        train_seeds: int | None = typer.Option(None, "--train-seeds",
                                               help="independent training runs per k "
                                                    "(default 1, as the authors)"),
        backend: str = typer.Option("local", "--backend", help="local or ray"),
        workers: int | None = typer.Option(None, "--workers", help="parallel workers"),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address"),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted run"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/NAME)"),
        track: list[str] = track_option(),
    ) -> None:
        """Reproduce a paper experiment (warehouse: Table 3, Figures 6 and 7)."""
        from altmarl.experiments.reproduce import reference_table, reproduce_config

        try:
            cfg = reproduce_config(experiment, quick=quick, train_seeds=train_seeds)
        except ValueError as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / cfg.name
        flags = " --quick" if quick else ""
        flags += f" --train-seeds {train_seeds}" if train_seeds else ""
        rep = _sweep(cfg, run_dir, backend=backend, workers=workers, address=address,
                     resume=resume, kind="reproduce",
                     how=f"altmarl reproduce {experiment}{flags} --resume --out {run_dir}",
                     track=track)
        console().print(reference_table(experiment, rep.summary))
        echo("these runs use the paper's protocol (L-LEARN by induced-VI); `altmarl run "
             f"{experiment}` uses the library's default L-LEARN, direct policy search, which "
             "finds better local policies: its values are higher at the same k")

    @app.command("plot")
    def plot_cmd(run_dir: Path = typer.Argument(..., help="a run directory of any altmarl "
                                                         "command")) -> None:
        """(Re)draw the figures of a run directory from its files: run, sweep, reproduce,
        continuous sweep, federated run, theory or tune."""
        replot(run_dir)


def no_figures(run_dir: Path, kind: str) -> None:
    """Exit 2 when ``run_dir`` is of a ``kind`` that has no figures of its own (a unit of a
    run, one continuous run), naming what to draw instead; return otherwise."""
    if kind == "unit":
        root = run_dir.parent.parent
        fail(f"{run_dir}: a unit directory of the run {root}; draw the run's figures with "
             f"`altmarl plot {root}`")
    if kind == "continuous-run":
        fail(f"{run_dir}: one `altmarl continuous run` has no figures (its numbers are in "
             f"{run_dir / 'result.json'}); the figures vs k come from `altmarl continuous "
             "sweep`")


def wrong_kind(run_dir: Path, kind: str, expected: str) -> NoReturn:
    """Exit 2: ``run_dir`` was written by another command than ``expected``."""
    from altmarl.rundir import RUN_DIR_KINDS

    no_figures(run_dir, kind)
    fail(f"{run_dir}: this is a run directory of `{RUN_DIR_KINDS[kind]}`, not of "
         f"`{expected}`; draw its figures with `altmarl plot {run_dir}`")


def expect_kind(run_dir: Path, kind: str, command: str) -> None:
    """Exit 2 unless ``run_dir`` is a run directory of ``kind`` (written by ``command``,
    :func:`altmarl.rundir.run_dir_kind`)."""
    from altmarl.rundir import run_dir_kind

    try:
        found = run_dir_kind(run_dir)
    except ValueError as exc:
        fail(str(exc))
    if found != kind:
        wrong_kind(run_dir, found, command)


def replot(run_dir: Path) -> None:
    """``altmarl plot``: redraw the figures of any kind of run directory and print its
    table (:func:`altmarl.rundir.run_dir_kind` says which kind)."""
    from altmarl.rundir import run_dir_kind

    try:
        kind = run_dir_kind(run_dir)
    except ValueError as exc:
        fail(str(exc))
    if kind == "continuous-sweep":
        from altmarl.cli.continuous import replot_sweep

        replot_sweep(run_dir)
    elif kind == "federated":
        from altmarl.cli.federated import replot_run

        replot_run(run_dir)
    elif kind == "theory":
        from altmarl.cli.theory import replot_theory

        replot_theory(run_dir)
    elif kind == "tune":
        from altmarl.cli.tune import replot_tuning

        replot_tuning(run_dir)
    elif kind in ("unit", "continuous-run"):
        no_figures(run_dir, kind)
    else:
        _replot_tabular(run_dir)


def _replot_tabular(run_dir: Path) -> None:
    from altmarl.experiments.sweep import aggregate, summary_table
    from altmarl.plots import make_plots

    try:
        summary = aggregate(run_dir)
        if not summary["per_k"]:
            raise ValueError(f"{run_dir}: no finished unit to plot yet")
        paths = make_plots(run_dir)
        summary = aggregate(run_dir, extra={"plots": [str(p.relative_to(run_dir))
                                                      for p in paths]})
    except ValueError as exc:
        fail(str(exc))
    console().print(summary_table(summary))
    _explain(run_dir, summary)
    _files(run_dir, paths)
