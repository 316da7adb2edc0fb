"""am.g_learn end to end (altmarl.glearn.api, SPEC 4 / SPEC 10, paper Algorithm 22)."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am
from altmarl.histogram import enumerate_histograms, num_histograms

from .helpers import (
    exact_policy_value,
    full_info_q,
    random_pi_l,
    small_game,
)


def test_k_equals_n_recovers_the_full_information_optimum() -> None:
    """With k = n the surrogate *is* the real system: G-LEARN (exact expectation) returns
    the optimal full-information Q, and its greedy policy attains the optimal value."""
    for seed in (3, 4):
        game = small_game(seed, n=3)
        pi_l = random_pi_l(game, seed)
        q_star = full_info_q(game, pi_l.table)
        for solver in ("pi", "vi"):
            pol = am.g_learn(game, pi_l, k=game.n, m=None, tol=1e-9, solver=solver)
            assert pol.q is not None
            np.testing.assert_allclose(pol.q, q_star, atol=1e-9 / (1 - game.gamma) * 2)
        pol = am.g_learn(game, pi_l, k=game.n, m=None, tol=1e-10)
        Hs = enumerate_histograms(game.n, game.n_sl)
        sg = np.repeat(np.arange(game.n_sg), len(Hs))
        w = np.exp(game.init.log_pmf(sg, np.tile(Hs, (game.n_sg, 1)), game.n))
        v_star = float(w @ q_star.max(axis=-1).ravel())
        v_pol = exact_policy_value(game, pi_l.table, pol.actions)
        assert v_pol == pytest.approx(v_star, abs=1e-8)
        # ... and no other policy of a few random ones does better
        rng = np.random.default_rng(seed)
        for _ in range(5):
            other = rng.integers(0, game.n_ag, size=pol.actions.shape)
            assert exact_policy_value(game, pi_l.table, other) <= v_star + 1e-9


def test_policy_info_and_evaluate() -> None:
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    k, m = 3, 6
    pol = am.g_learn(game, pi_l, k, m=m, seed=0)
    H = num_histograms(k, game.n_sl)
    assert isinstance(pol, am.GlobalPolicy) and pol.k == k
    assert pol.q is not None and pol.q.shape == (game.n_sg, H, game.n_ag)
    info = pol.info
    assert info["samples"] == game.n_sg * H * game.n_ag * m
    assert info["samples_standard"] == game.n_sg * game.n_sl**k * game.n_ag * m
    assert info["table_size_mean_field"] == game.n_sg * H * game.n_ag
    assert info["table_size_standard"] == game.n_sg * game.n_sl**k * game.n_ag
    for key in ("iterations", "residual", "wall_seconds", "parameterization", "m", "seed",
                "solver", "crn", "draws", "converged"):
        assert key in info
    assert info["parameterization"] == "mean-field" and info["m"] == m and info["seed"] == 0
    ev = am.evaluate(game, pol, pi_l, rollouts=8, horizon=20, seed=0, workers=1)
    assert np.isfinite(ev.mean)


def test_evaluate_agrees_with_the_exact_value_of_the_g_learn_policy() -> None:
    """The returned policy plugs into am.evaluate; with k = n its Monte-Carlo value matches
    the exact value of the (s_g, N) chain."""
    game = small_game(20, n=3, gamma=0.8)
    pi_l = random_pi_l(game, 20)
    pol = am.g_learn(game, pi_l, k=3, m=None)
    v = exact_policy_value(game, pi_l.table, pol.actions)
    ev = am.evaluate(game, pol, pi_l, rollouts=1000, horizon=80, seed=0, workers=1)
    assert abs(ev.mean - v) <= 4 * ev.stderr + ev.truncation_bound


def test_policy_round_trips_through_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    game = small_game(13)
    pol = am.g_learn(game, am.LocalPolicy.uniform(game), 2, m=4, seed=1)
    path = pol.save(tmp_path / "g.npz", game=game)
    back = am.GlobalPolicy.load(path, game=game)
    np.testing.assert_array_equal(back.actions, pol.actions)
    assert back.info["residual"] == pol.info["residual"]


def test_seeds_are_reproducible() -> None:
    game = small_game(15)
    pi_l = random_pi_l(game, 15)
    a = am.g_learn(game, pi_l, 3, m=5, seed=7)
    b = am.g_learn(game, pi_l, 3, m=5, seed=7)
    c = am.g_learn(game, pi_l, 3, m=5, seed=8)
    assert a.q is not None and b.q is not None and c.q is not None
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert np.abs(a.q - c.q).max() > 1e-6
    for crn in ("states", "none"):
        x = am.g_learn(game, pi_l, 3, m=5, seed=7, crn=crn).q
        y = am.g_learn(game, pi_l, 3, m=5, seed=7, crn=crn).q
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k = 0"),
        ({"k": 7}, "k = 7"),
        ({"k": 2.0}, "k = 2.0"),
        ({"m": 0}, "m = 0"),
        ({"m": -3}, "m = -3"),
        ({"m": 2.5}, "m = 2.5"),
        ({"seed": -1}, "seed = -1"),
        ({"parameterization": "mf"}, "parameterization"),
        ({"solver": "newton"}, "solver"),
        ({"crn": "bins"}, "crn"),
        ({"crn": "pool", "parameterization": "standard"}, "crn = 'pool'"),
        ({"tol": 0.0}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"tol": -1e-3}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"tie_break": "random"}, "tie_break"),
        ({"pool_size": 0}, "pool_size"),
        ({"k": 6, "parameterization": "standard", "max_table": 1000}, "max_table"),
        ({"k": 3, "m": 10**6, "max_samples": 10**6}, "max_samples"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(kwargs: dict, match: str) -> None:
    game = small_game(17)
    args = {"k": 2, "m": 3}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        am.g_learn(game, am.LocalPolicy.uniform(game), **args)


def test_bad_game_and_local_policy() -> None:
    game = small_game(18)
    with pytest.raises(ValueError, match="game"):
        am.g_learn("warehouse", am.LocalPolicy.uniform(game), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pi_l.table"):
        am.g_learn(game, np.full((2, 2, 2), 0.5), 2)
    bad = np.full((game.n_sl, game.n_sg, game.n_al), 0.7)
    with pytest.raises(ValueError, match="pi_l.table"):
        am.g_learn(game, bad, 2)

