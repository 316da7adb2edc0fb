"""Up-front bounds on API sizes (altmarl.limits, issue 18): refused before any work, with a
ValueError naming the argument and the limit."""

from __future__ import annotations

import math

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
def test_evaluate_sizes_are_bounded_up_front(warehouse, kw, match, peak_memory,
                                             forbid) -> None:
    """Refused before the simulation starts: the simulator is never reached and the call
    allocates under 1 MiB, while the smallest refused size (50 x 10^9 steps x (|S_l| + 3) =
    8 cells) would store 4e11 trajectory cells, 3.2 TB."""
    from altmarl import evaluation

    pg, pl = am.GlobalPolicy.constant(warehouse, 3), am.LocalPolicy.uniform(warehouse)
    calls = forbid(evaluation, "simulate_batched")
    with peak_memory() as mem, pytest.raises(ValueError, match=match):
        am.evaluate(warehouse, pg, pl, **kw)
    assert not calls
    assert mem.bytes < 2**20, mem.bytes


def test_record_logs_episodes_are_bounded_up_front(warehouse, peak_memory, forbid) -> None:
    """Refused before the recording starts (its step tables are never built) and under
    1 MiB, while 10^9 episodes x 100 steps x (2 |S_l| + 6) = 16 columns would hold 1.6e12
    log cells, 12.8 TB."""
    from altmarl.offpolicy import record

    calls = forbid(record, "step_tables")
    with peak_memory() as mem:
        with pytest.raises(ValueError, match=r"record_logs: episodes: rollouts x horizon = "
                                             r"1000000000 x 100"):
            record_logs(warehouse, 3, episodes=10**9, horizon=100)
        with pytest.raises(ValueError, match="episodes = True"):
            record_logs(warehouse, 3, episodes=True)
    assert not calls
    assert mem.bytes < 2**20, mem.bytes


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


# ---------------------------------------------------------------------------
# experiment configurations: every size bounded from what it implies, before any work
# ---------------------------------------------------------------------------

BASE: dict[str, object] = {"name": "t", "env": {"name": "random", "params": {"n": 12}},
                           "sweep": {"k": [2]}}


@pytest.mark.parametrize("over, match", [
    ({"sweep": {"k": {"start": 1, "stop": 10**9}}}, r"sweep.k.*1000000000 values of k: above "
                                                    "100000"),
    ({"sweep": {"k": [2], "train_seeds": 10**9}}, "sweep.train_seeds"),
    ({"sweep": {"k": list(range(1, 1001)), "train_seeds": 101}}, "101000 units: above"),
    ({"evaluation": {"seeds": 10**9}}, "evaluation.seeds"),
    ({"evaluation": {"rollouts": 10**12}}, "evaluation.rollouts"),
    ({"evaluation": {"horizon": 10**9}}, "evaluation.horizon"),
    ({"evaluation": {"rollouts": 10**5, "horizon": 10**4}}, r"rollouts x horizon = 100000 x "
                                                           "10000"),
    ({"evaluation": {"rollouts": 50, "horizon": 10**6}}, "evaluation: rollouts x horizon = 50 x "
                                                         "1000000"),
    ({"env": {"name": "warehouse", "params": {"zones": 1000}}}, "zones: P_g"),
    ({"env": {"name": "warehouse", "params": {"zones": 2.7}}}, "zones = 2.7"),
    ({"name": "../x"}, "name"),
    ({"name": "/abs/path"}, "name"),
    ({"name": ".hidden"}, "name"),
    ({"seed": True}, "seed"),
    ({"algorithm": {"eta": float("nan")}}, "algorithm.eta"),
])
def test_config_sizes_are_bounded_before_work(over, match, peak_memory) -> None:
    """Refused from what the sizes imply, allocating under 1 MiB, while building what they
    ask for would take gigabytes (10^9 values of k: 8 GB of list pointers alone; a
    1000-zone warehouse's P_g: 10^9 entries, 8 GB as float64)."""
    from altmarl.experiments.config import parse_config

    d = {**BASE, **over}
    with peak_memory() as mem, pytest.raises(ValueError, match=match) as info:
        parse_config(d)
    assert mem.bytes < 2**20, mem.bytes
    assert len(str(info.value)) < 2000


def test_config_files_deep_huge_or_special(tmp_path) -> None:
    import os

    from altmarl.experiments.config import load_config

    (tmp_path / "deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="deep.toml: not valid TOML"):
        load_config(tmp_path / "deep.toml")
    os.mkfifo(tmp_path / "fifo.toml")
    with pytest.raises(ValueError, match="found a FIFO"):
        load_config(tmp_path / "fifo.toml")
    (tmp_path / "bin.toml").write_bytes(b"name = \"\xff\"")
    with pytest.raises(ValueError, match="bin.toml: not UTF-8"):
        load_config(tmp_path / "bin.toml")
