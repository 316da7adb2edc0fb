"""The sampling schemes (SPEC 12) through the rest of the library: L-LEARN, ALTERNATING-MARL,
the Gymnasium / PettingZoo views, against the exact chain."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.interfaces import GlobalAgentEnv, LocalAgentEnv
from altmarl.llearn.direct import CRNEvaluator
from altmarl.sampling import Stratified, Uniform, Weighted, type_sums


def typed_game(seed=3, **kw):
    params = dict(n=4, n_sl=4, n_ag=3, types=[0, 0, 1, 1], type_counts=(2, 2), seed=seed,
                  gamma=0.8)
    params.update(kw)
    return am.envs.make("random", **params)


SCHEMES = [Stratified((1, 1)), Weighted((1.0, 4.0, 0.5, 2.0), 2)]


def random_policy(game, scheme, seed):
    scheme = scheme.bind(game)
    acts = np.random.default_rng(seed).integers(
        0, game.n_ag, size=(game.n_sg, scheme.num_observations(game.n_sl)))
    return am.GlobalPolicy(scheme.k, acts, game.n_ag, game=game, sampling=scheme)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.kind)
def test_crn_evaluator_draws_with_the_policys_scheme(scheme):
    game = typed_game()
    pi_g = random_policy(game, scheme, 0)
    pi_l = am.LocalPolicy(np.random.default_rng(1).dirichlet(np.ones(2), size=(4, 2)),
                          game=game)
    v = ExactSolver(game, sampling=scheme).value(pi_g, pi_l)
    crn = CRNEvaluator(game, pi_g, rollouts=3000, horizon=60, seed=2)
    ret = crn.returns(pi_l.table)[0]
    se = ret.std(ddof=1) / np.sqrt(ret.size)
    assert abs(ret.mean() - v) <= 4 * se + game.gamma**60 * game.r_max / (1 - game.gamma)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.kind)
def test_l_learn_and_alternating_marl_under_a_scheme(scheme):
    game = typed_game()
    pi_g = random_policy(game, scheme, 3)
    for solver in ("induced-vi", "direct"):
        pl = am.l_learn(game, pi_g, solver, seed=0)
        assert pl.table.shape == (4, 2, 2)
    with pytest.raises(ValueError, match="chained MDPs .* uniform k-samples only"):
        am.l_learn(game, pi_g, "chained", seed=0)
    res = am.alternating_marl(game, sampling=scheme, sweeps=2, eval_rollouts=300,
                              progress=False, local_solver="induced-vi")
    assert res.pi_g.sampling == scheme.bind(game)
    assert res.config["sampling"] == scheme.bind(game).to_json()
    ex = ExactSolver(game, sampling=scheme)
    v = ex.value(res.pi_g, res.pi_l)
    ev = res.value
    assert abs(ev.mean - v) <= 4 * ev.stderr + ev.truncation_bound
    gap = ex.nash_gap(res.pi_g, res.pi_l, refine_local=False)
    assert gap.gap_g is not None and gap.gap_g_full >= gap.gap_g - 1e-12 >= -1e-12
    with pytest.raises(ValueError, match="disagrees with sampling"):
        am.alternating_marl(game, 3, sampling=scheme, progress=False)


def test_alternating_marl_with_k_is_unchanged():
    game = typed_game(5)
    a = am.alternating_marl(game, 2, sweeps=1, eval_rollouts=30, progress=False,
                            local_solver="induced-vi")
    b = am.alternating_marl(game, sampling=Uniform(2), sweeps=1, eval_rollouts=30,
                            progress=False, local_solver="induced-vi")
    assert a.value.mean == b.value.mean and a.pi_g.sampling == Uniform(2)
    np.testing.assert_array_equal(a.pi_g.actions, b.pi_g.actions)


def test_gym_views_under_a_scheme():
    game = typed_game(7, n=6, type_counts=(3, 3))
    pi_l = am.LocalPolicy.uniform(game)
    scheme = Stratified((2, 1))
    for obs in ("dict", "discrete", "multidiscrete", "box"):
        env = GlobalAgentEnv(game, pi_l, sampling=scheme, obs=obs, horizon=5)
        o, info = env.reset(seed=0)
        for _ in range(5):
            s_g, h = env.codec.decode(o)
            np.testing.assert_array_equal(type_sums(h, game.types)[0], (2, 1))
            o, r, term, trunc, info = env.step(env.action_space.sample())
    env = GlobalAgentEnv(game, pi_l, sampling=scheme, obs="discrete")
    assert env.observation_space.n == game.n_sg * 3 * 2
    pol = env.tabulate(lambda batch: np.asarray(batch) % game.n_ag)
    assert pol.sampling == scheme.bind(game)
    o, _ = env.reset(seed=1)
    assert env.policy_action(pol, o) == int(o) % game.n_ag
    # the local agent's view draws the global agent's sample with pi_g's scheme
    pw = random_policy(game, Weighted((1.0, 5.0, 0.0, 1.0), 3), 0)
    lenv = LocalAgentEnv(game, pw, pi_l, horizon=4)
    lenv.reset(seed=0)
    for _ in range(4):
        lenv.step(0)


def test_pettingzoo_view_under_a_scheme():
    from altmarl.interfaces.pettingzoo_env import parallel_env

    game = typed_game(9, n=5, type_counts=(2, 3))
    for scheme in (Stratified((1, 2)), Weighted((0.0, 1.0, 3.0, 1.0), 3)):
        env = parallel_env(game, sampling=scheme, horizon=3)
        obs, infos = env.reset(seed=0)
        for _ in range(3):
            sample = infos["global"]["sample"]
            assert sample.size == scheme.k and np.unique(sample).size == scheme.k
            h = np.bincount(env.state()[1:][sample], minlength=game.n_sl)
            np.testing.assert_array_equal(obs["global"]["hist"], h)
            if isinstance(scheme, Stratified):
                np.testing.assert_array_equal(type_sums(h, game.types), (1, 2))
            acts = {a: env.action_space(a).sample() for a in env.agents}
            obs, rew, term, trunc, infos = env.step(acts)
