"""Neural L-LEARN on generative games (SPEC 5.3, 11): TRPO for the shared local policy, the
tracked-agent simulator records, the neural local policy and its file format."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import altmarl as am  # noqa: E402
from altmarl.generative import (  # noqa: E402
    FunctionGlobalPolicy,
    FunctionLocalPolicy,
    GenerativeGame,
    UniformLocalPolicy,
)
from altmarl.generative.neural_local import (  # noqa: E402
    LocalFeatures,
    NeuralLocalPolicy,
    neural_l_learn,
)
from altmarl.generative.simulator import rollout  # noqa: E402

FAST = {"iterations": 6, "rollouts": 4, "horizon": 30, "tracked": 32}


@pytest.fixture(scope="module")
def small_warehouse():
    tab = am.envs.make("warehouse", n=200)
    u = am.LocalPolicy.uniform(tab)
    pi_g = am.g_learn(tab, u, k=3, m=30, seed=0)
    return tab, tab.as_generative(), u, pi_g


def paired(gen, pi_g, a, b, rollouts, horizon, seed):
    ea = am.evaluate(gen, pi_g, a, rollouts=rollouts, horizon=horizon, seed=seed)
    eb = am.evaluate(gen, pi_g, b, rollouts=rollouts, horizon=horizon, seed=seed)
    d = ea.returns - eb.returns
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)), ea, eb


# --- the simulator's tracked agents -------------------------------------------------------
def test_rollout_tracks_agents_and_lets_them_deviate():
    tab = am.envs.make("warehouse", n=40)
    gen = tab.as_generative()
    pi_g = am.GlobalPolicy.sample_mode(tab, 3)
    stay = FunctionLocalPolicy(lambda s_l, s_g, rng: np.zeros(np.shape(s_l)[:2], int))
    right = FunctionLocalPolicy(lambda s_l, s_g, rng: np.ones(np.shape(s_l)[:2], int))
    track = np.stack([np.arange(5), np.arange(10, 15)])
    rng = np.random.default_rng(0)
    traj = rollout(gen, pi_g, stay, 2, 6, rng, track=track, deviation=right)
    tr = traj.tracked
    assert tr.s_l.shape == (2, 6, 5) and tr.a_l.shape == (2, 6, 5) and tr.r_l.shape == (2, 6, 5)
    assert (tr.a_l == 1).all()
    # the tracked agents' own rewards are the table's r_l of their state and action
    assert np.allclose(tr.r_l, tab.r_l[tr.s_l, tr.s_g[..., None], tr.a_l])
    assert tr.last_s_l.shape == (2, 5) and tr.last_s_g.shape == (2,)
    # without deviation the tracked agents play pi_l, and the records leave the numbers alone
    plain = rollout(gen, pi_g, stay, 2, 6, np.random.default_rng(1))
    again = rollout(gen, pi_g, stay, 2, 6, np.random.default_rng(1), track=track)
    assert np.array_equal(plain.rewards, again.rewards) and (again.tracked.a_l == 0).all()
    with pytest.raises(ValueError, match="deviation: give track"):
        rollout(gen, pi_g, stay, 2, 6, rng, deviation=right)
    with pytest.raises(ValueError, match="track: expected"):
        rollout(gen, pi_g, stay, 2, 6, rng, track=np.array([[0, 99]] * 2))


# --- features and the policy --------------------------------------------------------------
def test_features_one_hot_and_standardized():
    gen = am.envs.make("warehouse", n=10).as_generative()
    f = LocalFeatures.for_game(gen)
    x = f(np.array([[0, 4]]), np.array([2]))
    assert x.shape == (2, 10) and x[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert x[1, 4] == 1 and x[1, 7] == 1 and x.sum() == 4

    def reset(rng, R):
        return rng.normal(3.0, 2.0, size=R), rng.normal(-1.0, 0.5, size=(R, 50))

    def step(s_g, s_l, a_g, a_l, rng):
        return s_g, s_l + 0.1 * a_l, np.zeros(len(s_g)), -np.abs(s_l)

    walk = GenerativeGame(50, 0.9, 2, 2, reset, step, observe="histogram", bins=[0.0])
    fw = LocalFeatures.for_game(walk)
    assert fw.dim == 2
    # moments of 32 reset rollouts: local N(-1, 0.5^2) x 1600 agents, global N(3, 2^2) x 32
    assert fw.local_mean[0] == pytest.approx(-1.0, abs=0.05)
    assert fw.local_std[0] == pytest.approx(0.5, abs=0.05)
    assert fw.global_mean[0] == pytest.approx(3.0, abs=1.2)
    assert fw.global_std[0] == pytest.approx(2.0, abs=0.8)
    mu, sd = float(fw.local_mean[0]), float(fw.local_std[0])
    z = fw(np.array([[mu, mu + sd]]), np.array([fw.global_mean[0]]))
    assert z[:, 0] == pytest.approx([0.0, 1.0], abs=1e-6) and (z[:, 1] == 0.0).all()
    # the same features for every run on the game (fixed private seed)
    assert LocalFeatures.for_game(walk).to_json() == fw.to_json()


def test_fresh_policy_is_uniform_and_greedy_draws_nothing(small_warehouse):
    tab, gen, u, pi_g = small_warehouse
    pol = NeuralLocalPolicy.for_game(gen)
    assert np.allclose(pol.table(), 1 / 3)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    a = pol.act(np.array([[0, 1, 2]]), np.array([1]), rng)
    assert a.shape == (1, 3) and (a == 0).all()  # ties: lowest index
    assert rng.bit_generator.state == state
    b = pol.sampler().act(np.zeros((4, 500), int), np.zeros(4, int), rng)
    assert set(np.unique(b)) == {0, 1, 2} and abs((b == 2).mean() - 1 / 3) < 0.03
    lp = pol.to_local_policy(tab)
    assert isinstance(lp, am.LocalPolicy) and (lp.table.argmax(-1) == 0).all()


# --- neural L-LEARN -----------------------------------------------------------------------
def test_neural_l_learn_no_worse_than_induced_vi_fast(small_warehouse):
    """Through am.l_learn on the generative view: the TRPO policy is no worse than induced-VI
    against the same pi_g (same evaluator, paired, common random numbers), and much better
    than the uniform start."""
    tab, gen, u, pi_g = small_warehouse
    pol = am.l_learn(gen, pi_g, u, seed=0, estimate_value=False, **FAST)
    assert isinstance(pol, NeuralLocalPolicy) and pol.info["solver"] == "trpo"
    assert pol.info["variant"] == "population" and pol.info["iterations"] == 6
    assert pol.info["agent_steps"] == 6 * 4 * 30 * 200
    ivi = am.l_learn(tab, pi_g, solver="induced-vi", seed=0, estimate_value=False)
    diff, se, e_nl, e_ivi = paired(gen, pi_g, pol, ivi, 200, 60, seed=11)
    assert diff >= -2.0 * se - 1e-9, (e_nl, e_ivi)
    gain, se_u, _, _ = paired(gen, pi_g, pol, u, 200, 60, seed=11)
    assert gain > 5 * se_u


def test_representative_variant_and_reproducibility(small_warehouse):
    tab, gen, u, pi_g = small_warehouse
    a = am.l_learn(gen, pi_g, solver="trpo-representative", pi_l=u, seed=3, **FAST)
    b = neural_l_learn(gen, pi_g, u, seed=np.random.SeedSequence(3).spawn(2)[0],
                       variant="representative", **FAST)
    assert a.info["variant"] == "representative" and a.info["value"] is not None
    for x, y in zip(a.policy.state_dict().values(), b.policy.state_dict().values(),
                    strict=True):
        assert torch.equal(x, y)
    gain, se, _, _ = paired(gen, pi_g, a, u, 200, 60, seed=4)
    assert gain > 5 * se
    # warm start: continuing from a neural policy keeps its networks as the starting point
    c = neural_l_learn(gen, pi_g, a, seed=1, iterations=1, rollouts=2, horizon=5)
    assert c.info["warm_start"] and c.value_scale == a.value_scale
    with pytest.raises(ValueError, match="not accepted by neural L-LEARN"):
        am.l_learn(gen, pi_g, u, m=3)
    with pytest.raises(ValueError, match="solver"):
        am.l_learn(gen, pi_g, solver="direct")


def test_neural_l_learn_on_continuous_states():
    """Scalar continuous local states (standardized features, histogram observer): TRPO
    learns to walk towards the rewarded region."""

    def reset(rng, R):
        return np.zeros(R, dtype=np.int64), rng.uniform(-2, 2, size=(R, 100))

    def step(s_g, s_l, a_g, a_l, rng):
        move = np.where(a_l == 1, 0.2, np.where(a_l == 2, -0.2, 0.0))
        s_l2 = np.clip(s_l + move + 0.02 * rng.normal(size=s_l.shape), -2, 2)
        return s_g, s_l2, np.zeros(len(s_g)), np.exp(-((s_l - 1.0) ** 2) / 0.1)

    game = GenerativeGame(100, 0.9, 1, 3, reset, step, observe="histogram",
                          bins=[-1.0, 0.0, 1.0], num_global_states=1)
    pi_g = FunctionGlobalPolicy(5, lambda s_g, h: np.zeros(len(s_g), int))
    pol = neural_l_learn(game, pi_g, seed=0, iterations=8, rollouts=4, horizon=30, tracked=50)
    act = pol.act(np.array([[-1.5, 0.0, 1.8]]), np.array([0]), np.random.default_rng(0))
    assert act.tolist() == [[1, 1, 2]]
    gain = (am.evaluate(game, pi_g, pol, rollouts=32, horizon=30, seed=0).mean
            - am.evaluate(game, pi_g, UniformLocalPolicy(3), rollouts=32, horizon=30,
                          seed=0).mean)
    assert gain > 1.0


def test_local_policy_file_round_trip(small_warehouse, tmp_path):
    tab, gen, u, pi_g = small_warehouse
    pol = neural_l_learn(gen, pi_g, u, seed=0, iterations=2, rollouts=2, horizon=10)
    path = pol.save(tmp_path / "pi_l.pt", gen)
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"meta", "policy", "critic"}
    back = NeuralLocalPolicy.load(path, gen)
    assert np.array_equal(back.table(), pol.table()) and back.greedy == pol.greedy
    assert back.value_scale == pol.value_scale and back.info["iterations"] == 2
    other = am.envs.make("random", n_sg=5, n_ag=5, n_sl=5, n_al=3, n=20).as_generative()
    with pytest.raises(ValueError, match="policy made for game .* not for"):
        NeuralLocalPolicy.load(path, other)
    assert NeuralLocalPolicy.load(path, other, strict=False).n_al == 3
    with pytest.raises(ValueError, match="features"):
        NeuralLocalPolicy.load(path, am.envs.make("random", n_sl=4, n_al=3).as_generative(),
                               strict=False)
    from altmarl.continuous.nets import load_state, save_state
    damaged = load_state(path)
    damaged.pop("critic")
    save_state(tmp_path / "bad.pt", damaged)
    with pytest.raises(ValueError, match="expected 'meta', 'policy' and 'critic' entries"):
        NeuralLocalPolicy.load(tmp_path / "bad.pt", gen)


@pytest.mark.slow
@pytest.mark.parametrize("k", [5, 10])
def test_neural_l_learn_no_worse_than_induced_vi_warehouse(k):
    """The check of issue 15 on the paper's warehouse (n = 1000): against the tabular
    G-LEARN policy, neural L-LEARN (20 TRPO iterations) is no worse than induced-VI on the
    same evaluator (400 x 100 rollouts, common random numbers)."""
    tab = am.envs.make("warehouse", n=1000)
    gen = tab.as_generative()
    u = am.LocalPolicy.uniform(tab)
    pi_g = am.g_learn(tab, u, k=k, m=30, seed=0)
    pol = am.l_learn(gen, pi_g, u, seed=0, estimate_value=False)
    ivi = am.l_learn(tab, pi_g, solver="induced-vi", seed=0, estimate_value=False)
    diff, se, _, _ = paired(gen, pi_g, pol, ivi, 400, 100, seed=7)
    assert diff >= -2.0 * se - 1e-9


# --- behaviour cloning (warm start from a hand-written rule) ----------------------------
def test_imitate_clones_a_deterministic_rule(small_warehouse):
    tab, gen, _, _ = small_warehouse
    rng = np.random.default_rng(3)
    actions = rng.integers(0, tab.n_al, size=(tab.n_sl, tab.n_sg))
    rule = am.LocalPolicy.deterministic(tab, actions)
    pol = NeuralLocalPolicy.imitate(gen, rule, confidence=0.9, seed=0)
    assert pol.info["agreement"] == 1.0
    assert (pol.table().argmax(-1) == actions).all()
    # the sampled policy explores: every action keeps about (1 - 0.9) / |A_l| probability
    assert pol.table().min() > 0.5 * 0.1 / tab.n_al
    assert pol.info["max_prob_error"] < 0.05
    # greedy acting plays the rule exactly, with no random draws
    s_l = rng.integers(0, tab.n_sl, size=(3, 50))
    s_g = rng.integers(0, tab.n_sg, size=3)
    g = np.random.default_rng(0)
    assert (pol.act(s_l, s_g, g) == actions[s_l, s_g[:, None]]).all()
    assert g.random() == np.random.default_rng(0).random()
    # same seed, same network
    again = NeuralLocalPolicy.imitate(gen, rule, confidence=0.9, seed=0)
    assert np.array_equal(again.table(), pol.table())


def test_imitate_rejects_bad_targets(small_warehouse):
    tab, gen, u, _ = small_warehouse
    with pytest.raises(ValueError, match="probability table of shape"):
        NeuralLocalPolicy.imitate(gen, UniformLocalPolicy(tab.n_al))
    with pytest.raises(ValueError, match="confidence"):
        NeuralLocalPolicy.imitate(gen, u, confidence=1.5)
    cont = am.envs.make("continuous-warehouse", n=50)
    with pytest.raises(ValueError, match="discrete local and global states"):
        NeuralLocalPolicy.imitate(cont, u)
