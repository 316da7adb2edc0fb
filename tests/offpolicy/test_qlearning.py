"""Eq. 38: off-policy Q-learning over (s_g, h, a_g), its modes and step sizes."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am
from altmarl import offpolicy as op
from altmarl.histogram import num_histograms

from .helpers import ENV


def test_sequential_update_is_eq_38(game) -> None:
    """Three hand-made transitions, updates computed by hand."""
    h0, h1 = [3, 0, 0], [1, 1, 1]
    ds = op.OfflineDataset.from_arrays([0, 1, 0], [h0, h1, h0], [2, 0, 2], [1.0, 0.5, 2.0],
                                       [1, 0, 1], [h1, h0, h1], k=3, spaces=game, gamma=0.5)
    pol = op.g_learn_offpolicy(game, ds, 3, schedule="constant", alpha=0.5)
    from altmarl.histogram import rank

    nh = num_histograms(3, 3)
    Q = np.zeros((2 * nh, 3))
    s0, s1 = 0 * nh + int(rank(np.array(h0), 3)), 1 * nh + int(rank(np.array(h1), 3))
    Q[s0, 2] += 0.5 * (1.0 + 0.5 * Q[s1].max() - Q[s0, 2])
    Q[s1, 0] += 0.5 * (0.5 + 0.5 * Q[s0].max() - Q[s1, 0])
    Q[s0, 2] += 0.5 * (2.0 + 0.5 * Q[s1].max() - Q[s0, 2])
    assert pol.q is not None
    assert np.allclose(pol.q.reshape(-1, 3), Q)
    # by hand: 0.5, then Q(s1, 0) = 0.375, then 0.5 + 0.5 (2 + 0.5 * 0.375 - 0.5)
    assert pol.q.reshape(-1, 3)[s0, 2] == pytest.approx(1.34375)
    assert pol.q.reshape(-1, 3)[s1, 0] == pytest.approx(0.375)
    assert pol.act(0, h0) == 2
    # rescaled linear: the first visit has step 1, so Q(s0, 2) = r after one update
    pol1 = op.g_learn_offpolicy(game.spaces, ds, 3)
    assert pol1.q is not None and pol1.q.reshape(-1, 3)[s0, 2] > 1.0


def test_synchronous_mode_is_value_iteration_on_the_empirical_model(game, small_log) -> None:
    pol = op.g_learn_offpolicy(game, small_log, mode="synchronous", tol=1e-12)
    cur, nxt = small_log.state_index()
    A, g = 3, 0.8
    P = num_histograms(3, 3) * 2 * A
    # certainty-equivalent model of the log, solved by plain value iteration
    Q = np.zeros(P)
    sa = cur * A + small_log.a_g
    cnt = np.bincount(sa, minlength=P)
    for _ in range(400):
        V = Q.reshape(-1, A).max(axis=1)
        tgt = np.bincount(sa, weights=small_log.r + g * V[nxt], minlength=P)
        Q = np.where(cnt > 0, tgt / np.maximum(cnt, 1), Q)
    assert pol.q is not None
    assert np.allclose(pol.q.reshape(-1), Q, atol=1e-9)
    assert pol.info["last_epoch_change"] <= 1e-12


def test_learner_validation(game, small_log, tmp_path) -> None:
    with pytest.raises(ValueError, match="logged with k = 3"):
        op.g_learn_offpolicy(game, small_log, 2)
    other = am.envs.make("random", **{**ENV, "n_ag": 2})
    with pytest.raises(ValueError, match="A_g"):
        op.g_learn_offpolicy(other, small_log)
    for kw, match in ((dict(schedule="harmonic"), "schedule"), (dict(mode="batch"), "mode"),
                      (dict(schedule="polynomial", omega=0.3), "omega"),
                      (dict(schedule="constant", alpha=0.0), "alpha"),
                      (dict(epochs=0), "epochs"), (dict(gamma=1.5), "gamma"),
                      (dict(q_init=float("nan")), "q_init")):
        with pytest.raises(ValueError, match=match):
            op.g_learn_offpolicy(game, small_log, **kw)
    moved = am.envs.make("random", **{**ENV, "seed": 7})
    with pytest.raises(ValueError, match="fingerprint"):
        op.g_learn_offpolicy(moved, small_log)
    assert op.g_learn_offpolicy(moved, small_log, strict=False).k == 3
    with pytest.raises(ValueError, match="spaces.S_l: missing"):
        op.g_learn_offpolicy({"S_g": 2, "A_g": 3}, small_log)
    # a path works as well, and the result saves / loads as a policy file
    small_log.save(tmp_path / "log")
    pol = op.g_learn_offpolicy(game, tmp_path / "log.csv", epochs=2, seed=3)
    assert pol.info["epochs"] == 2 and pol.info["updates"] == 120
    back = am.GlobalPolicy.load(pol.save(tmp_path / "pol.npz", game=game), game=game)
    assert np.array_equal(back.actions, pol.actions)


def test_step_sizes() -> None:
    a = op.step_sizes("rescaled-linear", 4, 0.9)
    assert np.allclose(a, 1 / (1 + 0.1 * np.arange(4)))
    assert np.allclose(op.step_sizes("polynomial", 3, 0.9, omega=1.0), [1, 1 / 2, 1 / 3])
    assert np.allclose(op.step_sizes("constant", 2, 0.9, alpha=0.2), 0.2)
