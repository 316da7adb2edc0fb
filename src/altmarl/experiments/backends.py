"""Execution backends for sweeps (SPEC 9, 10): where units run.

* ``serial`` — in the calling process (``--workers 1``; what ``altmarl run`` uses).
* ``local`` — a process pool on this machine (``concurrent.futures.ProcessPoolExecutor``
  with a ``forkserver`` context, ``spawn`` where forkserver is unavailable). A worker that
  dies (killed, out of memory) breaks the pool: finished units are already saved, and the
  pool is rebuilt for the units that had not finished (``max_restarts`` times).
* ``ray`` — Ray tasks (``--backend ray``), on a local Ray instance started here
  (``ray.init(num_cpus=workers, include_dashboard=False)``) or on an existing cluster
  (``--address``). Workers return the unit's files as bytes and the driver writes them,
  so the cluster needs no shared file system.

Worker processes (``local``, ``ray``) run one unit per core, single-threaded
(:func:`altmarl.threads.single_threaded_worker`); once fewer units are left than the local
pool has workers, the units still running share the idle cores (their thread pools are
sized by :func:`altmarl.threads.pool_worker` at each call). ``serial`` leaves the
in-process thread pools at :func:`altmarl.threads.default_threads`.

Every backend hands each finished unit to ``on_done`` in the driver process, as soon as it
finishes; results never depend on the backend or on the number of workers because each
unit carries its own seeds (:mod:`altmarl.experiments.runner`).

A unit is ``fn(task)``: by default an experiment unit
(:func:`altmarl.experiments.runner.execute_unit`); the continuous k-sweep
(:mod:`altmarl.continuous.sweep`) runs its ``(k, seed)`` jobs through the same backends
with its own ``fn`` (those workers write their run directory and checkpoint themselves,
so a Ray cluster needs a shared file system for them).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from altmarl.experiments.runner import execute_unit
from altmarl.threads import (
    default_processes,
    default_threads,
    pool_worker,
    single_threaded_worker,
)

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("local", "ray")


class WorkerDied(RuntimeError):
    """A worker process died more often than the backend was allowed to restart."""


def run_serial(tasks: Sequence[T], on_done: Callable[[R], None],
               callback: Callable[..., Any] | None = None,
               fn: Callable[..., R] = execute_unit) -> None:  # type: ignore[assignment]
    """Run units one after the other in this process (``fn(task, callback=callback)``
    when a callback is given)."""
    for task in tasks:
        on_done(fn(task) if callback is None else fn(task, callback=callback))


def _context() -> Any:
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["altmarl.experiments.runner", "altmarl.evaluation"])
    return ctx


def _terminate(ex: ProcessPoolExecutor) -> None:
    procs = getattr(ex, "_processes", None) or {}
    for p in list(procs.values()):
        try:
            p.terminate()
        except Exception:  # pragma: no cover - already gone
            pass


def run_process_pool(tasks: Sequence[T], on_done: Callable[[R], None], workers: int,
                     max_restarts: int = 2,
                     fn: Callable[[T], R] = execute_unit) -> None:  # type: ignore[assignment]
    """Run units (``fn(task)``, ``fn`` importable by the workers) on a pool of
    ``workers`` processes; see the module docstring."""
    pending = list(tasks)
    restarts = 0
    cap = default_threads()  # $ALTMARL_THREADS in this process caps the workers' threads
    while pending:
        ctx = _context()
        size = max(1, min(workers, len(pending)))
        unfinished = ctx.Value("i", len(pending), lock=False)  # written by this thread only
        ex = ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=pool_worker,
                                 initargs=(unfinished, min(size, default_processes()), cap))
        futs: dict[Future[R], T] = {ex.submit(fn, t): t for t in pending}
        broken: BaseException | None = None
        try:
            not_done = set(futs)
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for f in done:
                    try:
                        out = f.result()
                    except BrokenProcessPool as exc:
                        broken = exc
                        continue
                    on_done(out)
                    pending.remove(futs[f])
                    unfinished.value = len(pending)  # the workers' thread counts follow
                if broken is not None:
                    break
        except BaseException:  # Ctrl-C or an error in on_done: stop the workers now
            # let the executor cancel its own pending futures: cancelling them here races
            # with its manager thread, which then fails on them ("InvalidStateError:
            # CANCELLED") when the terminated workers break the pool
            ex.shutdown(wait=False, cancel_futures=True)
            _terminate(ex)
            raise
        if broken is None:
            ex.shutdown(wait=True)
            continue
        _terminate(ex)
        ex.shutdown(wait=False, cancel_futures=True)
        restarts += 1
        if restarts > max_restarts:
            hint = ("" if len(pending) < len(tasks) else
                    "; if this happens at once when calling run_sweep from a script, guard "
                    "the script's entry point with `if __name__ == \"__main__\":`")
            raise WorkerDied(f"a worker process died ({broken}); {len(tasks) - len(pending)} "
                             f"units finished and are saved, {len(pending)} remain: rerun "
                             f"with --resume{hint}") from broken


def _ray_execute(fn: Callable[[T], R], task: T) -> R:
    single_threaded_worker()  # one CPU per task (``num_cpus=1``)
    return fn(task)


def run_ray(tasks: Sequence[T], on_done: Callable[[R], None], workers: int | None = None,
            address: str | None = None,
            fn: Callable[[T], R] = execute_unit) -> None:  # type: ignore[assignment]
    """Run units (``fn(task)``) as Ray tasks (one CPU each). Starts a local Ray instance
    unless Ray is already initialized or ``address`` names a cluster to join; shuts down
    what it started."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is an optional extra
        raise ValueError("backend = 'ray' needs Ray: pip install 'altmarl[ray]'") from exc
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=workers or default_processes(), include_dashboard=False,
                     logging_level=logging.WARNING)
        started = True
    refs: dict[Any, T] = {}
    try:
        remote: Any = ray.remote(num_cpus=1, max_retries=2)(_ray_execute)
        refs = {remote.remote(fn, t): t for t in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for r in done:
                on_done(ray.get(r))
                del refs[r]
    except BaseException:
        for r in refs:
            try:
                ray.cancel(r, force=True)
            except Exception:  # pragma: no cover
                pass
        raise
    finally:
        if started:
            ray.shutdown()


def check_backend(backend: str, workers: int | None, address: str | None) -> None:
    """Validate backend arguments (``ValueError`` naming the bad one)."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend = {backend!r}: expected one of {', '.join(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"--workers = {workers!r}: expected an integer >= 1")
    if address and backend != "ray":
        raise ValueError("--address: only meaningful with --backend ray")


def runs_in_process(backend: str, workers: int | None, count: int) -> bool:
    """Whether :func:`run_tasks` runs ``count`` units in this process: the ``local``
    backend with one worker (``None``: :func:`~altmarl.threads.default_processes`) or at
    most one unit."""
    w = default_processes() if workers is None else workers
    return backend == "local" and (w == 1 or count <= 1)


def run_tasks(tasks: Sequence[T], on_done: Callable[[R], None], backend: str = "local",
              workers: int | None = None, address: str | None = None,
              callback: Callable[..., Any] | None = None,
              fn: Callable[[T], R] = execute_unit) -> None:  # type: ignore[assignment]
    """Dispatch to a backend. ``local`` with one worker (or one task) runs in-process.

    ``fn(task) -> result`` computes one unit (default: an experiment unit,
    :func:`altmarl.experiments.runner.execute_unit`; the continuous k-sweep passes its own);
    it must be a module-level function so worker processes can import it, and its result
    must depend on ``task`` only, so that the backend and the number of workers never
    change the numbers."""
    check_backend(backend, workers, address)
    if backend == "ray":
        run_ray(tasks, on_done, workers, address, fn=fn)
        return
    if runs_in_process(backend, workers, len(tasks)):
        run_serial(tasks, on_done, callback, fn=fn)
    else:
        run_process_pool(tasks, on_done, default_processes() if workers is None else workers,
                         fn=fn)
