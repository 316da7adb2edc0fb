"""Tests of the theory experiment (SPEC 7, altmarl.experiments.theory) and its configuration.

The gaps are checked against an agent-level brute force on a tiny game (every agent's
state, every k-subset of agents), which shares nothing with the count chain."""

from __future__ import annotations

import itertools
import json
from math import comb

import numpy as np
import pytest
from scipy import stats

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.experiments import theory
from altmarl.experiments.theory import (
    GapGame,
    TheoryConfig,
    exact_gap_curve,
    fit_loglog,
    fit_loglog_slope,
    full_config,
    parse_theory_config,
    quick_config,
    run_theory,
    table_sizes,
)
from altmarl.glearn import g_learn
from altmarl.io import read_csv_rows

# ---------------------------------------------------------------------------
# agent-level brute force
# ---------------------------------------------------------------------------


def agent_level_system(game: am.TabularGame, pi_l: am.LocalPolicy):
    """Every agent-level state ``(s_g, x_1, .., x_n)``, the per-action transition
    ``P[a][s, s']`` and reward ``R[s, a]`` of the n-agent system under ``pi_l``, and the
    i.i.d. initial law."""
    n, d = game.n, game.n_sl
    locals_ = list(itertools.product(range(d), repeat=n))
    states = [(g, x) for g in range(game.n_sg) for x in locals_]
    index = {s: i for i, s in enumerate(states)}
    S = len(states)
    # local part: each agent moves independently, K[x, g, y] = sum_a pi_l P_l
    K = np.einsum("xga,xgay->xgy", pi_l.table, game.P_l)
    P = np.zeros((game.n_ag, S, S))
    R = np.zeros((S, game.n_ag))
    for i, (g, x) in enumerate(states):
        loc = np.mean([pi_l.table[xi, g] @ game.r_l[xi, g] for xi in x])
        for y in locals_:
            py = np.prod([K[xi, g, yi] for xi, yi in zip(x, y, strict=True)])
            for a in range(game.n_ag):
                for g2 in range(game.n_sg):
                    P[a, i, index[(g2, y)]] += game.P_g[g, a, g2] * py
        R[i] = game.r_g[g] + loc
    mu = np.array([game.rho_g[g] * np.prod([game.rho_l[xi] for xi in x]) for g, x in states])
    return states, P, R, mu


def brute_force_gaps(game: am.TabularGame, pi_l: am.LocalPolicy, pi_g: am.GlobalPolicy):
    """(gap_sup, gap_init, one_step_sup) of ``pi_g`` against the agent-level optimum (value
    iteration over all agent-level states: an optimum that may even use the agents'
    identities)."""
    states, P, R, mu = agent_level_system(game, pi_l)
    S, gamma, k = len(states), game.gamma, pi_g.k
    V = np.zeros(S)
    for _ in range(5000):
        Q = R + gamma * np.einsum("asn,n->sa", P, V)
        V_new = Q.max(axis=1)
        if np.abs(V_new - V).max() < 1e-14:
            break
        V = V_new
    V_star, Q = V_new, R + gamma * np.einsum("asn,n->sa", P, V_new)
    # pi_g's action law: uniform over the k-subsets of agents
    pa = np.zeros((S, game.n_ag))
    for i, (g, x) in enumerate(states):
        subs = list(itertools.combinations(range(game.n), k))
        for sub in subs:
            h = np.bincount([x[j] for j in sub], minlength=game.n_sl)
            pa[i, pi_g.act(g, h)] += 1 / len(subs)
    P_pi = np.einsum("sa,asn->sn", pa, P)
    V_pi = np.linalg.solve(np.eye(S) - gamma * P_pi, (pa * R).sum(axis=1))
    regret = (pa * (V_star[:, None] - Q)).sum(axis=1)
    return float((V_star - V_pi).max()), float(mu @ (V_star - V_pi)), float(regret.max())


@pytest.mark.parametrize("seed", [1, 7])
def test_exact_gaps_match_an_agent_level_brute_force(seed):
    game = am.envs.make("random", n=3, n_sg=2, n_ag=2, n_sl=2, n_al=2, seed=seed,
                        concentration=0.3)
    pi_l = am.LocalPolicy(np.random.default_rng(seed).dirichlet(np.ones(2), size=(2, 2)),
                          game=game)
    rows, facts = exact_gap_curve(game, pi_l, (1, 2, 3), label="tiny")
    assert [r["k"] for r in rows] == [1, 2, 3]
    for r in rows:
        pi = g_learn(game, pi_l, k=r["k"], m=None, seed=0, tol=theory.G_LEARN_TOL)
        sup, init, one = brute_force_gaps(game, pi_l, pi)
        assert r["gap_sup"] == pytest.approx(sup, abs=1e-9)
        assert r["gap_init"] == pytest.approx(init, abs=1e-9)
        assert r["one_step_sup"] == pytest.approx(one, abs=1e-9)
        assert r["sqrtk_gap_sup"] == pytest.approx(np.sqrt(r["k"]) * sup, abs=1e-8)
        assert r["k_gap_init"] == pytest.approx(r["k"] * init, abs=1e-8)
    # k = n: G-LEARN with the exact expectation is the full-information optimum
    assert rows[-1]["zero_exact"] and rows[-1]["gap_sup"] == 0.0
    assert facts["exact_solver_states"] == 2 * 4


def test_gap_bounds_and_exact_zeros_on_the_quick_games():
    """Performance-difference lemma: one_step_sup <= gap_sup <= one_step_sup / (1 - gamma);
    gap_init <= gap_sup; a game whose optimum ignores N has gaps exactly 0 once G-LEARN's
    greedy action matches."""
    game = am.envs.make("warehouse", n=60, zones=2)
    pi_l = am.LocalPolicy.uniform(game)
    rows, facts = exact_gap_curve(game, pi_l, (1, 3, 10, 30), label="w")
    assert facts["optimum_depends_on_N"] and sum(facts["action_switches"]) >= 1
    for r in rows[:-1]:
        assert 0 < r["one_step_sup"] <= r["gap_sup"] + 1e-9
        assert r["gap_sup"] <= r["one_step_sup"] / (1 - game.gamma) + 1e-9
        assert 0 <= r["gap_init"] <= r["gap_sup"] + 1e-9
    spec = quick_config().gap_games[1]  # random(seed=4): its optimum ignores N
    g4 = am.envs.make(spec.env, **{**spec.params, "n": 40})
    rows4, facts4 = exact_gap_curve(g4, am.LocalPolicy.uniform(g4), (1, 2, 8), label="r")
    assert not facts4["optimum_depends_on_N"] and facts4["zero_from_k"] == 1
    ex = ExactSolver(g4, 1)
    v_star = ex.full_info_best_response(am.LocalPolicy.uniform(g4)).values
    for r in rows4:
        assert r["zero_exact"] and r["gap_sup"] == 0.0 and r["gap_init"] == 0.0
        pi = g_learn(g4, am.LocalPolicy.uniform(g4), k=r["k"], m=None, seed=0)
        # what the experiment calls exactly zero is zero up to the round-off of two solves
        assert np.abs(ex.values(pi, am.LocalPolicy.uniform(g4)) - v_star).max() < 1e-10


# ---------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------


def test_fit_recovers_known_slope_in_its_window():
    k = np.array([1, 2, 4, 8, 16, 32, 64])
    g = np.where(k <= 4, 10.0, 3.0 * k**-0.5)  # a transient, then exactly k^-1/2
    fit = fit_loglog(k, g, 8, 64)
    assert fit["slope"] == pytest.approx(-0.5, abs=1e-12)
    assert fit["intercept"] == pytest.approx(np.log(3.0), abs=1e-12)
    assert fit["k_used"] == [8, 16, 32, 64] and fit["r2"] == pytest.approx(1.0)
    assert fit["slope_ci"] == pytest.approx([-0.5, -0.5], abs=1e-9)
    # zero gaps are left out and counted; too few points -> no slope
    fit0 = fit_loglog([1, 2, 4, 8], [1.0, 0.5, 0.0, 0.0], 1, 8)
    assert fit0["slope"] is None and fit0["points"] == 2 and fit0["zeros"] == 2
    old = fit_loglog_slope(k, 3.0 * k**-0.5, k_max=16)
    assert old["x_used"] == [1, 2, 4, 8, 16] and old["slope"] == pytest.approx(-0.5)


def test_fit_interval_is_the_ols_t_interval():
    rng = np.random.default_rng(0)
    k = np.geomspace(4, 400, 9)
    g = 2.0 * k**-0.7 * np.exp(rng.normal(0, 0.1, k.size))
    fit = fit_loglog(k, g)
    ref = stats.linregress(np.log(k), np.log(g))
    q = stats.t.ppf(0.975, k.size - 2)
    assert fit["slope"] == pytest.approx(ref.slope, abs=1e-12)
    assert fit["slope_se"] == pytest.approx(ref.stderr, rel=1e-10)
    assert fit["slope_ci"] == pytest.approx([ref.slope - q * ref.stderr,
                                             ref.slope + q * ref.stderr], rel=1e-10)
    # coverage of the true slope over repeated noisy curves (95% nominal)
    hits = 0
    for s in range(200):
        y = 2.0 * k**-0.7 * np.exp(np.random.default_rng(s).normal(0, 0.1, k.size))
        lo, hi = fit_loglog(k, y)["slope_ci"]
        hits += lo <= -0.7 <= hi
    assert 0.9 <= hits / 200 <= 0.99


def test_table_sizes_match_formulas():
    cfg = quick_config()
    rows = table_sizes(cfg)
    for r in rows:
        assert r["mean_field"] == comb(r["k"] + r["d"] - 1, r["d"] - 1)
        assert r["standard"] == float(r["d"] ** r["k"])
    # the separation of Remark 4.9: polynomial vs exponential
    big = [r for r in rows if r["d"] == 5 and r["k"] == cfg.table_kmax][0]
    assert big["mean_field"] < 1e-6 * big["standard"]


# ---------------------------------------------------------------------------
# the run directory
# ---------------------------------------------------------------------------


def tiny_config(seed: int = 0) -> TheoryConfig:
    ks = (1, 2, 4, 8, 12)
    return quick_config(seed).replace(
        gap_games=(GapGame("w", "warehouse", {"n": 24, "zones": 2}, ks, ((2, 12),)),
                   GapGame("r4", "random", {**theory.RANDOM_PARAMS, "n": 24, "seed": 4}, ks,
                           ((2, 12),), family="random"),
                   GapGame("r5", "random", {**theory.RANDOM_PARAMS, "n": 24, "seed": 5}, ks,
                           ((2, 12),), family="random")),
        cost_glearn_ns=(5, 50), cost_exact_ns=(3, 5), table_kmax=5, cost_repeats=1)


def test_quick_theory_end_to_end(tmp_path):
    """`altmarl theory --quick` writes a complete run directory whose numbers are
    consistent with the exact solver."""
    from typer.testing import CliRunner

    from altmarl.cli import app

    out = tmp_path / "theory"
    res = CliRunner().invoke(app, ["theory", "--quick", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "slope" in res.output and "gap(k): k=1:" in res.output
    for name in ("config.json", "summary.json", "gap_vs_k.csv", "table_size.csv",
                 "cost_vs_n.csv", "gap_vs_k.png", "scaled_gaps.png", "family_random.png",
                 "table_size.png", "cost_vs_n.png", "games/00.json"):
        assert (out / name).exists(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] and json.loads((out / "config.json").read_text())["quick"]
    spec = quick_config().gap_games[0]
    rows = [r for r in read_csv_rows(out / "gap_vs_k.csv") if r["game"] == spec.label]
    assert [r["k"] for r in rows] == list(spec.ks)
    for r in rows:
        assert r["gap_sup"] >= r["gap_init"] >= 0 and r["opt_value"] >= r["value"] - 1e-9
    e = summary["gap_vs_k"][spec.label]
    assert e["optimum_depends_on_N"] and e["exact_solver_states"] == 402
    fit = e["fits"]["gap_sup"][0]
    assert fit["k_lo"] == 8 and fit["slope"] < 0 and fit["slope_ci"][0] < fit["slope"]
    # one row re-checked against an independent exact evaluation
    game = am.envs.make(spec.env, **spec.params)
    pi_l = am.LocalPolicy.uniform(game)
    r4 = [r for r in rows if r["k"] == 4][0]
    ex = ExactSolver(game, 4)
    pi4 = g_learn(game, pi_l, k=4, m=None, seed=0)
    assert ex.value(pi4, pi_l) == pytest.approx(r4["value"], abs=1e-9)
    v_star = ex.full_info_best_response(pi_l).values
    assert r4["gap_sup"] == pytest.approx((v_star - ex.values(pi4, pi_l)).max(), abs=1e-9)
    fam = summary["families"]["random"]
    assert fam["games"] == 2 and fam["optimum_ignores_N"] == ["random(seed=4, n=200)"]
    # cost table: G-LEARN sample count does not depend on n
    cost = read_csv_rows(out / "cost_vs_n.csv")
    assert len({r["samples"] for r in cost if r["method"] == "g_learn"}) == 1


def untimed(obj):
    """``obj`` without its timings (keys ending in ``seconds``)."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not k.endswith("seconds")}
    return [untimed(v) for v in obj] if isinstance(obj, list) else obj


def test_run_theory_resumes_heals_and_refuses_another_config(tmp_path, monkeypatch):
    cfg = tiny_config(seed=3)
    first = run_theory(tmp_path, config=cfg, progress=False, plots=False)
    assert first["seed"] == 3 and first["games_resumed"] == 0
    fam = first["families"]["random"]
    assert fam["optimum_ignores_N"] == ["r4"] and fam["optimum_depends_on_N"] == ["r5"]
    assert fam["zero_from_k"] == {"r4": 1}
    # resume: nothing is recomputed, the numbers are the same
    calls = []
    real = theory.exact_gap_curve
    monkeypatch.setattr(theory, "exact_gap_curve",
                        lambda *a, **kw: calls.append(kw["label"]) or real(*a, **kw))
    again = run_theory(tmp_path, config=cfg, progress=False, plots=False)
    assert calls == [] and again["games_resumed"] == 3
    assert again["gap_vs_k"] == first["gap_vs_k"]
    assert again["cost_vs_n"] == first["cost_vs_n"]
    # a damaged game file is recomputed, to the same numbers
    (tmp_path / "games" / "01.json").write_text("{not json")
    healed = run_theory(tmp_path, config=cfg, progress=False, plots=False)
    assert calls == ["r4"] and untimed(healed["gap_vs_k"]) == untimed(first["gap_vs_k"])
    # another configuration is refused before any work
    with pytest.raises(ValueError, match="another configuration"):
        run_theory(tmp_path, config=cfg.replace(seed=4), progress=False, plots=False)


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def test_theory_config_is_frozen_and_validated():
    cfg = quick_config(seed=2)
    assert isinstance(cfg, TheoryConfig) and cfg.seed == 2 and cfg.max_states == 6000
    with pytest.raises(ValueError):
        cfg.seed = 3  # type: ignore[misc]
    full = full_config()
    assert full.gap_games[0].params["n"] == 2000
    assert max(full.gap_games[0].ks) <= full.gap_games[0].params["n"] / 4
    assert sum(g.family == "random" for g in full.gap_games) == 16
    # the JSON form written to config.json loads back to the same configuration
    again = parse_theory_config(json.loads(json.dumps(cfg.model_dump())))
    assert again == cfg and isinstance(again.gap_games[0], GapGame)
    assert again.gap_games[0].windows == ((8, 50),)
    assert cfg.replace(table_kmax=7).table_kmax == 7


def test_theory_config_errors_name_dotted_keys():
    data = quick_config().model_dump()
    data["gap_games"][0]["ks"] = [1, 0]
    data["gap_games"][0]["windows"] = [[50, 8]]
    data["cost_k"] = "2"
    data["table_sedes"] = [0]
    with pytest.raises(ValueError) as info:
        parse_theory_config(data, source="my.json")
    msg = str(info.value)
    assert msg.startswith("invalid theory configuration:")
    assert "my.json: gap_games.0.ks.1: Input should be greater than or equal to 1" in msg
    assert "my.json: gap_games.0.windows:" in msg and "k_lo < k_hi" in msg
    assert "my.json: cost_k: Input should be a valid integer (got '2')" in msg
    assert "my.json: table_sedes: unknown key" in msg
    with pytest.raises(ValueError, match="seed"):
        quick_config(seed=-1)
    with pytest.raises(ValueError, match="expected a table"):
        parse_theory_config([1, 2])


def test_cli_reports_config_errors():
    from typer.testing import CliRunner

    from altmarl.cli import app

    res = CliRunner().invoke(app, ["theory", "--quick", "--seed", "-1", "--no-progress"])
    assert res.exit_code != 0 and "seed" in res.output
