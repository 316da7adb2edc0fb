"""The one ALTERNATING-MARL loop (paper Algorithm 14, SPEC 6), for every kind of game.

:func:`run_alternating` runs the sweeps, the UPDATE comparisons
(:func:`altmarl.update.compare`), the history, the progress bar, the callback and the
stopping rule; a :class:`GameAdapter` supplies only what depends on the game and its
learners (the model is MFGLib's ``Iterative.solve``: one loop, each algorithm supplies its
parts). Three adapters exist: the tabular one (:mod:`altmarl.alternating.tabular`, behind
``am.alternating_marl``), the generative one (:mod:`altmarl.alternating.generative`,
behind ``am.alternating_marl`` on a ``GenerativeGame``: neural learners, SPEC 11) and the
continuous warehouse (:mod:`altmarl.continuous.alternating`, behind ``run_continuous``).

One sweep (``sweep = 1, 2, ...``)::

    adapter.begin_sweep(state)
    crn = adapter.crn_seed(sweep)
    if a pair is played and (no estimate of it yet, or adapter.crn_per_sweep):
        state.current = adapter.evaluate_current(pi_g, pi_l, crn)
    for player in ("global", "local"):
        proposal = adapter.propose_<player>(state, adapter.proposal_seed(sweep, player))
        new = adapter.evaluate_pair(candidate pair, crn)      # same CRN as state.current
        no global policy yet  -> decision "initial" (played)
        otherwise             -> compare(new, state.current, rule)   (Lemma D.14)
        played (accept, initial, or accept_all):
            state.pi_<player> = adapter.accept(state, player, proposal); state.current = new
        else: adapter.reject(state, player, proposal, comparison)
        one StepRecord; progress; callback(record) -> True stops the run now
    state.stale = 0 if the sweep accepted something (or "initial") else state.stale + 1
    adapter.end_sweep(state, records of the sweep)          # history, checkpoint, hooks

The run stops after ``sweeps`` sweeps, after ``patience`` consecutive sweeps without an
accepted proposal (``patience = 1``: SPEC 6's "a full sweep accepts nothing";
``converged``), or when the callback says so.

Writing an adapter (:mod:`altmarl.alternating.generative` is a complete example):

* ``propose_global(state, seed)`` / ``propose_local(state, seed)`` return a
  :class:`Proposal` (the candidate policy, a JSON-friendly ``info``, ``samples`` spent).
  ``state`` holds the played pair and ``state.current``, the estimate of the played pair
  under this sweep's common random numbers: an adapter may put in it whatever its learners
  need (trajectories to harvest states from, as the continuous rollout G-LEARN does).
  Learners that continue training a candidate across sweeps ("anytime" learners) keep it
  in the adapter; :meth:`GameAdapter.accept` turns a proposal into the played policy (e.g.
  a copy of the network) and :meth:`GameAdapter.reject` may reset the candidate.
* ``evaluate_pair(pi_g, pi_l, crn_seed)`` returns an :class:`altmarl.update.Estimate`
  (``mean``, ``stderr``, per-rollout ``returns``): two calls with the same ``crn_seed``
  must use common random numbers, so UPDATE's paired standard error applies.
* ``proposal_seed(sweep, player)`` and ``crn_seed(sweep)`` derive every random stream
  from the run's seed and the position in the run, never from a global state: then an
  interrupted run resumed from a checkpoint gives the same numbers.
* ``crn_per_sweep``: ``False`` -> one CRN stream for the whole run (the played pair is
  evaluated once and its estimate carried over); ``True`` -> fresh CRN every sweep (the
  played pair is re-evaluated at the start of each sweep).
* resume: build the :class:`LoopState` from a checkpoint (``sweep`` = sweeps finished,
  ``stale``, the played pair) and save it in :meth:`GameAdapter.end_sweep`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from altmarl.io import to_jsonable
from altmarl.progress import Progress
from altmarl.update import Comparison, Decision, Estimate, EtaRule, compare

PG = TypeVar("PG")
PL = TypeVar("PL")
P = TypeVar("P")

#: the two players, in the order of a sweep
GLOBAL, LOCAL = "global", "local"
PLAYERS = (GLOBAL, LOCAL)

#: decision recorded for the first global proposal when no global policy is played yet
INITIAL = "initial"


@dataclass
class Proposal(Generic[P]):
    """What a learner proposes: the candidate ``policy``, its diagnostics ``info``
    (JSON-friendly, kept in the history) and ``samples`` (generative-model calls or
    simulator steps it spent)."""

    policy: P
    info: dict[str, Any] = field(default_factory=dict)
    samples: int = 0


@dataclass
class LoopState(Generic[PG, PL]):
    """The state of an ALTERNATING-MARL run between proposals.

    ``pi_g`` / ``pi_l``: the played pair (``pi_g = None`` before the first global policy);
    ``sweep``: the sweep under way (sweeps finished, between sweeps; 0 at the start);
    ``stale``: consecutive finished sweeps without an accepted proposal; ``current``: the
    estimate of the played pair under the current common random numbers (``None`` when
    not evaluated yet).
    """

    pi_g: PG | None
    pi_l: PL
    sweep: int = 0
    stale: int = 0
    current: Estimate | None = None


@dataclass
class StepRecord:
    """One proposal of ALTERNATING-MARL (one row of the history, SPEC 6).

    ``player`` is ``"global"`` or ``"local"``; ``v_new`` / ``v_old`` the estimated joint
    values with / without the proposal (common random numbers), ``se_diff`` the standard
    error of their difference, ``eta`` the tolerance used, ``decision`` one of
    ``"accept"``, ``"reject"``, ``"no-improvement"`` or ``"initial"``; ``accepted``
    whether the proposal is played from now on; ``learn_time`` and ``eval_time`` in
    seconds; ``samples`` what the learner reports (generative-model calls),
    ``eval_samples`` the simulator steps spent on the estimates; ``comparison`` the full
    UPDATE comparison (``None`` for the initial proposal; not in :meth:`to_dict`).
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
    comparison: Comparison | None = None

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


class GameAdapter(ABC, Generic[PG, PL]):
    """What one kind of game supplies to :func:`run_alternating` (see the module
    docstring). Subclasses implement the five abstract methods; the hooks default to
    no-ops."""

    #: ``True``: fresh common random numbers every sweep (the played pair is re-evaluated
    #: at the start of each sweep); ``False``: one CRN stream for the whole run
    crn_per_sweep: bool = False
    #: simulator steps one estimate costs (reported in ``StepRecord.eval_samples``)
    eval_cost: int = 0

    @abstractmethod
    def proposal_seed(self, sweep: int, player: str) -> Any:
        """The seed of ``player``'s proposal in ``sweep`` (a pure function of the run's
        seed, ``sweep`` and ``player``)."""

    @abstractmethod
    def crn_seed(self, sweep: int) -> Any:
        """The common random numbers of the estimates of ``sweep``."""

    @abstractmethod
    def propose_global(self, state: LoopState[PG, PL], seed: Any) -> Proposal[PG]:
        """G-LEARN: a global policy against ``state.pi_l``."""

    @abstractmethod
    def propose_local(self, state: LoopState[PG, PL], seed: Any) -> Proposal[PL]:
        """L-LEARN: a local policy against ``state.pi_g`` (never ``None`` here)."""

    @abstractmethod
    def evaluate_pair(self, pi_g: PG, pi_l: PL, crn_seed: Any) -> Estimate:
        """Estimate ``V(pi_g, pi_l)`` with the common random numbers ``crn_seed``."""

    def evaluate_current(self, pi_g: PG, pi_l: PL, crn_seed: Any) -> Estimate:
        """Estimate of the played pair (becomes ``state.current``); default
        :meth:`evaluate_pair`. Override to keep what the proposers need (trajectories)."""
        return self.evaluate_pair(pi_g, pi_l, crn_seed)

    def accept(self, state: LoopState[PG, PL], player: str, proposal: Proposal[Any]) -> Any:
        """The policy to play once ``proposal`` is accepted (default: the proposal)."""
        return proposal.policy

    def reject(self, state: LoopState[PG, PL], player: str, proposal: Proposal[Any],
               comparison: Comparison) -> None:
        """Called for a proposal that is not played (reject or no improvement); ``state``
        still holds the played pair."""

    def begin_sweep(self, state: LoopState[PG, PL]) -> None:
        """Called when ``state.sweep`` starts (before the played pair is evaluated)."""

    def end_sweep(self, state: LoopState[PG, PL], steps: list[StepRecord]) -> None:
        """Called after a full sweep (``state.stale`` updated): history, checkpoints."""


@dataclass
class LoopResult(Generic[PG, PL]):
    """Outcome of :func:`run_alternating`: the final ``state``, the records of the
    proposals made in this call (``steps``), ``converged`` (stopped by ``patience``) and
    ``stopped`` (stopped by the callback)."""

    state: LoopState[PG, PL]
    steps: list[StepRecord]
    converged: bool
    stopped: bool


def run_alternating(
    adapter: GameAdapter[PG, PL],
    state: LoopState[PG, PL],
    *,
    sweeps: int,
    rule: EtaRule,
    patience: int = 1,
    accept_all: bool = False,
    callback: Callable[[StepRecord], bool | None] | None = None,
    progress: bool = False,
    description: str = "ALTERNATING-MARL",
) -> LoopResult[PG, PL]:
    """Run ALTERNATING-MARL from ``state`` (paper Algorithm 14, SPEC 6; see the module
    docstring).

    Parameters
    ----------
    adapter
        The game and its learners.
    state
        Where to start: the initial pair (``state.sweep = 0``) or a resumed state.
    sweeps
        ``T``: the run ends after sweep ``T``.
    rule
        UPDATE's tolerance (:class:`altmarl.update.EtaRule`).
    patience
        Stop after this many consecutive sweeps without an accepted proposal (1: SPEC 6).
    accept_all
        Play every proposal (the decision is still computed and recorded).
    callback
        Called with every :class:`StepRecord`; returning ``True`` stops the run at once
        (the sweep is not finished: no :meth:`GameAdapter.end_sweep`).
    progress
        Show a progress bar (:class:`altmarl.progress.Progress`), one step per proposal.
    """
    steps: list[StepRecord] = []
    stopped = False
    with Progress(progress) as bar:
        start = state.sweep
        task = bar.add_task(description, total=2 * sweeps, completed=2 * start)
        while state.sweep < sweeps and state.stale < patience and not stopped:
            state.sweep += 1
            sweep = state.sweep
            adapter.begin_sweep(state)
            crn = adapter.crn_seed(sweep)
            pre_time, pre_evals = 0.0, 0  # evaluation of the played pair, charged to step 1
            if state.pi_g is not None and (state.current is None or adapter.crn_per_sweep):
                t0 = time.perf_counter()
                state.current = adapter.evaluate_current(state.pi_g, state.pi_l, crn)
                pre_time, pre_evals = time.perf_counter() - t0, 1
            sweep_steps: list[StepRecord] = []
            improved = False
            for player in PLAYERS:
                rec = _step(adapter, state, player, crn, rule, accept_all)
                rec.eval_time += pre_time
                rec.eval_samples += pre_evals * adapter.eval_cost
                pre_time, pre_evals = 0.0, 0
                improved = improved or rec.decision in (Decision.ACCEPT.value, INITIAL)
                steps.append(rec)
                sweep_steps.append(rec)
                cur = state.current
                bar.advance(task, status=f"sweep {sweep}/{sweeps} {player}: {rec.decision} "
                            f"(V={cur.mean if cur else rec.v_new:.4f})")
                if callback is not None and callback(rec):
                    stopped = True
                    break
            if stopped:
                break
            state.stale = 0 if improved else state.stale + 1
            adapter.end_sweep(state, sweep_steps)
        made = 2 * start + len(steps)
        if made < 2 * sweeps:  # stopped early: the bar ends at the proposals made
            why = "converged" if state.stale >= patience else "stopped"
            bar.update(task, total=made, completed=made,
                       status=f"{why} after {state.sweep} of at most {sweeps} sweeps")
    return LoopResult(state=state, steps=steps, converged=state.stale >= patience,
                      stopped=stopped)


def _step(adapter: GameAdapter[PG, PL], state: LoopState[PG, PL], player: str, crn: Any,
          rule: EtaRule, accept_all: bool) -> StepRecord:
    """One proposal: learn, evaluate, compare, play or keep."""
    seed = adapter.proposal_seed(state.sweep, player)
    t0 = time.perf_counter()
    prop: Proposal[Any]
    if player == GLOBAL:
        prop = adapter.propose_global(state, seed)
        cand_g, cand_l = prop.policy, state.pi_l
    else:
        assert state.pi_g is not None
        prop = adapter.propose_local(state, seed)
        cand_g, cand_l = state.pi_g, prop.policy
    learn_time = time.perf_counter() - t0
    t1 = time.perf_counter()
    new = adapter.evaluate_pair(cand_g, cand_l, crn)
    old = state.current
    cmp: Comparison | None = None
    if state.pi_g is None or old is None:
        decision = INITIAL
    else:
        cmp = compare(new, old, rule)
        decision = cmp.decision.value
    eval_time = time.perf_counter() - t1
    accepted = decision in (Decision.ACCEPT.value, INITIAL) or accept_all
    if accepted:
        played = adapter.accept(state, player, prop)
        if player == GLOBAL:
            state.pi_g = played
        else:
            state.pi_l = played
        state.current = new
    else:
        assert cmp is not None
        adapter.reject(state, player, prop, cmp)
    return StepRecord(
        sweep=state.sweep, player=player, v_new=new.mean,
        v_old=None if old is None or cmp is None else old.mean, se_new=new.stderr,
        se_old=None if old is None or cmp is None else old.stderr,
        se_diff=None if cmp is None else cmp.se_diff, eta=None if cmp is None else cmp.eta,
        decision=decision, accepted=accepted, learn_time=learn_time, eval_time=eval_time,
        samples=int(prop.samples), eval_samples=adapter.eval_cost, info=prop.info,
        comparison=cmp)
