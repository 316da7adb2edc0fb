"""The ``altmarl`` command line (SPEC 10).

Subcommands live in topic modules ``altmarl.cli_<topic>`` that each define
``register(app: typer.Typer) -> None``; this module collects them so that topics can be
added without touching one another.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="altmarl",
    help="ALTERNATING-MARL: approximate Nash equilibria for one global agent and n local "
    "agents via mean-field subsampling (arXiv 2603.03759).",
    no_args_is_help=True,
    add_completion=False,
)

#: topic modules that contribute subcommands (each has ``register(app)``)
TOPICS = [
    "altmarl.cli_experiments",
    "altmarl.cli_theory",
    "altmarl.cli_offpolicy",
    "altmarl.cli_continuous",
    "altmarl.cli_federated",
]


@app.callback()
def _root() -> None:
    """ALTERNATING-MARL command line: `altmarl COMMAND --help` for details."""


@app.command("envs")
def envs_cmd() -> None:
    """List the built-in environments."""
    from altmarl import envs

    for name in envs.names():
        typer.echo(name)


def _register_topics() -> None:
    for mod_name in TOPICS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:  # topic not present in this build
                continue
            raise
        mod.register(app)


_register_topics()


def main() -> None:  # pragma: no cover - console entry
    app()
