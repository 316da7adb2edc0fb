"""Shared fixtures and hypothesis settings."""

from __future__ import annotations

import contextlib
import os
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def warehouse():
    import altmarl as am

    return am.envs.make("warehouse", n=1000)


@pytest.fixture
def tiny_game():
    import altmarl as am

    return am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.9, seed=3)


class TracedPeak:
    """What :func:`traced_peak` measured: ``bytes``, the peak of the memory traced by
    ``tracemalloc`` during the ``with`` block above what was already allocated at its start
    (NumPy reports its array buffers to ``tracemalloc``, so ``np.empty`` counts in full)."""

    bytes: int = -1


@contextlib.contextmanager
def traced_peak() -> Iterator[TracedPeak]:
    """``with traced_peak() as mem: ...`` then ``mem.bytes``: the peak memory of the block.
    Unlike a wall-clock bound it does not depend on the machine's load, so "refused before
    the big allocation" is asserted as ``mem.bytes`` far below the refused size."""
    out = TracedPeak()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    else:
        tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield out
    finally:
        out.bytes = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()


@pytest.fixture
def peak_memory() -> Callable[[], contextlib.AbstractContextManager[TracedPeak]]:
    """:func:`traced_peak`: put ``pytest.raises`` inside it, e.g.
    ``with peak_memory() as mem, pytest.raises(ValueError): f()`` then
    ``assert mem.bytes < 2**20``."""
    return traced_peak


class Forbidden(AssertionError):
    """A refused input reached the work it should have been refused before."""


@pytest.fixture
def forbid(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[tuple[Any, ...]]]:
    """``calls = forbid(owner, "name")`` replaces ``owner.name`` for the test by a stand-in
    that records its arguments and raises :class:`Forbidden` (an ``AssertionError``, so no
    ``pytest.raises(ValueError)`` swallows it, and the real work never runs); with
    ``allow=pred`` a call for which ``pred(*args, **kwargs)`` is true goes through to the
    real function. Assert ``not calls`` after the refused call."""

    def install(owner: Any, name: str,
                allow: Callable[..., bool] | None = None) -> list[tuple[Any, ...]]:
        real = getattr(owner, name)
        calls: list[tuple[Any, ...]] = []

        def stand_in(*args: Any, **kwargs: Any) -> Any:
            if allow is not None and allow(*args, **kwargs):
                return real(*args, **kwargs)
            calls.append(args)
            raise Forbidden(f"{name} was reached with {args!r:.200} {kwargs!r:.200}")

        monkeypatch.setattr(owner, name, stand_in)
        return calls

    return install
