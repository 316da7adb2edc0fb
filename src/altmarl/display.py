"""Notebook displays: the HTML tables that games, policies and results show in Jupyter
(their ``_repr_html_``), built by one helper so they all look alike.

Foundation layer: imports nothing of altmarl. Every text is escaped; tables are bounded
(:data:`MAX_ROWS` rows, then a "... more" line), so a large object never floods a notebook.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

#: most rows of a records table before the rest is summarized as "... N more"
MAX_ROWS = 12

_STYLE = ("border-collapse:collapse;text-align:left;font-size:90%;margin:0.3em 0")
_CELL = "padding:0.15em 0.8em 0.15em 0;border-bottom:1px solid rgba(128,128,128,0.25)"


def fmt(value: Any, digits: int = 4) -> str:
    """``value`` as short text: floats to ``digits`` significant digits, ``None`` as a
    dash, booleans as yes / no, pairs as ``[lo, hi]``, sequences comma-separated."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        x = float(value)
        return f"{x:.{digits}g}" if math.isfinite(x) else str(x)
    if isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(v, Real) for v in value):
        return f"[{fmt(value[0], digits)}, {fmt(value[1], digits)}]"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def _cells(tag: str, values: Iterable[Any]) -> str:
    return "".join(f'<{tag} style="{_CELL}">{html.escape(fmt(v))}</{tag}>' for v in values)


def html_table(
    title: str,
    rows: Iterable[tuple[str, Any]] = (),
    *,
    columns: Sequence[str] | None = None,
    records: Sequence[Sequence[Any]] | None = None,
    note: str | None = None,
    max_rows: int = MAX_ROWS,
) -> str:
    """One display: a bold ``title``, a two-column table of ``(name, value)`` ``rows``,
    optionally a records table (``columns`` heading ``records``, at most ``max_rows``
    shown) and a closing ``note``; every text escaped."""
    parts = [f"<div><strong>{html.escape(title)}</strong>"]
    rows = list(rows)
    if rows:
        body = "".join(f"<tr>{_cells('th', [name])}{_cells('td', [value])}</tr>"
                       for name, value in rows)
        parts.append(f'<table style="{_STYLE}">{body}</table>')
    if columns is not None and records is not None:
        shown = list(records[:max_rows])
        body = "".join(f"<tr>{_cells('td', rec)}</tr>" for rec in shown)
        more = len(records) - len(shown)
        if more > 0:
            body += (f'<tr><td colspan="{len(columns)}" style="{_CELL}">'
                     f"\u2026 {more} more</td></tr>")
        parts.append(f'<table style="{_STYLE}"><tr>{_cells("th", columns)}</tr>{body}</table>')
    if note:
        parts.append(f'<div style="font-size:85%;opacity:0.8">{html.escape(note)}</div>')
    parts.append("</div>")
    return "".join(parts)
