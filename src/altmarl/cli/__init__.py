"""The ``altmarl`` command line (SPEC 10): ``altmarl COMMAND --help`` for details.

One module per command group, each with ``register(app: typer.Typer) -> None``:

* :mod:`~altmarl.cli.experiments` — ``envs``, ``run``, ``sweep``, ``reproduce``, ``plot``;
* :mod:`~altmarl.cli.evaluate` — ``evaluate``, ``compare`` (saved policies);
* :mod:`~altmarl.cli.theory` — ``theory``;
* :mod:`~altmarl.cli.logs` — ``logs record / info / learn / convergence / evaluate / join``
  (off-policy);
* :mod:`~altmarl.cli.serve` — ``serve`` (a policy as an HTTP service);
* :mod:`~altmarl.cli.tune` — ``tune`` (hyper-parameter search);
* :mod:`~altmarl.cli.continuous` — ``continuous run / sweep / random / plot``;
* :mod:`~altmarl.cli.federated` — ``federated run / plot``;

and the helpers they share in :mod:`~altmarl.cli.common`. The console entry point is
``altmarl = "altmarl.cli:app"``; ``python -m altmarl`` runs the same app.
"""

from __future__ import annotations

import typer

from altmarl.cli import continuous, evaluate, experiments, federated, logs, serve, theory, tune
from altmarl.cli.common import flow_help, hide_flag_types

hide_flag_types()

app = typer.Typer(
    name="altmarl",
    help="ALTERNATING-MARL: approximate Nash equilibria for one global agent and n local "
    "agents via mean-field subsampling (arXiv 2603.03759).",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from altmarl import __version__

        typer.echo(f"altmarl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """ALTERNATING-MARL command line: `altmarl COMMAND --help` for details."""


#: the command groups, in the order of ``altmarl --help``
GROUPS = (experiments, evaluate, theory, logs, serve, continuous, federated, tune)

for _group in GROUPS:
    _group.register(app)
flow_help(app)


def main() -> None:  # pragma: no cover - console entry
    """Run the command line (``python -m altmarl``)."""
    app()


__all__ = ["GROUPS", "app", "main"]
