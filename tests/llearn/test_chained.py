"""Chained MDPs (paper Algorithms 21, 28, 17) and the UCFH local best response (SPEC 5.2)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from scipy.stats import multinomial

import altmarl as am
from altmarl.game import DirichletInit
from altmarl.histogram import enumerate_histograms
from altmarl.llearn.chained import (
    ChainedOptions,
    build_chained_mdp,
    chained_best_response,
    chained_num_states,
    chained_policy_value,
    extract_shared_policy,
    truncation_horizon,
)
from altmarl.llearn.ucfh import policy_value, solve, to_state_rewards

VARIANTS = ["k-chained", "mean-field"]


def k_agent_value(game: am.TabularGame, pi_g: am.GlobalPolicy, table: np.ndarray, H: int) -> float:
    """Independent oracle: the k-agent surrogate (n = k, the global agent sees everyone) as a
    Markov chain on (s_g, histogram), discounted return truncated at H, written with plain
    loops and scipy's multinomial pmf."""
    k, G, d = pi_g.k, game.n_sg, game.n_sl
    hs = [tuple(int(v) for v in h) for h in enumerate_histograms(k, d)]
    index = {h: i for i, h in enumerate(hs)}
    K = np.einsum("xga,xgay->xgy", table, game.P_l)
    rbar = np.einsum("xga,xga->xg", table, game.r_l)
    NH = len(hs)
    trans = np.zeros((G, NH, NH))
    for g in range(G):
        for i, h in enumerate(hs):
            dist = {tuple([0] * d): 1.0}
            for x in range(d):
                if h[x] == 0:
                    continue
                nd: dict[tuple[int, ...], float] = {}
                for key, pk in dist.items():
                    for m in itertools.product(range(h[x] + 1), repeat=d):
                        if sum(m) != h[x]:
                            continue
                        pm = multinomial.pmf(m, h[x], K[x, g])
                        nk = tuple(a + b for a, b in zip(key, m, strict=True))
                        nd[nk] = nd.get(nk, 0.0) + pk * pm
                dist = nd
            for key, pk in dist.items():
                trans[g, i, index[key]] += pk
    V = np.zeros((G, NH))
    for _ in range(H):
        new = np.zeros_like(V)
        for g in range(G):
            for i, h in enumerate(hs):
                a = int(pi_g.act(g, np.array(h)))
                r = game.r_g[g, a] + sum(h[x] * rbar[x, g] for x in range(d)) / k
                new[g, i] = r + game.gamma * sum(
                    game.P_g[g, a, g2] * trans[g, i] @ V[g2] for g2 in range(G))
        V = new
    p0 = np.array([[math.exp(game.init.log_pmf(np.array([g]), np.array([h]), k)[0]) for h in hs]
                   for g in range(G)])
    return float((p0 * V).sum())


def random_global(game: am.TabularGame, k: int, seed: int) -> am.GlobalPolicy:
    rng = np.random.default_rng(seed)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, am.num_histograms(k, game.n_sl)))
    return am.GlobalPolicy(k, acts, game.n_ag, game=game)


def all_shared_tables(game: am.TabularGame):
    for combo in itertools.product(range(game.n_al), repeat=game.n_sl * game.n_sg):
        yield np.eye(game.n_al)[np.array(combo).reshape(game.n_sl, game.n_sg)]


# ---------------------------------------------------------------------------
# horizon and sizes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("eps", [1e-3, 0.1, 5.0])
def test_truncation_horizon_bounds_the_tail(gamma, eps):
    r_max = 2.0
    H = truncation_horizon(gamma, r_max, eps)
    assert H >= 1
    assert gamma**H * r_max / (1 - gamma) <= eps + 1e-12
    ratio = r_max / (eps * (1 - gamma))
    assert H == (max(1, math.ceil(math.log(ratio) / (1 - gamma))) if ratio > 1 else 1)


def test_sizes_and_state_limit():
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=5, seed=0)
    for variant in VARIANTS:
        for k in (1, 2, 3):
            pi_g = random_global(game, k, 0)
            chain = build_chained_mdp(game, pi_g, variant=variant, horizon=2)
            assert chain.n_states == chained_num_states(game, k, variant)
            assert chain.micro == (k + 1 if variant == "k-chained" else 4)
            assert chain.mdp.horizon == 2 * chain.micro
    pi_g = random_global(game, 3, 0)
    with pytest.raises(ValueError, match="max_states"):
        build_chained_mdp(game, pi_g, variant="k-chained", horizon=2, max_states=100)
    # the mean-field chain is the smaller one for large k
    assert chained_num_states(game, 5, "mean-field") < chained_num_states(game, 5, "k-chained")


# ---------------------------------------------------------------------------
# unfolding preserves value
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n_sl,k", [(3, 2), (2, 3)])
def test_chained_value_equals_the_k_agent_return(variant, n_sl, k):
    game = am.envs.make("random", n_sg=2, n_ag=3, n_sl=n_sl, n_al=2, n=6, gamma=0.8, seed=7)
    pi_g = random_global(game, k, 1)
    H = 4
    chain = build_chained_mdp(game, pi_g, variant=variant, horizon=H)
    rng = np.random.default_rng(0)
    stochastic = rng.dirichlet(np.ones(2), size=(n_sl, 2))
    deterministic = np.eye(2)[rng.integers(0, 2, size=(n_sl, 2))]
    for table in (stochastic, deterministic):
        expected = k_agent_value(game, pi_g, table, H)
        got = chained_policy_value(chain, table, game, pi_g)
        assert got == pytest.approx(expected, abs=1e-10)
    # Algorithm 17 preserves the chained values too
    smdp = to_state_rewards(chain.mdp)
    pol = chain.policy_actions(deterministic.argmax(-1))
    spol = np.zeros(smdp.n_states, dtype=np.int64)
    spol[: chain.n_states] = pol
    assert policy_value(smdp, spol) == pytest.approx(policy_value(chain.mdp, pol), abs=1e-12)
    assert solve(smdp).value == pytest.approx(solve(chain.mdp).value, abs=1e-12)


def test_chained_value_matches_monte_carlo_of_the_k_agent_system():
    # Dirichlet initial law (the warehouse's): the chain uses init.log_pmf at population k
    base = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=3, gamma=0.7, seed=2)
    game = am.TabularGame(base.P_g, base.P_l, base.r_g, base.r_l, base.gamma, 3,
                          DirichletInit(np.full(2, 0.5), np.full(3, 0.3)))
    k, H = 3, 6
    pi_g = random_global(game, k, 4)
    table = np.random.default_rng(5).dirichlet(np.ones(2), size=(3, 2))
    pi_l = am.LocalPolicy(table, game=game)
    traj = am.rollout_counts(game.with_n(k), pi_g, pi_l, 20_000, H, np.random.default_rng(0))
    ret = traj.discounted_returns(game.gamma)
    mean, se = ret.mean(), ret.std(ddof=1) / math.sqrt(ret.size)
    for variant in VARIANTS:
        chain = build_chained_mdp(game, pi_g, variant=variant, horizon=H)
        v = chained_policy_value(chain, table, game, pi_g)
        assert abs(v - mean) <= 4 * se, (variant, v, mean, se)


def test_chained_value_bad_inputs():
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, seed=0)
    pi_g = random_global(game, 2, 0)
    chain = build_chained_mdp(game, pi_g, variant="mean-field", horizon=2)
    stoch = np.full((2, 2, 2), 0.5)
    with pytest.raises(ValueError, match="game"):
        chained_policy_value(chain, stoch)
    with pytest.raises(ValueError, match="pi_l_table"):
        chained_policy_value(chain, np.full((2, 2, 3), 1 / 3))
    with pytest.raises(ValueError, match="pi_l_table"):
        chained_policy_value(chain, np.full((2, 2, 2), 0.7))
    with pytest.raises(ValueError, match="actions"):
        chain.policy_actions(np.zeros((3, 2), dtype=np.int64))


# ---------------------------------------------------------------------------
# policy extraction and the best response
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.7, seed=3)
    pi_g = random_global(game, 2, 0)
    return game, pi_g


def _brute_force(chain, game):
    vals = [chained_policy_value(chain, t) for t in all_shared_tables(game)]
    return max(vals), min(vals)


@pytest.mark.parametrize("variant", VARIANTS)
def test_extraction_with_the_true_model_finds_the_best_shared_policy(tiny, variant):
    game, pi_g = tiny
    chain = build_chained_mdp(game, pi_g, variant=variant, horizon=6)
    best, worst = _brute_force(chain, game)
    assert best - worst > 0.1  # the instance discriminates between policies
    unrestricted = solve(chain.mdp)
    assert unrestricted.value >= best - 1e-12
    for method in ("exhaustive", "search", "vote"):
        actions, info = extract_shared_policy(chain, chain.mdp.prob, unrestricted.policy, method)
        v = policy_value(chain.mdp, chain.policy_actions(actions))
        if method == "exhaustive":
            assert v == pytest.approx(best, abs=1e-12)
        assert v >= info["value_vote"] - 1e-12
        assert info["active_pairs"] == 4
    with pytest.raises(ValueError, match="extract"):
        extract_shared_policy(chain, chain.mdp.prob, unrestricted.policy, "nope")


@pytest.mark.parametrize("variant", VARIANTS)
def test_chained_best_response_is_close_to_brute_force(tiny, variant):
    game, pi_g = tiny
    eps = 0.1
    opts = ChainedOptions(variant=variant, eps=eps, episodes=1500, m=1000, width_scale=0.3)
    table, info = chained_best_response(game, pi_g, 0, opts)
    H = truncation_horizon(game.gamma, game.r_max, eps)
    chain = build_chained_mdp(game, pi_g, variant=variant, horizon=H)
    best, worst = _brute_force(chain, game)
    assert table.shape == (2, 2, 2) and np.all(table.sum(-1) == 1)
    assert np.all((table == 0) | (table == 1))
    assert info["value"] == pytest.approx(chained_policy_value(chain, table), abs=1e-12)
    assert info["value"] >= best - eps / 2
    assert info["value_lower"] <= info["value"] + 1e-9
    assert info["value"] <= info["value_upper"] + 1e-9
    assert abs(info["value_model"] - info["value"]) < eps
    assert info["episodes"] == 1500
    assert info["samples"] == 1500 * H * chain.micro
    assert info["horizon"] == H and info["states"] == chain.n_states
    assert info["ucfh_states"] == chain.n_states * (1 + game.n_al)
    for key in ("wall_time", "truncation_bound", "certified", "ucfh", "extraction"):
        assert key in info


def test_chained_best_response_is_reproducible(tiny):
    game, pi_g = tiny
    opts = ChainedOptions(variant="k-chained", eps=0.2, episodes=200, m=500, width_scale=0.5,
                          horizon=3)
    a, ia = chained_best_response(game, pi_g, 4, opts)
    b, ib = chained_best_response(game, pi_g, 4, opts)
    assert np.array_equal(a, b) and ia["value_model"] == ib["value_model"]


def test_chained_best_response_bad_inputs(tiny):
    game, pi_g = tiny
    other = am.envs.make("random", n_sg=3, n_ag=2, n_sl=2, n_al=2, n=4, seed=0)
    cases = [
        (dict(variant="both"), "variant"),
        (dict(eps=0.0), "eps"),
        (dict(eps=float("nan")), "eps"),
        (dict(horizon=0), "horizon"),
        (dict(extract="best"), "extract"),
        (dict(delta=2.0), "delta"),
        (dict(update="sometimes"), "update"),
        (dict(episodes=0), "episodes"),
        (dict(m=-1.0), "m"),
        (dict(width_scale=True), "width_scale"),
    ]
    for kw, field in cases:  # the options object validates itself
        with pytest.raises(ValueError, match=field):
            ChainedOptions(**kw)
    with pytest.raises(ValueError, match="max_states"):  # needs the game
        chained_best_response(game, pi_g, 0, ChainedOptions(max_states=10))
    with pytest.raises(ValueError, match="options"):
        chained_best_response(game, pi_g, 0, {"eps": 0.1})  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ChainedOptions().eps = 0.2  # type: ignore[misc]
    with pytest.raises(ValueError, match="pi_g"):
        chained_best_response(other, pi_g)
    with pytest.raises(ValueError, match="pi_g"):
        chained_best_response(game, "policy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="game"):
        chained_best_response("game", pi_g)  # type: ignore[arg-type]
