"""Property tests (hypothesis) for generative games: the validator of the user's functions
and the per-agent simulator (subsample sizes, distinct agents, conserved counts)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import altmarl as am
import altmarl.generative.simulator as gsim
from altmarl.generative import FunctionGlobalPolicy, GenerativeGame, simulate, subsample_indices

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

ARRAYS = ["s_g'", "s_l'", "r_g", "r_l"]


def make_game(n: int, corrupt):
    """A valid discrete game whose step output ``i`` is passed through ``corrupt[i]``."""

    def reset(rng, R):
        return rng.integers(0, 2, size=R), rng.integers(0, 3, size=(R, n))

    def step(s_g, s_l, a_g, a_l, rng):
        out = [(s_g + a_g) % 2, (s_l + a_l) % 3, np.ones(len(s_g)), (s_l == 1).astype(float)]
        for i, f in corrupt.items():
            out[i] = f(out[i])
        return tuple(out)

    return GenerativeGame(n, 0.9, 2, 2, reset, step, observe="counts", num_global_states=2,
                          num_local_states=3)


@SETTINGS
@given(n=st.integers(1, 12), which=st.integers(0, 3),
       kind=st.sampled_from(["drop", "extra", "str", "complex", "nan", "inf"]),
       pos=st.integers(0, 10**6))
def test_bad_step_outputs_raise_naming_step_and_array(n, which, kind, pos):
    def corrupt(a):
        a = np.array(a)
        if kind == "drop":
            return a.reshape(-1)[:-1] if a.size > 1 else a.reshape(())
        if kind == "extra":
            return a[..., None]
        if kind == "str":
            return a.astype(str)
        if kind == "complex":
            return a.astype(complex)
        b = a.astype(float)
        b.flat[pos % b.size] = np.nan if kind == "nan" else np.inf
        return b

    with pytest.raises(ValueError) as info:
        make_game(n, {which: corrupt})
    msg = str(info.value)
    assert msg.startswith("step returned ")
    assert msg.split()[2].split("[")[0] == ARRAYS[which]


@SETTINGS
@given(R=st.integers(1, 6), n=st.integers(1, 300), data=st.data())
def test_subsample_is_k_distinct_agents(R, n, data):
    k = data.draw(st.integers(1, n))
    idx = subsample_indices(np.random.default_rng(data.draw(st.integers(0, 2**32))), R, n, k)
    assert idx.shape == (R, k)
    assert idx.min() >= 0 and idx.max() < n
    assert all(len(set(row.tolist())) == k for row in idx)


@pytest.mark.parametrize("factor", [16, 0])  # Floyd's sampler, then the key partition
def test_subsample_is_uniform_over_k_subsets(monkeypatch, factor):
    monkeypatch.setattr(gsim, "FLOYD_FACTOR", factor)
    idx = subsample_indices(np.random.default_rng(0), 30_000, 6, 2)
    subsets = {s: i for i, s in enumerate(itertools.combinations(range(6), 2))}
    codes = np.array([subsets[tuple(sorted(r))] for r in idx.tolist()])
    freq = np.bincount(codes, minlength=len(subsets)) / codes.size
    assert np.abs(freq - 1 / len(subsets)).max() < 0.012


@SETTINGS
@given(n=st.integers(1, 40), k_frac=st.floats(0.01, 1.0), R=st.integers(1, 40),
       seed=st.integers(0, 1000))
def test_simulator_conserves_counts_and_samples_k(n, k_frac, R, seed):
    tab = am.envs.make("warehouse", n=n)
    gen = tab.as_generative()
    k = max(1, min(n, round(k_frac * n)))
    seen = []

    def act(s_g, h):
        seen.append(h.sum(axis=1))
        return h.argmax(axis=1)

    traj = simulate(gen, FunctionGlobalPolicy(k, act), am.LocalPolicy.uniform(tab), R, 5,
                    seed=seed, workers=1)
    assert traj.counts is not None and (traj.counts.sum(axis=2) == n).all()
    assert all((s == k).all() for s in seen)
    assert traj.rewards.shape == (R, 5) and np.isfinite(traj.rewards).all()
