"""The randomized empirical operator T_tilde and am.g_learn_stochastic
(altmarl.glearn.stochastic / api, paper Appendix F, Definition F.2)."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am
from altmarl import glearn as gl
from altmarl.glearn.operator import empirical_operator
from altmarl.glearn.options import GLearnOptions


def test_hoeffding_m_delivers_its_accuracy(game3) -> None:
    """Lemma F.4: with m from hoeffding_m, every averaged reward is within eps of r_k."""
    model = gl.RewardModel.from_game(game3, noise_g=gl.uniform(0.2), noise_l=gl.uniform(0.4))
    pi_l = am.LocalPolicy.uniform(game3)
    k, eps = 2, 0.1
    entries = gl.table_size(game3, k)
    m = model.hoeffding_m(eps, 0.05, entries)
    rg, rloc = gl.averaged_rewards(game3, pi_l, k, model, m, seed=5)
    r_k = empirical_operator(game3, pi_l, k, options=GLearnOptions(m=None)).reward()
    approx = rg[:, None, :] + rloc[:, :, None]
    assert np.abs(approx - r_k).max() <= eps
    assert model.hoeffding_m(eps / 2, 0.05, entries) >= 4 * m - 4
    with pytest.raises(ValueError):
        model.hoeffding_m(0.0, 0.05, entries)


@pytest.mark.parametrize("parameterization", ["mean-field", "standard"])
def test_noise_free_model_gives_g_learn(game3, parameterization) -> None:
    pi_l = am.LocalPolicy.uniform(game3)
    model = gl.RewardModel.from_game(game3)
    a = am.g_learn_stochastic(game3, pi_l, 2, model, m=8, seed=4,
                               parameterization=parameterization)
    b = am.g_learn(game3, pi_l, 2, m=8, seed=4, parameterization=parameterization)
    assert a.q is not None and b.q is not None
    assert np.allclose(a.q, b.q, atol=1e-10)
    assert np.array_equal(a.actions, b.actions)
    assert a.info["m_reward"] == 8 and a.info["method"] == "g-learn-stochastic"


def test_randomized_q_approaches_mean_reward_q(game3) -> None:
    """Definition F.2: as m_reward grows the fixed point tends to the mean-reward one."""
    pi_l = am.LocalPolicy.uniform(game3)
    k = 3
    model = gl.RewardModel.from_game(game3, noise_g=gl.bernoulli(1.0),
                                      noise_l=gl.truncated_normal(0.3))
    q_mean = gl.mean_reward_q(game3, pi_l, k, model, m=None, tol=1e-11)
    errs = []
    for mr in (10, 100, 1000):
        e = [np.abs(am.g_learn_stochastic(game3, pi_l, k, model, m=None, m_reward=mr,
                                           seed=s, tol=1e-11).q - q_mean).max()
             for s in range(3)]
        errs.append(float(np.mean(e)))
    assert errs[0] > errs[1] > errs[2]
    # O(1 / sqrt(m)): a factor 100 in m buys about a factor 10
    assert errs[2] < errs[0] / 4
    # Q error <= reward error / (1 - gamma): compare with the reward errors themselves
    assert errs[2] < 0.1


def test_randomized_operator_checks(game3) -> None:
    pi_l = am.LocalPolicy.uniform(game3)
    with pytest.raises(ValueError, match="RewardModel"):
        gl.randomized_operator(game3, pi_l, 2, "noise")  # type: ignore[arg-type]
    model = gl.RewardModel.from_game(game3, noise_l=gl.uniform(0.1))
    with pytest.raises(ValueError, match="m_reward"):
        gl.randomized_operator(game3, pi_l, 2, model, m_reward=0)
    op = gl.randomized_operator(game3, pi_l, 2, model, m_reward=None, options=GLearnOptions(m=None))
    assert np.allclose(op.reward(), empirical_operator(game3, pi_l, 2, options=GLearnOptions(m=None)).reward())

