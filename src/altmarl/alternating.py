"""ALTERNATING-MARL (paper Algorithm 14, SPEC 6): approximate best-response dynamics with
the UPDATE rule.

Start from ``pi_l^0`` (uniform by default) and alternate, for at most ``T = sweeps``
sweeps: G-LEARN (SPEC 4) proposes ``pi_g'`` against the current ``pi_l``, then L-LEARN
(SPEC 5) proposes ``pi_l'`` against the current ``pi_g``. Each proposal is judged by the
three-case UPDATE rule (Lemma D.14, :func:`altmarl.update.update_decision`) on estimated
joint values ``V_new = V(proposal, other)`` and ``V_old = V(current, other)``:

* ``V_new - eta > V_old + eta``: accept;
* ``V_new + eta < V_old - eta``: reject (keep the old policy);
* otherwise: no improvement (that player has no ``2 eta``-improving deviation).

The run stops when a full sweep (one global and one local proposal) accepts nothing, or
after ``T`` sweeps. By Lemma D.4 the game is a Markov potential game with potential
``V``; every accepted update raises it by at least ``2 eta`` (Lemma D.15).

Value comparisons use common random numbers: every estimate of the run uses the same
evaluation seed (the same initial states and per-chunk streams), and ``eta`` is derived,
when not given, from the *paired* standard error of ``V_new - V_old`` (see
:func:`alternating_marl`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtri

from altmarl._random import child as rnd_child
from altmarl._random import int_seed
from altmarl.evaluation import (
    Evaluation,
    Evaluator,
    ValueEstimate,
    evaluate,
    mc_evaluator,
    paired_stderr,
)
from altmarl.game import TabularGame
from altmarl.io import to_jsonable
from altmarl.l_learn import SOLVERS, l_learn
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.progress import Progress
from altmarl.update import Decision, update_decision

#: ``g_learner(game, pi_l, k, seed, pi_g) -> GlobalPolicy`` (``pi_g`` is the current global
#: policy or ``None`` before the first acceptance)
GlobalLearner = Callable[[TabularGame, LocalPolicy, int, int, "GlobalPolicy | None"], GlobalPolicy]
#: ``l_learner(game, pi_g, pi_l, seed) -> LocalPolicy``
LocalLearner = Callable[[TabularGame, GlobalPolicy, LocalPolicy, int], LocalPolicy]

#: decision recorded for the first global proposal when no ``pi_g0`` is given
INITIAL = "initial"


@dataclass
class StepRecord:
    """One proposal of ALTERNATING-MARL (one row of the history, SPEC 6).

    ``player`` is ``"global"`` or ``"local"``; ``v_new`` / ``v_old`` the estimated joint
    values with / without the proposal (common random numbers), ``se_diff`` the standard
    error of their difference, ``eta`` the tolerance used, ``decision`` one of
    ``"accept"``, ``"reject"``, ``"no-improvement"`` or ``"initial"``; ``learn_time`` and
    ``eval_time`` in seconds; ``samples`` what the learner reports (generative-model
    calls), ``eval_samples`` the simulator steps spent on the two estimates.
    """

    sweep: int
    player: str
    v_new: float
    v_old: float | None
    se_new: float
    se_old: float | None
    se_diff: float | None
    eta: float | None
    decision: str
    accepted: bool
    learn_time: float
    eval_time: float
    samples: int
    eval_samples: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def wall_time(self) -> float:
        """Learning plus evaluation time of this step."""
        return self.learn_time + self.eval_time

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {
            "sweep": self.sweep, "player": self.player, "v_new": self.v_new,
            "v_old": self.v_old, "se_new": self.se_new, "se_old": self.se_old,
            "se_diff": self.se_diff, "eta": self.eta, "decision": self.decision,
            "accepted": self.accepted, "learn_time": self.learn_time,
            "eval_time": self.eval_time, "wall_time": self.wall_time,
            "samples": self.samples, "eval_samples": self.eval_samples,
            "info": to_jsonable(self.info),
        }


@dataclass
class AlternatingResult:
    """Result of :func:`alternating_marl`.

    Attributes
    ----------
    pi_g, pi_l
        The final joint policy.
    value
        Held-out estimate of ``V(pi_g, pi_l)``: an :class:`~altmarl.Evaluation` (fresh
        seed, ``eval_rollouts`` x ``eval_horizon``) with the default evaluator, or the
        custom evaluator's :class:`~altmarl.evaluation.ValueEstimate`. Both have ``.mean``
        and ``.stderr``.
    history
        One :class:`StepRecord` per proposal, in order.
    converged
        ``True`` when the run stopped because a full sweep accepted nothing.
    sweeps
        Sweeps run.
    tolerance
        When converged: the certified part of the Nash-gap bound at the final pair,
        ``max`` over both players of ``2 eta + z se_diff`` of their last proposal (see
        :func:`alternating_marl`); the learners' own best-response error adds to it.
        ``None`` when not converged.
    config
        The settings of the run (JSON-friendly).
    """

    pi_g: GlobalPolicy
    pi_l: LocalPolicy
    value: Evaluation | ValueEstimate
    history: list[StepRecord]
    converged: bool
    sweeps: int
    tolerance: float | None
    config: dict[str, Any]
    wall_time: float = 0.0

    @property
    def accepted(self) -> int:
        """Number of accepted proposals (the initial global policy included)."""
        return sum(r.accepted for r in self.history)

    @property
    def samples(self) -> int:
        """Generative-model calls of all learners."""
        return sum(r.samples for r in self.history)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (policies not included: save them with ``.save``)."""
        v = self.value
        val = v.summary() if isinstance(v, Evaluation) else {"mean": v.mean, "stderr": v.stderr}
        return {
            "value": val,
            "converged": self.converged,
            "sweeps": self.sweeps,
            "accepted": self.accepted,
            "tolerance": self.tolerance,
            "samples": self.samples,
            "wall_time": self.wall_time,
            "k": self.pi_g.k,
            "config": to_jsonable(self.config),
            "history": [r.to_dict() for r in self.history],
        }

    def __repr__(self) -> str:
        return (f"AlternatingResult(k={self.pi_g.k}, value={self.value.mean:.4f} "
                f"+- {self.value.stderr:.4f}, sweeps={self.sweeps}, "
                f"accepted={self.accepted}, converged={self.converged})")


def alternating_marl(
    game: TabularGame,
    k: int,
    seed: int = 0,
    sweeps: int = 10,
    eta: float | None = None,
    m: int | None = 30,
    local_solver: str = "direct",
    eval_rollouts: int = 200,
    eval_horizon: int = 100,
    pi_l0: LocalPolicy | None = None,
    progress: bool = True,
    callback: Callable[[StepRecord], bool | None] | None = None,
    *,
    pi_g0: GlobalPolicy | None = None,
    confidence: float = 0.95,
    learner_tol: float | None = None,
    g_options: dict[str, Any] | None = None,
    l_options: dict[str, Any] | None = None,
    g_learner: GlobalLearner | None = None,
    l_learner: LocalLearner | None = None,
    evaluator: Evaluator | None = None,
    workers: int | None = None,
) -> AlternatingResult:
    """ALTERNATING-MARL (paper Algorithm 14, SPEC 6).

    Parameters
    ----------
    game, k
        The game and the global agent's subsample size (``1 <= k <= n``).
    seed
        One seed drives everything: ``SeedSequence(seed)`` spawns the comparison
        evaluator's seed, the held-out final evaluation's seed and one child per
        proposal (``(sweep, player)``) for the learners.
    sweeps
        ``T``: at most this many sweeps (one global and one local proposal each).
    eta
        UPDATE tolerance. ``None`` (default): per comparison,
        ``eta = z se_diff / 2 + learner_tol`` with ``se_diff`` the paired (common random
        numbers) standard error of ``V_new - V_old`` and ``z`` the two-sided normal
        quantile of ``confidence``: a proposal is accepted only when its estimated gain
        exceeds ``z se_diff + 2 learner_tol``, so a worse proposal is accepted with
        probability at most ``(1 - confidence) / 2`` per comparison. A number: a fixed
        ``eta`` for every comparison.
    m
        G-LEARN's Monte-Carlo samples per Bellman update (``None``: exact expectation).
    local_solver
        L-LEARN solver (:data:`altmarl.l_learn.SOLVERS`). Default ``"direct"``: the
        CRN policy search on the real objective, started from the induced-VI policy and
        the current one, so it is never worse than induced-VI under its evaluator (see
        docs/alternating.md for the comparison). ``"induced-vi"`` is the paper's practice.
    eval_rollouts, eval_horizon
        Monte-Carlo evaluation used by UPDATE (and for the final held-out value). The
        default 200 x 100 (four times the paper's final-evaluation budget) halves the
        standard error of the comparisons, so fewer real improvements are lost as
        "no improvement"; it costs a fraction of a second per estimate, little next to
        the learners.
    pi_l0
        Initial local policy (default uniform).
    progress
        Show a ``rich`` progress bar.
    callback
        Called with each :class:`StepRecord`; returning ``True`` stops the run.
    pi_g0
        Optional initial global policy; without it the first G-LEARN proposal is taken
        as the initial global policy (decision ``"initial"``).
    confidence
        Confidence level of the automatic ``eta`` and of the reported ``tolerance``.
    learner_tol
        Tolerance added to the automatic ``eta`` (default ``1e-6 r_max / (1 - gamma)``,
        a floor for the learners' numerical tolerance).
    g_options, l_options
        Extra keyword arguments for :func:`altmarl.g_learn.g_learn` / :func:`l_learn`.
    g_learner, l_learner
        Replace the learners (hooks, e.g. to inject proposals in tests):
        ``g_learner(game, pi_l, k, seed, pi_g) -> GlobalPolicy`` and
        ``l_learner(game, pi_g, pi_l, seed) -> LocalPolicy``.
    evaluator
        Replace the Monte-Carlo evaluator: ``evaluator(pi_g, pi_l) -> ValueEstimate``
        (e.g. exact values on small games).
    workers
        Threads for the Monte-Carlo evaluations (the numbers do not depend on it).

    Returns
    -------
    AlternatingResult
        ``tolerance`` (when converged): at the final pair, for each player, the last
        proposal was not accepted, so its estimated gain was at most ``2 eta``; the true
        gain is then at most ``2 eta + z se_diff`` (one-sided, at ``confidence``), and that
        player's Nash gap is at most ``2 eta + z se_diff`` plus the learner's
        best-response error (how far the proposal is from a true best response; G-LEARN's
        includes the ``k``-subsampling error of Theorem 4.4). ``tolerance`` is the max
        over the two players of the certified part.
    """
    t_start = time.perf_counter()
    k = game.check_k(k)
    if isinstance(sweeps, bool) or not isinstance(sweeps, int | np.integer) or sweeps < 1:
        raise ValueError(f"sweeps = {sweeps!r}: expected an integer >= 1")
    if eta is not None and not (eta >= 0 and math.isfinite(eta)):
        raise ValueError(f"eta = {eta!r}: expected None or a finite number >= 0")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence = {confidence!r}: expected a number in (0, 1)")
    if local_solver not in SOLVERS and l_learner is None:
        raise ValueError(f"local_solver = {local_solver!r}: expected one of {list(SOLVERS)}")
    for name, v in (("eval_rollouts", eval_rollouts), ("eval_horizon", eval_horizon)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} = {v!r}: expected an integer >= 1")
    if m is not None and (isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1):
        raise ValueError(f"m = {m!r}: expected None or an integer >= 1")
    if pi_l0 is not None and not isinstance(pi_l0, LocalPolicy):
        raise ValueError(f"pi_l0: expected None or an altmarl.LocalPolicy, got {type(pi_l0).__name__}")
    if pi_g0 is not None and (not isinstance(pi_g0, GlobalPolicy) or pi_g0.k != k):
        raise ValueError(f"pi_g0: expected None or an altmarl.GlobalPolicy with k = {k}")
    z = float(ndtri(0.5 + confidence / 2))  # standard normal quantile
    tol_l = 1e-6 * game.r_max / (1 - game.gamma) if learner_tol is None else float(learner_tol)
    if not (tol_l >= 0 and math.isfinite(tol_l)):
        raise ValueError(f"learner_tol = {learner_tol!r}: expected a finite number >= 0")

    root = np.random.SeedSequence(seed)
    ss_eval, ss_final, ss_learn = root.spawn(3)
    eval_seed = int_seed(ss_eval)
    final_seed = int_seed(ss_final)
    ev: Evaluator = evaluator or mc_evaluator(game, eval_rollouts, eval_horizon, eval_seed,
                                              workers)
    eval_cost = 0 if evaluator is not None else eval_rollouts * eval_horizon
    gl = g_learner or _default_g_learner(m, g_options or {})
    ll = l_learner or _default_l_learner(local_solver, ev, l_options or {})

    pi_l = pi_l0 if pi_l0 is not None else LocalPolicy.uniform(game)
    pi_g = pi_g0
    current: ValueEstimate | None = None  # estimate of V(pi_g, pi_l) (same evaluator)
    history: list[StepRecord] = []
    last: dict[str, StepRecord] = {}
    converged = stopped = False
    sweep = 0

    config = {"k": k, "seed": seed, "sweeps": sweeps, "eta": eta, "m": m,
              "local_solver": local_solver if l_learner is None else "custom",
              "eval_rollouts": eval_rollouts, "eval_horizon": eval_horizon,
              "confidence": confidence, "learner_tol": tol_l, "eval_seed": eval_seed,
              "final_seed": final_seed, "evaluator": "custom" if evaluator else "monte-carlo",
              "g_options": g_options or {}, "l_options": l_options or {}, "game": game.name}

    bar = Progress(progress).start()
    bar.add_task(f"ALTERNATING-MARL k={k}", total=2 * sweeps)
    try:
        for sweep in range(1, sweeps + 1):
            accepted_any = False
            for p_idx, player in enumerate(("global", "local")):
                child = int_seed(rnd_child(ss_learn, 2 * (sweep - 1) + p_idx))
                t0 = time.perf_counter()
                if player == "global":
                    prop_g = gl(game, pi_l, k, child, pi_g)
                    _check_proposal_g(prop_g, game, k)
                    cand_g, cand_l = prop_g, pi_l
                    info = dict(prop_g.info)
                else:
                    assert pi_g is not None
                    prop_l = ll(game, pi_g, pi_l, child)
                    if not isinstance(prop_l, LocalPolicy):
                        raise ValueError(f"l_learner returned {type(prop_l).__name__}, "
                                         "expected an altmarl.LocalPolicy")
                    cand_g, cand_l = pi_g, prop_l
                    info = dict(prop_l.info)
                learn_time = time.perf_counter() - t0
                t1 = time.perf_counter()
                new = ev(cand_g, cand_l)
                n_evals = 1
                if pi_g is None:
                    decision, se_d, eta_used = INITIAL, None, None
                    old = None
                else:
                    if current is None:
                        current = ev(pi_g, pi_l)
                        n_evals += 1
                    old = current
                    se_d = paired_stderr(new, old)
                    eta_used = float(eta) if eta is not None else 0.5 * z * se_d + tol_l
                    decision = update_decision(new.mean, old.mean, eta_used).value
                eval_time = time.perf_counter() - t1
                accepted = decision in (Decision.ACCEPT.value, INITIAL)
                if accepted:
                    pi_g, pi_l, current = cand_g, cand_l, new
                    accepted_any = True
                rec = StepRecord(
                    sweep=sweep, player=player, v_new=new.mean,
                    v_old=None if old is None else old.mean, se_new=new.stderr,
                    se_old=None if old is None else old.stderr, se_diff=se_d, eta=eta_used,
                    decision=decision, accepted=accepted, learn_time=learn_time,
                    eval_time=eval_time, samples=int(info.get("samples", 0) or 0),
                    eval_samples=n_evals * eval_cost, info=_summary_info(info))
                history.append(rec)
                last[player] = rec
                bar.advance(status=f"sweep {sweep}/{sweeps} {player}: {decision} "
                            f"(V={current.mean if current else new.mean:.4f})")
                if callback is not None and callback(rec):
                    stopped = True
                    break
            if stopped:
                break
            if not accepted_any:
                converged = True
                break
    finally:
        bar.stop()
    assert pi_g is not None
    tolerance = None
    if converged:
        tolerance = max(_certified(last[p], z) for p in ("global", "local"))
    if evaluator is None:
        value: Evaluation | ValueEstimate = evaluate(game, pi_g, pi_l, eval_rollouts,
                                                     eval_horizon, seed=final_seed,
                                                     workers=workers)
    else:
        value = evaluator(pi_g, pi_l)
    return AlternatingResult(pi_g=pi_g, pi_l=pi_l, value=value, history=history,
                             converged=converged, sweeps=sweep, tolerance=tolerance,
                             config=config, wall_time=time.perf_counter() - t_start)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _certified(rec: StepRecord, z: float) -> float:
    """Certified part of a non-accepting player's gap bound: ``2 eta + z se_diff``."""
    eta = rec.eta or 0.0
    return 2 * eta + z * (rec.se_diff or 0.0)


def _check_proposal_g(pi: Any, game: TabularGame, k: int) -> None:
    if not isinstance(pi, GlobalPolicy):
        raise ValueError(f"g_learner returned {type(pi).__name__}, expected an altmarl.GlobalPolicy")
    if pi.k != k or (pi.n_sg, pi.n_sl, pi.n_ag) != (game.n_sg, game.n_sl, game.n_ag):
        raise ValueError(f"g_learner returned a policy for k = {pi.k}, spaces "
                         f"{(pi.n_sg, pi.n_sl, pi.n_ag)}; expected k = {k} and {game.spaces}")


def _default_g_learner(m: int | None, options: dict[str, Any]) -> GlobalLearner:
    def learn(game: TabularGame, pi_l: LocalPolicy, k: int, seed: int,
              pi_g: GlobalPolicy | None) -> GlobalPolicy:
        from altmarl.g_learn import g_learn  # type: ignore[import-not-found]

        out: GlobalPolicy = g_learn(game, pi_l, k, m=m, seed=seed, **options)
        return out

    return learn


def _default_l_learner(solver: str, ev: Evaluator, options: dict[str, Any]) -> LocalLearner:
    def learn(game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy, seed: int) -> LocalPolicy:
        # the value is estimated by the alternation itself (same evaluator): skip it here
        return l_learn(game, pi_g, solver, seed, pi_l=pi_l, estimate_value=False, **options)

    return learn


_INFO_KEYS = ("solver", "method", "samples", "wall_time", "iterations", "residual",
              "rounds", "evaluations", "search_value", "start_values", "exhaustive")


def _summary_info(info: dict[str, Any]) -> dict[str, Any]:
    """The scalar diagnostics of a learner's info worth keeping in the history."""
    out: dict[str, Any] = {}
    for key, val in info.items():
        if key in _INFO_KEYS or isinstance(val, bool | int | float | str):
            if isinstance(val, np.ndarray):
                continue
            out[key] = val
    return out
