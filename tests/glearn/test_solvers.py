"""Solvers and the greedy policy on T_hat (altmarl.glearn.solvers, SPEC 4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import altmarl as am
from altmarl.glearn.operator import empirical_operator
from altmarl.glearn.options import POOL_SIZE, GLearnOptions
from altmarl.glearn.solvers import ConvergenceWarning, policy_from_operator, solve
from altmarl.glearn.states import histogram_q

from .helpers import (
    random_pi_l,
    small_game,
)


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
def test_pi_and_vi_reach_the_same_fixed_point(crn: str) -> None:
    game = am.envs.make("warehouse", n=50)
    pi_l = am.LocalPolicy.uniform(game)
    tol = 1e-6
    a = am.g_learn(game, pi_l, 4, m=10, seed=3, crn=crn, solver="pi", tol=tol)
    b = am.g_learn(game, pi_l, 4, m=10, seed=3, crn=crn, solver="vi", tol=tol)
    assert a.q is not None and b.q is not None
    for p in (a, b):
        assert p.info["converged"] and p.info["residual"] <= tol
    # each is within residual / (1 - gamma) <= tol / (1 - gamma) of the unique fixed point
    ref = am.g_learn(game, pi_l, 4, m=10, seed=3, crn=crn, solver="pi", tol=1e-11).q
    assert ref is not None
    for p in (a, b):
        assert p.q is not None
        assert np.abs(p.q - ref).max() <= p.info["residual"] / (1 - game.gamma) + 1e-9
        assert np.abs(p.q - ref).max() <= tol / (1 - game.gamma)
    bound = (a.info["residual"] + b.info["residual"]) / (1 - game.gamma)
    assert np.abs(a.q - b.q).max() <= bound + 1e-9
    assert b.info["sweeps"] > 5 * a.info["sweeps"]  # plain VI needs ~ log(tol)/log(gamma)


def test_reported_residual_is_the_true_residual() -> None:
    game = small_game(11)
    pi_l = random_pi_l(game, 11)
    for solver in ("pi", "vi"):
        pol = am.g_learn(game, pi_l, 3, m=8, seed=4, solver=solver, tol=1e-7)
        op = empirical_operator(game, pi_l, 3, seed=4, options=GLearnOptions(m=8))
        assert pol.q is not None
        assert op.residual(pol.q) == pytest.approx(pol.info["residual"], rel=1e-9, abs=1e-15)
        assert pol.info["residual"] <= 1e-7


def test_max_iter_warns_and_reports_non_convergence() -> None:
    game = small_game(12)
    pi_l = random_pi_l(game, 12)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        pol = am.g_learn(game, pi_l, 2, m=5, solver="vi", max_iter=3)
    assert not pol.info["converged"]
    assert pol.info["iterations"] == 3 and pol.info["residual"] > 1e-6


def test_unreachable_tol_terminates_with_a_warning() -> None:
    game = small_game(22)
    with pytest.warns(ConvergenceWarning, match="round-off"):
        pol = am.g_learn(game, am.LocalPolicy.uniform(game), 3, m=5, tol=1e-17)
    assert not pol.info["converged"] and pol.info["residual"] < 1e-12


def test_ties_are_broken_by_the_documented_rule() -> None:
    """Two global actions with identical dynamics and rewards tie everywhere."""
    base = small_game(16)
    P_g = base.P_g.copy()
    r_g = base.r_g.copy()
    P_g[:, 2] = P_g[:, 1]
    r_g[:, 2] = r_g[:, 1]
    P_g[:, 0] = P_g[:, 1]
    r_g[:, 1:] += 0.5
    r_g[:, 0] = r_g[:, 1] - 0.5  # action 0 strictly worse
    game = am.TabularGame(P_g, base.P_l, r_g, base.r_l, base.gamma, base.n)
    pi_l = am.LocalPolicy.uniform(game)
    low = am.g_learn(game, pi_l, 3, m=None, tie_break="lowest")
    assert np.all(low.actions == 1)
    s1 = am.g_learn(game, pi_l, 3, m=None, seed=1)
    s1b = am.g_learn(game, pi_l, 3, m=None, seed=1)
    np.testing.assert_array_equal(s1.actions, s1b.actions)
    assert set(np.unique(s1.actions)) == {1, 2}  # uniform among the maximizers


def test_progress_bar_runs() -> None:
    game = small_game(19)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pol = am.g_learn(game, am.LocalPolicy.uniform(game), 2, m=3, progress=True)
    assert pol.info["converged"]


@pytest.mark.parametrize("parameterization", ["mean-field", "standard"])
def test_policy_from_operator_is_g_learns_last_step(parameterization: str) -> None:
    game = small_game(20)
    pi_l = random_pi_l(game, 20)
    ref = am.g_learn(game, pi_l, 2, m=4, seed=9, parameterization=parameterization)
    op = empirical_operator(game, pi_l, 2, seed=9, options=GLearnOptions(m=4, parameterization=parameterization))
    pol = policy_from_operator(game, op, 9, method="mine", extra_info={"note": 1})
    assert pol.q is not None and ref.q is not None
    np.testing.assert_array_equal(pol.q, ref.q)
    np.testing.assert_array_equal(pol.actions, ref.actions)
    assert pol.info["method"] == "mine" and pol.info["note"] == 1
    assert set(ref.info) <= set(pol.info)
    skip = {"method", "wall_seconds", "cpu_seconds", "solve_seconds", "solve_cpu_seconds",
            "sample_seconds"}
    for key in set(ref.info) - skip:
        assert pol.info[key] == ref.info[key], key
    if parameterization == "mean-field":
        assert pol.info["pool_size"] == op.pool_size == POOL_SIZE
    else:
        assert op.pool_size is None and "pool_size" not in pol.info
    low = policy_from_operator(game, op, 9, GLearnOptions(tie_break="lowest"))
    assert low.info["tie_break"] == "lowest"
    with pytest.raises(ValueError, match="tie_break"):
        policy_from_operator(game, op, 9, GLearnOptions(tie_break="random"))


def test_standard_policy_acts_on_ordering_averaged_q() -> None:
    game = small_game(14)
    pi_l = random_pi_l(game, 14)
    pol = am.g_learn(game, pi_l, 3, m=6, seed=2, parameterization="standard",
                     tie_break="lowest")
    op = empirical_operator(game, pi_l, 3, seed=2, options=GLearnOptions(m=6, parameterization="standard"))
    q_t, _ = solve(op)
    q_h = histogram_q(q_t, 3, game.n_sl)
    assert pol.q is not None
    np.testing.assert_allclose(pol.q, q_h, atol=1e-5)
    np.testing.assert_array_equal(pol.actions, q_h.argmax(axis=-1))
    assert pol.info["samples"] == game.n_sg * game.n_sl**3 * game.n_ag * 6

