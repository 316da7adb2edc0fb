"""Hyper-parameter search for ALTERNATING-MARL with Optuna (SPEC 10): ``altmarl tune``.

A study searches the settings of one experiment configuration (its environment, seed and
evaluation protocol stay fixed) for the best held-out value, or the best value minus a cost
per observed agent (``value - cost k``). Each trial is one unit of the configuration (one
``k``, training seed = the configuration's seed, so every trial sees the same random
streams and two trials differ only by their settings), trained by ALTERNATING-MARL and
evaluated with the configuration's protocol (:mod:`altmarl.experiments.runner`).

The search (Optuna): TPE proposes the settings (:class:`optuna.samplers.TPESampler`,
seeded with ``derive_seed(seed, TUNE, trial number)``, so a resumed study proposes what an
uninterrupted one would); the median rule prunes a trial whose played value after a
proposal falls below the median of the earlier trials at the same proposal
(:class:`optuna.pruners.MedianPruner` on the alternation history, step
``2 (sweep - 1) + player``).

The search space (:data:`DEFAULT_SPACE`; a TOML file replaces any part of it, see
docs/tracking.md):

============================ =========================================== =================
parameter                    what                                        default range
============================ =========================================== =================
``m``                        G-LEARN samples per Bellman update          int 5..100, log
``eval_rollouts``            UPDATE's evaluation budget (rollouts)       int 25..400, log
``local_solver``             L-LEARN solver                              induced-vi, direct
``direct.rollouts``          direct search: CRN rollouts per candidate   int 16..256, log
``direct.max_rounds``        direct search: improvement rounds           int 1..30
``induced-vi.m``             induced-VI: samples per Bellman update      int 5..100, log
``confidence``               UPDATE's confidence (automatic ``eta``)     float 0.5..0.99
``eta``                      a fixed UPDATE tolerance instead            (not searched)
``k``                        subsample size                              the config's ``sweep.k``
============================ =========================================== =================

A tuning directory (``--out``)::

    study.db         Optuna's RDB storage (SQLite): the study, resumable
    tuning.csv       one row per trial: state, objective, value, k, settings, Nash gap, time
    tuning.json      the study: objective, space, best trial
    best.toml        the configuration of the best trial (``altmarl run best.toml``)
    trials/trial_0003/   each finished trial as a run directory (``altmarl plot``)
    plots/           optimization history, intermediate values, parameter importances, slices

The directory is locked (:func:`altmarl.experiments.runner.lock_run_dir`): one writer.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from altmarl._random import derive_seed
from altmarl.experiments.config import ExperimentConfig, parse_config
from altmarl.io import atomic_write_bytes, dict_rows_csv_bytes, json_bytes, read_bytes_bounded
from altmarl.limits import MAX_JSON_BYTES
from altmarl.settings import StrictConfig, format_validation_errors
from altmarl.tracking.base import BaseTracker

#: seed-derivation domain of the samplers (SPEC 9; the runner's are 0..3)
TUNE = 4
#: the objectives of ``--objective``
OBJECTIVES = ("value", "value-cost")
#: the study's name in ``study.db``
STUDY_NAME = "altmarl-tune"
TUNING_FORMAT = "altmarl-tuning/1"


class ParamSpec(StrictConfig):
    """One searched parameter: ``int`` / ``float`` in ``[low, high]`` (``log``: on a log
    scale; ``step`` for ints), or ``categorical`` among ``choices``."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = Field(default=None, ge=1)
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical: expected a non-empty list of choices")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type}: expected low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"low = {self.low}, high = {self.high}: expected finite "
                             "low <= high")
        if self.log and self.low <= 0:
            raise ValueError(f"log: expected low > 0, got {self.low}")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("int: expected integer bounds")
        return self

    def suggest(self, trial: Any, name: str) -> Any:
        """``trial.suggest_*`` for this parameter."""
        if self.type == "categorical":
            assert self.choices is not None
            return trial.suggest_categorical(name, self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log,
                                     step=self.step or 1)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


#: where each searched name goes in the configuration (``l_options`` keys for a solver's
#: options: ``SOLVER.OPTION``)
TOP_LEVEL = ("m", "eval_rollouts", "local_solver", "confidence", "eta", "k")

#: the default search space (see the module docstring)
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "m": {"type": "int", "low": 5, "high": 100, "log": True},
    "eval_rollouts": {"type": "int", "low": 25, "high": 400, "log": True},
    "local_solver": {"type": "categorical", "choices": ["induced-vi", "direct"]},
    "direct.rollouts": {"type": "int", "low": 16, "high": 256, "log": True},
    "direct.max_rounds": {"type": "int", "low": 1, "high": 30},
    "induced-vi.m": {"type": "int", "low": 5, "high": 100, "log": True},
    "confidence": {"type": "float", "low": 0.5, "high": 0.99},
}

#: the space of ``--quick`` (seconds per trial on small games)
QUICK_SPACE: dict[str, dict[str, Any]] = {
    "m": {"type": "int", "low": 5, "high": 20, "log": True},
    "eval_rollouts": {"type": "int", "low": 10, "high": 40, "log": True},
    "local_solver": {"type": "categorical", "choices": ["induced-vi", "direct"]},
    "direct.rollouts": {"type": "int", "low": 8, "high": 32, "log": True},
    "direct.max_rounds": {"type": "int", "low": 1, "high": 3},
    "confidence": {"type": "float", "low": 0.5, "high": 0.99},
}


def parse_space(data: Mapping[str, Any], source: str = "space") -> dict[str, ParamSpec]:
    """Validate a search space ``{name: {type, low, high, log, step, choices}}``; names are
    those of the module docstring (``SOLVER.OPTION`` for a solver's options). A
    ``ValueError`` names the parameter and the field."""
    from pydantic import ValidationError

    from altmarl.llearn import SOLVERS

    out: dict[str, ParamSpec] = {}
    for name, spec in data.items():
        solver = name.split(".", 1)[0] if "." in name else None
        if name not in TOP_LEVEL and solver not in SOLVERS:
            raise ValueError(f"{source}: {name}: not a tunable parameter; expected one of "
                             f"{', '.join(TOP_LEVEL)} or SOLVER.OPTION with SOLVER in "
                             f"{', '.join(SOLVERS)}")
        if not isinstance(spec, Mapping):
            raise ValueError(f"{source}: {name}: expected a table (type, low, high, ...)")
        try:
            out[name] = ParamSpec.model_validate(dict(spec))
        except ValidationError as exc:
            raise ValueError(format_validation_errors(exc, f"{source}: {name}",
                                                      model=ParamSpec)) from None
    if "local_solver" in out and out["local_solver"].type != "categorical":
        raise ValueError(f"{source}: local_solver: expected type = \"categorical\"")
    if "local_solver" in out:
        bad = [c for c in out["local_solver"].choices or [] if c not in SOLVERS]
        if bad:
            raise ValueError(f"{source}: local_solver: {bad[0]!r} is not an L-LEARN solver; "
                             f"expected some of {', '.join(SOLVERS)}")
    return out


def load_space(path: str | Path) -> dict[str, ParamSpec]:
    """A search space from a TOML file: one table per parameter (it replaces the default
    space: list every parameter to search; the others keep the configuration's value)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such search-space file")
    try:
        data = tomllib.loads(read_bytes_bounded(p, MAX_JSON_BYTES, "search space").decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not valid TOML ({exc})") from None
    return parse_space(data, str(p))


def suggest(trial: Any, space: Mapping[str, ParamSpec], ks: list[int]) -> dict[str, Any]:
    """The settings of one trial: every top-level parameter of ``space``, the options of
    the chosen solver only (define-by-run), ``k`` among ``ks``."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if "." in name or name == "k":
            continue
        params[name] = spec.suggest(trial, name)
    solver = params.get("local_solver")
    for name, spec in space.items():
        if "." in name and solver is not None and name.split(".", 1)[0] == solver:
            params[name] = spec.suggest(trial, name)
    if "k" in space:
        params["k"] = space["k"].suggest(trial, "k")
    elif len(ks) > 1:
        params["k"] = trial.suggest_categorical("k", ks)
    else:
        params["k"] = ks[0]
    return params


def trial_config(base: ExperimentConfig, params: Mapping[str, Any], name: str
                 ) -> ExperimentConfig:
    """``base`` with a trial's settings applied (one ``k``, one training seed), validated.
    ``SOLVER.OPTION`` settings go to ``algorithm.options.l_options``; when the trial
    chooses another L-LEARN solver than ``base``, the base's ``l_options`` (options of its
    solver) are dropped."""
    d = base.resolved()
    algo = d["algorithm"]
    opts = dict(algo.get("options") or {})
    l_opts = dict(opts.get("l_options") or {})
    if "local_solver" in params and params["local_solver"] != algo.get("local_solver"):
        l_opts = {}
    solver = params.get("local_solver", algo.get("local_solver"))
    for key, val in params.items():
        if key in ("m", "eval_rollouts", "local_solver", "eta"):
            algo[key] = val
        elif key == "confidence":
            opts["confidence"] = val
        elif "." in key and key.split(".", 1)[0] == solver:
            l_opts[key.split(".", 1)[1]] = val
    if l_opts:
        opts["l_options"] = l_opts
    else:
        opts.pop("l_options", None)
    algo["options"] = opts
    d["sweep"] = {"k": [int(params["k"])], "train_seeds": 1}
    d["name"] = name
    return parse_config(d, source=f"trial {name}")


def quick_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """``--quick``: at most 2 sweeps, 2 evaluation seeds x 10 rollouts x 20 steps, no
    Nash-gap certificate."""
    d = cfg.resolved()
    d["algorithm"]["sweeps"] = min(2, d["algorithm"]["sweeps"])
    d["evaluation"] = {"seeds": 2, "rollouts": 10, "horizon": 20, "nash_gap": "off"}
    return parse_config(d, source=f"{cfg.name} (--quick)")


# ---------------------------------------------------------------------------
# one trial (in any process)
# ---------------------------------------------------------------------------


def objective_of(value: float, k: int, objective: str, cost: float) -> float:
    """``value`` (objective ``"value"``) or ``value - cost k`` (``"value-cost"``)."""
    return float(value) - (cost * k if objective == "value-cost" else 0.0)


def pruning_callback(trial: Any, k: int, objective: str, cost: float) -> Callable[[Any], None]:
    """The ALTERNATING-MARL callback of a trial: report the objective of the played pair
    after each proposal (step ``2 (sweep - 1) + player``) and raise
    :class:`optuna.TrialPruned` when the study's pruner says so."""
    import optuna

    from altmarl.tracking.base import proposal_metrics

    def cb(rec: Any) -> None:
        step, _, m = proposal_metrics(rec)
        if "played_value" not in m:
            return
        trial.report(objective_of(m["played_value"], k, objective, cost), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at proposal {step}")

    return cb


def run_trial(job: dict[str, Any]) -> dict[str, Any]:
    """Run one trial (module level, so pool and Ray workers can import it): open the
    study, train and evaluate the unit, report to the pruner. Returns ``{"number",
    "state": "complete" | "pruned", "value", "objective", "output", "wall_s"}`` (``output``:
    the unit's files, :class:`~altmarl.experiments.runner.UnitOutput`)."""
    import optuna

    from altmarl.experiments.runner import UnitFailed, UnitTask, execute_unit

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=job["storage"],
                              pruner=make_pruner(job["quick"]))
    trial = optuna.trial.Trial(study, job["trial_id"])
    k = int(job["k"])
    task = UnitTask(json.dumps(job["config"], sort_keys=True), k, 0,
                    eval_workers=job.get("eval_workers", 1))
    t0 = time.perf_counter()
    out: dict[str, Any] = {"number": job["number"], "value": None, "objective": None,
                           "output": None}
    try:
        unit = execute_unit(task, callback=pruning_callback(trial, k, job["objective"],
                                                            job["cost"]))
    except UnitFailed as exc:
        if isinstance(exc.__cause__, optuna.TrialPruned):
            out.update(state="pruned", message=str(exc.__cause__),
                       wall_s=time.perf_counter() - t0)
            return out
        raise
    value = float(unit.result["eval"]["mean"])
    out.update(state="complete", value=value, output=unit, wall_s=time.perf_counter() - t0,
               objective=objective_of(value, k, job["objective"], job["cost"]))
    return out


def make_pruner(quick: bool = False) -> Any:
    """The median rule on the alternation history: a trial is pruned at a proposal when its
    played value is below the median of the earlier trials' at that proposal, once
    ``n_startup_trials`` trials have finished (5; ``--quick``: 2) and after the first
    sweep (``n_warmup_steps = 2``)."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2 if quick else 5, n_warmup_steps=2)


# ---------------------------------------------------------------------------
# the study (driver)
# ---------------------------------------------------------------------------


@dataclass
class TuneReport:
    """What :func:`tune` did: the directory, the trials run now, the best trial."""

    out: Path
    ran: int
    total: int
    best: dict[str, Any] | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    wall_s: float = 0.0


def tune(
    cfg: ExperimentConfig,
    out: str | Path,
    trials: int,
    *,
    objective: str = "value",
    cost: float = 0.0,
    space: Mapping[str, ParamSpec] | None = None,
    backend: str = "local",
    workers: int | None = 1,
    address: str | None = None,
    quick: bool = False,
    plots: bool = True,
    progress: bool = True,
    callbacks: Any = None,
) -> TuneReport:
    """Search the settings of ``cfg`` with Optuna until ``trials`` trials have finished
    (complete or pruned) in ``out``; see the module docstring.

    ``objective``: ``"value"`` or ``"value-cost"`` (``value - cost k``, ``cost > 0``);
    ``space``: the search space (default :data:`DEFAULT_SPACE`, with ``quick``
    :data:`QUICK_SPACE`); ``backend`` / ``workers`` / ``address``: where trials run
    (:mod:`altmarl.experiments.backends`; ``workers`` trials at a time, each batch proposed
    from the trials finished before it); ``quick``: the small protocol of
    :func:`quick_config`; ``callbacks``: trackers (:mod:`altmarl.tracking`) that receive
    each finished trial's value (step = trial number) and the figures. An existing study
    in ``out`` of the same configuration and objective is continued (trials that were
    running when it was interrupted are marked failed and not counted).
    """
    import optuna

    from altmarl._validate import check_choice, check_float, check_int
    from altmarl.experiments.backends import check_backend
    from altmarl.experiments.runner import lock_run_dir
    from altmarl.tracking.base import as_trackers

    trials = check_int("--trials", trials, 1, 100_000)
    check_choice("--objective", objective, OBJECTIVES)
    cost = check_float("--cost", cost, minimum=0)
    if objective == "value-cost" and cost <= 0:
        raise ValueError("--cost: objective value-cost needs a cost per observed agent > 0")
    check_backend(backend, workers, address)
    trackers = as_trackers(callbacks)
    base = quick_config(cfg) if quick else cfg
    sp = dict(space) if space is not None else parse_space(QUICK_SPACE if quick
                                                           else DEFAULT_SPACE)
    t0 = time.perf_counter()
    outp = Path(out)
    lock = lock_run_dir(outp)
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = f"sqlite:///{(outp / 'study.db').resolve()}"
        ident = {"format": TUNING_FORMAT, "config_fingerprint": base.fingerprint(),
                 "objective": objective, "cost": cost, "quick": quick,
                 "space": {key: s.model_dump(exclude_none=True) for key, s in sp.items()}}
        study = optuna.create_study(study_name=STUDY_NAME, storage=storage,
                                    direction="maximize", load_if_exists=True,
                                    pruner=make_pruner(quick))
        _check_ident(study, ident, outp)
        _fail_stale(study)
        trackers.log_params({"tune": {key: v for key, v in ident.items() if key != "space"},
                             **base.resolved()})
        ran = 0
        w = 1 if workers is None else workers
        from altmarl.progress import Progress

        with Progress(progress, remaining=True) as bar:
            done = _finished(study)
            task = bar.add_task("tuning trials", total=trials, completed=min(done, trials))
            while done < trials:
                batch = min(w, trials - done)
                jobs = [_ask(study, base, sp, storage, objective, cost, quick, w)
                        for _ in range(batch)]
                results = _run_batch(jobs, backend, w, address)
                for res in results:
                    _record(study, outp, res, trackers)
                    ran += 1
                    bar.advance(task, status=f"trial {res['number']}: {res['state']}"
                                + (f" {res['objective']:.4g}" if res["objective"] is not None
                                   else ""))
                done = _finished(study)
        rows = trial_rows(study, outp)
        atomic_write_bytes(outp / "tuning.csv", _rows_csv(rows))
        best = _best(study)
        if best is not None:
            bcfg = json.loads(best.user_attrs["config"])
            bcfg["name"] = f"{base.name}-best"
            best_cfg = parse_config(bcfg, source="best trial")
            atomic_write_bytes(outp / "best.toml", _best_toml(best_cfg, best, objective))
        summary: dict[str, Any] = {**ident, "name": base.name, "trials": len(rows),
                                   "finished": _finished(study),
                   "best": None if best is None else
                   {"number": best.number, "objective": best.value,
                    "value": best.user_attrs.get("value"), "params": best.params,
                    "k": best.user_attrs.get("k")}}
        atomic_write_bytes(outp / "tuning.json", json_bytes(summary))
        made = make_tuning_plots(study, outp / "plots", base.name) if plots else []
        if trackers:
            if best is not None:
                trackers.on_final({"best_objective": best.value, "best_trial": best.number,
                                   "best_value": best.user_attrs.get("value"),
                                   "trials": len(rows)})
            for p in made:
                trackers.log_figure(p.stem, p)
        return TuneReport(outp, ran, len(rows), summary["best"], rows, made,
                          time.perf_counter() - t0)
    finally:
        lock.release()


def _check_ident(study: Any, ident: dict[str, Any], out: Path) -> None:
    """A new study records what it tunes; an existing one must be the same search."""
    old = study.user_attrs.get("ident")
    if old is None:
        study.set_user_attr("ident", ident)
        return
    diff = [key for key in ident if old.get(key) != ident[key]]
    if diff:
        raise ValueError(f"{out}: holds a study of another search ({', '.join(diff)} "
                         "differ); choose another --out")


def _fail_stale(study: Any) -> None:
    """Trials left RUNNING by an interrupted driver: marked failed (not counted)."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)


def _finished(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _ask(study: Any, base: ExperimentConfig, space: Mapping[str, ParamSpec], storage: str,
         objective: str, cost: float, quick: bool, workers: int) -> dict[str, Any]:
    """One new trial: TPE seeded by the trial's number, its settings, its job."""
    import optuna

    number = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(
        seed=derive_seed(base.seed, TUNE, number) % 2**32, n_startup_trials=2 if quick else 10,
        constant_liar=workers > 1)
    trial = study.ask()
    params = suggest(trial, space, base.ks())
    cfg = trial_config(base, params, f"{base.name}-trial{trial.number:04d}")
    resolved = cfg.resolved()
    trial.set_user_attr("config", json.dumps(resolved, sort_keys=True))
    trial.set_user_attr("k", int(params["k"]))
    return {"number": trial.number, "trial_id": trial._trial_id, "storage": storage,
            "config": resolved, "k": int(params["k"]), "objective": objective, "cost": cost,
            "quick": quick,
            # default_threads(): every core in this process, and in a pool's workers one
            # thread while every worker has a trial (the idle cores after)
            "eval_workers": None}


def _run_batch(jobs: list[dict[str, Any]], backend: str, workers: int,
               address: str | None) -> list[dict[str, Any]]:
    from altmarl.experiments.backends import run_tasks

    results: list[dict[str, Any]] = []
    run_tasks(jobs, results.append, backend=backend, workers=workers, address=address,
              fn=run_trial)
    return sorted(results, key=lambda r: r["number"])


def trial_dir(out: Path, number: int) -> Path:
    """Where trial ``number`` keeps its run directory."""
    return out / "trials" / f"trial_{number:04d}"


def _record(study: Any, out: Path, res: dict[str, Any], trackers: Any) -> None:
    """Write a finished trial's run directory, keep its numbers in the study, tell the
    study its outcome, and send it to the trackers (step = trial number)."""
    import optuna

    from altmarl.experiments.runner import write_unit
    from altmarl.experiments.sweep import aggregate, prepare_run_dir

    number = res["number"]
    frozen = study.get_trials(deepcopy=False)[number]
    if res["state"] == "pruned":
        study.tell(number, state=optuna.trial.TrialState.PRUNED)
    else:
        cfg = parse_config(json.loads(frozen.user_attrs["config"]), source=f"trial {number}")
        d = trial_dir(out, number)
        prepare_run_dir(d, cfg, resume=True, kind="run")
        write_unit(d, res["output"], cfg.fingerprint())
        aggregate(d)
        cert = res["output"].result.get("nash_gap") or {}
        trial = optuna.trial.Trial(study, frozen._trial_id)
        trial.set_user_attr("value", res["value"])
        trial.set_user_attr("nash_gap", cert.get("nash_gap"))
        trial.set_user_attr("wall_s", res["wall_s"])
        study.tell(number, res["objective"])
    vals = {"tune/complete": 1.0 if res["state"] == "complete" else 0.0}
    if res["objective"] is not None:
        vals.update({"tune/objective": res["objective"], "tune/value": res["value"]})
    for t in trackers:
        if isinstance(t, BaseTracker):
            t.log_scalars(vals, number, axis="tune/trial")


def trial_rows(study: Any, out: Path) -> list[dict[str, Any]]:
    """One row per trial of the study: number, state, objective, value, k, Nash gap, the
    last proposal reported (``last_step``; where a pruned trial stopped), wall time, the
    run directory, then the settings (``param.NAME``; blank where a trial did not use
    one); ``run_dir`` relative to ``out``."""
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False):
        d = trial_dir(out, t.number)
        row: dict[str, Any] = {
            "number": t.number, "state": t.state.name.lower(),
            # a pruned trial's last report is an in-training estimate: not an objective
            "objective": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
            "value": t.user_attrs.get("value"),
            "k": t.user_attrs.get("k", t.params.get("k")), "nash_gap": t.user_attrs.get("nash_gap"),
            "last_step": t.last_step, "wall_s": t.user_attrs.get("wall_s"),
            "run_dir": str(d.relative_to(out)) if d.is_dir() else ""}
        row.update({f"param.{key}": v for key, v in t.params.items() if key != "k"})
        rows.append(row)
    return rows


def _rows_csv(rows: list[dict[str, Any]]) -> bytes:
    head = ["number", "state", "objective", "value", "k", "nash_gap", "last_step", "wall_s",
            "run_dir"]
    header = head + sorted({key for r in rows for key in r if key not in head})
    return dict_rows_csv_bytes(rows, header)


def _best(study: Any) -> Any:
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _best_toml(cfg: ExperimentConfig, best: Any, objective: str) -> bytes:
    head = (f"# the best trial ({best.number}) of `altmarl tune`: objective {objective} = "
            f"{best.value:.6g}\n# run it with: altmarl run best.toml\n")
    return (head + cfg.to_toml()).encode()


def make_tuning_plots(study: Any, plots_dir: Path, title: str = "") -> list[Path]:
    """The study's figures in the shared style (:func:`altmarl.plots.tuning.plot_tuning`):
    optimization history, intermediate values (the alternation history of every trial),
    parameter importances (PED-ANOVA, from two finished trials on) and slices; ``title``:
    the configuration's name."""
    import optuna

    from altmarl.plots.tuning import plot_tuning

    trials, scales = [], {}
    for t in study.get_trials(deepcopy=False):
        complete = t.state == optuna.trial.TrialState.COMPLETE
        trials.append({"number": t.number, "state": t.state.name.lower(),
                       "objective": t.value if complete else None,
                       "intermediate": dict(t.intermediate_values), "params": dict(t.params)})
        for name, dist in t.distributions.items():
            scales[name] = ("categorical" if isinstance(
                dist, optuna.distributions.CategoricalDistribution)
                else "log" if getattr(dist, "log", False) else "linear")
    importances = None
    done = [t for t in trials if t["objective"] is not None]
    if len(done) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's experimental-feature notes
            try:
                importances = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
            except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
                importances = None
    return plot_tuning(trials, plots_dir, importances=dict(importances or {}) or None,
                       scales=scales, title=title)


__all__ = ["DEFAULT_SPACE", "OBJECTIVES", "QUICK_SPACE", "STUDY_NAME", "TUNE", "ParamSpec",
           "TuneReport", "load_space", "make_pruner", "make_tuning_plots", "objective_of",
           "parse_space", "pruning_callback", "quick_config", "run_trial", "suggest",
           "trial_config", "trial_dir", "trial_rows", "tune"]
