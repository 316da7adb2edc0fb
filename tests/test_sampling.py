"""Typed populations and the sampling schemes (SPEC 12, altmarl.sampling): validators, the
exact laws against brute-force enumeration, the samplers against the laws, and the exact
chain against an independent per-agent brute force and against the simulators."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.histogram import enumerate_histograms, num_histograms
from altmarl.sampling import (
    Stratified,
    Uniform,
    Weighted,
    hypergeometric_weights,
    stratified_histograms,
    successive_sampling_law,
    type_sums,
    weighted_subsample,
)

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def typed_game(seed: int = 0, n_sl: int = 3, types=(0, 0, 1), type_counts=(2, 1), **kw):
    return am.envs.make("random", n_sl=n_sl, n=sum(type_counts), types=list(types),
                        type_counts=type_counts, seed=seed, **kw)


def random_pi_l(game, rng):
    return am.LocalPolicy(rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg)),
                          game=game)


def random_pi_g(game, scheme, rng):
    scheme = scheme.bind(game)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, scheme.num_observations(game.n_sl)))
    return am.GlobalPolicy(scheme.k, acts, game.n_ag, game=game, sampling=scheme)


# ---------------------------------------------------------------------------
# brute-force laws of the sample histogram (agents enumerated one by one)
# ---------------------------------------------------------------------------


def agents_of(N):
    return np.repeat(np.arange(len(N)), N)


def brute_law_subsets(N, types, ks, hists):
    """P(h | N) for stratified sampling: every choice of k_c agents of each type c equally
    likely (enumerate the subsets)."""
    agents = agents_of(N)
    t = np.asarray(types)[agents]
    per_type = [list(itertools.combinations(np.flatnonzero(t == c), kc))
                for c, kc in enumerate(ks)]
    out = np.zeros(len(hists))
    index = {tuple(h): i for i, h in enumerate(hists)}
    total = math.prod(len(p) for p in per_type)
    for combo in itertools.product(*per_type):
        h = np.bincount(agents[list(itertools.chain(*combo))], minlength=len(N))
        out[index[tuple(h)]] += 1.0 / total
    return out


def brute_law_sequences(N, w, k, hists):
    """P(h | N) for successive weighted sampling: every ordered sequence of k distinct
    agents, probability prod_j w_{i_j} / (weight of the agents left)."""
    agents = agents_of(N)
    wa = np.asarray(w, dtype=float)[agents]
    index = {tuple(h): i for i, h in enumerate(hists)}
    out = np.zeros(len(hists))
    for seq in itertools.permutations(range(len(agents)), k):
        p, left = 1.0, set(range(len(agents)))
        for i in seq:
            z = sum(wa[j] for j in left)
            p *= wa[i] / z if z > 0 else 1.0 / len(left)
            left.discard(i)
        h = np.bincount(agents[list(seq)], minlength=len(N))
        out[index[tuple(h)]] += p
    return out


@pytest.mark.parametrize("N,types,ks", [
    ((2, 1, 2), (0, 0, 1), (2, 1)),
    ((1, 2, 1, 2), (0, 1, 0, 1), (1, 2)),
    ((3, 0, 1, 1), (0, 0, 1, 1), (2, 2)),
    ((2, 2, 1), (0, 1, 2), (1, 2, 1)),
])
def test_stratified_law_equals_subset_enumeration(N, types, ks):
    scheme = Stratified(ks, types)
    hists = scheme.observations(len(N))
    assert hists.shape[0] == scheme.num_observations(len(N))
    np.testing.assert_array_equal(type_sums(hists, types), np.tile(ks, (len(hists), 1)))
    np.testing.assert_array_equal(scheme.index(hists), np.arange(len(hists)))
    law = scheme.law(np.array([N]))[0]
    np.testing.assert_allclose(law, brute_law_subsets(N, types, ks, hists), atol=1e-13)


@pytest.mark.parametrize("N,w,k", [
    ((2, 1, 2), (1.0, 3.0, 0.5), 2),
    ((2, 1, 2), (1.0, 3.0, 0.5), 3),
    ((1, 2, 2), (0.0, 1.0, 2.0), 3),   # a weight-0 state: drawn once the others are gone
    ((2, 0, 1), (0.0, 1.0, 0.0), 2),   # only weight-0 agents: uniform among them
    ((3, 2), (5.0, 1.0), 4),
])
def test_weighted_law_equals_sequence_enumeration(N, w, k):
    d = len(N)
    hists = enumerate_histograms(k, d)
    law = Weighted(w, k).law(np.array([N]))[0]
    np.testing.assert_allclose(law, brute_law_sequences(N, w, k, hists), atol=1e-13)
    assert law.sum() == pytest.approx(1.0, abs=1e-14)


def test_weighted_with_equal_weights_is_uniform_exactly():
    states = enumerate_histograms(6, 3)
    for k in (1, 2, 4, 6):
        # the scheme delegates: same law, bit for bit
        np.testing.assert_array_equal(Weighted((2.5, 2.5, 2.5), k).law(states),
                                      Uniform(k).law(states))
        # and the successive-sampling recursion itself reproduces the hypergeometric law
        np.testing.assert_allclose(successive_sampling_law(states, (1.0, 1.0, 1.0), k),
                                   hypergeometric_weights(states, enumerate_histograms(k, 3)),
                                   atol=1e-13)
    # the samplers too
    N = np.random.default_rng(0).multinomial(50, [0.2, 0.3, 0.5], size=40)
    a = Weighted((1, 1, 1), 5).sample(N, np.random.default_rng(3), 50)
    b = Uniform(5).sample(N, np.random.default_rng(3), 50)
    np.testing.assert_array_equal(a, b)


def test_weighted_law_cost_is_independent_of_n(peak_memory):
    """The recursion runs over H_k, not over agents: n = 10^9 allocates the same arrays as
    n = 10 (peak memory equal to within 4 KiB, under 1 MiB), where one float64 per agent
    would be 8 GB."""
    w = (1.0, 2.0, 4.0)
    successive_sampling_law(np.array([[4, 3, 3]]), w, 8)  # fill the histogram caches
    peaks = []
    for n in (10, 10**9):
        N = np.array([[n // 3, n // 3, n - 2 * (n // 3)]])
        with peak_memory() as mem:
            law = successive_sampling_law(N, w, 8)
        peaks.append(mem.bytes)
        assert law.sum() == pytest.approx(1.0)
    assert abs(peaks[1] - peaks[0]) < 4096 and max(peaks) < 2**20, peaks
    # n -> infinity: the draws become i.i.d. with p_x ∝ w_x N_x (multinomial)
    p = np.array(w) * N[0] / (np.array(w) * N[0]).sum()
    H = enumerate_histograms(8, 3)
    multi = np.exp([math.lgamma(9) - sum(math.lgamma(c + 1) for c in h)
                    + sum(c * math.log(q) for c, q in zip(h, p, strict=True)) for h in H])
    np.testing.assert_allclose(law[0], multi, atol=1e-8)


# ---------------------------------------------------------------------------
# samplers against the laws (chi-square)
# ---------------------------------------------------------------------------


def chi_square_ok(counts, probs, draws):
    """Pearson chi-square over cells with expected count >= 5 (pooled rest), p > 1e-4."""
    from scipy.stats import chi2

    exp = probs * draws
    big = exp >= 5
    obs = np.append(counts[big], counts[~big].sum())
    ex = np.append(exp[big], exp[~big].sum())
    keep = ex > 0
    stat = float(((obs[keep] - ex[keep]) ** 2 / ex[keep]).sum())
    return chi2.sf(stat, keep.sum() - 1) > 1e-4


@pytest.mark.parametrize("scheme,N", [
    (Stratified((2, 1), (0, 0, 1)), (5, 3, 4)),
    (Stratified((1, 2), (0, 1, 0, 1)), (3, 6, 2, 9)),
    (Weighted((1.0, 4.0, 0.25), 3), (6, 2, 5)),
    (Weighted((0.0, 0.0, 1.0), 3), (2, 3, 1)),   # weight-0 agents must fill the sample
])
def test_count_samplers_follow_the_law(scheme, N):
    d = len(N)
    draws = 20000
    h = scheme.sample(np.tile(N, (draws, 1)), np.random.default_rng(7), sum(N))
    assert (h.sum(axis=1) == scheme.k).all()
    assert (h <= np.array(N)).all()
    law = scheme.law(np.array([N]))[0]
    idx = scheme.index(h)
    counts = np.bincount(idx, minlength=law.size)
    assert chi_square_ok(counts, law, draws)
    assert scheme.num_observations(d) == law.size


@pytest.mark.parametrize("scheme,N", [
    (Stratified((2, 1), (0, 0, 1)), (4, 2, 3)),
    (Weighted((1.0, 4.0, 0.25), 3), (4, 2, 3)),
    (Weighted((0.0, 0.0, 1.0), 3), (2, 3, 1)),
])
def test_agent_samplers_follow_the_law(scheme, N):
    d = len(N)
    draws = 20000
    rng = np.random.default_rng(11)
    states = np.stack([rng.permutation(np.repeat(np.arange(d), N)) for _ in range(draws)])
    counts_N = np.tile(N, (draws, 1))
    h = scheme.sample_agents(states, counts_N, d, rng)
    assert (h.sum(axis=1) == scheme.k).all()
    law = scheme.law(np.array([N]))[0]
    assert chi_square_ok(np.bincount(scheme.index(h), minlength=law.size), law, draws)


def test_weighted_sampler_at_huge_n_is_exact_in_size_and_cheap(peak_memory):
    """128 rows of n = 10^9 agents: the exponential race draws |S_l| x k clocks per row,
    under 2 MiB in all, where one clock per agent would be 128 x 10^9 float64 (1 TB)."""
    N = np.array([[4 * 10**8, 5 * 10**8, 10**8 + 7]] * 128, dtype=np.int64)
    with peak_memory() as mem:
        h = weighted_subsample(N, (1.0, 0.1, 10.0), 20, np.random.default_rng(0))
    assert mem.bytes < 2 * 2**20, mem.bytes
    assert (h.sum(axis=1) == 20).all()
    # p_x ∝ w_x N_x (the draws are almost i.i.d. at this n)
    p = np.array([0.4, 0.05, 1.0000007]) / 1.4500007
    np.testing.assert_allclose(h.mean(axis=0) / 20, p, atol=0.03)


# ---------------------------------------------------------------------------
# validators (clear ValueErrors naming the field)
# ---------------------------------------------------------------------------


def test_typed_game_validation():
    g = typed_game()
    P = np.array(g.P_l)
    P[0, 1, 0, :] = [0.5, 0.25, 0.25]  # leaks type 0 -> state 2 of type 1
    with pytest.raises(ValueError, match=r"P_l\[0, 1, 0, 2\] = 0.25: moves an agent of type 0"):
        am.TabularGame(g.P_g, P, g.r_g, g.r_l, 0.9, 3, types=[0, 0, 1], type_counts=(2, 1))
    args = (g.P_g, g.P_l, g.r_g, g.r_l, 0.9, 3)
    for types, counts, match in [
        ([0, 0, 2], (2, 1), r"types\[2\] = 2: expected a label in 0..1"),
        ([0, 0, -1], (2, 1), r"types\[2\] = -1"),
        ([0, 0, 0], (2, 1), "type 1 has no local state"),
        ([0, 0], (2, 1), r"types: expected one label per local state, shape \(3,\)"),
        ([0, 0, 1], (3, 0), r"type_counts\[1\] = 0"),
        ([0, 0, 1], (1, 1), "type_counts: sum 2 != n = 3"),
        ([0, 0, 1], None, "type_counts: a typed game needs both"),
        ([0.5, 0, 1], (2, 1), "types: expected integer labels"),
    ]:
        with pytest.raises(ValueError, match=match):
            am.TabularGame(*args, types=types, type_counts=counts)
    with pytest.raises(ValueError, match="init: a IIDInit does not keep type_counts"):
        am.TabularGame(*args, init=am.IIDInit(np.full(2, 0.5), np.full(3, 1 / 3)),
                       types=[0, 0, 1], type_counts=(2, 1))


def test_scheme_validation():
    g = typed_game()
    with pytest.raises(ValueError, match=r"sampling.ks\[1\] = 2: exceeds the population of "
                                         r"type 1 \(type_counts\[1\] = 1\)"):
        Stratified((1, 2)).bind(g)
    with pytest.raises(ValueError, match="3 sample sizes for a game with 2 type"):
        Stratified((1, 1, 1)).bind(g)
    with pytest.raises(ValueError, match=r"sampling.ks\[0\] = 0"):
        Stratified((0, 1))
    with pytest.raises(ValueError, match="sampling.k = 4: exceeds the population n = 3"):
        Uniform(4).bind(g)
    for w, match in [((1.0, -1.0, 1.0), r"sampling.w\[1\] = -1.0: expected a weight >= 0"),
                     ((1.0, float("nan"), 1.0), r"sampling.w\[1\] = nan"),
                     ((0.0, 0.0, 0.0), "sampling.w: all weights are zero"),
                     ((), "sampling.w: expected a 1-d sequence")]:
        with pytest.raises(ValueError, match=match):
            Weighted(w, 2)
    with pytest.raises(ValueError, match="sampling.w: 2 weights for a game with |S_l| = 3"):
        Weighted((1.0, 2.0), 2).bind(g)
    with pytest.raises(ValueError, match="sampling.k = 0"):
        Weighted((1.0, 2.0, 1.0), 0)


@SETTINGS
@given(st.data())
def test_property_validators(data):
    """Random labels and counts: accepted exactly when labels are 0..C-1 with none empty and
    the counts are >= 1 summing to n; k_c <= n_c is what Stratified.bind accepts."""
    d = data.draw(st.integers(1, 5))
    labels = data.draw(st.lists(st.integers(-1, 3), min_size=d, max_size=d))
    C = data.draw(st.integers(1, 4))
    counts = data.draw(st.lists(st.integers(0, 3), min_size=C, max_size=C))
    n = max(1, sum(counts))
    P_l = np.zeros((d, 1, 1, d))
    P_l[np.arange(d), 0, 0, np.arange(d)] = 1.0  # everyone stays: type-preserving
    valid = (set(labels) == set(range(C)) and all(c >= 1 for c in counts))
    try:
        g = am.TabularGame(np.ones((1, 1, 1)), P_l, np.zeros((1, 1)), np.zeros((d, 1, 1)),
                           0.5, n, types=labels, type_counts=counts)
    except ValueError as exc:
        assert not valid, exc
        return
    assert valid
    ks = data.draw(st.lists(st.integers(1, 4), min_size=C, max_size=C))
    ok = all(k <= c for k, c in zip(ks, counts, strict=True))
    try:
        Stratified(ks).bind(g)
    except ValueError as exc:
        assert not ok and "exceeds the population of type" in str(exc)
    else:
        assert ok


@SETTINGS
@given(st.data())
def test_property_samplers_conserve_types_and_sizes(data):
    """Every sampler draws exactly k agents, at most N_x per state, and (Stratified) exactly
    k_c of each type, for any counts (including n near 10^9 and empty bins)."""
    d = data.draw(st.integers(2, 5))
    labels = data.draw(st.lists(st.integers(0, d - 1), min_size=d, max_size=d))
    C = len(set(labels))
    remap = {v: i for i, v in enumerate(sorted(set(labels)))}
    types = [remap[v] for v in labels]
    big = data.draw(st.booleans())
    hi = 10**9 if big else 6
    rows = data.draw(st.integers(1, 20))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    N = rng.integers(0, hi, size=(rows, d))
    # at least 3 agents of every type
    for c in range(C):
        x = types.index(c)
        N[:, x] += 3
    ks = tuple(int(data.draw(st.integers(1, 3))) for _ in range(C))
    s = Stratified(ks, types)
    h = s.sample(N, rng)
    np.testing.assert_array_equal(type_sums(h, types), np.tile(ks, (rows, 1)))
    assert (h >= 0).all() and (h <= N).all()
    w = data.draw(st.lists(st.sampled_from([0.0, 0.1, 1.0, 7.0]), min_size=d, max_size=d))
    if not any(v > 0 for v in w):
        w[0] = 1.0
    k = int(data.draw(st.integers(1, 3 * C)))
    hw = Weighted(w, k).sample(N, rng)
    assert (hw.sum(axis=1) == k).all() and (hw >= 0).all() and (hw <= N).all()
    hu = Uniform(k).sample(N, rng)
    assert (hu.sum(axis=1) == k).all() and (hu <= N).all()


# ---------------------------------------------------------------------------
# the typed game: initial law, simulators conserve types
# ---------------------------------------------------------------------------


def test_typed_initial_law_and_conservation():
    g = typed_game(1, n_sl=4, types=(0, 1, 0, 1), type_counts=(3, 2))
    s_g, N = g.sample_init(np.random.default_rng(0), 500)
    np.testing.assert_array_equal(type_sums(N, g.types), np.tile((3, 2), (500, 1)))
    # uniform over the states of the type: mean counts n_c / |S_c|
    np.testing.assert_allclose(N.mean(axis=0), [1.5, 1.0, 1.5, 1.0], atol=0.15)
    # the exact initial law is a distribution over the typed count vectors
    ex = ExactSolver(g, sampling=Stratified((1, 1)))
    assert ex.n_counts == num_histograms(3, 2) * num_histograms(2, 2)
    assert ex.init_prob.sum() == pytest.approx(1.0)
    pi_l = random_pi_l(g, np.random.default_rng(1))
    pi_g = random_pi_g(g, Stratified((2, 1)), np.random.default_rng(2))
    tr = am.rollout_counts(g, pi_g, pi_l, 20, 30, np.random.default_rng(3), record_counts=True)
    np.testing.assert_array_equal(type_sums(tr.counts, g.types),
                                  np.broadcast_to((3, 2), (20, 30, 2)))
    tr = am.rollout_agents(g, pi_g, pi_l, 5, 10, np.random.default_rng(3), record_counts=True)
    np.testing.assert_array_equal(type_sums(tr.counts, g.types),
                                  np.broadcast_to((3, 2), (5, 10, 2)))


def test_typed_game_file_round_trip(tmp_path):
    g = typed_game(2)
    h = am.TabularGame.load(g.save(tmp_path / "g"))
    np.testing.assert_array_equal(h.types, g.types)
    assert h.type_counts == g.type_counts and h.fingerprint() == g.fingerprint()
    untyped = am.envs.make("random", n_sl=3, n=3, seed=2)
    assert untyped.fingerprint() != g.fingerprint()
    assert g.with_n(7).type_counts == (5, 2) and g.with_n(7, (4, 3)).type_counts == (4, 3)


# ---------------------------------------------------------------------------
# the exact chain against an independent per-agent brute force (n <= 3)
# ---------------------------------------------------------------------------


def sample_law_of_agents(scheme, agents, d):
    """{h: P(h)} of a scheme on the agents' states, enumerating agents one by one."""
    N = np.bincount(agents, minlength=d)
    hists = (scheme.observations(d) if isinstance(scheme, Stratified)
             else enumerate_histograms(scheme.k, d))
    if isinstance(scheme, Stratified):
        law = brute_law_subsets(N, scheme.types, scheme.ks, hists)
    elif isinstance(scheme, Weighted):
        law = brute_law_sequences(N, scheme.w, scheme.k, hists)
    else:
        law = brute_law_sequences(N, (1.0,) * d, scheme.k, hists)
    return hists, law


def brute_force_value(game, pi_g, pi_l, scheme):
    """V from the initial law, on joint states (s_g, s_1, ..., s_n): agent i has a fixed
    type (the first n_0 agents type 0, ...), starts uniform over its type's states."""
    d, n = game.n_sl, game.n
    agent_type = np.repeat(np.arange(game.n_types), game.type_counts)
    allowed = [np.flatnonzero(game.types == c) for c in agent_type]
    joints = list(itertools.product(*allowed))
    states = [(g, j) for g in range(game.n_sg) for j in joints]
    index = {s: i for i, s in enumerate(states)}
    S = len(states)
    P = np.zeros((S, S))
    r = np.zeros(S)
    K = np.einsum("xga,xgay->xgy", pi_l.table, game.P_l)
    rbar = np.einsum("xga,xga->xg", pi_l.table, game.r_l)
    for (g, j), i in index.items():
        hists, law = sample_law_of_agents(scheme, np.array(j), d)
        p_ag = np.zeros(game.n_ag)
        for h, p in zip(hists, law, strict=True):
            if p > 0:
                p_ag[pi_g.act(g, h)] += p
        r[i] = p_ag @ game.r_g[g] + np.mean([rbar[x, g] for x in j])
        p_sg = p_ag @ game.P_g[g]
        for j2 in joints:
            pj = np.prod([K[x, g, y] for x, y in zip(j, j2, strict=True)])
            for g2 in range(game.n_sg):
                P[i, index[(g2, j2)]] += p_sg[g2] * pj
    V = np.linalg.solve(np.eye(S) - game.gamma * P, r)
    mu = np.array([1.0 / game.n_sg * np.prod([1.0 / len(a) for a in allowed])
                   for _ in states])
    assert n == len(agent_type)
    return float(mu @ V)


SCHEMES = [
    Uniform(2),
    Stratified((1, 1)),
    Stratified((2, 1)),
    Weighted((1.0, 3.0, 0.5), 2),
    Weighted((0.0, 2.0, 1.0), 2),
]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.describe())
def test_exact_value_matches_agent_brute_force(scheme):
    game = typed_game(3, n_ag=3)
    rng = np.random.default_rng(4)
    pi_l = random_pi_l(game, rng)
    pi_g = random_pi_g(game, scheme, rng)
    ex = ExactSolver(game, sampling=scheme)
    assert ex.value(pi_g, pi_l) == pytest.approx(brute_force_value(game, pi_g, pi_l,
                                                                    scheme.bind(game)),
                                                 abs=1e-10)


@pytest.mark.parametrize("scheme", [Uniform(3), Weighted((1.0, 3.0), 2)],
                         ids=lambda s: s.describe())
def test_exact_value_matches_brute_force_untyped(scheme):
    game = am.envs.make("random", n_sl=2, n=3, seed=8)
    rng = np.random.default_rng(9)
    pi_l = random_pi_l(game, rng)
    pi_g = random_pi_g(game, scheme, rng)
    v = ExactSolver(game, sampling=scheme).value(pi_g, pi_l)
    assert v == pytest.approx(brute_force_value(game, pi_g, pi_l, scheme), abs=1e-10)


@pytest.mark.parametrize("scheme", SCHEMES[1:], ids=lambda s: s.describe())
@pytest.mark.parametrize("simulator", ["counts", "agents"])
def test_simulators_agree_with_the_exact_chain(scheme, simulator):
    game = typed_game(5, n_sl=4, types=(0, 0, 1, 1), type_counts=(2, 2), gamma=0.8)
    if isinstance(scheme, Weighted):
        scheme = Weighted(scheme.w + (2.0,), scheme.k)
    rng = np.random.default_rng(6)
    pi_l = random_pi_l(game, rng)
    pi_g = random_pi_g(game, scheme, rng)
    v = ExactSolver(game, sampling=scheme).value(pi_g, pi_l)
    ev = am.evaluate(game, pi_g, pi_l, rollouts=3000, horizon=70, seed=1, workers=1,
                     simulator=simulator)
    assert abs(ev.mean - v) <= 4 * ev.stderr + ev.truncation_bound


def test_weighted_equal_weights_values_equal_uniform():
    game = typed_game(7)
    rng = np.random.default_rng(8)
    pi_l = random_pi_l(game, rng)
    pu = random_pi_g(game, Uniform(2), rng)
    pw = am.GlobalPolicy(2, pu.actions, game.n_ag, game=game, sampling=Weighted((3, 3, 3), 2))
    ex = ExactSolver(game, 2)
    assert ex.value(pw, pi_l) == ex.value(pu, pi_l)
    a = am.evaluate(game, pu, pi_l, rollouts=200, horizon=30, seed=2)
    b = am.evaluate(game, pw, pi_l, rollouts=200, horizon=30, seed=2)
    assert (a.mean, a.stderr) == (b.mean, b.stderr)


def test_executing_under_another_scheme():
    """A uniform policy executed under Weighted / Stratified: the exact value is the
    value of the re-indexed policy; a stratified policy cannot run under Uniform."""
    game = typed_game(9)
    rng = np.random.default_rng(10)
    pi_l = random_pi_l(game, rng)
    pu = random_pi_g(game, Uniform(2), rng)
    ex = ExactSolver(game, 2)
    w = Weighted((1.0, 5.0, 0.2), 2)
    v_w = ex.value(pu, pi_l, sampling=w)
    assert v_w == pytest.approx(brute_force_value(game, pu, pi_l, w), abs=1e-10)
    st_ = Stratified((1, 1))
    v_s = ex.value(pu, pi_l, sampling=st_)
    assert v_s == pytest.approx(brute_force_value(game, pu, pi_l, st_.bind(game)), abs=1e-10)
    ev = am.evaluate(game, pu, pi_l, rollouts=3000, horizon=70, seed=3, sampling=w)
    assert abs(ev.mean - v_w) <= 4 * ev.stderr + ev.truncation_bound
    assert ev.extra["sampling"]["scheme"] == "weighted"
    ps = random_pi_g(game, st_, rng)
    with pytest.raises(ValueError, match="cannot act on its samples"):
        am.evaluate(game, ps, pi_l, rollouts=10, horizon=5, sampling=Uniform(2))


@pytest.mark.parametrize("scheme", [Stratified((1, 1)), Weighted((1.0, 4.0, 0.5), 2)],
                         ids=lambda s: s.describe())
def test_nash_gap_under_a_scheme(scheme):
    """Both comparators: restricted (enumerated exactly, on the scheme's samples) <=
    full information; the restricted best response is at least every random policy."""
    game = typed_game(11)
    rng = np.random.default_rng(12)
    pi_l = random_pi_l(game, rng)
    pi_g = random_pi_g(game, scheme, rng)
    ex = ExactSolver(game, sampling=scheme)
    ng = ex.nash_gap(pi_g, pi_l, refine_local=False)
    assert ng.gap_g_exact and ng.gap_g is not None
    assert -1e-12 <= ng.gap_g <= ng.gap_g_full + 1e-12
    br = ng.br_g
    assert br is not None and br.policy.sampling == scheme.bind(game)
    for _ in range(5):
        other = random_pi_g(game, scheme, rng)
        assert ex.value(other, pi_l) <= br.value + 1e-12
    assert br.value == pytest.approx(ex.value(br.policy, pi_l), abs=1e-12)
    assert ng.summary()["sampling"] == scheme.describe()


def test_full_information_policy_of_a_typed_game_sees_the_counts():
    game = typed_game(13)
    pi_l = random_pi_l(game, np.random.default_rng(0))
    ex = ExactSolver(game, sampling=Stratified((1, 1)))
    br = ex.full_info_best_response(pi_l)
    assert br.policy.sampling == Stratified(game.type_counts).bind(game)
    assert br.policy.actions.shape == (game.n_sg, ex.n_counts)
    # acting on the full count vector in simulation reaches the exact value
    ev = am.evaluate(game, br.policy, pi_l, rollouts=3000, horizon=70, seed=0)
    assert abs(ev.mean - br.value) <= 4 * ev.stderr + ev.truncation_bound


def test_stratified_histograms_order():
    H = stratified_histograms((1, 2), (0, 1, 0, 1))
    assert H.shape == (2 * 3, 4)
    # type 0 most significant; rank 0 of H_k is (0, ..., 0, k) (lexicographic ranks)
    assert H[0].tolist() == [0, 0, 1, 2] and H[-1].tolist() == [1, 2, 0, 0]
    assert H[2].tolist() == [0, 2, 1, 0]


def test_policy_files_carry_the_scheme(tmp_path):
    game = typed_game(14)
    rng = np.random.default_rng(15)
    for scheme in (Uniform(2), Stratified((2, 1)), Weighted((1.0, 2.0, 0.0), 2)):
        pol = random_pi_g(game, scheme, rng)
        path = pol.save(tmp_path / f"{scheme.kind}.npz", game)
        back = am.GlobalPolicy.load(path, game)
        assert back.sampling == pol.sampling
        np.testing.assert_array_equal(back.actions, pol.actions)
        h = scheme.bind(game).observations(game.n_sl)[-1]
        assert back.act(0, h) == pol.act(0, h)
    with pytest.raises(ValueError, match="policy made for sampling Stratified"):
        am.GlobalPolicy.load(tmp_path / "stratified.npz", game, sampling=Uniform(3))
    with pytest.raises(ValueError, match="policy made for sampling Weighted"):
        am.GlobalPolicy.load(tmp_path / "weighted.npz", game, sampling=Weighted((1, 1, 1), 2))
    # a stratified policy does not fit a game with other types
    other = typed_game(14, types=(0, 1, 1), type_counts=(1, 2))
    with pytest.raises(ValueError, match="scheme does not fit game"):
        am.GlobalPolicy.load(tmp_path / "stratified.npz", other, strict=False)
    # a version-1 file (no scheme) loads as Uniform(k)
    from altmarl.io import load_npz, save_npz

    meta, arrays = load_npz(tmp_path / "uniform.npz")
    meta["version"] = 1
    del meta["sampling"]
    old = am.GlobalPolicy.load(save_npz(tmp_path / "v1.npz", meta, arrays), game)
    assert old.sampling == Uniform(2)
    with pytest.raises(ValueError, match="per-type sums"):
        random_pi_g(game, Stratified((2, 1)), rng).act(0, [1, 1, 0])


def test_two_type_warehouse():
    g = am.envs.make("warehouse", types=2, n=10, zones=3, fast_share=0.7)
    assert g.type_counts == (7, 3) and g.types.tolist() == [0, 0, 0, 1, 1, 1]
    assert (g.n_sl, g.n_ag, g.n_al) == (6, 3, 3)
    # fast robots move more often than slow ones; slow ones earn more on site
    move = g.P_l[:, 0, 1, :]
    assert move[0, 1] > move[3, 4] and g.r_l[3, 0, 0] > g.r_l[0, 0, 0]
    s_g, N = g.sample_init(np.random.default_rng(0), 50)
    np.testing.assert_array_equal(type_sums(N, g.types), np.tile((7, 3), (50, 1)))
    small = am.envs.make("warehouse", types=2, n=3, zones=2, fast_share=0.5)
    ex = ExactSolver(small, sampling=Stratified((1, 1)))
    pi_l = am.LocalPolicy.uniform(small)
    pol = am.g_learn(small, pi_l, sampling=Stratified((1, 1)), m=None)
    v = ex.value(pol, pi_l)
    ev = am.evaluate(small, pol, pi_l, rollouts=2000, horizon=80, seed=0)
    assert abs(ev.mean - v) <= 4 * ev.stderr + ev.truncation_bound
    with pytest.raises(ValueError, match="types = 3"):
        am.envs.make("warehouse", types=3)
    with pytest.raises(ValueError, match="fast_share"):
        am.envs.make("warehouse", types=2, fast_share=1.0)


def test_uniform_and_weighted_share_the_histogram_observations():
    """Both observe ``H_k`` by rank: same key, size, enumeration, index and check."""
    u, w = Uniform(3), Weighted((1.0, 2.0, 0.5), 3)
    assert u.observation_key == w.observation_key == ("H", 3)
    assert u.num_observations(3) == w.num_observations(3) == num_histograms(3, 3) == 10
    H = enumerate_histograms(3, 3)
    assert np.array_equal(w.observations(3), H) and np.array_equal(u.observations(3), H)
    assert w.index(H).tolist() == u.index(H).tolist() == list(range(10))
    for scheme in (u, w):
        scheme.check_histograms(H)
        with pytest.raises(ValueError, match="k = 3 samples, got sums"):
            scheme.check_histograms(np.array([[1, 1, 0]]))
