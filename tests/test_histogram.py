"""Histogram set H_k and its combinatorial rank (SPEC 2)."""

from __future__ import annotations

from itertools import product
from math import comb

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from altmarl.histogram import enumerate_histograms, num_histograms, rank, unrank


@given(k=st.integers(0, 12), d=st.integers(1, 5))
def test_enumeration_is_complete_sorted_and_ranked(k, d):
    hs = enumerate_histograms(k, d)
    assert hs.shape == (comb(k + d - 1, d - 1), d) == (num_histograms(k, d), d)
    assert np.all(hs.sum(axis=1) == k) and np.all(hs >= 0)
    # lexicographic ascending, no duplicates
    as_tuples = [tuple(r) for r in hs]
    assert as_tuples == sorted(set(as_tuples))
    assert np.array_equal(rank(hs, k), np.arange(len(hs)))
    assert np.array_equal(unrank(np.arange(len(hs)), k, d), hs)


def test_enumeration_matches_brute_force():
    k, d = 4, 3
    brute = sorted(h for h in product(range(k + 1), repeat=d) if sum(h) == k)
    assert [tuple(r) for r in enumerate_histograms(k, d)] == brute


@given(st.lists(st.integers(0, 40), min_size=1, max_size=7))
def test_rank_of_random_histogram_round_trips(h):
    k, d = sum(h), len(h)
    r = rank(np.array(h), k)
    assert 0 <= int(r) < num_histograms(k, d)
    assert list(unrank(r, k, d)) == h


def test_rank_is_vectorized_over_leading_axes():
    hs = enumerate_histograms(6, 4)
    batch = hs[np.random.default_rng(0).integers(0, len(hs), size=(3, 7))]
    assert rank(batch, 6).shape == (3, 7)
    assert np.array_equal(enumerate_histograms(6, 4)[rank(batch, 6)], batch)


def test_paper_table_size_k50():
    assert num_histograms(50, 5) == 316_251


def test_binomial_table_is_pascals_triangle_and_read_only():
    from math import comb

    import pytest

    from altmarl.histogram import binomial_table

    B = binomial_table(6, 4)
    assert B.shape == (7, 4)
    assert all(B[r, e] == comb(r + e, e) for r in range(7) for e in range(4))
    with pytest.raises(ValueError):
        B[0, 0] = 5
