"""ALTERNATING-MARL and the UPDATE rule (SPEC 6, paper Algorithm 14).

Oracles: the exact n-agent chain (altmarl.exact.ExactSolver) on small random games.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import altmarl as am
from altmarl.alternating import AlternatingResult, StepRecord
from altmarl.evaluation import ValueEstimate
from altmarl.exact import ExactSolver
from altmarl.update import Decision, update_decision


def _game(seed: int, n: int = 5) -> am.TabularGame:
    return am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=3, n=n, gamma=0.9, seed=seed,
                        concentration=0.3)


def _exact_evaluator(ex: ExactSolver):
    return lambda pi_g, pi_l: ValueEstimate(ex.value(pi_g, pi_l), 0.0)


def _exact_direct_learner(ex: ExactSolver):
    """L-LEARN hook: the direct search on the exact objective (exact deterministic BR on
    these games, see tests/llearn/test_direct.py)."""

    def learn(game, pi_g, pi_l, seed):
        def vf(tables):
            return np.array([ex.value(pi_g, am.LocalPolicy(t)) for t in tables])

        return am.l_learn(game, pi_g, "direct", seed, pi_l=pi_l, estimate_value=False,
                          value_fn=vf)

    return learn


def _random_g_learner(game, pi_l, k, seed, pi_g):
    rng = np.random.default_rng(seed)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, am.num_histograms(k, game.n_sl)))
    return am.GlobalPolicy(k, acts, game.n_ag, info={"samples": 1}, game=game)


def _random_l_learner(game, pi_g, pi_l, seed):
    rng = np.random.default_rng(seed)
    return am.LocalPolicy(rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg)),
                          {"samples": 2})


def _check_update_bookkeeping(res: AlternatingResult) -> None:
    """Every decision follows update_decision; only accepted proposals change the policy;
    v_old is always the value of the current pair."""
    current = None
    for rec in res.history:
        if rec.decision == "initial":
            assert rec.player == "global" and rec.sweep == 1 and rec.accepted
            current = rec.v_new
            continue
        if current is None:  # pi_g0 given: the first v_old is the initial pair's value
            current = rec.v_old
        assert rec.v_old == pytest.approx(current, abs=1e-12)
        assert rec.decision == update_decision(rec.v_new, rec.v_old, rec.eta).value
        assert rec.accepted == (rec.decision == Decision.ACCEPT.value)
        if rec.accepted:
            assert rec.v_new - rec.v_old > 2 * rec.eta
            current = rec.v_new


# ---------------------------------------------------------------------------
# UPDATE: never accept a worse proposal
# ---------------------------------------------------------------------------


@given(seed=st.integers(0, 10_000))
def test_update_with_injected_random_proposals_exact_values(seed):
    """Random proposals for both players, exact values: every accepted proposal raises the
    exact potential V by more than 2 eta; rejected ones leave the pair unchanged."""
    game = _game(seed % 7, n=3)
    ex = ExactSolver(game, 2)
    res = am.alternating_marl(game, 2, seed=seed, sweeps=4, eta=0.01, progress=False,
                              g_learner=_random_g_learner, l_learner=_random_l_learner,
                              evaluator=_exact_evaluator(ex))
    _check_update_bookkeeping(res)
    accepted = [r.v_new for r in res.history if r.accepted]
    assert all(b > a + 0.02 for a, b in zip(accepted, accepted[1:], strict=False))
    assert ex.value(res.pi_g, res.pi_l) == pytest.approx(accepted[-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_update_never_accepts_worse_proposal_monte_carlo(seed):
    """Monte-Carlo values with the automatic eta: proposals that are exactly worse than the
    current pair (the worst constant global action; the worst deterministic local
    policy) are never accepted, and the run stops after that sweep with the pair kept."""
    game = _game(seed, n=4)
    ex = ExactSolver(game, 2)
    consts = [am.GlobalPolicy.constant(game, 2, a) for a in range(game.n_ag)]
    pi_l0 = am.LocalPolicy.uniform(game)
    vals = [ex.value(g, pi_l0) for g in consts]
    pi_g0, bad_g = consts[int(np.argmax(vals))], consts[int(np.argmin(vals))]
    assert max(vals) > min(vals)
    # worst deterministic local policy against pi_g0
    cols = np.array(np.unravel_index(np.arange(27), (3, 3, 3))).T
    worst, worst_v = pi_l0, np.inf
    for c0 in cols:
        for c1 in cols:
            pol = am.LocalPolicy.deterministic(game, np.stack([c0, c1], axis=1))
            v = ex.value(pi_g0, pol)
            if v < worst_v:
                worst, worst_v = pol, v
    assert worst_v < ex.value(pi_g0, pi_l0)
    res = am.alternating_marl(game, 2, seed=seed, sweeps=3, pi_g0=pi_g0, pi_l0=pi_l0,
                              progress=False, g_learner=lambda *a: bad_g,
                              l_learner=lambda *a: worst)
    _check_update_bookkeeping(res)
    assert [r.accepted for r in res.history] == [False, False]
    assert all(r.v_new < r.v_old for r in res.history)
    assert res.converged and res.sweeps == 1
    assert res.pi_g is pi_g0 and res.pi_l is pi_l0


def test_identical_proposal_is_no_improvement():
    game = _game(1, n=4)
    pi_g0 = am.GlobalPolicy.constant(game, 2, 1)
    pi_l0 = am.LocalPolicy.uniform(game)
    res = am.alternating_marl(game, 2, seed=0, sweeps=2, pi_g0=pi_g0, pi_l0=pi_l0,
                              progress=False, eval_rollouts=20, eval_horizon=40,
                              g_learner=lambda *a: pi_g0, l_learner=lambda *a: pi_l0)
    assert [r.decision for r in res.history] == ["no-improvement"] * 2
    assert all(r.se_diff == 0.0 and r.v_new == r.v_old for r in res.history)
    tail = res.config["truncation_tail"]
    assert tail > 0 and res.history[0].eta == pytest.approx(res.config["learner_tol"] + tail / 2)
    assert res.converged and res.tolerance == pytest.approx(2 * res.history[0].eta + tail)


# ---------------------------------------------------------------------------
# convergence to an approximate Nash equilibrium (exact oracle)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("env,seed", [("random", 0), ("random", 3), ("warehouse", 0)])
def test_ends_at_exact_nash_gap_within_reported_tolerance(env, seed):
    """Default Monte-Carlo UPDATE (200 rollouts x 100 steps, automatic eta). With k = n
    and m = None, G-LEARN is the exact (full-information) best response up to its VI
    tolerance; the direct L-LEARN is within 1% of r_max / (1 - gamma) of the exact local
    best response (tests/llearn/test_direct.py). So at convergence the exact gaps must satisfy
    gap <= tolerance (= max over players of 2 eta + z se_diff) + learner error.
    (random 0: gap_g = 0.043 <= 0.089; random 3: 0.0008 <= 0.034.)"""
    if env == "random":
        game, n = _game(seed, n=5), 5
    else:
        game, n = am.envs.make("warehouse", n=4, zones=3), 4
    ex = ExactSolver(game, n, max_local_policies=20_000)  # 3^9 local policies: enumerate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = am.alternating_marl(game, n, seed=seed, m=None, progress=False)
    assert res.converged and res.tolerance is not None
    gap = ex.nash_gap(res.pi_g, res.pi_l, refine_local=False)
    assert "lower bound" not in gap.br_l.method  # exact over deterministic policies
    g_err = 1e-4
    l_err = 0.01 * game.r_max / (1 - game.gamma)
    assert gap.gap_g_full <= res.tolerance + g_err
    assert gap.gap_l <= res.tolerance + l_err
    _check_update_bookkeeping(res)


@pytest.mark.parametrize("seed", [0, 3])
def test_exact_values_reach_exact_equilibrium(seed):
    """Exact evaluator + exact learners (G-LEARN with k = n, m = None; direct search on
    the exact objective): the final pair is an exact NE over deterministic deviations, up
    to the numerical tolerance eta (learner_tol)."""
    game = _game(seed, n=5)
    ex = ExactSolver(game, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = am.alternating_marl(game, 5, seed=seed, m=None, progress=False,
                                  evaluator=_exact_evaluator(ex),
                                  l_learner=_exact_direct_learner(ex))
    assert res.converged
    assert isinstance(res.value, ValueEstimate)
    assert res.value.mean == pytest.approx(ex.value(res.pi_g, res.pi_l))
    gap = ex.nash_gap(res.pi_g, res.pi_l, refine_local=False)
    assert res.tolerance is not None and res.tolerance < 1e-4
    assert gap.gap_g_full <= res.tolerance + 1e-5
    assert gap.gap_l <= res.tolerance + 1e-9
    _check_update_bookkeeping(res)


# ---------------------------------------------------------------------------
# history, result object, reproducibility, options
# ---------------------------------------------------------------------------


def test_history_is_complete_and_serializable(tiny_game):
    res = am.alternating_marl(tiny_game, 2, seed=1, sweeps=3, progress=False,
                              local_solver="induced-vi", eval_rollouts=30, eval_horizon=50)
    assert isinstance(res, AlternatingResult)
    assert len(res.history) == 2 * res.sweeps
    for i, rec in enumerate(res.history):
        assert isinstance(rec, StepRecord)
        assert rec.sweep == i // 2 + 1
        assert rec.player == ("global", "local")[i % 2]
        assert rec.learn_time >= 0 and rec.eval_time >= 0 and rec.wall_time >= rec.learn_time
        assert rec.samples > 0
        assert rec.eval_samples in (30 * 50, 2 * 30 * 50)
        assert np.isfinite(rec.v_new) and rec.se_new >= 0
        if i > 0:
            assert rec.v_old is not None and rec.eta is not None and rec.se_diff is not None
    assert res.history[0].decision == "initial"
    if res.converged:
        assert not any(r.accepted for r in res.history if r.sweep == res.sweeps)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["sweeps"] == res.sweeps and len(d["history"]) == len(res.history)
    assert d["config"]["k"] == 2 and d["value"]["mean"] == res.value.mean
    assert isinstance(res.value, am.Evaluation) and res.value.rollouts == 30
    assert "AlternatingResult" in repr(res)


def test_reproducible_and_independent_of_workers(tiny_game):
    kw = dict(sweeps=2, progress=False, eval_rollouts=20, eval_horizon=40,
              l_options={"rollouts": 16, "horizon": 30})
    a = am.alternating_marl(tiny_game, 2, seed=7, workers=1, **kw)
    b = am.alternating_marl(tiny_game, 2, seed=7, workers=2, **kw)
    np.testing.assert_array_equal(a.pi_g.actions, b.pi_g.actions)
    np.testing.assert_array_equal(a.pi_l.table, b.pi_l.table)
    assert [r.v_new for r in a.history] == [r.v_new for r in b.history]
    assert a.value.mean == b.value.mean
    c = am.alternating_marl(tiny_game, 2, seed=8, workers=1, **kw)
    assert c.config["eval_seed"] != a.config["eval_seed"]


@pytest.mark.parametrize("workers,g_options,expected", [
    (1, None, 1), (2, None, 2), (1, {"threads": 2}, 2), (None, None, "default")])
def test_workers_reach_g_learn(tiny_game, monkeypatch, workers, g_options, expected):
    """``workers`` is G-LEARN's thread count too, unless ``g_options`` sets ``threads``;
    without either, G-LEARN keeps its own default (``threads=None``)."""
    import altmarl.glearn as glearn_pkg

    real = glearn_pkg.g_learn
    seen: list[object] = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("threads", "default"))
        return real(*args, **kwargs)

    monkeypatch.setattr(glearn_pkg, "g_learn", spy)
    am.alternating_marl(tiny_game, 2, seed=1, sweeps=2, progress=False, eval_rollouts=10,
                        eval_horizon=20, workers=workers, g_options=g_options,
                        l_options={"rollouts": 8, "horizon": 10})
    assert seen and set(seen) == {expected}


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers_is_refused_by_name(tiny_game, workers):
    with pytest.raises(ValueError, match="workers"):
        am.alternating_marl(tiny_game, 2, seed=1, sweeps=1, progress=False, workers=workers)


def test_learner_seeds_differ_per_proposal(tiny_game):
    seen: list[tuple[str, int]] = []

    def g_learner(game, pi_l, k, seed, pi_g):
        seen.append(("g", seed))
        return am.GlobalPolicy.constant(game, k, len(seen) % 2)

    def l_learner(game, pi_g, pi_l, seed):
        seen.append(("l", seed))
        return pi_l

    am.alternating_marl(tiny_game, 2, seed=3, sweeps=3, eta=0.0, progress=False,
                        g_learner=g_learner, l_learner=l_learner, eval_rollouts=10,
                        eval_horizon=20)
    seeds = [s for _, s in seen]
    assert len(set(seeds)) == len(seeds)
    seen_again: list[tuple[str, int]] = []
    seen, first = seen_again, seen
    am.alternating_marl(tiny_game, 2, seed=3, sweeps=1, eta=0.0, progress=False,
                        g_learner=g_learner, l_learner=l_learner, eval_rollouts=10,
                        eval_horizon=20)
    assert seen_again == first[:2]  # seeds do not depend on the number of sweeps


def test_callback_stops_and_sweep_limit(tiny_game):
    records: list[StepRecord] = []

    def cb(rec):
        records.append(rec)
        return len(records) >= 3

    res = am.alternating_marl(tiny_game, 2, seed=0, sweeps=5, eta=0.0, progress=False,
                              callback=cb, g_learner=_random_g_learner,
                              l_learner=_random_l_learner, eval_rollouts=10,
                              eval_horizon=20)
    assert len(res.history) == 3 and records == res.history
    assert not res.converged and res.tolerance is None
    res = am.alternating_marl(tiny_game, 2, seed=0, sweeps=1, progress=False,
                              g_learner=_random_g_learner, l_learner=_random_l_learner,
                              eval_rollouts=10, eval_horizon=20)
    assert res.sweeps == 1 and len(res.history) == 2


def test_progress_bar_runs(tiny_game, capsys):
    res = am.alternating_marl(tiny_game, 2, seed=0, sweeps=1, progress=True,
                              local_solver="induced-vi", eval_rollouts=10, eval_horizon=20)
    assert len(res.history) == 2


def test_validation(tiny_game):
    with pytest.raises(ValueError, match="k"):
        am.alternating_marl(tiny_game, 0, progress=False)
    with pytest.raises(ValueError, match="sweeps"):
        am.alternating_marl(tiny_game, 2, sweeps=0, progress=False)
    with pytest.raises(ValueError, match="eta"):
        am.alternating_marl(tiny_game, 2, eta=-1.0, progress=False)
    with pytest.raises(ValueError, match="local_solver"):
        am.alternating_marl(tiny_game, 2, local_solver="ppo", progress=False)
    with pytest.raises(ValueError, match="eval_rollouts"):
        am.alternating_marl(tiny_game, 2, eval_rollouts=0, progress=False)
    with pytest.raises(ValueError, match="pi_g0"):
        am.alternating_marl(tiny_game, 2, pi_g0=am.GlobalPolicy.constant(tiny_game, 1),
                            progress=False)
    with pytest.raises(ValueError, match="g_learner"):
        am.alternating_marl(tiny_game, 2, progress=False, g_learner=lambda *a: "nope")


@pytest.mark.slow
def test_warehouse_direct_at_least_as_good_as_induced_vi(warehouse):
    """k = 5 on the warehouse (n = 1000): our default (direct L-LEARN) ends at a joint
    policy at least as good as induced-VI-only alternation, same evaluator and seeds."""
    ours = am.alternating_marl(warehouse, 5, seed=0, progress=False)
    ivi = am.alternating_marl(warehouse, 5, seed=0, progress=False, local_solver="induced-vi")
    a = am.evaluate(warehouse, ours.pi_g, ours.pi_l, 200, 100, seed=12345)
    b = am.evaluate(warehouse, ivi.pi_g, ivi.pi_l, 200, 100, seed=12345)
    assert a.mean >= b.mean


def test_options_object_is_the_keyword_layer(tiny_game):
    """alternating_marl(**keywords) == run_tabular(AlternatingOptions(**keywords)); the
    options are validated once and frozen."""
    from dataclasses import FrozenInstanceError

    from altmarl.alternating import AlternatingOptions, run_tabular

    kw = dict(sweeps=2, eval_rollouts=20, eval_horizon=30, local_solver="induced-vi",
              confidence=0.9)
    a = am.alternating_marl(tiny_game, 2, seed=5, progress=False, **kw)
    opts = AlternatingOptions(**kw)
    b = run_tabular(tiny_game, 2, opts, seed=5, progress=False)
    assert [r.to_dict()["v_new"] for r in a.history] == [r.to_dict()["v_new"] for r in b.history]
    assert a.value.mean == b.value.mean and a.config == b.config
    np.testing.assert_array_equal(a.pi_l.table, b.pi_l.table)
    with pytest.raises(FrozenInstanceError):
        opts.sweeps = 3  # type: ignore[misc]
    assert opts.to_dict()["local_solver"] == "induced-vi" and opts.g_options == {}
    assert AlternatingOptions(sweeps=np.int64(3), eta=0).eta == 0.0
    for bad, match in (({"sweeps": True}, "sweeps"), ({"m": 0}, "m"),
                       ({"confidence": 1.0}, "confidence"), ({"learner_tol": -1.0}, "learner_tol"),
                       ({"eta": float("inf")}, "eta"), ({"l_options": [1]}, "l_options")):
        with pytest.raises(ValueError, match=match):
            AlternatingOptions(**bad)
    with pytest.raises(ValueError, match="options"):
        run_tabular(tiny_game, 2, kw)  # type: ignore[arg-type]


def test_last_proposals_are_the_unplayed_deviations():
    """AlternatingResult.last_proposals: each player's last proposal unless it is played at
    the end (the deviations the run directories' Nash-gap certificate evaluates)."""
    game = _game(1, n=4)
    pi_g0 = am.GlobalPolicy.constant(game, 2, 1)
    pi_l0 = am.LocalPolicy.uniform(game)
    same = am.alternating_marl(game, 2, seed=0, sweeps=2, pi_g0=pi_g0, pi_l0=pi_l0,
                               progress=False, eval_rollouts=20, eval_horizon=40,
                               g_learner=lambda *a: pi_g0, l_learner=lambda *a: pi_l0)
    assert same.last_proposals == {}
    seen = {}

    def g_learn(game, pi_l, k, seed, pi_g):
        seen["global"] = _random_g_learner(game, pi_l, k, seed, pi_g)
        return seen["global"]

    def l_learn(game, pi_g, pi_l, seed):
        seen["local"] = _random_l_learner(game, pi_g, pi_l, seed)
        return seen["local"]

    res = am.alternating_marl(game, 2, seed=0, sweeps=3, progress=False, eval_rollouts=20,
                              eval_horizon=40, g_learner=g_learn, l_learner=l_learn)
    for player, played in (("global", res.pi_g), ("local", res.pi_l)):
        if seen[player] is played:
            assert player not in res.last_proposals
        else:
            assert res.last_proposals[player] is seen[player]
