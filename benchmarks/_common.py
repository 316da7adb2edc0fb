"""Shared helpers for the benchmark scripts: timing with repeats, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any


def machine() -> str:
    """One line describing the machine (benchmarks quote it)."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        model = platform.processor() or "?"
    import numpy as np

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({model}), "
            f"Python {platform.python_version()}, NumPy {np.__version__}")


def timeit(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls (seconds) and the last result."""
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print a plain-text table (also valid Markdown)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in r) + " |")
