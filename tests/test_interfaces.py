"""Gymnasium / PettingZoo interfaces (docs/interfaces.md).

Oracles: the API checkers of both libraries; an exact finite-horizon value of the
"representative agent" chain on ``(s_g, s_rep, N_others)`` for a tiny game (computed here
by enumeration, independent of the environments' code); :func:`altmarl.evaluate` on the
warehouse.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_hypergeom

import altmarl as am
from altmarl.histogram import enumerate_histograms, rank

gym = pytest.importorskip("gymnasium")
pytest.importorskip("pettingzoo")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from altmarl.interfaces import (  # noqa: E402
    AltMarlParallelEnv,
    GlobalAgentEnv,
    LocalAgentEnv,
    register_envs,
)
from altmarl.simulate import subsample_histograms  # noqa: E402

GLOBAL_MODES = ["dict", "multidiscrete", "discrete", "box"]
LOCAL_MODES = ["multidiscrete", "discrete", "box"]


# ---------------------------------------------------------------------------
# fixtures and the exact oracle
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    """|S_g| = 2, |A_g| = 2, |S_l| = 3, |A_l| = 2, n = 4, skewed i.i.d. initial states."""
    g = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=4, gamma=0.9, seed=5)
    return am.TabularGame(g.P_g, g.P_l, g.r_g, g.r_l, g.gamma, g.n,
                          init=([0.4, 0.6], [0.7, 0.2, 0.1]), name="small")


def _random_local(game, seed):
    rng = np.random.default_rng(seed)
    return am.LocalPolicy(rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg)))


def _random_global(game, k, seed):
    rng = np.random.default_rng(seed)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, am.num_histograms(k, game.n_sl)))
    return am.GlobalPolicy(k, acts, game.n_ag, game=game)


def _bin_move_dist(m, p):
    """Distribution of the next-state histogram of ``m`` agents moving i.i.d. with ``p``:
    dict {histogram tuple: probability}."""
    d = p.size
    out = {}
    for h in enumerate_histograms(m, d):
        coef = math.factorial(m) / np.prod([math.factorial(int(v)) for v in h])
        out[tuple(int(v) for v in h)] = coef * float(np.prod(p ** h))
    return out


def exact_representative_values(game, pi_g, pi_l, pi_dev, horizon):
    """Exact ``E[sum_{t<H} gamma^t r_t]`` for the representative-agent chain.

    State ``(s_g, s_rep, N_others)``; the representative plays ``pi_dev``, the others
    ``pi_l``, the global agent ``pi_g`` on a ``k``-subsample of all ``n`` agents. Returns
    ``(joint, individual)``: the values of the stage reward (SPEC eq. 1) and of the
    representative's ``r_l``. With ``pi_dev = pi_l``, ``joint`` is ``V(pi_g, pi_l)``
    truncated at ``horizon``.
    """
    n, d, k, S = game.n, game.n_sl, pi_g.k, game.n_sg
    Ho = [tuple(int(v) for v in h) for h in enumerate_histograms(n - 1, d)]
    states = list(itertools.product(range(S), range(d), Ho))
    index = {s: i for i, s in enumerate(states)}
    K = game.local_kernel(pi_l.table)  # (x, s_g, x')
    K_dev = game.local_kernel(pi_dev.table)
    rbar = game.local_reward(pi_l.table)  # (x, s_g)
    rbar_dev = game.local_reward(pi_dev.table)
    hs = enumerate_histograms(k, d)
    P = np.zeros((len(states), len(states)))
    r_joint = np.zeros(len(states))
    r_ind = np.zeros(len(states))
    for i, (sg, s, No) in enumerate(states):
        N_all = np.array(No)
        N_all[s] += 1
        p_h = multivariate_hypergeom.pmf(hs, m=N_all, n=k)
        p_ag = np.bincount(pi_g.actions[sg, rank(hs, k)], weights=p_h, minlength=game.n_ag)
        r_ind[i] = rbar_dev[s, sg]
        r_joint[i] = p_ag @ game.r_g[sg] + (np.dot(No, rbar[:, sg]) + rbar_dev[s, sg]) / n
        # next N_others: convolution over bins
        dist = {tuple([0] * d): 1.0}
        for x in range(d):
            mv = _bin_move_dist(No[x], K[x, sg])
            new = {}
            for a, pa in dist.items():
                for b, pb in mv.items():
                    key = tuple(u + v for u, v in zip(a, b, strict=True))
                    new[key] = new.get(key, 0.0) + pa * pb
            dist = new
        for sg2 in range(S):
            p_sg2 = p_ag @ game.P_g[sg, :, sg2]
            for s2 in range(d):
                for No2, pn in dist.items():
                    P[i, index[(sg2, s2, No2)]] += p_sg2 * K_dev[s, sg, s2] * pn
    assert np.allclose(P.sum(axis=1), 1.0)
    mu = np.zeros(len(states))
    for N in enumerate_histograms(n, d):
        for sg in range(S):
            p0 = float(np.exp(game.init.log_pmf(np.array([sg]), N[None, :], n))[0])
            for s in range(d):
                if N[s] > 0:
                    No = N.copy()
                    No[s] -= 1
                    mu[index[(sg, s, tuple(int(v) for v in No))]] += p0 * N[s] / n
    assert abs(mu.sum() - 1.0) < 1e-9
    vj = vi = 0.0
    for t in range(horizon):
        vj += game.gamma**t * mu @ r_joint
        vi += game.gamma**t * mu @ r_ind
        mu = mu @ P
    return vj, vi


def _discounted(rewards, gamma):
    return float(np.dot(gamma ** np.arange(len(rewards)), rewards))


def _z(sample, target):
    sample = np.asarray(sample)
    return (sample.mean() - target) / (sample.std(ddof=1) / math.sqrt(sample.size))


# ---------------------------------------------------------------------------
# API conformance
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("obs", GLOBAL_MODES)
def test_global_env_passes_check_env(warehouse, obs):
    env = GlobalAgentEnv(warehouse, am.LocalPolicy.uniform(warehouse), k=5, horizon=20, obs=obs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports problems as warnings
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("obs", LOCAL_MODES)
def test_local_env_passes_check_env(warehouse, obs):
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    env = LocalAgentEnv(warehouse, pi_g, am.LocalPolicy.uniform(warehouse), horizon=20, obs=obs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_full_information_env_passes_check_env(small):
    """``k = n``: the observation is the whole count vector."""
    env = GlobalAgentEnv(small, am.LocalPolicy.uniform(small), k=small.n, horizon=10)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=1)
    np.testing.assert_array_equal(obs["hist"], info["counts"])
    for _ in range(5):
        obs, *_, info = env.step(0)
        np.testing.assert_array_equal(obs["hist"], info["counts"])


@pytest.mark.parametrize("reward", ["joint", "individual"])
@pytest.mark.parametrize("global_obs", ["dict", "box"])
def test_parallel_env_passes_pettingzoo_tests(small, reward, global_obs):
    def make():
        return AltMarlParallelEnv(small, k=2, horizon=25, reward=reward, global_obs=global_obs)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_api_test(make(), num_cycles=60)
        parallel_seed_test(make, num_cycles=60)


def test_parallel_env_state_and_sample(small):
    env = AltMarlParallelEnv(small, k=3, horizon=5)
    obs, infos = env.reset(seed=0, options={"state": [1, 0, 2, 2, 1]})
    np.testing.assert_array_equal(env.state(), [1, 0, 2, 2, 1])
    assert env.state_space.contains(env.state())
    np.testing.assert_array_equal(obs["local_2"], [2, 1])
    sample = infos["global"]["sample"]
    assert len(set(sample.tolist())) == 3  # without replacement
    states = np.array([0, 2, 2, 1])
    np.testing.assert_array_equal(obs["global"]["hist"], np.bincount(states[sample], minlength=3))
    np.testing.assert_array_equal(infos["global"]["counts"], [1, 1, 2])


# ---------------------------------------------------------------------------
# the environments simulate the game exactly
# ---------------------------------------------------------------------------


def test_global_env_matches_exact_value(small):
    """Returns of the global env under ``pi_g`` vs the exact truncated ``V(pi_g, pi_l)``."""
    pi_l = _random_local(small, 1)
    pi_g = _random_global(small, 2, 2)
    H = 12
    exact, _ = exact_representative_values(small, pi_g, pi_l, pi_l, H)
    env = GlobalAgentEnv(small, pi_l, k=2, horizon=H, obs="multidiscrete")
    rets = []
    obs, _ = env.reset(seed=123)
    for _ in range(3000):
        rs = []
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(env.policy_action(pi_g, obs))
            rs.append(r)
            done = term or trunc
        assert len(rs) == H
        rets.append(_discounted(rs, small.gamma))
        obs, _ = env.reset()
    assert abs(_z(rets, exact)) < 4.0
    # and am.evaluate agrees with the same oracle
    ev = am.evaluate(small, pi_g, pi_l, rollouts=4000, horizon=H, seed=0)
    assert abs(ev.mean - exact) < 4.0 * ev.stderr


def test_global_env_matches_evaluate_on_warehouse(warehouse):
    """Same game, same policies: the env's mean discounted return agrees with
    :func:`altmarl.evaluate` (two-sample z-test)."""
    pi_l = am.LocalPolicy.uniform(warehouse)
    pi_g = am.GlobalPolicy.sample_mode(warehouse, 3)
    H = 30
    env = GlobalAgentEnv(warehouse, pi_l, k=3, horizon=H, obs="dict")
    rets = []
    for ep in range(400):
        obs, _ = env.reset(seed=1000 + ep)
        rs = []
        for _ in range(H):
            obs, r, _, _, _ = env.step(pi_g.act(obs["s_g"], obs["hist"]))
            rs.append(r)
        rets.append(_discounted(rs, warehouse.gamma))
    ev = am.evaluate(warehouse, pi_g, pi_l, rollouts=2000, horizon=H, seed=7)
    rets_a = np.asarray(rets)
    se = math.hypot(rets_a.std(ddof=1) / math.sqrt(rets_a.size), ev.stderr)
    assert abs(rets_a.mean() - ev.mean) < 4.0 * se
    # power: a bias of more than ~2% of the value would be detected
    assert 4.0 * se < 0.025 * ev.mean


@pytest.mark.parametrize("deviate", [False, True])
def test_local_env_matches_exact_values(small, deviate):
    """The representative agent is simulated exactly: both reward modes match the exact
    chain, with the representative following ``pi_l`` or deviating to another policy."""
    pi_l = _random_local(small, 3)
    pi_dev = _random_local(small, 4) if deviate else pi_l
    pi_g = _random_global(small, 2, 5)
    H = 12
    vj, vi = exact_representative_values(small, pi_g, pi_l, pi_dev, H)
    env = LocalAgentEnv(small, pi_g, pi_l, horizon=H, obs="multidiscrete")
    rng = np.random.default_rng(9)
    cdf = np.cumsum(pi_dev.table, axis=-1)
    joint, ind = [], []
    obs, _ = env.reset(seed=77)
    for _ in range(3000):
        rj, ri = [], []
        for _ in range(H):
            a = int(np.searchsorted(cdf[obs[0], obs[1]], rng.random(), side="right"))
            obs, r, _, trunc, info = env.step(min(a, small.n_al - 1))
            assert r == info["individual_reward"]
            rj.append(info["joint_reward"])
            ri.append(r)
        assert trunc
        joint.append(_discounted(rj, small.gamma))
        ind.append(_discounted(ri, small.gamma))
        obs, _ = env.reset()
    assert abs(_z(joint, vj)) < 4.0
    assert abs(_z(ind, vi)) < 4.0


def test_local_env_representative_is_a_uniform_agent(small):
    """At reset the representative is a uniformly chosen agent: ``P(s_rep = x) = N[x] / n``,
    and the other agents keep the rest of the population."""
    env = LocalAgentEnv(small, am.GlobalPolicy.constant(small, 2), am.LocalPolicy.uniform(small))
    env.reset(seed=0)
    reps = []
    for _ in range(4000):
        obs, info = env.reset(options={"init": (1, [3, 1, 0])})
        np.testing.assert_array_equal(info["counts"], [3, 1, 0])
        assert obs[1] == 1
        reps.append(int(obs[0]))
    freq = np.bincount(reps, minlength=3) / len(reps)
    assert freq[2] == 0.0
    assert abs(freq[0] - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(reps))


def test_parallel_env_matches_exact_value_with_deviation(small):
    """Per-agent simulation: ``local_0`` deviates; the joint reward and ``local_0``'s own
    reward match the exact representative chain."""
    pi_l = _random_local(small, 3)
    pi_dev = _random_local(small, 4)
    pi_g = _random_global(small, 2, 5)
    H = 10
    vj, vi = exact_representative_values(small, pi_g, pi_l, pi_dev, H)
    env = AltMarlParallelEnv(small, k=2, horizon=H, global_obs="multidiscrete",
                             reward="individual")
    rng = np.random.default_rng(3)
    cdf_l = np.cumsum(pi_l.table, axis=-1)
    cdf_d = np.cumsum(pi_dev.table, axis=-1)
    joint, own = [], []
    for ep in range(1500):
        obs, _ = env.reset(seed=ep)
        rj, ro = [], []
        while env.agents:
            s = env.state()
            sg, ls = s[0], s[1:]
            u = rng.random(small.n)
            acts = (cdf_l[ls, sg] < u[:, None]).sum(axis=1).clip(max=small.n_al - 1)
            acts[0] = min(int((cdf_d[ls[0], sg] < u[0]).sum()), small.n_al - 1)
            g_obs = obs["global"]
            a_g = int(pi_g.act(g_obs[0], g_obs[1:]))
            actions = {"global": a_g, **{f"local_{i}": int(a) for i, a in enumerate(acts)}}
            obs, rew, _, _, _ = env.step(actions)
            rj.append(rew["global"] + np.mean([rew[a] for a in env.local_agents]))
            ro.append(rew["local_0"])
        joint.append(_discounted(rj, small.gamma))
        own.append(_discounted(ro, small.gamma))
    assert abs(_z(joint, vj)) < 4.0
    assert abs(_z(own, vi)) < 4.0


def test_subsample_matches_hypergeometric(small):
    """The single-population sampler has the multivariate hypergeometric law."""
    rng = np.random.default_rng(0)
    N = np.array([5, 0, 3, 12])
    draws = np.array([subsample_histograms(N, 6, rng) for _ in range(20000)])
    assert (draws.sum(axis=1) == 6).all() and (draws[:, 1] == 0).all()
    np.testing.assert_allclose(draws.mean(axis=0), 6 * N / N.sum(), atol=0.03)
    hs = enumerate_histograms(6, 4)
    p = multivariate_hypergeom.pmf(hs, m=N, n=6)
    freq = np.bincount(rank(draws, 6), minlength=hs.shape[0]) / draws.shape[0]
    assert np.abs(freq - p).max() < 0.01


# ---------------------------------------------------------------------------
# seeding
# ---------------------------------------------------------------------------


def _run(env, seed, actions):
    out = [env.reset(seed=seed)[0]]
    for a in actions:
        obs, r, _, _, _ = env.step(a)
        out += [obs, r]
    return out


def _same(a, b):
    try:
        return bool(gym.utils.env_checker.data_equivalence(a, b))
    except AttributeError:  # pragma: no cover
        from gymnasium.utils.env_checker import data_equivalence

        return bool(data_equivalence(a, b))


@pytest.mark.parametrize("which", ["global", "local"])
def test_seeding_reproducible(warehouse, which):
    pi_l = am.LocalPolicy.uniform(warehouse)
    if which == "global":
        def make():
            return GlobalAgentEnv(warehouse, pi_l, k=4, horizon=50)
        acts = [i % warehouse.n_ag for i in range(30)]
    else:
        def make():
            return LocalAgentEnv(warehouse, am.GlobalPolicy.sample_mode(warehouse, 4), pi_l,
                                 horizon=50, reward="joint")
        acts = [i % warehouse.n_al for i in range(30)]
    a = _run(make(), 11, acts)
    b = _run(make(), 11, acts)
    c = _run(make(), 12, acts)
    assert _same(a, b)
    assert not _same(a, c)
    env = make()  # re-seeding the same instance restarts the stream
    assert _same(_run(env, 11, acts), a)


def test_parallel_seeding_reproducible(small):
    env = AltMarlParallelEnv(small, k=2, horizon=8)
    acts = {a: 1 for a in env.possible_agents}

    def run(seed):
        obs, _ = env.reset(seed=seed)
        rows = [env.state()]
        while env.agents:
            env.step(acts)
            rows.append(env.state())
        return np.array(rows)

    np.testing.assert_array_equal(run(4), run(4))
    assert not np.array_equal(run(4), run(5))


# ---------------------------------------------------------------------------
# tabulation, registration, validation, optional dependencies
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("obs", GLOBAL_MODES)
def test_global_tabulate_round_trip(warehouse, obs):
    env = GlobalAgentEnv(warehouse, am.LocalPolicy.uniform(warehouse), k=3, obs=obs)
    pi = _random_global(warehouse, 3, 0)

    def predict(batch):
        s_g, h = env.codec.decode(batch)
        return pi.act(s_g, h)

    tab = env.tabulate(predict, info={"kind": "test"})
    np.testing.assert_array_equal(tab.actions, pi.actions)
    assert tab.k == 3 and tab.info["kind"] == "test"
    obs0, _ = env.reset(seed=0)
    assert obs0 in env.observation_space
    assert env.policy_action(pi, obs0) == env.policy_action(tab, obs0)


@pytest.mark.parametrize("obs", LOCAL_MODES)
def test_local_tabulate_round_trip(warehouse, obs):
    env = LocalAgentEnv(warehouse, am.GlobalPolicy.constant(warehouse, 2, 1),
                        am.LocalPolicy.uniform(warehouse), obs=obs)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, warehouse.n_al, size=(warehouse.n_sl, warehouse.n_sg))

    def predict(batch):
        s_l, s_g = env.codec.decode(batch)
        return acts[s_l, s_g]

    pol = env.tabulate(predict)
    np.testing.assert_array_equal(pol.greedy_actions(), acts)
    assert pol.is_deterministic()


def test_register_and_make(warehouse):
    register_envs()
    register_envs()  # idempotent
    env = gym.make("altmarl/GlobalAgent-v0", game=warehouse,
                   pi_l=am.LocalPolicy.uniform(warehouse), k=2, horizon=3)
    env.reset(seed=0)
    for _ in range(3):
        *_, trunc, _ = env.step(0)
    assert trunc
    env2 = gym.make("altmarl/LocalAgent-v0", game=warehouse,
                    pi_g=am.GlobalPolicy.constant(warehouse, 2),
                    pi_l=am.LocalPolicy.uniform(warehouse))
    assert env2.reset(seed=0)[0] in env2.observation_space


def test_bad_input_is_rejected(warehouse, small):
    pi_l = am.LocalPolicy.uniform(warehouse)
    with pytest.raises(ValueError, match="obs"):
        GlobalAgentEnv(warehouse, pi_l, k=2, obs="image")
    with pytest.raises(ValueError, match="horizon"):
        GlobalAgentEnv(warehouse, pi_l, k=2, horizon=0)
    with pytest.raises(ValueError, match="k = 0"):
        GlobalAgentEnv(warehouse, pi_l, k=0)
    with pytest.raises(ValueError, match="pi_l"):
        GlobalAgentEnv(warehouse, am.LocalPolicy.uniform(small), k=2)
    with pytest.raises(ValueError, match="pi_g"):
        LocalAgentEnv(warehouse, am.GlobalPolicy.constant(small, 2), pi_l)
    assert GlobalAgentEnv(warehouse, pi_l.table, k=2).pi_l.table.shape == pi_l.table.shape
    with pytest.raises(ValueError, match="pi_l.table"):
        GlobalAgentEnv(warehouse, pi_l.table * 2, k=2)
    with pytest.raises(ValueError, match="reward"):
        LocalAgentEnv(warehouse, am.GlobalPolicy.constant(warehouse, 2), pi_l, reward="team")
    with pytest.raises(ValueError, match="reward"):
        AltMarlParallelEnv(small, k=2, reward="team")
    env = GlobalAgentEnv(warehouse, pi_l, k=2, horizon=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(5)
    with pytest.raises(ValueError, match="action"):
        env.step(1.5)
    env.step(0)
    env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)  # truncated
    with pytest.raises(ValueError, match="summing to n"):
        env.reset(options={"init": (0, [1, 2, 3, 4, 5])})
    obs, info = env.reset(options={"init": (3, [1000, 0, 0, 0, 0])})
    assert info["s_g"] == 3 and obs["hist"].tolist() == [2, 0, 0, 0, 0]
    lenv = LocalAgentEnv(warehouse, am.GlobalPolicy.constant(warehouse, 2), pi_l)
    with pytest.raises(ValueError, match="s_l"):
        lenv.reset(options={"init": (0, [1000, 0, 0, 0, 0]), "s_l": 2})
    obs, info = lenv.reset(options={"init": (1, [0, 0, 1000, 0, 0])})
    assert obs.tolist() == [2, 1] and info["counts"].tolist() == [0, 0, 1000, 0, 0]
    penv = AltMarlParallelEnv(small, k=2)
    penv.reset(seed=0)
    with pytest.raises(ValueError, match="missing"):
        penv.step({"global": 0})
    with pytest.raises(ValueError, match="local_3"):
        penv.step({"global": 0, "local_0": 0, "local_1": 0, "local_2": 0, "local_3": 7})
    with pytest.raises(ValueError, match="state"):
        penv.reset(options={"state": [0, 1, 2]})


def test_core_imports_without_the_extras():
    """``import altmarl`` and ``import altmarl.interfaces`` work without gymnasium /
    pettingzoo / SB3 / torch; using an environment names the extra to install; the public
    observation codecs work without them."""
    code = (
        "import sys\n"
        "BLOCKED = ('gymnasium', 'pettingzoo', 'stable_baselines3', 'torch')\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'No module named {name!r} (blocked)')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import altmarl, altmarl.interfaces\n"
        "for name in ('GlobalAgentEnv', 'AltMarlParallelEnv'):\n"
        "    try:\n"
        "        getattr(altmarl.interfaces, name)\n"
        "    except ImportError as e:\n"
        "        print(e)\n"
        "    else:\n"
        "        raise SystemExit(name + ' imported without gymnasium')\n"
        "import numpy as np\n"
        "c = altmarl.interfaces.GlobalObsCodec(2, 3, 4, 'box')\n"
        "s_g, h = c.decode(c.encode(np.array([1]), np.array([[1, 3, 0]])))\n"
        "assert s_g.tolist() == [1] and h.tolist() == [[1, 3, 0]], (s_g, h)\n"
        "assert not any(m.split('.')[0] in BLOCKED for m in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'altmarl[gym]'" in line for line in lines)


def test_sb3_model_wraps_as_global_policy(warehouse):
    """Smoke test of the benchmark's path: a (barely trained) SB3 model tabulates into a
    valid GlobalPolicy that am.evaluate accepts."""
    sb3 = pytest.importorskip("stable_baselines3")
    import torch

    torch.set_num_threads(1)
    env = GlobalAgentEnv(warehouse, am.LocalPolicy.uniform(warehouse), k=2, horizon=20, obs="box")
    model = sb3.PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0,
                    gamma=warehouse.gamma, device="cpu")
    model.learn(total_timesteps=64)
    pi = env.tabulate(lambda o: model.predict(o, deterministic=True)[0])
    assert pi.actions.shape == (warehouse.n_sg, am.num_histograms(2, warehouse.n_sl))
    obs, _ = env.reset(seed=0)
    assert env.policy_action(pi, obs) == int(model.predict(obs, deterministic=True)[0])
    ev = am.evaluate(warehouse, pi, am.LocalPolicy.uniform(warehouse), rollouts=8, horizon=10,
                     seed=0)
    assert np.isfinite(ev.mean)
