"""altmarl.threads: default pool sizes and the BLAS / torch thread limits; evaluation.Z95."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import altmarl as am
from altmarl import threads
from altmarl.evaluation import Z95


def _blas_threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.mark.parametrize("cpus,thr,procs", [(None, 1, 1), (1, 1, 1), (2, 2, 2), (6, 6, 6),
                                            (64, 8, 64)])
def test_default_threads_and_processes(monkeypatch: pytest.MonkeyPatch, cpus: int | None,
                                       thr: int, procs: int) -> None:
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cpus)
    assert threads.default_threads() == thr  # thread pools: at most MAX_DEFAULT_THREADS
    assert threads.default_processes() == procs  # sweep processes: the CPU count


def test_limit_blas_threads_restores() -> None:
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS library visible to threadpoolctl")
    with threads.limit_blas_threads(1) as limit:
        assert limit == 1
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_set_torch_threads_sets_torch_and_blas() -> None:
    torch = pytest.importorskip("torch")
    prev_torch, prev_blas = torch.get_num_threads(), _blas_threads()
    try:
        assert threads.set_torch_threads(None) == 1
        assert torch.get_num_threads() == 1
        assert all(t == 1 for t in _blas_threads())
        with threads.limit_torch_threads(2) as t:
            assert t == 2 and torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(prev_torch)
        if prev_blas:
            threads.set_blas_threads(max(prev_blas))


def test_z95_is_the_normal_quantile_used_by_evaluate() -> None:
    from scipy.special import ndtri

    assert Z95 == float(ndtri(0.975))
    assert Z95 == am.update.normal_quantile(0.95)
    game = am.envs.make("warehouse", n=20)
    ev = am.evaluate(game, am.GlobalPolicy.constant(game, 1, 0), am.LocalPolicy.uniform(game),
                     rollouts=50, horizon=10, seed=0)
    assert ev.ci95 == (ev.mean - Z95 * ev.stderr, ev.mean + Z95 * ev.stderr)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_map_threads_keeps_index_order(workers: int) -> None:
    """Results come back in index order for any pool size, each index computed once."""
    seen: list[int] = []

    def fn(j: int) -> float:
        seen.append(j)
        return float(np.random.default_rng(j).random())

    out = threads.map_threads(fn, 7, workers)
    assert out == [float(np.random.default_rng(j).random()) for j in range(7)]
    assert sorted(seen) == list(range(7))
    assert threads.map_threads(fn, 1, workers) == [out[0]]


def test_altmarl_threads_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``$ALTMARL_THREADS`` sets every in-process pool's default, G-LEARN's included;
    anything but an integer >= 1 is refused naming the variable."""
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.default_threads() == 3
    assert am.GLearnOptions().thread_count == 3
    assert am.GLearnOptions(threads=2).thread_count == 2
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(threads.THREADS_ENV, bad)
        with pytest.raises(ValueError, match="ALTMARL_THREADS"):
            threads.default_threads()
    monkeypatch.setenv(threads.THREADS_ENV, "")
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.default_threads() == 2


def test_single_threaded_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    assert threads.default_threads() == 4
    threads.single_threaded_worker()
    assert threads.default_threads() == 1  # monkeypatch restores the environment


def test_process_pool_workers_run_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local backend's workers see ``$ALTMARL_THREADS = 1``: two units on two cores do
    not each start a pool of threads per core."""
    from altmarl.experiments.backends import run_process_pool

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    seen: list[str | None] = []
    run_process_pool([threads.THREADS_ENV] * 2, seen.append, workers=2, fn=os.getenv)
    assert seen == ["1", "1"]
    assert os.environ.get(threads.THREADS_ENV) is None  # the driver is left alone


def test_pool_worker_shares_the_cores_among_unfinished_units(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pool worker, default_threads() is the pool's cores divided among the units
    still unfinished (at least 1, at most the cap), read anew at each call;
    single_threaded_worker() (a fork, a Ray task) turns it off again."""
    import multiprocessing as mp

    monkeypatch.setattr(threads, "_POOL_SHARE", None)
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    unfinished = mp.Value("i", 5, lock=False)
    threads.pool_worker(unfinished, 4, 3)
    seen = []
    for left in (5, 4, 3, 2, 1, 0):
        unfinished.value = left
        seen.append(threads.default_threads())
    assert seen == [1, 1, 1, 2, 3, 3]  # 4 // min(4, left), capped at 3
    assert os.environ[threads.THREADS_ENV] == "1"
    threads.single_threaded_worker()
    unfinished.value = 1
    assert threads.default_threads() == 1


def _threads_at_barrier(job: tuple[str, str, str]) -> tuple[int, int]:
    """A pool unit: meet the other unit (files as a barrier), note the thread count while
    both run, then (``"wait"``) wait until the other has finished and note it again."""
    import time
    from pathlib import Path

    mine, other, mode = Path(job[0]), Path(job[1]), job[2]
    deadline = time.monotonic() + 60

    def meet(tag: str) -> None:
        Path(f"{mine}{tag}").touch()
        while not Path(f"{other}{tag}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    meet(".started")
    both = threads.default_threads()
    meet(".read")  # neither unit returns before both have read the count
    after = both
    while mode == "wait" and after == both and time.monotonic() < deadline:
        time.sleep(0.01)
        after = threads.default_threads()
    return both, after


def test_last_unit_of_a_pool_uses_the_idle_cores(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two units on two workers run on one thread each; once one has finished, the other
    one's next thread pools take both cores."""
    from altmarl.experiments.backends import run_process_pool

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    seen: list[tuple[int, int]] = []
    run_process_pool([(a, b, "done"), (b, a, "wait")], seen.append, workers=2,
                     fn=_threads_at_barrier)
    assert sorted(seen) == [(1, 1), (1, 2)]


def _report_default_threads(queue: Any) -> None:
    queue.put(threads.default_threads())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_forked_children_run_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child made by ``os.fork`` may not start its parent's OpenMP threads (Numba stops
    it): it runs with ``$ALTMARL_THREADS = 1``; the parent keeps its default."""
    import multiprocessing as mp

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_report_default_threads, args=(queue,))
    proc.start()
    got = queue.get(timeout=60)
    proc.join(timeout=60)
    assert got == 1 and proc.exitcode == 0
    assert threads.default_threads() == 4
