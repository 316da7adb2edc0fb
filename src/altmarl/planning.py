"""Planning on finite MDPs and Markov chains: the one home of policy evaluation, value
iteration and policy iteration.

Every solver of altmarl that plans in a *known* finite model calls this module:

* G-LEARN (SPEC 4) on its empirical operator ``T_hat``: :func:`value_iteration` (SPEC 4's
  ``Q_0 = 0`` iteration) and :func:`inexact_policy_iteration` with :func:`evaluate_gmres`;
* the exact solver (SPEC 7) on the ``(s_g, N)`` chain: :func:`evaluate_dense` /
  :func:`evaluate_dense_batch` / :func:`evaluate_scipy_gmres` for ``V(pi_g, pi_l)`` and the
  discounted occupancy, :func:`policy_iteration` for the full-information best response and
  the representative agent's MDP;
* induced-VI (SPEC 5.1) on the representative agent's induced MDP: :func:`value_iteration`.

The model is never a fixed data structure here: callers pass the Bellman backup
``V -> Q`` or the matrix-vector product ``x -> P_pi x`` of their own (sparse, dense or
structured) operator, so each keeps its own fast representation and the planning loop
is written once. Notation: ``P_pi`` the transition matrix of a policy, ``r_pi`` its
expected reward, ``gamma`` the discount; the Bellman expectation equation is
``(I - gamma P_pi) V = r_pi`` and the optimality backup ``(T Q)(s, a) = r(s, a) +
gamma E[max_a' Q(s', a') | s, a]``.

Finite-horizon backward induction on episodic MDPs (UCFH, chained MDPs, SPEC 5.2) is a
different computation (time-indexed values over sparse successor lists, confidence-set
maximization) and lives with UCFH in :mod:`altmarl.llearn.ucfh`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: ``V -> Q``: one Bellman optimality backup (``V`` has the shape of ``Q`` without its last axis)
Backup = Callable[[FloatArray], FloatArray]
#: ``x -> P_pi x`` on flat vectors
MatVec = Callable[[FloatArray], FloatArray]
#: ``combine(w, h, V, sign)``: ``w += sign * einsum("i,in->n", h, V)`` in place
Combine = Callable[[FloatArray, FloatArray, FloatArray, float], None]
#: ``(V, w) -> einsum("in,n->i", V, w)``: the projections of GMRES's Gram-Schmidt steps
Dots = Callable[[FloatArray, FloatArray], FloatArray]


@dataclass
class PlanResult:
    """What a planning loop returns.

    ``q`` and ``v`` are the last ``Q`` and ``V`` tables; ``actions`` the last policy
    (policy iteration only). ``iterations`` counts backups (value iteration) or policy
    evaluations (policy iteration); ``residual`` is the last value of the stopping test
    (``inf`` when no iteration ran) and ``history`` all of them (value iteration and
    inexact policy iteration). ``converged`` says whether the stopping test was met.
    """

    q: FloatArray
    v: FloatArray
    iterations: int
    residual: float
    converged: bool
    actions: IntArray | None = None
    history: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------
# policy evaluation: (I - gamma P_pi) V = r_pi
# ---------------------------------------------------------------------------


def evaluate_dense(P: FloatArray, r: FloatArray, gamma: float) -> FloatArray:
    """``V = (I - gamma P)^{-1} r`` by one dense LU solve (SPEC 7: values follow from one
    linear solve). ``P`` is ``(S, S)`` row-stochastic, ``r`` is ``(S,)``.

    With ``P`` replaced by its transpose and ``r`` by an initial distribution ``mu``, the
    same solve gives the discounted occupancy ``d = sum_t gamma^t (P^T)^t mu``.
    """
    S = P.shape[0]
    return np.asarray(np.linalg.solve(np.eye(S) - gamma * P, r), dtype=np.float64)


def evaluate_dense_batch(P: FloatArray, r: FloatArray, gamma: float) -> FloatArray:
    """:func:`evaluate_dense` for a batch of chains: ``P`` is ``(B | 1, S, S)``, ``r`` is
    ``(B | 1, S)`` (a batch of one is broadcast); returns ``(B, S)`` by one batched LU."""
    S = P.shape[-1]
    B = max(P.shape[0], r.shape[0])
    lhs = np.broadcast_to(np.eye(S)[None] - gamma * P, (B, S, S))
    rhs = np.broadcast_to(r, (B, S))
    return np.asarray(np.linalg.solve(lhs, rhs[..., None])[..., 0], dtype=np.float64)


def evaluate_scipy_gmres(
    p_matvec: MatVec,
    r: FloatArray,
    gamma: float,
    *,
    rtol: float = 1e-13,
    restart: int = 60,
    maxiter: int = 200,
    check: float = 1e-9,
    name: str = "policy evaluation",
) -> FloatArray:
    """Solve ``(I - gamma P) V = r`` (flat ``r``) with SciPy's GMRES on the operator
    ``x -> x - gamma p_matvec(x)`` (for chains too large for a dense LU, SPEC 7).

    Raises ``RuntimeError`` (prefixed by ``name``) unless GMRES reports success and the
    sup-norm residual is at most ``check * max(1, ||r||_inf / (1 - gamma))``.
    """
    from scipy.sparse.linalg import LinearOperator, gmres

    def matvec(v: FloatArray) -> FloatArray:
        x = np.asarray(v, dtype=np.float64).reshape(-1)
        return np.asarray(x - gamma * p_matvec(x))

    op = LinearOperator((r.size, r.size), matvec=matvec, dtype=np.float64)
    sol, info = gmres(op, r, rtol=rtol, atol=0.0, restart=restart, maxiter=maxiter)
    V = np.asarray(sol, dtype=np.float64)
    resid = float(np.abs(matvec(V) - r).max())
    scale = max(1.0, float(np.abs(r).max()) / (1 - gamma))
    if info != 0 or resid > check * scale:
        raise RuntimeError(f"{name}: GMRES did not converge (info={info}, "
                           f"residual={resid:.3g})")
    return V


def evaluate_gmres(
    p_matvec: MatVec,
    r: FloatArray,
    gamma: float,
    x0: FloatArray,
    eps: float,
    restart: int = 20,
    max_matvecs: int = 2000,
    system: MatVec | None = None,
    combine: Combine | None = None,
    basis: FloatArray | None = None,
    dots: Dots | None = None,
    norm: Callable[[FloatArray], float] | None = None,
) -> tuple[FloatArray, float, int]:
    """Solve ``(I - gamma P) V = r`` (flat vectors) from the warm start ``x0`` until
    ``||r - (I - gamma P) V||_inf <= eps`` with :func:`gmres` (G-LEARN's policy evaluation,
    SPEC 4). Returns ``(V, residual, matvecs)``, ``matvecs`` the products with ``P``.
    ``system``: ``x -> x - gamma P x`` computed in one pass (the same numbers), used in
    place of ``p_matvec`` when given; ``combine``, ``basis``, ``dots``, ``norm``: as in
    :func:`gmres`."""
    count = [0]

    def mv(x: FloatArray) -> FloatArray:
        count[0] += 1
        if system is not None:
            return np.asarray(system(x))
        return np.asarray(x - gamma * p_matvec(x))

    x, res = gmres(mv, r, x0, eps, restart, max_matvecs, combine, basis, dots, norm)
    return x, res, count[0]


def einsum_combine(w: FloatArray, h: FloatArray, V: FloatArray, sign: float) -> None:
    """``w += sign * einsum("i,in->n", h, V)`` in place (``sign`` ``+1`` or ``-1``):
    :func:`gmres`'s default ``combine``."""
    if sign < 0:
        w -= np.einsum("i,in->n", h, V)
    else:
        w += np.einsum("i,in->n", h, V)


def sup_norm(v: FloatArray) -> float:
    """``||v||_inf = max |v_i|`` (NaN when ``v`` holds one): :func:`gmres`'s default ``norm``."""
    return float(np.abs(v).max())


def einsum_dots(V: FloatArray, w: FloatArray) -> FloatArray:
    """``einsum("in,n->i", V, w)``: :func:`gmres`'s default ``dots``."""
    return np.einsum("in,n->i", V, w)


def split_dots(pool: Executor, threads: int) -> Dots:
    """:func:`einsum_dots` with the rows of ``V`` split into up to ``threads`` blocks run
    on ``pool`` (NumPy releases the GIL in ``einsum``): the same numbers, because
    ``einsum`` sums each row of a block of two rows or more on its own (a one-row block
    takes another summation, so every block has at least two rows, and short or narrow
    ``V`` stay on this thread). That is how NumPy's ``einsum`` works, not a documented
    promise: :func:`split_dots_exact` checks it once per process, and without it the
    projections stay on one thread."""
    if threads < 2 or not split_dots_exact():
        return einsum_dots

    def dots(V: FloatArray, w: FloatArray) -> FloatArray:
        rows = V.shape[0]
        blocks = min(threads, rows // 2)
        if blocks < 2 or V.shape[1] < SPLIT_DOTS_MIN:
            return einsum_dots(V, w)
        cut = [rows * i // blocks for i in range(blocks + 1)]
        out = np.empty(rows)

        def block(i: int) -> None:
            out[cut[i]:cut[i + 1]] = einsum_dots(V[cut[i]:cut[i + 1]], w)

        futures = [pool.submit(block, i) for i in range(1, blocks)]
        block(0)
        for f in futures:
            f.result()
        return out

    return dots


#: vectors from this length on have :func:`split_dots` spread their projections over
#: threads (shorter ones gain less than a thread hand-off costs)
SPLIT_DOTS_MIN = 1 << 16


@cache
def split_dots_exact() -> bool:
    """Whether this NumPy's ``einsum("in,n->i")`` gives every row the same bits in a block
    of two or more rows as in the whole matrix (checked once, on vectors of
    :data:`SPLIT_DOTS_MIN` entries and more, every split of 2 to 7 rows)."""
    rng = np.random.default_rng(20261207)
    V = rng.normal(size=(7, SPLIT_DOTS_MIN + 1031)) * rng.choice([1e-3, 1.0, 1e3], size=(7, 1))
    w = rng.normal(size=V.shape[1])
    for rows in range(4, 8):
        full = einsum_dots(V[:rows], w)
        for cut in range(2, rows - 1):
            parts = np.concatenate([einsum_dots(V[:cut], w), einsum_dots(V[cut:rows], w)])
            if not np.array_equal(parts, full):
                return False  # pragma: no cover - a NumPy that sums blocks differently
    return True


def gmres(matvec: MatVec, b: FloatArray, x0: FloatArray, eps: float, restart: int,
          max_matvecs: int, combine: Combine | None = None,
          basis: FloatArray | None = None,
          dots: Dots | None = None,
          norm: Callable[[FloatArray], float] | None = None) -> tuple[FloatArray, float]:
    """Restarted GMRES for ``A x = b`` until ``||b - A x||_inf <= eps``.

    Classical Gram-Schmidt with one re-orthogonalization. The sup-norm of the current
    residual ``V_{j+1} Q_j^T (g_{j+1} e_{j+1})`` is checked after every step once its
    2-norm makes success possible (``||r||_2 <= sqrt(n) eps``), so the solve stops at the
    first Krylov step that meets ``eps``. Vector operations use ``np.einsum`` (no BLAS
    threads: deterministic, and no thread contention on shared machines).
    ``combine(w, h, V, sign)``: ``w += sign * einsum("i,in->n", h, V)`` in place, a faster
    routine giving the same numbers (e.g. :func:`altmarl.glearn.kernels.combine_rows`).
    ``basis``: a float64 buffer of at least ``(min(restart, n) + 1, n)`` for the Krylov
    basis, reused across calls (a sequence of solves then allocates it once; its contents
    are overwritten). ``dots(V, w)``: ``einsum("in,n->i", V, w)``, a faster routine giving
    the same numbers (e.g. :func:`split_dots`); ``norm(v)``: ``||v||_inf`` (default
    :func:`sup_norm`), likewise. Returns ``(x, ||b - A x||_inf)``.
    """
    comb = einsum_combine if combine is None else combine
    dot = einsum_dots if dots is None else dots
    sup = sup_norm if norm is None else norm
    n = b.size
    x = x0.copy()
    r = b - matvec(x)
    used = 1
    res = sup(r)
    sqrt_n = math.sqrt(n)
    rows = min(restart, n) + 1
    if basis is None:
        basis = np.empty((rows, n))
    elif (basis.dtype != np.float64 or basis.ndim != 2 or basis.shape[0] < rows
          or basis.shape[1] != n or not basis.flags.c_contiguous or not basis.flags.writeable):
        raise ValueError(f"basis: expected a writeable C-contiguous float64 buffer of shape "
                         f"({rows}, {n}), got {basis.dtype} {basis.shape}")
    while res > eps and used < max_matvecs:
        beta = float(np.sqrt(np.einsum("i,i->", r, r)))
        mdim = min(restart, n, max_matvecs - used)
        np.divide(r, beta, out=basis[0])
        cs = np.zeros(mdim)
        sn = np.zeros(mdim)
        R = np.zeros((mdim, mdim))
        g = np.zeros(mdim + 1)
        g[0] = beta
        j_end = 0
        r_in: FloatArray | None = None
        for j in range(mdim):
            w = matvec(basis[j])
            used += 1
            Vj = basis[: j + 1]
            h = dot(Vj, w)
            comb(w, h, Vj, -1.0)
            h2 = dot(Vj, w)
            comb(w, h2, Vj, -1.0)
            h += h2
            hn = float(np.sqrt(np.einsum("i,i->", w, w)))
            col = np.append(h, hn)
            for i in range(j):  # previous Givens rotations
                t = cs[i] * col[i] + sn[i] * col[i + 1]
                col[i + 1] = -sn[i] * col[i] + cs[i] * col[i + 1]
                col[i] = t
            den = math.hypot(col[j], col[j + 1])
            cs[j], sn[j] = (1.0, 0.0) if den == 0 else (col[j] / den, col[j + 1] / den)
            R[: j + 1, j] = col[: j + 1]
            R[j, j] = den
            g[j + 1] = -sn[j] * g[j]
            g[j] = cs[j] * g[j]
            j_end = j + 1
            if hn == 0.0:  # happy breakdown: exact solution in the subspace
                r_in = None
                break
            np.divide(w, hn, out=basis[j + 1])
            if abs(g[j + 1]) <= eps * sqrt_n:
                # residual = V_{j+1} Q^T (g_{j+1} e_{j+1}); Q = G_j ... G_0
                z = np.zeros(j + 2)
                z[j + 1] = g[j + 1]
                for i in range(j, -1, -1):
                    z[i], z[i + 1] = -sn[i] * z[i + 1], cs[i] * z[i + 1]
                    # (z[i] was 0 before this step: only the (i+1) component is non-zero)
                # einsum("i,in->n", z, basis) through comb: -0.0 + s is s for every s
                r_in = np.full(n, -0.0)
                comb(r_in, z, basis[: j + 2], 1.0)
                if sup(r_in) <= eps:
                    break
                r_in = None
        y = _back_substitute(R[:j_end, :j_end], g[:j_end])
        comb(x, y, basis[:j_end], 1.0)
        if r_in is not None:
            r = r_in
        else:
            r = b - matvec(x)
            used += 1
        prev, res = res, sup(r)
        if r_in is None and res > 0.5 * prev:
            break  # a whole cycle gained little: stagnation (e.g. round-off floor)
    return x, res


def _back_substitute(R: FloatArray, g: FloatArray) -> FloatArray:
    """Solve the upper-triangular system ``R y = g``."""
    n = g.size
    y = np.zeros(n)
    for i in range(n - 1, -1, -1):
        y[i] = (g[i] - R[i, i + 1:] @ y[i + 1:]) / R[i, i] if R[i, i] != 0 else 0.0
    return y


# ---------------------------------------------------------------------------
# value iteration
# ---------------------------------------------------------------------------


def value_iteration(
    backup: Backup,
    q0: FloatArray,
    v0: FloatArray,
    tol: float,
    max_iter: int,
    *,
    stop_on: str = "q",
    callback: Callable[[float], None] | None = None,
    vmax: Callable[[FloatArray], FloatArray] | None = None,
    distance: Callable[[FloatArray, FloatArray], float] | None = None,
) -> PlanResult:
    """Value iteration ``Q_{t+1} = backup(V_t)``, ``V_{t+1} = max_a Q_{t+1}`` from
    ``(q0, v0)``.

    Stops at the first ``t`` with ``||Q_{t+1} - Q_t||_inf <= tol`` (``stop_on="q"``: SPEC
    4's test, from ``Q_0 = 0``) or ``||V_{t+1} - V_t||_inf <= tol`` (``stop_on="v"``:
    induced-VI, SPEC 5.1), or after ``max_iter`` backups. ``callback(diff)`` is called
    after every backup. ``q0`` is returned when ``max_iter = 0``. ``vmax(Q) = max_a Q``
    and ``distance(a, b) = ||a - b||_inf`` (defaults NumPy's reductions) may be faster
    routines giving the same numbers.
    """
    if stop_on not in ("q", "v"):
        raise ValueError(f"stop_on = {stop_on!r}: expected 'q' or 'v'")
    if vmax is None:
        def vmax(q: FloatArray) -> FloatArray:
            return q.max(axis=-1)
    if distance is None:
        def distance(a: FloatArray, b: FloatArray) -> float:
            return float(np.abs(a - b).max())
    q, v = q0, v0
    history: list[float] = []
    diff = math.inf
    for it in range(1, max_iter + 1):
        qn = backup(v)
        vn = vmax(qn)
        diff = distance(qn, q) if stop_on == "q" else distance(vn, v)
        history.append(diff)
        q, v = qn, vn
        if callback is not None:
            callback(diff)
        if diff <= tol:
            return PlanResult(q, v, it, diff, True, history=history)
    return PlanResult(q, v, max_iter, diff, False, history=history)


# ---------------------------------------------------------------------------
# policy iteration
# ---------------------------------------------------------------------------


def policy_iteration(
    evaluate: Callable[[IntArray], FloatArray],
    q_from_v: Backup,
    actions: IntArray,
    max_iter: int,
    *,
    rtol: float = 1e-12,
    scale: str = "best",
) -> PlanResult:
    """Exact policy iteration (Howard): ``V = evaluate(actions)`` (the policy's value),
    ``Q = q_from_v(V)`` (one backup), then switch to ``argmax_a Q`` only in the states where
    it improves on the current action by more than ``rtol * max(1, |ref|)``, ``ref`` the
    best (``scale="best"``) or the current (``scale="current"``) action value; stop when no
    state improves (the policy is then optimal up to that tolerance) or after
    ``max_iter`` evaluations (``converged = False``; ``actions`` is then the last improved
    policy, ``v``/``q`` those of the policy before it). Used by the exact solver (SPEC 7).
    """
    if scale not in ("best", "current"):
        raise ValueError(f"scale = {scale!r}: expected 'best' or 'current'")
    V = Q = np.zeros(0)
    for it in range(1, max_iter + 1):
        V = evaluate(actions)
        Q = q_from_v(V)
        best = Q.max(axis=-1)
        cur = np.take_along_axis(Q, actions[..., None], axis=-1)[..., 0]
        ref = best if scale == "best" else cur
        improve = best > cur + rtol * np.maximum(1.0, np.abs(ref))
        if not improve.any():
            return PlanResult(Q, V, it, 0.0, True, actions=actions)
        actions = np.where(improve, Q.argmax(axis=-1), actions)
    return PlanResult(Q, V, max_iter, math.inf, False, actions=actions)


def inexact_policy_iteration(
    backup: Backup,
    evaluate: Callable[[IntArray, FloatArray, float], FloatArray],
    q0: FloatArray,
    v0: FloatArray,
    gamma: float,
    tol: float,
    max_iter: int,
    *,
    forcing: float = 0.05,
    callback: Callable[[float], None] | None = None,
    greedy: Callable[[FloatArray], tuple[FloatArray, IntArray]] | None = None,
    distance: Callable[[FloatArray, FloatArray], float] | None = None,
) -> PlanResult:
    """Inexact (optimistic) policy iteration on a ``gamma``-contraction (G-LEARN's
    ``"pi"`` solver, SPEC 4).

    ``q0 = backup(v0)``. Each round takes ``V_q = max_a Q``; since
    ``||T Q - Q||_inf <= gamma ||V_q - V||_inf`` for ``Q = backup(V)``, it stops once
    ``gamma ||V_q - V||_inf <= tol`` (that bound goes to ``history`` and ``callback``).
    Otherwise the greedy policy is evaluated by ``evaluate(actions, V_q, eps)`` (warm start
    ``V_q``, sup-norm accuracy ``eps = max(tol / (2 gamma), forcing * best bound so far)``:
    it tightens with the residual and never loosens, which guards against cycling near
    ties) and ``Q = backup(V)``. Three rounds without progress end the loop (``tol`` below
    the round-off floor). ``iterations`` counts the evaluations (one backup each).
    ``greedy(Q) = (max_a Q, argmax_a Q)`` (default NumPy's reductions; the first maximizer)
    and ``distance(a, b) = ||a - b||_inf`` (default NumPy's) may be faster routines giving
    the same numbers.
    """
    g = gamma
    V = v0
    Q: FloatArray | None = q0
    del q0  # the tables are large: hold each one only while it is needed
    eps_final = 0.5 * tol / max(g, 1e-12)
    best = math.inf
    stalled = 0
    history: list[float] = []
    iterations = 0
    converged = False
    bound = math.inf
    if greedy is None:
        def greedy(q: FloatArray) -> tuple[FloatArray, IntArray]:
            return q.max(axis=-1), np.asarray(q.argmax(axis=-1), dtype=np.int64)
    for _ in range(max_iter):
        assert Q is not None
        Vq, argmax = greedy(Q)
        bres = float(np.abs(Vq - V).max()) if distance is None else distance(Vq, V)
        bound = g * bres
        history.append(bound)
        if callback is not None:
            callback(bound)
        if bound <= tol:
            converged = True
            break
        # no progress for 3 rounds: tol is below what floating point can resolve
        stalled = stalled + 1 if bres >= best else 0
        if stalled >= 3:
            break
        iterations += 1
        actions = argmax
        best = min(best, bres)  # never loosen: guards against cycling near ties
        eps = max(eps_final, forcing * best)
        Q = None  # not needed until the next backup: one table less during both
        V = evaluate(actions, Vq, eps)
        Q = backup(V)
    assert Q is not None
    return PlanResult(Q, V, iterations, bound, converged, history=history)


__all__ = [
    "PlanResult",
    "evaluate_dense",
    "evaluate_dense_batch",
    "evaluate_gmres",
    "evaluate_scipy_gmres",
    "einsum_combine",
    "einsum_dots",
    "gmres",
    "inexact_policy_iteration",
    "policy_iteration",
    "split_dots",
    "split_dots_exact",
    "sup_norm",
    "value_iteration",
]
