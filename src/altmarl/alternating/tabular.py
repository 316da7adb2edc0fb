"""ALTERNATING-MARL on tabular games (paper Algorithm 14, SPEC 6): ``am.alternating_marl``.

Start from ``pi_l^0`` (uniform by default) and alternate, for at most ``T = sweeps``
sweeps: G-LEARN (SPEC 4) proposes ``pi_g'`` against the current ``pi_l``, then L-LEARN
(SPEC 5) proposes ``pi_l'`` against the current ``pi_g``. Each proposal is judged by the
three-case UPDATE rule (Lemma D.14, :func:`altmarl.update.compare`) on estimated joint
values ``V_new = V(proposal, other)`` and ``V_old = V(current, other)``:

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

The loop itself is :func:`altmarl.alternating.loop.run_alternating`; this module supplies
its tabular parts (:class:`TabularAdapter`: G-LEARN / L-LEARN proposals, the Monte-Carlo
evaluator, the seeds), the validated settings (:class:`AlternatingOptions`) and the result
(:class:`AlternatingResult`). :func:`alternating_marl` is the keyword layer of SPEC 10 over
:func:`run_tabular`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclasses_fields
from typing import Any

import numpy as np

from altmarl._random import child as rnd_child
from altmarl._random import int_seed
from altmarl._validate import (
    check_choice,
    check_float,
    check_int,
    check_kwargs,
    check_open_unit,
)
from altmarl.alternating.loop import (
    GLOBAL,
    INITIAL,
    LOCAL,
    GameAdapter,
    LoopState,
    Proposal,
    StepRecord,
    run_alternating,
)
from altmarl.display import html_table
from altmarl.evaluation import (
    Evaluation,
    Evaluator,
    ValueEstimate,
    evaluate,
    mc_evaluator,
)
from altmarl.game import TabularGame
from altmarl.generative.game import GenerativeGame
from altmarl.io import to_jsonable
from altmarl.llearn import SOLVERS, l_learn
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme, Uniform, resolve
from altmarl.tracking.base import as_trackers, final_of_result, with_trackers
from altmarl.update import (
    EtaRule,
    certified_gap,
    evaluation_horizon,
    normal_quantile,
    truncation_bias,
    warn_short_horizon,
)

__all__ = ["INITIAL", "AlternatingOptions", "AlternatingResult", "GlobalLearner",
           "LocalLearner", "StepRecord", "TabularAdapter", "alternating_marl", "run_tabular"]

#: ``g_learner(game, pi_l, k, seed, pi_g) -> GlobalPolicy`` (``pi_g`` is the current global
#: policy or ``None`` before the first acceptance)
GlobalLearner = Callable[[TabularGame, LocalPolicy, int, int, "GlobalPolicy | None"], GlobalPolicy]
#: ``l_learner(game, pi_g, pi_l, seed) -> LocalPolicy``
LocalLearner = Callable[[TabularGame, GlobalPolicy, LocalPolicy, int], LocalPolicy]


@dataclass(frozen=True)
class AlternatingOptions:
    """The settings of a tabular ALTERNATING-MARL run, validated once (frozen).

    Fields are the keywords of :func:`alternating_marl` with the same meaning and
    defaults (``learner_tol = None``: ``1e-6 (r_max - r_min) / (1 - gamma)`` of the game;
    ``eval_horizon = None``: :func:`altmarl.update.evaluation_horizon` of its ``gamma``).
    ``ValueError`` names the offending field.
    """

    sweeps: int = 10
    eta: float | None = None
    m: int | None = 30
    local_solver: str = "direct"
    eval_rollouts: int = 200
    eval_horizon: int | None = None
    confidence: float = 0.95
    learner_tol: float | None = None
    g_options: dict[str, Any] = field(default_factory=dict)
    l_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "sweeps", check_int("sweeps", self.sweeps, 1))
        if self.eta is not None:
            put(self, "eta", check_float("eta", self.eta, minimum=0))
        if self.m is not None:
            put(self, "m", check_int("m", self.m, 1))
        check_choice("local_solver", self.local_solver, SOLVERS)
        put(self, "eval_rollouts", check_int("eval_rollouts", self.eval_rollouts, 1))
        if self.eval_horizon is not None:
            put(self, "eval_horizon", check_int("eval_horizon", self.eval_horizon, 1))
        check_open_unit("confidence", self.confidence)
        if self.learner_tol is not None:
            put(self, "learner_tol", check_float("learner_tol", self.learner_tol, minimum=0))
        for name in ("g_options", "l_options"):
            put(self, name, check_kwargs(name, getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (the keywords of :func:`alternating_marl`)."""
        return to_jsonable(asdict(self))  # type: ignore[no-any-return]

    def check(self, game: TabularGame, k: int) -> None:
        """Check, before any work, that a run with these options can start on ``game`` with
        ``k``: ``k <= n``, every ``g_options`` key is a G-LEARN option and the G-LEARN
        tables fit their size limits (:func:`altmarl.glearn.operator.check_sizes`), every
        ``l_options`` key is an option of ``local_solver``. A ``ValueError`` names the
        offending field (``g_options.max_tabel``, ``k``, ...) and what to do."""
        from altmarl.glearn.operator import check_sizes
        from altmarl.glearn.options import GLearnOptions
        from altmarl.llearn import solver_options

        k = game.check_k(k)
        g_fields = [f.name for f in dataclasses_fields(GLearnOptions) if f.name != "m"]
        bad = [key for key in self.g_options if key not in g_fields]
        if bad:
            raise ValueError(f"g_options.{bad[0]}: not an option of G-LEARN; expected some of "
                             f"{', '.join(g_fields)}")
        check_sizes(game, k, GLearnOptions(m=self.m, **self.g_options))
        direct = ("eval_rollouts", "eval_horizon", "evaluator", "options")
        solver_options(self.local_solver,
                       **{key: v for key, v in self.l_options.items() if key not in direct})

    def rule(self, game: TabularGame, truncated: bool = True) -> EtaRule:
        """UPDATE's tolerance rule: fixed ``eta``, or ``z se_diff / 2 + learner_tol``, plus
        half the truncation bias bound of the Monte-Carlo estimates (``truncated``; SPEC
        13, :func:`altmarl.update.truncation_bias` at :meth:`horizon` with the game's true
        reward bounds). ``truncated=False`` (a custom evaluator): ``tail = 0``."""
        r_min, r_max = game.reward_bounds
        tail = truncation_bias(game.gamma, self.horizon(game), r_min, r_max) if truncated else 0.0
        if truncated:
            warn_short_horizon(game.gamma, self.horizon(game), tail)
        return EtaRule(fixed=self.eta, z=normal_quantile(self.confidence),
                       learner_tol=self.tolerance(game), tail=tail)

    def horizon(self, game: TabularGame) -> int:
        """``eval_horizon`` resolved for ``game``: the given one, or
        :func:`altmarl.update.evaluation_horizon` of ``game.gamma`` (the truncation bias is
        at most ``1e-4`` of the value span; 100 at ``gamma <= 0.91``, 180 at 0.95)."""
        return evaluation_horizon(game.gamma) if self.eval_horizon is None else self.eval_horizon

    def tolerance(self, game: TabularGame) -> float:
        """``learner_tol`` resolved for ``game`` (default ``1e-6`` of the value span
        ``(r_max - r_min) / (1 - gamma)``, true reward bounds)."""
        if self.learner_tol is None:
            r_min, r_max = game.reward_bounds
            return 1e-6 * (r_max - r_min) / (1 - game.gamma)
        return float(self.learner_tol)


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
        ``max`` over both players of ``2 eta + z se_diff + tail`` of their last proposal
        (see :func:`alternating_marl`; it bounds gains in the infinite-horizon value);
        the learners' own best-response error adds to it.
        ``None`` when not converged.
    config
        The settings of the run (JSON-friendly).
    last_proposals
        Each player's last proposal when it is not the played policy at the end
        (``"global"`` / ``"local"``): deviations from the final pair, which the Nash-gap
        certificate of run directories evaluates
        (:func:`altmarl.exact.nash_gap_certificate`). Not in :meth:`to_dict`.
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
    last_proposals: dict[str, Any] = field(default_factory=dict)

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

    def _repr_html_(self) -> str:
        """Notebook display: the final value, how the run stopped, and one row per
        proposal of the history (UPDATE decisions, SPEC 6)."""
        v = self.value
        rows: list[tuple[str, Any]] = [("k", self.pi_g.k), ("V(pi_g, pi_l)", v.mean),
                                       ("standard error", v.stderr)]
        if isinstance(v, Evaluation):
            rows.append(("95% interval", v.ci95))
        rows += [
            ("converged", self.converged), ("sweeps", self.sweeps),
            ("proposals accepted", f"{self.accepted} of {len(self.history)}"),
            ("Nash-gap tolerance", self.tolerance), ("samples", self.samples),
            ("wall time", f"{self.wall_time:.1f} s"),
        ]
        records = [[r.sweep, r.player, r.decision, r.v_new, r.v_old, r.eta, r.se_diff,
                    f"{r.wall_time:.2f}"] for r in self.history]
        return html_table("AlternatingResult", rows,
                          columns=["sweep", "player", "decision", "v_new", "v_old", "eta",
                                   "se_diff", "seconds"], records=records)


class TabularAdapter(GameAdapter[GlobalPolicy, LocalPolicy]):
    """The tabular parts of the loop (:mod:`altmarl.alternating.loop`): G-LEARN and
    L-LEARN proposals (or the ``g_learner`` / ``l_learner`` hooks), the evaluator with one
    fixed seed (common random numbers for the whole run), and the proposal seeds
    ``int_seed(child(ss_learn, 2 (sweep - 1) + player))``."""

    crn_per_sweep = False

    def __init__(self, game: TabularGame, k: int, evaluator: Evaluator, eval_cost: int,
                 ss_learn: np.random.SeedSequence, g_learner: GlobalLearner,
                 l_learner: LocalLearner) -> None:
        self.game, self.k = game, k
        self.evaluator, self.eval_cost = evaluator, eval_cost
        self.ss_learn = ss_learn
        self.g_learner, self.l_learner = g_learner, l_learner
        #: the last proposal of each player (:attr:`AlternatingResult.last_proposals`)
        self.proposals: dict[str, Any] = {}

    def proposal_seed(self, sweep: int, player: str) -> int:
        """Child ``2 (sweep - 1) + (0 global | 1 local)`` of the learners' stream."""
        return int_seed(rnd_child(self.ss_learn, 2 * (sweep - 1) + (0 if player == GLOBAL else 1)))

    def crn_seed(self, sweep: int) -> None:
        """One evaluator seed for the whole run (fixed inside :attr:`evaluator`)."""
        return None

    def propose_global(self, state: LoopState[GlobalPolicy, LocalPolicy],
                       seed: Any) -> Proposal[GlobalPolicy]:
        """G-LEARN against ``state.pi_l``."""
        pi = self.g_learner(self.game, state.pi_l, self.k, seed, state.pi_g)
        _check_proposal_g(pi, self.game, self.k)
        self.proposals[GLOBAL] = pi
        return _proposal(pi, dict(pi.info))

    def propose_local(self, state: LoopState[GlobalPolicy, LocalPolicy],
                      seed: Any) -> Proposal[LocalPolicy]:
        """L-LEARN against ``state.pi_g``."""
        assert state.pi_g is not None
        pi = self.l_learner(self.game, state.pi_g, state.pi_l, seed)
        if not isinstance(pi, LocalPolicy):
            raise ValueError(f"l_learner returned {type(pi).__name__}, "
                             "expected an altmarl.LocalPolicy")
        self.proposals[LOCAL] = pi
        return _proposal(pi, dict(pi.info))

    def evaluate_pair(self, pi_g: GlobalPolicy, pi_l: LocalPolicy, crn_seed: Any) -> ValueEstimate:
        """The run's evaluator (same seed every call)."""
        return self.evaluator(pi_g, pi_l)


def _proposal(pi: Any, info: dict[str, Any]) -> Proposal[Any]:
    return Proposal(pi, summary_info(info), int(info.get("samples", 0) or 0))


def run_tabular(
    game: TabularGame,
    k: int,
    options: AlternatingOptions,
    seed: int = 0,
    *,
    pi_l0: LocalPolicy | None = None,
    pi_g0: GlobalPolicy | None = None,
    progress: bool = True,
    callback: Callable[[StepRecord], bool | None] | None = None,
    g_learner: GlobalLearner | None = None,
    l_learner: LocalLearner | None = None,
    evaluator: Evaluator | None = None,
    workers: int | None = None,
    sampling: Scheme | None = None,
    callbacks: Any = None,
) -> AlternatingResult:
    """ALTERNATING-MARL (paper Algorithm 14, SPEC 6) with validated ``options``; see
    :func:`alternating_marl` for the arguments and the result."""
    t_start = time.perf_counter()
    if workers is not None:
        workers = check_int("workers", workers, 1)
    trackers = as_trackers(callbacks)
    scheme = resolve(sampling, k, game)
    k = scheme.k
    if not isinstance(options, AlternatingOptions):
        raise ValueError(f"options: expected an AlternatingOptions, got {type(options).__name__}")
    if pi_l0 is not None and not isinstance(pi_l0, LocalPolicy):
        raise ValueError(f"pi_l0: expected None or an altmarl.LocalPolicy, got {type(pi_l0).__name__}")
    if pi_g0 is not None and (not isinstance(pi_g0, GlobalPolicy) or pi_g0.k != k):
        raise ValueError(f"pi_g0: expected None or an altmarl.GlobalPolicy with k = {k}")
    if pi_g0 is not None and pi_g0.sampling.bind(game) != scheme:
        raise ValueError(f"pi_g0: made for sampling {pi_g0.sampling.describe()}, expected "
                         f"{scheme.describe()}")
    o = options
    rule = o.rule(game, truncated=evaluator is None)
    horizon = o.horizon(game)

    root = np.random.SeedSequence(seed)
    ss_eval, ss_final, ss_learn = root.spawn(3)
    eval_seed = int_seed(ss_eval)
    final_seed = int_seed(ss_final)
    ev: Evaluator = evaluator or mc_evaluator(game, o.eval_rollouts, horizon, eval_seed, workers)
    eval_cost = 0 if evaluator is not None else o.eval_rollouts * horizon
    adapter = TabularAdapter(game, k, ev, eval_cost, ss_learn,
                             g_learner or _default_g_learner(o.m, o.g_options, scheme, workers),
                             l_learner or _default_l_learner(o.local_solver, ev, o.l_options))
    config = {"k": k, "sampling": scheme.to_json(), "seed": seed, "sweeps": o.sweeps,
              "eta": o.eta, "m": o.m,
              "local_solver": o.local_solver if l_learner is None else "custom",
              "eval_rollouts": o.eval_rollouts, "eval_horizon": horizon,
              "confidence": o.confidence, "learner_tol": rule.learner_tol,
              "truncation_tail": rule.tail,
              "eval_seed": eval_seed, "final_seed": final_seed,
              "evaluator": "custom" if evaluator else "monte-carlo",
              "g_options": o.g_options, "l_options": o.l_options, "game": game.name}

    state: LoopState[GlobalPolicy, LocalPolicy] = LoopState(
        pi_g=pi_g0, pi_l=pi_l0 if pi_l0 is not None else LocalPolicy.uniform(game))
    trackers.log_params(config)
    out = run_alternating(adapter, state, sweeps=o.sweeps, rule=rule, patience=1,
                          callback=with_trackers(callback, trackers), progress=progress,
                          description=f"ALTERNATING-MARL k={k}")
    pi_g, pi_l = state.pi_g, state.pi_l
    assert pi_g is not None
    history = out.steps
    tolerance = None
    if out.converged:
        last = {rec.player: rec for rec in history}
        tolerance = max(certified_gap(last[p].eta, last[p].se_diff, rule.z, rule.tail)
                        for p in ("global", "local"))
    if evaluator is None:
        value: Evaluation | ValueEstimate = evaluate(game, pi_g, pi_l, o.eval_rollouts,
                                                     horizon, seed=final_seed,
                                                     workers=workers)
    else:
        value = evaluator(pi_g, pi_l)
    played = {GLOBAL: pi_g, LOCAL: pi_l}
    last = {p: pol for p, pol in adapter.proposals.items() if pol is not played[p]}
    res = AlternatingResult(pi_g=pi_g, pi_l=pi_l, value=value, history=history,
                            converged=out.converged, sweeps=state.sweep, tolerance=tolerance,
                            config=config, wall_time=time.perf_counter() - t_start,
                            last_proposals=last)
    trackers.on_final(final_of_result(res))
    return res


def alternating_marl(
    game: TabularGame | GenerativeGame,
    k: int | None = None,
    seed: int = 0,
    sweeps: int = 10,
    eta: float | None = None,
    m: int | None = 30,
    local_solver: str | None = None,
    eval_rollouts: int = 200,
    eval_horizon: int | None = None,
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
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    sampling: Scheme | None = None,
    callbacks: Any = None,
) -> AlternatingResult:
    """ALTERNATING-MARL (paper Algorithm 14, SPEC 6).

    On a :class:`~altmarl.GenerativeGame` the same loop runs with neural learners
    (:func:`altmarl.alternating.generative.run_generative`: neural G-LEARN, neural L-LEARN
    by TRPO, the per-agent simulator with fresh common random numbers every sweep,
    checkpoints in ``checkpoint_dir``); the keywords below keep their meaning, with these
    differences: ``m`` is neural G-LEARN's draws per Bellman target (``None``: 30),
    ``local_solver`` ``"trpo"`` (default there) or ``"trpo-representative"``,
    ``g_options`` / ``l_options`` go to ``neural_g_learn`` / ``neural_l_learn``,
    ``learner_tol`` defaults to 0, and the hooks take and return any policy kind.

    Parameters
    ----------
    game, k
        The game and the global agent's subsample size (``1 <= k <= n``; may be left out
        when ``sampling`` is given).
    seed
        One seed drives everything: ``SeedSequence(seed)`` spawns the comparison
        evaluator's seed, the held-out final evaluation's seed and one child per
        proposal (``(sweep, player)``) for the learners.
    sweeps
        ``T``: at most this many sweeps (one global and one local proposal each).
    eta
        UPDATE tolerance. ``None`` (default): per comparison,
        ``eta = z se_diff / 2 + learner_tol + tail / 2`` with ``se_diff`` the paired
        (common random numbers) standard error of ``V_new - V_old``, ``z`` the two-sided
        normal quantile of ``confidence`` and ``tail = gamma^H (r_max - r_min) / (1 -
        gamma)`` the bound on the truncation bias of a difference of two ``H``-step
        estimates (SPEC 13; true reward bounds, :attr:`TabularGame.reward_bounds`; 0 with
        a custom ``evaluator``): a proposal is accepted only when its estimated gain
        exceeds ``z se_diff + 2 learner_tol + tail``, so a proposal that is worse in the
        infinite-horizon value ``V`` is accepted with probability at most
        ``(1 - confidence) / 2`` per comparison, whatever ``eval_horizon``. A number:
        ``eta + tail / 2`` for every comparison.
    m
        G-LEARN's Monte-Carlo samples per Bellman update (``None``: exact expectation).
    local_solver
        L-LEARN solver (:data:`altmarl.llearn.SOLVERS`). Default (``None``) ``"direct"``: the
        policy search on the real objective (candidates scored on the mean-field
        population from ``n = 100`` on, with common random numbers below), started from
        the induced-VI policy and the current one, so it is never worse than induced-VI
        under its evaluator (see docs/alternating.md for the comparison). ``"induced-vi"`` is the paper's practice.
    eval_rollouts, eval_horizon
        Monte-Carlo evaluation used by UPDATE (and for the final held-out value). The
        default 200 rollouts (four times the paper's final-evaluation budget) halve the
        standard error of the comparisons, so fewer real improvements are lost as
        "no improvement". ``eval_horizon = None`` (default):
        :func:`altmarl.update.evaluation_horizon` of ``gamma``, the smallest ``H >= 100``
        with ``gamma^H <= 1e-4`` (100 at ``gamma = 0.9``, 180 at 0.95, 917 at 0.99), so
        the truncation term of ``eta`` is ``1e-4`` of the value span and does not cost
        accepted improvements; an estimate costs a fraction of a second on the warehouse.
        A shorter horizon is sound but inflates ``eta``.
    pi_l0
        Initial local policy (default uniform).
    progress
        Show a ``rich`` progress bar.
    callback
        Called with each :class:`StepRecord`; returning ``True`` stops the run.
    callbacks
        Experiment trackers (:class:`altmarl.tracking.Tracker`: one, or a list), e.g.
        ``[altmarl.tracking.TensorBoardTracker("tb")]``: they receive the run's settings
        (``config`` of the result) before the first proposal, every UPDATE proposal, and
        the final value with the certified Nash-gap bound (``tolerance``). They only read:
        the numbers are the same with or without them. The caller closes them.
    pi_g0
        Optional initial global policy; without it the first G-LEARN proposal is taken
        as the initial global policy (decision ``"initial"``).
    confidence
        Confidence level of the automatic ``eta`` and of the reported ``tolerance``.
    learner_tol
        Tolerance added to the automatic ``eta`` (default ``1e-6 (r_max - r_min) / (1 -
        gamma)``, a floor for the learners' numerical tolerance).
    g_options, l_options
        Extra keyword arguments for :func:`altmarl.g_learn` / :func:`l_learn`.
    g_learner, l_learner
        Replace the learners (hooks, e.g. to inject proposals in tests):
        ``g_learner(game, pi_l, k, seed, pi_g) -> GlobalPolicy`` and
        ``l_learner(game, pi_g, pi_l, seed) -> LocalPolicy``.
    sampling
        The global agent's sampling scheme (SPEC 12, :mod:`altmarl.sampling`; default
        ``Uniform(k)``): G-LEARN proposes policies for it (``Stratified``: the stratified
        surrogate; ``Weighted``: the uniform surrogate, executed weighted), L-LEARN and
        every evaluation draw the global agent's samples with it, and the UPDATE rule and
        the reported ``tolerance`` (the certified Nash gap) are as for uniform sampling.
        ``config["sampling"]`` records it.
    evaluator
        Replace the Monte-Carlo evaluator: ``evaluator(pi_g, pi_l) -> ValueEstimate``
        (e.g. exact values on small games).
    workers
        Threads for the Monte-Carlo evaluations and for G-LEARN's products and draws
        (unless ``g_options`` sets ``threads``); the numbers do not depend on it. ``None``:
        :func:`altmarl.threads.default_threads`.
    checkpoint_dir, resume
        Generative games only: checkpoint after every sweep into ``checkpoint_dir`` and,
        with ``resume``, continue a checkpoint of the same run there.

    Returns
    -------
    AlternatingResult
        ``tolerance`` (when converged): at the final pair, for each player, the last
        proposal was not accepted, so its estimated gain was at most ``2 eta``; its true
        gain in the infinite-horizon ``V`` is then at most ``2 eta + z se_diff + tail``
        (one-sided, at ``confidence``; ``tail`` the truncation bias bound), and that
        player's Nash gap is at most ``2 eta + z se_diff + tail`` plus the learner's
        best-response error (how far the proposal is from a true best response; G-LEARN's
        includes the ``k``-subsampling error of Theorem 4.4). ``tolerance`` is the max
        over the two players of the certified part.
    """
    if workers is not None:  # threads of the evaluations and of G-LEARN
        workers = check_int("workers", workers, 1)
    if isinstance(game, GenerativeGame):
        from altmarl.alternating.generative import options_from_keywords, run_generative

        if sampling is not None and sampling.kind != "uniform":
            raise ValueError("sampling: generative games sample uniformly; only "
                             "am.sampling.Uniform(k) is accepted")
        if k is None:
            if sampling is None:
                raise ValueError("k: expected a subsample size")
            k = sampling.k
        gopts = options_from_keywords(sweeps, eta, m, local_solver, eval_rollouts,
                                      eval_horizon, confidence, learner_tol, g_options,
                                      l_options)
        return run_generative(game, k, gopts, seed, pi_l0=pi_l0, pi_g0=pi_g0,
                              progress=progress, callback=callback, g_learner=g_learner,
                              l_learner=l_learner, evaluator=evaluator, workers=workers,
                              checkpoint_dir=checkpoint_dir, resume=resume,
                              callbacks=callbacks)
    if checkpoint_dir is not None:
        raise ValueError("checkpoint_dir: checkpoints are written for generative games (a "
                         "tabular run is fast and reproducible from its seed); pass "
                         "game.as_generative() for the neural route")
    scheme = resolve(sampling, k, game)
    local_solver = "direct" if local_solver is None else local_solver
    options = AlternatingOptions(
        sweeps=sweeps, eta=eta, m=m, local_solver=local_solver, eval_rollouts=eval_rollouts,
        eval_horizon=eval_horizon, confidence=confidence, learner_tol=learner_tol,
        g_options=dict(g_options or {}), l_options=dict(l_options or {}))
    return run_tabular(game, scheme.k, options, seed, pi_l0=pi_l0, pi_g0=pi_g0,
                       progress=progress, callback=callback, g_learner=g_learner,
                       l_learner=l_learner, evaluator=evaluator, workers=workers,
                       sampling=None if isinstance(scheme, Uniform) else scheme,
                       callbacks=callbacks)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _check_proposal_g(pi: Any, game: TabularGame, k: int) -> None:
    if not isinstance(pi, GlobalPolicy):
        raise ValueError(f"g_learner returned {type(pi).__name__}, expected an altmarl.GlobalPolicy")
    if pi.k != k or (pi.n_sg, pi.n_sl, pi.n_ag) != (game.n_sg, game.n_sl, game.n_ag):
        raise ValueError(f"g_learner returned a policy for k = {pi.k}, spaces "
                         f"{(pi.n_sg, pi.n_sl, pi.n_ag)}; expected k = {k} and {game.spaces}")


def _default_g_learner(m: int | None, options: dict[str, Any],
                       scheme: Scheme | None = None,
                       workers: int | None = None) -> GlobalLearner:
    if workers is not None and "threads" not in options:
        options = {**options, "threads": workers}  # the run's thread count, unless given

    def learn(game: TabularGame, pi_l: LocalPolicy, k: int, seed: int,
              pi_g: GlobalPolicy | None) -> GlobalPolicy:
        from altmarl.glearn import g_learn

        if scheme is not None and not isinstance(scheme, Uniform):  # SPEC 12
            out: GlobalPolicy = g_learn(game, pi_l, m=m, seed=seed, sampling=scheme,
                                        **options)
            return out
        out = g_learn(game, pi_l, k, m=m, seed=seed, **options)
        return out

    return learn


def _default_l_learner(solver: str, ev: Evaluator, options: dict[str, Any]) -> LocalLearner:
    def learn(game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy, seed: int) -> LocalPolicy:
        # the value is estimated by the alternation itself (same evaluator): skip it here
        return l_learn(game, pi_g, solver, seed, pi_l=pi_l, estimate_value=False, **options)

    return learn


_INFO_KEYS = ("solver", "method", "samples", "wall_time", "iterations", "residual",
              "rounds", "evaluations", "search_value", "start_values", "exhaustive")


def summary_info(info: dict[str, Any]) -> dict[str, Any]:
    """The scalar diagnostics of a learner's info worth keeping in the history (scalars and
    the entries of :data:`_INFO_KEYS` that are not arrays)."""
    out: dict[str, Any] = {}
    for key, val in info.items():
        if key in _INFO_KEYS or isinstance(val, bool | int | float | str):
            if isinstance(val, np.ndarray):
                continue
            out[key] = val
    return out
