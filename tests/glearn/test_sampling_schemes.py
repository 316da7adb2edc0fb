"""G-LEARN under the sampling schemes (SPEC 12): the stratified surrogate (k_c agents of
type c) against exact oracles; Weighted keeps the uniform surrogate."""

from __future__ import annotations

import numpy as np
import pytest

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.glearn.operator import empirical_operator, stratified_reward_weights
from altmarl.glearn.options import GLearnOptions
from altmarl.sampling import Stratified, Uniform, Weighted


def typed(seed=3, **kw):
    params = dict(n=4, n_sl=4, n_ag=3, types=[0, 0, 1, 1], type_counts=(2, 2), seed=seed)
    params.update(kw)
    return am.envs.make("random", **params)


def test_full_stratified_sample_is_the_full_information_optimum():
    """With k_c = n_c the stratified surrogate is the n-agent system itself: exact G-LEARN
    (m=None) reaches the full-information optimum of the exact chain."""
    game = typed(type_counts=(1, 2), n=3)
    pi_l = am.LocalPolicy(np.random.default_rng(0).dirichlet(np.ones(2), size=(4, 2)),
                          game=game)
    scheme = Stratified(game.type_counts)
    pol = am.g_learn(game, pi_l, sampling=scheme, m=None, seed=0, tol=1e-12)
    ex = ExactSolver(game, sampling=scheme)
    full = ex.full_info_best_response(pi_l)
    assert ex.value(pol, pi_l) == pytest.approx(full.value, abs=1e-9)
    # its Q is the chain's optimal Q (same state order: Stratified(type_counts))
    assert pol.q is not None and full.policy.q is not None
    np.testing.assert_allclose(pol.q, full.policy.q, atol=1e-7)


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
def test_sampled_operator_converges_to_the_exact_one(crn):
    game = typed(5, n=6, type_counts=(3, 3))
    pi_l = am.LocalPolicy.uniform(game)
    scheme = Stratified((2, 1))
    exact = am.g_learn(game, pi_l, sampling=scheme, m=None, seed=0)
    sampled = am.g_learn(game, pi_l, sampling=scheme, m=400, seed=1, crn=crn)
    assert exact.q is not None and sampled.q is not None
    scale = float(np.abs(exact.q).max())
    assert np.abs(sampled.q - exact.q).max() < 0.03 * scale
    assert sampled.info["histograms"] == 3 * 2
    assert sampled.info["histograms_per_type"] == [3, 2]
    assert sampled.info["table_size"] == game.n_sg * 6 * game.n_ag
    assert sampled.sampling == scheme.bind(game)


def test_stratified_reward_weights_are_population_shares():
    game = typed(type_counts=(1, 3))
    w = stratified_reward_weights(game, Stratified((1, 1)).bind(game))
    np.testing.assert_allclose(w, [0.25, 0.25, 0.75, 0.75])
    # proportional allocation: the uniform surrogate's 1/k
    game = typed(type_counts=(2, 2))
    np.testing.assert_allclose(stratified_reward_weights(game, Stratified((1, 1)).bind(game)),
                               0.5)


def test_weighted_uses_the_uniform_surrogate_and_k_keeps_working():
    game = typed(7)
    pi_l = am.LocalPolicy.uniform(game)
    base = am.g_learn(game, pi_l, k=2, m=30, seed=4)
    assert base.sampling == Uniform(2) and "sampling" not in base.info
    again = am.g_learn(game, pi_l, sampling=Uniform(2), m=30, seed=4)
    np.testing.assert_array_equal(again.q, base.q)
    w = Weighted((1.0, 2.0, 3.0, 0.5), 2)
    pw = am.g_learn(game, pi_l, sampling=w, m=30, seed=4)
    np.testing.assert_array_equal(pw.q, base.q)
    assert pw.sampling == w and pw.info["surrogate"] == "uniform"
    with pytest.raises(ValueError, match="k = 3: disagrees with sampling"):
        am.g_learn(game, pi_l, k=3, sampling=w)


def test_stratified_refusals():
    game = typed()
    pi_l = am.LocalPolicy.uniform(game)
    with pytest.raises(ValueError, match="mean-field only"):
        am.g_learn(game, pi_l, sampling=Stratified((1, 1)), parameterization="standard")
    with pytest.raises(ValueError, match=r"sampling.ks\[1\] = 3: exceeds"):
        am.g_learn(game, pi_l, sampling=Stratified((1, 3)))
    with pytest.raises(ValueError, match="above max_table"):
        empirical_operator(game, pi_l, None, 0, GLearnOptions(max_table=10),
                           sampling=Stratified((2, 2)))


def test_stratified_beats_uniform_when_the_types_matter():
    """Exact values on a two-type game: the best stratified (1, 1) policy is never worse
    than G-LEARN's and the restricted best responses are computed on each scheme."""
    game = typed(11, n=4, type_counts=(2, 2))
    pi_l = am.LocalPolicy.uniform(game)
    for scheme in (Uniform(2), Stratified((1, 1))):
        pol = am.g_learn(game, pi_l, sampling=scheme, m=None, seed=0)
        ex = ExactSolver(game, sampling=scheme)
        br = ex.restricted_best_response(pi_l)
        assert ex.value(pol, pi_l) <= br.value + 1e-12
        assert br.policy.sampling == scheme.bind(game)


@pytest.mark.parametrize("exact_global", [False, True])
def test_stratified_operator_on_kernels_and_threads_gives_the_same_numbers(
        monkeypatch: pytest.MonkeyPatch, exact_global: bool) -> None:
    """The stratified surrogate takes the uniform one's kernels and threads: with the fused
    kernels forced, on 1 and 2 threads, the same Q and actions as without them."""
    from altmarl.glearn import kernels

    pytest.importorskip("numba")
    game = typed(7, n=8, type_counts=(4, 4))
    pi_l = am.LocalPolicy.uniform(game)
    scheme = Stratified((3, 2))
    kw = dict(sampling=scheme, m=12, seed=5, exact_global=exact_global)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 1 << 62)
    ref = am.g_learn(game, pi_l, threads=1, **kw)
    monkeypatch.setattr(kernels, "FUSED_MIN_SAMPLES", 0)
    for threads in (1, 2):
        got = am.g_learn(game, pi_l, threads=threads, **kw)
        assert got.q is not None and ref.q is not None
        np.testing.assert_array_equal(got.q, ref.q)
        np.testing.assert_array_equal(got.actions, ref.actions)
    op = empirical_operator(game, pi_l, None, 5,
                            GLearnOptions(m=12, threads=2, exact_global=exact_global),
                            sampling=scheme)
    assert op.model.threads == 2 and op.model.fused  # not the serial default
