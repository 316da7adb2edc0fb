"""``altmarl federated ...``: federated optimization with partial participation (paper
Example 2.6, SPEC 8.3; docs/federated.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from altmarl.cli.common import echo, fail, no_progress_option, parse_int_list


def register(app: typer.Typer) -> None:
    """Add the ``federated`` command group to the ``altmarl`` app."""
    fed_app = typer.Typer(help="Federated optimization with partial participation (paper "
                               "Example 2.6): a real FL simulator, its estimated game, "
                               "ALTERNATING-MARL and baselines.", no_args_is_help=True)
    app.add_typer(fed_app, name="federated")

    @fed_app.command("run")
    def run_cmd(
        quick: bool = typer.Option(False, "--quick", help="small version (seconds)"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                        "runs/federated or runs/federated-quick)"),
        seed: int = typer.Option(0, "--seed", help="root seed"),
        ks: str | None = typer.Option(None, "--ks", help="subsample sizes, e.g. 1,5,20"),
        clients: int | None = typer.Option(None, "--clients", help="number of clients n"),
        upload_cost: float | None = typer.Option(None, "--upload-cost",
                                                 help="cost of one model upload (reward units)"),
        step_cost: float | None = typer.Option(None, "--step-cost",
                                               help="cost of one local gradient step"),
        m: int | None = typer.Option(None, "--m", help="G-LEARN samples per Bellman update "
                                     "(default 300)"),
        config: Path | None = typer.Option(None, "--config", help="JSON file with "
                                           "FederatedExperiment fields (see docs)"),
        no_progress: bool = no_progress_option(),
    ) -> None:
        """Explore, estimate the game, run ALTERNATING-MARL for every k, evaluate the learned
        policies and the baselines in the real simulator; writes tables and plots."""
        from altmarl.federated.experiment import FederatedExperiment, format_table, run_experiment

        try:
            if config is not None:
                exp = FederatedExperiment.from_json(json.loads(config.read_text()),
                                                    source=str(config))
            else:
                exp = FederatedExperiment.quick(seed) if quick else FederatedExperiment(seed=seed)
            d = exp.to_json()
            d["seed"] = seed if config is None else d["seed"]
            if ks is not None:
                d["ks"] = parse_int_list(ks, "--ks", example="1,5,20")
            if m is not None:
                d["m"] = m
            for name, val in (("n_clients", clients), ("upload_cost", upload_cost),
                              ("step_cost", step_cost)):
                if val is not None:
                    d["fed"][name] = val
            exp = FederatedExperiment.from_json(d, source="federated run")
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            fail(str(exc))
        run_dir = out or Path("runs") / ("federated-quick" if quick else "federated")
        summary = run_experiment(run_dir, exp, progress=not no_progress)
        echo(format_table(summary["methods"]))
        echo(f"run directory: {run_dir} (summary.csv, summary.json, episodes.csv, curves.csv, "
             "learning.csv, game.npz, policies/)")
        for p in summary["plots"]:
            echo(f"plot: {p}")

    @fed_app.command("plot")
    def plot_cmd(run_dir: Path = typer.Argument(..., help="a `federated run` directory")) -> None:
        """Redraw the plots of a run directory and print its table."""
        from altmarl.cli.experiments import wrong_kind
        from altmarl.rundir import run_dir_kind

        try:
            kind = run_dir_kind(run_dir)
        except ValueError as exc:
            fail(str(exc))
        if kind != "federated":
            wrong_kind(run_dir, kind, "altmarl federated run")
        replot_run(run_dir)


def replot_run(run_dir: Path) -> None:
    """Print the table of a ``federated run`` directory and redraw its plots."""
    from altmarl.federated.experiment import format_table, plot_run, read_summary

    try:
        rows = read_summary(run_dir)
        echo(format_table(rows))
        paths = plot_run(run_dir)
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        fail(f"{run_dir}: cannot read the federated run ({exc}); run `altmarl federated run "
             f"--out {run_dir}` again")
    for p in paths:
        echo(f"plot: {p}")
