"""Generative games (SPEC 11): GenerativeGame, the per-agent simulator, as_generative(),
the policy protocol, observers, the fleet."""

from __future__ import annotations

import math

import numpy as np
import pytest

import altmarl as am
from altmarl.generative import (
    Counts,
    FunctionGlobalPolicy,
    FunctionLocalPolicy,
    GenerativeGame,
    Histogram,
    SetEncoder,
    UniformLocalPolicy,
    simulate,
)
from altmarl.generative.tabular import alias_tables, sample_alias


def walk_game(n: int = 20, check: str = "always", **over):
    """A user-defined game with scalar continuous local states (a noisy walk)."""

    def reset(rng, R):
        return rng.integers(0, 3, size=R), rng.normal(size=(R, n))

    def step(s_g, s_l, a_g, a_l, rng):
        drift = np.where(a_l == 1, 0.1, -0.1)
        s_l2 = 0.9 * s_l + drift + 0.1 * rng.normal(size=s_l.shape)
        s_g2 = (s_g + a_g) % 3
        r_g = np.where(a_g == s_g % 2, 1.0, 0.0)
        r_l = np.exp(-np.abs(s_l))
        out = [s_g2, s_l2, r_g, r_l]
        for i, v in over.items():
            out[int(i[1:])] = v(out[int(i[1:])]) if callable(v) else v
        return tuple(out)

    return GenerativeGame(n=n, gamma=0.9, num_global_actions=2, num_local_actions=2,
                          reset=reset, step=step, observe="histogram", name="walk",
                          num_global_states=3, bins=[-1.0, 0.0, 1.0], r_max=2.0, check=check)


def z_score(a: am.Evaluation, b: am.Evaluation) -> float:
    return (a.mean - b.mean) / math.hypot(a.stderr, b.stderr)


# --- the tabular view has the same law ----------------------------------------------------
def test_as_generative_shapes_and_sizes():
    tab = am.envs.make("warehouse", n=30)
    gen = tab.as_generative()
    assert isinstance(gen, am.GenerativeGame)
    assert (gen.n_sg, gen.n_ag, gen.n_sl, gen.n_al) == (tab.n_sg, tab.n_ag, tab.n_sl, tab.n_al)
    assert gen.global_shape == () and gen.local_shape == ()
    assert gen.fingerprint() == tab.fingerprint()
    assert gen.r_max == tab.r_max and gen.spaces == tab.spaces


def test_generative_view_matches_count_simulator():
    """Same (pi_g, pi_l): count simulator on the tables and per-agent simulator on the
    generative view agree within Monte-Carlo error (independent seeds, z-test)."""
    tab = am.envs.make("warehouse", n=40)
    pi_l = am.LocalPolicy.uniform(tab)
    pi_g = am.GlobalPolicy.sample_mode(tab, 3)
    ev_c = am.evaluate(tab, pi_g, pi_l, rollouts=1500, horizon=40, seed=1)
    ev_g = am.evaluate(tab.as_generative(), pi_g, pi_l, rollouts=1500, horizon=40, seed=2)
    assert ev_g.extra["simulator"] == "generative"
    assert abs(z_score(ev_c, ev_g)) < 4
    # per-step records agree too (occupancy of the first zone, mode match)
    assert np.allclose(ev_c.occupancy, ev_g.occupancy, atol=0.05)
    assert ev_g.mode_match is not None
    assert abs(ev_c.mode_match_rate - ev_g.mode_match_rate) < 0.05


def test_generative_evaluate_matches_exact_value():
    tab = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.8, seed=3)
    pi_l = am.LocalPolicy(np.random.default_rng(0).dirichlet([1, 1], size=(2, 2)))
    pi_g = am.GlobalPolicy.from_function(tab, 2, lambda sg, h: (sg + h[:, 0]) % 2)
    exact = am.exact.ExactSolver(tab, 2).value(pi_g, pi_l)
    ev = am.evaluate(tab.as_generative(), pi_g, pi_l, rollouts=4000, horizon=80, seed=5)
    assert ev.truncation_bound < 1e-6
    assert abs(ev.mean - exact) < 4 * ev.stderr


def test_alias_tables_reproduce_probabilities():
    p = np.random.default_rng(0).dirichlet(np.full(7, 0.5), size=5)
    p[0] = [0, 0, 1, 0, 0, 0, 0]
    prob, alias = alias_tables(p)
    # exact mass of each column: P(x) = (1/d) (prob[x] + sum_{j: alias[j] = x} (1 - prob[j]))
    d = p.shape[1]
    mass = prob / d
    for r in range(p.shape[0]):
        np.add.at(mass[r], alias[r], (1 - prob[r]) / d)
    assert np.allclose(mass, p, atol=1e-12)
    rows = np.repeat(np.arange(5), 20_000)
    x = sample_alias(prob, alias, rows, np.random.default_rng(1))
    freq = np.stack([np.bincount(x[rows == r], minlength=d) / 20_000 for r in range(5)])
    assert np.abs(freq - p).max() < 0.02
    assert (x[rows == 0] == 2).all()


# --- any mix of policy kinds --------------------------------------------------------------
def test_mixed_policy_kinds_on_both_games():
    tab = am.envs.make("warehouse", n=30)
    pi_l = am.LocalPolicy.uniform(tab)
    mode = FunctionGlobalPolicy(3, lambda s_g, h: h.argmax(axis=1), "mode")
    tabular_mode = am.GlobalPolicy.sample_mode(tab, 3)
    a = am.evaluate(tab, mode, pi_l, rollouts=64, horizon=20, seed=0)  # routed to the view
    b = am.evaluate(tab.as_generative(), tabular_mode, pi_l, rollouts=64, horizon=20, seed=0)
    c = am.evaluate(tab.as_generative(), mode, UniformLocalPolicy(3), rollouts=64,
                    horizon=20, seed=0)
    # the tabular sample-mode policy and the function give the same actions: same numbers
    assert a.mean == b.mean
    assert np.isfinite(c.mean)


def test_tabular_policy_mismatch_is_rejected():
    gen = am.envs.make("warehouse", n=30).as_generative()
    other = am.envs.make("random", n_sg=5, n_ag=5, n_sl=4, n_al=3, n=30)
    with pytest.raises(ValueError, match="pi_g: made for"):
        am.evaluate(gen, am.GlobalPolicy.constant(other, 2), am.LocalPolicy.uniform(gen),
                    rollouts=2, horizon=2)
    with pytest.raises(ValueError, match="pi_l.table"):
        am.evaluate(gen, am.GlobalPolicy.constant(gen, 2), am.LocalPolicy.uniform(other),
                    rollouts=2, horizon=2)
    walk = walk_game()
    with pytest.raises(ValueError, match="reads count histograms"):
        am.evaluate(walk, am.GlobalPolicy.constant(gen, 2), UniformLocalPolicy(2),
                    rollouts=2, horizon=2)


def test_bad_policy_outputs_are_rejected():
    gen = am.envs.make("warehouse", n=10).as_generative()
    pi_l = am.LocalPolicy.uniform(gen)
    bad = FunctionGlobalPolicy(2, lambda s_g, h: np.full(s_g.shape, 7))
    with pytest.raises(ValueError, match="pi_g.act returned actions"):
        am.evaluate(gen, bad, pi_l, rollouts=2, horizon=2)
    bad_l = FunctionLocalPolicy(lambda s_l, s_g, rng: np.zeros(s_l.shape[0], dtype=int))
    with pytest.raises(ValueError, match="pi_l.act returned an array of shape"):
        am.evaluate(gen, am.GlobalPolicy.constant(gen, 2), bad_l, rollouts=2, horizon=2)


# --- seeding ------------------------------------------------------------------------------
def test_seed_drives_everything_independent_of_workers():
    gen = am.envs.make("warehouse", n=25).as_generative()
    pi_l = am.LocalPolicy.uniform(gen)
    pi_g = am.GlobalPolicy.sample_mode(am.envs.make("warehouse", n=25), 2)
    a = simulate(gen, pi_g, pi_l, 70, 10, seed=3, workers=1)
    b = simulate(gen, pi_g, pi_l, 70, 10, seed=3, workers=2)
    c = simulate(gen, pi_g, pi_l, 70, 10, seed=4, workers=2)
    assert np.array_equal(a.rewards, b.rewards) and np.array_equal(a.counts, b.counts)
    assert not np.array_equal(a.rewards, c.rewards)


# --- observers ----------------------------------------------------------------------------
def test_histogram_and_encoder_observers():
    h = Histogram([-1.0, 0.0, 1.0])
    sample = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0], [1.0, 1.0, 1.0, -1.0, -1.0]])
    assert h(sample).tolist() == [[1, 1, 2, 1], [0, 2, 0, 3]]
    enc = SetEncoder()
    vec = np.random.default_rng(0).normal(size=(3, 4, 2))
    out = enc(vec)
    assert out.shape == (3, enc.dim((2,)))
    assert np.allclose(out, enc(vec[:, ::-1]))  # permutation invariant
    assert np.allclose(out[:, :2], vec.mean(axis=1))
    custom = enc.with_embedding(lambda s: s.sum(axis=-1, keepdims=True), 1)
    assert np.allclose(custom(vec)[:, 0], vec.sum(axis=-1).mean(axis=1))
    assert Counts(3)(np.array([[0, 2, 2]])).tolist() == [[1, 0, 2]]


def test_continuous_user_game_runs_with_histogram_and_encoder():
    walk = walk_game()
    assert walk.local_shape == () and walk.obs_dim == 4 and not walk.discrete_local
    pi_g = FunctionGlobalPolicy(5, lambda s_g, h: (h[:, 2:].sum(axis=1) > 2).astype(int))
    ev = am.evaluate(walk, pi_g, UniformLocalPolicy(2), rollouts=40, horizon=30, seed=0)
    # scalar local states: occupancy per histogram bin of the whole population
    assert np.isfinite(ev.mean) and ev.occupancy.shape == (30, 4) and walk.population_bins == 4
    assert np.allclose(ev.occupancy.sum(axis=1), 1.0)
    assert ev.global_occupancy.shape == (30, 3) and ev.mode_match is None
    assert ev.truncation_bound == pytest.approx(0.9**30 * 2.0 / 0.1)

    def reset(rng, R):
        return rng.normal(size=(R, 2)), rng.normal(size=(R, 20, 3))

    def step(s_g, s_l, a_g, a_l, rng):
        return s_g, s_l + 0.1 * a_l[..., None], np.ones(len(s_g)), -np.abs(s_l).sum(-1)

    vec = GenerativeGame(20, 0.9, 2, 2, reset, step, observe="encoder", name="vec")
    assert vec.obs_dim == 6 and vec.global_shape == (2,) and vec.local_shape == (3,)
    pi = FunctionGlobalPolicy(4, lambda s_g, phi: (phi[:, 0] > 0).astype(int))
    ev = am.evaluate(vec, pi, UniformLocalPolicy(2), rollouts=8, horizon=5, seed=0)
    assert np.isnan(ev.truncation_bound) and ev.global_occupancy.shape == (5, 0)


# --- validation of the user's functions ---------------------------------------------------
@pytest.mark.parametrize("override, match", [
    ({"o3": lambda r: r * np.nan}, r"step returned r_l\[0, 0\] = nan"),
    ({"o2": lambda r: r[:-1]}, r"step returned r_g of shape"),
    ({"o3": lambda r: r.astype(str)}, r"step returned r_l of dtype"),
    ({"o1": lambda s: s[:, :-1]}, r"step returned s_l' of shape"),
    ({"o0": lambda s: s + 0.5}, r"step returned s_g' of dtype float64: expected integer"),
    ({"o0": lambda s: s + 3}, r"step returned s_g'\[0\] = \d: expected a state in 0..2"),
])
def test_bad_step_outputs_name_function_and_array(override, match):
    with pytest.raises(ValueError, match=match):
        walk_game(**override)


def test_bad_reset_and_arguments():
    def reset(rng, R):
        return np.zeros(R, dtype=int), np.zeros((R, 5))

    def step(s_g, s_l, a_g, a_l, rng):
        return s_g, s_l, np.zeros(len(s_g)), np.zeros(s_l.shape[:2])

    with pytest.raises(ValueError, match=r"reset\(rng, 2\) returned s_l of shape \(2, 5\)"):
        GenerativeGame(6, 0.9, 2, 2, reset, step, observe="encoder")
    with pytest.raises(ValueError, match="observe = 'counts': give num_local_states"):
        GenerativeGame(5, 0.9, 2, 2, reset, step, observe="counts")
    with pytest.raises(ValueError, match="gamma"):
        GenerativeGame(5, 1.0, 2, 2, reset, step, observe="encoder")
    with pytest.raises(ValueError, match="reset returned int"):
        GenerativeGame(5, 0.9, 2, 2, lambda rng, R: 3, step, observe="encoder")
    with pytest.raises(ValueError, match=r"reset returned s_l\[0, 0\] = 0.0|dtype float64"):
        GenerativeGame(5, 0.9, 2, 2, reset, step, observe="counts", num_local_states=2)


def test_check_first_and_always():
    """With check='always' a NaN reward at a later call is caught; with 'first' only the
    probe calls are checked in full."""
    calls = {"n": 0}

    def later_nan(r):
        calls["n"] += 1
        return r * np.nan if calls["n"] > 2 else r

    walk = walk_game(o3=later_nan)
    with pytest.raises(ValueError, match="step returned r_l"):
        am.evaluate(walk, FunctionGlobalPolicy(2, lambda s, h: np.zeros(len(s), int)),
                    UniformLocalPolicy(2), rollouts=2, horizon=3, workers=1)
    calls["n"] = 0
    quiet = walk_game(check="first", o3=later_nan)
    ev = am.evaluate(quiet, FunctionGlobalPolicy(2, lambda s, h: np.zeros(len(s), int)),
                     UniformLocalPolicy(2), rollouts=2, horizon=3, workers=1)
    assert np.isnan(ev.mean)


# --- the fleet ----------------------------------------------------------------------------
def test_fleet_environment():
    fleet = am.envs.make("fleet")
    assert "fleet" in am.envs.names()
    assert isinstance(fleet, am.GenerativeGame) and fleet.n == 10_000
    assert fleet.n_sl >= 100 and fleet.n_sg >= 10
    assert am.num_histograms(20, fleet.n_sl) > 10**20  # tabular G-LEARN cannot start
    small = am.envs.make("fleet", n=200)
    Z, B = small.meta["zones"], small.meta["battery"]
    mode = FunctionGlobalPolicy(
        10, lambda s_g, h: h.reshape(len(h), Z, B).sum(axis=2).argmax(axis=1), "mode zone")
    serve = am.LocalPolicy.deterministic(
        am.envs.fleet_tabular(n=200), np.where(np.arange(Z * B)[:, None] % B == 0, 3, 0)
        * np.ones((1, small.n_sg), int))
    ev = am.evaluate(small, mode, serve, rollouts=32, horizon=30, seed=0)
    ev_u = am.evaluate(small, mode, am.LocalPolicy.uniform(small), rollouts=32, horizon=30,
                       seed=0)
    assert ev.mean > ev_u.mean  # serving with charged batteries beats random driving
    # the tables, seen through as_generative(), are the same game
    tab = am.envs.fleet_tabular(n=200)
    ev_t = am.evaluate(tab, mode, serve, rollouts=32, horizon=30, seed=0)
    assert ev_t.extra["simulator"] == "generative" and ev_t.mean == ev.mean
    with pytest.raises(ValueError, match="follow"):
        am.envs.make("fleet", follow=1.5)



def test_fleet_law():
    """The campaign wears out unless moved, jumps away, and the fleet starts clustered: the
    law of the module docstring, checked on the tables."""
    tab = am.envs.fleet_tabular(n=500, jump=0.1, follow=0.8, age_rate=0.25)
    Z, E = tab.meta["zones"], tab.meta["ages"]
    g = lambda c, e: E * c + e  # noqa: E731
    P = tab.P_g
    # keeping a fresh campaign: it ages w.p. (1 - jump) * age_rate, or jumps to a fresh zone
    assert P[g(3, 0), 3, g(3, 1)] == pytest.approx(0.9 * 0.25)
    assert P[g(3, 0), 3, g(3, 0)] == pytest.approx(0.9 * 0.75 + 0.1 / Z)
    assert P[g(3, 0), 3, g(5, 0)] == pytest.approx(0.1 / Z)
    # moving a worn-out campaign: fresh at the new zone w.p. follow (1 - jump)
    assert P[g(3, 2), 4, g(4, 0)] == pytest.approx(0.9 * 0.8 + 0.1 / Z)
    assert P[g(3, 2), 4, g(3, 2)] == pytest.approx(0.9 * 0.2)
    # the campaign zone pays 10, 5, 2 by age; a charged vehicle next door earns 1
    s_l = 3 * tab.meta["battery"] + 5  # zone 3, battery 5
    assert [tab.r_l[s_l, g(3, e), 0] for e in range(E)] == [10.0, 5.0, 2.0]
    assert tab.r_l[s_l, g(4, 0), 0] == 1.0
    # the population starts clustered in a few zones (Dirichlet proportions)
    game = am.envs.make("fleet", n=500)
    _, loc = game.reset(np.random.default_rng(0), 64)
    share = np.stack([np.bincount(r // tab.meta["battery"], minlength=Z) for r in loc]) / 500
    assert share.max(axis=1).mean() > 0.25  # spread uniformly: about 0.13


def test_docs_example_runs():
    """The copyable example of docs/generative.md runs as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "generative.md").read_text()
    example = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "reset=reset" in b
               and "import altmarl" in b]
    assert len(example) == 1
    ns: dict = {}
    exec(compile(example[0].replace("print(", "(lambda *a: None)("), "generative.md", "exec"), ns)
    assert ns["game"].n_sl == 6 and np.isfinite(ns["ev"].mean)
