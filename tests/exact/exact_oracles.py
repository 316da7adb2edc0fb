"""Independent oracles for the exact-solver tests (brute-force enumeration, plain value
iteration, the representative agent's MDP); imported by the tests of tests/exact/."""

from __future__ import annotations

import itertools

import numpy as np

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.histogram import num_histograms, rank


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
