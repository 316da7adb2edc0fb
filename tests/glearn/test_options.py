"""G-LEARN's options object (altmarl.glearn.options) and the keyword layer of am.g_learn."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import altmarl as am
from altmarl.glearn.operator import empirical_operator
from altmarl.glearn.options import DEFAULT_M, DEFAULT_TOL, MAX_TABLE, POOL_SIZE, GLearnOptions

from .helpers import random_pi_l, small_game


def test_defaults_are_the_named_constants() -> None:
    opts = GLearnOptions()
    assert opts.m == DEFAULT_M == 30 and opts.tol == DEFAULT_TOL
    assert opts.pool_size == POOL_SIZE and opts.max_table == MAX_TABLE
    assert opts.crn is None and opts.crn_mode == "pool"
    assert GLearnOptions(parameterization="standard").crn_mode == "states"
    assert GLearnOptions(crn="none").crn_mode == "none"


def test_frozen_normalized_and_replace_revalidates() -> None:
    opts = GLearnOptions(m=np.int64(7), tol=1, max_iter=np.int32(5))
    assert type(opts.m) is int and type(opts.tol) is float and type(opts.max_iter) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.m = 3  # type: ignore[misc]
    assert opts.replace(m=None).m is None and opts.m == 7
    with pytest.raises(ValueError, match="m = 0"):
        opts.replace(m=0)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("m", 0, "m = 0"), ("m", 2.5, "m = 2.5"), ("m", True, "m = True"),
        ("parameterization", "mf", "parameterization = 'mf'"),
        ("tol", 0.0, "tol = 0.0"), ("tol", float("nan"), "tol"), ("tol", "1e-6", "tol"),
        ("max_iter", 0, "max_iter = 0"), ("solver", "newton", "solver = 'newton'"),
        ("crn", "bins", "crn = 'bins'"), ("tie_break", "random", "tie_break = 'random'"),
        ("pool_size", 0, "pool_size = 0"), ("progress", 1, "progress = 1"),
        ("max_samples", 0, "max_samples"), ("max_table", -1, "max_table"),
        ("max_exact_entries", 1.0, "max_exact_entries"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GLearnOptions(**{field: value})


def test_pool_needs_mean_field() -> None:
    with pytest.raises(ValueError, match="crn = 'pool'"):
        GLearnOptions(parameterization="standard", crn="pool")


def test_from_keywords() -> None:
    base = GLearnOptions(m=5, solver="vi")
    assert GLearnOptions.from_keywords(None, m=5, solver="vi") == base
    assert GLearnOptions.from_keywords(base) is base
    assert GLearnOptions.from_keywords(base, m=DEFAULT_M, tol=DEFAULT_TOL) is base  # defaults
    with pytest.raises(ValueError, match=r"not both \(also got \['m'\]\)"):
        GLearnOptions.from_keywords(base, m=6)
    with pytest.raises(ValueError, match="options: expected"):
        GLearnOptions.from_keywords({"m": 5})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sweeps"):
        GLearnOptions.from_keywords(base, sweeps=3)


def test_g_learn_with_options_equals_keywords() -> None:
    game = small_game(3)
    pi_l = random_pi_l(game, 3)
    kw = dict(m=6, parameterization="standard", solver="vi", tie_break="lowest", tol=1e-8)
    a = am.g_learn(game, pi_l, 2, seed=4, **kw)  # type: ignore[arg-type]
    b = am.g_learn(game, pi_l, 2, seed=4, options=am.GLearnOptions(**kw))  # type: ignore[arg-type]
    assert a.q is not None and b.q is not None
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="not both"):
        am.g_learn(game, pi_l, 2, m=7, options=am.GLearnOptions())
    model = am.RewardModel.from_game(game)
    c = am.g_learn_stochastic(game, pi_l, 2, model, seed=4, **kw)
    d = am.g_learn_stochastic(game, pi_l, 2, model, seed=4, options=am.GLearnOptions(**kw))  # type: ignore[arg-type]
    assert c.q is not None and d.q is not None
    np.testing.assert_array_equal(c.q, d.q)


def test_table_size_error_says_how_to_raise_the_limit() -> None:
    game = small_game(4)
    with pytest.raises(ValueError) as err:
        empirical_operator(game, am.LocalPolicy.uniform(game), 4, options=GLearnOptions(max_table=10))
    msg = str(err.value)
    # the limit, the size to set it to, where to set it (configuration file and Python)
    for part in ("max_table = 10", "max_table = 90", "[algorithm.options.g_options]",
                 "am.g_learn(..., max_table=90)", "neural G-LEARN", "as_generative()"):
        assert part in msg, part


def test_exact_global_option() -> None:
    with pytest.raises(ValueError, match="exact_global"):
        GLearnOptions(m=None, exact_global=True)
    with pytest.raises(ValueError, match="exact_global"):
        GLearnOptions(exact_global="yes")  # type: ignore[arg-type]
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    exact = am.g_learn(game, pi_l, 3, m=None, seed=0)
    rms = {True: 0.0, False: 0.0}
    for seed in range(4):
        for eg in (True, False):
            p = am.g_learn(game, pi_l, 3, m=200, seed=seed, exact_global=eg)
            assert p.info.get("exact_global", False) is eg
            assert (p.info["draws"]["global"] == 0) is eg
            assert np.abs(p.q - exact.q).max() < 4.0  # Q ~ 120, 1/(1 - gamma) = 20
            rms[eg] += float(np.sqrt(((p.q - exact.q) ** 2).mean()))
    # the same expectation with less variance: closer to the exact operator on average
    assert rms[True] < 0.9 * rms[False]
