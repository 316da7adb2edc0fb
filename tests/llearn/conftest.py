"""Factories shared by the L-LEARN tests: small random games, random global policies and
the exact objective of the direct search."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import altmarl as am
from altmarl.exact import ExactSolver


def _game(seed: int, n_sg: int = 2, n_ag: int = 3, n_sl: int = 3, n_al: int = 3, n: int = 6,
          concentration: float = 0.5) -> am.TabularGame:
    return am.envs.make("random", n_sg=n_sg, n_ag=n_ag, n_sl=n_sl, n_al=n_al, n=n, gamma=0.9,
                        seed=seed, concentration=concentration)


def _random_global(game: am.TabularGame, k: int, seed: int) -> am.GlobalPolicy:
    rng = np.random.default_rng(seed)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, am.num_histograms(k, game.n_sl)))
    return am.GlobalPolicy(k, acts, game.n_ag, game=game)


def _exact_value_fn(ex: ExactSolver, pi_g: am.GlobalPolicy) -> Callable[[np.ndarray], np.ndarray]:
    def vf(tables: np.ndarray) -> np.ndarray:
        return np.array([ex.value(pi_g, am.LocalPolicy(t)) for t in tables])

    return vf


@pytest.fixture
def make_game() -> Callable[..., am.TabularGame]:
    """``make_game(seed, n_sg=2, n_ag=3, n_sl=3, n_al=3, n=6)``: a random game, gamma 0.9."""
    return _game


@pytest.fixture
def random_global() -> Callable[[am.TabularGame, int, int], am.GlobalPolicy]:
    """``random_global(game, k, seed)``: a global policy with uniformly random actions."""
    return _random_global


@pytest.fixture
def exact_value_fn() -> Callable[[ExactSolver, am.GlobalPolicy], Callable[[np.ndarray], np.ndarray]]:
    """``exact_value_fn(ex, pi_g)``: ``tables -> exact values`` for the direct search."""
    return _exact_value_fn
