"""Game model and validation (SPEC 1): every rule raises a ValueError naming the field."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import altmarl as am
from altmarl._validate import check_k
from altmarl.game import DirichletInit, IIDInit, RewardWarning, check_recorded_game, game_record


def _valid(seed: int = 0, n_sg: int = 2, n_ag: int = 3, n_sl: int = 2, n_al: int = 2):
    rng = np.random.default_rng(seed)
    return dict(
        P_g=rng.dirichlet(np.ones(n_sg), size=(n_sg, n_ag)),
        P_l=rng.dirichlet(np.ones(n_sl), size=(n_sl, n_sg, n_al)),
        r_g=rng.uniform(0, 1, (n_sg, n_ag)),
        r_l=rng.uniform(0, 1, (n_sl, n_sg, n_al)),
        gamma=0.9,
        n=5,
    )


def test_valid_game_builds_and_reports_sizes():
    g = am.TabularGame(**_valid())
    assert (g.n_sg, g.n_ag, g.n_sl, g.n_al, g.n) == (2, 3, 2, 2, 5)
    assert g.r_max == pytest.approx(g.r_g.max() + g.r_l.max())
    assert np.allclose(g.rho_g, 0.5) and np.allclose(g.rho_l, 0.5)
    with pytest.raises(ValueError):
        g.P_g[0, 0, 0] = 1.0  # tables are read-only


@pytest.mark.parametrize(
    "field,shape",
    [("P_g", (2, 3, 3)), ("P_g", (2, 3)), ("P_l", (2, 3, 2, 2)), ("P_l", (2, 2, 2, 3)),
     ("r_g", (3, 2)), ("r_l", (2, 2, 3)), ("r_l", (2, 2))],
)
def test_wrong_shapes_name_the_field(field, shape):
    kw = _valid()
    kw[field] = np.full(shape, 1.0 / shape[-1])
    with pytest.raises(ValueError, match=field):
        am.TabularGame(**kw)


@given(
    field=st.sampled_from(["P_g", "P_l"]),
    flat_index=st.integers(0, 10_000),
    bad=st.sampled_from([np.nan, np.inf, -0.2, 0.3, 5.0]),
)
def test_broken_probability_rows_are_rejected(field, flat_index, bad):
    kw = _valid()
    arr = kw[field].copy()
    i = np.unravel_index(flat_index % arr.size, arr.shape)
    arr[i] = arr[i] + bad if np.isfinite(bad) else bad
    kw[field] = arr
    with pytest.raises(ValueError, match=field) as info:
        am.TabularGame(**kw)
    msg = str(info.value)
    # names the offending index (row) and what was expected
    prefix = f"{field}[{int(i[0])}, {int(i[1])}"
    assert msg.startswith(prefix), (msg, prefix)
    assert "expected" in msg


@given(
    field=st.sampled_from(["r_g", "r_l"]),
    flat_index=st.integers(0, 10_000),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_non_finite_rewards_are_rejected(field, flat_index, bad):
    kw = _valid()
    arr = kw[field].copy()
    i = np.unravel_index(flat_index % arr.size, arr.shape)
    arr[i] = bad
    kw[field] = arr
    with pytest.raises(ValueError, match=rf"{field}\[{', '.join(map(str, i))}\].*finite"):
        am.TabularGame(**kw)


@given(gamma=st.one_of(st.floats(max_value=-1e-12), st.floats(min_value=1.0), st.just(float("nan"))))
def test_gamma_outside_unit_interval_is_rejected(gamma):
    kw = _valid()
    kw["gamma"] = gamma
    with pytest.raises(ValueError, match="gamma"):
        am.TabularGame(**kw)


@given(n=st.integers(1, 50), k=st.integers(-5, 60))
def test_k_must_be_between_1_and_n(n, k):
    if 1 <= k <= n:
        assert check_k(k, n) == k
    else:
        with pytest.raises(ValueError, match=r"k = .*1 <= k <= n"):
            check_k(k, n)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "7"])
def test_bad_n_is_rejected(bad):
    kw = _valid()
    kw["n"] = bad
    with pytest.raises(ValueError, match="n ="):
        am.TabularGame(**kw)


def test_negative_rewards_are_accepted_with_a_warning():
    kw = _valid()
    kw["r_l"] = kw["r_l"] - 2.0
    with pytest.warns(RewardWarning, match="Assumption 2.2"):
        am.TabularGame(**kw)


def test_init_validation():
    kw = _valid()
    with pytest.raises(ValueError, match="init.rho_l"):
        am.TabularGame(**kw, init=(np.array([0.5, 0.5]), np.array([0.7, 0.7])))
    with pytest.raises(ValueError, match="init.alpha"):
        am.TabularGame(**kw, init=DirichletInit(np.array([0.5, 0.5]), np.array([0.3, -1.0])))


@pytest.mark.parametrize("init_kind", ["iid", "dirichlet"])
def test_initial_log_pmf_is_a_distribution_and_matches_sampling(init_kind):
    from altmarl.histogram import enumerate_histograms

    rng = np.random.default_rng(1)
    n, d = 6, 3
    if init_kind == "iid":
        init = IIDInit(np.array([0.3, 0.7]), np.array([0.2, 0.3, 0.5]))
    else:
        init = DirichletInit(np.array([0.3, 0.7]), np.array([0.3, 0.3, 0.3]))
    hs = enumerate_histograms(n, d)
    sg = np.repeat([0, 1], len(hs))
    counts = np.tile(hs, (2, 1))
    p = np.exp(init.log_pmf(sg, counts, n))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    s, c = init.sample(rng, 40_000, n)
    from altmarl.histogram import rank

    idx = s * len(hs) + rank(c, n)
    emp = np.bincount(idx, minlength=p.size) / 40_000
    assert np.abs(emp - p).max() < 0.01


def test_warehouse_has_the_constants_of_spec_8_1():
    g = am.envs.make("warehouse", n=1000)
    assert (g.n_sg, g.n_ag, g.n_sl, g.n_al, g.n, g.gamma) == (5, 5, 5, 3, 1000, 0.95)
    # P_g(.|s_g=1, a_g=3): logits 0.1 everywhere, +3 at a_g, +0.5 at s_g
    logits = np.full(5, 0.1)
    logits[3] += 3.0
    logits[1] += 0.5
    assert np.allclose(g.P_g[1, 3], np.exp(logits) / np.exp(logits).sum())
    # s_g == a_g: both bonuses on one entry
    logits = np.full(5, 0.1)
    logits[2] += 3.5
    assert np.allclose(g.P_g[2, 2], np.exp(logits) / np.exp(logits).sum())
    # P_l(.|s_l=4, s_g=0, a_l=1): +3.5 at 4, +1.5 at 0 (= 4+1 mod 5), +0.3 at s_g = 0
    logits = np.full(5, 0.1)
    logits[4] += 3.5
    logits[0] += 1.5 + 0.3
    assert np.allclose(g.P_l[4, 0, 1], np.exp(logits) / np.exp(logits).sum())
    # a_l = 2 moves -1: from 0 to 4
    logits = np.full(5, 0.1)
    logits[0] += 3.5
    logits[4] += 1.5
    logits[2] += 0.3
    assert np.allclose(g.P_l[0, 2, 2], np.exp(logits) / np.exp(logits).sum())
    assert np.all(g.r_g == 1.0)
    assert g.r_l[3, 3, 0] == 10.0 and g.r_l[3, 3, 1] == 10.5 and g.r_l[3, 3, 2] == pytest.approx(9.7)
    # circular distance 2 between zone 0 and zone 3
    assert g.r_l[0, 3, 0] == pytest.approx(2 / 3)
    assert g.r_l[0, 4, 0] == pytest.approx(1.0)
    assert isinstance(g.init, DirichletInit) and np.allclose(g.init.alpha, 0.3)


def test_check_game_returns_the_game_or_names_the_type(tiny_game):
    from altmarl.game import check_game

    assert check_game(tiny_game) is tiny_game
    with pytest.raises(ValueError, match=r"^game: expected an altmarl.TabularGame, got dict$"):
        check_game({"S_g": 2})
    with pytest.raises(ValueError, match=r"^env_game: expected .* got NoneType$"):
        check_game(None, "env_game")


def test_registry(monkeypatch):
    assert {"warehouse", "random"} <= set(am.envs.names())
    with pytest.raises(ValueError, match="unknown environment"):
        am.envs.make("nope")
    with pytest.raises(ValueError, match=r"^params.zonez: unknown parameter of env 'warehouse' "
                                         r"\(did you mean 'zones'\?\); its parameters are n, "
                                         r"gamma, zones, alpha, types, fast_share$"):
        am.envs.make("warehouse", zonez=3, n=10)  # n is a real parameter: not listed as unknown
    assert am.envs.parameters("random")[:2] == ["n_sg", "n_ag"]
    with pytest.raises(ValueError, match="unknown environment"):
        am.envs.parameters("nope")
    # throw-away factories, removed from the registry when the test ends
    monkeypatch.setitem(am.envs._REGISTRY, "test-kwargs", lambda **kw: am.envs.make("random", **kw))
    assert am.envs.parameters("test-kwargs") is None  # **kwargs: any key passes through
    with pytest.raises(ValueError, match="unknown parameter"):
        am.envs.make("test-kwargs", bogus=1)
    monkeypatch.setitem(am.envs._REGISTRY, "test-required",
                        lambda size: am.envs.make("random", n=size))
    with pytest.raises(ValueError, match="bad parameters"):  # a required one missing
        am.envs.make("test-required")
    # parameter values are checked by the foundation's validators, named
    for env, kw, match in (("random", {"n_sl": 0}, r"n_sl = 0: expected an integer in \[1, "),
                           ("random", {"n_ag": 2.0}, "n_ag = 2.0: expected an integer"),
                           ("random", {"seed": -1}, "seed = -1: expected an integer >= 0"),
                           ("random", {"concentration": 0}, "concentration = 0"),
                           ("random", {"r_max": -1.0}, "r_max = -1.0"),
                           ("warehouse", {"zones": 1}, r"zones = 1: expected an integer in \[2, "),
                           ("warehouse", {"alpha": 0.0}, "alpha = 0.0")):
        with pytest.raises(ValueError, match=match):
            am.envs.make(env, **kw)
    g1 = am.envs.make("random", seed=4, n=7)
    g2 = am.envs.make("random", seed=4, n=7)
    assert g1.fingerprint() == g2.fingerprint()
    assert g1.fingerprint() != am.envs.make("random", seed=5, n=7).fingerprint()
    assert g1.with_n(100).fingerprint() == g1.fingerprint()  # n is not part of it


def test_joint_kernel_is_the_action_next_state_law_and_sums_to_local_kernel():
    """``joint_kernel``: ``pi_l[x, g, a] P_l[x, g, a, y]`` (batched over leading axes);
    each (x, g) slice is a distribution over (a, y); summed over a it is ``local_kernel``."""
    g = am.TabularGame(**_valid(3, n_sg=2, n_ag=2, n_sl=3, n_al=4))
    rng = np.random.default_rng(1)
    tables = rng.dirichlet(np.ones(4), size=(5, 3, 2))  # a batch of 5 tables
    J = g.joint_kernel(tables)
    assert J.shape == (5, 3, 2, 4, 3)
    np.testing.assert_allclose(J.sum(axis=(-2, -1)), 1.0, atol=1e-12)
    for c in range(5):
        ref = np.einsum("xga,xgay->xgay", tables[c], g.P_l)
        np.testing.assert_array_equal(g.joint_kernel(tables[c]), ref)
        np.testing.assert_allclose(J[c].sum(axis=2), g.local_kernel(tables[c]), atol=1e-14)
    with pytest.raises(ValueError, match="pi_l table"):
        g.joint_kernel(np.ones((3, 2, 3)) / 3)


def test_env_factories_are_functions_not_shadowed_modules():
    import importlib
    import pkgutil

    # am.envs.warehouse / am.envs.random_game are the factories, and no module of the
    # package carries the name of a public function (SPEC 10)
    assert callable(am.envs.warehouse) and callable(am.envs.random_game)
    assert am.envs.warehouse is importlib.import_module("altmarl.envs.tabular_warehouse").warehouse
    assert am.envs.random_game is importlib.import_module("altmarl.envs.random_tabular").random_game
    modules = {m.name for m in pkgutil.iter_modules(am.envs.__path__)}
    assert modules and not modules & set(am.envs.__all__)
    assert am.envs.make("warehouse", n=50).fingerprint() == am.envs.warehouse(n=50).fingerprint()


def test_save_load_round_trip_and_rejections(tmp_path):
    """``TabularGame.save`` / ``load``: pickle-free npz + JSON meta; the loaded game has the
    same tables, gamma, n, init, name, meta and fingerprint. A file for other spaces, of
    another format, or with altered tables is refused with a ValueError naming the file."""
    import json

    g = am.TabularGame(**_valid(4), init=DirichletInit(np.array([0.3, 0.7]),
                                                       np.array([1.0, 2.5])),
                       name="saved", meta={"source": "test", "x": np.float64(1.5)})
    path = g.save(tmp_path / "g")
    assert path.name == "g.npz"
    h = am.TabularGame.load(path, spaces=g.spaces)
    for key in ("P_g", "P_l", "r_g", "r_l"):
        np.testing.assert_array_equal(getattr(h, key), getattr(g, key))
    assert (h.gamma, h.n, h.name, h.meta) == (g.gamma, g.n, "saved", {"source": "test", "x": 1.5})
    assert isinstance(h.init, DirichletInit) and np.array_equal(h.init.alpha, g.init.alpha)
    assert h.fingerprint() == g.fingerprint()
    with np.load(path, allow_pickle=False) as z:  # readable without pickle
        assert json.loads(str(z["meta"]))["format"] == "altmarl.tabular_game"

    other = am.TabularGame(**_valid(5, n_sg=3, n_ag=2, n_sl=4, n_al=2))
    with pytest.raises(ValueError, match=r"other\.npz.*spaces"):
        am.TabularGame.load(other.save(tmp_path / "other.npz"), spaces=g.spaces)
    # tables of another shape than the metadata says (a hand-edited file)
    with np.load(path, allow_pickle=False) as z:
        arrays = {key: z[key] for key in z.files}
    bad = dict(arrays, P_l=np.full((2, 2, 3, 2), 0.5), r_l=np.zeros((2, 2, 3)))
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(ValueError, match=r"shape\.npz.*spaces"):
        am.TabularGame.load(tmp_path / "shape.npz")
    np.savez(tmp_path / "broken.npz", **dict(arrays, P_g=np.full((2, 3, 2), 0.4)))
    with pytest.raises(ValueError, match=r"broken\.npz: P_g"):
        am.TabularGame.load(tmp_path / "broken.npz")
    np.savez(tmp_path / "edited.npz", **dict(arrays, r_g=arrays["r_g"] + 0.25))
    with pytest.raises(ValueError, match="fingerprint"):
        am.TabularGame.load(tmp_path / "edited.npz")
    np.savez(tmp_path / "policy.npz", meta=np.array(json.dumps({"format": "altmarl.local_policy"})))
    with pytest.raises(ValueError, match="not a tabular-game file"):
        am.TabularGame.load(tmp_path / "policy.npz")


def test_check_recorded_game_refuses_another_games_fingerprint():
    g = am.TabularGame(**_valid(0), name="mine")
    other = am.TabularGame(**_valid(1), name="theirs")
    rec = game_record(g)
    assert rec == {"name": "mine", "fingerprint": g.fingerprint(), "n": 5}
    assert g.fingerprint() != other.fingerprint()
    check_recorded_game(rec, g, "p.npz", "policy made for", True)  # same game: accepted
    msg = (f"p.npz: policy made for game 'mine' (fingerprint {g.fingerprint()}), not for "
           f"'theirs' (fingerprint {other.fingerprint()}); pass strict=False to use it on a "
           "game with the same spaces anyway")
    with pytest.raises(ValueError) as exc:
        check_recorded_game(rec, other, "p.npz", "policy made for", True)
    assert str(exc.value) == msg
    with pytest.raises(ValueError, match=r"^log\.csv: log recorded on game 'mine' .* not on "
                                         r"'theirs'"):
        check_recorded_game(rec, other, "log.csv", "log recorded on", True)
    with pytest.raises(ValueError, match="^dataset: recorded on game 'mine'"):
        check_recorded_game(rec, other, "dataset", "recorded on", True, required=True)
    for bad in (rec, {}, None, "not a mapping"):  # strict=False checks nothing
        check_recorded_game(bad, other, "p.npz", "policy made for", False, required=True)
    for missing in ({}, {"name": "x"}, None, ["fingerprint"]):  # no fingerprint recorded
        check_recorded_game(missing, other, "p.npz", "policy made for", True)
        with pytest.raises(ValueError, match=r"no fingerprint recorded\), not for 'theirs'"):
            check_recorded_game(missing, other, "p.npz", "policy made for", True,
                                required=True)
