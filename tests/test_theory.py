"""Tests of the theory experiment (SPEC 7) and of the large-game Nash-gap estimator."""

from __future__ import annotations

import importlib.util
import json
from math import comb

import numpy as np
import pytest

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.theory import (
    GapGame,
    fit_loglog_slope,
    quick_config,
    read_csv_rows,
    run_theory,
    table_sizes,
)

_HAS_G_LEARN = importlib.util.find_spec("altmarl.g_learn") is not None
needs_g_learn = pytest.mark.skipif(not _HAS_G_LEARN, reason="altmarl.g_learn not available")


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


@needs_g_learn
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
    from altmarl.g_learn import g_learn

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


@needs_g_learn
def test_run_theory_custom_config_finite_m_rows(tmp_path):
    import dataclasses

    cfg = dataclasses.replace(
        quick_config(seed=3),
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
# large-game estimator
# ---------------------------------------------------------------------------


@needs_g_learn
def test_estimate_is_consistent_with_exact_values():
    """Each estimated difference matches the exact value difference of the deviation it
    reports (within Monte-Carlo error), and the global deviation never beats the exact
    restricted optimum: the estimate is a lower bound."""
    from altmarl.nash import NashGapEstimate, estimate_nash_gap

    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.85, seed=2)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.constant(game, 2, 1)
    est = estimate_nash_gap(game, pi_g, pi_l, rollouts=600, horizon=80, seed=1,
                            local_solvers=("induced-vi",), k_full=4,
                            extra_global={"const0": am.GlobalPolicy.constant(game, 2, 0)})
    assert isinstance(est, NashGapEstimate) and est.is_estimate
    ex = ExactSolver(game, 2)
    v0 = ex.value(pi_g, pi_l)
    exact = ex.nash_gap(pi_g, pi_l)
    assert abs(est.value.mean - v0) <= 4.5 * est.value.stderr + est.value.truncation_bound
    for ge, dev_value in ((est.gap_g, ex.value(est.gap_g.deviation, pi_l)),
                          (est.gap_l, ex.value(pi_g, est.gap_l.deviation))):
        assert abs(ge.difference - (dev_value - v0)) <= 4.5 * ge.stderr + 1e-9
        assert ge.lower_bound == max(0.0, ge.difference)
    assert ex.value(est.gap_g.deviation, pi_l) - v0 <= exact.gap_g + 1e-9
    assert est.gap_g_full is not None
    assert ex.value(est.gap_g_full.deviation, pi_l) - v0 <= exact.gap_g_full + 1e-9
    text = str(est)
    assert "ESTIMATE" in text and "lower bound" in text
    assert est.summary()["kind"].startswith("estimate")
    assert est.nash_gap_lower_bound == max(est.gap_g.lower_bound, est.gap_l.lower_bound)


def test_estimate_validates_input():
    from altmarl.nash import estimate_nash_gap

    game = am.envs.make("random", n=4)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.constant(game, 2)
    with pytest.raises(ValueError, match="rollouts"):
        estimate_nash_gap(game, pi_g, pi_l, rollouts=1)
    with pytest.raises(ValueError, match="k = 9"):
        estimate_nash_gap(game, pi_g, pi_l, k_full=9)
