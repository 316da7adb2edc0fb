"""record_logs: logs of the n-agent system under a behaviour policy (Appendix E), on the
count simulator's step."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am
from altmarl import offpolicy as op
from altmarl.glearn import rewards as sto

from .helpers import ENV


def test_record_logs_shapes_and_chaining(game, small_log) -> None:
    ds = small_log
    assert len(ds) == 60 and ds.k == 3 and ds.n == 3 and ds.gamma == 0.8
    assert (ds.h.sum(axis=1) == 3).all() and (ds.h_next.sum(axis=1) == 3).all()
    # the next state of step t is the state of step t + 1 (h' is the next row's fresh sample)
    same_ep = ds.episode[1:] == ds.episode[:-1]
    assert np.array_equal(ds.s_g_next[:-1][same_ep], ds.s_g[1:][same_ep])
    assert np.array_equal(ds.h_next[:-1][same_ep], ds.h[1:][same_ep])
    assert np.array_equal(ds.t, np.tile(np.arange(10), 6))
    again = op.record_logs(game, 3, episodes=6, horizon=10, seed=0)
    assert np.array_equal(again.r, ds.r) and np.array_equal(again.h, ds.h)


def test_observed_reward_uses_the_sampled_agents_actions() -> None:
    """With a deterministic pi_l the sampled agents' actions are known from h: the logged
    reward must be r_g + (1/k) sum_x h[x] r_l(x, s_g, pi(x, s_g)) exactly (n > k)."""
    g = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=3, n=40, seed=5)
    acts = np.array([[0, 2], [1, 1], [2, 0]])
    pi_l = am.LocalPolicy.deterministic(g, acts)
    ds = op.record_logs(g, 4, episodes=5, horizon=20, pi_l=pi_l, seed=1)
    rl = g.r_l[np.arange(3)[None, :], ds.s_g[:, None], acts[np.arange(3)[None, :], ds.s_g[:, None]]]
    expected = g.r_g[ds.s_g, ds.a_g] + (ds.h * rl).sum(axis=1) / 4
    assert np.allclose(ds.r, expected, atol=1e-12)


def test_observed_reward_is_unbiased_for_r_k() -> None:
    """Stochastic pi_l, n > k: E[r | s_g, h, a_g] = r_k(s_g, h, a_g) (SPEC 4)."""
    g = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=3, n=50, seed=6)
    pi_l = am.LocalPolicy.uniform(g)
    ds = op.record_logs(g, 3, episodes=128, horizon=40, pi_l=pi_l, seed=2)
    rbar = g.local_reward(pi_l.table)  # (S_l, S_g)
    r_k = g.r_g[ds.s_g, ds.a_g] + (ds.h * rbar[:, ds.s_g].T).sum(axis=1) / 3
    resid = ds.r - r_k
    assert abs(resid.mean()) < 4 * resid.std() / np.sqrt(resid.size)
    assert resid.std() > 0  # the actions are random, so the reward is too


def test_epsilon_greedy_behaviour(game, reference) -> None:
    ds = op.record_logs(game, 3, episodes=20, horizon=50, behaviour="epsilon-greedy",
                        pi_g=reference, epsilon=0.3, seed=3)
    agree = (ds.a_g == reference.act(ds.s_g, ds.h)).mean()
    assert abs(agree - (0.7 + 0.3 / 3)) < 0.03
    assert ds.info["behaviour"] == {"kind": "epsilon-greedy", "epsilon": 0.3,
                                    "policy": ds.info["behaviour"]["policy"]}
    with pytest.raises(ValueError, match="Assumption E.1"):
        op.record_logs(game, 3, 2, 2, behaviour="epsilon-greedy", pi_g=reference, epsilon=0.0)
    with pytest.raises(ValueError, match="needs a GlobalPolicy"):
        op.record_logs(game, 3, 2, 2, behaviour="epsilon-greedy")
    with pytest.raises(ValueError, match="logged k"):
        op.record_logs(game, 2, 2, 2, behaviour="epsilon-greedy", pi_g=reference)
    with pytest.raises(ValueError, match="behaviour"):
        op.record_logs(game, 3, 2, 2, behaviour="greedy")
    other = am.envs.make("random", **{**ENV, "n_sl": 2})
    with pytest.raises(ValueError, match=r"pi_g: made for \|S_g\|=2, \|S_l\|=3"):
        op.record_logs(other, 3, 2, 2, behaviour="epsilon-greedy", pi_g=reference)
    with pytest.raises(ValueError, match=r"pi_l.table: expected shape"):
        op.record_logs(other, 3, 2, 2, pi_l=am.LocalPolicy.uniform(game))
    with pytest.raises(ValueError, match="game: expected an altmarl.TabularGame, got dict"):
        op.record_logs(game.spaces, 3, 2, 2)  # type: ignore[arg-type]


def test_record_with_a_reward_model(game) -> None:
    model = sto.RewardModel.from_game(game, noise_l=sto.uniform(0.3))
    ds = op.record_logs(game, 3, episodes=4, horizon=30, reward_model=model, seed=4)
    det = op.record_logs(game, 3, episodes=4, horizon=30, seed=4)
    assert ds.info["reward"]["kind"] == "stochastic"
    assert not np.allclose(ds.r, det.r)
    lo = model.bounds_g[0] + model.bounds_l[0]
    hi = model.bounds_g[1] + model.bounds_l[1]
    assert ds.r.min() >= lo and ds.r.max() <= hi


def test_tracked_next_histogram_targets_q_hat_for_n_above_k() -> None:
    """n > k: with h' = the same k agents after the step, the logged transition is the
    surrogate's, so the log's fixed point is Q_hat; with a fresh h' it is another one."""
    g = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=12, gamma=0.8, seed=3,
                     concentration=0.3)
    pi_l = am.LocalPolicy.uniform(g)
    ref = am.g_learn(g, pi_l, 1, m=None, tol=1e-12)
    assert ref.q is not None
    errs = {}
    for nh in ("tracked", "fresh"):
        for episodes in (40, 400):
            ds = op.record_logs(g, 1, episodes=episodes, horizon=50, seed=1, next_histogram=nh)
            assert ds.info["next_histogram"] == nh and (ds.h_next.sum(axis=1) == 1).all()
            pol = op.g_learn_offpolicy(g, ds, mode="synchronous")
            assert pol.q is not None
            errs[nh, episodes] = float(np.abs(pol.q - ref.q).max())
    assert errs["tracked", 400] < errs["tracked", 40] / 2 and errs["tracked", 400] < 0.01
    assert errs["fresh", 400] > 0.04  # a different fixed point: the bias does not vanish
    with pytest.raises(ValueError, match="next_histogram"):
        op.record_logs(g, 1, 2, 2, next_histogram="same")
