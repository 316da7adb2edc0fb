"""Shared test helpers for G-LEARN: small games and independent oracles written from
SPEC 1 / SPEC 7 (agent by agent), not from the code under test."""

from __future__ import annotations

import itertools

import numpy as np

import altmarl as am
from altmarl.histogram import enumerate_histograms, rank


def small_game(seed: int = 0, n: int = 6, n_sl: int = 3, gamma: float = 0.9) -> am.TabularGame:
    return am.envs.make("random", n_sg=2, n_ag=3, n_sl=n_sl, n_al=2, n=n, gamma=gamma, seed=seed)


def random_pi_l(game: am.TabularGame, seed: int) -> am.LocalPolicy:
    rng = np.random.default_rng(seed)
    return am.LocalPolicy(rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg)),
                          game=game)


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


def tv_distance(counts: np.ndarray, p: np.ndarray) -> float:
    """Total variation between empirical ``counts`` and the law ``p``."""
    return 0.5 * float(np.abs(counts / counts.sum() - p).sum())

