"""The continuous warehouse of SPEC 8.2 as a generative game (``am.envs.make(
"continuous-warehouse")``): same law as ``altmarl.continuous``, evaluable by ``am.evaluate``,
run by the general ALTERNATING-MARL code."""

from __future__ import annotations

import math

import numpy as np
import pytest

import altmarl as am
from altmarl.continuous.env import ContinuousWarehouse, mode_global, random_local, simulate
from altmarl.generative import FunctionGlobalPolicy, Histogram, UniformLocalPolicy


def test_the_game_and_its_five_bins():
    cw = am.envs.make("continuous-warehouse", n=50)
    assert "continuous-warehouse" in am.envs.names()
    assert isinstance(cw, am.GenerativeGame) and cw.n == 50 and cw.gamma == 0.95
    assert (cw.n_ag, cw.n_al, cw.n_sg, cw.n_sl) == (5, 3, None, None)
    assert cw.global_shape == () and cw.local_shape == () and cw.obs_dim == 5
    env = ContinuousWarehouse(n=50)
    assert isinstance(cw.observe, Histogram)
    assert np.allclose(cw.observe.edges, [-1.2, -0.4, 0.4, 1.2])
    # the observer's bins are the environment's (edges themselves included)
    x = np.concatenate([env.bin_edges, np.linspace(-2, 2, 41),
                        np.random.default_rng(0).uniform(-2, 2, 200)])[None, :]
    assert np.array_equal(cw.observe(x), env.bin_counts(x))
    assert cw.meta["env"] == env.to_json() and cw.r_max == env.r_max
    assert am.envs.make("continuous-warehouse", n=50, gamma=0.9).gamma == 0.9
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['gama'\]"):
        am.envs.make("continuous-warehouse", gama=0.9)


def test_same_law_as_the_continuous_simulator():
    """The mode dispatcher with uniform robots: the per-agent simulator of the generative
    game and the continuous extension's own simulator agree within Monte-Carlo error."""
    cw = am.envs.make("continuous-warehouse", n=60)
    env = ContinuousWarehouse(n=60)
    mode = FunctionGlobalPolicy(5, lambda s_g, h: h.argmax(axis=1), "sample mode")
    ev = am.evaluate(cw, mode, UniformLocalPolicy(3), rollouts=400, horizon=40, seed=0)
    tr = simulate(env, mode_global(), random_local(3), 5, 400, 40, 1)
    r = tr.discounted_returns(env.gamma)
    z = (ev.mean - r.mean()) / math.hypot(ev.stderr, r.std(ddof=1) / math.sqrt(r.size))
    assert abs(z) < 4, (ev, r.mean())
    # the reward per step agrees too, step by step on average
    assert np.abs(ev.reward_per_step - tr.rewards.mean(axis=0)).mean() < 0.5
    # records per SPEC 8.2 bin: occupancy, and how often a_g is the population mode
    assert ev.occupancy.shape == (40, 5) and np.allclose(ev.occupancy.sum(axis=1), 1.0)
    assert np.abs(ev.occupancy - (tr.counts / 60).mean(axis=0)).max() < 0.1
    assert ev.mode_match is not None
    assert abs(ev.mode_match_rate - tr.mode_match.mean()) < 0.05
    assert cw.bin_of_global(np.array([-2.0, -1.2, 0.0, 1.9])).tolist() == [0, 1, 2, 4]


@pytest.mark.filterwarnings("ignore")
def test_run_continuous_networks_act_on_the_generative_game():
    pytest.importorskip("torch")
    from altmarl.continuous import ContinuousConfig, run_continuous

    cfg = ContinuousConfig(n=60, alternations=2, patience=2, ce_samples=200, ce_epochs=2,
                           rollout_epochs=5, trpo_rollouts=4, trpo_horizon=10,
                           update_rollouts=4, update_horizon=20, eval_rollouts=5,
                           eval_horizon=20)
    res = run_continuous(k=3, seed=0, config=cfg)
    cw = am.envs.make("continuous-warehouse", n=60)
    ga, la = res.global_agent, res.local_agent
    ev = am.evaluate(cw, ga, la, rollouts=300, horizon=40, seed=2)
    tr = simulate(res.env, ga.actor(), la.actor(True, exact=True), 3, 300, 40,
                  np.random.SeedSequence(5))
    r = tr.discounted_returns(res.env.gamma)
    z = (ev.mean - r.mean()) / math.hypot(ev.stderr, r.std(ddof=1) / math.sqrt(r.size))
    assert abs(z) < 4
    # LocalAgent.act is its greedy network: no random draws
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    a = la.act(np.array([[-1.0, 0.0, 1.5]]), np.array([0.3]), rng)
    assert a.shape == (1, 3) and a.dtype == np.int64 and rng.bit_generator.state == state


def test_alternating_marl_runs_on_the_continuous_warehouse():
    pytest.importorskip("torch")
    from altmarl.generative.neural import NeuralGlobalPolicy
    from altmarl.generative.neural_local import NeuralLocalPolicy

    cw = am.envs.make("continuous-warehouse", n=40)
    res = am.alternating_marl(
        cw, 3, seed=0, sweeps=1, eval_rollouts=16, eval_horizon=30, m=3, progress=False,
        g_options={"states": 200, "iterations": 5, "hidden": 16},
        l_options={"iterations": 2, "rollouts": 2, "horizon": 20, "tracked": 10,
                   "hidden": 16})
    assert isinstance(res.pi_g, NeuralGlobalPolicy) and isinstance(res.pi_l, NeuralLocalPolicy)
    assert res.pi_g.features.obs_dim == 5 and res.pi_l.features.dim == 2
    assert [h.player for h in res.history] == ["global", "local"]
    assert np.isfinite(res.value.mean) and res.config["game"] == "continuous-warehouse"
