"""Solving G-LEARN's operator (SPEC 4): value iteration and inexact policy iteration on
``T_hat`` (adapters over the shared :mod:`altmarl.planning`), and the greedy policy with
seeded ties (:func:`policy_from_operator`, the last step of every G-LEARN variant).

* ``solver="vi"`` is SPEC 4's value iteration from ``Q = 0``, stopped when
  ``||Q_{t+1} - Q_t||_inf <= tol``.
* ``solver="pi"`` (default) is inexact policy iteration on the *same* operator: policy
  evaluation solves ``(I - gamma P_pi) V = r_pi`` with GMRES on a sparse ``P_pi``;
  improvement is greedy.

Both report the true final residual ``||T_hat Q - Q||_inf`` of the returned ``Q`` (one extra
backup) and reach the same fixed point within ``residual / (1 - gamma)``.

**Ties** in the greedy policy: :func:`altmarl.policies.greedy` — actions within ``1e-12``
(relative) of the maximum are tied; ``tie_break="seeded"`` (default) picks one uniformly at
random with a generator seeded by :func:`altmarl._random.tie_seed` ``(seed)``; ``"lowest"``
takes the lowest index. **Standard parameterization**: the returned policy acts on
histograms, its ``q`` the tuple ``Q`` averaged over orderings
(:func:`altmarl.glearn.states.histogram_q`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from altmarl import planning
from altmarl._random import tie_seed
from altmarl.game import TabularGame
from altmarl.glearn import kernels
from altmarl.glearn.operator import (
    ColumnsProduct,
    EmpiricalOperator,
    ExactGlobalModel,
    OperatorModel,
    backup,
    policy_reward,
)
from altmarl.glearn.options import DEFAULT_PI_ROUNDS, GLearnOptions
from altmarl.glearn.states import histogram_q
from altmarl.histogram import num_histograms, num_tuples
from altmarl.policies import GlobalPolicy
from altmarl.progress import Progress
from altmarl.sampling import Stratified, type_groups
from altmarl.threads import resolve_threads

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: GMRES restart length used by the ``"pi"`` solver
GMRES_RESTART: Final = 20
#: policy evaluation accuracy relative to the current Bellman residual (inexact PI)
FORCING: Final = 0.05


class ConvergenceWarning(UserWarning):
    """G-LEARN stopped at ``max_iter`` before reaching ``tol``."""


@dataclass
class _SolveStats:
    iterations: int = 0
    sweeps: int = 0
    matvecs: int = 0
    history: list[float] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    converged: bool = False


def _residual_bar(bar: Progress, label: str, total: int) -> Callable[[float], None] | None:
    """A progress task showing the residual, as a solver callback (``None`` when no bar is
    drawn)."""
    if not bar.active:
        return None
    task = bar.add_task(label, total=total, status="residual -")
    return lambda res: bar.advance(task, status=f"residual {res:.3g}")


def _solve_vi(model: OperatorModel, tol: float, max_iter: int, stats: _SolveStats,
              progress: bool) -> FloatArray:
    """SPEC 4: ``Q_0 = 0``, ``Q_{t+1} = T_hat Q_t`` until ``||Q_{t+1} - Q_t||_inf <= tol``
    (:func:`altmarl.planning.value_iteration`)."""
    Q0 = np.zeros((model.n_sg, model.n_states, model.n_ag))
    # a fused operator has the kernels loaded: one pass for the max over actions and for
    # the sup-norm distance (the same numbers as NumPy's reductions)
    fused = getattr(model, "fused", False)
    with Progress(enabled=progress, transient=True) as bar:
        step = _residual_bar(bar, "G-LEARN value iteration", max_iter)
        res = planning.value_iteration(
            lambda V: backup(model, V), Q0, Q0.max(axis=-1), tol, max_iter, stop_on="q",
            callback=step, vmax=(lambda q: kernels.max_argmax(q)[0]) if fused else None,
            distance=kernels.max_abs_diff if fused else None)
    stats.sweeps += res.iterations
    stats.iterations += res.iterations
    stats.history.extend(res.history)
    stats.converged = res.converged
    return res.q


def _evaluate_policy(model: OperatorModel, actions: IntArray, x0: FloatArray, eps: float,
                     stats: _SolveStats, basis: FloatArray | None = None,
                     dots: planning.Dots | None = None) -> FloatArray:
    """Solve ``(I - gamma P_pi) V = r_pi`` to ``||residual||_inf <= eps``
    (:func:`altmarl.planning.evaluate_gmres` on the sparse ``P_pi``; ``basis`` its Krylov
    buffer, shared by the evaluations of one solve; ``dots`` its projections)."""
    P = model.policy_matrix(actions)
    b = policy_reward(model, actions).ravel()
    system = P.system(model.gamma) if isinstance(P, ColumnsProduct) else None
    combine = norm = None
    if getattr(model, "fused", False):  # the kernels are loaded: one-pass updates
        threads = getattr(model, "threads", 1)
        norm = kernels.max_abs

        def combine(w: FloatArray, h: FloatArray, V: FloatArray, sign: float) -> None:
            kernels.combine_rows(w, h, V, sign, threads)

    x, res, matvecs = planning.evaluate_gmres(P, b, model.gamma, x0.ravel(), eps,
                                              GMRES_RESTART, max_matvecs=2000, system=system,
                                              combine=combine, basis=basis, dots=dots,
                                              norm=norm)
    stats.matvecs += matvecs
    stats.evaluations.append({"matvecs": matvecs, "eps": eps, "residual": res})
    return np.asarray(x.reshape(model.n_sg, model.n_states))


def _solve_pi(model: OperatorModel, tol: float, max_iter: int, stats: _SolveStats,
              progress: bool) -> FloatArray:
    """Inexact policy iteration on the same operator
    (:func:`altmarl.planning.inexact_policy_iteration`): greedy policy, GMRES evaluation
    to an accuracy that tightens with the residual, until the residual bound
    ``gamma ||max_a Q - V||_inf`` is ``<= tol``."""
    V0 = np.zeros((model.n_sg, model.n_states))

    n = model.n_sg * model.n_states
    # one Krylov buffer for every evaluation: allocated once, not once per policy
    basis = np.empty((min(GMRES_RESTART, n) + 1, n))
    fused = bool(getattr(model, "fused", False))
    threads = resolve_threads(getattr(model, "threads", 1)) if fused else 1
    with ExitStack() as stack:
        dots = None
        if threads > 1 and n >= planning.SPLIT_DOTS_MIN:  # GMRES's projections on threads
            pool = stack.enter_context(ThreadPoolExecutor(threads - 1))
            dots = planning.split_dots(pool, threads)

        def evaluate(actions: IntArray, x0: FloatArray, eps: float) -> FloatArray:
            return _evaluate_policy(model, actions, x0, eps, stats, basis, dots)

        res = _improve(model, evaluate, V0, tol, max_iter, progress, fused)
    stats.iterations += res.iterations
    stats.sweeps += res.iterations
    stats.history.extend(res.history)
    stats.converged = res.converged
    return res.q


def _improve(model: OperatorModel,
             evaluate: Callable[[IntArray, FloatArray, float], FloatArray],
             V0: FloatArray, tol: float, max_iter: int, progress: bool,
             fused: bool) -> planning.PlanResult:
    """:func:`altmarl.planning.inexact_policy_iteration` on ``model`` from ``V0`` (a fused
    operator has the kernels loaded: one pass for max and argmax, and for the distance,
    the same numbers)."""
    greedy = kernels.max_argmax if fused else None
    distance = kernels.max_abs_diff if fused else None
    with Progress(enabled=progress, transient=True) as bar:
        step = _residual_bar(bar, "G-LEARN policy iteration", max_iter)
        # Q_0 = T_hat applied to Q = 0, passed without a reference here so that the loop
        # can free it (the tables are the largest arrays of a solve after the store)
        res = planning.inexact_policy_iteration(
            lambda V: backup(model, V), evaluate,
            model.r_g[:, None, :] + model.r_loc[:, :, None], V0, model.gamma, tol, max_iter,
            forcing=FORCING, callback=step, greedy=greedy, distance=distance)
    return res


def solve(op: EmpiricalOperator,
          options: GLearnOptions | None = None) -> tuple[FloatArray, dict[str, Any]]:
    """Fixed point of ``op`` (SPEC 4) with ``options.solver``, ``tol``, ``max_iter`` and
    ``progress`` (default ``GLearnOptions()``). Returns ``(Q, info)`` with the true final
    residual ``||T_hat Q - Q||_inf`` in ``info["residual"]``; warns
    (:class:`ConvergenceWarning`) when it stops before ``tol``."""
    opts = GLearnOptions.from_keywords(options)
    tol_f, solver, max_iter = opts.tol, opts.solver, opts.max_iter
    model = op.model
    g = model.gamma
    if max_iter is None:
        if solver == "vi":
            rmax = float(max(np.abs(op.reward()).max(), 1e-300))
            max_iter = 10 + (math.ceil(math.log(tol_f / rmax) / math.log(g)) if 0 < g and rmax > tol_f else 1)
        else:
            max_iter = DEFAULT_PI_ROUNDS
    stats = _SolveStats()
    t0 = time.perf_counter()
    c0 = time.process_time()
    if solver == "vi":
        Q = _solve_vi(model, tol_f, max_iter, stats, opts.progress)
    else:
        Q = _solve_pi(model, tol_f, max_iter, stats, opts.progress)
    t_solve = time.perf_counter() - t0
    residual = op.residual(Q)  # the true residual of the returned table (one more backup)
    stats.sweeps += 1
    if not stats.converged:
        why = (f"after max_iter = {max_iter} iterations" if stats.iterations >= max_iter
               else "(no progress: tol is below the round-off floor?)")
        warnings.warn(
            f"G-LEARN ({solver}) stopped {why} with residual {residual:.3g} > tol = {tol_f:g}",
            ConvergenceWarning, stacklevel=3)
    info = {
        "solver": solver,
        "iterations": stats.iterations,
        "sweeps": stats.sweeps,
        "matvecs": stats.matvecs,
        "residual": residual,
        "converged": bool(stats.converged),
        "tol": tol_f,
        "solve_seconds": t_solve,
        "solve_cpu_seconds": time.process_time() - c0,
        "residual_history": [float(v) for v in stats.history],
    }
    return Q, info


def policy_from_operator(
    game: TabularGame,
    op: EmpiricalOperator,
    seed: int,
    options: GLearnOptions | None = None,
    *,
    method: str = "g-learn",
    extra_info: dict[str, Any] | None = None,
    started: tuple[float, float] | None = None,
) -> GlobalPolicy:
    """The last step of G-LEARN (SPEC 4), shared by :func:`altmarl.g_learn` and
    :func:`altmarl.g_learn_stochastic`: solve ``op`` (:func:`solve` with ``options``),
    average a standard ``Q`` over orderings (:func:`~altmarl.glearn.states.histogram_q`),
    and return the greedy :class:`~altmarl.policies.GlobalPolicy` (ties:
    ``options.tie_break``, seeded by :func:`altmarl._random.tie_seed`) with G-LEARN's
    ``info`` (see :func:`altmarl.g_learn`) under ``method``, plus ``extra_info``.
    ``started = (perf_counter, process_time)`` at the caller's start sets the origin of
    ``wall_seconds`` / ``cpu_seconds`` (default: now).
    """
    t0, c0 = started if started is not None else (time.perf_counter(), time.process_time())
    opts = GLearnOptions.from_keywords(options)
    tie_break = opts.tie_break
    Q, sinfo = solve(op, opts)
    d = game.n_sl
    scheme = op.sampling
    n_h = num_histograms(op.k, d)
    n_t = num_tuples(op.k, d)
    if op.surrogate == "stratified":  # per-type histograms / per-type ordered tuples
        assert isinstance(scheme, Stratified) and scheme.types is not None
        n_h = op.shape[1]
        n_t = 1
        for kc, g in zip(scheme.ks, type_groups(scheme.types), strict=True):
            n_t *= num_tuples(kc, int(g.size))
    S, A = game.n_sg, game.n_ag
    q_hist = Q if op.parameterization == "mean-field" else histogram_q(Q, op.k, d)
    info: dict[str, Any] = {
        "method": method,
        "parameterization": op.parameterization,
        "k": op.k,
        "m": op.m,
        "seed": int(seed),
        "crn": op.crn,
        "gamma": game.gamma,
        **sinfo,
        "samples": 0 if op.m is None else S * op.shape[1] * A * op.m,
        "samples_mean_field": None if op.m is None else S * n_h * A * op.m,
        "samples_standard": None if op.m is None else S * n_t * A * op.m,
        "draws": op.draws,
        "table_size": S * op.shape[1] * A,
        "table_size_mean_field": S * n_h * A,
        "table_size_standard": S * n_t * A,
        "n_states": op.shape[1],
        "tie_break": tie_break,
        "sample_seconds": op.sample_seconds,
    }
    if op.crn == "pool":
        info["pool_size"] = op.pool_size
    if isinstance(op.model, ExactGlobalModel):
        info["exact_global"] = True
    if scheme is not None:  # SPEC 12: the scheme, the surrogate, the table's size
        info["sampling"] = scheme.to_json()
        info["surrogate"] = op.surrogate
        if op.surrogate == "stratified":
            assert isinstance(scheme, Stratified) and scheme.types is not None
            info["histograms_per_type"] = [
                num_histograms(kc, int(g.size))
                for kc, g in zip(scheme.ks, type_groups(scheme.types), strict=True)]
            info["histograms"] = op.shape[1]
    info.update(extra_info or {})
    ties = tie_seed(int(seed)) if tie_break == "seeded" else None
    info["wall_seconds"] = time.perf_counter() - t0
    info["cpu_seconds"] = time.process_time() - c0
    return GlobalPolicy.from_q(op.k, q_hist, info=info, game=game, tie_seed=ties,
                               sampling=scheme)
