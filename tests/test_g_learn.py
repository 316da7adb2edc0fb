"""Tests for G-LEARN (SPEC 4, paper Algorithm 22)."""

from __future__ import annotations

import itertools
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.g_learn import (
    POOL_SIZE,
    ConvergenceWarning,
    _histograms,
    _stream_pools,
    empirical_operator,
    exact_next_histograms,
    histogram_q,
    pi_l_table,
    policy_from_operator,
    solve,
)
from altmarl.histogram import enumerate_histograms, num_histograms, rank


def small_game(seed: int = 0, n: int = 6, n_sl: int = 3, gamma: float = 0.9) -> am.TabularGame:
    return am.envs.make("random", n_sg=2, n_ag=3, n_sl=n_sl, n_al=2, n=n, gamma=gamma, seed=seed)


def random_pi_l(game: am.TabularGame, seed: int) -> am.LocalPolicy:
    rng = np.random.default_rng(seed)
    return am.LocalPolicy(rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg)),
                          game=game)


# ---------------------------------------------------------------------------
# independent oracles, written here from SPEC 1 / SPEC 7 (agent by agent)
# ---------------------------------------------------------------------------


def brute_next_counts(game: am.TabularGame, pi_l: np.ndarray, k: int) -> np.ndarray:
    """``T[s, rank(N), rank(N')]`` by enumerating every agent's next state (k agents)."""
    d = game.n_sl
    K = np.einsum("xga,xgay->xgy", pi_l, game.P_l)
    Hs = enumerate_histograms(k, d)
    T = np.zeros((game.n_sg, len(Hs), len(Hs)))
    for s in range(game.n_sg):
        for i, h in enumerate(Hs):
            agents = np.repeat(np.arange(d), h)
            for nxt in itertools.product(range(d), repeat=k):
                p = np.prod([K[x, s, y] for x, y in zip(agents, nxt, strict=True)])
                T[s, i, rank(np.bincount(nxt, minlength=d), k)] += p
    return T


def full_info_q(game: am.TabularGame, pi_l: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Optimal Q of the real n-agent system on ``(s_g, N)`` (value iteration, SPEC 7)."""
    n, d = game.n, game.n_sl
    Hs = enumerate_histograms(n, d)
    T = brute_next_counts(game, pi_l, n)
    rbar = np.einsum("xga,xga->xg", pi_l, game.r_l)  # expected local reward per agent
    r = game.r_g[:, None, :] + ((Hs @ rbar) / n).T[:, :, None]  # SPEC eq. 1 in expectation
    Q = np.zeros((game.n_sg, len(Hs), game.n_ag))
    for _ in range(100_000):
        V = Q.max(axis=-1)
        W = np.einsum("shn,yn->shy", T, V)  # E[V(s', N') | s, N] for each s'
        Qn = r + game.gamma * np.einsum("shy,say->sha", W, game.P_g)
        if np.abs(Qn - Q).max() < tol:
            return Qn
        Q = Qn
    raise AssertionError("oracle value iteration did not converge")


def exact_policy_value(game: am.TabularGame, pi_l: np.ndarray, actions: np.ndarray) -> float:
    """``V(pi_g, pi_l)`` of a full-information policy (k = n) by one linear solve."""
    n, d = game.n, game.n_sl
    Hs = enumerate_histograms(n, d)
    T = brute_next_counts(game, pi_l, n)
    rbar = np.einsum("xga,xga->xg", pi_l, game.r_l)
    S, N = game.n_sg, len(Hs)
    P = np.zeros((S * N, S * N))
    r = np.zeros(S * N)
    for s in range(S):
        for i in range(N):
            a = actions[s, i]
            r[s * N + i] = game.r_g[s, a] + Hs[i] @ rbar[:, s] / n
            P[s * N + i] = np.outer(game.P_g[s, a], T[s, i]).ravel()
    V = np.linalg.solve(np.eye(S * N) - game.gamma * P, r)
    sg = np.repeat(np.arange(S), N)
    w = np.exp(game.init.log_pmf(sg, np.tile(Hs, (S, 1)), n))
    assert abs(w.sum() - 1) < 1e-9
    return float(w @ V)


# ---------------------------------------------------------------------------
# exact expectation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exact_next_histograms_match_agent_enumeration(k: int) -> None:
    game = small_game(1)
    pi = random_pi_l(game, 2).table
    K = game.local_kernel(pi)
    T = brute_next_counts(game, pi, k)
    for s in range(game.n_sg):
        D = exact_next_histograms(K[:, s, :], k)
        np.testing.assert_allclose(D, T[s], atol=1e-14)
        np.testing.assert_allclose(D.sum(axis=1), 1.0, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_mean_field_and_standard_agree_with_exact_expectation(seed: int, k: int) -> None:
    game = small_game(seed)
    pi_l = random_pi_l(game, seed + 10)
    mf = am.g_learn(game, pi_l, k, m=None, tol=1e-10)
    std = am.g_learn(game, pi_l, k, m=None, parameterization="standard", tol=1e-10)
    assert mf.q is not None and std.q is not None
    np.testing.assert_allclose(mf.q, std.q, atol=1e-8)
    # the tuple Q itself is permutation invariant: every ordering of a histogram agrees
    op = empirical_operator(game, pi_l, k, m=None, parameterization="standard")
    q_t, _ = solve(op, tol=1e-10)
    d = game.n_sl
    dig = np.array(list(itertools.product(range(d), repeat=k))).reshape(-1, k)
    hr = rank(np.stack([(dig == x).sum(1) for x in range(d)], axis=1), k)
    np.testing.assert_allclose(q_t, mf.q[:, hr, :], atol=1e-8)
    np.testing.assert_array_equal(mf.actions, std.actions)
    assert mf.info["samples"] == 0 and mf.info["m"] is None


def test_k_equals_n_recovers_the_full_information_optimum() -> None:
    """With k = n the surrogate *is* the real system: G-LEARN (exact expectation) returns
    the optimal full-information Q, and its greedy policy attains the optimal value."""
    for seed in (3, 4):
        game = small_game(seed, n=3)
        pi_l = random_pi_l(game, seed)
        q_star = full_info_q(game, pi_l.table)
        for solver in ("pi", "vi"):
            pol = am.g_learn(game, pi_l, k=game.n, m=None, tol=1e-9, solver=solver)
            assert pol.q is not None
            np.testing.assert_allclose(pol.q, q_star, atol=1e-9 / (1 - game.gamma) * 2)
        pol = am.g_learn(game, pi_l, k=game.n, m=None, tol=1e-10)
        Hs = enumerate_histograms(game.n, game.n_sl)
        sg = np.repeat(np.arange(game.n_sg), len(Hs))
        w = np.exp(game.init.log_pmf(sg, np.tile(Hs, (game.n_sg, 1)), game.n))
        v_star = float(w @ q_star.max(axis=-1).ravel())
        v_pol = exact_policy_value(game, pi_l.table, pol.actions)
        assert v_pol == pytest.approx(v_star, abs=1e-8)
        # ... and no other policy of a few random ones does better
        rng = np.random.default_rng(seed)
        for _ in range(5):
            other = rng.integers(0, game.n_ag, size=pol.actions.shape)
            assert exact_policy_value(game, pi_l.table, other) <= v_star + 1e-9


# ---------------------------------------------------------------------------
# the empirical operator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
def test_sampled_q_approaches_exact_q_as_m_grows(crn: str) -> None:
    game = small_game(5)
    pi_l = random_pi_l(game, 5)
    k = 3
    exact = am.g_learn(game, pi_l, k, m=None, tol=1e-10).q
    assert exact is not None

    def err(m: int, seed: int) -> float:
        q = am.g_learn(game, pi_l, k, m=m, seed=seed, crn=crn, tol=1e-9).q
        assert q is not None
        return float(np.abs(q - exact).max())

    e5 = np.mean([err(5, s) for s in range(4)])
    e200 = np.mean([err(200, s) for s in range(4)])
    # Monte-Carlo error ~ 1/sqrt(m): a factor sqrt(40) ~ 6.3 is expected
    assert e200 < 0.4 * e5
    assert e200 < 0.1 * float(np.abs(exact).max())


def test_standard_sampled_approaches_exact() -> None:
    game = small_game(6)
    pi_l = random_pi_l(game, 6)
    exact = am.g_learn(game, pi_l, 2, m=None, tol=1e-10).q
    errs = {}
    for m in (5, 200):
        errs[m] = np.mean([
            np.abs(am.g_learn(game, pi_l, 2, m=m, seed=s, parameterization="standard").q
                   - exact).max() for s in range(4)])
    assert errs[200] < 0.4 * errs[5]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), crn=st.sampled_from(["pool", "states", "none"]),
       scale=st.floats(0.01, 100.0))
def test_empirical_operator_is_a_gamma_contraction(seed: int, crn: str, scale: float) -> None:
    game = small_game(seed % 7, gamma=0.9)
    op = empirical_operator(game, am.LocalPolicy.uniform(game), 3, m=7, seed=seed, crn=crn)
    rng = np.random.default_rng(seed)
    q1 = rng.normal(size=op.shape) * scale
    q2 = q1 + rng.normal(size=op.shape) * scale * rng.random()
    lhs = np.abs(op.apply(q1) - op.apply(q2)).max()
    rhs = op.gamma * np.abs(q1 - q2).max()
    assert lhs <= rhs * (1 + 1e-12) + 1e-12
    # monotone: Q1 <= Q2 implies T Q1 <= T Q2
    q3 = q1 + np.abs(rng.normal(size=op.shape))
    assert np.all(op.apply(q1) <= op.apply(q3) + 1e-12)


def test_operator_reward_matches_spec() -> None:
    game = small_game(2)
    pi_l = random_pi_l(game, 3)
    k = 3
    op = empirical_operator(game, pi_l, k, m=4, seed=0)
    Hs = enumerate_histograms(k, game.n_sl)
    r = op.reward()
    for s in range(game.n_sg):
        for i, h in enumerate(Hs):
            for a in range(game.n_ag):
                expect = game.r_g[s, a] + sum(
                    h[x] * sum(pi_l.table[x, s, b] * game.r_l[x, s, b] for b in range(game.n_al))
                    for x in range(game.n_sl)) / k
                assert r[s, i, a] == pytest.approx(expect, abs=1e-12)


def _tv(counts: np.ndarray, p: np.ndarray) -> float:
    return 0.5 * float(np.abs(counts / counts.sum() - p).sum())


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
def test_samples_have_the_surrogate_law(crn: str) -> None:
    """Every (s_g, h, a_g) gets draws of (s_g', h') from P_g x (sum of multinomials)."""
    game = small_game(8)
    pi_l = random_pi_l(game, 8)
    k, m = 2, 6000
    op = empirical_operator(game, pi_l, k, m=m, seed=1, crn=crn, pool_size=64)
    N = num_histograms(k, game.n_sl)
    K = game.local_kernel(pi_l.table)
    cols = op.model.cols  # cols[a][s, h, j] = s_g' * N + rank(h')
    for s in range(game.n_sg):
        D = exact_next_histograms(K[:, s, :], k)
        for a in range(game.n_ag):
            for h in range(N):
                c = cols[a][s, h]
                joint = np.outer(game.P_g[s, a], D[h]).ravel()
                assert _tv(np.bincount(c, minlength=game.n_sg * N), joint) < 0.05
    if crn != "none":  # next local states are shared across a_g
        np.testing.assert_array_equal(cols[0] % N, cols[1] % N)


def test_stream_pools_structure() -> None:
    """crn='pool': stream p of bin x is a sequence of i.i.d. single-agent moves; the pool
    entry (x, c, p) is the histogram of its first c moves; the last m - 1 streams repeat
    the first ones so windows never wrap."""
    K_s = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    k, P, m = 4, 5000, 6
    pools = _stream_pools(K_s, k, P, m, np.random.default_rng(0))
    assert pools.shape == (3, k + 1, P + m - 1, 3)
    np.testing.assert_array_equal(pools[:, 0], 0)
    assert np.all(pools.sum(axis=-1) == np.arange(k + 1)[None, :, None])
    step = np.diff(pools.astype(int), axis=1)
    assert np.all((step == 0) | (step == 1)) and np.all(step.sum(axis=-1) == 1)
    np.testing.assert_array_equal(pools[:, :, P:], pools[:, :, : m - 1])
    freq = step[:, :, :P].sum(axis=(1, 2)) / (k * P)
    np.testing.assert_allclose(freq, K_s, atol=0.02)
    assert np.all(step[1, :, :, [0, 2]] == 0)  # zero-probability moves never happen


def test_packed_and_plain_pool_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = sys.modules["altmarl.g_learn"]  # (``altmarl.g_learn`` the attribute is the function)
    game = small_game(21)
    pi_l = random_pi_l(game, 21)
    a = empirical_operator(game, pi_l, 4, m=7, seed=3, pool_size=50)
    monkeypatch.setattr(mod, "_PACK_LIMIT", 0)
    b = empirical_operator(game, pi_l, 4, m=7, seed=3, pool_size=50)
    for ca, cb in zip(a.model.cols, b.model.cols, strict=True):
        np.testing.assert_array_equal(ca, cb)
    K_s = game.local_kernel(pi_l.table)[:, 0, :]
    p16 = _stream_pools(K_s, 4, 30, 5, np.random.default_rng(1))
    p64 = _stream_pools(K_s, 4, 30, 5, np.random.default_rng(1), packed_bits=3)
    np.testing.assert_array_equal((p16.astype(np.int64) << (3 * np.arange(3))).sum(-1), p64)


def test_draw_counts_are_reported() -> None:
    game = small_game(9)
    pi_l = random_pi_l(game, 9)
    op = empirical_operator(game, pi_l, 3, m=5, seed=0, pool_size=5)
    assert op.draws["local_agent"] == game.n_sg * game.n_sl * 3 * 5
    assert op.draws["global"] == game.n_sg * num_histograms(3, game.n_sl) * game.n_ag * 5
    op2 = empirical_operator(game, pi_l, 3, m=5, seed=0, pool_size=10_000)
    assert op2.draws["local_agent"] == game.n_sg * game.n_sl * 3 * 10_000


def test_standard_samples_have_the_product_law() -> None:
    game = small_game(10)
    pi_l = random_pi_l(game, 10)
    k, m, d = 2, 6000, game.n_sl
    op = empirical_operator(game, pi_l, k, m=m, seed=2, parameterization="standard")
    K = game.local_kernel(pi_l.table)
    N = d**k
    for s in range(game.n_sg):
        for t, (x1, x2) in enumerate(itertools.product(range(d), repeat=2)):
            p_local = np.outer(K[x1, s], K[x2, s]).ravel()  # next tuple (y1, y2)
            for a in range(game.n_ag):
                joint = np.outer(game.P_g[s, a], p_local).ravel()
                c = op.model.cols[a][s, t]
                assert _tv(np.bincount(c, minlength=game.n_sg * N), joint) < 0.05


# ---------------------------------------------------------------------------
# solvers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("crn", ["pool", "states", "none"])
def test_pi_and_vi_reach_the_same_fixed_point(crn: str) -> None:
    game = am.envs.make("warehouse", n=50)
    pi_l = am.LocalPolicy.uniform(game)
    tol = 1e-6
    a = am.g_learn(game, pi_l, 4, m=10, seed=3, crn=crn, solver="pi", tol=tol)
    b = am.g_learn(game, pi_l, 4, m=10, seed=3, crn=crn, solver="vi", tol=tol)
    assert a.q is not None and b.q is not None
    for p in (a, b):
        assert p.info["converged"] and p.info["residual"] <= tol
    # each is within residual / (1 - gamma) <= tol / (1 - gamma) of the unique fixed point
    ref = am.g_learn(game, pi_l, 4, m=10, seed=3, crn=crn, solver="pi", tol=1e-11).q
    assert ref is not None
    for p in (a, b):
        assert p.q is not None
        assert np.abs(p.q - ref).max() <= p.info["residual"] / (1 - game.gamma) + 1e-9
        assert np.abs(p.q - ref).max() <= tol / (1 - game.gamma)
    bound = (a.info["residual"] + b.info["residual"]) / (1 - game.gamma)
    assert np.abs(a.q - b.q).max() <= bound + 1e-9
    assert b.info["sweeps"] > 5 * a.info["sweeps"]  # plain VI needs ~ log(tol)/log(gamma)


def test_reported_residual_is_the_true_residual() -> None:
    game = small_game(11)
    pi_l = random_pi_l(game, 11)
    for solver in ("pi", "vi"):
        pol = am.g_learn(game, pi_l, 3, m=8, seed=4, solver=solver, tol=1e-7)
        op = empirical_operator(game, pi_l, 3, m=8, seed=4)
        assert pol.q is not None
        assert op.residual(pol.q) == pytest.approx(pol.info["residual"], rel=1e-9, abs=1e-15)
        assert pol.info["residual"] <= 1e-7


def test_max_iter_warns_and_reports_non_convergence() -> None:
    game = small_game(12)
    pi_l = random_pi_l(game, 12)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        pol = am.g_learn(game, pi_l, 2, m=5, solver="vi", max_iter=3)
    assert not pol.info["converged"]
    assert pol.info["iterations"] == 3 and pol.info["residual"] > 1e-6


def test_unreachable_tol_terminates_with_a_warning() -> None:
    game = small_game(22)
    with pytest.warns(ConvergenceWarning, match="round-off"):
        pol = am.g_learn(game, am.LocalPolicy.uniform(game), 3, m=5, tol=1e-17)
    assert not pol.info["converged"] and pol.info["residual"] < 1e-12


def test_histogram_enumeration_matches_core() -> None:
    for k, d in [(0, 3), (1, 1), (4, 1), (5, 2), (7, 3), (6, 5)]:
        np.testing.assert_array_equal(_histograms(k, d), enumerate_histograms(k, d))


# ---------------------------------------------------------------------------
# the returned policy
# ---------------------------------------------------------------------------


def test_policy_info_and_evaluate() -> None:
    game = am.envs.make("warehouse", n=100)
    pi_l = am.LocalPolicy.uniform(game)
    k, m = 3, 6
    pol = am.g_learn(game, pi_l, k, m=m, seed=0)
    H = num_histograms(k, game.n_sl)
    assert isinstance(pol, am.GlobalPolicy) and pol.k == k
    assert pol.q is not None and pol.q.shape == (game.n_sg, H, game.n_ag)
    info = pol.info
    assert info["samples"] == game.n_sg * H * game.n_ag * m
    assert info["samples_standard"] == game.n_sg * game.n_sl**k * game.n_ag * m
    assert info["table_size_mean_field"] == game.n_sg * H * game.n_ag
    assert info["table_size_standard"] == game.n_sg * game.n_sl**k * game.n_ag
    for key in ("iterations", "residual", "wall_seconds", "parameterization", "m", "seed",
                "solver", "crn", "draws", "converged"):
        assert key in info
    assert info["parameterization"] == "mean-field" and info["m"] == m and info["seed"] == 0
    ev = am.evaluate(game, pol, pi_l, rollouts=8, horizon=20, seed=0, workers=1)
    assert np.isfinite(ev.mean)


def test_evaluate_agrees_with_the_exact_value_of_the_g_learn_policy() -> None:
    """The returned policy plugs into am.evaluate; with k = n its Monte-Carlo value matches
    the exact value of the (s_g, N) chain."""
    game = small_game(20, n=3, gamma=0.8)
    pi_l = random_pi_l(game, 20)
    pol = am.g_learn(game, pi_l, k=3, m=None)
    v = exact_policy_value(game, pi_l.table, pol.actions)
    ev = am.evaluate(game, pol, pi_l, rollouts=1000, horizon=80, seed=0, workers=1)
    assert abs(ev.mean - v) <= 4 * ev.stderr + ev.truncation_bound


def test_policy_round_trips_through_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    game = small_game(13)
    pol = am.g_learn(game, am.LocalPolicy.uniform(game), 2, m=4, seed=1)
    path = pol.save(tmp_path / "g.npz", game=game)
    back = am.GlobalPolicy.load(path, game=game)
    np.testing.assert_array_equal(back.actions, pol.actions)
    assert back.info["residual"] == pol.info["residual"]


def test_standard_policy_acts_on_ordering_averaged_q() -> None:
    game = small_game(14)
    pi_l = random_pi_l(game, 14)
    pol = am.g_learn(game, pi_l, 3, m=6, seed=2, parameterization="standard",
                     tie_break="lowest")
    op = empirical_operator(game, pi_l, 3, m=6, seed=2, parameterization="standard")
    q_t, _ = solve(op)
    q_h = histogram_q(q_t, 3, game.n_sl)
    assert pol.q is not None
    np.testing.assert_allclose(pol.q, q_h, atol=1e-5)
    np.testing.assert_array_equal(pol.actions, q_h.argmax(axis=-1))
    assert pol.info["samples"] == game.n_sg * game.n_sl**3 * game.n_ag * 6


def test_seeds_are_reproducible() -> None:
    game = small_game(15)
    pi_l = random_pi_l(game, 15)
    a = am.g_learn(game, pi_l, 3, m=5, seed=7)
    b = am.g_learn(game, pi_l, 3, m=5, seed=7)
    c = am.g_learn(game, pi_l, 3, m=5, seed=8)
    assert a.q is not None and b.q is not None and c.q is not None
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert np.abs(a.q - c.q).max() > 1e-6
    for crn in ("states", "none"):
        x = am.g_learn(game, pi_l, 3, m=5, seed=7, crn=crn).q
        y = am.g_learn(game, pi_l, 3, m=5, seed=7, crn=crn).q
        np.testing.assert_array_equal(x, y)


def test_ties_are_broken_by_the_documented_rule() -> None:
    """Two global actions with identical dynamics and rewards tie everywhere."""
    base = small_game(16)
    P_g = base.P_g.copy()
    r_g = base.r_g.copy()
    P_g[:, 2] = P_g[:, 1]
    r_g[:, 2] = r_g[:, 1]
    P_g[:, 0] = P_g[:, 1]
    r_g[:, 1:] += 0.5
    r_g[:, 0] = r_g[:, 1] - 0.5  # action 0 strictly worse
    game = am.TabularGame(P_g, base.P_l, r_g, base.r_l, base.gamma, base.n)
    pi_l = am.LocalPolicy.uniform(game)
    low = am.g_learn(game, pi_l, 3, m=None, tie_break="lowest")
    assert np.all(low.actions == 1)
    s1 = am.g_learn(game, pi_l, 3, m=None, seed=1)
    s1b = am.g_learn(game, pi_l, 3, m=None, seed=1)
    np.testing.assert_array_equal(s1.actions, s1b.actions)
    assert set(np.unique(s1.actions)) == {1, 2}  # uniform among the maximizers


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k = 0"),
        ({"k": 7}, "k = 7"),
        ({"k": 2.0}, "k = 2.0"),
        ({"m": 0}, "m = 0"),
        ({"m": -3}, "m = -3"),
        ({"m": 2.5}, "m = 2.5"),
        ({"seed": -1}, "seed = -1"),
        ({"parameterization": "mf"}, "parameterization"),
        ({"solver": "newton"}, "solver"),
        ({"crn": "bins"}, "crn"),
        ({"crn": "pool", "parameterization": "standard"}, "crn = 'pool'"),
        ({"tol": 0.0}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"tol": -1e-3}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"tie_break": "random"}, "tie_break"),
        ({"pool_size": 0}, "pool_size"),
        ({"k": 6, "m": None, "max_exact_entries": 1000}, "m = None"),
        ({"k": 6, "parameterization": "standard", "max_table": 1000}, "max_table"),
        ({"k": 3, "m": 10**6, "max_samples": 10**6}, "max_samples"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(kwargs: dict, match: str) -> None:
    game = small_game(17)
    args = {"k": 2, "m": 3}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        am.g_learn(game, am.LocalPolicy.uniform(game), **args)


def test_bad_game_and_local_policy() -> None:
    game = small_game(18)
    with pytest.raises(ValueError, match="game"):
        am.g_learn("warehouse", am.LocalPolicy.uniform(game), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pi_l.table"):
        am.g_learn(game, np.full((2, 2, 2), 0.5), 2)
    bad = np.full((game.n_sl, game.n_sg, game.n_al), 0.7)
    with pytest.raises(ValueError, match="pi_l.table"):
        am.g_learn(game, bad, 2)


def test_progress_bar_runs() -> None:
    game = small_game(19)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pol = am.g_learn(game, am.LocalPolicy.uniform(game), 2, m=3, progress=True)
    assert pol.info["converged"]


# ---------------------------------------------------------------------------
# the shared last step and the public helpers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("parameterization", ["mean-field", "standard"])
def test_policy_from_operator_is_g_learns_last_step(parameterization: str) -> None:
    game = small_game(20)
    pi_l = random_pi_l(game, 20)
    ref = am.g_learn(game, pi_l, 2, m=4, seed=9, parameterization=parameterization)
    op = empirical_operator(game, pi_l, 2, m=4, seed=9, parameterization=parameterization)
    pol = policy_from_operator(game, op, 9, method="mine", extra_info={"note": 1})
    assert pol.q is not None and ref.q is not None
    np.testing.assert_array_equal(pol.q, ref.q)
    np.testing.assert_array_equal(pol.actions, ref.actions)
    assert pol.info["method"] == "mine" and pol.info["note"] == 1
    assert set(ref.info) <= set(pol.info)
    skip = {"method", "wall_seconds", "cpu_seconds", "solve_seconds", "solve_cpu_seconds",
            "sample_seconds"}
    for key in set(ref.info) - skip:
        assert pol.info[key] == ref.info[key], key
    if parameterization == "mean-field":
        assert pol.info["pool_size"] == op.pool_size == POOL_SIZE
    else:
        assert op.pool_size is None and "pool_size" not in pol.info
    low = policy_from_operator(game, op, 9, tie_break="lowest")
    assert low.info["tie_break"] == "lowest"
    with pytest.raises(ValueError, match="tie_break"):
        policy_from_operator(game, op, 9, tie_break="random")


def test_pi_l_table() -> None:
    game = small_game(21)
    pi_l = random_pi_l(game, 21)
    np.testing.assert_array_equal(pi_l_table(game, pi_l), pi_l.table)
    np.testing.assert_array_equal(pi_l_table(game, pi_l.table), pi_l.table)
    with pytest.raises(ValueError, match=r"pi_l.table: expected shape"):
        pi_l_table(game, pi_l.table[:, :1])
    with pytest.raises(ValueError):
        pi_l_table(game, np.full(pi_l.table.shape, 0.9))  # rows do not sum to 1
