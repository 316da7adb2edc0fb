"""``altmarl tune``: hyper-parameter search with Optuna (SPEC 10; docs/tracking.md).

    altmarl tune CONFIG --trials N [--objective value|value-cost] [--cost C] [--space FILE]
                 [--backend local|ray] [--workers N] [--address ADDR] [--quick] [--out DIR]
                 [--track KIND ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from altmarl.cli.common import (
    close_trackers,
    console,
    echo,
    echo_plots,
    fail,
    no_progress_option,
    open_trackers,
    track_option,
)


def _table(rows: list[dict[str, Any]], best: dict[str, Any] | None, top: int = 10) -> Any:
    from rich import box
    from rich.table import Table

    done = sorted((r for r in rows if r["state"] == "complete"),
                  key=lambda r: -float(r["objective"]))
    pruned = sum(r["state"] == "pruned" for r in rows)
    params = sorted({key for r in rows for key in r if key.startswith("param.")
                     and key != "param.k"})
    tab = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                title=f"tuning: the best {min(top, len(done))} of {len(rows)} trials"
                      + (f" ({pruned} pruned)" if pruned else ""),
                caption="objective: the held-out value (minus cost x k with "
                        "--objective value-cost); settings the trial did not use are blank")
    for col in ["trial", "objective", "value", "k", *[p[6:] for p in params]]:
        tab.add_column(col, justify="right", no_wrap=True)

    def cell(v: Any) -> str:
        if v is None or v == "":
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    for r in done[:top]:
        mark = " *" if best and r["number"] == best["number"] else ""
        tab.add_row(f"{r['number']}{mark}", cell(r["objective"]), cell(r["value"]),
                    cell(r["k"]), *[cell(r.get(p)) for p in params])
    return tab


def register(app: typer.Typer) -> None:
    """Add ``tune`` to the ``altmarl`` app."""

    @app.command("tune")
    def tune_cmd(
        config: str = typer.Argument(..., metavar="CONFIG",
                                     help="experiment TOML file or packaged configuration "
                                          "name (e.g. random_small)"),
        trials: int = typer.Option(..., "--trials", min=1, help="trials to finish in OUT "
                                   "(complete or pruned; a resumed study counts its own)"),
        objective: str = typer.Option("value", "--objective",
                                      help="value (held-out value) or value-cost (value "
                                           "minus --cost per observed agent k)"),
        cost: float = typer.Option(0.0, "--cost", help="cost per observed agent "
                                   "(--objective value-cost)"),
        space: Path | None = typer.Option(None, "--space", help="TOML search space "
                                          "(default: the space of docs/tracking.md)"),
        backend: str = typer.Option("local", "--backend", help="local (process pool) or ray"),
        workers: int | None = typer.Option(1, "--workers", help="trials at a time (1: "
                                           "reproducible)"),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address "
                                                                    "(backend ray)"),
        quick: bool = typer.Option(False, "--quick", help="a small protocol and space "
                                   "(seconds per trial)"),
        out: Path | None = typer.Option(None, "--out", help="tuning directory (default "
                                                            "runs/NAME-tune)"),
        no_progress: bool = no_progress_option(),
        track: list[str] = track_option(),
    ) -> None:
        """Search ALTERNATING-MARL's settings with Optuna (TPE, median pruning); resumable.

        Writes OUT/tuning.csv, OUT/plots/ and OUT/best.toml (run it with `altmarl run
        OUT/best.toml`). Running the same command again continues the study."""
        from altmarl.experiments.backends import WorkerDied, check_backend
        from altmarl.experiments.config import resolve_config
        from altmarl.experiments.runner import UnitFailed
        from altmarl.experiments.tuning import load_space, tune

        try:
            cfg = resolve_config(config)
            check_backend(backend, workers, address)
            sp = load_space(space) if space is not None else None
        except ValueError as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / f"{cfg.name}-tune"
        trackers = open_trackers(track, run_dir, name=run_dir.name)
        try:
            with trackers:
                rep = tune(cfg, run_dir, trials, objective=objective, cost=cost, space=sp,
                           backend=backend, workers=workers, address=address, quick=quick,
                           progress=not no_progress, callbacks=trackers)
        except KeyboardInterrupt:
            echo(f"interrupted: finished trials are saved in {run_dir}; continue with the "
                 "same command", stderr=True)
            raise typer.Exit(130) from None
        except (WorkerDied, UnitFailed) as exc:
            fail(str(exc), 1)
        except ValueError as exc:
            fail(str(exc))
        console().print(_table(rep.rows, rep.best))
        echo(f"ran {rep.ran} trial(s), {rep.total} in the study, {rep.wall_s:.1f} s")
        if rep.best is not None:
            b = rep.best
            echo(f"best: trial {b['number']}, objective {b['objective']:.6g} (value "
                 f"{b['value']:.6g}, k = {b['k']}); run it with `altmarl run "
                 f"{run_dir / 'best.toml'}`")
        echo(f"tuning directory: {run_dir}  (tuning.csv, tuning.json, best.toml, study.db, "
             "trials/)")
        echo_plots(rep.plots)
        close_trackers(trackers)


def replot_tuning(run_dir: Path) -> None:
    """``altmarl plot`` on a tuning directory: print its table and redraw the study's
    figures from ``study.db``."""
    from altmarl.experiments.tuning import STUDY_NAME, make_tuning_plots, trial_rows
    from altmarl.io import read_json

    db = run_dir / "study.db"
    if not db.is_file():
        fail(f"{run_dir}: no study.db; run `altmarl tune CONFIG --trials N --out {run_dir}` "
             "again to continue the study")
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=STUDY_NAME,
                                  storage=f"sqlite:///{db.resolve()}")
        summary = read_json(run_dir / "tuning.json", "tuning.json")
        rows = trial_rows(study, run_dir)
        name = str(summary.get("name") or "")
        paths = make_tuning_plots(study, run_dir / "plots", name)
    except (ValueError, KeyError, OSError, ImportError) as exc:
        fail(f"{run_dir}: cannot read the tuning directory ({exc})")
    console().print(_table(rows, summary.get("best")))
    echo_plots(paths)
