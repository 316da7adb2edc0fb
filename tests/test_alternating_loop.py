"""The one ALTERNATING-MARL loop (altmarl.alternating.loop) with fake players: policies
are integers, ``V(g, l) = g + l`` exactly, proposals are scripted, so every decision,
history row and stop is known in advance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from altmarl.alternating import (
    INITIAL,
    GameAdapter,
    LoopState,
    Proposal,
    StepRecord,
    run_alternating,
)
from altmarl.update import Comparison, EtaRule, RolloutEstimate


class Fake(GameAdapter[int, int]):
    """Scripted proposals; ``V(g, l) = g + l`` with common noise ``noise`` per rollout
    (it cancels in paired differences)."""

    eval_cost = 10

    def __init__(self, globals_: list[int], locals_: list[int], crn_per_sweep: bool = False,
                 noise: tuple[float, ...] = (0.0, 1.0, -1.0)) -> None:
        self.g, self.l = list(globals_), list(locals_)
        self.crn_per_sweep = crn_per_sweep
        self.noise = np.array(noise)
        self.calls: list[Any] = []
        self.rejected: list[tuple[str, int, str]] = []
        self.checkpoints: list[dict[str, Any]] = []

    def proposal_seed(self, sweep: int, player: str) -> int:
        return 100 * sweep + (player == "local")

    def crn_seed(self, sweep: int) -> int:
        return sweep if self.crn_per_sweep else 0

    def propose_global(self, state: LoopState[int, int], seed: Any) -> Proposal[int]:
        self.calls.append(("g", seed))
        return Proposal(self.g[state.sweep - 1], {"seed": seed}, samples=1)

    def propose_local(self, state: LoopState[int, int], seed: Any) -> Proposal[int]:
        self.calls.append(("l", seed))
        return Proposal(self.l[state.sweep - 1], {"seed": seed}, samples=2)

    def evaluate_pair(self, pi_g: int, pi_l: int, crn_seed: Any) -> RolloutEstimate:
        self.calls.append(("eval", pi_g, pi_l, crn_seed))
        return RolloutEstimate(pi_g + pi_l + self.noise + crn_seed)

    def reject(self, state: LoopState[int, int], player: str, proposal: Proposal[Any],
               comparison: Comparison) -> None:
        self.rejected.append((player, proposal.policy, comparison.decision.value))

    def end_sweep(self, state: LoopState[int, int], steps: list[StepRecord]) -> None:
        self.checkpoints.append({"sweep": state.sweep, "stale": state.stale, "pi_g": state.pi_g,
                                 "pi_l": state.pi_l, "n_steps": len(steps)})


def _run(fake: Fake, state: LoopState[int, int] | None = None, **kw: Any):
    kw.setdefault("sweeps", len(fake.g))
    kw.setdefault("rule", EtaRule(fixed=0.25, tail=0.0))
    return run_alternating(fake, state or LoopState(pi_g=None, pi_l=0), **kw)


def test_accept_reject_no_improvement_and_convergence() -> None:
    # sweep 1: g=1 initial, l=2 accept (3 > 1 + 0.5); sweep 2: g=0 reject (2 < 3 - 0.5),
    # l=2.4 no improvement (|3.4 - 3| <= 0.5); sweep 3: g=1.3 no-improvement, l=1 reject
    fake = Fake([1, 0, 1.3, 9], [2, 2.4, 1, 9])
    out = _run(fake)
    decisions = [(r.sweep, r.player, r.decision, r.accepted) for r in out.steps]
    assert decisions == [(1, "global", INITIAL, True), (1, "local", "accept", True),
                         (2, "global", "reject", False), (2, "local", "no-improvement", False)]
    assert out.converged and not out.stopped and out.state.sweep == 2
    assert (out.state.pi_g, out.state.pi_l) == (1, 2)
    assert fake.rejected == [("global", 0, "reject"), ("local", 2.4, "no-improvement")]
    first, second = out.steps[0], out.steps[1]
    assert first.v_old is None and first.eta is None and first.comparison is None
    assert (second.v_new, second.v_old, second.se_diff, second.eta) == (3.0, 1.0, 0.0, 0.25)
    assert second.comparison is not None and second.comparison.diff == 2.0
    assert [r.samples for r in out.steps] == [1, 2, 1, 2]
    assert all(r.eval_samples == 10 for r in out.steps)  # one estimate each, CRN carried over
    assert out.state.current is not None and out.state.current.mean == 3.0
    assert [c["stale"] for c in fake.checkpoints] == [0, 1]
    # seeds: a pure function of (sweep, player)
    assert [c[1] for c in fake.calls if c[0] in "gl"] == [100, 101, 200, 201]


def test_given_initial_pair_is_evaluated_once_and_charged_to_the_first_step() -> None:
    fake = Fake([5, 5], [1, 1])
    out = _run(fake, LoopState(pi_g=4, pi_l=1))
    assert [r.decision for r in out.steps] == ["accept", "no-improvement", "no-improvement",
                                               "no-improvement"]
    assert [r.eval_samples for r in out.steps] == [20, 10, 10, 10]
    evals = [c for c in fake.calls if c[0] == "eval"]
    assert evals[0] == ("eval", 4, 1, 0) and len(evals) == 5
    assert out.converged and out.state.sweep == 2


def test_patience_and_sweep_limit() -> None:
    fake = Fake([1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0])
    out = _run(fake, patience=3)
    assert out.converged and out.state.sweep == 4  # sweep 1 initial, then 3 idle sweeps
    assert [c["stale"] for c in fake.checkpoints] == [0, 1, 2, 3]
    out = _run(Fake([1, 2, 3], [0, 0, 0]), sweeps=3, patience=3)
    assert not out.converged and out.state.sweep == 3 and out.state.pi_g == 3


def test_callback_stops_at_once_without_finishing_the_sweep() -> None:
    fake = Fake([1, 2, 3, 4], [0, 0, 0, 0])
    seen: list[StepRecord] = []

    def cb(rec: StepRecord) -> bool:
        seen.append(rec)
        return len(seen) == 3

    out = _run(fake, callback=cb)
    assert out.stopped and not out.converged
    assert seen == out.steps and len(out.steps) == 3 and out.state.sweep == 2
    assert len(fake.checkpoints) == 1  # sweep 2 never ended
    assert out.state.pi_g == 2  # the accepted proposal of the stopping step is kept


def test_resume_from_checkpoint_gives_the_same_run() -> None:
    script = ([1, 3, 2, 5, 5], [0, 1, 1, 0.1, 2])
    full = _run(Fake(*script), patience=2)

    class Interrupt(Exception):
        pass

    class Crashing(Fake):
        def end_sweep(self, state: LoopState[int, int], steps: list[StepRecord]) -> None:
            super().end_sweep(state, steps)
            if state.sweep == 2:
                raise Interrupt

    first = Crashing(*script)
    with pytest.raises(Interrupt):
        _run(first, patience=2)
    ck = first.checkpoints[-1]
    resumed_fake = Fake(*script)
    state = LoopState(pi_g=ck["pi_g"], pi_l=ck["pi_l"], sweep=ck["sweep"], stale=ck["stale"])
    rest = _run(resumed_fake, state, patience=2)
    tail = [(r.sweep, r.player, r.decision, r.v_new, r.v_old) for r in full.steps[4:]]
    assert [(r.sweep, r.player, r.decision, r.v_new, r.v_old) for r in rest.steps] == tail
    assert (rest.state.pi_g, rest.state.pi_l, rest.state.sweep, rest.converged) == (
        full.state.pi_g, full.state.pi_l, full.state.sweep, full.converged)
    # the resumed run re-evaluated the played pair first (no estimate in the checkpoint)
    assert rest.steps[0].eval_samples == 20
    # a finished run resumed does nothing
    done = LoopState(pi_g=1, pi_l=0, sweep=full.state.sweep, stale=full.state.stale)
    assert _run(Fake(*script), done, patience=2).steps == []


def test_fresh_common_random_numbers_every_sweep() -> None:
    fake = Fake([1, 1, 1], [0, 0, 0], crn_per_sweep=True)
    out = _run(fake, patience=3)
    evals = [c for c in fake.calls if c[0] == "eval"]
    # sweep 1: no played pair yet; sweeps 2, 3: the played pair first, under the sweep's CRN
    assert [e[3] for e in evals] == [1, 1, 2, 2, 2, 3, 3, 3]
    assert [r.v_old for r in out.steps[2:]] == [3.0, 3.0, 4.0, 4.0]
    assert [r.eval_samples for r in out.steps] == [10, 10, 20, 10, 20, 10]


def test_accept_all_plays_every_proposal_but_only_accepts_count() -> None:
    fake = Fake([1, 0, 0], [0, 0, 0])
    out = _run(fake, accept_all=True, patience=2)
    assert [r.decision for r in out.steps] == [INITIAL, "no-improvement", "reject",
                                               "no-improvement", "no-improvement",
                                               "no-improvement"]
    assert all(r.accepted for r in out.steps) and fake.rejected == []
    assert out.state.pi_g == 0 and out.converged and out.state.sweep == 3


def test_progress_bar_and_automatic_eta() -> None:
    fake = Fake([1, 1], [0, 0], noise=(0.0, 0.5, -0.5))
    out = _run(fake, rule=EtaRule(z=2.0, learner_tol=0.1, tail=0.0), progress=True)
    assert [r.eta for r in out.steps[1:]] == [pytest.approx(0.1)] * 3  # se_diff = 0 (CRN)
