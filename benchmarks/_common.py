"""Shared helpers for the benchmark scripts: timing with repeats, machine description,
BLAS thread limits, and loading a module as it was at a git revision (before/after)."""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

def machine() -> str:
    """One line describing the machine (benchmarks quote it), with the load average."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        model = platform.processor() or "?"
    import numpy as np

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({model}), "
            f"Python {platform.python_version()}, NumPy {np.__version__}; {load()}")


def load() -> str:
    """The 1-minute load average (the machine is shared: quote ratios, not seconds)."""
    try:
        return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    except OSError:  # pragma: no cover
        return "load average unknown"


def limit_blas(threads: int = 1) -> str:
    """Limit BLAS threads for the rest of the process: the environment variables (for
    libraries not yet loaded, and subprocesses) and :func:`altmarl.threads.set_blas_threads`
    (threadpoolctl, for those already loaded).

    On a shared 2-core machine BLAS's own threads oversubscribe the cores and slow small
    dense solves down (the exact solver's LU, for instance); benchmarks default to 1.
    Returns a short description for the table headers."""
    from altmarl.threads import set_blas_threads

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    set_blas_threads(threads)
    return f"BLAS threads: {threads} (threadpoolctl)"


def timeit(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls (seconds) and the last result."""
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def cpu_wall(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, float, Any]:
    """Median wall and CPU (``process_time``, all threads) seconds and the last result."""
    walls, cpus = [], []
    out = None
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def interleaved(fns: Sequence[Callable[[], Any]], repeats: int = 5) -> tuple[list[float], list[Any]]:
    """Median wall time of each of ``fns``, run in turn ``repeats`` times (A B A B ...), so
    a change of load during the run affects all of them alike. Returns medians and the
    last result of each."""
    times: list[list[float]] = [[] for _ in fns]
    outs: list[Any] = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times], outs


def module_at(ref: str, path: str, name: str) -> ModuleType:
    """Import the file ``path`` (relative to the repository) as it is at git revision
    ``ref`` (read-only ``git show``), as a module called ``name``; its own imports resolve
    to the installed package. Used for before/after timings in one run."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], check=True,
                         capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    mod.__file__ = f"{ref}:{path}"
    sys.modules[name] = mod  # dataclasses look their module up here
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod


def fmt_ratio(x: float) -> str:
    """``1.83x``."""
    return f"{x:.2f}x"


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print a plain-text table (also valid Markdown)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in r) + " |")
    sys.stdout.flush()
