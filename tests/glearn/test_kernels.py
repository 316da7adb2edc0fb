"""The fused kernels of the sampled operator (altmarl.glearn.kernels, SPEC 4): the same
numbers, to the last bit, as the sparse-matrix products they replace, and the compact
sample store (next local states shared across global actions, next global states in one
byte)."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am
from altmarl.glearn import kernels
from altmarl.glearn.draws import global_state_dtype
from altmarl.glearn.operator import empirical_operator
from altmarl.glearn.options import GLearnOptions
from altmarl.glearn.solvers import solve

from .helpers import random_pi_l, small_game

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")


def _pair(game: am.TabularGame, k: int, **opts: object) -> tuple[object, object]:
    pi_l = random_pi_l(game, 3)
    o = GLearnOptions(m=opts.pop("m", 9), **opts)  # type: ignore[arg-type]
    a = empirical_operator(game, pi_l, k, seed=5, options=o)
    b = empirical_operator(game, pi_l, k, seed=5, options=o)
    a.model.fused, b.model.fused = False, True
    return a, b


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
@pytest.mark.parametrize("param", ["mean-field", "standard"])
def test_fused_products_are_bit_identical_to_sparse(crn: str, param: str) -> None:
    game = small_game(4, n_sl=3)
    if param == "standard" and crn == "pool":
        crn = "states"
    a, b = _pair(game, 4, crn=crn, parameterization=param)
    rng = np.random.default_rng(0)
    V = rng.normal(size=(game.n_sg, a.shape[1])) * 10.0
    ea, eb = a.model.expect(V), b.model.expect(V)
    assert ea.shape == (game.n_sg, a.shape[1], game.n_ag)
    np.testing.assert_array_equal(ea, eb)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, a.shape[1]))
    x = V.ravel()
    np.testing.assert_array_equal(a.model.policy_matrix(acts)(x), b.model.policy_matrix(acts)(x))
    # the expectation itself: the mean of V over each entry's stored next states
    N = a.shape[1]
    for act in range(game.n_ag):
        cols = a.model.columns(act)
        ref = V.ravel()[cols].mean(axis=-1)
        np.testing.assert_allclose(ea[:, :, act], ref, rtol=1e-12, atol=1e-12)
        assert cols.max() < game.n_sg * N
    # solving gives the same table and the same greedy actions
    qa, _ = solve(a)
    qb, _ = solve(b)
    np.testing.assert_array_equal(qa, qb)


def test_g_learn_same_policy_whichever_path(monkeypatch: pytest.MonkeyPatch) -> None:
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 1 << 62)
    a = am.g_learn(game, pi_l, 6, m=10, seed=2)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    b = am.g_learn(game, pi_l, 6, m=10, seed=2)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)


def test_store_is_compact() -> None:
    game = small_game(2)
    op = empirical_operator(game, random_pi_l(game, 2), 3, seed=0, options=GLearnOptions(m=4))
    model = op.model
    assert model.nxt.shape == (game.n_sg, op.shape[1], 1, 4)  # shared by all a_g
    assert model.sg.dtype == np.uint8 and model.sg.shape == (game.n_sg, op.shape[1], game.n_ag, 4)
    assert global_state_dtype(256) == np.uint8
    assert global_state_dtype(257) == np.uint16
    assert global_state_dtype(70_000) == np.uint32


@pytest.mark.parametrize("crn", ["pool", "states"])
def test_fused_sampling_draws_the_same_store(crn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large operators draw with the integer kernels (categorical next global states,
    pool window sums and ranks): the same store as the NumPy code."""
    game = small_game(6, n_sl=4)
    pi_l = random_pi_l(game, 6)
    o = GLearnOptions(m=7, crn=crn, pool_size=40)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 1 << 62)
    a = empirical_operator(game, pi_l, 5, seed=9, options=o)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    b = empirical_operator(game, pi_l, 5, seed=9, options=o)
    assert not a.model.fused and b.model.fused
    np.testing.assert_array_equal(a.model.nxt, b.model.nxt)
    np.testing.assert_array_equal(a.model.sg, b.model.sg)


def test_categorical_kernel_counts_thresholds() -> None:
    u = np.array([[0, 9, 10, 2**32 - 1]], dtype=np.uint32)
    out = np.zeros((1, 4), dtype=np.uint8)
    kernels.categorical_into(u, [10, 2**32, 2**32], out)  # categories 1, 2 have p = 0
    np.testing.assert_array_equal(out, [[0, 0, 1, 1]])
