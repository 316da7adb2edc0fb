"""``altmarl envs / run / sweep / reproduce / plot`` (SPEC 10).

    altmarl envs
    altmarl run ENV_OR_CONFIG [--k K] [--seed S] [--out DIR]
    altmarl sweep CONFIG [--backend local|ray] [--workers N] [--address ADDR] [--resume] [--out DIR]
    altmarl reproduce warehouse [--quick] [--train-seeds N] [--out DIR]
    altmarl plot RUN_DIR
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from altmarl.cli.common import console, fail


def _report(rep: Any, title: str | None = None) -> None:
    from altmarl.experiments.sweep import summary_table

    con = console()
    for what, why in rep.repaired.items():
        con.print(f"[yellow]repaired:[/] {what} ({why})", highlight=False, soft_wrap=True)
    con.print(summary_table(rep.summary, title))
    s = rep.summary
    status = "complete" if s["complete"] else f"INCOMPLETE ({s['units_done']}/{s['units_total']})"
    con.print(f"ran {rep.ran} unit(s), reused {rep.skipped}, {rep.wall_s:.1f} s; {status}")
    con.print(f"run directory: [bold]{rep.run_dir}[/]  (summary.json, per_k.csv, metrics.csv, "
              "units/)", highlight=False, soft_wrap=True)
    for p in rep.plots:
        con.print(f"plot: [bold]{p}[/]", highlight=False, soft_wrap=True)


def _interrupted(out: Path, how: str) -> NoReturn:
    from altmarl.experiments.sweep import load_units

    n = len(load_units(out)) if out.exists() else 0
    console(stderr=True).print(
        f"[yellow]interrupted:[/] {n} finished unit(s) are saved in {out}; continue with "
        f"`{how} --resume --out {out}`", highlight=False, soft_wrap=True)
    raise typer.Exit(130)


def _sweep(cfg: Any, out: Path, *, backend: str, workers: int | None, address: str | None,
           resume: bool, kind: str, how: str, title: str | None = None) -> Any:
    from altmarl.experiments.backends import WorkerDied
    from altmarl.experiments.runner import UnitFailed
    from altmarl.experiments.sweep import run_sweep

    try:
        rep = run_sweep(cfg, out, backend=backend, workers=workers, address=address,
                        resume=resume, kind=kind)
    except KeyboardInterrupt:
        _interrupted(out, how)
    except WorkerDied as exc:
        fail(str(exc), 1)
    except UnitFailed as exc:
        fail(f"{exc}\nfinished units are saved in {out}; continue with `{how} --resume "
              f"--out {out}`", 1)
    except ValueError as exc:
        fail(str(exc))
    _report(rep, title)
    return rep


def register(app: typer.Typer) -> None:
    """Add the experiment commands to the ``altmarl`` app."""

    @app.command("envs")
    def envs_cmd() -> None:
        """List the built-in environments."""
        from altmarl import envs

        for name in envs.names():
            typer.echo(name)

    @app.command("run")
    def run_cmd(
        target: str = typer.Argument(..., metavar="ENV_OR_CONFIG",
                                     help="environment name (e.g. warehouse), packaged "
                                          "configuration name, or a TOML file"),
        k: int | None = typer.Option(None, "--k", help="subsample size k (overrides the "
                                                       "configuration)"),
        seed: int | None = typer.Option(None, "--seed", help="root seed (default 0)"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/NAME-kK-seedS)"),
    ) -> None:
        """One ALTERNATING-MARL run (one k, one training seed), evaluated and plotted."""
        from altmarl.experiments.config import resolve_target

        try:
            cfg = resolve_target(target)
            ks = [k] if k is not None else cfg.ks()
            if len(ks) != 1:
                raise ValueError(f"{target}: configuration sweeps k = {ks}; pass --k K or use "
                                 "`altmarl sweep`")
            cfg = cfg.with_overrides(k=ks, seed=seed, train_seeds=1)
        except ValueError as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / f"{cfg.name}-k{ks[0]}-seed{cfg.seed}"
        # same configuration -> same numbers, so an existing run of it is simply re-used
        _sweep(cfg, run_dir, backend="local", workers=1, address=None, resume=True,
               kind="run", how=f"altmarl run {target} --k {ks[0]} --seed {cfg.seed}")

    @app.command("sweep")
    def sweep_cmd(
        config: Path = typer.Argument(..., help="experiment TOML file"),
        backend: str = typer.Option("local", "--backend", help="local (process pool) or ray"),
        workers: int | None = typer.Option(None, "--workers", help="parallel workers "
                                                                   "(default: CPU count)"),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address "
                                                                    "(backend ray)"),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted sweep, "
                                                            "skipping finished units"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/NAME)"),
    ) -> None:
        """Run every (k, training seed) unit of a configuration; resumable."""
        from altmarl.experiments.config import load_config

        try:
            cfg = load_config(config)
        except ValueError as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / cfg.name
        _sweep(cfg, run_dir, backend=backend, workers=workers, address=address, resume=resume,
               kind="sweep", how=f"altmarl sweep {config}")

    @app.command("reproduce")
    def reproduce_cmd(
        experiment: str = typer.Argument("warehouse", help="paper experiment (warehouse)"),
        quick: bool = typer.Option(False, "--quick", help="a small version (under a minute)"),
        train_seeds: int | None = typer.Option(None, "--train-seeds",
                                               help="independent training runs per k "
                                                    "(default 1, as the authors)"),
        backend: str = typer.Option("local", "--backend", help="local or ray"),
        workers: int | None = typer.Option(None, "--workers", help="parallel workers"),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address"),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted run"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/NAME)"),
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
                     how=f"altmarl reproduce {experiment}{flags}")
        console().print(reference_table(experiment, rep.summary))

    @app.command("plot")
    def plot_cmd(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
        """(Re)draw the figures of a run directory from its files."""
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
        con = console()
        con.print(summary_table(summary))
        for p in paths:
            con.print(f"plot: [bold]{p}[/]", highlight=False, soft_wrap=True)
