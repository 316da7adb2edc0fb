"""Tests of the (s_g, N) chain (altmarl.exact.chain): hypergeometric action law, count
transitions, initial law and the full transition matrix against brute force."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from exact_oracles import brute_force_step, exact_game, random_pi_g, random_pi_l
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.exact import CountChain, ExactSolver, count_transition, hypergeometric_weights
from altmarl.exact.chain import initial_law, onehot
from altmarl.histogram import enumerate_histograms, rank


def test_hypergeometric_weights_match_direct_formula():
    states = enumerate_histograms(6, 3)
    hists = enumerate_histograms(2, 3)
    W = hypergeometric_weights(states, hists)
    for i, N in enumerate(states):
        for j, h in enumerate(hists):
            direct = np.prod([comb(int(a), int(b)) for a, b in zip(N, h, strict=True)]) / comb(6, 2)
            assert W[i, j] == pytest.approx(direct, abs=1e-14)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-14)


def test_count_transition_matches_convolution_of_multinomials():
    from scipy.stats import multinomial

    rng = np.random.default_rng(3)
    d, n = 3, 5
    K = rng.dirichlet(np.ones(d), size=d)
    states = enumerate_histograms(n, d)
    T = count_transition(K, states)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-13)
    for i, N in enumerate(states):
        # direct convolution over bins
        dist = {tuple([0] * d): 1.0}
        for x in range(d):
            parts = enumerate_histograms(int(N[x]), d)
            pm = multinomial.pmf(parts, int(N[x]), K[x]) if N[x] > 0 else np.ones(1)
            new: dict[tuple[int, ...], float] = {}
            for key, p in dist.items():
                for part, q in zip(parts, np.atleast_1d(pm), strict=True):
                    kk = tuple(int(a + b) for a, b in zip(key, part, strict=True))
                    new[kk] = new.get(kk, 0.0) + p * q
            dist = new
        direct = np.zeros(len(states))
        for key, p in dist.items():
            direct[rank(np.array(key), n)] = p
        np.testing.assert_allclose(T[i], direct, atol=1e-13)


def test_count_transition_one_local_state():
    T = count_transition(np.ones((1, 1)), enumerate_histograms(7, 1))
    assert T.shape == (1, 1) and T[0, 0] == 1.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_sg=st.integers(1, 3), n_ag=st.integers(1, 3), n_sl=st.integers(1, 3),
    n_al=st.integers(1, 2), n=st.integers(1, 3), kfrac=st.floats(0, 1),
    seed=st.integers(0, 10_000),
)
def test_chain_matches_brute_force(n_sg, n_ag, n_sl, n_al, n, kfrac, seed):
    """Hypothesis: on random tiny games the exact chain equals a brute-force enumeration
    of every k-subset and every joint move of the agents, and rows sum to 1."""
    game = am.envs.make("random", n_sg=n_sg, n_ag=n_ag, n_sl=n_sl, n_al=n_al, n=n, seed=seed)
    k = 1 + int(round(kfrac * (n - 1)))
    rng = np.random.default_rng(seed)
    pi_l = random_pi_l(game, rng)
    pi_g = random_pi_g(game, k, rng)
    ex = ExactSolver(game, k)
    P = ex.transition_matrix(pi_g, pi_l)
    np.testing.assert_allclose(P.sum(axis=(2, 3)), 1.0, atol=1e-12)
    assert (P >= 0).all()
    R = ex.expected_reward(pi_g, pi_l)
    for s_g in range(n_sg):
        for i, N in enumerate(ex.states):
            bf, rew = brute_force_step(game, pi_g, pi_l, s_g, N)
            np.testing.assert_allclose(P[s_g, i], bf, atol=1e-12)
            assert R[s_g, i] == pytest.approx(rew, abs=1e-12)


def brute_force_chain(game, pi_g, pi_l):
    """The whole chain ``P[s_g, N, s_g', N']`` and reward by :func:`brute_force_step`."""
    ex = ExactSolver(game, pi_g.k)
    M = ex.n_counts
    P = np.zeros((game.n_sg, M, game.n_sg, M))
    R = np.zeros((game.n_sg, M))
    for s_g in range(game.n_sg):
        for i, N in enumerate(ex.states):
            P[s_g, i], R[s_g, i] = brute_force_step(game, pi_g, pi_l, s_g, N)
    return P, R


@pytest.mark.parametrize("k", [1, 2])
def test_two_agent_chain_rows_sum_to_one_and_match_enumeration(k):
    """A 2-agent game with 3 local states: every row of the chain is a probability law and
    equals the enumeration of every subset and every joint move of the two agents."""
    game = exact_game(21, n=2, n_sl=3, n_al=2, n_ag=3)
    rng = np.random.default_rng(21)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, k, rng)
    chain = CountChain(game)
    assert chain.n_counts == 6 and chain.n_states == game.n_sg * 6
    P = chain.transition_matrix(pi_g, pi_l)
    np.testing.assert_allclose(P.sum(axis=(2, 3)), 1.0, atol=1e-13)
    bf_P, bf_R = brute_force_chain(game, pi_g, pi_l)
    np.testing.assert_allclose(P, bf_P, atol=1e-13)
    np.testing.assert_allclose(chain.expected_reward(pi_g, pi_l), bf_R, atol=1e-13)


def test_action_probs_are_the_hypergeometric_mixture():
    game = exact_game(2, n=4, n_sl=3, n_ag=3)
    rng = np.random.default_rng(2)
    chain = CountChain(game)
    pi_g = random_pi_g(game, 2, rng)
    pa = chain.action_probs(pi_g)
    W = chain.hypergeometric(2)
    hists = enumerate_histograms(2, 3)
    for s_g in range(game.n_sg):
        for i in range(chain.n_counts):
            direct = np.zeros(game.n_ag)
            for j, h in enumerate(hists):
                direct[pi_g.act(s_g, h)] += W[i, j]
            np.testing.assert_allclose(pa[s_g, i], direct, atol=1e-14)
    # the batched form stacks the single ones
    batch = np.stack([pi_g.actions, np.zeros_like(pi_g.actions)])
    pb = chain.sample_action_probs(2, batch)
    np.testing.assert_array_equal(pb[0], pa)
    np.testing.assert_array_equal(pb[1], chain.sample_action_probs(2, batch[1]))
    # k = n: the sample is the whole count vector
    np.testing.assert_array_equal(chain.hypergeometric(game.n), np.eye(chain.n_counts))


def test_initial_law_iid_matches_multinomial():
    from scipy.stats import multinomial

    base = exact_game(4, n=3, n_sl=3)
    rho_g, rho_l = np.array([0.3, 0.7]), np.array([0.2, 0.5, 0.3])
    game = am.TabularGame(base.P_g, base.P_l, base.r_g, base.r_l, base.gamma, base.n,
                          init=(rho_g, rho_l))
    states = enumerate_histograms(3, 3)
    p = initial_law(game, states)
    assert p.shape == (2, len(states)) and p.sum() == pytest.approx(1.0, abs=1e-14)
    for g in range(2):
        for i, N in enumerate(states):
            assert p[g, i] == pytest.approx(rho_g[g] * multinomial.pmf(N, 3, rho_l), abs=1e-14)


def test_count_transitions_cache_and_table_checks():
    game = exact_game(5, n=3)
    chain = CountChain(game)
    pi_l = random_pi_l(game, np.random.default_rng(5))
    T1 = chain.count_transitions(pi_l)
    assert chain.count_transitions(pi_l.table.copy()) is T1  # cached by table content
    # cache bounded: older tables are dropped, recomputation gives the same numbers
    for a in range(6):
        chain.count_transitions(onehot(np.full((game.n_sl, game.n_sg), a % game.n_al),
                                       game.n_al) * 0.5 + 0.5 / game.n_al)
    np.testing.assert_array_equal(chain.count_transitions(pi_l), T1)
    with pytest.raises(ValueError, match="pi_l.table"):
        chain.count_transitions(np.ones((game.n_sl, game.n_sg, game.n_al + 1)))
    with pytest.raises(ValueError, match="pi_g"):
        chain.action_probs(am.GlobalPolicy.constant(exact_game(0, n_sg=3, n=3), 1))


def test_onehot():
    acts = np.array([[0, 2], [1, 1]])
    oh = onehot(acts, 3)
    assert oh.shape == (2, 2, 3)
    np.testing.assert_array_equal(oh.argmax(axis=-1), acts)
    np.testing.assert_array_equal(oh.sum(axis=-1), 1.0)
