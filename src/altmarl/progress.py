"""The one progress display of altmarl: every long job (G-LEARN sweeps, ALTERNATING-MARL
proposals, sweeps of units, the theory and federated experiments) shows its progress through
:class:`Progress`, and only this module imports ``rich.progress``.

Bars go to standard error and are drawn only on an interactive terminal (or a notebook):
when stderr is a file or a pipe nothing is printed, so logs stay clean. ``enabled=False``
turns a bar into a no-op with the same interface, so callers never branch.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


class Progress:
    """A set of progress bars (``rich``), or nothing.

    Use as a context manager::

        with Progress(enabled=progress) as bar:
            task = bar.add_task("G-LEARN value iteration", total=max_iter, status="")
            for ...:
                bar.advance(task, status=f"residual {res:.3g}")

    Parameters
    ----------
    enabled
        ``False``: every method is a no-op.
    transient
        Remove the bars when done (for inner loops); otherwise they stay on screen.
    remaining
        Also show the estimated time remaining.
    console
        A ``rich.console.Console`` to draw on (default: a new one on stderr).
    """

    def __init__(self, enabled: bool = True, *, transient: bool = False,
                 remaining: bool = False, console: Any = None) -> None:
        self._p: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        con = console if console is not None else Console(stderr=True)
        if not (con.is_terminal or con.is_jupyter):
            return
        columns: list[Any] = [TextColumn("[bold]{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn()]
        if remaining:
            columns.append(TimeRemainingColumn())
        columns.append(TextColumn("{task.fields[status]}"))
        self._p = RichProgress(*columns, console=con, transient=transient)

    @property
    def active(self) -> bool:
        """Whether bars are drawn."""
        return self._p is not None

    def start(self) -> Progress:
        """Start drawing (the context manager does this)."""
        if self._p is not None:
            self._p.start()
        return self

    def stop(self) -> None:
        """Stop drawing (the context manager does this)."""
        if self._p is not None:
            self._p.stop()

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def add_task(self, description: str, total: float | None, completed: float = 0,
                 status: str = "") -> int:
        """A new bar; returns its id for :meth:`advance` / :meth:`update`."""
        if self._p is None:
            return 0
        return int(self._p.add_task(description, total=total, completed=completed,
                                    status=status))

    def advance(self, task: int = 0, n: float = 1, status: str | None = None,
                description: str | None = None) -> None:
        """Advance bar ``task`` by ``n`` steps, optionally changing its status text or
        description."""
        if self._p is None:
            return
        kw: dict[str, Any] = {}
        if status is not None:
            kw["status"] = status
        if description is not None:
            kw["description"] = description
        self._p.update(task, advance=n, **kw)

    def update(self, task: int = 0, *, completed: float | None = None, total: float | None = None,
               status: str | None = None, description: str | None = None) -> None:
        """Set bar ``task``'s position, total, status text or description."""
        if self._p is None:
            return
        kw: dict[str, Any] = {}
        for key, val in (("completed", completed), ("total", total), ("status", status),
                         ("description", description)):
            if val is not None:
                kw[key] = val
        self._p.update(task, **kw)

    def reset(self, task: int = 0, total: float | None = None) -> None:
        """Restart bar ``task`` from zero (optionally with a new total)."""
        if self._p is not None:
            self._p.reset(task, total=total)
