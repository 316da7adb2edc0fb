"""Helpers shared by every command group of the ``altmarl`` command line (SPEC 10).

* :func:`console` — the rich console (stdout, or stderr for errors);
* :func:`fail` — print ``error: MESSAGE`` on stderr and exit (code 2: bad input);
* :func:`parse_int_list` — ``--ks 1,5,20`` style options;
* :func:`parse_sets` — repeatable ``--set key=value`` options (values parsed as JSON);
* :func:`no_progress_option` — the ``--no-progress`` flag of long-running commands;
* :func:`flow_help` — help paragraphs that wrap at the terminal's width;
* :func:`track_option`, :func:`open_trackers`, :func:`close_trackers` — ``--track KIND``;
* :func:`echo_plots`, :func:`redraw` — the figures of a run directory, and redrawing them.

Imports stay light (rich is imported when a console is needed), so ``altmarl --help``
starts fast and never imports PyTorch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import typer

#: the width of output written to a file or a pipe: wide enough that tables never wrap
#: (rich wraps at 80 columns when it cannot ask a terminal)
FILE_WIDTH = 400


def console(stderr: bool = False) -> Any:
    """A ``rich.console.Console`` on stdout (or stderr). On a terminal it wraps at the
    terminal's width; written to a file or a pipe it does not wrap (text is soft-wrapped,
    tables get :data:`FILE_WIDTH` columns), so logs keep one row per line."""
    from rich.console import Console

    con = Console(stderr=stderr, soft_wrap=True)
    if not (con.is_terminal or con.is_jupyter):
        con = Console(stderr=stderr, soft_wrap=True, width=FILE_WIDTH)
    return con


def echo(msg: str, stderr: bool = False) -> None:
    """Print plain text (no markup, no highlighting, no wrapping)."""
    console(stderr).print(msg, markup=False, highlight=False, soft_wrap=True)


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print ``error: msg`` on stderr and exit with ``code`` (2: invalid input or
    configuration; 1: a run failed). ``msg`` is plain text (brackets are printed as they
    are, never read as markup)."""
    from rich.markup import escape

    console(stderr=True).print(f"[bold red]error:[/] {escape(msg)}", highlight=False,
                               soft_wrap=True)
    raise typer.Exit(code)


def echo_plots(paths: Iterable[Any]) -> None:
    """One ``plot: PATH`` line per figure written."""
    for p in paths:
        echo(f"plot: {p}")


#: what a damaged or incomplete run directory raises while it is read and drawn
READ_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError)


def redraw(run_dir: Path, what: str, hint: str, draw: Callable[[], Iterable[Any]]) -> None:
    """``altmarl plot`` on one kind of run directory: ``draw()`` prints its table and
    returns the figures it wrote (listed with :func:`echo_plots`); a damaged or incomplete
    directory exits 2 with ``RUN_DIR: cannot read the WHAT (ERROR); HINT``."""
    try:
        paths = draw()
    except READ_ERRORS as exc:
        fail(f"{run_dir}: cannot read the {what} ({exc}); {hint}")
    echo_plots(paths)


def parse_int_list(text: str, flag: str, example: str = "") -> list[int]:
    """Comma-separated integers of the option ``flag`` (``"1,5,20"`` -> ``[1, 5, 20]``);
    ``ValueError`` naming the option (and ``example``, if given) otherwise."""
    hint = f", e.g. {example}" if example else ""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag} = {text!r}: expected comma-separated integers{hint}") from None
    if not values:
        raise ValueError(f"{flag} = {text!r}: expected at least one integer")
    return values


def parse_value(text: str) -> Any:
    """The value of a ``--set key=value``: JSON when it parses as JSON, else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """``["n=1000", "seed=3"]`` -> ``{"n": 1000, "seed": 3}`` (keys stripped, values by
    :func:`parse_value`; a later key overrides an earlier one)."""
    out: dict[str, Any] = {}
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value")
        key, val = item.split("=", 1)
        out[key.strip()] = parse_value(val)
    return out


def hide_flag_types() -> None:
    """Show no type after plain flags in ``--help`` (typer >= 0.20 prints ``<bool>`` after
    ``--quick``, ``--help`` and other flags that take no value), nor a Python type like
    ``<list[str]>`` after an argument of several values (its metavar, e.g. ``A B [C ...]``,
    says it). Patches typer's option and argument classes once; a typer without that
    method is left alone."""
    from typer.core import TyperOption

    show = getattr(TyperOption, "display_type_rich", None)
    if show is None or getattr(show, "_altmarl_flags", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> Any:
        if getattr(self, "is_flag", False) and getattr(self, "metavar", None) is None:
            return None
        return show(self, ctx)

    display_type_rich._altmarl_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]

    from typer.core import TyperArgument

    show_arg = getattr(TyperArgument, "display_type_rich", None)
    if show_arg is None:
        return

    def argument_type_rich(self: Any, ctx: Any) -> Any:
        shown = show_arg(self, ctx)  # a list argument names its parts in its metavar
        return None if str(shown).startswith("<list[") else shown

    TyperArgument.display_type_rich = argument_type_rich  # type: ignore[method-assign]


def flow_help(app: typer.Typer) -> None:
    """Let the help text of every command of ``app`` (and of its groups) flow: typer's rich
    help keeps the docstring's line breaks, which then break lines mid-sentence at any
    width. Each paragraph becomes one line that rich wraps at the terminal's width (a
    paragraph starting with ``\\b`` keeps its lines)."""
    import inspect

    for info in app.registered_commands:
        text = info.help if isinstance(info.help, str) else inspect.getdoc(info.callback)
        if text:
            info.help = "\n\n".join(
                p if p.startswith("\b") else " ".join(p.split("\n"))
                for p in inspect.cleandoc(text).split("\n\n"))
    for group in app.registered_groups:
        if group.typer_instance is not None:
            flow_help(group.typer_instance)


def track_option() -> Any:
    """The repeatable ``--track KIND`` option (experiment trackers, :mod:`altmarl.tracking`)."""
    return typer.Option([], "--track", metavar="KIND",
                        help="log the run to csv, tensorboard, mlflow or wandb (repeatable; "
                             "see docs/tracking.md)")


def open_trackers(kinds: list[str], run_dir: Any, name: str | None = None) -> Any:
    """The trackers of ``--track`` for ``run_dir`` (:func:`altmarl.tracking.make_trackers`);
    an unknown kind or a missing package exits with status 2 before any work."""
    if not kinds:
        from altmarl.tracking.base import Trackers

        return Trackers()
    from altmarl.tracking import make_trackers

    try:
        return make_trackers(kinds, run_dir, name)
    except ValueError as exc:
        fail(str(exc))


def close_trackers(trackers: Any) -> None:
    """Close the trackers and say where each one wrote."""
    trackers.close()
    for t in trackers:
        echo(f"tracking ({t.kind}): {t.where()}")


def no_progress_option() -> Any:
    """The ``--no-progress`` flag (default ``False``: show the progress bar)."""
    return typer.Option(False, "--no-progress", help="hide the progress bar")


__all__ = ["FILE_WIDTH", "READ_ERRORS", "close_trackers", "console", "echo", "echo_plots",
           "fail", "flow_help", "hide_flag_types", "no_progress_option", "open_trackers",
           "parse_int_list", "parse_sets", "parse_value", "redraw", "track_option"]
