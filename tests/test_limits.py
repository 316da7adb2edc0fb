"""Up-front bounds on API sizes (altmarl.limits, issue 18): refused before any work, with a
ValueError naming the argument and the limit."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import altmarl as am
from altmarl import limits
from altmarl.offpolicy import record_logs


@given(st.integers(0, 3000), st.integers(0, 3000))
def test_log_binomial_matches_the_exact_binomial(n: int, r: int) -> None:
    exact = math.comb(n, r)
    got = limits.log_binomial(n, r)
    if exact == 0:
        assert got == -math.inf
    else:
        assert got == pytest.approx(math.log(exact), rel=1e-9, abs=1e-9)


def test_log_binomial_is_accurate_for_huge_n() -> None:
    assert limits.log_binomial(10**18 + 1, 1) == pytest.approx(math.log(10**18 + 1))
    assert limits.log_binomial(10**18, 10**18 - 2) == pytest.approx(
        math.log(10**18 * (10**18 - 1) / 2))


@pytest.mark.parametrize("kw, match", [
    ({"rollouts": 10**10}, r"evaluate: rollouts x horizon = 10000000000 x 100: .* exceed the "
                           r"limit"),
    ({"horizon": 10**9}, "evaluate: rollouts x horizon = 50 x 1000000000"),
    ({"rollouts": 10**19}, "rollouts = 10000000000000000000: expected an integer in"),
    ({"rollouts": True}, "rollouts = True"),
    ({"horizon": 2.0}, "horizon = 2.0"),
    ({"rollouts": 10**6, "horizon": 10**6, "simulator": "agents"}, "evaluate"),
])
def test_evaluate_sizes_are_bounded_up_front(warehouse, kw, match) -> None:
    pg, pl = am.GlobalPolicy.constant(warehouse, 3), am.LocalPolicy.uniform(warehouse)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        am.evaluate(warehouse, pg, pl, **kw)
    assert time.perf_counter() - t0 < 0.5


def test_record_logs_episodes_are_bounded_up_front(warehouse) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"record_logs: episodes: rollouts x horizon = "
                                         r"1000000000 x 100"):
        record_logs(warehouse, 3, episodes=10**9, horizon=100)
    with pytest.raises(ValueError, match="episodes = True"):
        record_logs(warehouse, 3, episodes=True)
    assert time.perf_counter() - t0 < 0.5


def _game_args(tiny_game: am.TabularGame) -> dict[str, object]:
    g = tiny_game
    return {"P_g": g.P_g, "P_l": g.P_l, "r_g": g.r_g, "r_l": g.r_l, "gamma": g.gamma,
            "n": g.n}


@pytest.mark.parametrize("over, match", [
    ({"n": 10**19}, r"n = 10000000000000000000: expected an integer in \[1, "),
    ({"n": True}, "n = True"),
    ({"n": 2.7}, "n = 2.7"),
    ({"gamma": "0.9"}, "gamma = '0.9'"),
    ({"gamma": False}, "gamma = False"),
    ({"r_g": np.full((2, 2), 1e308)}, r"r_g\[0, 0\] = 1e\+308: expected \|r\| <= 1e\+100"),
    ({"P_g": "0.5"}, "P_g: expected a numeric array, got a string"),
    ({"P_g": np.full((2, 2, 2), "0.5")}, "P_g: expected an array of real numbers"),
    ({"P_g": np.full((2, 2, 2), 0.5 + 0j)}, "P_g: expected an array of real numbers"),
    ({"r_l": np.ones((2, 2, 2), dtype=bool)}, "booleans are not numbers"),
    ({"P_l": [[[[0.5, 0.5]]], [[[1.0]]]]}, "P_l: expected a numeric array, could not convert"),
])
def test_game_construction_is_strict(tiny_game, over, match) -> None:
    with pytest.raises(ValueError, match=match):
        am.TabularGame(**{**_game_args(tiny_game), **over})
