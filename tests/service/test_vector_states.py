"""Neural global policies of generative games with continuous *vector* states through the
service: request validation (a list of per-agent state vectors; 422 naming the field on
wrong shapes) and a real uvicorn server on loopback answering exactly as the policy does."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import altmarl as am

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from altmarl.continuous.nets import mlp  # noqa: E402
from altmarl.generative import LearnedEncoder  # noqa: E402
from altmarl.generative.neural import Features, NeuralGlobalPolicy, q_network  # noqa: E402
from altmarl.service import DecisionLog, RequestError, ServedPolicy  # noqa: E402
from altmarl.service.app import RunningServer, create_app  # noqa: E402

N, K, A_G = 20, 4, 3
TIMEOUT = 10.0


def vector_game(observe: object) -> am.GenerativeGame:
    """Global state (x, y) in R^2, local states (u, v) in R^2; the global action pulls x."""

    def reset(rng, R):
        return rng.normal(size=(R, 2)), rng.normal(size=(R, N, 2))

    def step(s_g, s_l, a_g, a_l, rng):
        pull = (np.asarray(a_g, dtype=np.float64) - 1.0)[:, None] * np.array([1.0, 0.0])
        s_g2 = 0.5 * s_g + pull + 0.1 * rng.normal(size=s_g.shape)
        s_l2 = 0.9 * s_l + 0.1 * rng.normal(size=s_l.shape)
        r_l = -np.abs(s_l[..., 0] - s_g[:, None, 0])
        return s_g2, s_l2, -np.abs(s_g[:, 0]), r_l

    return am.GenerativeGame(n=N, gamma=0.9, num_global_actions=A_G, num_local_actions=1,
                             reset=reset, step=step, observe=observe, name="vector-states")


def neural_policy(game: am.GenerativeGame, tmp_path, name: str) -> NeuralGlobalPolicy:
    """A policy with random weights, written to a .pt file and read back (as altmarl serve
    loads one)."""
    torch.manual_seed(0)
    feats = Features.for_game(game, K)
    arch = {"in_dim": feats.dim, "out_dim": A_G, "hidden": 8, "layers": 2}
    if feats.set_dim is not None:
        arch["encoder"] = {"global_dim": feats.global_dim, "set_dim": feats.set_dim,
                           "embed_dim": 4, "embed_hidden": 8}
        net = q_network(arch)
    else:
        net = mlp(feats.dim, A_G, 8, 2)
    pol = NeuralGlobalPolicy(K, net, feats, A_G, arch)
    return NeuralGlobalPolicy.load(pol.save(tmp_path / f"{name}.pt", game), game)


@pytest.fixture(scope="module", params=["encoder", "learned"])
def served(request, tmp_path_factory):
    observe = "encoder" if request.param == "encoder" else LearnedEncoder(embed_dim=4, hidden=8)
    game = vector_game(observe)
    pol = neural_policy(game, tmp_path_factory.mktemp("pol"), request.param)
    return game, pol, ServedPolicy(pol, game, request.param)


def random_requests(rng: np.random.Generator, R: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(R, 2)), rng.normal(size=(R, K, 2))


def test_decisions_equal_the_policy(served) -> None:
    game, pol, sp = served
    assert sp.local_dim == 2 and sp.global_dim == 2 and sp.global_columns == ["s_g_0", "s_g_1"]
    s_g, samples = random_requests(np.random.default_rng(0), 64)
    dec = sp.decide(s_g.tolist(), samples.tolist())
    assert np.array_equal(dec.a_g, pol.act(s_g, game.observe(samples)))
    # the observation's width: the moment summary (2 x 2), or the learned encoder's k x 2
    assert len(sp.summary_columns) == (4 if game.observe.kind == "encoder" else K * 2)
    assert sp.describe()["local_shape"] == [2]


@pytest.mark.parametrize(("s_g", "sample", "loc", "words"), [
    (0, [[0.0, 0.0]] * K, ("s_g",), "global state vector of 2 numbers"),
    ([0.0], [[0.0, 0.0]] * K, ("s_g",), "got 1 numbers"),
    ([0.0, float("nan")], [[0.0, 0.0]] * K, ("s_g", 1), "finite"),
    ([0.0, 0.0], [[0.0, 0.0]] * (K - 1), ("sample",), f"k = {K}"),
    ([0.0, 0.0], [[0.0, 0.0]] * 3 + [0.5], ("sample", 3), "local state vector of 2 numbers"),
    ([0.0, 0.0], [[0.0, 0.0], [1.0, 2.0, 3.0]] + [[0.0, 0.0]] * 2, ("sample", 1),
     "got 3 numbers"),
    ([0.0, 0.0], [[0.0, 0.0], [1.0, True]] + [[0.0, 0.0]] * 2, ("sample", 1, 1), "finite"),
    ([0.0, 0.0], [[0.0, float("inf")]] + [[0.0, 0.0]] * 3, ("sample", 0, 1), "finite"),
])
def test_wrong_shapes_name_the_field(served, s_g, sample, loc, words) -> None:
    _, _, sp = served
    with pytest.raises(RequestError, match=words) as err:
        sp.decide([s_g], [sample], [("requests", 2)])
    assert err.value.loc == ("requests", 2, *loc)


def test_matrix_states_are_refused() -> None:
    def reset(rng, R):
        return rng.integers(0, 2, size=R), rng.normal(size=(R, N, 2, 2))

    def step(s_g, s_l, a_g, a_l, rng):
        return np.asarray(a_g) % 2, s_l, np.zeros(len(s_g)), np.zeros(s_l.shape[:2])

    game = am.GenerativeGame(n=N, gamma=0.9, num_global_actions=2, num_local_actions=1,
                             reset=reset, step=step, observe="encoder", name="matrix",
                             num_global_states=2)

    class Constant:
        k, n_ag = K, 2

        def act(self, s_g, obs):
            return np.zeros(len(s_g), np.int64)

    with pytest.raises(ValueError, match=r"local states of shape \(2, 2\)"):
        ServedPolicy(Constant(), game)


def test_loopback_server(served, tmp_path) -> None:
    """A real server: /act and /act_batch answer as pi_g.act on the game's summary, 422s name
    the field, 4 concurrent clients see no error, every decision is logged."""
    game, pol, sp = served
    dlog = DecisionLog(tmp_path / "dec", sp)
    errors: list[str] = []
    with RunningServer(create_app(sp, dlog)) as srv:
        with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
            h = c.get("/health").json()
            assert h["policy_kind"] == "NeuralGlobalPolicy" and h["local_shape"] == [2]
            s_g, samples = random_requests(np.random.default_rng(1), 1)
            r = c.post("/act", json={"s_g": s_g[0].tolist(), "sample": samples[0].tolist()})
            assert r.status_code == 200, r.text
            assert r.json()["a_g"] == int(pol.act(s_g, game.observe(samples))[0])
            ok_g, ok_s = [0.0, 1.0], [[0.0, 1.0]] * K
            cases = [
                ({"s_g": ok_g, "sample": [[0.0, 1.0]] * (K - 1)}, ["body", "sample"], "k = 4"),
                ({"s_g": ok_g, "sample": [[0.0]] + ok_s[1:]}, ["body", "sample", 0], "2 numbers"),
                ({"s_g": ok_g, "sample": [1.5] + ok_s[1:]}, ["body", "sample", 0], "vector"),
                ({"s_g": 1.0, "sample": ok_s}, ["body", "s_g"], "vector of 2"),
                ({"s_g": ok_g, "sample": [[[0.0, 1.0]]] + ok_s[1:]}, ["body", "sample", 0], ""),
                ({"s_g": ok_g, "sample": [["a", 1.0]] + ok_s[1:]}, ["body", "sample", 0], ""),
            ]
            for req, loc, words in cases:
                r = c.post("/act", json=req)
                assert r.status_code == 422, (req, r.text)
                det = r.json()["detail"][0]
                assert det["loc"][:len(loc)] == loc and words in det["msg"], (req, det)
            r = c.post("/act_batch", json={"requests": [{"s_g": ok_g, "sample": ok_s},
                                                        {"s_g": ok_g, "sample": ok_s[:2]}]})
            assert r.status_code == 422
            assert r.json()["detail"][0]["loc"] == ["body", "requests", 1, "sample"]

        def client(i: int) -> None:
            rng = np.random.default_rng(10 + i)
            try:
                with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
                    for _ in range(20):
                        g, smp = random_requests(rng, 1)
                        r = c.post("/act", json={"s_g": g[0].tolist(),
                                                 "sample": smp[0].tolist()})
                        want = int(pol.act(g, game.observe(smp))[0])
                        if r.status_code != 200 or r.json()["a_g"] != want:
                            errors.append(f"client {i}: {r.status_code} {r.text[:200]}")
                    g, smp = random_requests(rng, 16)
                    r = c.post("/act_batch", json={"requests": [
                        {"s_g": a.tolist(), "sample": b.tolist()}
                        for a, b in zip(g, smp, strict=True)]})
                    want_b = pol.act(g, game.observe(smp)).tolist()
                    if r.status_code != 200 or r.json()["actions"] != want_b:
                        errors.append(f"client {i} batch: {r.status_code} {r.text[:200]}")
            except Exception as exc:  # a transport error is a failure too
                errors.append(f"client {i}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, 60 - (time.monotonic() - t0)))
        assert not any(t.is_alive() for t in threads), "clients did not finish within 60 s"
    assert not errors, errors[:5]
    assert dlog.rows == 1 + 4 * (20 + 16)
    header = (tmp_path / "dec.csv").read_text().splitlines()[0].split(",")
    assert header[4:6] == ["s_g_0", "s_g_1"] and len(header) == 9 + len(sp.summary_columns)
    first = (tmp_path / "dec.csv").read_text().splitlines()[1].split(",")
    assert len(first) == len(header)
    assert [float(v) for v in first[4:6]] == s_g[0].tolist()
