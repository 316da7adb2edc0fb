"""The Numba subsample kernel (altmarl.sampling_kernels) against NumPy's own calls: the
same numbers, the same generator state afterwards, NumPy's errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altmarl.sampling import HYPERGEOM_LIMIT, SCALAR_ROWS, multivariate_hypergeometric
from altmarl.sampling_kernels import hypergeometric_rows


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
    assert hypergeometric_rows(b.bit_generator.ctypes.bit_generator.value, flat, left, got)
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
])
def test_bad_input_raises_numpys_error_and_draws_nothing(flat: list, left: list) -> None:
    f, n = np.array(flat, dtype=np.int64), np.array(left, dtype=np.int64)
    rng = np.random.default_rng(3)
    out = np.empty_like(f)
    assert not hypergeometric_rows(rng.bit_generator.ctypes.bit_generator.value, f, n, out)
    assert rng.random() == np.random.default_rng(3).random()
    with pytest.raises(ValueError):
        multivariate_hypergeometric(f, n, np.random.default_rng(3))
