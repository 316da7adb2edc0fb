"""Subsampling schemes of the global agent (SPEC 3, SPEC 12, paper Appendix H) and their
sampling primitives.

The global agent sees the count vector ``h`` over ``S_l`` of a sample of local agents drawn
afresh every step. A *scheme* says how the sample is drawn; each scheme gives

1. a sampler of ``h`` given the counts ``N``, batched over rollouts (``scheme.sample``),
   exact in distribution and with a cost independent of ``n``; and one on per-agent states
   (``scheme.sample_agents``) for the per-agent simulator;
2. the exact law of ``h`` given ``N`` (``scheme.law``), for the exact chain of SPEC 7;
3. its observation space: the histograms it can produce, enumerated and indexed
   (``scheme.observations`` / ``scheme.index``), which is the column space of a
   :class:`~altmarl.policies.GlobalPolicy`.

The schemes:

* :class:`Uniform` ``(k)`` — a uniform ``k``-subset without replacement (the paper's scheme,
  the default everywhere): ``h ~ MultivariateHypergeometric(N, k)``, observations ``H_k``.
* :class:`Stratified` ``((k_0, ..., k_{C-1}))`` — independent uniform ``k_c``-subsets within
  each type of a typed game (``TabularGame(..., types=, type_counts=)``): the law is a product
  of multivariate hypergeometrics, one per type; observations are the histograms with
  per-type sums ``k_c``, ``prod_c C(k_c + |S_c| - 1, |S_c| - 1)`` of them, indexed in mixed
  radix (type 0 most significant, each type's digit its rank in ``H_{k_c}`` over ``S_c``).
* :class:`Weighted` ``(w, k)`` — successive sampling without replacement: each of the ``k``
  draws picks one of the remaining agents with probability proportional to ``w[its
  state]`` (draw ``j`` picks state ``x`` with probability ``w_x M_x / sum_y w_y M_y``,
  ``M`` the agents not yet drawn; when every remaining agent has weight 0, uniformly among
  them). Observations ``H_k``. Equal weights *are* :class:`Uniform` (same sampler, same law,
  same numbers).

The primitives (:func:`multivariate_hypergeometric`, :func:`sequential_subsample`,
:func:`subsample_histograms`, :func:`hypergeometric_weights`,
:func:`successive_sampling_law`, :func:`weighted_subsample`) are public; the count simulator
(:mod:`altmarl.simulate`) and the exact chain (:mod:`altmarl.exact.chain`) use them through
the schemes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from altmarl._random import check_generator
from altmarl._validate import check_int
from altmarl.histogram import enumerate_histograms, num_histograms, rank
from altmarl.limits import MAX_TABLE_ENTRIES

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: NumPy's hypergeometric sampler needs ngood and nbad (each) below this bound; the Numba
#: kernel needs every row's total below it (and otherwise leaves the draws to NumPy)
HYPERGEOM_LIMIT = 10**9
#: without the Numba kernel (:mod:`altmarl.sampling_kernels`), up to this many rows the
#: per-bin hypergeometric draws are made one scalar call per row (same sampler, same order,
#: hence the same numbers as the array call): NumPy's array ``hypergeometric`` has a fixed
#: cost of ~30 us per call, a scalar call ~1 us
SCALAR_ROWS = 16
#: float entries per batch of stacked arrays in the exact laws
LAW_BATCH_ENTRIES = 1 << 23


# ---------------------------------------------------------------------------
# primitives: uniform subsamples (SPEC 3)
# ---------------------------------------------------------------------------


@cache
def hypergeometric_kernel() -> Any:
    """:func:`altmarl.sampling_kernels.hypergeometric_rows` (NumPy's exported C sampler
    driven by Numba) after a self-check that it gives the NumPy calls' numbers and leaves
    the generator in the same state; ``None`` when Numba, the symbol or the check fails
    (then the NumPy calls are used: the same numbers)."""
    try:
        from altmarl.sampling_kernels import hypergeometric_rows

        colors = np.array([[0, 3, 9, 988], [250, 250, 250, 250], [1, 0, 0, 0],
                           [7, 5, 11, 2], [0, 0, 0, 0]], dtype=np.int64)
        left = np.array([10, 600, 1, 25, 0], dtype=np.int64)
        a, b = np.random.default_rng(20261204), np.random.default_rng(20261204)
        want = _hypergeometric_numpy(colors, left, a)
        got = np.empty_like(colors)
        ok = hypergeometric_rows(b.bit_generator.ctypes.bit_generator.value, colors, left, got,
                                 HYPERGEOM_LIMIT)
        if not (ok and np.array_equal(want, got) and a.random() == b.random()):
            return None  # pragma: no cover - a NumPy whose sampler differs
        return hypergeometric_rows
    except Exception:  # pragma: no cover - a NumPy or Numba without the symbol
        return None


def _hypergeometric_numpy(flat: IntArray, left0: IntArray,
                          rng: np.random.Generator) -> IntArray:
    """:func:`multivariate_hypergeometric` on ``(rows, C)`` colours by NumPy calls."""
    rows, C = flat.shape
    if rows <= SCALAR_ROWS:
        cols = flat.T.tolist()
        rem = flat.sum(axis=1).tolist()
        lft = left0.tolist()
        out = []
        for c in range(C - 1):
            col = cols[c]
            row = []
            for r in range(rows):
                good = col[r]
                bad = rem[r] - good
                v = int(rng.hypergeometric(good, bad, lft[r]))
                row.append(v)
                lft[r] -= v
                rem[r] = bad
            out.append(row)
        out.append(lft)
        return np.array(out, dtype=np.int64).T.copy()
    h = np.empty((rows, C), dtype=np.int64)
    remaining = flat.sum(axis=1)
    left = left0.copy()
    for c in range(C - 1):
        ngood = flat[:, c]
        nbad = remaining - ngood
        draw = rng.hypergeometric(ngood, nbad, left)
        h[:, c] = draw
        left -= draw
        remaining = nbad
    h[:, C - 1] = left
    return h


def multivariate_hypergeometric(colors: IntArray, nsample: ArrayLike,
                                rng: np.random.Generator) -> IntArray:
    """Multivariate hypergeometric draws, vectorized over leading axes (SPEC 3): how many of
    ``nsample[...]`` items drawn without replacement from an urn with ``colors[..., c]``
    items of colour ``c`` have each colour, as conditional hypergeometric draws colour by
    colour: ``out[..., c] ~ Hypergeometric(colors[..., c], remaining - colors[..., c],
    left)``. Needs ``0 <= nsample <= colors.sum(-1)``, every count and every remaining
    total (the later colours' counts summed) below ``10^9`` (NumPy's bound on ngood and
    nbad; NumPy's ``ValueError`` otherwise). ``rng`` a
    ``Generator`` (a ``TypeError`` otherwise).

    Stream order: colours outer, rows (leading axes, C order) inner: the numbers of one
    ``rng.hypergeometric`` array call per colour. A Numba kernel makes them with NumPy's
    own C sampler, one call per draw (about 4x cheaper than the array calls at 125 rows,
    and it releases the GIL); without it, up to ``SCALAR_ROWS`` rows are scalar calls (the
    same numbers, ~30x cheaper per call than the array call at small batches)."""
    colors = np.asarray(colors, dtype=np.int64)
    if colors.ndim == 0 or colors.shape[-1] == 0:
        raise ValueError(f"colors: expected an array with at least one colour on its last "
                         f"axis, got shape {colors.shape}")
    C = colors.shape[-1]
    lead = colors.shape[:-1]
    flat = np.require(colors.reshape(-1, C), requirements=["C", "W"])  # one kernel type
    rows = flat.shape[0]
    # a writable copy: a read-only broadcast view would compile a second kernel
    left0 = np.array(np.broadcast_to(np.asarray(nsample, dtype=np.int64), lead).reshape(rows),
                     dtype=np.int64)
    bitgen = check_generator(rng).bit_generator
    kern = hypergeometric_kernel()
    if kern is not None:
        out = np.empty((rows, C), dtype=np.int64)
        with bitgen.lock:  # NumPy's own calls hold it too: threads sharing rng stay safe
            ok = kern(bitgen.ctypes.bit_generator.value, flat, left0, out, HYPERGEOM_LIMIT)
        if ok:
            return out.reshape(colors.shape)
    if flat.size and (flat.min() < 0 or flat.max() >= HYPERGEOM_LIMIT):
        raise ValueError(f"colors: expected counts in [0, {HYPERGEOM_LIMIT}) (NumPy's "
                         f"hypergeometric bound), got {flat.min()} .. {flat.max()}")
    return _hypergeometric_numpy(flat, left0, rng).reshape(colors.shape)


def sequential_subsample(counts: IntArray, u: FloatArray) -> IntArray:
    """Histogram of ``k = len(u)`` agents drawn one at a time without replacement from each
    row of ``counts``; draw ``j`` picks a bin by inverse CDF of the uniforms ``u[j]`` (shape
    ``(k, R)``). Exact multivariate hypergeometric law for any ``n``; callers that need
    common random numbers pass their own ``u``."""
    R, d = counts.shape
    # bins lead (contiguous rows of length R); the bin of draw j is the number of partial
    # sums rem[0] + ... + rem[i], i < d - 1, that are <= u[j] * tot (the same comparisons as
    # a cumsum over the bins, ~3x faster than cumsum/sum on a short axis)
    remT = np.ascontiguousarray(counts.T, dtype=np.float64)
    tot = remT.sum(axis=0)
    rows = np.arange(R)
    hT = np.zeros((d, R), dtype=np.int64)
    for j in range(u.shape[0]):
        thr = u[j] * tot
        c = np.zeros(R)
        x = np.zeros(R, dtype=np.intp)
        for i in range(d - 1):
            c += remT[i]
            x += c <= thr
        # u < 1 and integer counts: bin x is never empty
        hT[x, rows] += 1
        remT[x, rows] -= 1
        tot -= 1
    return np.ascontiguousarray(hT.T)


#: the methods of :func:`subsample_histograms`
SUBSAMPLE_METHODS = ("auto", "hypergeometric", "sequential", "marginals")


def subsample_histograms(
    counts: IntArray, k: int, rng: np.random.Generator, method: str = "auto"
) -> IntArray:
    """Histogram of a uniform ``k``-subset drawn without replacement from each row of
    ``counts`` (multivariate hypergeometric, SPEC 3), vectorized over rows. Exact for any
    ``n``. ``counts`` is ``(R, |S_l|)`` or one population ``(|S_l|,)`` (then the result is
    1-d too).

    ``method``: ``"hypergeometric"`` (:func:`multivariate_hypergeometric`: conditional
    draws per bin; NumPy needs populations below 10^9), ``"sequential"``
    (:func:`sequential_subsample`: the ``k`` agents drawn one at a time; any ``n``, cost
    ``O(k)``), ``"marginals"`` (NumPy's ``multivariate_hypergeometric`` row by row: ~20x
    cheaper than the batched sampler for a single population, another stream), or
    ``"auto"``: ``"marginals"`` for one 1-d population, else ``"hypergeometric"``, and
    ``"sequential"`` when ``n >= 10^9``.
    """
    if method not in SUBSAMPLE_METHODS:
        raise ValueError(f"method = {method!r}: expected one of {list(SUBSAMPLE_METHODS)}")
    arr = np.asarray(counts, dtype=np.int64)
    if arr.ndim == 1:
        if method == "auto" and int(arr.sum()) < HYPERGEOM_LIMIT:
            method = "marginals"
        return subsample_histograms(arr[None, :], k, rng, method)[0]
    n_tot = arr.sum(axis=1)
    if np.any(n_tot < k):
        raise ValueError(f"k = {k}: expected k <= n (population sizes {np.unique(n_tot)})")
    if method == "marginals":
        return np.stack([np.asarray(rng.multivariate_hypergeometric(row, k, method="marginals"),
                                    dtype=np.int64) for row in arr])
    if np.all(n_tot == k):
        return arr.copy()
    use_hyper = n_tot.max() < HYPERGEOM_LIMIT
    if method == "hypergeometric" and not use_hyper:
        raise ValueError(f"method = 'hypergeometric' needs n < {HYPERGEOM_LIMIT}")
    if use_hyper and method != "sequential":
        return multivariate_hypergeometric(arr, k, rng)
    return sequential_subsample(arr, rng.random((k, arr.shape[0])))


def hypergeometric_weights(states: IntArray, hists: IntArray) -> FloatArray:
    """``W[N, h] = prod_x C(N_x, h_x) / C(n, k)`` for every count vector ``N`` (rows of
    ``states``, each summing to ``n``) and histogram ``h`` (rows of ``hists``, each summing
    to ``k``): the law of the histogram of a uniform ``k``-subset drawn without replacement
    (SPEC 3). Rows sum to 1 (renormalized against round-off)."""
    N = np.asarray(states, dtype=np.int64)
    H = np.asarray(hists, dtype=np.int64)
    out = np.empty((N.shape[0], H.shape[0]))
    lgN = gammaln(N + 1.0)  # (M, d)
    lgH = gammaln(H + 1.0)  # (Hk, d)
    step = max(1, LAW_BATCH_ENTRIES // max(1, H.size))
    for lo in range(0, N.shape[0], step):
        Nb = N[lo:lo + step, None, :]
        diff = Nb - H[None, :, :]
        ok = (diff >= 0).all(axis=-1)
        logc = (lgN[lo:lo + step, None, :] - lgH[None, :, :]
                - gammaln(np.maximum(diff, 0) + 1.0)).sum(axis=-1)
        w = np.where(ok, np.exp(logc - logc.max(axis=1, keepdims=True, where=ok,
                                                   initial=-np.inf)), 0.0)
        out[lo:lo + step] = w / w.sum(axis=1, keepdims=True)
    return out


# ---------------------------------------------------------------------------
# primitives: successive (weighted) sampling (SPEC 12)
# ---------------------------------------------------------------------------


def successive_sampling_law(states: IntArray, w: ArrayLike, k: int) -> FloatArray:
    """``W[N, h]``: the law of the histogram ``h in H_k`` of ``k`` successive draws without
    replacement from each count vector ``N`` (rows of ``states``), draw ``j`` picking state
    ``x`` with probability ``w_x M_x / sum_y w_y M_y`` (``M = N`` minus the agents already
    drawn; ``M_x / sum_y M_y`` when every remaining agent has weight 0). SPEC 12.

    By recursion over the draws: ``P_{t+1}(h + e_x) += P_t(h) p_x(N, h)`` over ``h in H_t``,
    ``t = 0..k-1``; cost ``O(|H_k| |S_l| k)`` per ``N``, independent of ``n``. Columns in
    :func:`altmarl.histogram.rank` order. Rows need ``sum N >= k``."""
    N = np.asarray(states, dtype=np.int64)
    wv = np.asarray(w, dtype=np.float64)
    M, d = N.shape
    k = int(k)
    levels = [enumerate_histograms(t, d) for t in range(k + 1)]
    eye = np.eye(d, dtype=np.int64)
    kids = [[rank(levels[t] + eye[x], t + 1) for x in range(d)] for t in range(k)]
    size = levels[k].shape[0]
    out = np.empty((M, size))
    step = max(1, LAW_BATCH_ENTRIES // max(1, size * d))
    for lo in range(0, M, step):
        Nb = N[lo:lo + step].astype(np.float64)
        B = Nb.shape[0]
        P = np.ones((B, 1))
        for t in range(k):
            rem = np.maximum(Nb[:, None, :] - levels[t][None, :, :], 0.0)  # (B, |H_t|, d)
            mass = rem * wv
            Z = mass.sum(axis=-1)
            empty = Z <= 0.0
            if empty.any():  # only weight-0 agents remain: uniform among them
                mass = np.where(empty[..., None], rem, mass)
                Z = np.where(empty, rem.sum(axis=-1), Z)
            p = mass / np.where(Z > 0.0, Z, 1.0)[..., None]
            nxt = np.zeros((B, levels[t + 1].shape[0]))
            for x in range(d):
                nxt[:, kids[t][x]] += P * p[..., x]
            P = nxt
        out[lo:lo + step] = P
    return out


def weighted_subsample(counts: IntArray, w: ArrayLike, k: int,
                       rng: np.random.Generator) -> IntArray:
    """Histograms of ``k`` successive weighted draws without replacement from each row of
    ``counts`` (``(R, |S_l|)``), the law of :func:`successive_sampling_law` (SPEC 12).

    Drawn as an exponential race over state bins: every agent of state ``x`` has an
    independent ``Exp(w_x)`` clock and the sample is the first ``k`` to ring (by
    memorylessness the next to ring is agent ``i`` with probability ``w_i / sum w`` among
    those left: successive sampling). The ``i``-th ring of bin ``x`` is at
    ``sum_{j <= i} E_j / ((M_x - j + 1) w_x)``, so each row costs ``|S_l| k`` exponentials
    and one partial sort, independent of ``n``. Weight-0 agents come last, uniformly
    (:func:`multivariate_hypergeometric` of what is left). Exactly ``k`` per row."""
    N = np.asarray(counts, dtype=np.int64)
    wv = np.asarray(w, dtype=np.float64)
    R, d = N.shape
    pos = wv > 0.0
    Np = np.where(pos[None, :], N, 0)
    depth = int(min(k, max(1, int(Np.max(initial=0)))))
    steps = np.arange(depth, dtype=np.int64)
    left = Np[:, :, None] - steps  # agents of bin x left before its (i+1)-th ring
    rate = np.where(left > 0, left * wv[None, :, None], 0.0)
    E = rng.standard_exponential((R, d, depth))
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = np.where(rate > 0.0, E / np.where(rate > 0.0, rate, 1.0), np.inf)
    times = np.cumsum(gaps, axis=2).reshape(R, d * depth)
    kk = min(k, d * depth)
    sel = np.argpartition(times, kk - 1, axis=1)[:, :kk]
    hit = np.isfinite(np.take_along_axis(times, sel, axis=1))
    flat = (np.arange(R)[:, None] * d + sel // depth)[hit]
    h = np.bincount(flat, minlength=R * d).reshape(R, d).astype(np.int64)
    short = k - h.sum(axis=1)
    if (short > 0).any():
        rows = np.flatnonzero(short > 0)
        rest = np.where(pos[None, :], 0, N[rows])
        h[rows] += multivariate_hypergeometric(rest, short[rows], rng)
    return h


# ---------------------------------------------------------------------------
# typed populations (SPEC 12)
# ---------------------------------------------------------------------------


def type_groups(types: ArrayLike) -> tuple[IntArray, ...]:
    """The local states of each type, ``groups[c]`` in increasing order (``types[s_l]`` the
    type of state ``s_l``, labels ``0..C-1``)."""
    t = np.asarray(types, dtype=np.int64)
    C = int(t.max()) + 1 if t.size else 0
    return tuple(np.flatnonzero(t == c).astype(np.int64) for c in range(C))


def type_sums(counts: ArrayLike, types: ArrayLike) -> IntArray:
    """Per-type sums of count vectors: ``out[..., c] = sum_{x: types[x] = c} counts[..., x]``."""
    arr = np.asarray(counts, dtype=np.int64)
    return np.stack([arr[..., g].sum(axis=-1) for g in type_groups(types)], axis=-1)


def stratified_histograms(ks: tuple[int, ...], types: ArrayLike) -> IntArray:
    """Every histogram over ``S_l`` with per-type sums ``ks`` (the observations of
    :class:`Stratified`), ``(prod_c |H_{k_c}(S_c)|, |S_l|)``, row ``i`` of index ``i``
    (mixed radix, type 0 most significant; each type's digit is the rank of its part in
    ``H_{k_c}`` over ``S_c``)."""
    groups = type_groups(types)
    sizes = [num_histograms(kc, g.size) for kc, g in zip(ks, groups, strict=True)]
    total = math.prod(sizes)
    out = np.zeros((total, len(np.asarray(types))), dtype=np.int64)
    idx = np.arange(total, dtype=np.int64)
    stride = total
    for kc, g, m in zip(ks, groups, sizes, strict=True):
        stride //= m
        out[:, g] = enumerate_histograms(kc, g.size)[(idx // stride) % m]
    return out


# ---------------------------------------------------------------------------
# the schemes
# ---------------------------------------------------------------------------


def _check_game_k(field: str, k: int, n: int) -> None:
    if k > n:
        raise ValueError(f"{field} = {k}: exceeds the population n = {n} (expected 1 <= k <= n)")


class HistogramObservations:
    """The observations of a scheme that samples ``k`` agents from the whole population
    (:class:`Uniform`, :class:`Weighted`): histograms ``h`` in ``H_k`` (SPEC 2, 3), indexed
    by their rank."""

    k: int

    @property
    def observation_key(self) -> tuple[Any, ...]:
        """Identifies the observation space (schemes with equal keys index ``h`` alike)."""
        return ("H", self.k)

    def num_observations(self, d: int) -> int:
        """``|H_k| = C(k + d - 1, d - 1)``."""
        return num_histograms(self.k, d)

    def observations(self, d: int) -> IntArray:
        """``H_k`` in rank order, ``(|H_k|, d)``."""
        return enumerate_histograms(self.k, d)

    def index(self, h: ArrayLike) -> IntArray:
        """The rank of histograms ``h`` (``(..., d)``) in ``H_k``."""
        return rank(h, self.k)

    def check_histograms(self, h: IntArray) -> None:
        """``ValueError`` unless every histogram sums to ``k``."""
        sums = h.sum(axis=-1)
        if np.any(sums != self.k):
            raise ValueError(f"hist: expected histograms of k = {self.k} samples, got sums "
                             f"{np.unique(sums)}")


@dataclass(frozen=True)
class Uniform(HistogramObservations):
    """A uniform ``k``-subset of the ``n`` agents without replacement, fresh every step (SPEC
    3; the paper's scheme and the default everywhere). Observations: ``H_k``."""

    k: int

    kind = "uniform"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_int("sampling.k", self.k, 1))

    def bind(self, game: Any) -> Uniform:
        """This scheme, checked against ``game`` (``k <= n``)."""
        _check_game_k("sampling.k", self.k, int(game.n))
        return self

    # --- sampling -------------------------------------------------------------
    def sample(self, counts: IntArray, rng: np.random.Generator,
               n: int | None = None) -> IntArray:
        """``h ~ MultivariateHypergeometric(N, k)`` for each row of ``counts`` (``(R, d)``,
        rows summing to ``n``), exact for any ``n`` (SPEC 3)."""
        if n is None:
            return subsample_histograms(counts, self.k, rng)
        if self.k == n:
            return counts
        if n < HYPERGEOM_LIMIT:  # rows of a simulation: every row sums to n, no checks needed
            return multivariate_hypergeometric(counts, self.k, rng)
        return subsample_histograms(counts, self.k, rng)

    def sample_agents(self, states: IntArray, counts: IntArray, d: int,
                      rng: np.random.Generator) -> IntArray:
        """The sample's histogram from per-agent states ``(R, n)`` (``counts`` their count
        vectors): the ``k`` agents with the smallest of ``n`` uniform keys."""
        if self.k == states.shape[1]:
            return counts
        return agent_histograms(states, self.select_agents(states, rng), d)

    def select_agents(self, states: IntArray, rng: np.random.Generator) -> IntArray:
        """Indices ``(R, k)`` of the sampled agents (unordered): the ``k`` smallest of ``n``
        uniform keys per row."""
        R, n = states.shape
        return np.argpartition(rng.random((R, n)), self.k - 1, axis=1)[:, :self.k]

    def law(self, states: IntArray) -> FloatArray:
        """``W[N, h] = P(h | N)`` (multivariate hypergeometric), ``(M, |H_k|)``."""
        S = np.asarray(states, dtype=np.int64)
        if np.all(S.sum(axis=1) == self.k):
            return _identity_law(S, self.k)
        return hypergeometric_weights(S, self.observations(S.shape[1]))

    # --- description ----------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """``{"scheme": "uniform", "k": k}``."""
        return {"scheme": "uniform", "k": self.k}

    def describe(self) -> str:
        return f"Uniform(k={self.k})"


def agent_histograms(states: IntArray, idx: IntArray, d: int) -> IntArray:
    """Histograms ``(R, d)`` of the agents ``idx`` (``(R, k)``) of each row of ``states``."""
    R = states.shape[0]
    offsets = (np.arange(R) * d)[:, None]
    rows = np.arange(R)[:, None]
    return np.bincount((states[rows, idx] + offsets).ravel(), minlength=R * d).reshape(R, d)


def _identity_law(states: IntArray, k: int) -> FloatArray:
    """The law of a sample of everyone (``k = n``): a one-hot row per count vector."""
    out = np.zeros((states.shape[0], num_histograms(k, states.shape[1])))
    out[np.arange(states.shape[0]), rank(states, k)] = 1.0
    return out


@dataclass(frozen=True)
class Stratified:
    """Independent uniform ``k_c``-subsets without replacement within each type ``c`` of a
    typed game (SPEC 12). The law of ``h`` given ``N`` is a product of multivariate
    hypergeometrics, one per type. Observations: histograms with per-type sums ``k_c``
    (:func:`stratified_histograms`).

    ``types`` (the type of each local state) is filled in by :meth:`bind`; an unbound scheme
    knows only ``ks``."""

    ks: tuple[int, ...]
    types: tuple[int, ...] | None = None

    kind = "stratified"

    def __post_init__(self) -> None:
        raw = self.ks
        if isinstance(raw, int | np.integer) or not hasattr(raw, "__len__") or len(raw) == 0:
            raise ValueError(f"sampling.ks = {raw!r}: expected a non-empty sequence of "
                             "per-type sample sizes (k_0, ..., k_{C-1})")
        ks = tuple(check_int(f"sampling.ks[{c}]", v, 1) for c, v in enumerate(raw))
        object.__setattr__(self, "ks", ks)
        if self.types is not None:
            t = tuple(int(v) for v in np.asarray(self.types, dtype=np.int64).ravel())
            if sorted(set(t)) != list(range(len(ks))):
                raise ValueError(f"sampling.types = {list(t)}: expected labels 0..{len(ks) - 1} "
                                 f"(one per entry of ks), each used")
            object.__setattr__(self, "types", t)

    @property
    def k(self) -> int:
        """The total sample size ``sum_c k_c``."""
        return sum(self.ks)

    def bind(self, game: Any) -> Stratified:
        """This scheme with ``game``'s types, checked: ``C`` entries, ``k_c <= n_c``."""
        counts = tuple(int(v) for v in game.type_counts)
        if len(counts) != len(self.ks):
            raise ValueError(f"sampling.ks = {list(self.ks)}: {len(self.ks)} sample sizes for a "
                             f"game with {len(counts)} type(s) (type_counts = {list(counts)})")
        for c, (kc, nc) in enumerate(zip(self.ks, counts, strict=True)):
            if kc > nc:
                raise ValueError(f"sampling.ks[{c}] = {kc}: exceeds the population of type {c} "
                                 f"(type_counts[{c}] = {nc})")
        types = tuple(int(v) for v in np.asarray(game.types).ravel())
        if self.types is not None and self.types != types:
            raise ValueError(f"sampling.types = {list(self.types)}: made for other types than "
                             f"game {game.name!r} ({list(types)})")
        return self if self.types == types else Stratified(self.ks, types)

    def _types(self) -> tuple[int, ...]:
        if self.types is None:
            raise ValueError("Stratified: unbound scheme (no types); call scheme.bind(game) "
                             "or pass the game")
        return self.types

    # --- observations ---------------------------------------------------------
    @property
    def observation_key(self) -> tuple[Any, ...]:
        if len(self.ks) == 1:  # one type: the histograms of H_k, in rank order
            return ("H", self.k)
        return ("stratified", self.ks, self._types())

    def num_observations(self, d: int) -> int:
        """``prod_c C(k_c + |S_c| - 1, |S_c| - 1)``."""
        groups = type_groups(self._types())
        return math.prod(num_histograms(kc, g.size) for kc, g in zip(self.ks, groups,
                                                                     strict=True))

    def observations(self, d: int) -> IntArray:
        """Every histogram with per-type sums ``k_c``, in index order."""
        return stratified_histograms(self.ks, self._types())

    def index(self, h: ArrayLike) -> IntArray:
        """Mixed-radix index of histograms ``h`` (``(..., d)``) with per-type sums ``k_c``."""
        arr = np.asarray(h, dtype=np.int64)
        groups = type_groups(self._types())
        out = np.zeros(arr.shape[:-1], dtype=np.int64)
        for kc, g in zip(self.ks, groups, strict=True):
            out *= num_histograms(kc, g.size)
            out += rank(arr[..., g], kc)
        return out

    def check_histograms(self, h: IntArray) -> None:
        """``ValueError`` unless every histogram has per-type sums ``k_c``."""
        sums = type_sums(h, self._types())
        if np.any(sums != np.asarray(self.ks)):
            bad = sums.reshape(-1, len(self.ks))[
                (sums.reshape(-1, len(self.ks)) != np.asarray(self.ks)).any(axis=1)][0]
            raise ValueError(f"hist: expected per-type sums ks = {list(self.ks)} "
                             f"(Stratified), got {bad.tolist()}")

    # --- sampling -------------------------------------------------------------
    def sample(self, counts: IntArray, rng: np.random.Generator,
               n: int | None = None) -> IntArray:
        """For each type ``c``, ``h[S_c] ~ MultivariateHypergeometric(N[S_c], k_c)``, types
        in order (exact for any ``n``)."""
        N = np.asarray(counts, dtype=np.int64)
        h = np.empty_like(N)
        for kc, g in zip(self.ks, type_groups(self._types()), strict=True):
            sub = N[..., g]
            tot = sub.sum(axis=-1)
            if np.all(tot == kc):
                h[..., g] = sub
            elif tot.max() < HYPERGEOM_LIMIT:
                h[..., g] = multivariate_hypergeometric(sub, kc, rng)
            else:
                h[..., g] = subsample_histograms(sub, kc, rng)
        return h

    def sample_agents(self, states: IntArray, counts: IntArray, d: int,
                      rng: np.random.Generator) -> IntArray:
        """Per type, the ``k_c`` agents of that type with the smallest uniform keys."""
        return agent_histograms(states, self.select_agents(states, rng), d)

    def select_agents(self, states: IntArray, rng: np.random.Generator) -> IntArray:
        """Indices ``(R, k)`` of the sampled agents: per type ``c`` (in order), the ``k_c``
        agents of that type with the smallest of uniform keys."""
        R, n = states.shape
        t = np.asarray(self._types(), dtype=np.int64)
        agent_type = t[states]
        keys = rng.random((R, n))
        parts = []
        for c, kc in enumerate(self.ks):
            kk = np.where(agent_type == c, keys, 2.0)
            parts.append(np.argpartition(kk, kc - 1, axis=1)[:, :kc])
        return np.concatenate(parts, axis=1)

    def law(self, states: IntArray) -> FloatArray:
        """``W[N, h] = prod_c P_c(h[S_c] | N[S_c])`` (one multivariate hypergeometric per
        type), ``(M, |observations|)`` in index order."""
        S = np.asarray(states, dtype=np.int64)
        W = np.ones((S.shape[0], 1))
        for kc, g in zip(self.ks, type_groups(self._types()), strict=True):
            Wc = Uniform(kc).law(S[:, g])
            W = (W[:, :, None] * Wc[:, None, :]).reshape(S.shape[0], -1)
        return W

    # --- description ----------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """``{"scheme": "stratified", "ks": [...], "types": [...] | None}``."""
        return {"scheme": "stratified", "ks": list(self.ks),
                "types": None if self.types is None else list(self.types)}

    def describe(self) -> str:
        return f"Stratified(ks={list(self.ks)})"


def allocate(k: int, shares: ArrayLike, caps: ArrayLike | None = None) -> tuple[int, ...]:
    """Split a total sample size ``k`` over ``C`` strata in proportion to ``shares`` (largest
    remainder, at least 1 each, at most ``caps[c]`` each): the per-type sizes of a
    :class:`Stratified` scheme of total ``k``. ``ValueError`` when ``k < C`` or
    ``k > sum(caps)``."""
    sh = np.asarray(shares, dtype=np.float64)
    C = sh.size
    k = check_int("k", k, 1)
    if sh.ndim != 1 or C == 0 or not np.isfinite(sh).all() or (sh <= 0).any():
        raise ValueError(f"shares = {sh.tolist()}: expected positive finite numbers")
    cap = (np.full(C, k, dtype=np.int64) if caps is None
           else np.asarray(caps, dtype=np.int64))
    if k < C or k > int(cap.sum()):
        raise ValueError(f"k = {k}: cannot give each of {C} types between 1 and its "
                         f"population {cap.tolist()} sampled agents")
    out = np.ones(C, dtype=np.int64)
    for _ in range(k - C):  # one agent at a time to the stratum furthest below its share
        room = out < cap
        deficit = np.where(room, sh / sh.sum() * k - out, -np.inf)
        out[int(np.argmax(deficit))] += 1
    return tuple(int(v) for v in out)


@dataclass(frozen=True)
class Weighted(HistogramObservations):
    """Successive sampling without replacement (SPEC 12): each of the ``k`` draws picks one
    of the remaining agents with probability proportional to ``w[its state]``. Observations:
    ``H_k``. With equal weights it *is* :class:`Uniform` ``(k)`` (its sampler and law are
    used, so the numbers are the same)."""

    w: tuple[float, ...]
    k: int

    kind = "weighted"

    def __post_init__(self) -> None:
        try:
            arr = np.asarray(self.w, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"sampling.w = {self.w!r}: expected a sequence of |S_l| "
                             "non-negative weights") from None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"sampling.w: expected a 1-d sequence of |S_l| weights, got "
                             f"shape {arr.shape}")
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"sampling.w[{i}] = {arr[i]}: expected a finite weight >= 0")
        if (arr < 0).any():
            i = int(np.flatnonzero(arr < 0)[0])
            raise ValueError(f"sampling.w[{i}] = {arr[i]}: expected a weight >= 0")
        if not (arr > 0).any():
            raise ValueError("sampling.w: all weights are zero; expected at least one > 0")
        object.__setattr__(self, "w", tuple(float(v) for v in arr))
        object.__setattr__(self, "k", check_int("sampling.k", self.k, 1))

    @property
    def equal(self) -> bool:
        """Whether all weights are equal (then the scheme is :class:`Uniform`)."""
        return len(set(self.w)) == 1

    @property
    def weights(self) -> FloatArray:
        """The weights as an array."""
        return np.asarray(self.w, dtype=np.float64)

    def bind(self, game: Any) -> Weighted:
        """This scheme, checked against ``game``: ``|S_l|`` weights, ``k <= n``."""
        if len(self.w) != int(game.n_sl):
            raise ValueError(f"sampling.w: {len(self.w)} weights for a game with |S_l| = "
                             f"{game.n_sl} local states (expected one weight per local state)")
        _check_game_k("sampling.k", self.k, int(game.n))
        return self

    # --- sampling -------------------------------------------------------------
    def sample(self, counts: IntArray, rng: np.random.Generator,
               n: int | None = None) -> IntArray:
        """:func:`weighted_subsample` (or :class:`Uniform`'s sampler for equal weights)."""
        if self.equal:
            return Uniform(self.k).sample(counts, rng, n)
        N = np.asarray(counts, dtype=np.int64)
        if n is not None and self.k == n:
            return N
        return weighted_subsample(N, self.w, self.k, rng)

    def sample_agents(self, states: IntArray, counts: IntArray, d: int,
                      rng: np.random.Generator) -> IntArray:
        """The first ``k`` of independent ``Exp(w[s_i])`` clocks (weight-0 agents last,
        in uniform order)."""
        if self.equal:
            return Uniform(self.k).sample_agents(states, counts, d, rng)
        if self.k == states.shape[1]:
            return counts
        return agent_histograms(states, self.select_agents(states, rng), d)

    def select_agents(self, states: IntArray, rng: np.random.Generator) -> IntArray:
        """Indices ``(R, k)`` of the sampled agents in draw order: the first ``k`` of
        independent ``Exp(w[s_i])`` clocks, weight-0 agents after all others in uniform
        order."""
        if self.equal:
            return Uniform(self.k).select_agents(states, rng)
        R, n = states.shape
        wa = self.weights[states]
        E = rng.standard_exponential((R, n))
        key = np.where(wa > 0, E / np.where(wa > 0, wa, 1.0), E)
        tier = (wa <= 0).astype(np.int64)
        return np.lexsort((key, tier), axis=1)[:, :self.k]

    def law(self, states: IntArray) -> FloatArray:
        """:func:`successive_sampling_law` (or the hypergeometric law for equal weights)."""
        if self.equal:
            return Uniform(self.k).law(states)
        return successive_sampling_law(states, self.w, self.k)

    # --- description ----------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """``{"scheme": "weighted", "w": [...], "k": k}``."""
        return {"scheme": "weighted", "w": list(self.w), "k": self.k}

    def describe(self) -> str:
        return f"Weighted(w={[round(v, 6) for v in self.w]}, k={self.k})"


Scheme: TypeAlias = Uniform | Stratified | Weighted
#: the scheme names of :func:`from_json` / configs
SCHEMES = ("uniform", "stratified", "weighted")


def from_json(d: Any, name: str = "sampling") -> Scheme:
    """A scheme from its :meth:`to_json` form (policy files, configs), validated; a
    ``ValueError`` names ``name`` and the bad entry."""
    if not isinstance(d, dict):
        raise ValueError(f"{name}: expected an object with 'scheme', got {d!r}"[:200])
    kind = d.get("scheme")
    allowed = {"uniform": {"scheme", "k"}, "stratified": {"scheme", "ks", "types"},
               "weighted": {"scheme", "w", "k"}}
    if kind not in allowed:
        raise ValueError(f"{name}.scheme = {kind!r}: expected one of {list(SCHEMES)}"[:200])
    extra = sorted(set(d) - allowed[kind])
    if extra:
        raise ValueError(f"{name}: unknown key(s) {extra} for scheme {kind!r}")
    try:
        if kind == "uniform":
            return Uniform(d["k"])
        if kind == "stratified":
            return Stratified(d["ks"], d.get("types"))
        return Weighted(d["w"], d["k"])
    except KeyError as exc:
        raise ValueError(f"{name}: scheme {kind!r} needs the key {exc.args[0]!r}") from None
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def resolve(sampling: Scheme | dict[str, Any] | None, k: int | None,
            game: Any = None) -> Scheme:
    """The scheme of a call that takes ``k=`` and/or ``sampling=`` (SPEC 12): ``sampling``
    (a scheme or its JSON form) when given, else ``Uniform(k)``; both given must agree on
    the total sample size. Bound to ``game`` when given (:meth:`bind`)."""
    if sampling is None:
        if k is None:
            raise ValueError("k: expected a subsample size (or sampling=am.sampling....)")
        scheme: Scheme = Uniform(game.check_k(k) if game is not None else k)
    else:
        scheme = from_json(sampling) if isinstance(sampling, dict) else sampling
        if not isinstance(scheme, Uniform | Stratified | Weighted):
            raise ValueError(f"sampling: expected am.sampling.Uniform, Stratified or Weighted, "
                             f"got {type(sampling).__name__}")
        if k is not None and int(k) != scheme.k:
            raise ValueError(f"k = {k}: disagrees with sampling = {scheme.describe()} "
                             f"(total sample size {scheme.k}); pass one of them")
    return scheme.bind(game) if game is not None else scheme


def observable(policy_scheme: Scheme, scheme: Scheme) -> bool:
    """Whether a policy made for ``policy_scheme`` can act on the histograms ``scheme``
    draws (its observation space contains them): any scheme of total size ``k`` for a
    policy on ``H_k``; the same :class:`Stratified` scheme for a stratified policy."""
    pk, sk = policy_scheme.observation_key, scheme.observation_key
    return pk == sk or (pk[0] == "H" and pk[1] == scheme.k)


def check_observable(policy_scheme: Scheme, scheme: Scheme) -> None:
    """``ValueError`` unless :func:`observable`."""
    if observable(policy_scheme, scheme):
        return
    pk = policy_scheme.observation_key
    raise ValueError(f"sampling = {scheme.describe()}: a policy made for "
                     f"{policy_scheme.describe()} cannot act on its samples (it sees "
                     f"{'H_k, k = ' + str(pk[1]) if pk[0] == 'H' else 'per-type sums ' + str(list(pk[1]))})")


def check_table(scheme: Scheme, d: int, factor: int = 1,
                limit: int = MAX_TABLE_ENTRIES) -> int:
    """``scheme.num_observations(d)`` when ``factor`` times it is within ``limit``, else a
    ``ValueError``."""
    size = scheme.num_observations(d)
    if size * factor > limit:
        raise ValueError(f"{scheme.describe()}: a table of {factor} x {size} observations "
                         f"exceeds the limit of {limit:.3g} entries (altmarl.limits)")
    return size


__all__ = [
    "HYPERGEOM_LIMIT",
    "SCHEMES",
    "HistogramObservations",
    "agent_histograms",
    "allocate",
    "Scheme",
    "Stratified",
    "Uniform",
    "Weighted",
    "check_observable",
    "from_json",
    "hypergeometric_kernel",
    "observable",
    "hypergeometric_weights",
    "multivariate_hypergeometric",
    "resolve",
    "sequential_subsample",
    "stratified_histograms",
    "subsample_histograms",
    "successive_sampling_law",
    "type_groups",
    "type_sums",
    "weighted_subsample",
]
