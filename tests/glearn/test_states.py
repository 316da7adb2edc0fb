"""The surrogate's state space (altmarl.glearn.states, SPEC 4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from altmarl.glearn.states import (
    histogram_q,
    num_states,
    state_counts,
    table_size,
    tuple_digits,
)
from altmarl.histogram import build_histograms, enumerate_histograms, num_histograms, rank

from .helpers import small_game


def test_histogram_enumeration_is_stars_and_bars_in_rank_order() -> None:
    """``build_histograms`` (G-LEARN's surrogate states) lists ``H_k`` as stars and bars
    over ``itertools.combinations`` do, row ``i`` of rank ``i``, as a fresh array; the
    cached ``enumerate_histograms`` gives the same rows, read-only."""
    for k, d in [(0, 3), (1, 1), (4, 1), (5, 2), (7, 3), (6, 5), (3, 7)]:
        bars = [(-1, *c, k + d - 1) for c in itertools.combinations(range(k + d - 1), d - 1)]
        want = np.array([[b[i + 1] - b[i] - 1 for i in range(d)] for b in bars], dtype=np.int64)
        got = build_histograms(k, d)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(rank(got, k), np.arange(num_histograms(k, d)))
        assert got.flags.writeable and got.dtype == np.int64
        np.testing.assert_array_equal(enumerate_histograms(k, d), want)
        assert not enumerate_histograms(k, d).flags.writeable


@pytest.mark.parametrize(("k", "d"), [(1, 3), (2, 2), (3, 3), (4, 2)])
def test_tuple_digits_and_counts_match_itertools(k: int, d: int) -> None:
    tuples = np.array(list(itertools.product(range(d), repeat=k)), dtype=np.int64)
    idx = np.arange(d**k, dtype=np.int64)
    np.testing.assert_array_equal(tuple_digits(idx, k, d), tuples)  # tau_1 most significant
    counts = state_counts(k, d, "standard")
    assert counts.dtype == np.int64 and counts.shape == (d**k, d)
    for t, c in zip(tuples, counts, strict=True):
        np.testing.assert_array_equal(c, np.bincount(t, minlength=d))
    np.testing.assert_array_equal(state_counts(k, d, "mean-field"), enumerate_histograms(k, d))


def test_num_states_and_table_size() -> None:
    game = small_game(0)
    for k in (1, 2, 3):
        assert num_states(k, game.n_sl, "mean-field") == num_histograms(k, game.n_sl)
        assert num_states(k, game.n_sl, "standard") == game.n_sl**k
        for param in ("mean-field", "standard"):
            assert table_size(game, k, param) == (game.n_sg * num_states(k, game.n_sl, param)
                                                  * game.n_ag)


def test_histogram_q_averages_over_orderings() -> None:
    k, d, S, A = 3, 3, 2, 2
    rng = np.random.default_rng(0)
    q_t = rng.normal(size=(S, d**k, A))
    q_h = histogram_q(q_t, k, d)
    hr = rank(state_counts(k, d, "standard"), k)
    for h in range(num_histograms(k, d)):
        np.testing.assert_allclose(q_h[:, h, :], q_t[:, hr == h, :].mean(axis=1), atol=1e-14)
    # a permutation-invariant tuple table maps to itself
    q_inv = rng.normal(size=(S, num_histograms(k, d), A))[:, hr, :]
    np.testing.assert_allclose(histogram_q(q_inv, k, d)[:, hr, :], q_inv, atol=1e-14)
    with pytest.raises(ValueError, match="q_tuples"):
        histogram_q(q_t[:, :5], k, d)


def test_build_histograms_refuses_bad_sizes() -> None:
    for k, d, field in [(3, 0, "d"), (-1, 2, "k"), (2.5, 2, "k")]:
        with pytest.raises(ValueError, match=f"build_histograms: {field}"):
            build_histograms(k, d)  # type: ignore[arg-type]
