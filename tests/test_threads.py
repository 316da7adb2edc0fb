"""altmarl.threads: default pool sizes and the BLAS / torch thread limits; evaluation.Z95."""

from __future__ import annotations

import os
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
