"""Continuous warehouse, neural G-LEARN, TRPO L-LEARN and the alternating loop
(paper Appendix G.2, SPEC 8.2)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2, multivariate_hypergeom

from altmarl._random import child as derive
from altmarl.continuous.env import (
    ContinuousWarehouse,
    constant_global,
    mode_global,
    random_global,
    random_local,
    simulate,
    streams,
    subsample_histogram,
)
from altmarl.continuous.evaluation import evaluate_continuous, random_play

torch = pytest.importorskip("torch")

from altmarl.continuous.alternating import (  # noqa: E402
    ContinuousConfig,
    load_policies,
    run_continuous,
)
from altmarl.continuous.global_agent import (  # noqa: E402
    GlobalAgent,
    g_learn_ce,
    mode_accuracy_at_reset,
    rollout_q_values,
)
from altmarl.continuous.nets import PolicyTable, forward_chunked, load_state, mlp  # noqa: E402
from altmarl.continuous.sweep import quick_config, run_sweep  # noqa: E402
from altmarl.continuous.trpo import (  # noqa: E402
    Batch,
    LocalAgent,
    TRPOConfig,
    conjugate_gradient,
    l_learn_trpo,
    trpo_step,
)

torch.set_num_threads(1)


def tiny_config(**kw: object) -> ContinuousConfig:
    return quick_config().replace(**kw)


# ---------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------


def test_constants_are_spec_8_2() -> None:
    env = ContinuousWarehouse()
    assert env.n == 500 and env.gamma == 0.95
    assert env.targets == (-1.6, -0.8, 0.0, 0.8, 1.6)
    assert env.moves == (0.0, 0.05, -0.05)
    assert (env.steer, env.sigma_g, env.sigma_l) == (0.6, 0.08, 0.04)
    assert (env.r_g_amp, env.r_g_width, env.r_l_amp, env.r_l_width) == (5.0, 0.3, 10.0, 0.2)
    np.testing.assert_allclose(env.bin_edges, [-2, -1.2, -0.4, 0.4, 1.2, 2])
    np.testing.assert_allclose(env.bin_centres, env.targets, atol=1e-12)
    # a move costs 5 * 0.05 = 0.25
    assert env.r_l(np.array(0.3), np.array(0.3), np.array(1)) == pytest.approx(10 - 0.25)
    assert env.r_g(np.array([0.8]), np.array([3]))[0] == pytest.approx(5.0)
    assert env.r_g(np.array([0.5]), np.array([3]))[0] == pytest.approx(5 * math.exp(-0.09 / 0.18))
    assert env.r_l(np.array(0.0), np.array(0.2), np.array(0)) == pytest.approx(10 * math.exp(-0.5))


@pytest.mark.parametrize("field,value", [("n", 1), ("gamma", 1.0), ("steer", 1.5),
                                         ("sigma_l", 0.0), ("n_bins", 1), ("init_split", 0.3),
                                         ("move_cost", -1.0)])
def test_env_validation_names_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ContinuousWarehouse(**{field: value})


def test_env_json_roundtrip_and_check_k() -> None:
    env = ContinuousWarehouse(n=40)
    assert ContinuousWarehouse.from_json(json.loads(json.dumps(env.to_json()))) == env
    with pytest.raises(ValueError, match="unknown"):
        ContinuousWarehouse.from_json({"n": 3, "bogus": 1})
    for bad in (0, 41, 2.5, True):
        with pytest.raises(ValueError, match="k ="):
            env.check_k(bad)


def test_bins_and_mode() -> None:
    env = ContinuousWarehouse()
    edges = np.linspace(-2, 2, 6)
    x = np.concatenate([edges, edges - 1e-9, edges + 1e-9, [0.0, 0.3999, 0.4, 1.9999]])
    x = np.clip(x, -2, 2)
    for xx in (x, x.astype(np.float32)):
        expect = [int(np.histogram([v], bins=edges)[0].argmax()) for v in xx]
        np.testing.assert_array_equal(env.bin_of(xx), expect)
    counts = env.bin_counts(np.array([[-2.0, 0.0, 0.1, 2.0], [1.5, 1.6, -1.9, -1.5]]))
    np.testing.assert_array_equal(counts, [[1, 0, 2, 0, 1], [2, 0, 0, 0, 2]])
    np.testing.assert_array_equal(env.population_mode(counts), [2, 0])  # tie -> lowest bin


def test_dynamics_formulas() -> None:
    env = ContinuousWarehouse()
    s_g = np.array([0.0, 1.9, -1.0])
    a_g = np.array([4, 4, 0])
    out = env.step_global(s_g, a_g, np.array([0.0, 10.0, 1.0]))
    np.testing.assert_allclose(out, [0.96, 2.0, -1.0 + 0.6 * -0.6 + 0.08])
    s_l = np.array([[1.99, 0.0, -1.99]], dtype=np.float32)
    out_l = env.step_local(s_l, np.array([[1, 2, 2]]), np.zeros((1, 3), dtype=np.float32))
    np.testing.assert_allclose(out_l, [[2.0, -0.05, -2.0]], atol=1e-6)


def test_reset_matches_spec_and_reset_counts_law() -> None:
    env = ContinuousWarehouse(n=500)
    rng = np.random.default_rng(1)
    s_g, s_l = env.reset(rng, 4000)
    assert s_g.min() >= -1 and s_g.max() <= 1 and abs(s_g.mean()) < 0.05
    assert s_l.min() >= -2 and s_l.max() <= 2
    # the first int(0.55 n) robots form the main cluster: their median is a bin centre
    med_main = np.median(s_l[:, :275], axis=1)
    med_sec = np.median(s_l[:, 275:], axis=1)
    assert np.all(np.min(np.abs(med_main[:, None] - np.asarray(env.targets)), axis=1) < 0.08)
    assert np.all(np.abs(med_main - med_sec) > 0.7)  # two distinct centres
    c1 = env.bin_counts(s_l)
    _, c2 = env.reset_counts(rng, 4000)
    assert np.all(c2.sum(axis=1) == 500)
    se = np.sqrt(c1.var(axis=0) / 4000 + c2.var(axis=0) / 4000)
    assert np.all(np.abs(c1.mean(axis=0) - c2.mean(axis=0)) < 4 * se)
    np.testing.assert_allclose(c1.std(axis=0), c2.std(axis=0), rtol=0.08)
    m1 = np.bincount(env.population_mode(c1), minlength=5) / 4000
    m2 = np.bincount(env.population_mode(c2), minlength=5) / 4000
    np.testing.assert_allclose(m1, 0.2, atol=0.03)
    np.testing.assert_allclose(m2, 0.2, atol=0.03)


@pytest.mark.parametrize("method", ["agents", "counts"])
def test_subsample_is_multivariate_hypergeometric(method: str) -> None:
    env = ContinuousWarehouse(n=10)
    s_l = np.repeat(np.array([[-1.6] * 5 + [0.0] * 3 + [1.6] * 2]), 6000, axis=0)
    h = subsample_histogram(env, s_l, 4, np.random.default_rng(0), method)
    assert np.all(h.sum(axis=1) == 4) and np.all(h <= env.bin_counts(s_l))
    keys, freq = np.unique(h[:, [0, 2, 4]], axis=0, return_counts=True)
    p = multivariate_hypergeom.pmf(keys, m=[5, 3, 2], n=4)
    assert p.sum() == pytest.approx(1.0)
    stat = float(((freq - 6000 * p) ** 2 / (6000 * p)).sum())
    assert stat < chi2.ppf(0.999, len(keys) - 1)


@given(n=st.integers(2, 30), k=st.integers(1, 30), seed=st.integers(0, 10**6))
def test_subsample_without_replacement_property(n: int, k: int, seed: int) -> None:
    k = min(k, n)
    env = ContinuousWarehouse(n=n)
    rng = np.random.default_rng(seed)
    s_l = rng.uniform(-2, 2, (3, n))
    counts = env.bin_counts(s_l)
    for method in ("agents", "counts"):
        h = subsample_histogram(env, s_l, k, rng, method)
        assert np.all(h.sum(axis=1) == k) and np.all(h >= 0) and np.all(h <= counts)
        if k == n:
            np.testing.assert_array_equal(h, counts)


def _reference_simulate(env: ContinuousWarehouse, k: int, R: int, H: int, seed: int,
                        pi_l_table: np.ndarray):
    """Per-robot loop over the same random streams (slow oracle for :func:`simulate`).
    ``pi_l_table[a]`` = probability of local action a (state independent); dispatcher =
    fullest bin of its sample."""
    rng = streams(seed)
    s_g, s_l = env.reset(rng["init"], R)
    s_l = s_l.astype(np.float32)
    rewards = np.zeros((R, H))
    cdf = np.cumsum(pi_l_table)
    for t in range(H):
        keys = rng["subsample"].random((R, env.n))
        rng["global_action"].random(R)
        u = rng["local_action"].random((R, env.n), dtype=np.float32)
        g_noise = rng["global_noise"].standard_normal(R)
        l_noise = rng["local_noise"].standard_normal((R, env.n), dtype=np.float32)
        for r in range(R):
            chosen = np.argsort(keys[r])[:k]
            hist = np.zeros(env.n_bins, dtype=int)
            for i in chosen:
                hist[env.bin_of(s_l[r, i])] += 1
            a_g = int(np.argmax(hist))
            tot = 0.0
            new = np.empty(env.n, dtype=np.float32)
            for i in range(env.n):
                a = int(np.sum(u[r, i] > cdf[:-1]))
                tot += float(env.r_l(np.float64(s_l[r, i]), s_g[r], np.array(a)))
                new[i] = min(max(s_l[r, i] + np.float32(env.moves[a])
                                 + np.float32(env.sigma_l * l_noise[r, i]), env.low), env.high)
            rewards[r, t] = env.r_g(np.array([s_g[r]]), np.array([a_g]))[0] + tot / env.n
            s_l[r] = new
            s_g[r] = min(max(s_g[r] + env.steer * (env.targets[a_g] - s_g[r])
                             + env.sigma_g * g_noise[r], env.low), env.high)
    return rewards


def test_simulate_matches_per_robot_reference() -> None:
    env = ContinuousWarehouse(n=7)
    table = np.array([0.2, 0.5, 0.3])
    cdf = np.cumsum(table)[:-1].astype(np.float32)

    def pi_l(s_l, s_g, u):
        return (u[..., None] > cdf).sum(axis=-1)

    tr = simulate(env, mode_global(), pi_l, 3, 2, 6, 11)
    ref = _reference_simulate(env, 3, 2, 6, 11, table)
    np.testing.assert_allclose(tr.rewards, ref, rtol=1e-5, atol=1e-5)


def test_common_random_numbers_and_pure_seeds() -> None:
    env = ContinuousWarehouse(n=50)
    ss = np.random.SeedSequence(5)
    a = simulate(env, constant_global(2), random_local(3), 5, 3, 8, ss)
    b = simulate(env, constant_global(2), random_local(3), 5, 3, 8, ss)  # same object again
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert derive(ss, 1).generate_state(2).tolist() == derive(ss, 1).generate_state(2).tolist()
    # a different dispatcher shares initial states and the first step's local randomness
    c = simulate(env, constant_global(4), random_local(3), 5, 3, 8, ss)
    np.testing.assert_array_equal(a.counts[:, 0], c.counts[:, 0])
    np.testing.assert_array_equal(a.s_g[:, :1], c.s_g[:, :1])
    np.testing.assert_array_equal(a.counts[:, 1], c.counts[:, 1])  # robots ignore s_g here
    # repeat: row j R0 + i reuses the randomness of row i
    d = simulate(env, constant_global(1), random_local(3), 5, 6, 8, 3, repeat=2)
    np.testing.assert_array_equal(d.rewards[:3], d.rewards[3:])


def test_random_play_matches_authors_number() -> None:
    # authors' code: random play 37.8 +- 10.9 (horizon 50, discounted, n = 500)
    ev = random_play(ContinuousWarehouse(), rollouts=200, horizon=100, seed=0)
    assert abs(ev.short[50]["mean"] - 37.8) < 3 * ev.short[50]["std"] / math.sqrt(200) + 0.5
    assert ev.short[50]["std"] == pytest.approx(10.9, rel=0.2)
    assert ev.mean > ev.short[50]["mean"]
    assert ev.occupancy.shape == (100, 5)
    np.testing.assert_allclose(ev.occupancy.sum(axis=1), 1.0)


def test_evaluation_validates() -> None:
    env = ContinuousWarehouse(n=20)
    with pytest.raises(ValueError, match="rollouts"):
        evaluate_continuous(env, random_global(5), random_local(3), 2, rollouts=0)
    with pytest.raises(ValueError, match="subsample"):
        simulate(env, random_global(5), random_local(3), 2, 2, 2, 0, subsample="bad")
    with pytest.raises(ValueError, match="repeat"):
        simulate(env, random_global(5), random_local(3), 2, 3, 2, 0, repeat=2)


def test_core_imports_without_torch() -> None:
    code = ("import sys, altmarl, altmarl.cli, altmarl.continuous, altmarl.continuous.env, "
            "altmarl.continuous.evaluation; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------


def test_forward_chunked_is_the_network() -> None:
    torch.manual_seed(0)
    net = mlp(2, 3)
    x = torch.randn(20000, 2)
    with torch.no_grad():
        ref = net(x)
    assert torch.equal(forward_chunked(net, x), ref)
    assert torch.allclose(mlp(1, 1)[1](torch.tensor([0.3])), torch.tanh(torch.tensor([0.3])))


def test_policy_table_close_to_network() -> None:
    torch.manual_seed(1)
    net = mlp(2, 3)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)  # a sharper policy than at initialisation
    tab = PolicyTable(net, -2, 2, 3, grid=201)
    rng = np.random.default_rng(0)
    s_l = rng.uniform(-2, 2, (20, 300)).astype(np.float32)
    s_g = rng.uniform(-2, 2, 20)
    x = np.stack([s_l, np.broadcast_to(s_g[:, None], s_l.shape)], -1).reshape(-1, 2) / 2
    p_net = torch.softmax(net(torch.from_numpy(x.astype(np.float32))), 1).detach().numpy()
    p_tab = tab.probs(s_l, s_g).reshape(-1, 3)
    np.testing.assert_allclose(p_tab.sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(p_tab - p_net).max() < 2e-3
    g = tab.greedy(s_l, s_g).reshape(-1)
    top2 = np.sort(p_net, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 5e-3
    np.testing.assert_array_equal(g[clear], p_net.argmax(axis=1)[clear])
    u = rng.random(s_l.shape, dtype=np.float32)
    a = tab.sample(s_l, s_g, u).reshape(-1)
    freq = np.bincount(a, minlength=3) / a.size
    np.testing.assert_allclose(freq, p_tab.mean(axis=0), atol=0.01)


def test_local_agent_starts_uniform_and_greedy_stay() -> None:
    env = ContinuousWarehouse(n=20)
    la = LocalAgent(env, init_seed=0, table_grid=21)
    p = la.probs(np.array([[0.1, -1.3]]), np.array([0.5]))
    np.testing.assert_allclose(p, 1 / 3)
    s_l = np.zeros((2, 20), dtype=np.float32)
    s_g = np.array([0.0, 1.0])
    assert not la.actor(greedy=True)(s_l, s_g, np.zeros(0)).any()
    assert not la.actor(greedy=True, exact=True)(s_l, s_g, np.zeros(0)).any()


def test_global_numpy_actor_matches_torch() -> None:
    env = ContinuousWarehouse(n=100)
    ga = GlobalAgent(env, 10, init_seed=3)
    rng = np.random.default_rng(0)
    hist = rng.multinomial(10, np.full(5, 0.2), size=500)
    s_g = rng.uniform(-2, 2, 500)
    out = ga.outputs(s_g, hist)
    top2 = np.sort(out, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    np.testing.assert_array_equal(ga.act(s_g, hist)[clear], out.argmax(axis=1)[clear])
    with pytest.raises(ValueError, match="k ="):
        GlobalAgent(env, 101)


# ---------------------------------------------------------------------------
# learners
# ---------------------------------------------------------------------------


def test_ce_g_learn_learns_the_mode_with_full_information() -> None:
    env = ContinuousWarehouse(n=40)
    ga = GlobalAgent(env, 40, init_seed=0)
    before = mode_accuracy_at_reset(ga, samples=500, seed=1)
    info = g_learn_ce(ga, np.random.default_rng(0), samples=1000, epochs=150, lr=1e-2)
    after = mode_accuracy_at_reset(ga, samples=500, seed=1)
    assert info["samples"] == 1000
    assert after > 0.9 > before + 0.2


def test_rollout_q_one_step_is_the_stage_reward() -> None:
    env = ContinuousWarehouse(n=30)
    rng = np.random.default_rng(2)
    s_g, s_l = env.reset(rng, 4)
    s_l = s_l.astype(np.float32)
    stay = lambda s, g, u: np.zeros(s.shape, dtype=np.int8)  # noqa: E731
    q = rollout_q_values(env, mode_global(), stay, 5, s_g, s_l, 1, 0)
    local = (10 * np.exp(-((s_l - s_g[:, None].astype(np.float32)) ** 2) / 0.08)).mean(axis=1)
    for a in range(5):
        expect = env.r_g(s_g, np.full(4, a)) + local
        np.testing.assert_allclose(q[:, a], expect, rtol=1e-5)
    # longer branches: the best first action is the target nearest to s_g... or to the robots
    q10 = rollout_q_values(env, mode_global(), stay, 30, s_g, s_l, 10, 0)
    assert q10.shape == (4, 5) and np.all(np.isfinite(q10))


def test_conjugate_gradient_solves_spd_system() -> None:
    rng = np.random.default_rng(0)
    M = rng.normal(size=(6, 6))
    A = torch.tensor(M @ M.T + 6 * np.eye(6))
    b = torch.tensor(rng.normal(size=6))
    x = conjugate_gradient(lambda v: A @ v, b, iters=10)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(A.numpy(), b.numpy()), atol=1e-8)


def test_trpo_step_respects_trust_region_and_improves() -> None:
    env = ContinuousWarehouse(n=20)
    la = LocalAgent(env, init_seed=0, table_grid=21)
    rng = np.random.default_rng(0)
    B = 3000
    obs = torch.from_numpy(rng.uniform(-1, 1, (B, 2)).astype(np.float32))
    act = torch.from_numpy(rng.integers(0, 3, B))
    adv = torch.where(act == 1, 1.0, -0.5)
    adv = (adv - adv.mean()) / adv.std()
    batch = Batch(obs, act, torch.zeros(B), adv.float(), 0.0, 0)
    cfg = TRPOConfig(max_kl=0.01)
    p0 = torch.softmax(la.policy(obs), 1).detach()
    info = trpo_step(la, batch, cfg, rng)
    p1 = torch.softmax(la.policy(obs), 1).detach()
    kl = float((p0 * (p0.log() - p1.log())).sum(1).mean())
    assert info["accepted_step"] is not None
    assert 0 < kl <= 1.5 * cfg.max_kl
    assert float(p1[:, 1].mean()) > float(p0[:, 1].mean()) + 0.02
    assert info["surrogate_after"] > info["surrogate_before"]


def test_trpo_config_validation() -> None:
    for field, bad in (("max_kl", 0.0), ("cg_iters", 0), ("damping", -1.0), ("kl_accept", 0.5),
                       ("gae_lambda", 1.5), ("fisher_samples", -1)):
        with pytest.raises(ValueError, match=field):
            TRPOConfig(**{field: bad})


def test_l_learn_trpo_changes_the_policy() -> None:
    env = ContinuousWarehouse(n=40)
    la = LocalAgent(env, init_seed=1, table_grid=21)
    before = {k: v.clone() for k, v in la.policy.state_dict().items()}
    info = l_learn_trpo(la, constant_global(2), 4, np.random.SeedSequence(0), iterations=2,
                        rollouts=3, horizon=15, tracked=10, cfg=TRPOConfig(critic_epochs=1))
    assert info["agent_steps"] == 2 * 3 * 15 * 40
    assert len(info["iterations"]) == 2
    changed = any(not torch.equal(before[k], v) for k, v in la.policy.state_dict().items())
    assert changed == any(i["accepted_step"] is not None for i in info["iterations"])


# ---------------------------------------------------------------------------
# alternating loop, checkpoints, sweep
# ---------------------------------------------------------------------------


def test_config_validation_and_json() -> None:
    cfg = ContinuousConfig()
    assert ContinuousConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    assert cfg.alternations == 30 and cfg.n == 500 and cfg.trpo.max_kl == 0.01
    for field, bad in (("g_method", "dqn"), ("local_eval", "x"), ("update_rollouts", 1),
                       ("eta", -1.0), ("alternations", 0)):
        with pytest.raises(ValueError, match=field):
            cfg.replace(**{field: bad})
    with pytest.raises(ValueError, match="unknown"):
        ContinuousConfig.from_json({"bogus": 1})
    # pydantic style (altmarl.settings): dotted keys into the TRPO block, frozen copies
    with pytest.raises(ValueError, match=r"config: trpo\.max_kl: Input should be greater than 0"):
        ContinuousConfig.from_json({"trpo": {"max_kl": 0.0}})
    assert cfg.replace(n=60).n == 60 and cfg.n == 500
    assert cfg.replace(trpo=TRPOConfig(max_kl=0.02)).trpo.max_kl == 0.02


@pytest.mark.parametrize("g_method", ["ce", "rollout"])
def test_run_is_deterministic_and_records_history(g_method: str) -> None:
    cfg = tiny_config(g_method=g_method)
    a = run_continuous(3, seed=1, config=cfg)
    b = run_continuous(3, seed=1, config=cfg)
    assert a.value == b.value
    assert [h["v_end"] for h in a.history] == [h["v_end"] for h in b.history]
    assert len(a.history) == 2
    for h in a.history:
        for side in ("global", "local"):
            assert h[side]["decision"] in ("accept", "reject", "no-improvement")
            assert h[side]["eta"] >= 0
    # the table of a barely trained local network (near-ties between actions) is within a
    # few percent of the network's value
    assert a.extra["table_value"] == pytest.approx(a.value, rel=0.03)
    summ = json.loads(json.dumps(a.summary()))
    assert summ["format"] == "altmarl-continuous-result/1"


def test_accept_all_plays_every_proposal() -> None:
    res = run_continuous(2, seed=3, config=tiny_config(accept_all=True))
    for h in res.history:
        assert h["v_end"] == pytest.approx(h["local"]["v_new"])
        assert h["local"]["v_old"] == pytest.approx(h["global"]["v_new"])


def test_resume_after_interruption_gives_same_numbers(tmp_path) -> None:
    cfg = tiny_config(alternations=3, patience=3)
    ref = run_continuous(2, seed=4, config=cfg)

    class Stop(Exception):
        pass

    def stop_after_first(t: int, entry: dict) -> None:
        if t == 0:
            raise Stop

    with pytest.raises(Stop):
        run_continuous(2, seed=4, config=cfg, checkpoint_dir=tmp_path, on_sweep=stop_after_first)
    meta = json.loads((tmp_path / "state.json").read_text())
    assert meta["next_alternation"] == 1
    res = run_continuous(2, seed=4, config=cfg, checkpoint_dir=tmp_path)
    assert [h["v_end"] for h in res.history] == [h["v_end"] for h in ref.history]
    assert res.value == ref.value
    with pytest.raises(ValueError, match="differs"):
        run_continuous(2, seed=5, config=cfg, checkpoint_dir=tmp_path)


def test_policies_roundtrip_and_unsafe_file_rejected(tmp_path) -> None:
    cfg = tiny_config(alternations=1)
    res = run_continuous(2, seed=0, config=cfg)
    res.save(tmp_path)
    ga, la = load_policies(tmp_path / "policies.pt", res.env, 2, cfg)
    for a, b in zip(ga.net.parameters(), res.global_agent.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(la.policy[0].weight, res.local_agent.policy[0].weight)
    # a pickled arbitrary object is refused (weights_only=True)
    bad = tmp_path / "bad.pt"
    torch.save({"global": {"x": torch.zeros(1)}, "obj": object()}, bad)
    with pytest.raises(ValueError, match="checkpoint"):
        load_state(bad)
    with pytest.raises(ValueError, match="missing"):
        torch.save({"global": {}}, tmp_path / "partial.pt")
        load_policies(tmp_path / "partial.pt", res.env, 2, cfg)


def test_sweep_writes_run_directory_and_resumes(tmp_path) -> None:
    cfg = tiny_config(alternations=1, n=30)
    out = tmp_path / "sw"
    summ = run_sweep(out, ks=[1, 3], seeds=1, config=cfg, workers=1, progress=False)
    assert summ["complete"] and summ["runs_done"] == 2
    for name in ("config.json", "summary.json", "per_k.csv", "per_run.csv", "reward_vs_k.png",
                 "runtime_vs_k.png", "mode_accuracy_vs_k.png", "zone_heatmap.png"):
        assert (out / name).exists(), name
    assert [r["k"] for r in summ["per_k"]] == [1, 3]
    assert summ["random"]["value"]["n"] == 1
    res_file = out / "runs" / "k001_s000" / "result.json"
    mtime = res_file.stat().st_mtime_ns
    again = run_sweep(out, ks=[1, 3], seeds=1, config=cfg, workers=1, progress=False, plots=False)
    assert res_file.stat().st_mtime_ns == mtime
    assert again["per_k"][0]["value"]["mean"] == summ["per_k"][0]["value"]["mean"]
    assert json.loads((out / "summary.json").read_text())["per_k"][0]["value"]["std"] is None
    with pytest.raises(ValueError, match="another configuration"):
        run_sweep(out, ks=[1], seeds=1, config=cfg.replace(ce_epochs=2), workers=1,
                  progress=False)


def _per_run(out) -> list[tuple]:
    import csv

    with open(out / "per_run.csv") as fh:
        return [(r["k"], r["seed"], r["value"], r["table_value"], r["value_h50"])
                for r in csv.DictReader(fh)]


def test_sweep_runs_through_the_backends_and_numbers_do_not_depend_on_workers(tmp_path) -> None:
    """The k-sweep uses altmarl.experiments.backends: a process pool of 2 workers gives the
    numbers of the in-process run, run by run."""
    cfg = tiny_config(alternations=1, n=30)
    a = run_sweep(tmp_path / "a", ks=[1, 2], seeds=1, config=cfg, workers=1, progress=False,
                  plots=False)
    b = run_sweep(tmp_path / "b", ks=[1, 2], seeds=1, config=cfg, workers=2, progress=False,
                  plots=False)
    assert [r["value"]["mean"] for r in a["per_k"]] == [r["value"]["mean"] for r in b["per_k"]]
    assert _per_run(tmp_path / "a") == _per_run(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["backend"] == "local"
    with pytest.raises(ValueError, match="backend"):
        run_sweep(tmp_path / "c", ks=[1], seeds=1, config=cfg, backend="dask", progress=False)
    with pytest.raises(ValueError, match="address"):
        run_sweep(tmp_path / "c", ks=[1], seeds=1, config=cfg, address="ray://x:1",
                  progress=False)


@pytest.mark.slow
def test_sweep_on_ray_matches_local(tmp_path) -> None:
    pytest.importorskip("ray")
    cfg = tiny_config(alternations=1, n=30)
    run_sweep(tmp_path / "a", ks=[1, 2], seeds=2, config=cfg, workers=1, progress=False,
              plots=False)
    run_sweep(tmp_path / "b", ks=[1, 2], seeds=2, config=cfg, workers=2, backend="ray",
              progress=False, plots=False)
    assert _per_run(tmp_path / "a") == _per_run(tmp_path / "b")


def test_cli_continuous(tmp_path) -> None:
    from typer.testing import CliRunner

    from altmarl.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["continuous", "--help"])
    assert r.exit_code == 0 and "sweep" in r.output and "random" in r.output
    r = runner.invoke(app, ["continuous", "random", "--seeds", "2", "--rollouts", "5",
                            "--horizon", "10", "--n", "20"])
    assert r.exit_code == 0, r.output
    assert "random play" in r.output
    r = runner.invoke(app, ["continuous", "run", "--quick", "--k", "2", "--out",
                            str(tmp_path / "run"), "--no-progress", "--set", "alternations=1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "result.json").exists()
    assert not (tmp_path / "run" / "checkpoint").exists()
    r = runner.invoke(app, ["continuous", "run", "--quick", "--set", "g_method=bad",
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "g_method" in r.output


def test_evaluation_interval_uses_student_t_over_rollouts() -> None:
    """The 95% interval over R rollouts is mean +- t_{0.975, R-1} * s.e., wider than the
    normal one for few rollouts."""
    from altmarl.evaluation import Z95, student_t_quantile

    ev = random_play(ContinuousWarehouse(n=20), rollouts=5, horizon=10, seed=0)
    half = (ev.ci95[1] - ev.ci95[0]) / 2
    assert ev.ci95[0] + half == pytest.approx(ev.mean)
    assert half == pytest.approx(student_t_quantile(0.975, 4) * ev.stderr)
    assert half > 1.4 * Z95 * ev.stderr  # 2.776 vs 1.96
