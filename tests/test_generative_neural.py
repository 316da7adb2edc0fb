"""Neural G-LEARN on generative games (SPEC 11) and the neural policy file format."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import altmarl as am  # noqa: E402
from altmarl.generative.neural import (  # noqa: E402
    Features,
    NeuralGlobalPolicy,
    neural_g_learn,
    resolve_device,
    surrogate_transitions,
    warm_up_rounds,
)


@pytest.fixture(scope="module")
def tiny():
    tab = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=50, gamma=0.5, seed=1)
    gen = tab.as_generative()
    pol = neural_g_learn(gen, am.LocalPolicy.uniform(tab), 3, m=4, seed=0, states=300,
                         iterations=30, hidden=16)
    return tab, gen, pol


def test_policy_acts_and_reports(tiny):
    tab, gen, pol = tiny
    assert isinstance(pol, NeuralGlobalPolicy) and pol.k == 3
    h = np.array([[3, 0, 0], [1, 1, 1]])
    a = pol.act(np.array([0, 1]), h)
    assert a.shape == (2,) and a.dtype == np.int64 and set(a.tolist()) <= {0, 1}
    assert np.array_equal(a, pol.q_values(np.array([0, 1]), h).argmax(axis=1))
    info = pol.info
    assert info["method"] == "neural-fqi" and 1 <= info["iterations"] <= 30
    assert info["holdout_residual"] == min(info["residual_history"])
    assert info["threads"] == 1 and info["device"] == "cpu"


def test_same_seed_same_policy(tiny):
    tab, gen, pol = tiny
    again = neural_g_learn(gen, am.LocalPolicy.uniform(tab), 3, m=4, seed=0, states=300,
                           iterations=30, hidden=16)
    for a, b in zip(pol.net.state_dict().values(), again.net.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_file_round_trip_without_pickle(tiny, tmp_path):
    tab, gen, pol = tiny
    path = pol.save(tmp_path / "pi_g.pt", gen)
    blob = torch.load(path, weights_only=True)  # tensors and strings only
    assert set(blob) == {"meta", "q"} and isinstance(blob["meta"], str)
    back = NeuralGlobalPolicy.load(path, gen)
    h = am.enumerate_histograms(3, 3)
    for s in (0, 1):
        sg = np.full(len(h), s)
        assert np.array_equal(back.act(sg, h), pol.act(sg, h))
    assert back.info["iterations"] == pol.info["iterations"]


def test_file_for_another_game_is_rejected(tiny, tmp_path):
    tab, gen, pol = tiny
    path = pol.save(tmp_path / "pi_g.pt", gen)
    other = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=50, gamma=0.5,
                         seed=2).as_generative()
    with pytest.raises(ValueError, match="policy made for game .* not for"):
        NeuralGlobalPolicy.load(path, other)
    assert NeuralGlobalPolicy.load(path, other, strict=False).k == 3
    bigger = am.envs.make("random", n_sg=3, n_ag=2, n_sl=3, n_al=2, n=50).as_generative()
    with pytest.raises(ValueError, match="features"):
        NeuralGlobalPolicy.load(path, bigger, strict=False)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a valid altmarl checkpoint"):
        NeuralGlobalPolicy.load(tmp_path / "junk.pt")
    am.GlobalPolicy.constant(tab, 2).save(tmp_path / "tab.npz")
    with pytest.raises(ValueError):
        NeuralGlobalPolicy.load(tmp_path / "tab.npz")


def _edit_meta(meta: str, **changes: object) -> str:
    """``meta`` with ``changes`` applied (``None``: the key removed)."""
    import json

    d = json.loads(meta)
    for key, v in changes.items():
        if v is None:
            d.pop(key)
        else:
            d[key] = v
    return json.dumps(d)


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.pop("q"), "expected 'meta' and 'q' entries"),
    (lambda b: b.update(meta="{not json"), "meta is not valid JSON"),
    (lambda b: b.update(meta="[1, 2]"), "meta is list, expected a JSON object"),
    (lambda b: b.update(meta=b["meta"].replace("neural_global_policy", "other")),
     "format = 'altmarl.other', expected 'altmarl.neural_global_policy'"),
    (lambda b: b.update(meta=b["meta"].replace('"version": 1', '"version": 7')),
     "format version 7 is not supported"),
    (lambda b: b.update(meta=_edit_meta(b["meta"], game=5)), "meta 'game' = 5: expected an object"),
    (lambda b: b.update(meta=_edit_meta(b["meta"], features=None)),
     "meta has no 'features' entry"),
    (lambda b: b.update(meta=_edit_meta(b["meta"], k=None)), "meta has no 'k' entry"),
    (lambda b: b.update(meta=_edit_meta(b["meta"], k="3")), "meta 'k' = '3': expected an integer"),
    (lambda b: b.update(meta=_edit_meta(b["meta"], n_ag=True)),
     "meta 'n_ag' = True: expected an integer"),
    (lambda b: b.update(meta=_edit_meta(b["meta"], features={"x": 1})),
     "meta 'features' cannot be read"),
    (lambda b: b.update(meta=_edit_meta(b["meta"], arch={"hidden": 16})),
     "weights do not match the architecture"),
])
def test_damaged_file_headers_are_named(tiny, tmp_path, edit, message):
    from altmarl.continuous.nets import load_state, save_state
    _, gen, pol = tiny
    blob = load_state(pol.save(tmp_path / "pi_g.pt", gen))
    edit(blob)
    save_state(tmp_path / "bad.pt", blob)
    with pytest.raises(ValueError, match=message):
        NeuralGlobalPolicy.load(tmp_path / "bad.pt", gen)


def test_am_g_learn_dispatches_on_generative_games():
    tab = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=20, gamma=0.3, seed=0)
    pol = am.g_learn(tab.as_generative(), am.LocalPolicy.uniform(tab), k=2, m=2, seed=0)
    assert isinstance(pol, NeuralGlobalPolicy)
    assert torch.get_num_threads() >= 1  # restored after the fit


def test_threads_restored_and_devices():
    before = torch.get_num_threads()
    from altmarl.threads import limit_torch_threads

    with limit_torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_tabular_table_too_big_names_the_neural_route():
    fleet = am.envs.fleet_tabular(n=100)
    with pytest.raises(ValueError, match=r"neural route .*as_generative"):
        am.g_learn(fleet, am.LocalPolicy.uniform(fleet), k=20)


def _check_against_tabular(k: int, states: int, m: int, seed: int = 0) -> None:
    """Neural G-LEARN on warehouse.as_generative() reaches tabular G-LEARN's value (same
    evaluator: the per-agent simulator, same seed, 400 rollouts x 100 steps)."""
    tab = am.envs.make("warehouse", n=1000)
    gen = tab.as_generative()
    pi_l = am.LocalPolicy.uniform(tab)
    pg_tab = am.g_learn(tab, pi_l, k=k, m=30, seed=0)
    pg_nn = neural_g_learn(gen, pi_l, k, m=m, seed=seed, states=states)
    ev_tab = am.evaluate(gen, pg_tab, pi_l, rollouts=400, horizon=100, seed=7)
    ev_nn = am.evaluate(gen, pg_nn, pi_l, rollouts=400, horizon=100, seed=7)
    away = am.GlobalPolicy.from_function(tab, k, lambda sg, h: h.argmin(axis=1))
    ev_bad = am.evaluate(gen, away, pi_l, rollouts=400, horizon=100, seed=7)
    noise = 2 * math.hypot(ev_tab.stderr, ev_nn.stderr)
    assert ev_nn.mean >= ev_tab.mean - noise, (ev_nn, ev_tab)
    assert ev_nn.mean > ev_bad.mean + noise  # the check can fail: 'go where fewest are' does


def test_neural_g_learn_matches_tabular_at_k5():
    _check_against_tabular(5, states=2000, m=8)


@pytest.mark.slow
@pytest.mark.parametrize("k", [10, 20])
def test_neural_g_learn_matches_tabular_large_k(k):
    _check_against_tabular(k, states=4000, m=10)


def test_warm_up_and_double_q_options(tiny):
    tab, gen, _ = tiny
    u = am.LocalPolicy.uniform(tab)
    kw = {"m": 2, "seed": 0, "states": 200, "iterations": 12, "patience": 2, "hidden": 16}
    warm = neural_g_learn(gen, u, 3, min_iterations=8, **kw)
    # no stopping during the warm-up: at least min_iterations rounds, the best chosen after it
    hist = warm.info["residual_history"]
    assert len(hist) >= 8 and warm.info["holdout_residual"] == min(hist[7:])
    dbl = neural_g_learn(gen, u, 3, min_iterations=8, double=True, **kw)
    s_g, h = np.array([0, 1, 1]), np.array([[3, 0, 0], [1, 1, 1], [0, 1, 2]])
    assert not np.array_equal(dbl.q_values(s_g, h), warm.q_values(s_g, h))
    with pytest.raises(ValueError, match="min_iterations"):
        neural_g_learn(gen, u, 3, states=200, iterations=5, min_iterations=6)
    with pytest.raises(ValueError, match="double"):
        neural_g_learn(gen, u, 3, states=200, double="yes")


def test_default_warm_up_follows_gamma(tiny):
    """min_iterations=None: the fit runs at least warm_up_rounds(gamma) rounds."""
    assert warm_up_rounds(0.95) == 59 and warm_up_rounds(0.9) == 29
    assert warm_up_rounds(0.5) == 5 and 0.5 ** 5 <= 0.05 < 0.5 ** 4
    tab, gen, _ = tiny
    pol = neural_g_learn(gen, am.LocalPolicy.uniform(tab), 3, m=2, seed=0, states=100,
                         iterations=20, patience=1, hidden=8)
    assert pol.info["min_iterations"] == 5 and pol.info["iterations"] >= 5


def test_common_draws_share_randomness_across_actions():
    """common_draws=True: for the tabular view, the k agents' next states and local rewards
    of the j-th draw are the same for every global action (the local law reads the current
    s_g, not the action); only r_g and the next global state differ."""
    tab = am.envs.make("random", n_sg=3, n_ag=4, n_sl=5, n_al=2, n=50, seed=2)
    gen = tab.as_generative()
    pi_l = am.LocalPolicy.uniform(tab)
    feats = Features.for_game(gen, 6)
    rng = np.random.default_rng(0)
    s_g, s_l = rng.integers(0, 3, 40), rng.integers(0, 5, (40, 6))
    rew, nxt, act = surrogate_transitions(gen, pi_l, feats, s_g, s_l, 3,
                                          np.random.default_rng(1), common=True)
    assert act is None and rew.shape == (40, 4, 3)
    local = rew - tab.r_g[s_g][:, :, None].astype(np.float32)
    assert np.allclose(local, local[:, :1], atol=1e-5)
    assert np.array_equal(nxt[..., 3:], np.broadcast_to(nxt[:, :1, :, 3:], nxt[..., 3:].shape))
    rew2, nxt2, _ = surrogate_transitions(gen, pi_l, feats, s_g, s_l, 3,
                                          np.random.default_rng(1), common=False)
    local2 = rew2 - tab.r_g[s_g][:, :, None].astype(np.float32)
    assert not np.allclose(local2, local2[:, :1], atol=1e-5)  # independent draws differ


def test_policy_evaluation_targets(tiny):
    """targets="pi_g": fitted evaluation of pi_g; it falls back to the max without pi_g."""
    tab, gen, _ = tiny
    u = am.LocalPolicy.uniform(tab)
    kw = {"m": 2, "seed": 0, "states": 200, "iterations": 15, "hidden": 16}
    fqi = neural_g_learn(gen, u, 3, **kw)
    same = neural_g_learn(gen, u, 3, targets="pi_g", **kw)
    s_g, h = np.array([0, 1, 1]), np.array([[3, 0, 0], [1, 1, 1], [0, 1, 2]])
    assert np.array_equal(fqi.q_values(s_g, h), same.q_values(s_g, h))
    assert same.info["targets"] == "max"
    zero = am.GlobalPolicy.from_function(tab, 3, lambda sg, hh: np.zeros(len(sg), int))
    ev = neural_g_learn(gen, u, 3, targets="pi_g", pi_g=zero, explore=1.0, **kw)
    assert ev.info["targets"] == "pi_g"
    # Q^pi(x, a) <= max_a' Q^*(x, a') on average: evaluating a fixed rule never values
    # more than the optimum (up to the fit's error)
    q_pi, q_star = ev.q_values(s_g, h), fqi.q_values(s_g, h)
    assert q_pi.max(axis=1).mean() <= q_star.max(axis=1).mean() + 0.05 * abs(q_star).mean()
    with pytest.raises(ValueError, match="targets"):
        neural_g_learn(gen, u, 3, states=200, targets="mean")
    with pytest.raises(ValueError, match="common_draws"):
        neural_g_learn(gen, u, 3, states=200, common_draws=1)


@pytest.fixture(scope="module")
def cautious_fits(tiny):
    """One fitted evaluation of a fixed rule, returned greedy and cautious (the same fit:
    improve only decides how the network's greedy step is applied)."""
    tab, gen, _ = tiny
    u = am.LocalPolicy.uniform(tab)
    rule = am.GlobalPolicy.from_function(tab, 3, lambda sg, hh: np.asarray(sg) % 2)
    kw = {"m": 2, "seed": 0, "states": 200, "iterations": 15, "hidden": 16,
          "targets": "pi_g", "pi_g": rule}
    greedy = neural_g_learn(gen, u, 3, **kw)
    fits = {mg: neural_g_learn(gen, u, 3, improve="cautious", margin=mg, **kw)
            for mg in (0.0, 1e6)}
    return gen, rule, greedy, fits


def _all_states():
    h = am.enumerate_histograms(3, 3)
    s_g = np.repeat(np.arange(2), len(h))
    return s_g, np.tile(h, (2, 1))


def test_cautious_step_between_pi_g_and_greedy(cautious_fits):
    """improve="cautious": a huge margin keeps pi_g's action everywhere, margin 0 is the
    greedy step (no ties here), an intermediate margin switches exactly where the fitted
    advantage exceeds it."""
    gen, rule, greedy, fits = cautious_fits
    for pol in fits.values():  # the same fit as the greedy policy
        for a, b in zip(pol.net.state_dict().values(), greedy.net.state_dict().values(),
                        strict=True):
            assert torch.equal(a, b)
        assert pol.info["improve"] == "cautious" and pol.base is rule
    s_g, h = _all_states()
    base = np.asarray(rule.act(s_g, h))
    q = greedy.q_values(s_g, h)
    assert np.array_equal(fits[1e6].act(s_g, h), base)
    assert np.array_equal(fits[0.0].act(s_g, h), q.argmax(axis=1))
    assert np.array_equal(greedy.act(s_g, h), q.argmax(axis=1))
    gain = q.max(axis=1) - q[np.arange(len(q)), base]
    assert (gain > 0).any() and (gain == 0).any()  # the rule is right somewhere only
    mid = NeuralGlobalPolicy(3, greedy.net, greedy.features, 2, greedy.arch, base=rule,
                             margin=float(np.median(gain[gain > 0])))
    got = mid.act(s_g, h)
    assert np.array_equal(got, np.where(gain > mid.margin, q.argmax(axis=1), base))
    assert 0 < int((got != base).sum()) < int((q.argmax(axis=1) != base).sum())


def test_cautious_options_are_validated(tiny):
    tab, gen, _ = tiny
    u = am.LocalPolicy.uniform(tab)
    rule = am.GlobalPolicy.from_function(tab, 3, lambda sg, hh: np.zeros(len(sg), int))
    with pytest.raises(ValueError, match="improve"):
        neural_g_learn(gen, u, 3, states=200, targets="pi_g", pi_g=rule, improve="bold")
    with pytest.raises(ValueError, match="margin"):
        neural_g_learn(gen, u, 3, states=200, targets="pi_g", pi_g=rule, improve="cautious",
                       margin=-1.0)
    with pytest.raises(ValueError, match="margin"):
        neural_g_learn(gen, u, 3, states=200, targets="pi_g", pi_g=rule, improve="cautious",
                       margin="1")
    with pytest.raises(ValueError, match="margin"):
        neural_g_learn(gen, u, 3, states=200, margin=1.0)  # greedy has no margin
    with pytest.raises(ValueError, match="targets = 'pi_g'"):
        neural_g_learn(gen, u, 3, states=200, pi_g=rule, improve="cautious")
    pol = neural_g_learn(gen, u, 3, m=2, states=100, iterations=2, min_iterations=1, hidden=8)
    # without a pi_g (ALTERNATING-MARL's uniform start) there is nothing to be cautious from:
    # the greedy policy of the same fit
    first = neural_g_learn(gen, u, 3, m=2, states=100, iterations=2, min_iterations=1,
                           hidden=8, targets="pi_g", improve="cautious", margin=1.0)
    assert first.base is None and "improve" not in first.info
    for a, b in zip(pol.net.state_dict().values(), first.net.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="base"):
        NeuralGlobalPolicy(3, pol.net, pol.features, 2, pol.arch, base=object())
    with pytest.raises(ValueError, match="base"):
        NeuralGlobalPolicy(3, pol.net, pol.features, 2, pol.arch,
                           base=am.GlobalPolicy.from_function(tab, 2, lambda sg, hh: sg * 0))
    bad = NeuralGlobalPolicy(3, pol.net, pol.features, 2, pol.arch,
                             base=am.generative.FunctionGlobalPolicy(3, lambda sg, hh: sg + 5))
    with pytest.raises(ValueError, match="base: returned actions"):
        bad.act(np.array([0, 1]), np.array([[3, 0, 0], [1, 1, 1]]))


def test_cautious_files(cautious_fits, tiny, tmp_path):
    """A neural base is stored in the same file (nested, no pickle); another base is left
    out only on request and must then be passed back."""
    gen, rule, greedy, fits = cautious_fits
    s_g, h = _all_states()
    pol = fits[0.0]
    with pytest.raises(ValueError, match="external_base=True"):
        pol.save(tmp_path / "x.pt", gen)
    path = pol.save(tmp_path / "ext.pt", gen, external_base=True)
    with pytest.raises(ValueError, match="pass base="):
        NeuralGlobalPolicy.load(path, gen)
    back = NeuralGlobalPolicy.load(path, gen, base=rule)
    assert back.margin == 0.0 and np.array_equal(back.act(s_g, h), pol.act(s_g, h))
    with pytest.raises(ValueError, match="not a cautious policy"):
        NeuralGlobalPolicy.load(greedy.save(tmp_path / "g.pt", gen), gen, base=rule)
    # a cautious step from a neural policy, and one from that: bases nested in one file
    tiny_pol = tiny[2]
    one = NeuralGlobalPolicy(3, greedy.net, greedy.features, 2, greedy.arch, base=tiny_pol,
                             margin=0.01)
    two = NeuralGlobalPolicy(3, tiny_pol.net, tiny_pol.features, 2, tiny_pol.arch, base=one,
                             margin=0.02)
    p2 = two.save(tmp_path / "two.pt", gen)
    blob = torch.load(p2, weights_only=True)
    assert set(blob) == {"meta", "q", "base"} and set(blob["base"]) == {"meta", "q", "base"}
    back2 = NeuralGlobalPolicy.load(p2, gen)
    assert isinstance(back2.base, NeuralGlobalPolicy) and back2.base.margin == 0.01
    assert isinstance(back2.base.base, NeuralGlobalPolicy) and back2.base.base.base is None
    assert np.array_equal(back2.act(s_g, h), two.act(s_g, h))
    from altmarl.generative.files import load_policy, save_policy

    p3 = save_policy(two, tmp_path / "via_files", gen)
    assert np.array_equal(load_policy(p3, "global", gen).act(s_g, h), two.act(s_g, h))
    from altmarl.generative.files import policy_bytes

    suffix, data = policy_bytes(two, gen)  # what run directories store: the same file
    assert suffix == ".pt"
    (tmp_path / "from_bytes.pt").write_bytes(data)
    back3 = load_policy(tmp_path / "from_bytes.pt", "global", gen)
    assert np.array_equal(back3.act(s_g, h), two.act(s_g, h))
    # a damaged margin is refused
    import json as _json

    meta = _json.loads(blob["meta"])
    meta["cautious"]["margin"] = -1
    blob["meta"] = _json.dumps(meta)
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="margin"):
        NeuralGlobalPolicy.load(tmp_path / "bad.pt", gen)


def test_rollout_returns_start_with_the_common_draws():
    """surrogate_returns of length 1 is the one-step reward of surrogate_transitions with
    common draws (the same random numbers, action by action); longer rollouts add the
    discounted rewards of pi_g's play."""
    from altmarl.generative.neural import rollout_advantages, surrogate_returns

    tab = am.envs.make("random", n_sg=3, n_ag=4, n_sl=5, n_al=2, n=50, seed=2)
    gen = tab.as_generative()
    pi_l = am.LocalPolicy.uniform(tab)
    zero = am.GlobalPolicy.from_function(tab, 6, lambda sg, hh: np.zeros(len(sg), int))
    feats = Features.for_game(gen, 6)
    rng = np.random.default_rng(0)
    s_g, s_l = rng.integers(0, 3, 40), rng.integers(0, 5, (40, 6))
    rew, _, _ = surrogate_transitions(gen, pi_l, feats, s_g, s_l, 3, np.random.default_rng(1),
                                      common=True)
    one = surrogate_returns(gen, pi_l, zero, s_g, s_l, 3, 1, np.random.default_rng(1))
    assert one.shape == (40, 4, 3) and np.allclose(one, rew, atol=1e-5)
    two = surrogate_returns(gen, pi_l, zero, s_g, s_l, 3, 2, np.random.default_rng(1))
    assert not np.allclose(two, one, atol=1e-5)
    assert np.all(np.abs(two - one) <= gen.gamma * tab.r_max + 1e-6)
    adv = rollout_advantages(gen, pi_l, zero, s_g, s_l, 3, 1, np.random.default_rng(1))
    assert np.array_equal(adv[:, 0], np.zeros(40, np.float32))  # zero at pi_g's action
    assert np.allclose(adv, rew.mean(axis=2) - rew.mean(axis=2)[:, :1], atol=1e-4)


def test_rollout_targets(tiny):
    """targets="rollout": the network regresses the rollout advantages over pi_g (no
    bootstrapping), greedy or cautious; pi_g is required and the length validated."""
    tab, gen, _ = tiny
    u = am.LocalPolicy.uniform(tab)
    zero = am.GlobalPolicy.from_function(tab, 3, lambda sg, hh: np.zeros(len(sg), int))
    kw = {"m": 4, "seed": 0, "states": 200, "iterations": 40, "hidden": 16,
          "targets": "rollout", "pi_g": zero, "rollout_length": 8}
    pol = neural_g_learn(gen, u, 3, **kw)
    assert pol.info["targets"] == "rollout" and pol.info["rollout_length"] == 8
    assert pol.info["min_iterations"] == 1 and pol.base is None
    s_g, h = _all_states()
    q = pol.q_values(s_g, h)
    assert np.allclose(q[:, 0], 0.0, atol=0.1 * np.abs(q).max())  # advantages: ~0 at pi_g
    assert np.array_equal(pol.act(s_g, h), q.argmax(axis=1))
    huge = neural_g_learn(gen, u, 3, improve="cautious", margin=1e6, **kw)
    assert np.array_equal(huge.act(s_g, h), np.zeros(len(s_g), np.int64))
    assert huge.base is zero
    with pytest.raises(ValueError, match="targets = 'rollout'"):
        neural_g_learn(gen, u, 3, states=200, targets="rollout")
    with pytest.raises(ValueError, match="rollout_length"):
        neural_g_learn(gen, u, 3, states=200, targets="rollout", pi_g=zero, rollout_length=0)
