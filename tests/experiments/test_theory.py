"""Tests of the theory experiment (SPEC 7, altmarl.experiments.theory) and its configuration."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pytest

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.experiments.theory import (
    GapGame,
    TheoryConfig,
    fit_loglog_slope,
    full_config,
    parse_theory_config,
    quick_config,
    run_theory,
    table_sizes,
)
from altmarl.glearn import g_learn
from altmarl.io import read_csv_rows


def test_fit_recovers_known_slope():
    k = np.array([1, 2, 4, 8, 16, 32, 64])
    fit = fit_loglog_slope(k, 3.0 * k**-0.5, k_max=16)
    assert fit["slope"] == pytest.approx(-0.5, abs=1e-12)
    assert fit["intercept"] == pytest.approx(np.log(3.0), abs=1e-12)
    assert fit["x_used"] == [1, 2, 4, 8, 16] and fit["r2"] == pytest.approx(1.0)
    # zero gaps (k = n) are left out; too few points -> no slope
    fit0 = fit_loglog_slope([1, 2, 4, 8], [1.0, 0.5, 0.0, 0.0], k_max=8)
    assert fit0["slope"] is None and fit0["points"] == 2


def test_table_sizes_match_formulas():
    cfg = quick_config()
    rows = table_sizes(cfg)
    for r in rows:
        assert r["mean_field"] == comb(r["k"] + r["d"] - 1, r["d"] - 1)
        assert r["standard"] == float(r["d"] ** r["k"])
    # the separation of Remark 4.9: polynomial vs exponential
    big = [r for r in rows if r["d"] == 5 and r["k"] == cfg.table_kmax][0]
    assert big["mean_field"] < 1e-6 * big["standard"]


def test_quick_theory_end_to_end(tmp_path):
    """`altmarl theory --quick` writes a complete run directory whose numbers are
    consistent with the exact solver."""
    from typer.testing import CliRunner

    from altmarl.cli import app

    out = tmp_path / "theory"
    res = CliRunner().invoke(app, ["theory", "--quick", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "slope" in res.output
    for name in ("config.json", "summary.json", "gap_vs_k.csv", "table_size.csv",
                 "cost_vs_n.csv", "gap_vs_k.png", "table_size.png", "cost_vs_n.png"):
        assert (out / name).exists(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert summary["quick"] and cfg["quick"]
    rows = read_csv_rows(out / "gap_vs_k.csv")
    spec = quick_config().gap_games[0]
    exact_rows = [r for r in rows if r["m"] == "exact"]
    assert [r["k"] for r in exact_rows] == list(spec.ks)
    n = spec.params["n"]
    for r in rows:
        assert r["gap_full"] >= 0
        assert r["opt_value"] >= r["value"] - 1e-9
        if r["gap_restricted"] is not None:
            # the restricted optimum lies between the G-LEARN value and the full optimum
            assert r["value"] - 1e-9 <= r["restricted_opt_value"] <= r["opt_value"] + 1e-9
    # at k = n G-LEARN with exact expectation is the full-information optimum
    assert exact_rows[-1]["k"] == n and exact_rows[-1]["gap_full"] == pytest.approx(0, abs=1e-6)
    # the gap decays: fitted slope clearly negative, last < first
    fit = summary["gap_vs_k"][spec.label]["fit_exact_expectation"]
    assert fit["slope"] is not None and fit["slope"] < -0.2
    assert exact_rows[-2]["gap_full"] < exact_rows[0]["gap_full"]
    # one row re-checked against an independent exact evaluation
    game = am.envs.make(spec.env, **spec.params)
    pi_l = am.LocalPolicy.uniform(game)
    r4 = [r for r in exact_rows if r["k"] == 4][0]
    pi4 = g_learn(game, pi_l, k=4, m=None, seed=0)
    assert ExactSolver(game, 4).value(pi4, pi_l) == pytest.approx(r4["value"], abs=1e-9)
    # cost table: G-LEARN sample count does not depend on n
    cost = read_csv_rows(out / "cost_vs_n.csv")
    samples = {r["samples"] for r in cost if r["method"] == "g_learn"}
    assert len(samples) == 1
    states = [r["states"] for r in cost if r["method"] == "exact"]
    assert states == sorted(states) and states[0] < states[-1]


def test_run_theory_custom_config_finite_m_rows(tmp_path):
    cfg = quick_config(seed=3).replace(
        gap_games=(GapGame("tiny", "random", {"n": 6, "n_sg": 2, "n_ag": 2, "n_sl": 2,
                                              "n_al": 2, "seed": 1}, (1, 2, 3, 6)),),
        finite_m=5, finite_m_seeds=(0, 1, 2), finite_m_ks=(1, 2),
        cost_glearn_ns=(5, 50), cost_exact_ns=(3, 5), table_kmax=5)
    summary = run_theory(tmp_path, config=cfg, progress=False)
    rows = read_csv_rows(tmp_path / "gap_vs_k.csv")
    fm = [r for r in rows if r["m"] == 5]
    assert len(fm) == 6 and {r["seed"] for r in fm} == {0, 1, 2}
    assert "fit_finite_m" in summary["gap_vs_k"]["tiny"]
    assert summary["seed"] == 3


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def test_theory_config_is_frozen_and_validated():
    cfg = quick_config(seed=2)
    assert isinstance(cfg, TheoryConfig) and cfg.seed == 2 and cfg.max_states == 6000
    with pytest.raises(ValueError):
        cfg.seed = 3  # type: ignore[misc]
    assert full_config().gap_games[1].params["n"] == 200
    # the JSON form written to config.json loads back to the same configuration
    again = parse_theory_config(json.loads(json.dumps(cfg.model_dump())))
    assert again == cfg and isinstance(again.gap_games[0], GapGame)
    assert again.gap_games[0].ks == (1, 2, 3, 4, 6, 8, 10, 14, 20, 28, 40)
    assert cfg.replace(table_kmax=7).table_kmax == 7


def test_theory_config_errors_name_dotted_keys():
    data = quick_config().model_dump()
    data["gap_games"][0]["ks"] = [1, 0]
    data["cost_k"] = "2"
    data["fit_max_frac"] = -1.0
    data["finite_m_sedes"] = [0]
    with pytest.raises(ValueError) as info:
        parse_theory_config(data, source="my.json")
    msg = str(info.value)
    assert msg.startswith("invalid theory configuration:")
    assert "my.json: gap_games.0.ks.1: Input should be greater than or equal to 1" in msg
    assert "my.json: cost_k: Input should be a valid integer (got '2')" in msg
    assert "my.json: fit_max_frac:" in msg
    assert "my.json: finite_m_sedes: unknown key" in msg
    with pytest.raises(ValueError, match="seed"):
        quick_config(seed=-1)
    with pytest.raises(ValueError, match="expected a table"):
        parse_theory_config([1, 2])


def test_cli_reports_config_errors():
    from typer.testing import CliRunner

    from altmarl.cli import app

    res = CliRunner().invoke(app, ["theory", "--quick", "--seed", "-1", "--no-progress"])
    assert res.exit_code != 0 and "seed" in res.output
