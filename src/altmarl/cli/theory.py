"""``altmarl theory [--quick] [--out DIR]`` (SPEC 7, theory to exhibit; docs/theory.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from altmarl.cli.common import echo, echo_plots, fail, no_progress_option, redraw


def register(app: typer.Typer) -> None:
    """Add the ``theory`` command to the ``altmarl`` app."""

    @app.command("theory")
    def theory_cmd(
        quick: bool = typer.Option(False, "--quick", help="small version (seconds): n = 200 "
                                   "instead of 2000"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/theory or runs/theory-quick)"),
        seed: int = typer.Option(0, "--seed", help="root seed"),
        no_progress: bool = no_progress_option(),
    ) -> None:
        """The O(1/sqrt(k)) experiment (Theorem 4.4): G-LEARN's exact gap vs k, table
        sizes, cost vs n.

        Exact sup-over-states and initial-distribution gaps of G-LEARN to the
        full-information optimum on n-agent chains with n much larger than k (several
        games, seeded random ones included), log-log fits over fixed k windows with 95%
        regression intervals; mean-field vs standard table sizes; cost vs n. Writes CSV
        tables, games/NN.json, summary.json and PNG plots; a second run into the same OUT
        resumes; `altmarl plot OUT` redraws the plots."""
        from altmarl.experiments.theory import format_summary, run_theory

        run_dir = out or Path("runs") / ("theory-quick" if quick else "theory")
        try:
            summary = run_theory(run_dir, quick=quick, seed=seed, progress=not no_progress)
        except ValueError as exc:
            fail(str(exc))
        echo(format_summary(summary))
        echo(f"run directory: {run_dir}  (gap_vs_k.csv, games/, table_size.csv, "
             "cost_vs_n.csv, summary.json, config.json)")
        echo_plots(summary["plots"])


def replot_theory(run_dir: Path) -> None:
    """Print the digest of a theory run directory and redraw its plots (``altmarl plot``)."""
    from altmarl.experiments.theory import format_summary
    from altmarl.io import read_json
    from altmarl.plots.theory import plot_theory

    def draw() -> list[Path]:
        summary = read_json(run_dir / "summary.json", "theory summary")
        config = read_json(run_dir / "config.json", "theory configuration")
        echo(format_summary(summary, [g["label"] for g in config["gap_games"]]))
        return plot_theory(run_dir)

    redraw(run_dir, "theory run", f"run `altmarl theory --out {run_dir}` again", draw)
