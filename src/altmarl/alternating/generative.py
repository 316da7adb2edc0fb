"""ALTERNATING-MARL on generative games (paper Algorithm 14, SPEC 6 and 11):
``am.alternating_marl(game, k)`` for a :class:`~altmarl.GenerativeGame`.

The loop is the one of :func:`altmarl.alternating.loop.run_alternating` (UPDATE by
:func:`altmarl.update.compare`, history, progress, callback, stopping rule); this module
supplies the generative parts (:class:`GenerativeAdapter`):

* **G-LEARN**: neural G-LEARN (:func:`altmarl.generative.neural.neural_g_learn`, fitted
  Q-iteration on the ``k``-agent surrogate) against the played ``pi_l``, a fresh fit every
  sweep, exploring around the played ``pi_g``;
* **L-LEARN**: neural L-LEARN (:func:`altmarl.generative.neural_local.neural_l_learn`, TRPO)
  against the played ``pi_g``. It is an *anytime* learner, as in the continuous warehouse
  (:mod:`altmarl.continuous.alternating`): a candidate network keeps training from sweep to
  sweep; an accepted candidate is copied into the played policy and keeps training;
* **estimates**: the per-agent simulator (:func:`altmarl.evaluation.evaluate_generative`,
  ``eval_rollouts`` x ``eval_horizon``) with fresh common random numbers every sweep
  (``crn_per_sweep``: the played pair is re-evaluated with them at the start of each sweep,
  so the pair's estimate is never re-used on the rollouts that selected it); greedy
  neural policies draw no random numbers, so two pairs differ only by their actions;
* **start**: ``pi_l^0`` is a fresh :class:`~altmarl.generative.neural_local.NeuralLocalPolicy`
  acting by sampling: uniform (SPEC 6), and the candidate's starting point;
* **checkpoints** (``checkpoint_dir``): after every sweep the played pair, the candidate and
  ``state.json`` (format ``altmarl-generative-checkpoint/1``: the run's identity, the
  loop state, the history, the SHA-256 digest of every policy file) are written into a new
  ``sweep-NNNN/`` directory, then ``LATEST`` names it; older sweep directories are removed.
  ``resume=True`` continues a checkpoint of the same run (same settings, game, ``k`` and
  seed) to the same numbers as an uninterrupted run; a damaged file is named.

Seeds (SPEC 9): ``SeedSequence(seed)`` spawns ``(ss_eval, ss_final, ss_learn)`` as in the
tabular loop; sweep ``s`` uses CRN seed ``child(ss_eval, s)``; the proposal of ``(s,
player)`` seed ``child(ss_learn, 2 (s - 1) + player)``; the held-out final value
``ss_final``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from altmarl._random import child as rnd_child
from altmarl._random import int_seed
from altmarl._validate import check_float, check_int, check_kwargs, check_open_unit
from altmarl.alternating.loop import (
    GLOBAL,
    GameAdapter,
    LoopState,
    Proposal,
    StepRecord,
    run_alternating,
)
from altmarl.alternating.tabular import AlternatingResult, summary_info
from altmarl.evaluation import Evaluation, evaluate_generative
from altmarl.game import game_record
from altmarl.generative.game import GenerativeGame
from altmarl.io import atomic_write_bytes, json_bytes, read_json, sha256_file, to_jsonable
from altmarl.tracking.base import as_trackers, final_of_result, with_trackers
from altmarl.update import (
    Comparison,
    Estimate,
    EtaRule,
    certified_gap,
    evaluation_horizon,
    normal_quantile,
    truncation_bias,
    warn_short_horizon,
)

CHECKPOINT_FORMAT = "altmarl-generative-checkpoint/1"
#: the file in a checkpoint directory that names the latest complete sweep directory
LATEST = "LATEST"

#: ``g_learner(game, pi_l, k, seed, pi_g) -> global policy``
GenGlobalLearner = Callable[..., Any]
#: ``l_learner(game, pi_g, pi_l, seed) -> local policy``
GenLocalLearner = Callable[..., Any]


@dataclass(frozen=True)
class GenerativeOptions:
    """The settings of an ALTERNATING-MARL run on a generative game, validated once.

    ``sweeps``, ``eta``, ``confidence``, ``learner_tol``, ``eval_rollouts`` and
    ``eval_horizon`` mean what they mean for tabular games
    (:class:`~altmarl.alternating.tabular.AlternatingOptions`; ``eval_horizon = None``:
    :func:`altmarl.update.evaluation_horizon` of the game's ``gamma``, and ``eta`` includes
    the truncation bound of the game's declared :attr:`~altmarl.GenerativeGame.reward_bounds`,
    SPEC 13); ``m`` is neural G-LEARN's
    draws per Bellman target; ``local_solver`` ``"trpo"`` or ``"trpo-representative"``;
    ``g_options`` / ``l_options`` further keywords of ``neural_g_learn`` / ``neural_l_learn``;
    ``patience`` consecutive sweeps without an accepted proposal end the run (1: SPEC 6);
    ``anytime``: the L-LEARN candidate keeps training across sweeps (``False``: every
    proposal starts from the played policy).
    """

    sweeps: int = 10
    eta: float | None = None
    m: int = 30
    local_solver: str = "trpo"
    eval_rollouts: int = 200
    eval_horizon: int | None = None
    confidence: float = 0.95
    learner_tol: float = 0.0
    patience: int = 1
    anytime: bool = True
    g_options: dict[str, Any] = field(default_factory=dict)
    l_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from altmarl.generative.neural_local import GENERATIVE_SOLVERS

        put = object.__setattr__
        put(self, "sweeps", check_int("sweeps", self.sweeps, 1))
        if self.eta is not None:
            put(self, "eta", check_float("eta", self.eta, minimum=0))
        put(self, "m", check_int("m", self.m, 1))
        if self.local_solver not in GENERATIVE_SOLVERS:
            raise ValueError(f"local_solver = {self.local_solver!r}: on a generative game "
                             f"expected one of {list(GENERATIVE_SOLVERS)} (neural L-LEARN)")
        put(self, "eval_rollouts", check_int("eval_rollouts", self.eval_rollouts, 2))
        if self.eval_horizon is not None:
            put(self, "eval_horizon", check_int("eval_horizon", self.eval_horizon, 1))
        check_open_unit("confidence", self.confidence)
        put(self, "learner_tol", check_float("learner_tol", self.learner_tol, minimum=0))
        put(self, "patience", check_int("patience", self.patience, 1))
        if not isinstance(self.anytime, bool):
            raise ValueError(f"anytime = {self.anytime!r}: expected True or False")
        for name in ("g_options", "l_options"):
            put(self, name, check_kwargs(name, getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return to_jsonable(asdict(self))  # type: ignore[no-any-return]

    def horizon(self, game: GenerativeGame) -> int:
        """``eval_horizon`` resolved for ``game`` (``None``:
        :func:`altmarl.update.evaluation_horizon` of ``game.gamma``)."""
        return evaluation_horizon(game.gamma) if self.eval_horizon is None else self.eval_horizon

    def rule(self, game: GenerativeGame, truncated: bool = True) -> EtaRule:
        """UPDATE's tolerance rule: fixed ``eta``, or ``z se_diff / 2 + learner_tol``, plus
        half the truncation bound of the :meth:`horizon`-step estimates (SPEC 13;
        ``truncated=False``, a custom evaluator: 0). A game that does not declare its
        ``reward_bounds`` cannot bound the truncation: ``ValueError``."""
        tail = 0.0
        if truncated:
            bounds = game.reward_bounds
            if bounds is None:
                raise ValueError(
                    f"game {game.name!r}: declare r_min and r_max (GenerativeGame(..., r_min=, "
                    "r_max=)): UPDATE bounds the truncation of its H-step estimates by "
                    "gamma^H (r_max - r_min) / (1 - gamma) (SPEC 13); or pass an evaluator")
            tail = truncation_bias(game.gamma, self.horizon(game), *bounds)
            warn_short_horizon(game.gamma, self.horizon(game), tail)
        return EtaRule(fixed=self.eta, z=normal_quantile(self.confidence),
                       learner_tol=self.learner_tol, tail=tail)


class GenerativeAdapter(GameAdapter[Any, Any]):
    """The generative parts of the one loop (module docstring)."""

    crn_per_sweep = True

    def __init__(self, game: GenerativeGame, k: int, options: GenerativeOptions,
                 ss_eval: np.random.SeedSequence, ss_learn: np.random.SeedSequence,
                 g_learner: GenGlobalLearner | None = None,
                 l_learner: GenLocalLearner | None = None,
                 evaluator: Callable[[Any, Any], Estimate] | None = None,
                 workers: int | None = None, candidate: Any = None,
                 history: list[StepRecord] | None = None,
                 checkpoint: Checkpoint | None = None) -> None:
        self.game, self.k, self.o = game, k, options
        self.ss_eval, self.ss_learn = ss_eval, ss_learn
        self.g_learner, self.l_learner = g_learner, l_learner
        self.evaluator, self.workers = evaluator, workers
        self.horizon = options.horizon(game)
        self.eval_cost = 0 if evaluator else options.eval_rollouts * self.horizon * game.n
        self.candidate = candidate
        self.history: list[StepRecord] = list(history or [])
        self.checkpoint = checkpoint

    def proposal_seed(self, sweep: int, player: str) -> int:
        """Child ``2 (sweep - 1) + (0 global | 1 local)`` of the learners' stream."""
        return int_seed(rnd_child(self.ss_learn, 2 * (sweep - 1) + (0 if player == GLOBAL else 1)))

    def crn_seed(self, sweep: int) -> int:
        """Fresh common random numbers every sweep: ``child(ss_eval, sweep)``."""
        return int_seed(rnd_child(self.ss_eval, sweep))

    def propose_global(self, state: LoopState[Any, Any], seed: Any) -> Proposal[Any]:
        """Neural G-LEARN against the played ``pi_l`` (or the ``g_learner`` hook)."""
        if self.g_learner is not None:
            pi = self.g_learner(self.game, state.pi_l, self.k, seed, state.pi_g)
        else:
            from altmarl.generative.neural import neural_g_learn

            pi = neural_g_learn(self.game, state.pi_l, self.k, m=self.o.m, seed=seed,
                                pi_g=state.pi_g, **self.o.g_options)
        if getattr(pi, "k", None) != self.k:
            raise ValueError(f"G-LEARN returned a policy with k = {getattr(pi, 'k', None)}, "
                             f"expected {self.k}")
        info = dict(getattr(pi, "info", {}) or {})
        samples = int(info.get("states", 0)) * self.game.n_ag * self.o.m
        return Proposal(pi, summary_info(info), samples)

    def propose_local(self, state: LoopState[Any, Any], seed: Any) -> Proposal[Any]:
        """Neural L-LEARN against the played ``pi_g``: the candidate continues training
        (``anytime``) or a copy of the played policy does."""
        assert state.pi_g is not None
        if self.l_learner is not None:
            pi = self.l_learner(self.game, state.pi_g, state.pi_l, seed)
        else:
            from altmarl.generative.neural_local import l_learn_generative

            start = self.candidate if (self.o.anytime and self.candidate is not None) \
                else state.pi_l
            pi = l_learn_generative(self.game, state.pi_g, self.o.local_solver, seed,
                                    pi_l=start, estimate_value=False, **self.o.l_options)
            self.candidate = pi
        info = dict(getattr(pi, "info", {}) or {})
        return Proposal(pi, summary_info(info), int(info.get("agent_steps", 0) or 0))

    def evaluate_pair(self, pi_g: Any, pi_l: Any, crn_seed: Any) -> Estimate:
        """The per-agent simulator with the sweep's seed (or the custom evaluator)."""
        if self.evaluator is not None:
            return self.evaluator(pi_g, pi_l)
        return evaluate_generative(self.game, pi_g, pi_l, self.o.eval_rollouts,
                                   self.horizon, seed=crn_seed, workers=self.workers)

    def accept(self, state: LoopState[Any, Any], player: str, proposal: Proposal[Any]) -> Any:
        """The played local policy is a copy of the candidate (which keeps training)."""
        pol = proposal.policy
        clone = getattr(pol, "clone", None)
        return clone() if player != GLOBAL and callable(clone) else pol

    def reject(self, state: LoopState[Any, Any], player: str, proposal: Proposal[Any],
               comparison: Comparison) -> None:
        """Nothing: a rejected candidate keeps training (anytime)."""

    def end_sweep(self, state: LoopState[Any, Any], steps: list[StepRecord]) -> None:
        """History; the checkpoint of the sweep."""
        self.history.extend(steps)
        if self.checkpoint is not None:
            self.checkpoint.save(state, self.candidate, self.history)


# ---------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------


class Checkpoint:
    """Checkpoints of one run in a directory (module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], game: GenerativeGame,
                 ident: dict[str, Any]) -> None:
        self.dir = Path(directory)
        self.game = game
        self.ident = ident

    def save(self, state: LoopState[Any, Any], candidate: Any,
             history: list[StepRecord]) -> Path:
        """Write the state after sweep ``state.sweep``; returns its directory."""
        from altmarl.generative.files import save_policy

        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"sweep-{state.sweep:04d}"
        tmp = self.dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        files: dict[str, str] = {}
        for key, pol in (("pi_g", state.pi_g), ("pi_l", state.pi_l), ("candidate", candidate)):
            if pol is not None:
                files[key] = save_policy(pol, tmp / key, self.game).name
        digests = {key: sha256_file(tmp / fname)[0] for key, fname in files.items()}
        meta = dict(self.ident, sweep=state.sweep, stale=state.stale, files=files,
                    sha256=digests, history=[r.to_dict() for r in history])
        atomic_write_bytes(tmp / "state.json",
                           json_bytes(meta, indent=1, sort_keys=False, nonfinite="null"))
        final = self.dir / name
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        atomic_write_bytes(self.dir / LATEST, (name + "\n").encode())
        for old in self.dir.glob("sweep-*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return final

    def load(self) -> tuple[LoopState[Any, Any], Any, list[StepRecord]] | None:
        """The saved ``(state, candidate, history)``, or ``None`` without a checkpoint;
        ``ValueError`` for another run's checkpoint or a damaged file (named)."""
        from altmarl.generative.files import load_policy

        latest = self.dir / LATEST
        if not latest.is_file():
            return None
        sdir = self.dir / latest.read_text().strip()
        meta = read_json(sdir / "state.json", "generative checkpoint")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{sdir / 'state.json'}: format {meta.get('format')!r}, expected "
                             f"{CHECKPOINT_FORMAT!r}")
        for key in ("options", "game", "k", "seed"):
            if meta.get(key) != self.ident[key]:
                raise ValueError(f"{self.dir}: the checkpoint's {key} differs from this run's; "
                                 "use another directory or resume=False")
        pols: dict[str, Any] = {}
        for key, fname in meta["files"].items():
            path = sdir / fname
            if not path.is_file() or sha256_file(path)[0] != meta["sha256"][key]:
                raise ValueError(f"{path}: missing or damaged (SHA-256 differs from "
                                 "state.json); use another directory or resume=False")
            pols[key] = load_policy(path, "global" if key == "pi_g" else "local", self.game)
        state: LoopState[Any, Any] = LoopState(pi_g=pols.get("pi_g"), pi_l=pols["pi_l"],
                                               sweep=int(meta["sweep"]),
                                               stale=int(meta["stale"]))
        history = [step_record(d) for d in meta["history"]]
        return state, pols.get("candidate"), history


def step_record(d: dict[str, Any]) -> StepRecord:
    """A :class:`StepRecord` from its :meth:`StepRecord.to_dict` (a checkpoint's history;
    the comparison object itself is not kept)."""
    keep = {key: d[key] for key in StepRecord.__dataclass_fields__
            if key in d and key != "comparison"}
    return StepRecord(**keep)


# ---------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------


def run_generative(
    game: GenerativeGame,
    k: int,
    options: GenerativeOptions,
    seed: int = 0,
    *,
    pi_l0: Any = None,
    pi_g0: Any = None,
    progress: bool = True,
    callback: Callable[[StepRecord], bool | None] | None = None,
    g_learner: GenGlobalLearner | None = None,
    l_learner: GenLocalLearner | None = None,
    evaluator: Callable[[Any, Any], Estimate] | None = None,
    workers: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    callbacks: Any = None,
) -> AlternatingResult:
    """ALTERNATING-MARL on a generative game with validated ``options`` (module
    docstring); ``am.alternating_marl(game, k, ...)`` calls it (``callbacks``: trackers,
    as there). Returns an
    :class:`~altmarl.alternating.tabular.AlternatingResult` whose policies are neural
    (or the given starting ones) and whose ``value`` is a held-out
    :class:`~altmarl.Evaluation`."""
    from altmarl.generative.neural_local import NeuralLocalPolicy
    from altmarl.generative.policies import check_policies

    t_start = time.perf_counter()
    trackers = as_trackers(callbacks)
    if not isinstance(game, GenerativeGame):
        raise ValueError(f"game: expected an altmarl.GenerativeGame, got {type(game).__name__}")
    k = game.check_k(k)
    if not isinstance(options, GenerativeOptions):
        raise ValueError(f"options: expected a GenerativeOptions, got {type(options).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed = {seed!r}: expected an integer >= 0")
    o = options
    rule = o.rule(game, truncated=evaluator is None)
    horizon = o.horizon(game)
    root = np.random.SeedSequence(int(seed))
    ss_eval, ss_final, ss_learn = root.spawn(3)
    pi_l = pi_l0 if pi_l0 is not None else NeuralLocalPolicy.for_game(game, greedy=False)
    if pi_g0 is not None:
        check_policies(game, pi_g0, pi_l)
        if pi_g0.k != k:
            raise ValueError(f"pi_g0.k = {pi_g0.k}: expected k = {k}")
    config = {"k": k, "seed": int(seed), **o.to_dict(), "game": game.name,
              "fingerprint": game.fingerprint(), "kind": "generative",
              "g_learner": "custom" if g_learner else "neural-fqi",
              "l_learner": "custom" if l_learner else o.local_solver,
              "evaluator": "custom" if evaluator else "generative-monte-carlo",
              "final_seed": int_seed(ss_final), "eval_horizon": horizon,
              "truncation_tail": rule.tail}
    state: LoopState[Any, Any] = LoopState(pi_g=pi_g0, pi_l=pi_l)
    candidate = None
    history: list[StepRecord] = []
    ckpt = None
    if checkpoint_dir is not None:
        ident = {"format": CHECKPOINT_FORMAT, "options": o.to_dict(),
                 "game": game_record(game),
                 "k": k, "seed": int(seed)}
        ckpt = Checkpoint(checkpoint_dir, game, ident)
        loaded = ckpt.load() if resume else None
        if loaded is not None:
            state, candidate, history = loaded
    adapter = GenerativeAdapter(game, k, o, ss_eval, ss_learn, g_learner, l_learner,
                                evaluator, workers, candidate, history, ckpt)
    trackers.log_params(config)
    out = run_alternating(adapter, state, sweeps=o.sweeps, rule=rule, patience=o.patience,
                          callback=with_trackers(callback, trackers), progress=progress,
                          description=f"ALTERNATING-MARL ({game.name}) k={k}")
    pi_g, pi_l = out.state.pi_g, out.state.pi_l
    assert pi_g is not None
    # the resumed history, the finished sweeps of this call, then a sweep the callback cut
    steps = adapter.history + out.steps[len(adapter.history) - len(history):]
    tolerance = None
    if out.converged:
        last = {rec.player: rec for rec in steps}
        tolerance = max(certified_gap(last[p].eta, last[p].se_diff, rule.z, rule.tail)
                        for p in ("global", "local") if p in last)
    if evaluator is None:
        value: Any = evaluate_generative(game, pi_g, pi_l, o.eval_rollouts, horizon,
                                         seed=int_seed(ss_final), workers=workers)
    else:
        value = evaluator(pi_g, pi_l)
    assert isinstance(value, Evaluation) or hasattr(value, "mean")
    res = AlternatingResult(pi_g=pi_g, pi_l=pi_l, value=value, history=steps,
                            converged=out.converged, sweeps=out.state.sweep,
                            tolerance=tolerance, config=config,
                            wall_time=time.perf_counter() - t_start)
    trackers.on_final(final_of_result(res))
    return res


def options_from_keywords(sweeps: int, eta: float | None, m: int | None,
                          local_solver: str | None, eval_rollouts: int,
                          eval_horizon: int | None,
                          confidence: float, learner_tol: float | None,
                          g_options: dict[str, Any] | None,
                          l_options: dict[str, Any] | None) -> GenerativeOptions:
    """:class:`GenerativeOptions` from ``am.alternating_marl``'s keywords (``m = None``:
    30; ``local_solver = None``: ``"trpo"``; ``learner_tol = None``: 0). ``patience`` and
    ``anytime`` keep their defaults here; :func:`run_generative` takes them all."""
    return GenerativeOptions(
        sweeps=sweeps, eta=eta, m=30 if m is None else m,
        local_solver="trpo" if local_solver is None else local_solver,
        eval_rollouts=eval_rollouts, eval_horizon=eval_horizon, confidence=confidence,
        learner_tol=0.0 if learner_tol is None else learner_tol,
        g_options=dict(g_options or {}), l_options=dict(l_options or {}))


__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "GenerativeAdapter",
    "GenerativeOptions",
    "options_from_keywords",
    "run_generative",
    "step_record",
]
