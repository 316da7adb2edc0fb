"""Off-policy evaluation of a global policy from logs (paper Appendix E; the value of SPEC 3,
eq. 2): how good is a new dispatcher on the data the current one produced?

:func:`offpolicy_evaluate` estimates ``V(pi_g, pi_l)`` from a logged dataset with one of

* ``"fqe"`` -- fitted-Q evaluation over ``(s_g, h)``: policy evaluation of ``pi_g`` on the
  empirical (certainty-equivalence) model of the log, the tabular fixed point of
  ``Q(s, a) = r + gamma Q(s', pi_g(s'))`` fitted by least squares (one sparse linear solve);
  the value is the mean of ``V(s_0)`` over the episodes' first states;
* ``"is"`` -- per-decision importance sampling, ``(1/E) sum_e sum_t gamma^t w_{e,t} r_{e,t}``
  with ``w_{e,t} = prod_{j <= t} pi_g(a_j | s_j) / b(a_j | s_j)``;
* ``"wis"`` -- weighted (self-normalized) per-decision importance sampling,
  ``sum_t gamma^t (sum_e w_{e,t} r_{e,t}) / (sum_e w_{e,t})``.

The importance-sampling estimators need the behaviour policy ``b``: the log's sidecar records
it (``behaviour``: ``uniform``, or ``epsilon-greedy`` around a policy passed as
``behaviour_policy``). Every interval is a percentile bootstrap over *episodes* (seeded),
so it accounts for the dependence within an episode.

What each estimator converges to (docs/offpolicy.md, "Evaluating a policy from logs"):

* the logged reward is the sample's, ``r_g + (1/k) sum_{i in Delta} r_l``; a uniform sample
  makes its expectation the population's stage reward, so IS / WIS estimate the value of the
  real ``n``-agent system (truncated at the episode length) for any ``n`` and any
  ``next_histogram``;
* FQE assumes ``(s_g, h)`` is Markov. With ``n = k`` it is the system itself, so FQE
  estimates the ``n``-agent value; with ``"tracked"`` next histograms the logged transition is
  the ``k``-agent surrogate's, so FQE estimates the surrogate's value (the exact value of the
  same game with ``n = k``); with fresh samples and ``n > k`` it estimates the value of a
  Markov model fitted to a non-Markov process: biased, by an amount that depends on the
  behaviour policy (measured in the docs). The result says which case applies (``estimand``).

Joint policies: when the log carries the population's local actions (the ``N_{x}_{a}``
counts and the sidecar's ``local_behaviour`` ``mu_l``, :mod:`altmarl.offpolicy.dataset`),
IS / WIS also evaluate a new local policy ``pi_l``: each step's weight gains the factor
``prod_{x, a} (pi_l(a | x, s_g) / mu_l(a | x, s_g))^{N[x, a]}`` of all ``n`` agents
(:func:`local_log_ratios`). FQE cannot (its state-action holds no local actions) and
refuses such a ``pi_l``. The joint weights' effective sample size falls exponentially in
``n`` at a fixed distance between ``pi_l`` and ``mu_l`` (docs/offpolicy.md, section 7).

Diagnostics: coverage per state (how often the target's action was tried where the data
visit), the target's discounted occupancy on states where it was never tried (where FQE
has to impute), and the effective sample size of the importance weights. Uncovered target
actions raise a :class:`CoverageWarning` and set the flag ``"uncovered-actions"``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl import _random
from altmarl._validate import check_choice, check_int
from altmarl.histogram import num_histograms, rank
from altmarl.offpolicy.dataset import OfflineDataset, load_dataset
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.threads import limit_blas_threads

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: estimators of :func:`offpolicy_evaluate`
METHODS = ("fqe", "is", "wis")
#: other names of the estimators (``"pdis"``: per-decision importance sampling, ``"is"``)
METHOD_ALIASES = {"pdis": "is"}
#: the most bootstrap resamples (each one is a linear solve for FQE)
MAX_BOOTSTRAP = 10_000
#: states up to which FQE's linear system is solved densely
DENSE_STATES = 1500
#: uncovered states listed in the diagnostics
LIST_UNCOVERED = 20


class CoverageWarning(UserWarning):
    """The log does not cover the target policy's actions (Assumption E.1 fails for it)."""


@dataclass(frozen=True)
class OffPolicyEstimate:
    """An off-policy value estimate (:func:`offpolicy_evaluate`).

    Attributes
    ----------
    value : the estimate of ``V(pi_g, pi_l)``
    ci95 : percentile bootstrap 95% interval over episodes (``None`` with one episode)
    method : ``"fqe"``, ``"is"`` or ``"wis"``
    stderr : bootstrap standard deviation (``None`` with one episode)
    bootstrap : number of bootstrap resamples
    estimand : what the estimator converges to for this log (module docstring)
    flags : ``"uncovered-actions"`` (the target plays untried actions), ``"non-markov"``
        (FQE on fresh samples with ``n > k``), ``"low-ess"`` (importance weights: effective
        sample size at the effective horizon below ``max(10, 1%`` of the episodes)),
        ``"weights-vanish"`` (every importance weight is 0 before the episodes end),
        ``"one-episode"`` (no interval)
    diagnostics : coverage, imputed occupancy, effective sample size, truncation bound, ...
    """

    value: float
    ci95: tuple[float, float] | None
    method: str
    stderr: float | None
    bootstrap: int
    estimand: str
    flags: tuple[str, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"method": self.method, "value": self.value,
                "ci95": None if self.ci95 is None else list(self.ci95),
                "stderr": self.stderr, "bootstrap": self.bootstrap, "estimand": self.estimand,
                "flags": list(self.flags), "diagnostics": self.diagnostics}

    def __repr__(self) -> str:
        ci = "" if self.ci95 is None else f", ci95=({self.ci95[0]:.4g}, {self.ci95[1]:.4g})"
        return (f"OffPolicyEstimate(method={self.method!r}, value={self.value:.6g}{ci}, "
                f"flags={list(self.flags)})")


# ---------------------------------------------------------------------------
# the log, reorganized
# ---------------------------------------------------------------------------


@dataclass
class _Log:
    """Rows sorted by ``(episode, t)``, states indexed compactly."""

    cur: IntArray          # compact state index of each row
    nxt: IntArray          # compact next-state index
    a: IntArray
    r: FloatArray
    ep: IntArray           # episode index 0..E-1 of each row
    first: IntArray        # row of each episode's first step
    s_g: IntArray          # (S,) global state of each compact state
    h: IntArray            # (S, d) histogram of each compact state
    visits: IntArray       # (S,) rows whose current state it is
    E: int


def _organize(ds: OfflineDataset) -> _Log:
    order = np.lexsort((ds.t, ds.episode))
    cur_flat, nxt_flat = ds.state_index()
    cur_flat, nxt_flat = cur_flat[order], nxt_flat[order]
    uniq, inv = np.unique(np.concatenate([cur_flat, nxt_flat]), return_inverse=True)
    T = len(ds)
    cur, nxt = inv[:T].astype(np.int64), inv[T:].astype(np.int64)
    _, ep = np.unique(ds.episode[order], return_inverse=True)
    ep = ep.astype(np.int64)
    E = int(ep.max()) + 1
    first = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]]).astype(np.int64)
    nh = num_histograms(ds.k, ds.n_sl)
    s_g = (uniq // nh).astype(np.int64)
    # the histogram of each compact state, from any row that carries it
    h = np.zeros((uniq.size, ds.n_sl), np.int64)
    h[inv[T:]] = ds.h_next[order]
    h[inv[:T]] = ds.h[order]
    visits = np.bincount(cur, minlength=uniq.size).astype(np.int64)
    return _Log(cur, nxt, ds.a_g[order].astype(np.int64), ds.r[order].astype(np.float64), ep,
                first, s_g, h, visits, E)


# ---------------------------------------------------------------------------
# the policies' action probabilities
# ---------------------------------------------------------------------------


def target_probabilities(pi_g: Any, s_g: IntArray, h: IntArray, k: int,
                         n_ag: int) -> FloatArray:
    """``pi_g(a | s_g, h)`` for each of the given states, ``(S, |A_g|)``: one-hot for a
    deterministic policy (a :class:`~altmarl.GlobalPolicy`, a neural policy, any object with
    ``k`` and ``act(s_g, obs)``), uniform for :class:`~altmarl.generative.policies.
    UniformGlobalPolicy`, or the rows of ``pi_g.probabilities(s_g, h)`` when it has one."""
    from altmarl.generative.policies import UniformGlobalPolicy

    pk = getattr(pi_g, "k", None)
    if pk != k and not isinstance(pi_g, UniformGlobalPolicy):
        raise ValueError(f"pi_g.k = {pk}: the log's histograms are of k = {k} sampled agents")
    if getattr(pi_g, "n_ag", n_ag) != n_ag:
        raise ValueError(f"pi_g plays {pi_g.n_ag} global actions; the log has |A_g| = {n_ag}")
    S = s_g.shape[0]
    if isinstance(pi_g, UniformGlobalPolicy):
        return np.full((S, n_ag), 1.0 / n_ag)
    if callable(getattr(pi_g, "probabilities", None)):
        p = np.asarray(pi_g.probabilities(s_g, h), dtype=np.float64)
        if p.shape != (S, n_ag) or not np.isfinite(p).all() or (p < 0).any() \
                or not np.allclose(p.sum(axis=1), 1.0, atol=1e-8):
            raise ValueError(f"pi_g.probabilities: expected rows of {n_ag} probabilities "
                             "summing to 1")
        return p
    if isinstance(pi_g, GlobalPolicy):
        from altmarl.sampling import Uniform

        if not isinstance(pi_g.sampling, Uniform):
            raise ValueError(f"pi_g.sampling = {pi_g.sampling.describe()}: the log's "
                             "histograms are uniform k-samples; evaluate a Uniform(k) policy")
        if pi_g.n_sl != h.shape[1]:
            raise ValueError(f"pi_g reads |S_l| = {pi_g.n_sl} local states; the log has "
                             f"{h.shape[1]}")
        acts = pi_g.act_ranked(s_g, rank(h, k))
    else:
        if not callable(getattr(pi_g, "act", None)):
            raise ValueError(f"pi_g = {pi_g!r}: expected a global policy (k, act(s_g, obs))")
        acts = np.asarray(pi_g.act(s_g, h), dtype=np.int64).reshape(-1)
        if acts.shape != (S,) or (acts < 0).any() or (acts >= n_ag).any():
            raise ValueError(f"pi_g.act: expected one action in 0..{n_ag - 1} per state")
    out = np.zeros((S, n_ag))
    out[np.arange(S), acts] = 1.0
    return out


def behaviour_probabilities(ds: OfflineDataset, log: _Log,
                            behaviour_policy: GlobalPolicy | None) -> FloatArray | None:
    """``b(a_t | s_t)`` of each logged row (sorted as ``log``), from the sidecar's
    ``behaviour``; ``None`` when the log does not say."""
    b = ds.info.get("behaviour")
    kind = b.get("kind") if isinstance(b, dict) else None
    A = ds.n_ag
    if kind == "uniform":
        return np.full(log.a.shape[0], 1.0 / A)
    if kind == "epsilon-greedy":
        eps = b.get("epsilon") if isinstance(b, dict) else None
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps <= 1:
            raise ValueError(f"behaviour.epsilon = {eps!r} in the log's sidecar: expected a "
                             "number in (0, 1]")
        if behaviour_policy is None:
            raise ValueError("behaviour_policy: the log's behaviour is epsilon-greedy around a "
                             "policy the sidecar only describes; pass that policy "
                             "(behaviour_policy=, --behaviour-policy) to weight the actions")
        greedy = target_probabilities(behaviour_policy, log.s_g, log.h, ds.k, A)
        p = eps / A + (1.0 - eps) * greedy
        return np.asarray(p[log.cur, log.a], dtype=np.float64)
    return None


def local_log_ratios(ds: OfflineDataset, pi_l: Any, method: str) -> FloatArray | None:
    """The joint policy's local factor of each row's importance weight, in log:
    ``sum_{x, a} N[x, a] log(pi_l(a | x, s_g) / mu_l(a | x, s_g))`` over the population's
    logged local-action counts ``N`` (``-inf`` where ``pi_l`` never plays a logged action);
    ``None`` when there is nothing to reweight (``pi_l`` is ``None`` or the logged local
    behaviour). Raises a ``ValueError`` naming ``pi_l`` when the log cannot evaluate it: no
    local actions recorded, no recorded local behaviour, or ``method = "fqe"``.

    Every agent's action moves the population the next samples are drawn from, so the
    weight multiplies all ``n`` agents' ratios (not only the ``k`` sampled ones): the
    trajectory likelihood ratio of the ``n``-agent system (SPEC 3) under ``(pi_g, pi_l)``
    against the logged behaviour."""
    if pi_l is None:
        return None
    table = getattr(pi_l, "table", pi_l)
    if not isinstance(table, np.ndarray) or table.ndim != 3:
        raise ValueError(f"pi_l: expected an altmarl.LocalPolicy or its (|S_l|, |S_g|, |A_l|) "
                         f"table, got {type(pi_l).__name__}")
    if ds.local_counts is None:
        desc = ds.info.get("local_policy")
        logged_uniform = isinstance(desc, dict) and desc.get("kind") == "uniform"
        if logged_uniform and bool(np.allclose(table, 1.0 / table.shape[-1])):
            return None
        raise ValueError("pi_l: the log carries no local actions, so only the logged local "
                         f"behaviour ({desc!r}) can be evaluated with pi_g; pass pi_l=None, or "
                         "record the population's local actions (record_logs(..., "
                         "local_actions=True), altmarl logs record --local-actions: the N_x_a "
                         "columns and the sidecar's local_behaviour)")
    mu = ds.local_behaviour
    if mu is None:
        raise ValueError("pi_l: the log has local-action counts but its sidecar does not "
                         "record the local behaviour that chose them (local_behaviour), so "
                         "the local actions cannot be reweighted; pass pi_l=None")
    if table.shape != mu.shape:
        raise ValueError(f"pi_l.table: expected shape (|S_l|, |S_g|, |A_l|) = {mu.shape} of "
                         f"the log, got {table.shape}")
    if np.array_equal(table, mu):
        return None
    if method == "fqe":
        raise ValueError("pi_l: method='fqe' evaluates pi_g under the log's own local "
                         "behaviour only: its state-action (s_g, h, a_g) holds no local "
                         "actions, so a different pi_l cannot be corrected for; use "
                         "method='is' or 'wis' (joint importance weights) or pass pi_l=None")
    with np.errstate(divide="ignore"):
        lr = np.where(table > 0, np.log(np.maximum(table, 1e-300)), -np.inf) \
            - np.log(np.where(mu > 0, mu, 1.0))
    # lr[x, s_g, a] gathered at each row's s_g: (rows, |S_l|, |A_l|)
    per = lr[:, ds.s_g, :].transpose(1, 0, 2)
    N = ds.local_counts
    terms = np.where(N > 0, N * np.where(N > 0, per, 0.0), 0.0)
    return np.asarray(terms.sum(axis=(1, 2)), dtype=np.float64)


# ---------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------


@dataclass
class _Triples:
    """The rows grouped by ``(state, action, next state)``: FQE's empirical model needs only
    the weighted count and reward sum of each group, so a bootstrap resample costs one
    product with the episodes x groups count matrix instead of a pass over the rows."""

    cur: IntArray
    a: IntArray
    nxt: IntArray
    counts: Any     # sparse (E, U): rows of episode e in group u
    rewards: Any    # sparse (E, U): their reward sum
    S: int


def _triples(log: _Log, A: int) -> _Triples:
    from scipy import sparse

    S = log.s_g.shape[0]
    key = (log.cur * A + log.a) * S + log.nxt
    uniq, g = np.unique(key, return_inverse=True)
    U = uniq.size
    shape = (log.E, U)
    counts = sparse.csr_matrix((np.ones(g.size), (log.ep, g)), shape=shape)
    rewards = sparse.csr_matrix((log.r, (log.ep, g)), shape=shape)
    sa = uniq // S
    return _Triples((sa // A).astype(np.int64), (sa % A).astype(np.int64),
                    (uniq % S).astype(np.int64), counts, rewards, S)


def _fqe_system(tr: _Triples, pi: FloatArray, A: int, gamma: float, w: FloatArray,
                wr: FloatArray) -> tuple[Any, FloatArray, NDArray[np.bool_]]:
    """``(M, R, imputed)`` with ``M V = R`` the FQE fixed point on the empirical model of
    the groups with weighted counts ``w`` and reward sums ``wr`` (``S + 1`` unknowns: the
    states' values and their mean).

    A state's value is ``sum_a pi(a|s) Q(s, a)`` with ``Q`` of the tried actions from the
    data; the target's mass on untried actions is spread evenly over the tried ones; a
    state without data (only seen as a next state, or left out by a resample) takes the
    visit-weighted mean value of the states with data."""
    from scipy import sparse

    S = tr.S
    sa = tr.cur * A + tr.a
    cnt = np.bincount(sa, weights=w, minlength=S * A).reshape(S, A)
    tried = cnt > 0
    n_tried = tried.sum(axis=1)
    has = n_tried > 0
    eff = np.where(tried, pi, 0.0)
    miss = 1.0 - eff.sum(axis=1)
    eff += np.where(tried, (miss / np.maximum(n_tried, 1))[:, None], 0.0)
    imputed = has & (miss > 1e-12)
    per = np.divide(eff, cnt, out=np.zeros_like(eff), where=tried).ravel()[sa]
    R = np.asarray(np.bincount(tr.cur, weights=per * wr, minlength=S), dtype=np.float64)
    # one auxiliary unknown (index S) holds the visit-weighted mean of the states with data;
    # every state without data equals it (sparse rows, where a direct average would make
    # each of them a dense row)
    rows, cols, vals = [tr.cur], [tr.nxt], [-gamma * per * w]
    empty = np.flatnonzero(~has)
    idx = np.flatnonzero(has)
    vis = cnt.sum(axis=1)[has]
    rows += [empty, np.full(idx.size, S)]
    cols += [np.full(empty.size, S), idx]
    vals += [np.full(empty.size, -1.0), -vis / vis.sum()]
    M = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(S + 1, S + 1)).tocsr() + sparse.identity(S + 1, format="csr")
    return M, np.r_[R, 0.0], np.asarray(imputed | ~has, dtype=np.bool_)


def _solve(M: Any, R: FloatArray, x0: FloatArray | None = None, rtol: float = 1e-10
           ) -> FloatArray:
    """``M^-1 R`` for ``M = I - gamma P`` (``P`` substochastic): dense LU up to
    ``DENSE_STATES`` states; beyond, GMRES from ``x0`` (relative residual ``1e-10``: about
    40 iterations on the warehouse's 4,000 states, where sparse LU takes 30 s of fill-in),
    then value iteration ``V <- R + (I - M) V`` (a contraction) if GMRES stalls. Callers
    hold BLAS to one thread (small solves slow down by 100x when BLAS threads oversubscribe
    a shared machine)."""
    if M.shape[0] <= DENSE_STATES:
        return np.asarray(np.linalg.solve(M.toarray(), R), dtype=np.float64)
    from scipy import sparse
    from scipy.sparse.linalg import gmres

    x, info = gmres(M, R, x0=x0, rtol=rtol, atol=0.0, restart=60, maxiter=50)
    if info == 0:
        return np.asarray(x, dtype=np.float64)
    P = sparse.identity(M.shape[0], format="csr") - M
    v = np.asarray(x, dtype=np.float64)
    tol = rtol * max(float(np.abs(R).max()), 1e-300)
    for _ in range(1_000_000):
        nv = R + P @ v
        if float(np.abs(nv - v).max()) <= tol:
            return np.asarray(nv, dtype=np.float64)
        v = nv
    return np.asarray(v, dtype=np.float64)  # pragma: no cover


def _fqe_values(log: _Log, tr: _Triples, pi: FloatArray, A: int, gamma: float,
                c: FloatArray, x0: FloatArray | None = None) -> FloatArray:
    """FQE's value for each row of episode multiplicities ``c`` ``(B, E)`` (``x0``: a
    starting point for the iterative solver of large state spaces)."""
    W = np.asarray((tr.counts.T @ c.T).T)
    WR = np.asarray((tr.rewards.T @ c.T).T)
    s0 = log.cur[log.first]
    out = np.empty(c.shape[0])
    V: FloatArray | None = x0
    for j in range(c.shape[0]):
        M, R, _ = _fqe_system(tr, pi, A, gamma, W[j], WR[j])
        # bootstrap resamples (x0 given: the full log's values) need less precision than
        # the estimate itself: relative residual 1e-8 from a close start
        V = _solve(M, R, x0 if x0 is not None else V, 1e-8 if x0 is not None else 1e-10)
        out[j] = np.dot(c[j], V[s0]) / c[j].sum()
    return out


def _episode_matrix(log: _Log, values: FloatArray) -> FloatArray:
    """``(E, L)`` matrix of a per-row quantity by episode and step (zero past an episode's
    end); rows must be complete episodes ``t = 0, 1, ...``."""
    pos = np.arange(log.a.shape[0]) - log.first[log.ep]
    L = int(pos.max()) + 1
    out = np.zeros((log.E, L))
    out[log.ep, pos] = values
    return out


def _is_parts(log: _Log, pi: FloatArray, b: FloatArray, gamma: float,
              local: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
    """``(W, G)``: cumulative importance weights and discounted rewards ``gamma^t r`` by
    episode and step; ``local``: each row's local log-ratio (:func:`local_log_ratios`,
    sorted as ``log``) joins the global one."""
    rho = pi[log.cur, log.a] / b
    logw = np.log(np.maximum(rho, 1e-300))
    logw = np.where(rho > 0, logw, -np.inf)
    if local is not None:
        logw = logw + local
    cum = np.cumsum(_episode_matrix(log, logw), axis=1)
    alive = _episode_matrix(log, np.ones_like(rho)) > 0
    W = np.where(alive, np.exp(cum), 0.0)
    disc = gamma ** np.arange(W.shape[1], dtype=np.float64)
    G = _episode_matrix(log, log.r) * disc[None, :]
    return W, G


def _is_value(W: FloatArray, G: FloatArray, c: FloatArray, weighted: bool) -> FloatArray:
    """Estimates for each row of episode multiplicities ``c`` ``(B, E)``."""
    if not weighted:
        return np.asarray((c @ (W * G).sum(axis=1)) / c.sum(axis=1), dtype=np.float64)
    num = c @ (W * G)
    den = c @ W
    disc_r = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.asarray(disc_r.sum(axis=1), dtype=np.float64)


def _ess(W: FloatArray, gamma: float, r_abs: float) -> dict[str, Any]:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of the trajectory weights: at the
    effective horizon ``t_h = round(1 / (1 - gamma))`` (capped at the episode length), at
    the last step and its minimum; ``support_steps``: the steps before every weight is 0,
    and ``unsupported_bound``, the discounted reward beyond them that no weight carries."""
    s1, s2 = W.sum(axis=0), (W * W).sum(axis=0)
    ess = np.divide(s1 * s1, s2, out=np.zeros_like(s1), where=s2 > 0)
    L = W.shape[1]
    th = min(L - 1, int(round(1.0 / (1.0 - gamma))))
    alive = np.flatnonzero(s1 > 0)
    support = int(alive[-1]) + 1 if alive.size else 0
    bound = 0.0 if support >= L else float(gamma ** support * r_abs / (1.0 - gamma))
    return {"ess": float(ess[th]), "ess_step": th, "ess_last_step": float(ess[-1]),
            "ess_min_over_steps": float(ess.min()), "episodes": int(W.shape[0]),
            "support_steps": support, "unsupported_bound": bound}


def _check_complete(ds: OfflineDataset, log: _Log) -> None:
    """Importance sampling needs whole episodes ``t = 0, 1, ..., L - 1``."""
    order = np.lexsort((ds.t, ds.episode))
    t = ds.t[order]
    pos = np.arange(t.shape[0]) - log.first[log.ep]
    bad = t != pos
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        e = int(ds.episode[order][i])
        raise ValueError(f"dataset: episode {e} has step t = {int(t[i])} where t = {int(pos[i])} "
                         "was expected: importance sampling needs whole episodes from t = 0 "
                         "(use method='fqe')")


def _coverage(log: _Log, pi: FloatArray, A: int, gamma: float) -> dict[str, Any]:
    """Coverage of the target's actions per state and the target's discounted occupancy
    (under the empirical model) on states where FQE imputes."""
    tr = _triples(log, A)
    ones = np.ones((1, log.E))
    w = np.asarray((tr.counts.T @ ones.T).T)[0]
    M, _, imputed = _fqe_system(tr, pi, A, gamma, w, w)
    S = log.s_g.shape[0]
    mu0 = np.r_[np.bincount(log.cur[log.first], minlength=S) / log.E, 0.0]
    # d = (1 - gamma) mu0 (I - gamma P)^-1; the auxiliary mean passes its mass on
    occ = (_solve(M.T.tocsr(), mu0) * (1.0 - gamma))[:S]
    cnt = np.bincount(log.cur * A + log.a, minlength=S * A).reshape(S, A)
    target_visits = (cnt * (pi > 0)).sum(axis=1)
    tried_mass = (pi * (cnt > 0)).sum(axis=1)
    seen = log.visits > 0
    unc = np.flatnonzero(seen & (tried_mass < 1 - 1e-12))
    top = unc[np.argsort(-log.visits[unc], kind="stable")][:LIST_UNCOVERED]
    return {
        "states": int(seen.sum()),
        "states_only_as_next": int((~seen).sum()),
        "states_target_covered": int((seen & (tried_mass >= 1 - 1e-12)).sum()),
        "states_target_uncovered": int(unc.size),
        "rows_on_uncovered_states": float(log.visits[unc].sum() / log.a.shape[0]),
        "imputed_occupancy": float(np.clip(occ[imputed].sum(), 0.0, 1.0)),
        "min_target_visits_covered": int(target_visits[seen & (tried_mass >= 1 - 1e-12)].min())
        if (seen & (tried_mass >= 1 - 1e-12)).any() else 0,
        "uncovered": [{"s_g": int(log.s_g[s]), "h": log.h[s].tolist(),
                       "visits": int(log.visits[s]),
                       "target_actions": np.flatnonzero(pi[s] > 0).tolist(),
                       "tried_actions": np.flatnonzero(cnt[s] > 0).tolist()} for s in top],
    }


def _estimand(ds: OfflineDataset, method: str) -> tuple[str, bool]:
    """What the estimator converges to, and whether FQE's Markov assumption holds."""
    nxt = ds.info.get("next_histogram", "fresh")
    markov = ds.n is not None and ds.n == ds.k or nxt == "tracked"
    if method != "fqe":
        return ("V(pi_g, pi_l) of the logged n-agent system, truncated at the episode "
                "length", True)
    if ds.n is not None and ds.n == ds.k:
        return "V(pi_g, pi_l) of the logged system (n = k: (s_g, h) is Markov)", True
    if nxt == "tracked":
        return ("V(pi_g, pi_l) of the k-agent surrogate (tracked next histograms: the "
                "surrogate's transition)", True)
    return ("V of the Markov model fitted to the logged (s_g, h) process: fresh samples with "
            "n > k are not Markov, biased for the n-agent value (docs/offpolicy.md)", markov)


def offpolicy_evaluate(
    dataset: OfflineDataset | str | os.PathLike[str],
    pi_g: Any,
    pi_l: LocalPolicy | None = None,
    method: str = "fqe",
    seed: int = 0,
    *,
    behaviour_policy: GlobalPolicy | None = None,
    bootstrap: int = 200,
    game: Any = None,
    strict: bool = True,
) -> OffPolicyEstimate:
    """Estimate ``V(pi_g, pi_l)`` (SPEC 3, eq. 2) from logged data (Appendix E) without
    running ``pi_g`` (module docstring: the three estimators, what they converge to).

    Parameters
    ----------
    dataset
        An :class:`OfflineDataset` or a log path (:func:`load_dataset`, checked against
        ``game`` when given).
    pi_g
        The target global policy: a :class:`~altmarl.GlobalPolicy` of the log's ``k``, a
        neural policy, or any object with ``k`` and ``act(s_g, obs)`` (``obs`` the count
        vector); stochastic when it has ``probabilities(s_g, h)``.
    pi_l
        ``None``: the log's own local behaviour. Another :class:`~altmarl.LocalPolicy`
        (the joint policy ``(pi_g, pi_l)``) needs a log with the population's local actions
        (``record_logs(..., local_actions=True)``) and their recorded behaviour ``mu_l``,
        and ``method="is"`` / ``"wis"``: each step's weight is the global ratio times
        ``prod_{x, a} (pi_l(a | x, s_g) / mu_l(a | x, s_g))^{N[x, a]}`` over the ``n``
        agents' counts ``N`` (:func:`local_log_ratios`). FQE refuses it (its
        state-action has no local actions to reweight). Without local actions in the log
        only the logged local behaviour is evaluated (a uniform ``LocalPolicy`` is accepted
        for a log recorded under uniform local play). The joint weights' effective sample
        size falls roughly like ``exp(-n t KL)`` with ``n``: use ``pi_l`` close to the
        logged one (docs/offpolicy.md, section 7).
    method
        ``"fqe"`` (default), ``"is"`` (alias ``"pdis"``: per-decision importance
        sampling) or ``"wis"`` (weighted per-decision importance sampling).
    seed
        Seeds the bootstrap over episodes.
    behaviour_policy
        The greedy part of an ``epsilon-greedy`` behaviour (the sidecar describes it but
        does not hold it); needed for importance weights of such logs.
    bootstrap
        Number of bootstrap resamples of the episodes (``0``: no interval).
    game, strict
        Check a log path against this game (spaces, fingerprint with ``strict``).

    Returns
    -------
    OffPolicyEstimate
        ``.value``, ``.ci95``, ``.method``, ``.stderr``, ``.estimand``, ``.flags`` and
        ``.diagnostics`` (coverage per state, imputed occupancy, effective sample size,
        truncation bound). A :class:`CoverageWarning` is issued when the target plays
        actions the log never tried in states it visits.
    """
    method = METHOD_ALIASES.get(method, method) if isinstance(method, str) else method
    check_choice("method", method, METHODS)
    seed = check_int("seed", seed, 0)
    B = check_int("bootstrap", bootstrap, 0, MAX_BOOTSTRAP)
    if not isinstance(dataset, OfflineDataset):
        dataset = load_dataset(dataset, game=game, strict=strict)
    with limit_blas_threads(1):
        return _evaluate(dataset, pi_g, pi_l, method, seed, behaviour_policy, B)


def _evaluate(ds: OfflineDataset, pi_g: Any, pi_l: Any, method: str, seed: int,
              behaviour_policy: GlobalPolicy | None, B: int) -> OffPolicyEstimate:
    """:func:`offpolicy_evaluate` after its argument checks."""
    local = local_log_ratios(ds, pi_l, method)
    if local is not None:  # in the rows' (episode, t) order, as _organize sorts them
        local = local[np.lexsort((ds.t, ds.episode))]
    A, gamma = ds.n_ag, ds.gamma
    log = _organize(ds)
    pi = target_probabilities(pi_g, log.s_g, log.h, ds.k, A)
    kind = (ds.info.get("behaviour") or {}).get("kind") \
        if isinstance(ds.info.get("behaviour"), dict) else None
    # FQE needs no behaviour: an epsilon-greedy log without its policy only loses the
    # importance-weight diagnostics
    b = None if (method == "fqe" and kind == "epsilon-greedy" and behaviour_policy is None) \
        else behaviour_probabilities(ds, log, behaviour_policy)
    if method != "fqe" and b is None:
        raise ValueError(f"method = {method!r}: the log's sidecar does not record its behaviour "
                         f"policy (behaviour = {ds.info.get('behaviour')!r}); importance "
                         "sampling needs it: use method='fqe'")
    flags: list[str] = []
    estimand, markov = _estimand(ds, method)
    if local is not None:
        estimand = ("V(pi_g, pi_l) of the logged n-agent system under the given local policy "
                    "(joint weights over the global and all n local actions), truncated at "
                    "the episode length")
    if not markov:
        flags.append("non-markov")
    diag: dict[str, Any] = {"coverage": _coverage(log, pi, A, gamma), "rows": int(len(ds)),
                            "episodes": log.E, "gamma": gamma, "k": ds.k, "n": ds.n,
                            "next_histogram": ds.info.get("next_histogram", "fresh"),
                            "behaviour": ds.info.get("behaviour")}
    lengths = np.bincount(log.ep)
    r_abs = float(np.abs(log.r).max())
    diag["episode_length_min"] = int(lengths.min())
    diag["truncation_bound"] = float(gamma ** int(lengths.min()) * r_abs / (1.0 - gamma))
    W = G = None
    if b is not None:
        if method != "fqe":
            _check_complete(ds, log)
        W, G = _is_parts(log, pi, b, gamma, local)
        diag["importance"] = _ess(W, gamma, r_abs)
        diag["importance"]["joint"] = local is not None
        if local is not None:
            W_g, _ = _is_parts(log, pi, b, gamma)
            fin = local[np.isfinite(local)]
            diag["importance"].update(
                ess_global_only=_ess(W_g, gamma, r_abs)["ess"],
                local_log_ratio_mean=float(fin.mean()) if fin.size else float("-inf"),
                local_log_ratio_sd=float(fin.std()) if fin.size else 0.0,
                rows_local_impossible=int((~np.isfinite(local)).sum()))
        if method != "fqe" and diag["importance"]["ess"] < max(10.0, 0.01 * log.E):
            flags.append("low-ess")
        if method != "fqe" and diag["importance"]["unsupported_bound"] > 0:
            flags.append("weights-vanish")
    cov = diag["coverage"]
    if cov["states_target_uncovered"]:
        flags.append("uncovered-actions")
        warnings.warn(CoverageWarning(
            f"the log never tried the target policy's action in {cov['states_target_uncovered']}"
            f" of {cov['states']} visited states ({cov['rows_on_uncovered_states']:.1%} of the "
            f"rows); the target spends {cov['imputed_occupancy']:.1%} of its discounted "
            "occupancy there (FQE imputes those values; importance weights are 0)"),
            stacklevel=3)
    ones_e = np.ones(log.E)
    tr = _triples(log, A) if method == "fqe" else None
    v_full: FloatArray | None = None
    if tr is not None:
        w1 = np.asarray(tr.counts.T @ ones_e)
        M1, R1, _ = _fqe_system(tr, pi, A, gamma, w1, np.asarray(tr.rewards.T @ ones_e))
        v_full = _solve(M1, R1)
        value = float(v_full[log.cur[log.first]].mean())
    else:
        assert W is not None and G is not None
        value = float(_is_value(W, G, ones_e[None, :], method == "wis")[0])
    ci: tuple[float, float] | None = None
    sd: float | None = None
    if log.E < 2:
        flags.append("one-episode")
    elif B > 0:
        rng = _random.rng(seed, 22)
        c = rng.multinomial(log.E, np.full(log.E, 1.0 / log.E), size=B).astype(np.float64)
        if tr is not None:
            boots = _fqe_values(log, tr, pi, A, gamma, c, v_full)
        else:
            assert W is not None and G is not None
            boots = _is_value(W, G, c, method == "wis")
        lo, hi = np.quantile(boots, [0.025, 0.975])
        ci, sd = (float(lo), float(hi)), float(boots.std(ddof=1))
    return OffPolicyEstimate(value, ci, method, sd, B if ci is not None else 0, estimand,
                             tuple(flags), diag)


__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "CoverageWarning",
    "OffPolicyEstimate",
    "behaviour_probabilities",
    "local_log_ratios",
    "offpolicy_evaluate",
    "target_probabilities",
]
