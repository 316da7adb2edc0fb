"""``altmarl theory [--quick] [--out DIR]`` (SPEC 7, theory to exhibit; docs/theory.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from altmarl.cli.common import console, fail, no_progress_option


def register(app: typer.Typer) -> None:
    """Add the ``theory`` command to the ``altmarl`` app."""

    @app.command("theory")
    def theory_cmd(
        quick: bool = typer.Option(False, "--quick", help="small version (well under a minute)"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default "
                                                            "runs/theory or runs/theory-quick)"),
        seed: int = typer.Option(0, "--seed", help="root seed"),
        no_progress: bool = no_progress_option(),
    ) -> None:
        """O(1/sqrt(k)) experiment: exact full-information gap of G-LEARN vs k, mean-field vs
        standard table sizes, cost vs n. Writes CSV tables, summary.json and PNG plots."""
        from altmarl.experiments.theory import format_summary, run_theory

        run_dir = out or Path("runs") / ("theory-quick" if quick else "theory")
        con = console()
        try:
            summary = run_theory(run_dir, quick=quick, seed=seed, progress=not no_progress)
        except ValueError as exc:
            fail(str(exc))
        con.print(format_summary(summary), highlight=False)
        con.print(f"run directory: [bold]{run_dir}[/]  (gap_vs_k.csv, table_size.csv, "
                  "cost_vs_n.csv, summary.json, config.json)", highlight=False)
        for p in summary["plots"]:
            con.print(f"plot: [bold]{p}[/]", highlight=False)
