"""ServedPolicy (request validation, batched decisions), policy fingerprints, the decision
log and its join with outcomes into an off-policy log (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.offpolicy import load_dataset
from altmarl.sampling import Stratified
from altmarl.service import DecisionLog, RequestError, ServedPolicy, join_outcomes
from altmarl.service.policy import policy_fingerprint


@pytest.fixture(scope="module")
def game():
    return am.envs.make("warehouse", n=50)


@pytest.fixture(scope="module")
def served(game):
    pi_g = am.g_learn(game, am.LocalPolicy.uniform(game), 3, m=5, seed=0)
    return ServedPolicy(pi_g, game, "g_learn k=3")


def test_decisions_equal_the_policy(served, game) -> None:
    rng = np.random.default_rng(0)
    s_g = rng.integers(0, 5, 200)
    samples = rng.integers(0, 5, (200, 3))
    dec = served.decide(s_g.tolist(), samples.tolist())
    hist = np.stack([np.bincount(row, minlength=5) for row in samples])
    assert np.array_equal(dec.a_g, served.pi_g.act(s_g, hist))
    assert np.array_equal(dec.obs, hist)


@pytest.mark.parametrize(("s_g", "sample", "loc", "words"), [
    (5, [0, 0, 0], ("s_g",), "0..4"),
    (-1, [0, 0, 0], ("s_g",), "0..4"),
    (1.0, [0, 0, 0], ("s_g",), "integer global state"),
    (True, [0, 0, 0], ("s_g",), "integer global state"),
    (1, [0, 0], ("sample",), "k = 3"),
    (1, [0, 0, 0, 0], ("sample",), "k = 3"),
    (1, [0, 7, 0], ("sample", 1), "0..4"),
    (1, [0, 0, 2.0], ("sample", 2), "integer local state"),
])
def test_bad_requests_name_the_field(served, s_g, sample, loc, words) -> None:
    with pytest.raises(RequestError, match=words) as err:
        served.decide([s_g], [sample], [("requests", 4)])
    assert err.value.loc == ("requests", 4, *loc)
    assert err.value.detail()[0]["loc"] == ["body", "requests", 4, *loc]


@settings(max_examples=60, deadline=None)
@given(s_g=st.one_of(st.integers(-3, 8), st.floats(allow_nan=True), st.booleans()),
       sample=st.lists(st.one_of(st.integers(-2, 7), st.floats(allow_nan=True)), max_size=5))
def test_validation_property(served, s_g, sample) -> None:
    """Any input either raises RequestError or is a valid request answered by pi_g."""
    try:
        dec = served.decide([s_g], [sample])
    except RequestError as exc:
        assert exc.loc[0] in ("s_g", "sample")
        return
    assert type(s_g) is int and 0 <= s_g < 5 and len(sample) == 3
    assert all(type(x) is int and 0 <= x < 5 for x in sample)
    assert int(dec.a_g[0]) == served.pi_g.act(s_g, np.bincount(sample, minlength=5))


def test_stratified_scheme_checks_types() -> None:
    game = am.envs.make("warehouse", n=40, types=2)
    scheme = Stratified((1, 2)).bind(game)
    pi_g = am.GlobalPolicy.constant(game, 3, 1, sampling=scheme)
    sp = ServedPolicy(pi_g, game)
    types = np.asarray(scheme.types)
    t0, t1 = np.flatnonzero(types == 0), np.flatnonzero(types == 1)
    ok = [int(t0[0]), int(t1[0]), int(t1[-1])]
    assert sp.decide([0], [ok]).a_g.tolist() == [1]
    with pytest.raises(RequestError, match=r"\[2, 1\] agents per type, expected \[1, 2\]"):
        sp.decide([0], [[int(t0[0]), int(t0[-1]), int(t1[0])]])


def test_neural_policy(game, tmp_path) -> None:
    pytest.importorskip("torch")
    from altmarl.generative.neural import NeuralGlobalPolicy

    gen = game.as_generative()
    import torch

    from altmarl.continuous.nets import mlp
    from altmarl.generative.neural import Features

    torch.manual_seed(0)
    feats = Features.for_game(gen, 3)
    arch = {"in_dim": feats.dim, "out_dim": 5, "hidden": 8, "layers": 2}
    pol = NeuralGlobalPolicy(3, mlp(feats.dim, 5, 8, 2), feats, 5, arch)  # random weights
    # through the policy file, as altmarl serve loads it
    path = pol.save(tmp_path / "pi_g.pt", gen)
    pol = NeuralGlobalPolicy.load(path, gen)
    sp = ServedPolicy(pol, game, "neural")
    rng = np.random.default_rng(1)
    s_g, samples = rng.integers(0, 5, 50), rng.integers(0, 5, (50, 3))
    dec = sp.decide(s_g.tolist(), samples.tolist())
    hist = np.stack([np.bincount(r, minlength=5) for r in samples])
    assert np.array_equal(dec.a_g, pol.act(s_g, hist))
    assert sp.fingerprint == policy_fingerprint(pol) and len(sp.fingerprint) == 16


def test_fingerprints(game) -> None:
    a = am.GlobalPolicy.constant(game, 3, 1)
    assert policy_fingerprint(a) == policy_fingerprint(am.GlobalPolicy.constant(game, 3, 1))
    assert policy_fingerprint(a) != policy_fingerprint(am.GlobalPolicy.constant(game, 3, 2))
    assert policy_fingerprint(a) != policy_fingerprint(am.GlobalPolicy.constant(game, 2, 1))
    with pytest.raises(ValueError, match="global actions"):
        ServedPolicy(am.GlobalPolicy.constant(game, 3, 1), am.envs.make("random", n_ag=2))


def test_decision_log_and_join(tmp_path, served) -> None:
    log = DecisionLog(tmp_path / "dec", served, "shadow")
    rng = np.random.default_rng(2)
    s_g = rng.integers(0, 5, 12)
    samples = rng.integers(0, 5, (12, 3))
    dec = served.decide(s_g.tolist(), samples.tolist())
    ids = [f"d{i}" for i in range(12)]
    # two episodes of 6 steps; episode 1 misses step 3
    ep = [0] * 6 + [1] * 6
    t = [0, 1, 2, 3, 4, 5, 0, 1, 2, 4, 5, 6]
    log.write(ids, ep, t, dec.s_g, dec.obs, dec.a_g, [0] * 12)
    log.close()
    # a second service on the same log: same policy appends, another policy is refused
    DecisionLog(tmp_path / "dec.csv", served).close()
    other = ServedPolicy(am.GlobalPolicy.constant(served.game, 3, 0), served.game)
    with pytest.raises(ValueError, match="another policy"):
        DecisionLog(tmp_path / "dec", other)
    outcomes = tmp_path / "out.csv"
    rows = [f"d{i},{0.5 * i},{(i + 1) % 5}" for i in range(12) if i != 4]  # d4: no outcome
    outcomes.write_text("id,r,a_g\n" + "\n".join(rows) + "\n")
    ds = join_outcomes(tmp_path / "dec", outcomes, behaviour={"kind": "uniform"})
    # episode 0: 0->1->2->3 (d3 -> d4 linked, but d4 has no outcome), d4 dropped, d5 last;
    # episode 1: d6->d7->d8 (d8 -> d9 skips step 3), d9->d10->d11
    assert len(ds) == 4 + 2 + 2
    assert ds.episode.tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert ds.t.tolist() == [0, 1, 2, 3, 0, 1, 0, 1]
    assert ds.r.tolist() == [0.0, 0.5, 1.0, 1.5, 3.0, 3.5, 4.5, 5.0]
    assert ds.a_g.tolist() == [1, 2, 3, 4, 2, 3, 0, 1]  # the applied actions
    assert np.array_equal(ds.h[1], ds.h_next[0]) and ds.s_g[1] == ds.s_g_next[0]
    ds.save(tmp_path / "joined")
    back = load_dataset(tmp_path / "joined.csv", game=served.game)
    assert len(back) == 8 and back.info["behaviour"] == {"kind": "uniform"}
    with pytest.warns(am.offpolicy.CoverageWarning):  # 8 transitions cover little
        est = am.offpolicy_evaluate(back, served.pi_g, method="is", bootstrap=0)
    assert np.isfinite(est.value)
    (tmp_path / "bad.csv").write_text("id,r\nd0,nan\n")
    with pytest.raises(ValueError, match="finite"):
        join_outcomes(tmp_path / "dec", tmp_path / "bad.csv")


def test_cli_join(tmp_path, served) -> None:
    from typer.testing import CliRunner

    from altmarl.cli import app

    log = DecisionLog(tmp_path / "dec", served)
    dec = served.decide([1, 2, 3], [[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    log.write(["a", "b", "c"], [None] * 3, [None] * 3, dec.s_g, dec.obs, dec.a_g, [None] * 3)
    log.close()
    (tmp_path / "out.csv").write_text("id,r\na,1.0\nb,2.0\nc,3.0\n")
    runner = CliRunner()
    res = runner.invoke(app, ["logs", "join", str(tmp_path / "dec.csv"), "--outcomes",
                              str(tmp_path / "out.csv"), "--out", str(tmp_path / "log"),
                              "--behaviour", "uniform"])
    assert res.exit_code == 0, res.output
    assert "joined 2 transitions in 1 episodes" in res.output
    ds = load_dataset(tmp_path / "log.json")
    assert ds.r.tolist() == [1.0, 2.0] and ds.s_g_next.tolist() == [2, 3]
    res = runner.invoke(app, ["logs", "join", str(tmp_path / "dec.csv"), "--outcomes",
                              str(tmp_path / "out.csv"), "--out", str(tmp_path / "log2"),
                              "--behaviour", "greedy"])
    assert res.exit_code == 2 and "--behaviour" in res.output
