"""What the numbers of a run mean (:mod:`altmarl.experiments.report`)."""

from __future__ import annotations

import altmarl as am
from altmarl.experiments.report import nash_gap_text, settings_text, stop_reason, uniform_play


def test_uniform_play_is_reproducible_and_below_a_learned_pair() -> None:
    game = am.envs.make("random", n=8, seed=3)
    a = uniform_play(game, [1, 2, 3], rollouts=6, horizon=10)
    b = uniform_play(game, [1, 2, 3], rollouts=6, horizon=10)
    assert a["means"] == b["means"] and len(a["means"]) == 3
    assert a["ci95"][0] < a["mean"] < a["ci95"][1]
    assert uniform_play(game, [1, 2, 4], 6, 10)["means"][2] != a["means"][2]


def test_stop_reason_says_converged_or_limit() -> None:
    msg = stop_reason({"converged": True, "sweeps": 3, "accepted": 3, "config": {"sweeps": 10}})
    assert msg.startswith("converged after 6 of at most 20 proposals (3 of 10 sweeps, 3 "
                          "played): in the last sweep UPDATE played neither"), msg
    msg = stop_reason({"converged": False, "sweeps": 10, "config": {"sweeps": 10}})
    assert msg.startswith("reached the sweep limit after 20 of at most 20 proposals (10 of "
                          "10 sweeps)") and "algorithm.sweeps" in msg


def test_nash_gap_text_exact_lower_and_absent() -> None:
    assert nash_gap_text([{"k": 2}]) is None
    exact = nash_gap_text([{"k": 2, "nash_gap": 0.25, "nash_gap_bound": "exact"}])
    assert exact is not None and "0.25" in exact and "exact" in exact
    lower = nash_gap_text([{"k": 2, "nash_gap": 0.5, "nash_gap_bound": "lower",
                            "nash_gap_ci95": [0.1, 0.9]},
                           {"k": 5, "nash_gap": 0.1, "nash_gap_bound": "exact"}])
    assert lower is not None and "at least 0.5" in lower and "k = 2" in lower
    zero = nash_gap_text([{"k": 3, "nash_gap": 0.0, "nash_gap_bound": "lower"}])
    assert zero is not None and "no deviation the run tried improves" in zero


def test_settings_text_names_what_decides_the_numbers() -> None:
    text = settings_text({"env": {"name": "warehouse", "params": {"n": 1000}},
                          "algorithm": {"sweeps": 10, "m": 30},
                          "evaluation": {"seeds": 15, "rollouts": 50, "horizon": 100}})
    assert "L-LEARN solver direct (the library default)" in text
    assert "15 seeds x 50 rollouts x horizon 100" in text and "n = 1000" in text


def test_settings_text_singular_seed() -> None:
    text = settings_text({"env": {"name": "warehouse", "params": {}},
                          "algorithm": {}, "evaluation": {"seeds": 1, "rollouts": 5,
                                                          "horizon": 10}})
    assert "evaluation 1 seed x 5 rollouts" in text and "1 seeds" not in text
