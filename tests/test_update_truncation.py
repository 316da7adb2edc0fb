"""UPDATE and the truncated evaluation horizon (SPEC 13, issue 16) on delay games with
exact values: one policy collects a small reward now, the other invests (a small cost per
step) for a large reward from about step 70 on. With a horizon that cuts the investment's
pay-off, the truncated estimates prefer the worse policy; UPDATE must still never accept
it, and the certified ``tolerance`` must bound the true (infinite-horizon) gap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.update import EtaRule, compare, evaluation_horizon, truncation_bias

CASH, INVEST = 0, 1
D, P_ADVANCE = 60, 0.86         # 60 investing steps, each taken w.p. 0.86: pay-off at ~71
C, B, COST = 1.0, 42.0, -0.01   # cash stream, pay-off stream, cost per investing step
GAMMA = 0.95


def _delay_chain() -> tuple[np.ndarray, np.ndarray]:
    """Kernel ``(S, 2, S)`` and reward ``(S, 2)`` of the delay chain: state 0 chooses,
    ``1..D`` invest (advance w.p. ``P_ADVANCE``), ``D + 1`` pays ``B``, ``D + 2`` pays ``C``."""
    S = D + 3
    pay, cash = D + 1, D + 2
    P = np.zeros((S, 2, S))
    r = np.zeros((S, 2))
    P[0, CASH, cash] = 1.0
    P[0, INVEST, 1] = 1.0
    r[0, CASH] = C
    for s in range(1, D + 1):
        nxt = s + 1 if s < D else pay
        P[s, :, nxt] = P_ADVANCE
        P[s, :, s] += 1 - P_ADVANCE
        r[s, :] = COST
    P[pay, :, pay] = 1.0
    r[pay, :] = B
    P[cash, :, cash] = 1.0
    r[cash, :] = C
    return P, r


def _start(n: int) -> np.ndarray:
    rho = np.zeros(n)
    rho[0] = 1.0
    return rho


def global_delay_game() -> am.TabularGame:
    """The global agent chooses (``|S_l| = |A_l| = 1``, ``n = 1``)."""
    P, r = _delay_chain()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # negative rewards (the investment's cost)
        return am.TabularGame(P, np.ones((1, P.shape[0], 1, 1)), r, np.zeros((1, P.shape[0], 1)),
                              GAMMA, 1, am.IIDInit(_start(P.shape[0]), np.ones(1)),
                              name="delay-global")


def local_delay_game() -> am.TabularGame:
    """The local agents choose (``|S_g| = |A_g| = 1``, ``n = 1``)."""
    P, r = _delay_chain()
    S = P.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return am.TabularGame(np.ones((1, 1, 1)), P[:, None, :, :], np.zeros((1, 1)),
                              r[:, None, :], GAMMA, 1, am.IIDInit(np.ones(1), _start(S)),
                              name="delay-local")


def _global(game: am.TabularGame, action: int) -> am.GlobalPolicy:
    return am.GlobalPolicy.constant(game, 1, action)


def _local(game: am.TabularGame, action: int) -> am.LocalPolicy:
    t = np.zeros((game.n_sl, game.n_sg, game.n_al))
    t[..., action] = 1.0
    return am.LocalPolicy(t)


def test_the_delay_game_fools_a_truncated_comparison() -> None:
    g = global_delay_game()
    ex = ExactSolver(g, k=1)
    u = am.LocalPolicy.uniform(g)
    v_cash, v_invest = ex.value(_global(g, CASH), u), ex.value(_global(g, INVEST), u)
    assert v_invest - v_cash == pytest.approx(2.42, abs=0.01)  # investing is truly better
    assert g.reward_bounds == (COST, B) and g.r_max == B  # r_max clips the cost at 0
    # ... but 100 steps cut most of its pay-off: the truncated estimates prefer cash
    e = [am.evaluate(g, _global(g, a), u, rollouts=200, horizon=100, seed=0) for a in (0, 1)]
    assert e[CASH].mean - e[INVEST].mean > 2.0
    # the comparison without the truncation bound accepts cash; with it, it does not
    no_tail = compare(e[CASH], e[INVEST], EtaRule(z=2.0, tail=0.0))
    assert no_tail.accepted
    tail = truncation_bias(GAMMA, 100, *g.reward_bounds)
    assert not compare(e[CASH], e[INVEST], EtaRule(z=2.0, tail=tail)).accepted


def _keep_local(game, pi_g, pi_l, seed):
    return pi_l


def _keep_global(game, pi_l, k, seed, pi_g):
    return pi_g


@pytest.mark.filterwarnings("ignore::altmarl.update.TruncationWarning")  # short on purpose
@pytest.mark.parametrize("player", ["global", "local"])
@pytest.mark.parametrize("horizon", [50, 100, None])
def test_update_never_accepts_the_truly_worse_proposal(player: str, horizon: int | None) -> None:
    """Played: invest (truly better); every proposal: cash (truly worse). With the bias bound
    in eta no horizon gets cash accepted; without it 50 and 100 steps would."""
    if player == "global":
        g = global_delay_game()
        kw = {"pi_g0": _global(g, INVEST), "pi_l0": am.LocalPolicy.uniform(g),
              "g_learner": lambda game, pi_l, k, seed, pi_g: _global(game, CASH),
              "l_learner": _keep_local}
        worse, better = (_global(g, CASH), kw["pi_l0"]), (kw["pi_g0"], kw["pi_l0"])
    else:
        g = local_delay_game()
        pg = _global(g, 0)
        kw = {"pi_g0": pg, "pi_l0": _local(g, INVEST), "g_learner": _keep_global,
              "l_learner": lambda game, pi_g, pi_l, seed: _local(game, CASH)}
    if player == "global":
        ex = ExactSolver(g, k=1)
        assert ex.value(*better) - ex.value(*worse) > 1.5
    else:  # n = 1, |S_g| = 1: the same chain as the global game (too many local states for
        # the exact chain's transform), so the same exact values
        gg = global_delay_game()
        ex = ExactSolver(gg, k=1)
        u = am.LocalPolicy.uniform(gg)
        assert ex.value(_global(gg, INVEST), u) - ex.value(_global(gg, CASH), u) > 1.5
    res = am.alternating_marl(g, k=1, seed=3, sweeps=2, eval_rollouts=64, eval_horizon=horizon,
                              progress=False, **kw)
    props = [rec for rec in res.history if rec.player == player]
    assert props and not any(rec.accepted for rec in props)
    H = res.config["eval_horizon"]
    assert H == (evaluation_horizon(GAMMA) if horizon is None else horizon)
    assert res.config["truncation_tail"] == pytest.approx(
        truncation_bias(GAMMA, H, *g.reward_bounds))
    if horizon is not None:  # the old rule (no tail) would have accepted cash
        c = props[0].comparison
        assert c is not None and c.diff > 2 * (c.eta - c.tail / 2)
    assert res.converged and res.tolerance is not None
    # the certified tolerance bounds the true gap of the final pair (here: 0, invest is the
    # best response, and in particular the cash proposal's true loss is not a "gain")
    assert res.tolerance >= 0.0


@pytest.mark.filterwarnings("ignore::altmarl.update.TruncationWarning")  # short on purpose
@pytest.mark.parametrize("horizon", [50, 100, None])
def test_the_tolerance_bounds_the_true_gap(horizon: int | None) -> None:
    """Played: cash; G-LEARN (exact, k = n = 1) proposes the true best response, invest.
    A short horizon hides its pay-off, so it is not accepted: the reported tolerance must
    still bound the true Nash gap (about 2). With the default horizon it is accepted."""
    g = global_delay_game()
    u = am.LocalPolicy.uniform(g)
    res = am.alternating_marl(g, k=1, seed=0, sweeps=3, m=None, eval_rollouts=100,
                              eval_horizon=horizon, pi_g0=_global(g, CASH), pi_l0=u,
                              l_learner=_keep_local, progress=False)
    ex = ExactSolver(g, k=1)
    gap = ex.nash_gap(res.pi_g, res.pi_l)
    assert gap.exact
    assert res.converged and res.tolerance is not None
    assert gap.nash_gap <= res.tolerance + 1e-6
    played_invest = int(res.pi_g.actions[0, 0]) == INVEST
    if horizon is None:
        assert played_invest and gap.nash_gap < 1e-9
    else:
        assert not played_invest and gap.nash_gap > 1.5  # the truncated run keeps cash ...
        # ... and says so: without the tail the certificate would be below the true gap
        last = [r for r in res.history if r.player == "global"][-1]
        assert last.comparison is not None
        assert 2 * (last.eta - last.comparison.tail / 2) + 1.96 * last.se_diff < gap.nash_gap


def test_reward_bounds_are_the_true_extremes() -> None:
    rng = np.random.default_rng(0)
    g = am.envs.make("random", n_sg=3, n_ag=2, n_sl=2, n_al=2, n=3, seed=1)
    lo, hi = g.reward_bounds
    # brute force over (s_g, a_g) and the population's mean local reward
    vals = [g.r_g[s, a] + g.r_l[:, s, :].reshape(-1)[rng.integers(0, 4, 3)].mean()
            for s in range(3) for a in range(2) for _ in range(50)]
    assert lo <= min(vals) and max(vals) <= hi
    ext = [g.r_g[s].max() + g.r_l[:, s, :].max() for s in range(3)]
    assert hi == pytest.approx(max(ext)) and hi <= g.r_max


@pytest.mark.filterwarnings("ignore::altmarl.update.TruncationWarning")  # short on purpose
def test_continuous_rule_carries_the_tail() -> None:
    from altmarl.continuous.alternating import ContinuousConfig, update_horizon, update_rule
    from altmarl.continuous.env import ContinuousWarehouse

    env = ContinuousWarehouse(n=10)
    assert env.r_min == pytest.approx(-0.25) and env.r_max == 15.0
    cfg = ContinuousConfig(n=10)
    assert update_horizon(cfg, env) == 180
    rule = update_rule(cfg, env)
    assert rule.tail == pytest.approx(0.95**180 * 15.25 / 0.05)
    short = update_rule(cfg.replace(update_horizon=20, eta=0.5), env)
    assert short.eta(0.0) == pytest.approx(0.5 + 0.95**20 * 15.25 / 0.05 / 2)


def test_a_short_horizon_warns_that_it_dominates_eta() -> None:
    """eval_horizon 40 at gamma 0.95 (gamma^H = 0.13) adds half a 13%-of-span bound to eta:
    a TruncationWarning names it; the default horizon (180) does not warn."""
    from altmarl.update import TruncationWarning, warn_short_horizon

    game = am.envs.make("warehouse", n=20)
    with pytest.warns(TruncationWarning, match="eval_horizon = 40 at gamma = 0.95"):
        am.alternating_marl(game, 2, sweeps=1, m=2, local_solver="induced-vi",
                            eval_rollouts=4, eval_horizon=40, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        warn_short_horizon(0.95, evaluation_horizon(0.95), 1.0)
        warn_short_horizon(0.9, 40, 1.0)  # gamma^H = 0.015: below the threshold
        warn_short_horizon(0.95, 5, 0.0)  # no tail (exact values): never a warning
    with pytest.warns(TruncationWarning):
        warn_short_horizon(0.95, 5, 1e-12)  # the same horizon with a tail does warn


def test_the_generative_rule_warns_too_and_exact_values_never_do() -> None:
    """The generative loop's rule warns on a short horizon as the tabular one does; with
    ``truncated=False`` (a custom evaluator: tail 0) neither warns."""
    from altmarl.alternating.generative import GenerativeOptions
    from altmarl.alternating.tabular import AlternatingOptions
    from altmarl.update import TruncationWarning

    game = am.envs.make("warehouse", n=20)
    gen = game.as_generative()
    with pytest.warns(TruncationWarning, match="eval_horizon = 30"):
        rule = GenerativeOptions(eval_horizon=30).rule(gen)
    assert rule.tail == pytest.approx(truncation_bias(gen.gamma, 30, *gen.reward_bounds))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        assert GenerativeOptions(eval_horizon=30).rule(gen, truncated=False).tail == 0.0
        assert AlternatingOptions(eval_horizon=30).rule(game, truncated=False).tail == 0.0
        GenerativeOptions().rule(gen)  # the default horizon


def test_the_continuous_rule_warns_on_a_short_horizon() -> None:
    from altmarl.continuous.alternating import ContinuousConfig, update_rule
    from altmarl.continuous.env import ContinuousWarehouse
    from altmarl.update import TruncationWarning

    env, cfg = ContinuousWarehouse(n=10), ContinuousConfig(n=10)
    with pytest.warns(TruncationWarning, match="eval_horizon = 20 at gamma = 0.95"):
        update_rule(cfg.replace(update_horizon=20), env)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        update_rule(cfg, env)


class _Stop(Exception):
    pass


def test_the_federated_experiments_pass_their_update_horizon(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """``FederatedExperiment.update_horizon`` reaches ALTERNATING-MARL's ``eval_horizon``
    (``None`` stays ``None``: the loop's default); ``DriftExperiment.update_horizon``
    reaches the generative loop (``None``: the episode, ``fed.horizon``)."""
    import altmarl.alternating.generative as gen_mod
    from altmarl.federated.drift_experiment import DriftExperiment, learn
    from altmarl.federated.experiment import FederatedExperiment, run_experiment

    seen: list[object] = []

    def fake_marl(*args: object, **kw: object) -> None:
        seen.append(kw["eval_horizon"])
        raise _Stop

    monkeypatch.setattr(am, "alternating_marl", fake_marl)
    for h in (None, 77):
        with pytest.raises(_Stop):
            run_experiment(tmp_path / f"fed{h}", FederatedExperiment.quick().replace(
                update_horizon=h), progress=False)
    assert seen == [None, 77]

    def fake_run(game: object, k: int, opts: object, **kw: object) -> None:
        seen.append(opts.eval_horizon)  # type: ignore[attr-defined]
        raise _Stop

    monkeypatch.setattr(gen_mod, "run_generative", fake_run)
    seen.clear()
    quick = DriftExperiment.quick().replace(local_start="uniform")
    for exp in (quick, quick.replace(update_horizon=None), quick.replace(update_horizon=9)):
        with pytest.raises(_Stop):
            learn(exp, None, None, 1)  # type: ignore[arg-type]
    assert seen == [40, quick.fed.horizon, 9]
