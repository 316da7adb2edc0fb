"""``altmarl federated ...``: federated optimization with partial participation (paper
Example 2.6, SPEC 8.3; docs/federated.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from altmarl.cli.common import echo, echo_plots, fail, no_progress_option, parse_int_list, redraw


def register(app: typer.Typer) -> None:
    """Add the ``federated`` command group to the ``altmarl`` app."""
    fed_app = typer.Typer(help="Federated optimization (paper Example 2.6): clustered FL "
                               "under data drift as a generative game, ALTERNATING-MARL, "
                               "FedAvg and fixed baselines in the real simulator; or the "
                               "estimated-table baseline experiment.", no_args_is_help=True)
    app.add_typer(fed_app, name="federated")

    @fed_app.command("run")
    def run_cmd(
        experiment: str = typer.Option("drift", "--experiment", help="drift (the generative "
                                       "game; default) or estimated (the estimated-table "
                                       "baseline)"),
        quick: bool = typer.Option(False, "--quick", help="small version (seconds)"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                        "runs/federated-drift, runs/federated for "
                                        "--experiment estimated; -quick with --quick)"),
        seed: int = typer.Option(0, "--seed", help="root seed"),
        ks: str | None = typer.Option(None, "--ks", help="subsample sizes, e.g. 1,5,20"),
        clients: int | None = typer.Option(None, "--clients", help="number of clients n"),
        transfer_cost: float | None = typer.Option(None, "--transfer-cost",
                                                   help="drift: cost of one model transfer "
                                                   "(accuracy points)"),
        local_start: str | None = typer.Option(None, "--local-start", help="drift: myopic "
                                               "(default) or uniform start of pi_l"),
        upload_cost: float | None = typer.Option(None, "--upload-cost",
                                                 help="estimated: cost of one model upload"),
        step_cost: float | None = typer.Option(None, "--step-cost",
                                               help="estimated: cost of one local gradient "
                                               "step"),
        m: int | None = typer.Option(None, "--m", help="G-LEARN samples per Bellman update "
                                     "(default 10 drift, 300 estimated)"),
        config: Path | None = typer.Option(None, "--config", help="JSON file with "
                                           "DriftExperiment or FederatedExperiment fields "
                                           "(see docs/federated.md)"),
        no_progress: bool = no_progress_option(),
    ) -> None:
        """drift: ALTERNATING-MARL on the drifting federation for every k, evaluated with the
        baselines in the real simulator (paired intervals). estimated: explore, estimate the
        game's tables, ALTERNATING-MARL on them, evaluate. Writes tables and plots."""
        from altmarl._validate import check_choice

        try:
            check_choice("--experiment", experiment, ("drift", "estimated"))
        except ValueError as exc:
            fail(str(exc))
        if experiment == "drift":
            for flag, val in (("--upload-cost", upload_cost), ("--step-cost", step_cost)):
                if val is not None:
                    fail(f"{flag}: only with --experiment estimated (the drift experiment "
                         "charges --transfer-cost)")
            run_drift_cmd(quick, out, seed, ks, clients, transfer_cost, local_start, m, config,
                          no_progress)
            return
        for flag, v in (("--transfer-cost", transfer_cost), ("--local-start", local_start)):
            if v is not None:
                fail(f"{flag}: only with --experiment drift")
        from altmarl.federated.experiment import FederatedExperiment, format_table, run_experiment

        try:
            exp = build_experiment(FederatedExperiment, config, quick, seed, ks, {"m": m},
                                   {"n_clients": clients, "upload_cost": upload_cost,
                                    "step_cost": step_cost})
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / ("federated-quick" if quick else "federated")
        summary = run_experiment(run_dir, exp, progress=not no_progress)
        echo(format_table(summary["methods"]))
        echo(f"run directory: {run_dir} (summary.csv, summary.json, episodes.csv, curves.csv, "
             "learning.csv, game.npz, policies/)")
        echo_plots(summary["plots"])

    @fed_app.command("plot")
    def plot_cmd(run_dir: Path = typer.Argument(..., help="a `federated run` directory")) -> None:
        """Redraw the plots of a run directory and print its table."""
        from altmarl.cli.experiments import expect_kind

        expect_kind(run_dir, "federated", "altmarl federated run")
        replot_run(run_dir)


def build_experiment(cls: Any, config: Path | None, quick: bool, seed: int, ks: str | None,
                     top: dict[str, Any], fed: dict[str, Any]) -> Any:
    """The experiment of class ``cls`` (``DriftExperiment``, ``FederatedExperiment``) that
    ``altmarl federated run`` runs: the ``--config`` file, or the quick or default settings
    with ``--seed``; ``--ks`` replaces the subsample sizes, the options in ``top`` and
    ``fed`` (the federation's) that were given (not ``None``) replace their fields."""
    if config is not None:
        exp = cls.from_json(json.loads(config.read_text()), source=str(config))
    else:
        exp = cls.quick(seed) if quick else cls(seed=seed)
    d: dict[str, Any] = exp.to_json()
    if config is None:
        d["seed"] = seed
    if ks is not None:
        d["ks"] = parse_int_list(ks, "--ks", example="1,5,20")
    d.update({key: val for key, val in top.items() if val is not None})
    d["fed"].update({key: val for key, val in fed.items() if val is not None})
    return cls.from_json(d, source="federated run")


def run_drift_cmd(quick: bool, out: Path | None, seed: int, ks: str | None,
                  clients: int | None, transfer_cost: float | None, local_start: str | None,
                  m: int | None, config: Path | None, no_progress: bool) -> None:
    """``altmarl federated run`` (``--experiment drift``)."""
    from altmarl.federated.drift_experiment import (
        DriftExperiment,
        format_drift_table,
        run_drift_experiment,
    )

    try:
        exp = build_experiment(DriftExperiment, config, quick, seed, ks,
                               {"m": m, "local_start": local_start},
                               {"n_clients": clients, "transfer_cost": transfer_cost})
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        fail(str(exc))
    run_dir = out or Path("runs") / ("federated-drift-quick" if quick else "federated-drift")
    summary = run_drift_experiment(run_dir, exp, progress=not no_progress)
    echo(format_drift_table(summary["methods"]))
    echo(f"run directory: {run_dir} (summary.json, summary.csv, episodes.csv, curves.csv, "
         "learning.csv, models.json, policies/)")
    echo_plots(summary["plots"])


def replot_run(run_dir: Path) -> None:
    """Print the table of a ``federated run`` directory and redraw its plots."""
    from altmarl.federated.drift_experiment import EXPERIMENT
    from altmarl.federated.experiment import format_table, plot_run, read_summary
    from altmarl.io import read_json

    try:
        summary = read_json(run_dir / "summary.json", "summary.json")
    except (ValueError, OSError) as exc:
        fail(f"{run_dir}: cannot read the federated run ({exc}); run `altmarl federated run "
             f"--out {run_dir}` again")
    if isinstance(summary, dict) and summary.get("experiment") == EXPERIMENT:
        replot_drift(run_dir)
        return

    def draw() -> list[Path]:
        echo(format_table(read_summary(run_dir)))
        return plot_run(run_dir)

    redraw(run_dir, "federated run", f"run `altmarl federated run --out {run_dir}` again",
           draw)


def replot_drift(run_dir: Path) -> None:
    """Print the table of a drift run directory and redraw its plots."""
    from altmarl.federated.drift_experiment import (
        format_drift_table,
        plot_drift,
        read_drift_summary,
    )

    def draw() -> list[Path]:
        rows = read_drift_summary(run_dir)
        echo(format_drift_table(rows))
        return plot_drift(run_dir, rows)

    redraw(run_dir, "federated run", f"run `altmarl federated run --out {run_dir}` again",
           draw)
