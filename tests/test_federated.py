"""Federated optimization example (paper Example 2.6, SPEC 8.3): simulator, model
estimation, controllers, and a small end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import altmarl as am
from altmarl.federated.controllers import (
    ExploreController,
    FedAvgController,
    FixedController,
    PolicyController,
    run_episode,
)
from altmarl.federated.experiment import (
    FederatedExperiment,
    collect,
    load_game,
    read_summary,
    save_game,
)
from altmarl.federated.game import TransitionCounts, collect_tabular, estimate_game
from altmarl.federated.simulator import (
    FederatedConfig,
    FederatedSimulator,
    check_ks_within_clients,
    client_losses,
    load_digits_arrays,
    local_train,
    make_federation,
    val_gradient,
    val_metrics,
)

SMALL = FederatedConfig(n_clients=40, samples_per_client=16, horizon=8)


@pytest.fixture(scope="module")
def digits():
    return load_digits_arrays()


@pytest.fixture
def sim(digits):
    return FederatedSimulator(SMALL, make_federation(SMALL, 0, digits))


# ---------------------------------------------------------------------------
# data and model
# ---------------------------------------------------------------------------


def test_federation_shapes_and_label_skew(digits):
    cfg = FederatedConfig(n_clients=200, samples_per_client=20, alpha=0.1)
    fed = make_federation(cfg, 1, digits)
    assert fed.X.shape == (200, 20, 65) and fed.Y.shape == (200, 20, 10)
    assert np.all(fed.X[..., -1] == 1.0) and fed.X.min() >= 0 and fed.X.max() <= 1
    np.testing.assert_array_equal(fed.Y.argmax(-1), fed.labels)
    # the images of a shard carry their labels
    X, y = digits
    val_rows = {r.tobytes() for r in fed.X_val}
    assert fed.X_val.shape[0] == round(0.25 * X.shape[0])
    assert not any(fed.X[i, j].tobytes() in val_rows for i in range(5) for j in range(20))
    # non-IID: the largest class of a shard holds most of it; IID shards are mixed
    share = np.bincount(fed.labels[0], minlength=10).max() / 20
    skew = np.mean([np.bincount(lab, minlength=10).max() / 20 for lab in fed.labels])
    iid = make_federation(cfg, 1, digits, iid=True)
    skew_iid = np.mean([np.bincount(lab, minlength=10).max() / 20 for lab in iid.labels])
    assert skew > 0.6 > 0.35 > skew_iid
    assert 0 < share <= 1


def test_federation_reproducible(digits):
    a = make_federation(SMALL, 7, digits)
    b = make_federation(SMALL, 7, digits)
    c = make_federation(SMALL, 8, digits)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.labels, c.labels)


def test_local_train_batched_equals_per_client(sim):
    fed = sim.fed
    rng = np.random.default_rng(0)
    W0 = rng.normal(0, 0.1, (65, 10))
    batched = local_train(fed.X[:6], fed.Y[:6], W0, 3, 0.7, 1e-3)
    for i in range(6):
        one = local_train(fed.X[i:i + 1], fed.Y[i:i + 1], W0, 3, 0.7, 1e-3)[0]
        np.testing.assert_allclose(batched[i], one, rtol=1e-12, atol=1e-12)
    # gradient steps lower every client's regularized loss (small step, convex loss)
    before = client_losses(fed, W0, 1e-3)[:6]
    after = np.array([client_losses(fed, batched[i], 1e-3)[i] for i in range(6)])
    assert np.all(after < before)


def test_val_gradient_matches_finite_differences(sim):
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.2, (65, 10))
    g = val_gradient(sim.fed, W)
    for d, c in [(3, 2), (64, 7), (20, 0)]:
        E = np.zeros_like(W)
        E[d, c] = 1e-6
        fd = (val_metrics(sim.fed, W + E)[0] - val_metrics(sim.fed, W - E)[0]) / 2e-6
        assert g[d, c] == pytest.approx(fd, rel=1e-4, abs=1e-8)


# ---------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------


def test_fedavg_on_iid_data_learns(digits):
    cfg = SMALL.replace(n_clients=60)
    sim = FederatedSimulator(cfg, make_federation(cfg, 0, digits, iid=True))
    log = run_episode(sim, FixedController(0, 2), 10, np.random.default_rng(0))
    assert log.val_acc[0] < 0.2  # the zero model predicts one class
    assert log.val_acc[-1] > 0.85
    assert np.all(np.diff(log.val_loss) < 0)  # loss decreases every round
    assert log.uploads.sum() == 10 * 60


def test_round_aggregates_mean_of_local_updates(sim):
    cfg = sim.config
    rng = np.random.default_rng(3)
    sim.step(1, np.full(sim.n, 1))  # move away from W = 0
    W = sim.W.copy()
    a_l = rng.integers(0, cfg.n_al, sim.n)
    res = sim.step(2, a_l)
    delta = np.zeros_like(W)
    for i in range(sim.n):  # reference: one client at a time
        s = cfg.local_steps[a_l[i]]
        if s:
            delta += local_train(sim.fed.X[i:i + 1], sim.fed.Y[i:i + 1], W, s, cfg.local_lr,
                                 cfg.l2)[0] - W
    P = np.count_nonzero(a_l)
    np.testing.assert_allclose(sim.W, W + cfg.server_lrs[2] / P * delta, atol=1e-12)
    assert res.uploads == np.count_nonzero(a_l)
    assert res.steps == sum(cfg.local_steps[a] for a in a_l)
    assert res.reward == pytest.approx(res.r_g + res.r_l.mean())


def test_stage_reward_is_progress_minus_cost(sim):
    """SPEC eq. (1) with the documented rewards: r_g + mean r_i = c0 + 1 + c_max +
    progress_scale * log-progress - mean cost whenever r_g is not clipped (the clipped
    credits cancel)."""
    cfg = sim.config
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(6):
        before = sim.obs.val_loss
        a_l = rng.integers(0, cfg.n_al, sim.n)
        res = sim.step(0, a_l)
        if not 0 < res.r_g < 2 * cfg.reward_offset:
            continue
        steps = np.asarray(cfg.local_steps)[a_l]
        cost = cfg.upload_cost * (steps > 0) + cfg.step_cost * steps
        expect = (cfg.reward_offset + 1 + cfg.max_cost + cfg.progress_scale * res.progress
                  - cost.mean())
        assert res.reward == pytest.approx(expect, abs=1e-12)
        assert res.progress == pytest.approx(np.log(before) - np.log(res.next.val_loss))
        checked += 1
    assert checked >= 4


def test_skip_round_changes_nothing_and_pays_nothing(sim):
    sim.step(0, np.full(sim.n, 2))
    W = sim.W.copy()
    res = sim.step(1, np.zeros(sim.n, dtype=np.int64))
    np.testing.assert_array_equal(sim.W, W)
    assert res.uploads == 0 and res.progress == 0.0
    assert res.r_g == sim.config.reward_offset
    np.testing.assert_allclose(res.r_l, 1.0 + sim.config.max_cost)


def test_states_are_buckets(sim):
    cfg = sim.config
    assert sim.global_state(5.0) == 0
    assert sim.global_state(cfg.val_loss_edges[-1] / 2) == cfg.n_sg - 1
    assert sim.global_state(1.0) == sum(e > 1.0 for e in cfg.val_loss_edges)
    loss = np.array([0.1, 1.0, 2.0])
    np.testing.assert_array_equal(sim.local_states(loss, 1.0), [0, 1, 2])
    obs = sim.reset()
    assert obs.s_g == 0 and np.all(obs.s_l == 1)  # W = 0: every loss is log 10
    assert obs.val_loss == pytest.approx(np.log(10))


@given(st.integers(0, 2**31 - 1))
def test_rewards_are_nonnegative_and_bounded(seed):
    sim = _SIM_CACHE.get("sim")
    if sim is None:
        sim = _SIM_CACHE["sim"] = FederatedSimulator.make(SMALL.replace(n_clients=20), 0)
    rng = np.random.default_rng(seed)
    sim.reset()
    c = sim.config
    for _ in range(3):
        res = sim.step(int(rng.integers(c.n_ag)), rng.integers(0, c.n_al, sim.n))
        assert 0.0 <= res.r_g <= 2 * c.reward_offset
        assert np.all(res.r_l >= 0) and np.all(res.r_l <= 2 + c.max_cost + 1e-12)


_SIM_CACHE: dict[str, FederatedSimulator] = {}


@pytest.mark.parametrize("changes,key", [
    ({"n_clients": 1}, "n_clients"), ({"n_clients": True}, "n_clients"),
    ({"n_clients": 40.0}, "n_clients"), ({"alpha": 0.0}, "alpha"),
    ({"alpha": float("inf")}, "alpha"), ({"l2": -1e-3}, "l2"), ({"val_fraction": 1.0}, "val_fraction"),
    ({"gamma": 1.0}, "gamma"), ({"server_lrs": ()}, "server_lrs"),
    ({"server_lrs": (1.0, 0.0)}, "server_lrs.1"), ({"local_steps": (0, -1)}, "local_steps.1"),
    ({"local_steps": (0, 1.5)}, "local_steps.1"),
    ({"val_loss_edges": (0.5, 1.0)}, "val_loss_edges"),
    ({"local_ratio_edges": (1.25, 0.75)}, "local_ratio_edges"),
    ({"local_ratio_edges": (-1.0, 0.75)}, "local_ratio_edges.0"), ({"horizon": 0}, "horizon"),
])
def test_config_validation_names_the_key(changes, key):
    with pytest.raises(ValueError, match=rf"invalid federated configuration:\n  config: {key}: "):
        FederatedConfig(**changes)
    with pytest.raises(ValueError, match=rf"replace: {key}: "):
        FederatedConfig().replace(**changes)


def test_config_json_roundtrip_and_unknown_keys():
    with pytest.raises(ValueError, match="config: clients: unknown key"):
        FederatedConfig.from_json({"clients": 3})
    cfg = FederatedConfig(n_clients=17, server_lrs=[1, 2.0])  # lists and ints accepted
    assert cfg.server_lrs == (1.0, 2.0) and isinstance(cfg.server_lrs[0], float)
    assert FederatedConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    assert cfg.to_json()["server_lrs"] == [1.0, 2.0]
    assert list(cfg.to_json()) == list(FederatedConfig.model_fields)  # field order kept
    assert cfg.replace(horizon=3).horizon == 3 and cfg.horizon == 40
    assert FederatedConfig(n_clients=np.int64(12)).n_clients == 12
    with pytest.raises(ValidationError):  # frozen
        cfg.horizon = 3  # type: ignore[misc]
    assert hash(cfg) == hash(FederatedConfig(n_clients=17, server_lrs=(1.0, 2.0)))


def test_step_validation(sim):
    with pytest.raises(ValueError, match="a_l"):
        sim.step(0, np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="a_g"):
        sim.step(9, np.zeros(sim.n, dtype=np.int64))


# ---------------------------------------------------------------------------
# controllers
# ---------------------------------------------------------------------------


def test_episode_reproducible_with_seed(sim):
    a = run_episode(sim, ExploreController(0.3), 5, np.random.default_rng(11))
    b = run_episode(sim, ExploreController(0.3), 5, np.random.default_rng(11))
    c = run_episode(sim, ExploreController(0.3), 5, np.random.default_rng(12))
    np.testing.assert_array_equal(a.val_loss, b.val_loss)
    np.testing.assert_array_equal(a.reward, b.reward)
    assert not np.array_equal(a.reward, c.reward)


def test_fedavg_controller_averages_k_participants(sim):
    sim.reset()
    W = sim.W.copy()
    ctl = FedAvgController(k=5, a_l=2)
    ctl.start(sim, np.random.default_rng(0))
    act = ctl(sim.obs, np.random.default_rng(0))
    assert np.count_nonzero(act.a_l) == 5
    sim.step(act.a_g, act.a_l, act.server_lr)
    idx = np.flatnonzero(act.a_l)
    local = local_train(sim.fed.X[idx], sim.fed.Y[idx], W, sim.config.local_steps[2],
                        sim.config.local_lr, sim.config.l2)
    np.testing.assert_allclose(sim.W, local.mean(axis=0), atol=1e-12)


def test_policy_controller_polls_k_and_follows_tables(digits):
    cfg = SMALL
    game = am.TabularGame(np.full((cfg.n_sg, cfg.n_ag, cfg.n_sg), 1 / cfg.n_sg),
                          np.full((cfg.n_sl, cfg.n_sg, cfg.n_al, cfg.n_sl), 1 / cfg.n_sl),
                          np.zeros((cfg.n_sg, cfg.n_ag)), np.zeros((cfg.n_sl, cfg.n_sg, cfg.n_al)),
                          0.9, cfg.n_clients)
    acts = np.arange(cfg.n_sl)[:, None] * np.ones(cfg.n_sg, dtype=int)  # a_l = s_l
    pi_l = am.LocalPolicy.deterministic(game, acts)
    # a_g = number of polled clients in the last bucket (capped): depends on the sample
    pi_g = am.GlobalPolicy.from_function(game, 3, lambda sg, h: np.minimum(h[:, -1], 2))
    sim = FederatedSimulator(cfg, make_federation(cfg, 0, digits))
    sim.step(0, np.full(sim.n, 2))
    sim.step(0, np.full(sim.n, 2))
    ctl = PolicyController(pi_g, pi_l)
    ctl.start(sim, np.random.default_rng(0))
    rng = np.random.default_rng(5)
    act = ctl(sim.obs, rng)
    assert act.polls == 3
    np.testing.assert_array_equal(act.a_l, sim.obs.s_l)
    sub = sim.obs.s_l[np.random.default_rng(5).choice(sim.n, 3, replace=False)]
    assert act.a_g == min(int((sub == cfg.n_sl - 1).sum()), 2)


# ---------------------------------------------------------------------------
# model estimation
# ---------------------------------------------------------------------------


def _errors(est, game):
    return (np.abs(est.P_g - game.P_g).max(), np.abs(est.P_l - game.P_l).max(),
            np.abs(est.r_g - game.r_g).max(), np.abs(est.r_l - game.r_l).max())


def test_estimation_recovers_synthetic_game():
    game = am.envs.make("random", n_sg=3, n_ag=2, n_sl=3, n_al=2, n=40, gamma=0.9, seed=2)
    rng = np.random.default_rng(0)
    counts = TransitionCounts.for_game(game)
    errs = []
    done = 0
    for T in (30, 300, 3000):
        collect_tabular(game, T - done, rng, episode_length=50, counts=counts)
        done = T
        est, rep = estimate_game(counts, game.gamma, game.n)
        errs.append(_errors(est, game))
    errs_a = np.array(errs)
    assert np.all(errs_a[-1] < errs_a[0])  # every table improves with more rounds
    assert errs_a[-1, 0] < 0.1 and errs_a[-1, 1] < 0.03  # close at 3000 rounds
    assert errs_a[-1, 2] < 0.01 and errs_a[-1, 3] < 0.01
    assert rep.summary()["global_rows_unvisited"] == 0
    assert counts.episodes == 1 + 6 + 54  # every call starts a new episode


def test_estimation_smoothing_and_fallbacks():
    c = TransitionCounts(n_sg=3, n_ag=2, n_sl=2, n_al=2)
    # global: state 0 visited with both actions, state 1 only with action 0, state 2 never
    c.add_global(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 0, 0]),
                 np.array([1.0, 3.0, 5.0, 2.0, 2.0]), np.array([1, 1, 0, 2, 1]))
    # local: (x=0, g=0) with action 0 only; (x=1, g=1) action 1 only; rest unvisited
    c.add_local(np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([0, 0, 1]),
                np.array([1.0, 1.0, 4.0]), np.array([1, 1, 0]))
    game, rep = estimate_game(c, 0.9, 5, alpha=1.0)
    pooled0 = np.array([1 / 3, 2 / 3, 0])  # state 0 pooled over actions
    np.testing.assert_allclose(game.P_g[0, 0], (np.array([0, 2, 0]) + pooled0) / 3)
    np.testing.assert_allclose(game.P_g[0, 1], (np.array([1, 0, 0]) + pooled0) / 2)
    np.testing.assert_allclose(game.r_g[0, 0], (4 + 3) / 3)
    np.testing.assert_allclose(game.P_g[1, 1], [0, 0.5, 0.5])  # unvisited: pooled row
    np.testing.assert_allclose(game.r_g[1, 1], 2.0)
    np.testing.assert_allclose(game.P_g[2, 0], [0, 0, 1])  # never visited: self-loop
    np.testing.assert_allclose(game.r_g[2, 1], 13 / 5)  # mean of all r_g
    assert rep.g_level[2, 0] == 1 and rep.g_level[1, 1] == 0
    # local levels: pooled over actions, then over global states, then self-loop
    np.testing.assert_allclose(game.P_l[0, 0, 1], [0, 1])  # level 0
    np.testing.assert_allclose(game.P_l[1, 0, 1], [1, 0])  # level 1: (x=1, a=1) over g
    np.testing.assert_allclose(game.r_l[1, 0, 1], 4.0)
    np.testing.assert_allclose(game.P_l[1, 0, 0], [0, 1])  # level 2: self-loop
    np.testing.assert_allclose(game.r_l[1, 0, 0], 2.0)
    assert rep.l_level[1, 0, 0] == 2 and rep.l_level[1, 0, 1] == 1


@given(st.integers(0, 2**31 - 1), st.floats(0.01, 10))
def test_estimated_rows_are_valid(seed, alpha):
    rng = np.random.default_rng(seed)
    S, A, L, B = (int(v) for v in rng.integers(1, 4, 4))
    c = TransitionCounts(S, A, L, B)
    m = int(rng.integers(0, 20))
    c.add_global(rng.integers(0, S, m), rng.integers(0, A, m), rng.random(m),
                 rng.integers(0, S, m))
    c.add_local(rng.integers(0, L, m), rng.integers(0, S, m), rng.integers(0, B, m),
                rng.random(m), rng.integers(0, L, m))
    game, _ = estimate_game(c, 0.9, 3, alpha=alpha)  # the constructor validates every row
    assert np.all(game.r_g >= 0) and np.all(game.r_l <= 1)


def test_counts_io_and_validation(tmp_path):
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=6, gamma=0.9, seed=0)
    c = collect_tabular(game, 20, np.random.default_rng(0))
    c.save(tmp_path / "c.npz")
    d = TransitionCounts.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(c.l_counts, d.l_counts)
    assert d.episodes == c.episodes == 1
    np.savez(tmp_path / "bad.npz", meta=np.array(json.dumps({"format": "x"})))
    with pytest.raises(ValueError, match="format"):
        TransitionCounts.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="s_l"):
        c.add_local(np.array([5]), 0, np.array([0]), 1.0, np.array([0]))
    with pytest.raises(ValueError, match="alpha"):
        estimate_game(c, 0.9, 6, alpha=0.0)
    with pytest.raises(ValueError, match="sizes"):
        c.merge(TransitionCounts(3, 2, 2, 2))


# ---------------------------------------------------------------------------
# the experiment, end to end (small)
# ---------------------------------------------------------------------------


def test_collect_is_reproducible():
    exp = FederatedExperiment.quick().__class__.from_json(
        {**FederatedExperiment.quick().to_json(), "explore_episodes": 2})
    a, b = collect(exp), collect(exp)
    np.testing.assert_array_equal(a.l_counts, b.l_counts)
    np.testing.assert_array_equal(a.g_reward, b.g_reward)
    assert a.l_counts.sum() == 2 * exp.fed.horizon * exp.fed.n_clients


def test_check_ks_within_clients_bounds_every_k_by_the_clients():
    fed = FederatedConfig(n_clients=40)
    assert check_ks_within_clients((1, 40), fed) == (1, 40)
    assert check_ks_within_clients((1, 41), None) == (1, 41)  # fed invalid: not checked here
    with pytest.raises(ValueError, match=r"^expected integers in 1\.\.n_clients = 40$"):
        check_ks_within_clients((41, 1), fed)


def test_experiment_config_validation():
    with pytest.raises(ValueError, match="config: ks.0: "):
        FederatedExperiment(ks=(0,))
    with pytest.raises(ValueError, match=r"replace: ks: .*1\.\.n_clients = 40"):
        FederatedExperiment.quick().replace(ks=(1, 41))
    with pytest.raises(ValueError, match="config: ks: "):
        FederatedExperiment(ks=())
    with pytest.raises(ValueError, match="config: baseline_action: .*training action"):
        FederatedExperiment(baseline_action=0)
    with pytest.raises(ValueError, match="config: baseline_action: "):
        FederatedExperiment(baseline_action=3)
    with pytest.raises(ValueError, match="local_solver"):
        FederatedExperiment(local_solver="bogus")
    with pytest.raises(ValueError, match="config: explore_eps: "):
        FederatedExperiment(explore_eps=0.0)
    with pytest.raises(ValueError, match="config: fed.n_clients: "):
        FederatedExperiment.from_json({"fed": {"n_clients": 1}})
    with pytest.raises(ValueError, match="run.json: kk: unknown key"):
        FederatedExperiment.from_json({"kk": 1}, source="run.json")
    with pytest.raises(ValueError, match="fed.clients: unknown key"):
        FederatedExperiment.from_json({"fed": {"clients": 1}})


def test_experiment_config_json_roundtrip():
    exp = FederatedExperiment.quick(seed=4)
    d = json.loads(json.dumps(exp.to_json()))
    assert d["ks"] == [1, 3] and d["fed"]["n_clients"] == 40 and d["seed"] == 4
    assert FederatedExperiment.from_json(d) == exp
    assert exp.replace(m=7).m == 7 and exp.m == 5
    assert FederatedExperiment().ks == (1, 2, 5, 10, 20, 50)


def test_cli_quick_run_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from altmarl.cli import app

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["federated", "run", "--experiment", "estimated", "--quick",
                                   "--ks", "1,2", "--clients", "30", "--out", str(out),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    for f in ("summary.json", "summary.csv", "episodes.csv", "curves.csv", "learning.csv",
              "counts.npz", "game.npz", "config.json", "accuracy_vs_k.png", "pareto.png",
              "curves.png", "policies/k2_pi_g.npz"):
        assert (out / f).exists(), f
    rows = read_summary(out)
    names = [r["method"] for r in rows]
    assert names[:2] == ["learned k=1", "learned k=2"]
    assert {"fedavg k=1", "fedavg k=2", "fixed lr=1 steps=5", "explore"} <= set(names)
    for r in rows:
        assert 0 <= r["final_acc"] <= 1 and r["return"] > 0
        if r["family"] == "fedavg":
            assert r["uploads_per_round"] == r["k"]
        if r["family"] == "learned":
            assert r["polls_per_round"] == r["k"] and "model_return" in r
    game = load_game(out / "game.npz")
    assert game.n == 30 and game.spaces == {"S_g": 6, "A_g": 3, "S_l": 3, "A_l": 3}
    pi_g = am.GlobalPolicy.load(out / "policies" / "k2_pi_g.npz", game)
    assert pi_g.k == 2
    save_game(game, tmp_path / "g2.npz")
    assert load_game(tmp_path / "g2.npz").fingerprint() == game.fingerprint()
    # plot command reads the run directory; bad input is rejected with a message
    res = CliRunner().invoke(app, ["federated", "plot", str(out)])
    assert res.exit_code == 0 and "learned k=1" in res.output
    res = CliRunner().invoke(app, ["federated", "run", "--experiment", "estimated", "--quick",
                                   "--ks", "x", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "--ks" in res.output
