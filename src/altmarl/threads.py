"""How many threads and processes altmarl uses, and the limits it puts on BLAS and PyTorch
(the one home of these settings).

Seeded numbers never depend on these choices (SPEC 9): rollouts are cut into fixed,
independently seeded chunks and sweep units carry their own seeds. They only decide how
fast a run is on a given machine.

* :func:`default_threads` — size of an in-process *thread* pool (the rollout chunks of
  :func:`altmarl.evaluate`, the generative simulator, G-LEARN's products) when
  ``workers`` / ``threads`` is not given; ``$ALTMARL_THREADS`` sets it, and the workers of
  the sweep backends run with it at 1 (:func:`single_threaded_worker`), except that the
  local process pool's workers share the pool's cores among the units still running
  (:func:`pool_worker`): the last units of a sweep use the cores the others left idle;
* :func:`map_threads` — a function of the chunk index over all chunks on such a pool, the
  results in chunk order (G-LEARN's policy iteration keeps one pool of that size for the
  length of a solve, for GMRES's projections: :func:`altmarl.planning.split_dots`);
* :func:`default_processes` — number of worker *processes* of a sweep backend (the local
  process pool, a local Ray instance) when ``--workers`` is not given;
* :func:`limit_blas_threads` — a block during which NumPy's BLAS uses at most ``threads``
  threads (restored afterwards); :func:`set_blas_threads` — the same for the rest of the
  process;
* :func:`set_torch_threads` — PyTorch's intra-op threads and NumPy's BLAS, both set to the
  same count for the rest of the process (the continuous warehouse);
  :func:`limit_torch_threads` — PyTorch's threads for one block.

On a shared machine multithreaded BLAS spinning on busy cores makes small dense products
and solves many times slower and their timings erratic; altmarl's heavy paths therefore
run single-threaded and parallelize over independent rollouts or units instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: at most this many threads by default for in-process thread pools
MAX_DEFAULT_THREADS = 8


#: environment variable that sets :func:`default_threads` (an integer ``>= 1``); the
#: workers of the sweep backends run with it set to 1 (:func:`single_threaded_worker`)
THREADS_ENV: Final = "ALTMARL_THREADS"


#: in a worker of the local process pool (:func:`pool_worker`): the shared count of the
#: pool's unfinished units, the pool's cores, and the most threads one unit may use
_POOL_SHARE: tuple[Any, int, int] | None = None


def default_threads() -> int:
    """Threads of an in-process thread pool when ``workers`` / ``threads`` is not given
    (evaluation's rollout chunks, the generative simulator, G-LEARN's products and draws,
    L-LEARN's candidates): ``$ALTMARL_THREADS`` when set, else the CPU count, at most
    :data:`MAX_DEFAULT_THREADS`. In a worker of the local process pool
    (:func:`pool_worker`): the pool's cores divided among its unfinished units, read
    anew at each call. ``ValueError`` naming the variable when it is set to anything but
    an integer ``>= 1``."""
    if _POOL_SHARE is not None:
        unfinished, cores, cap = _POOL_SHARE
        return max(1, min(cap, cores // max(1, int(unfinished.value))))
    return _env_threads()


def resolve_threads(threads: int | None) -> int:
    """``threads``, or :func:`default_threads` now when it is ``None`` (a pool sized anew
    at each call: in a sweep's worker it follows the units still running)."""
    return default_threads() if threads is None else max(1, int(threads))


def _env_threads() -> int:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{THREADS_ENV} = {raw!r}: expected an integer >= 1 (threads "
                             f"of altmarl's in-process pools), or leave it unset")
        return value
    return max(1, min(MAX_DEFAULT_THREADS, os.cpu_count() or 1))


def single_threaded_worker() -> None:
    """Make :func:`default_threads` 1 in this process for good (``$ALTMARL_THREADS = 1``):
    the initializer of the sweep backends' worker processes, which already run one unit
    per core, so that more threads per unit would only compete for the same cores. Also
    run in every child made by ``os.fork`` (``multiprocessing``'s ``fork`` start method):
    a forked child may not start the OpenMP threads of its parent's Numba kernels (Numba
    terminates it), so it runs them on one thread."""
    global _POOL_SHARE
    os.environ[THREADS_ENV] = "1"
    _POOL_SHARE = None


def pool_worker(unfinished: Any, cores: int, cap: int) -> None:
    """Initializer of the local process pool's workers (a process started fresh, by the
    ``forkserver`` or ``spawn`` method, so that its Numba kernels may start threads):
    :func:`single_threaded_worker`, then :func:`default_threads` becomes ``cores //
    min(cores, unfinished.value)`` (at most ``cap``), where ``unfinished`` is a
    ``multiprocessing.Value`` of the units not yet finished that the pool's driver keeps
    up to date. While the pool has at least as many units left as cores, every unit runs
    on one thread; the last ones share the idle cores. The thread count never changes
    the numbers, only how fast they come."""
    global _POOL_SHARE
    single_threaded_worker()
    _POOL_SHARE = (unfinished, max(1, int(cores)), max(1, int(cap)))


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=single_threaded_worker)


def map_threads(fn: Callable[[int], T], count: int, workers: int) -> list[T]:
    """``[fn(0), ..., fn(count - 1)]``, computed on a pool of ``workers`` threads (in this
    thread when ``workers == 1`` or ``count == 1``); the results in index order, so a
    seeded ``fn(j)`` (chunk ``j`` of the rollouts) gives the same list for any ``workers``."""
    if workers == 1 or count == 1:
        return [fn(j) for j in range(count)]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, range(count)))


def default_processes() -> int:
    """Worker processes of a sweep backend when ``--workers`` is not given (the local
    process pool, the CPUs of a local Ray instance): the CPU count."""
    return max(1, os.cpu_count() or 1)


@contextmanager
def limit_blas_threads(threads: int = 1) -> Iterator[int]:
    """Run a block with NumPy's BLAS limited to ``threads`` threads (``threadpoolctl``);
    the previous limits are restored on exit. Yields the limit in force."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield threads


def set_blas_threads(threads: int) -> None:
    """Limit NumPy's BLAS to ``threads`` threads for the rest of the process
    (``threadpoolctl``; libraries loaded later are not affected)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def set_torch_threads(threads: int | None = 1) -> int:
    """``torch.set_num_threads`` and the same limit for NumPy's BLAS, for the rest of the
    process (``None`` or ``0``: 1 thread; the continuous simulator is single-threaded too,
    and small matrix products are many times slower with several threads on a busy
    machine). Returns the thread count set."""
    import torch

    t = max(1, int(threads or 1))
    torch.set_num_threads(t)
    set_blas_threads(t)
    return t


@contextmanager
def limit_torch_threads(threads: int = 1) -> Iterator[int]:
    """Run a block with ``torch.set_num_threads(threads)`` (at least 1), restoring the
    previous count on exit: two workers on two cores then do not oversubscribe them.
    Yields the count in force."""
    import torch

    prev = torch.get_num_threads()
    t = max(1, int(threads))
    torch.set_num_threads(t)
    try:
        yield t
    finally:
        torch.set_num_threads(prev)


__all__ = [
    "MAX_DEFAULT_THREADS",
    "THREADS_ENV",
    "default_processes",
    "default_threads",
    "limit_blas_threads",
    "limit_torch_threads",
    "map_threads",
    "pool_worker",
    "resolve_threads",
    "set_blas_threads",
    "set_torch_threads",
    "single_threaded_worker",
]
