"""The Numba subsample kernel (altmarl.sampling_kernels) against NumPy's own calls: the
same numbers, the same generator state afterwards, NumPy's errors for bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl.sampling as sampling
from altmarl.sampling import HYPERGEOM_LIMIT, SCALAR_ROWS, multivariate_hypergeometric
from altmarl.sampling_kernels import hypergeometric_rows
from altmarl.simulate import multinomial_moves


def numpy_replay(flat: np.ndarray, left: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One ``rng.hypergeometric`` array call per colour (the documented stream order)."""
    out = np.zeros_like(flat)
    remaining = flat.sum(axis=1)
    left = left.copy()
    for c in range(flat.shape[1] - 1):
        out[:, c] = rng.hypergeometric(flat[:, c], remaining - flat[:, c], left)
        left -= out[:, c]
        remaining = remaining - flat[:, c]
    out[:, -1] = left
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 3 * SCALAR_ROWS),
       C=st.integers(1, 7), scale=st.sampled_from([1, 5, 40, 1000, 10**6]),
       frac=st.floats(0.0, 1.0))
def test_kernel_draws_numpys_numbers(seed: int, rows: int, C: int, scale: int,
                                     frac: float) -> None:
    """Every row count (both sides of SCALAR_ROWS), colour count and urn size, including
    the HRUA regime of NumPy's sampler (samples >= 10) and empty urns."""
    g = np.random.default_rng(seed)
    flat = g.integers(0, scale + 1, size=(rows, C))
    left = np.floor(frac * flat.sum(axis=1)).astype(np.int64)
    a, b, c = (np.random.default_rng(seed + 1) for _ in range(3))
    want = numpy_replay(flat, left, a)
    got = np.empty_like(flat)
    assert hypergeometric_rows(b.bit_generator.ctypes.bit_generator.value, flat, left, got,
                               HYPERGEOM_LIMIT)
    np.testing.assert_array_equal(got, want)
    assert a.random() == b.random()  # the same stream consumed
    # the public function (leading axes kept) gives the same numbers
    lead = multivariate_hypergeometric(flat.reshape(1, rows, C), left.reshape(1, rows), c)
    np.testing.assert_array_equal(lead[0], want)


@pytest.mark.parametrize("flat, left", [
    ([[1, 2]], [5]),            # nsample above the urn
    ([[1, -2]], [0]),           # a negative colour
    ([[3, 4]], [-1]),           # a negative sample
    ([[HYPERGEOM_LIMIT, 1]], [1]),  # NumPy's urn bound
    ([[2**62, 2**62]], [1]),    # a total that would overflow int64
    ([[2**62] * 4], [0]),       # a total that wraps to 0 in int64 arithmetic
])
def test_bad_input_raises_numpys_error_and_draws_nothing(flat: list, left: list) -> None:
    f, n = np.array(flat, dtype=np.int64), np.array(left, dtype=np.int64)
    rng = np.random.default_rng(3)
    out = np.empty_like(f)
    assert not hypergeometric_rows(rng.bit_generator.ctypes.bit_generator.value, f, n, out,
                                   HYPERGEOM_LIMIT)
    assert rng.random() == np.random.default_rng(3).random()
    with pytest.raises(ValueError):
        multivariate_hypergeometric(f, n, np.random.default_rng(3))


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("rows", [1, SCALAR_ROWS - 1, SCALAR_ROWS, SCALAR_ROWS + 1, 125])
def test_both_paths_draw_the_array_calls_numbers(kernel: str, rows: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With the kernel and without it (``hypergeometric_kernel`` gives ``None``: the NumPy
    path, scalar calls up to SCALAR_ROWS rows, array calls above): the numbers of one array
    call per colour, and the generator left in the same state."""
    if kernel == "numpy":
        monkeypatch.setattr(sampling, "hypergeometric_kernel", lambda: None)
    g = np.random.default_rng(rows)
    flat = g.integers(0, 30, size=(rows, 5))
    left = g.integers(0, flat.sum(axis=1) + 1)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    want = numpy_replay(flat, left, a)
    got = multivariate_hypergeometric(flat, left, b)
    np.testing.assert_array_equal(got, want)
    assert a.bit_generator.state == b.bit_generator.state


@pytest.mark.parametrize("shape", [(3, 0), (0, 0), (), (2, 0, 4, 0)])
def test_an_urn_without_colours_is_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="colors: expected an array with at least one"):
        multivariate_hypergeometric(np.zeros(shape, dtype=np.int64), 0,
                                    np.random.default_rng(0))


def test_no_rows_draw_nothing() -> None:
    rng = np.random.default_rng(4)
    out = multivariate_hypergeometric(np.zeros((0, 3), dtype=np.int64), 0, rng)
    assert out.shape == (0, 3)
    assert rng.random() == np.random.default_rng(4).random()


@pytest.mark.parametrize("which", ["hypergeometric", "multinomial"])
def test_a_legacy_random_state_is_refused_with_a_clear_error(which: str) -> None:
    """``RandomState`` lacks ``bit_generator`` and the array-valued calls the samplers
    use (its ``hypergeometric`` refuses ``nsample = 0``, its ``multinomial`` an array
    ``n``): a ``TypeError`` naming ``rng``, not a wrong draw or a NumPy traceback."""
    legacy = np.random.RandomState(5)
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        if which == "hypergeometric":
            multivariate_hypergeometric(np.array([[2, 2, 2]] * 5), 2, legacy)  # type: ignore[arg-type]
        else:
            joint = np.full((1, 2, 2), 0.5)
            multinomial_moves(joint, np.zeros(1, dtype=np.int64),
                              np.array([[3, 0]]), legacy)  # type: ignore[arg-type]


def test_the_kernel_runs_under_the_generators_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel releases the GIL: it must hold the bit generator's lock, as NumPy's own
    calls do, so that threads sharing a generator never interleave inside a draw."""
    real = sampling.hypergeometric_kernel()
    assert real is not None
    rng = np.random.default_rng(0)
    held: list[bool] = []

    def free_elsewhere() -> None:  # another thread tries the (reentrant) lock
        got = rng.bit_generator.lock.acquire(blocking=False)
        if got:
            rng.bit_generator.lock.release()
        held.append(not got)

    def spy(*args: object) -> bool:
        t = threading.Thread(target=free_elsewhere)
        t.start()
        t.join()
        return bool(real(*args))

    monkeypatch.setattr(sampling, "hypergeometric_kernel", lambda: spy)
    multivariate_hypergeometric(np.full((4, 3), 5), 6, rng)
    assert held == [True]
    # and two threads sharing one generator draw valid histograms
    out: list[np.ndarray] = []

    def work() -> None:
        for _ in range(50):
            out.append(multivariate_hypergeometric(np.full((64, 4), 9), 10, rng))

    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 100 and all((h.sum(axis=1) == 10).all() and (h <= 9).all() for h in out)


def test_scalar_and_read_only_inputs_compile_one_kernel() -> None:
    """A scalar ``nsample`` (a read-only broadcast) and read-only colours are copied to the
    one array type the kernel is compiled for: no second specialisation."""
    colors = np.full((3, 4), 6)
    colors.setflags(write=False)
    multivariate_hypergeometric(colors, 5, np.random.default_rng(0))
    multivariate_hypergeometric(np.full((2, 4), 6), np.array([1, 2]), np.random.default_rng(0))
    assert len(hypergeometric_rows.signatures) == 1
