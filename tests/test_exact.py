"""Tests of the exact solver (SPEC 7): oracles from brute force and from independent
single-agent computations."""

from __future__ import annotations

import importlib.util
import itertools
from math import comb

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.exact import ExactSolver, count_transition, hypergeometric_weights
from altmarl.histogram import enumerate_histograms, num_histograms, rank

# ---------------------------------------------------------------------------
# helpers: brute-force oracles
# ---------------------------------------------------------------------------


def random_pi_l(game: am.TabularGame, rng: np.random.Generator) -> am.LocalPolicy:
    t = rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg))
    return am.LocalPolicy(t, game=game)


def random_pi_g(game: am.TabularGame, k: int, rng: np.random.Generator) -> am.GlobalPolicy:
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, num_histograms(k, game.n_sl)))
    return am.GlobalPolicy(k, acts, game.n_ag, game=game)


def brute_force_step(game, pi_g, pi_l, s_g, N):
    """One-step law of (s_g', N') and the expected stage reward, by enumerating every
    k-subset of agents and every joint (action, next state) of all agents."""
    n, k, d = game.n, pi_g.k, game.n_sl
    agents = np.repeat(np.arange(d), N)
    # global action law: uniform over k-subsets
    p_ag = np.zeros(game.n_ag)
    subsets = list(itertools.combinations(range(n), k))
    for sub in subsets:
        h = np.bincount(agents[list(sub)], minlength=d)
        p_ag[pi_g.act(s_g, h)] += 1.0 / len(subsets)
    p_sg = p_ag @ game.P_g[s_g]  # (S_g',)
    # local: every agent picks (a, x') independently
    M = num_histograms(n, d)
    p_N = np.zeros(M)
    exp_local = 0.0
    outcomes = list(itertools.product(range(game.n_al), range(d)))
    for joint in itertools.product(outcomes, repeat=n):
        prob = 1.0
        rew = 0.0
        nxt = np.zeros(d, dtype=np.int64)
        for i, (a, y) in enumerate(joint):
            x = agents[i]
            prob *= pi_l.table[x, s_g, a] * game.P_l[x, s_g, a, y]
            rew += game.r_l[x, s_g, a]
            nxt[y] += 1
        p_N[rank(nxt, n)] += prob
        exp_local += prob * rew / n
    reward = float(p_ag @ game.r_g[s_g]) + exp_local
    return np.outer(p_sg, p_N), reward


def exact_game(seed: int, **kw) -> am.TabularGame:
    params = dict(n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.9, seed=seed)
    params.update(kw)
    return am.envs.make("random", **params)


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed,kw,k", [
    (0, {}, 2),
    (1, {"n_sl": 3, "n": 5}, 2),
    (2, {"n_sg": 3, "n_ag": 3, "n": 6, "gamma": 0.8}, 3),
])
def test_value_matches_monte_carlo(seed, kw, k):
    game = exact_game(seed, **kw)
    rng = np.random.default_rng(seed)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, k, rng)
    v = ExactSolver(game, k).value(pi_g, pi_l)
    ev = am.evaluate(game, pi_g, pi_l, rollouts=3000, horizon=150, seed=seed, workers=1)
    # 4.5 standard errors plus the truncation bias (one-sided, at most the bound)
    assert abs(ev.mean - v) <= 4.5 * ev.stderr + ev.truncation_bound


def test_value_with_dirichlet_init_matches_monte_carlo():
    game = am.envs.make("warehouse", n=6, zones=3, gamma=0.8)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.GlobalPolicy.sample_mode(game, 2)
    v = ExactSolver(game, 2).value(pi_g, pi_l)
    ev = am.evaluate(game, pi_g, pi_l, rollouts=3000, horizon=120, seed=5, workers=1)
    assert abs(ev.mean - v) <= 4.5 * ev.stderr + ev.truncation_bound


def test_values_satisfy_bellman_equation():
    game = exact_game(4, n_sl=3, n=4)
    rng = np.random.default_rng(0)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    V = ex.values(pi_g, pi_l)
    P = ex.transition_matrix(pi_g, pi_l)
    R = ex.expected_reward(pi_g, pi_l)
    np.testing.assert_allclose(V, R + game.gamma * np.einsum("gmhn,hn->gm", P, V), atol=1e-10)


def test_iterative_solver_matches_dense():
    game = exact_game(5, n_sl=3, n=6)
    rng = np.random.default_rng(1)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 3, rng)
    dense = ExactSolver(game, 3).values(pi_g, pi_l)
    it = ExactSolver(game, 3, dense_limit=1).values(pi_g, pi_l)
    np.testing.assert_allclose(it, dense, atol=1e-9)
    d1 = ExactSolver(game, 3).occupancy(pi_g, pi_l)
    d2 = ExactSolver(game, 3, dense_limit=1).occupancy(pi_g, pi_l)
    np.testing.assert_allclose(d1, d2, atol=1e-9)
    assert d1.sum() == pytest.approx(1 / (1 - game.gamma))


def test_refuses_large_games_with_size_and_limit():
    game = am.envs.make("warehouse", n=1000)
    with pytest.raises(ValueError, match=r"states.*max_states = 6000"):
        ExactSolver(game, 5)
    with pytest.raises(ValueError, match="max_states = 10"):
        ExactSolver(exact_game(0, n=20), 2, max_states=10)
    with pytest.raises(ValueError, match="k = 9"):
        ExactSolver(exact_game(0), 9)


def test_refuses_large_enumerations():
    game = exact_game(0, n_sl=3, n_al=3, n_sg=3, n=3)
    ex = ExactSolver(game, 2, max_local_policies=100, max_restricted_policies=100)
    pi_g = am.GlobalPolicy.constant(game, 2)
    with pytest.raises(ValueError, match=r"3\^\(3 \* 3\).*max_local_policies = 100"):
        ex.local_best_response(pi_g, method="enumerate")
    with pytest.raises(ValueError, match="method"):
        ex.local_best_response(pi_g, method="bogus")
    with pytest.raises(ValueError, match="max_restricted_policies = 100"):
        ex.restricted_best_response(am.LocalPolicy.uniform(game), method="enumerate")


# ---------------------------------------------------------------------------
# best responses
# ---------------------------------------------------------------------------


def explicit_value_iteration(ex: ExactSolver, pi_l: am.LocalPolicy) -> np.ndarray:
    """Optimal values of the full-information MDP by plain value iteration on dense
    matrices, one per global action (an independent route from policy iteration)."""
    game = ex.game
    V = np.zeros((game.n_sg, ex.n_counts))
    T = ex.count_transitions(pi_l)
    rloc = ex.local_reward(pi_l)
    for _ in range(2000):
        Q = np.stack([game.r_g[:, a][:, None] + rloc + game.gamma * np.einsum(
            "gh,gmn,hn->gm", game.P_g[:, a, :], T, V) for a in range(game.n_ag)], axis=-1)
        V_new = Q.max(axis=-1)
        if np.abs(V_new - V).max() < 1e-13:
            break
        V = V_new
    return V_new


def test_full_info_best_response_is_optimal():
    game = exact_game(6, n_sl=3, n=4, n_ag=3)
    pi_l = random_pi_l(game, np.random.default_rng(2))
    ex = ExactSolver(game, 2)
    br = ex.full_info_best_response(pi_l)
    np.testing.assert_allclose(br.values, explicit_value_iteration(ex, pi_l), atol=1e-9)
    assert br.policy.k == game.n and br.exact
    # the k = n policy, evaluated as a policy, has the optimal value
    assert ex.value(br.policy, pi_l) == pytest.approx(br.value, abs=1e-10)
    # and the Monte-Carlo simulator agrees
    ev = am.evaluate(game, br.policy, pi_l, rollouts=2000, horizon=150, seed=1, workers=1)
    assert abs(ev.mean - br.value) <= 4.5 * ev.stderr + ev.truncation_bound


def test_restricted_between_values_and_full_info():
    game = exact_game(7, n=4)
    pi_l = random_pi_l(game, np.random.default_rng(3))
    ex = ExactSolver(game, 1)
    enum = ex.restricted_best_response(pi_l, method="enumerate")
    assert enum.exact and enum.evaluations == 2 ** (2 * 2)
    full = ex.full_info_best_response(pi_l)
    assert enum.value <= full.value + 1e-10
    # every deterministic k-sample policy is below the enumerated optimum
    for acts in itertools.product(range(2), repeat=4):
        pg = am.GlobalPolicy(1, np.array(acts).reshape(2, 2), 2, game=game)
        assert ex.value(pg, pi_l) <= enum.value + 1e-10
    srch = ex.restricted_best_response(pi_l, method="search")
    assert not srch.exact and srch.value <= enum.value + 1e-10
    assert ex.value(srch.policy, pi_l) == pytest.approx(srch.value, abs=1e-10)


def test_restricted_with_k_equal_n_is_full_information():
    game = exact_game(8, n=3)
    pi_l = am.LocalPolicy.uniform(game)
    ex = ExactSolver(game, 3)
    r = ex.restricted_best_response(pi_l)
    assert r.exact and r.value == pytest.approx(ex.full_info_best_response(pi_l).value)


def representative_agent_optimum(game: am.TabularGame) -> tuple[float, np.ndarray]:
    """|A_g| = 1: the optimal value of the n-agent system, computed independently.

    With one global action, s_g is an exogenous Markov chain (P_g[:, 0, :]) and each local
    agent's contribution does not depend on the others. Under a shared policy pi_l and the
    i.i.d. initial law, V_n = E[V_glob(s_g)] + (1/n) sum_i E[V_rep(s_i, s_g)]
    = E_{s_g ~ rho_g, x ~ rho_l}[V_glob(s_g) + V_rep(x, s_g)], where V_rep is the value of the
    single-agent MDP on (s_l, s_g) with reward r_l and kernel P_l[x, g, a, x'] P_g[g, 0, g'].
    Its optimal policy is deterministic and optimal from every state, so the best shared
    policy attains E[V_glob + V*_rep]."""
    Pg = game.P_g[:, 0, :]
    V_glob = np.linalg.solve(np.eye(game.n_sg) - game.gamma * Pg, game.r_g[:, 0])
    V = np.zeros((game.n_sl, game.n_sg))
    for _ in range(5000):
        Q = game.r_l + game.gamma * np.einsum("xgay,gh,yh->xga", game.P_l, Pg, V)
        V_new = Q.max(axis=-1)
        if np.abs(V_new - V).max() < 1e-14:
            break
        V = V_new
    rho_g, rho_l = game.rho_g, game.rho_l
    value = float(rho_g @ V_glob + rho_l @ V_new @ rho_g)
    return value, Q.argmax(axis=-1)


@pytest.mark.parametrize("seed,kw", [(0, {}), (1, {"n_sl": 3, "n_al": 3, "n": 4}),
                                     (2, {"n_sg": 3, "n": 3})])
def test_local_best_response_trivial_global_agent(seed, kw):
    params = {"n_ag": 1, **kw}
    base = exact_game(seed, **params)
    # a non-uniform i.i.d. initial law, to exercise the weighting
    rng = np.random.default_rng(seed)
    init = (rng.dirichlet(np.ones(base.n_sg)), rng.dirichlet(np.ones(base.n_sl)))
    game = am.TabularGame(base.P_g, base.P_l, base.r_g, base.r_l, base.gamma, base.n, init=init)
    oracle_value, oracle_actions = representative_agent_optimum(game)
    ex = ExactSolver(game, 1)
    pi_g = am.GlobalPolicy.constant(game, 1, 0)
    # the n-agent chain, enumerated (no use of the decoupling)
    br = ex.local_best_response(pi_g, method="enumerate")
    assert br.exact
    assert br.value == pytest.approx(oracle_value, abs=1e-9)
    # no stochastic shared policy does better (refinement cannot beat it)
    assert br.info["refinement_gain"] == pytest.approx(0.0, abs=1e-9)
    # the oracle's policy, used by every agent, has the same n-agent value
    oracle_pol = am.LocalPolicy.deterministic(game, oracle_actions)
    assert ex.value(pi_g, oracle_pol) == pytest.approx(oracle_value, abs=1e-9)
    # the decoupled fast path ("auto") and the coordinate search agree
    auto = ex.local_best_response(pi_g)
    assert auto.exact and auto.value == pytest.approx(oracle_value, abs=1e-9)
    srch = ex.local_best_response(pi_g, method="search", refine=False)
    assert srch.value <= oracle_value + 1e-9


def test_local_best_response_dominates_every_deterministic_policy():
    game = exact_game(9, n=3)
    rng = np.random.default_rng(9)
    pi_g = random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    br = ex.local_best_response(pi_g, refine=False)
    assert br.method.startswith("exhaustive") and not br.exact
    vals = [ex.value(pi_g, am.LocalPolicy.deterministic(game, np.array(a).reshape(2, 2)))
            for a in itertools.product(range(2), repeat=4)]
    assert br.value == pytest.approx(max(vals), abs=1e-12)
    assert ex.value(pi_g, br.policy) == pytest.approx(br.value, abs=1e-12)


# ---------------------------------------------------------------------------
# Nash gap
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_nash_gap_properties(seed):
    game = exact_game(seed, n=3, n_sl=2 + seed % 2)
    rng = np.random.default_rng(seed)
    pi_l, pi_g = random_pi_l(game, rng), random_pi_g(game, 2, rng)
    ex = ExactSolver(game, 2)
    res = ex.nash_gap(pi_g, pi_l)
    assert res.gap_g is not None and res.gap_g_exact
    for gap in (res.gap_g, res.gap_g_full, res.gap_l):
        assert gap >= -1e-12
    assert res.gap_g <= res.gap_g_full + 1e-10
    assert res.nash_gap == max(res.gap_g, res.gap_l)
    assert res.nash_gap_full == max(res.gap_g_full, res.gap_l)
    assert res.value == pytest.approx(ex.value(pi_g, pi_l))
    # best responses are really worth what they claim
    assert ex.value(res.br_g.policy, pi_l) == pytest.approx(res.br_g.value, abs=1e-10)
    assert ex.value(pi_g, res.br_l.policy) == pytest.approx(res.br_l.value, abs=1e-10)
    assert "gap_g" in str(res) and res.summary()["nash_gap"] == res.nash_gap


def test_gap_zero_at_best_responses():
    game = exact_game(11, n=3)
    pi_l = am.LocalPolicy.uniform(game)
    ex = ExactSolver(game, 2)
    full = ex.full_info_best_response(pi_l)
    res_full = ExactSolver(game, 3).nash_gap(full.policy, pi_l, refine_local=False)
    assert res_full.gap_g_full == pytest.approx(0.0, abs=1e-10)
    assert res_full.gap_g == pytest.approx(0.0, abs=1e-10)
    br = ex.restricted_best_response(pi_l, method="enumerate")
    res = ex.nash_gap(br.policy, pi_l, refine_local=False)
    assert res.gap_g == pytest.approx(0.0, abs=1e-10)


# ---------------------------------------------------------------------------
# G-LEARN with k = n and exact expectation reaches the full-information optimum
# ---------------------------------------------------------------------------

_HAS_G_LEARN = importlib.util.find_spec("altmarl.g_learn") is not None


@pytest.mark.skipif(not _HAS_G_LEARN, reason="altmarl.g_learn not available")
@pytest.mark.parametrize("seed,kw", [(0, {"n": 3}), (1, {"n_sl": 3, "n": 3, "n_ag": 3})])
def test_g_learn_k_equal_n_exact_expectation_is_optimal(seed, kw):
    game = exact_game(seed, **kw)
    pi_l = random_pi_l(game, np.random.default_rng(seed))
    ex = ExactSolver(game, game.n)
    opt = ex.full_info_best_response(pi_l)
    from altmarl.g_learn import g_learn

    pi_g = g_learn(game, pi_l, k=game.n, m=None, seed=0, tol=1e-12)
    assert ex.value(pi_g, pi_l) == pytest.approx(opt.value, abs=1e-8)
    # its Q is the optimal Q of the full-information MDP
    assert pi_g.q is not None and opt.policy.q is not None
    np.testing.assert_allclose(pi_g.q, opt.policy.q, atol=1e-8)


@pytest.mark.skipif(not _HAS_G_LEARN, reason="altmarl.g_learn not available")
def test_g_learn_exact_expectation_is_the_k_agent_full_information_mdp():
    """With m=None, G-LEARN's surrogate is exactly the k-agent system with full information,
    so its Q equals the exact solver's Q* on game.with_n(k)."""
    from altmarl.g_learn import g_learn

    game = exact_game(3, n_sl=3, n=9)
    pi_l = random_pi_l(game, np.random.default_rng(5))
    k = 3
    q_sur = ExactSolver(game.with_n(k), k).full_info_best_response(pi_l).policy.q
    pi_g = g_learn(game, pi_l, k=k, m=None, seed=0, tol=1e-12)
    np.testing.assert_allclose(pi_g.q, q_sur, atol=1e-8)
