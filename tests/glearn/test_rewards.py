"""Stochastic reward models (altmarl.glearn.rewards, paper Appendix F, Assumption F.1)
and the simulator / evaluate drawing rewards from a model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import altmarl as am
from altmarl.evaluation import simulate_batched
from altmarl.glearn import rewards as rw
from altmarl.simulate import rollout_counts


def _cells(game: am.TabularGame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.arange(game.n_sl)[:, None, None]
    s = np.arange(game.n_sg)[None, :, None]
    a = np.arange(game.n_al)[None, None, :]
    return x, s, a


@pytest.mark.parametrize(
    "noise, var_one",
    [
        (rw.uniform(0.3), lambda mu: np.full_like(mu, 4 * 0.3**2 / 12)),
        (rw.bernoulli(0.8), lambda mu: 0.8**2 * (mu / 0.8) * (1 - mu / 0.8)),
        (rw.truncated_normal(0.2, clip=1.5),
         lambda mu: np.full_like(mu, 0.2**2 * (1 - 2 * 1.5 * stats.norm.pdf(1.5)
                                               / (2 * stats.norm.cdf(1.5) - 1)))),
    ],
)
def test_sum_of_draws_has_the_right_mean_and_variance(game3, noise, var_one) -> None:
    model = rw.RewardModel.from_game(game3, noise_l=noise)
    rng = np.random.default_rng(0)
    c, reps = 7, 4000
    sums = np.stack([model.l.sum_draws(rng, _cells(game3), c) for _ in range(reps)])
    mu = game3.r_l
    var = c * var_one(mu)
    z_mean = (sums.mean(axis=0) - c * mu) / np.sqrt(var / reps)
    assert np.abs(z_mean).max() < 5
    # sample variance of a sum of c draws ~ c var_one (relative error ~ sqrt(2 / reps))
    assert np.allclose(sums.var(axis=0, ddof=1), var, rtol=0.15)


def test_uniform_sum_is_irwin_hall() -> None:
    """The binary-digit aggregate of two uniforms is the triangular law on [0, 2]."""
    model = rw.RewardModel(np.zeros((1, 1)), np.full((1, 1, 1), 0.5), None, rw.uniform(0.5))
    rng = np.random.default_rng(1)
    draws = model.l.sum_draws(rng, (np.zeros(20000, int), 0, 0), 2)

    def tri_cdf(v: np.ndarray) -> np.ndarray:
        return np.where(v < 1, v**2 / 2, 1 - (2 - v) ** 2 / 2)

    assert stats.kstest(draws, tri_cdf).pvalue > 1e-3
    assert 0 < draws.min() and draws.max() < 2


def test_uniform_sum_paths_agree() -> None:
    """Per-draw integers (small totals) and bit-by-bit binomials (large totals) give the
    same law of the sum; which one runs depends only on the counts."""
    comp = rw.RewardModel(np.zeros((1, 1)), np.full((1, 1, 1), 0.5), None,
                           rw.uniform(0.5)).l
    rng = np.random.default_rng(3)
    c = 1000
    bitwise = np.array([comp._uniform_int_sums(rng, np.array([c]))[0] for _ in range(3000)])
    padded = np.array([c] + [0] * 10)  # same count, but the cheap path is one draw each
    direct = np.array([comp._uniform_int_sums(rng, padded)[0] for _ in range(3000)])
    assert stats.ks_2samp(bitwise, direct).pvalue > 1e-3
    mean, sd = c * (2**32 - 1) / 2, np.sqrt(c * (4.0**32 - 1) / 12)
    for draws in (bitwise, direct):
        assert abs(draws.mean() - mean) < 5 * sd / np.sqrt(draws.size)


def test_bernoulli_sum_is_scaled_binomial() -> None:
    model = rw.RewardModel(np.zeros((1, 1)), np.full((1, 1, 1), 0.3), None, rw.bernoulli(1.5))
    rng = np.random.default_rng(2)
    draws = model.l.sum_draws(rng, (np.zeros(5000, int), 0, 0), 10)
    k = draws / 1.5
    assert np.allclose(k, np.round(k))  # support {0, 1.5, ..., 15}
    obs = np.bincount(np.round(k).astype(int), minlength=11).astype(float)
    exp = 5000 * stats.binom.pmf(np.arange(11), 10, 0.2)
    obs = np.append(obs[:6], obs[6:].sum())
    exp = np.append(exp[:6], exp[6:].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-3


@given(
    family=st.sampled_from(["uniform", "bernoulli", "truncnorm", "none"]),
    scale=st.floats(0.0, 2.0),
    count=st.integers(0, 30),
    seed=st.integers(0, 2**16),
)
def test_sums_stay_in_the_declared_bounds(family: str, scale: float, count: int,
                                          seed: int) -> None:
    mean = np.array([[0.2, 0.9], [0.0, 0.5]])
    noise = {"uniform": rw.uniform(scale), "truncnorm": rw.truncated_normal(scale),
             "bernoulli": rw.bernoulli(1.0 + scale), "none": None}[family]
    model = rw.RewardModel(mean, np.zeros((1, 2, 1)), noise, None)
    lo, hi = model.bounds_g
    draws = model.sample_global(np.random.default_rng(seed), np.array([[0, 0], [1, 1]]),
                                np.array([[0, 1], [0, 1]]), count)
    assert np.all(draws >= count * lo - 1e-9) and np.all(draws <= count * hi + 1e-9)


def test_user_sampler_is_checked(game3) -> None:
    def good(rng, x, s, a):
        return game3.r_l[x, s, a] + rng.choice([-0.05, 0.05], size=x.shape)

    model = rw.RewardModel.from_game(game3, noise_l=rw.sampler(good, -0.1, 0.6))
    rng = np.random.default_rng(0)
    tot = model.sample_local_sum(rng, np.array([0, 1]), np.ones((2, 3, 2), int) * 4)
    assert tot.shape == (2,)
    bad_range = rw.RewardModel.from_game(game3, noise_l=rw.sampler(
        lambda rng, x, s, a: np.full(x.shape, 9.0), -0.1, 0.6))
    with pytest.raises(ValueError, match="outside its declared bounds"):
        bad_range.sample_local_sum(rng, np.array([0]), np.ones((1, 3, 2), int))
    bad_nan = rw.RewardModel.from_game(game3, noise_l=rw.sampler(
        lambda rng, x, s, a: np.full(x.shape, np.nan), -0.1, 0.6))
    with pytest.raises(ValueError, match="outside its declared bounds"):
        bad_nan.sample_local_sum(rng, np.array([0]), np.ones((1, 3, 2), int))
    bad_shape = rw.RewardModel.from_game(game3, noise_l=rw.sampler(
        lambda rng, x, s, a: np.zeros(3), -0.1, 0.6))
    with pytest.raises(ValueError, match="expected 24 draws"):
        bad_shape.sample_local_sum(rng, np.array([0]), np.ones((1, 3, 2), int) * 4)
    with pytest.raises(ValueError, match="sampler bounds"):
        rw.RewardModel.from_game(game3, noise_l=rw.sampler(good, 0.45, 0.6))


def test_model_validation(game3) -> None:
    with pytest.raises(ValueError, match="0 <= mean <= high"):
        rw.RewardModel.from_game(game3, noise_l=rw.bernoulli(0.1))
    with pytest.raises(ValueError, match="noise.param"):
        rw.RewardModel.from_game(game3, noise_l=rw.uniform(-1.0))
    with pytest.raises(ValueError, match="broadcastable"):
        rw.RewardModel.from_game(game3, noise_l=rw.uniform(np.ones(7)))
    with pytest.raises(ValueError, match="clip"):
        rw.RewardModel.from_game(game3, noise_l=rw.truncated_normal(0.1, clip=0.0))
    with pytest.raises(ValueError, match="mean_g"):
        rw.RewardModel(np.full((2, 3), np.nan), game3.r_l)
    with pytest.raises(ValueError, match="Noise"):
        rw.RewardModel.from_game(game3, noise_l="uniform")  # type: ignore[arg-type]
    other = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, seed=0)
    model = rw.RewardModel.from_game(game3, noise_l=rw.uniform(0.1))
    with pytest.raises(ValueError, match="does not match game"):
        model.check_game(other)


def test_hoeffding_constant_matches_formula(game3) -> None:
    model = rw.RewardModel.from_game(game3, noise_l=rw.uniform(0.25))
    R = (model.l.high - model.l.low) + (model.g.high - model.g.low)
    m = model.hoeffding_m(0.05, 0.1, 100)
    assert m == math.ceil(R**2 * math.log(2 * 100 / 0.1) / (2 * 0.05**2))


def test_noise_free_model_reproduces_the_simulator(tiny_game) -> None:
    """A model without noise draws nothing: same random stream, same rewards."""
    pi_l = am.LocalPolicy.uniform(tiny_game)
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 1)
    a = rollout_counts(tiny_game, pi_g, pi_l, 16, 20, np.random.default_rng(3))
    b = rollout_counts(tiny_game, pi_g, pi_l, 16, 20, np.random.default_rng(3),
                       reward_model=rw.RewardModel.from_game(tiny_game))
    assert np.array_equal(a.s_g, b.s_g) and np.array_equal(a.a_g, b.a_g)
    assert np.allclose(a.rewards, b.rewards, atol=1e-12)


def test_evaluate_with_noisy_rewards_matches_the_mean_table_value(tiny_game) -> None:
    pi_l = am.LocalPolicy.uniform(tiny_game)
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 0)
    exact = am.exact.ExactSolver(tiny_game, 2).value(pi_g, pi_l)
    model = rw.RewardModel.from_game(tiny_game, noise_g=rw.bernoulli(1.0),
                                      noise_l=rw.uniform(0.4))
    ev = am.evaluate(tiny_game, pi_g, pi_l, rollouts=1024, horizon=80, seed=7,
                     reward_model=model)
    det = am.evaluate(tiny_game, pi_g, pi_l, rollouts=1024, horizon=80, seed=7)
    assert abs(ev.mean - exact) <= 3 * ev.stderr + ev.truncation_bound
    assert ev.stderr > det.stderr  # the reward noise adds variance
    assert ev.truncation_bound >= det.truncation_bound  # bound uses the model's r_max
    # same seed, same numbers, whatever the number of workers
    ev1 = am.evaluate(tiny_game, pi_g, pi_l, rollouts=300, horizon=10, seed=1, workers=1,
                      reward_model=model)
    ev2 = am.evaluate(tiny_game, pi_g, pi_l, rollouts=300, horizon=10, seed=1, workers=3,
                      reward_model=model)
    assert np.array_equal(ev1.returns, ev2.returns)


def test_agent_simulator_refuses_a_reward_model(tiny_game) -> None:
    pi_l = am.LocalPolicy.uniform(tiny_game)
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 0)
    with pytest.raises(ValueError, match="count simulator"):
        simulate_batched(tiny_game, pi_g, pi_l, 4, 3, 0, simulator="agents",
                         reward_model=rw.RewardModel.from_game(tiny_game))

