"""The L-LEARN entry point (SPEC 5, 10): validation, reproducibility, evaluators, the
solver registry and the keyword layer over the frozen options objects."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import altmarl as am
from altmarl.evaluation import ValueEstimate, mc_evaluator
from altmarl.exact import ExactSolver
from altmarl.llearn import (
    REGISTRY,
    SOLVERS,
    ChainedOptions,
    DirectOptions,
    InducedVIOptions,
    solver_options,
)


def test_l_learn_validates_input(tiny_game):
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 0)
    with pytest.raises(ValueError, match="solver"):
        am.l_learn(tiny_game, pi_g, "ucfh")
    with pytest.raises(ValueError, match="tempreature"):
        am.l_learn(tiny_game, pi_g, "induced-vi", tempreature=1.0)
    with pytest.raises(ValueError, match="pi_g"):
        am.l_learn(tiny_game, "not a policy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pi_l"):
        am.l_learn(tiny_game, pi_g, pi_l=np.ones((2, 2, 2)) / 2)  # type: ignore[arg-type]
    other = am.envs.make("random", n_sg=3, n_ag=2, n_sl=2, n_al=2, n=4)
    with pytest.raises(ValueError):
        am.l_learn(other, pi_g)
    with pytest.raises(ValueError, match="rollouts"):
        am.l_learn(tiny_game, pi_g, "direct", rollouts=0)


def test_l_learn_is_reproducible(tiny_game):
    pi_g = am.GlobalPolicy.from_function(tiny_game, 2, lambda s, h: (h[:, 0] >= 1).astype(int))
    for solver in ("induced-vi", "direct"):
        a = am.l_learn(tiny_game, pi_g, solver, seed=4, eval_rollouts=16, eval_horizon=30)
        b = am.l_learn(tiny_game, pi_g, solver, seed=4, eval_rollouts=16, eval_horizon=30)
        np.testing.assert_array_equal(a.table, b.table)
        assert a.info["value"] == b.info["value"]
        assert a.info["samples"] == b.info["samples"] > 0


def test_l_learn_custom_evaluator(tiny_game):
    ex = ExactSolver(tiny_game, 2)
    pi_g = am.GlobalPolicy.constant(tiny_game, 2, 1)
    pol = am.l_learn(tiny_game, pi_g, "induced-vi",
                     evaluator=lambda g, pl: ValueEstimate(ex.value(g, pl)))
    assert pol.info["value"] == pytest.approx(ex.value(pi_g, pol))
    assert pol.info["value_stderr"] == 0.0
    mc = mc_evaluator(tiny_game, 64, 60, seed=2)(pi_g, pol)
    assert abs(mc.mean - pol.info["value"]) < 5 * mc.stderr + 0.02


def test_l_learn_chained_dispatch(tiny_game):
    pi_g = am.GlobalPolicy.constant(tiny_game, 1, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pol = am.l_learn(tiny_game, pi_g, "chained", seed=0, variant="mean-field", eps=0.5,
                         episodes=200, estimate_value=False)
    assert pol.info["solver"] == "chained"
    np.testing.assert_allclose(pol.table.sum(-1), 1.0)
    assert pol.info["samples"] > 0


def test_registry_names_every_solver_and_its_options():
    assert SOLVERS == ("induced-vi", "direct", "chained")
    assert [REGISTRY[s].options for s in SOLVERS] == [InducedVIOptions, DirectOptions,
                                                       ChainedOptions]
    assert {REGISTRY[s].spec for s in SOLVERS} == {"5.1", "5.2", "5.3"}
    assert "temperature" in REGISTRY["induced-vi"].option_names()
    assert "value_fn" in REGISTRY["direct"].option_names()


def test_solver_options_keyword_layer():
    assert solver_options("induced-vi") == InducedVIOptions()
    assert solver_options("direct", rollouts=8) == DirectOptions(rollouts=8)
    base = ChainedOptions(eps=0.3)
    assert solver_options("chained", base) is base
    assert solver_options("chained", base, episodes=5) == ChainedOptions(eps=0.3, episodes=5)
    with pytest.raises(ValueError, match=r"\['rolouts'\].*'direct'.*'horizon'"):
        solver_options("direct", rolouts=8)  # names the unknown option, lists the known ones
    with pytest.raises(ValueError, match="options"):
        solver_options("direct", InducedVIOptions())
    with pytest.raises(ValueError, match="rollouts"):
        solver_options("direct", rollouts=-1)
    with pytest.raises(ValueError, match="solver"):
        solver_options("ucfh")


def test_l_learn_options_object_equals_keywords(tiny_game):
    pi_g = am.GlobalPolicy.from_function(tiny_game, 2, lambda s, h: (h[:, 0] >= 1).astype(int))
    kw = dict(rollouts=8, horizon=20, max_rounds=2)
    a = am.l_learn(tiny_game, pi_g, "direct", seed=1, estimate_value=False, **kw)
    b = am.l_learn(tiny_game, pi_g, "direct", seed=1, estimate_value=False,
                   options=DirectOptions(**kw))
    c = am.l_learn(tiny_game, pi_g, "direct", seed=1, estimate_value=False,
                   options=DirectOptions(rollouts=8, horizon=20), max_rounds=2)
    for other in (b, c):
        np.testing.assert_array_equal(a.table, other.table)
        assert a.info["search_value"] == other.info["search_value"] == a.info["value"]
    with pytest.raises(ValueError, match="options"):
        am.l_learn(tiny_game, pi_g, "induced-vi", options=DirectOptions())
