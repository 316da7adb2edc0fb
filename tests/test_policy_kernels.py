"""The greedy policy's one-pass kernels (altmarl.policy_kernels, SPEC 4): the NumPy tie
rule's actions to the last bit, lowest and seeded ties, and the same refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl import policies

pk = policies.greedy_kernels()
pytestmark = pytest.mark.skipif(pk is None, reason="numba not installed")

RTOL = policies.TIE_RTOL
_NEAR = [0.0, -0.0, 1.0, 1.0 + 1e-13, 1.0 + 3e-12, 1e13, 1e13 + 1, 1e13 + 30, 5e-13, -1.0]


def _numpy_rule(q: np.ndarray, seed: int | None = None) -> np.ndarray:
    # the tie rule of SPEC 4 written out with whole-table NumPy operations
    qmax = q.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        tied = q >= qmax - 1e-12 * np.maximum(1.0, np.abs(qmax))
    if seed is None:
        return tied.argmax(axis=-1)
    noise = np.random.default_rng(seed).random(q.shape)
    return np.where(tied, noise, -1.0).argmax(axis=-1)


@settings(max_examples=150, deadline=None)
@given(rows=st.integers(1, 40), A=st.integers(1, 6), seed=st.integers(0, 2**31),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_kernels_are_the_numpy_tie_rule(rows: int, A: int, seed: int,
                                        special: float | None) -> None:
    """``greedy_first`` gives the NumPy rule's actions (ties within ``1e-12`` relative of
    the maximum, the lowest or the seeded one; NaN and infinities as NumPy has them) and
    ``greedy_holds`` says whether actions are greedy for a finite table, as NumPy's check."""
    rng = np.random.default_rng(seed)
    q = np.where(rng.random((rows, A)) < 0.6, rng.choice(_NEAR, size=(rows, A)),
                 rng.normal(size=(rows, A)))
    if special is not None:
        q[rng.random(q.shape) < 0.2] = special
    want = _numpy_rule(q)
    got = pk.greedy_first(q.reshape(1, rows, A), RTOL)
    np.testing.assert_array_equal(got[0], want)
    assert got.dtype == np.int64 and got.shape == (1, rows)
    raw = np.random.default_rng(seed + 1).bit_generator.random_raw(q.size)
    np.testing.assert_array_equal(pk.greedy_first(q, RTOL, raw), _numpy_rule(q, seed + 1))
    finite = bool(np.isfinite(q).all())
    assert pk.greedy_holds(q, want, RTOL) == finite
    acts = rng.integers(0, A, size=rows)
    with np.errstate(invalid="ignore"):
        qmax = q.max(axis=-1)
        ok = not (q[np.arange(rows), acts] < qmax - 1e-12 * np.maximum(1.0, np.abs(qmax))).any()
    assert pk.greedy_holds(q, acts, RTOL) == (finite and ok)


def test_greedy_holds_refuses_actions_out_of_range() -> None:
    q = np.zeros((4, 3))
    for bad in ([0, 1, 3, 0], [0, -1, 0, 0]):
        with pytest.raises(ValueError, match="expected values in 0..2"):
            pk.greedy_holds(q, np.array(bad), RTOL)
    with pytest.raises(ValueError, match="expected 4 entries"):
        pk.greedy_holds(q, np.zeros(3, dtype=np.int64), RTOL)


@pytest.mark.parametrize("A", [1, 3, 5])
def test_large_tables_take_the_kernels_with_the_same_actions(
        A: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above :data:`policies.GREEDY_MIN` entries, :func:`policies.greedy` and the ``Q`` check
    take the kernels: the NumPy rule's actions (lowest ties; seeded ties with the noise
    drawn in several blocks that are not a multiple of the row length), 1-D tables
    included, and a non-greedy or non-finite table is still refused with NumPy's message."""
    monkeypatch.setattr(policies, "NOISE_BLOCK", 1001)  # many blocks, rows split unevenly
    rng = np.random.default_rng(3)
    q = np.round(rng.normal(size=(2, policies.GREEDY_MIN // A + 7, A)), 1)  # many ties
    assert policies._kernels_for(q) is pk
    want = _numpy_rule(q)
    np.testing.assert_array_equal(policies.greedy(q), want)
    for seed in (0, 7, 2**40 + 1):
        seeded = _numpy_rule(q, seed)
        np.testing.assert_array_equal(policies.greedy(q, tie_seed=seed), seeded)
        if A > 1:
            assert not np.array_equal(seeded, want)  # the ties are really broken at random
    flat = q.reshape(-1)
    assert policies.greedy(flat).shape == () and policies.greedy(flat) == _numpy_rule(flat)
    assert policies.greedy(flat, 5) == _numpy_rule(flat, 5)
    if A == 1:
        return
    H = q.shape[1]  # |S_l| = 2: H_k has k + 1 histograms
    np.testing.assert_array_equal(am.GlobalPolicy.from_q(H - 1, q).actions, want)
    q[1, 5] = np.arange(A, dtype=np.float64)
    want[1, 5] = A - 1
    policies._check_q(q, want)  # greedy and finite: accepted
    bad = want.copy()
    bad[1, 5] = A - 2
    with pytest.raises(ValueError, match=rf"pi_g.actions\[1, 5\] = {A - 2} is not greedy"):
        policies._check_q(q, bad)
    q[1, -1, 0] = np.nan
    with pytest.raises(ValueError, match="expected a finite number"):
        policies._check_q(q, want)


def test_small_tables_keep_numpy() -> None:
    """Below the size threshold, or for other dtypes, the NumPy rule is used."""
    assert policies._kernels_for(np.zeros((3, 4))) is None
    assert policies._kernels_for(np.zeros((policies.GREEDY_MIN, 2), dtype=np.float32)) is None
    assert policies._kernels_for(np.zeros((policies.GREEDY_MIN, 0))) is None
