"""The drifting federation as a generative game (docs/federated.md, SPEC 8.3 and 11): data
and models, the law of a round, the game's validation, the real simulator with common
random numbers and the FedAvg baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.federated.drift import (
    DriftConfig,
    Exogenous,
    draw_exogenous,
    drift_game,
    initial_state,
    make_drift_data,
    model_correct,
    myopic_table,
    rotate_images,
    split_state,
    transition,
)
from altmarl.federated.drift_eval import Method, run_method
from altmarl.federated.simulator import load_digits_arrays, local_train
from altmarl.generative.policies import FunctionGlobalPolicy

SMALL = DriftConfig(n_clients=30, pilot_clients=6, pilot_rounds=10, horizon=6)


@pytest.fixture(scope="module")
def data():
    return make_drift_data(SMALL, 0, load_digits_arrays())


@pytest.fixture(scope="module")
def game(data):
    return drift_game(data, check="always")


def constant(b: int, k: int = 1) -> FunctionGlobalPolicy:
    return FunctionGlobalPolicy(k, lambda s_g, obs: np.full(len(s_g), b, dtype=np.int64))


def test_rotation_is_a_quarter_turn_and_keeps_the_bias():
    X = np.arange(2 * 65, dtype=float).reshape(2, 65)
    R = rotate_images(X, 1)
    assert np.array_equal(R[:, 64], X[:, 64])
    assert np.array_equal(R[0, :64].reshape(8, 8), np.rot90(X[0, :64].reshape(8, 8)))
    assert np.array_equal(rotate_images(rotate_images(X, 1), 3), X)


def test_models_are_trained_and_cluster_structured(data):
    acc = data.accuracy
    C = SMALL.regimes
    assert acc.shape == (C + 1, C) and data.published.shape == (C + 1, C)
    diag = np.diag(acc[:C])
    off = acc[:C][~np.eye(C, dtype=bool)]
    # every cluster model is good on its own regime, poor elsewhere; the global model between
    assert diag.min() > 0.8 and off.max() < 0.6
    assert (acc[C] > off.max()).all() and (acc[C] < diag.min()).all()


def test_correct_table_is_the_models_real_predictions(data):
    j, c = 2, 1
    W = data.models[j]
    pred = (data.X[c] @ W).argmax(axis=1)
    assert np.array_equal(data.correct[j, c], pred == data.y)
    assert np.array_equal(model_correct(data.models[:1], data.X[:1], data.y)[0, 0],
                          (data.X[0] @ data.models[0]).argmax(axis=1) == data.y)


def test_transition_by_hand(data):
    cfg = data.config
    M = cfg.n_models
    # two clients: regime 1 holding the global model, regime 0 holding cluster 0
    s_l = np.array([[1 * M + cfg.regimes, 0 * M + 0]])
    s_g = np.array([1])
    a_l = np.array([[1, 0]])       # the first downloads cluster 1, the second keeps
    batch = np.array([[[0, 1, 2, 3] + [4] * (cfg.batch - 4), [5] * cfg.batch]])
    ex = Exogenous(batch, np.array([[False, True]]), np.array([[1, 2]]))
    g2, l2, r_g, r_l, acc = transition(data, s_g, s_l, np.array([3]), a_l, ex)
    assert g2.tolist() == [3] and r_g.tolist() == [0.0]
    want0 = data.correct[1, 1, batch[0, 0]].mean()
    want1 = data.correct[0, 0, batch[0, 1]].mean()
    assert acc[0].tolist() == [want0, want1]
    assert r_l[0].tolist() == [want0 - cfg.transfer_cost, want1]
    # first: regime 1 now holding cluster 1; second: drifted 0 -> 2, still holding cluster 0
    assert split_state(l2, M)[0].tolist() == [[1, 2]]
    assert split_state(l2, M)[1].tolist() == [[1, 0]]


def test_initial_state_composition(data):
    cfg = SMALL.replace(n_clients=4000)
    s_g, s_l = initial_state(np.random.default_rng(0), 50, cfg)
    c, m = split_state(s_l, cfg.n_models)
    assert (s_g == cfg.regimes).all() and (m == cfg.regimes).all()
    share = np.stack([(c == j).mean(axis=1) for j in range(cfg.regimes)], axis=1)
    # Dirichlet(0.5) compositions: very unequal across episodes, mean 1/C
    assert share.max(axis=1).mean() > 0.5
    assert abs(share.mean() - 1 / cfg.regimes) < 1e-12
    assert np.allclose(share.mean(axis=0), 1 / cfg.regimes, atol=0.08)


def test_drift_rate(data):
    cfg = SMALL.replace(drift=0.2)
    ex = draw_exogenous(np.random.default_rng(1), 200, 500, cfg, data.pool)
    assert abs(ex.switch.mean() - 0.2) < 0.01
    assert ex.target.min() == 1 and ex.target.max() == cfg.regimes - 1
    assert ex.batch.shape == (200, 500, cfg.batch) and ex.batch.max() < data.pool


def test_game_is_valid_generative_game(game, data):
    assert game.spaces == {"S_g": 5, "A_g": 5, "S_l": 20, "A_l": 2}
    assert game.reward_bounds == (-SMALL.transfer_cost, 1.0)
    ev = am.evaluate(game, constant(SMALL.regimes), am.LocalPolicy(myopic_table(data)),
                     rollouts=8, horizon=5, seed=0)
    # nobody downloads the global model they hold: the value is the global model's accuracy
    disc = sum(SMALL.gamma ** t for t in range(5))
    assert abs(ev.mean / disc - data.accuracy[SMALL.regimes].mean()) < 0.05


def test_myopic_rule(data):
    tab = myopic_table(data)
    M, C = SMALL.n_models, SMALL.regimes
    assert tab.shape == (SMALL.n_sl, M, 2) and np.array_equal(tab.sum(axis=2), np.ones((20, 5)))
    # a client of regime 2 holding the global model downloads cluster 2, not cluster 0
    s = 2 * M + C
    assert tab[s, 2, 1] == 1 and tab[s, 0, 1] == 0 and tab[s, C, 1] == 0
    # holding its own cluster model it never downloads
    assert tab[2 * M + 2, :, 1].sum() == 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(1, 30))
def test_game_step_keeps_states_in_range(seed, R, m):
    cfg = SMALL
    rng = np.random.default_rng(seed)
    data = _DATA[0]
    s_l = rng.integers(0, cfg.n_sl, size=(R, m))
    s_g = rng.integers(0, cfg.n_models, size=R)
    a_g = rng.integers(0, cfg.n_models, size=R)
    a_l = rng.integers(0, 2, size=(R, m))
    ex = draw_exogenous(rng, R, m, cfg, data.pool)
    g2, l2, _, r_l, acc = transition(data, s_g, s_l, a_g, a_l, ex)
    assert ((0 <= l2) & (l2 < cfg.n_sl)).all() and (g2 == a_g).all()
    assert ((0 <= acc) & (acc <= 1)).all()
    assert np.allclose(r_l, acc - cfg.transfer_cost * a_l)
    # the held model changes only by download, and then to the offered one
    held, held2 = s_l % cfg.n_models, l2 % cfg.n_models
    assert np.array_equal(held2, np.where(a_l == 1, s_g[:, None], held))


_DATA: list = []


@pytest.fixture(autouse=True, scope="module")
def _share(data):
    _DATA.append(data)
    yield
    _DATA.clear()


def test_real_simulator_is_the_game(data, game):
    """A policy pair in the evaluation simulator follows exactly the game's law: replaying
    its exogenous draws through game-style steps reproduces every reward."""
    pi_l = am.LocalPolicy(myopic_table(data))
    meth = Method("fixed 1", "fixed", None, constant(1), pi_l)
    run = run_method(data, game, meth, 3, 6, seed=5)
    from altmarl._random import rng as child_rng
    from altmarl.federated.drift_eval import ENV

    env = child_rng(5, ENV)
    s_g, s_l = initial_state(env, 3, SMALL)
    for t in range(6):
        ex = draw_exogenous(env, 3, SMALL.n_clients, SMALL, data.pool)
        a_l = pi_l.act(s_l, s_g, np.random.default_rng(0))
        s_g, s_l, _, r_l, _ = transition(data, s_g, s_l, np.full(3, 1), a_l, ex)
        assert np.allclose(run.reward[:, t], r_l.mean(axis=1))


def test_common_random_numbers_across_methods(data, game):
    """Methods run on one seed see the same clients, data and drift, whatever they poll:
    the static global model scores the same with k = 1 and k = 5 polls, and FedAvg with all
    n clients sampled equals full participation."""
    pi_l = am.LocalPolicy(myopic_table(data))
    a = run_method(data, game, Method("a", "fixed", None, constant(SMALL.regimes), pi_l),
                   4, 6, seed=9)
    b = run_method(data, game, Method("b", "fixed", None, constant(SMALL.regimes, k=5), pi_l),
                   4, 6, seed=9)
    assert np.array_equal(a.reward, b.reward)
    f = run_method(data, game, Method("f", "fedavg", None, fedavg=True), 2, 4, seed=3)
    g = run_method(data, game, Method("g", "fedavg", SMALL.n_clients, fedavg=True), 2, 4,
                   seed=3)
    assert np.allclose(f.reward, g.reward) and np.allclose(f.accuracy, g.accuracy)


def test_fedavg_round_by_hand(data, game):
    """Round 0 of full-participation FedAvg scores the pre-trained global model; round 1
    scores the average of the clients' locally trained models."""
    from altmarl._random import rng as child_rng
    from altmarl.federated.drift import drift_regimes, one_hot
    from altmarl.federated.drift_eval import ENV

    run = run_method(data, game, Method("f", "fedavg", None, fedavg=True), 1, 2, seed=4)
    env = child_rng(4, ENV)
    _, s_l = initial_state(env, 1, SMALL)
    c = s_l[0] // SMALL.n_models
    W = data.models[SMALL.regimes]
    for t in range(2):
        ex = draw_exogenous(env, 1, SMALL.n_clients, SMALL, data.pool)
        Xb = data.X[c[:, None], ex.batch[0]]
        yb = data.y[ex.batch[0]]
        acc = ((Xb @ W).argmax(axis=-1) == yb).mean(axis=1)
        assert np.isclose(run.accuracy[0, t], acc.mean())
        assert np.isclose(run.reward[0, t], acc.mean() - 2 * SMALL.transfer_cost)
        Wi = local_train(Xb, one_hot(yb.ravel()).reshape(*yb.shape, 10), W, SMALL.local_steps,
                         SMALL.local_lr, SMALL.l2)
        W = Wi.mean(axis=0)
        c = drift_regimes(c[None], Exogenous(ex.batch, ex.switch, ex.target), SMALL.regimes)[0]
    assert run.transfers[0].tolist() == [2 * SMALL.n_clients] * 2


def test_full_information_observes_everyone(data, game):
    pi_l = am.LocalPolicy(myopic_table(data))
    seen = []

    def rule(s_g, obs):
        seen.append(np.asarray(obs).sum(axis=1))
        return np.full(len(s_g), SMALL.regimes)

    run_method(data, game, Method("x", "plugin", 3, FunctionGlobalPolicy(3, rule), pi_l,
                                  full_info=True), 2, 2, seed=0)
    assert np.allclose(seen[0], 3.0)  # all n counted, rescaled to k


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="regimes"):
        DriftConfig(regimes=5)
    with pytest.raises(ValueError, match="drift"):
        DriftConfig(drift=1.5)
    assert DriftConfig().replace(n_clients=7).n_clients == 7
