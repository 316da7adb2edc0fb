"""One unit of an experiment: train one ``k`` with one training seed, then evaluate
(SPEC 6, 3, 9).

A *unit* is the atom of every run and sweep: ALTERNATING-MARL (``am.alternating_marl``,
paper Algorithm 14) trains a policy pair for one ``k`` and one training seed; the pair is
then evaluated (``am.evaluate``, SPEC 3) with ``E`` evaluation seeds. Units are pure
functions of ``(configuration, k, training index)``: a unit computed in any process,
on any machine, in any order gives the same numbers.

Seeds (SPEC 9), all derived from the configuration's ``seed``:

* training run ``t = 0`` uses ``seed`` itself (so ``altmarl run ENV --k K --seed S`` trains
  exactly ``am.alternating_marl(game, K, seed=S, ...)``); training run ``t >= 1`` uses
  ``derive_seed(seed, TRAIN, t)``. The training seeds do not depend on ``k``: runs at
  different ``k`` share their random streams as far as their shapes allow;
* evaluation seed ``e`` is ``derive_seed(seed, EVAL, e)``, the same for every ``k`` and
  every training run (common random numbers: the ``E`` evaluations of two policy pairs
  start from the same initial states);
* the example trajectory kept for the occupancy plot uses ``derive_seed(seed, TRAJ)``;
* the Nash-gap certificate's Monte-Carlo estimate (games too large for the exact chain)
  uses ``derive_seed(seed, CERT)``, the same for every unit.

Every unit's ``result.json`` carries ``nash_gap``, the certificate of its final pair
(:func:`altmarl.exact.nash_gap_certificate`: exact gaps when the chain is small, else a
lower bound from the run's last proposals with its interval), or ``None`` when
``[evaluation] nash_gap = "off"``.

A worker never writes into the run directory: it returns the unit's files as bytes
(:class:`UnitOutput`) and the driver writes them atomically (:func:`write_unit`), so
backends need no shared file system (Ray clusters) and a killed worker leaves nothing
half-written.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from altmarl._random import derive_seed
from altmarl._validate import resolve_callable
from altmarl.experiments.config import ExperimentConfig, parse_config
from altmarl.game import game_record
from altmarl.io import csv_bytes, json_bytes
from altmarl.locking import DirectoryLock, holds_lock
from altmarl.rundir import (
    LOCK_FILE,
    MANIFEST,
    UNIT_FILES,
    UNIT_FORMAT,
    UNIT_VERSION,
    check_unit,
    check_unit_name,
    is_finished,
    read_unit,
    unit_files,
    unit_manifest,
    unit_name,
    units_dir,
)

#: seed-derivation domains (SPEC 9)
TRAIN, EVAL, TRAJ, CERT = 0, 1, 2, 3

#: the trainer of the real code path
DEFAULT_TRAINER = "altmarl.alternating:alternating_marl"



def train_seed(root: int, t: int) -> int:
    """Seed of training run ``t`` (``t = 0``: the root seed itself)."""
    return int(root) if t == 0 else derive_seed(root, TRAIN, t)


def eval_seeds(root: int, count: int) -> list[int]:
    """The ``count`` evaluation seeds (shared by every ``k`` and training run)."""
    return [derive_seed(root, EVAL, e) for e in range(count)]


@dataclass(frozen=True)
class UnitTask:
    """Everything a worker needs to compute one unit (small and picklable)."""

    config_json: str
    k: int
    train_index: int
    trainer: str = DEFAULT_TRAINER
    #: threads of the unit's evaluations and G-LEARN (``None``:
    #: :func:`altmarl.threads.default_threads`, which in a sweep's worker processes is 1
    #: while every worker has a unit)
    eval_workers: int | None = 1

    @property
    def name(self) -> str:
        return unit_name(self.k, self.train_index)


@dataclass
class UnitOutput:
    """What a worker sends back: the unit's files and its parsed ``result.json``."""

    name: str
    files: dict[str, bytes]
    result: dict[str, Any] = field(default_factory=dict)


def make_tasks(cfg: ExperimentConfig, trainer: str = DEFAULT_TRAINER,
               eval_workers: int | None = 1) -> list[UnitTask]:
    """All units of a configuration, largest ``k`` first (longest jobs first balances a
    pool better; the order never changes the numbers)."""
    blob = json.dumps(cfg.resolved(), sort_keys=True)
    return [UnitTask(blob, k, t, trainer, eval_workers)
            for k in sorted(cfg.ks(), reverse=True) for t in range(cfg.sweep.train_seeds)]


# ---------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _config(blob: str) -> ExperimentConfig:
    return parse_config(json.loads(blob), source="unit", check_env=False)


@lru_cache(maxsize=4)
def _game(env_blob: str) -> Any:
    from altmarl import envs

    env = json.loads(env_blob)
    return envs.make(env["name"], **env.get("params", {}))


def resolve_trainer(spec: str) -> Callable[..., Any]:
    """``"module:function"`` -> the function (:func:`altmarl._validate.resolve_callable`)."""
    return resolve_callable("trainer", spec)


def _accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {key: v for key, v in kwargs.items() if key in params}


class UnitFailed(RuntimeError):
    """A unit raised: the message names the unit and the original error."""


def execute_unit(task: UnitTask, callback: Callable[..., Any] | None = None) -> UnitOutput:
    """Train and evaluate one unit; return its files (nothing is written here).

    ``callback`` is handed to the trainer (``alternating_marl(..., callback=...)``) for
    progress display in single-process runs. An error inside the unit is re-raised as
    :class:`UnitFailed` naming the unit.
    """
    try:
        return _execute_unit(task, callback)
    except Exception as exc:
        raise UnitFailed(f"unit {task.name} (k = {task.k}, training run {task.train_index}) "
                         f"failed: {type(exc).__name__}: {exc}") from exc


def _execute_unit(task: UnitTask, callback: Callable[..., Any] | None) -> UnitOutput:
    from altmarl.evaluation import evaluate
    from altmarl.generative.game import GenerativeGame
    from altmarl.generative.simulator import rollout as rollout_generative
    from altmarl.simulate import rollout_counts

    cfg = _config(task.config_json)
    game = _game(json.dumps(cfg.env.model_dump(mode="json"), sort_keys=True))
    k, t = task.k, task.train_index
    seed_t = train_seed(cfg.seed, t)
    trainer = resolve_trainer(task.trainer)
    kwargs = _accepted(trainer, {**cfg.algorithm.kwargs(), "progress": False,
                                 "callback": callback, "workers": task.eval_workers})
    if cfg.sampling is not None:  # SPEC 12: the unit's scheme of total size k
        kwargs["sampling"] = cfg.sampling.scheme_for(k, game)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    res = trainer(game, k, seed=seed_t, **kwargs)
    train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    pi_g, pi_l = res.pi_g, res.pi_l

    # --- evaluation: E seeds x R rollouts x H steps (SPEC 3) --------------------------
    ev_cfg = cfg.evaluation
    seeds = eval_seeds(cfg.seed, ev_cfg.seeds)
    wall1 = time.perf_counter()
    evs = [evaluate(game, pi_g, pi_l, rollouts=ev_cfg.rollouts, horizon=ev_cfg.horizon,
                    seed=s, workers=task.eval_workers) for s in seeds]
    eval_wall = time.perf_counter() - wall1
    traj_rng = np.random.default_rng(derive_seed(cfg.seed, TRAJ))
    if isinstance(game, GenerativeGame):  # the per-agent simulator (SPEC 11)
        traj = rollout_generative(game, pi_g, pi_l, ev_cfg.rollouts, ev_cfg.horizon, traj_rng)
        in_sg = None if traj.s_g is None else game.bin_of_global(traj.s_g)
    else:
        traj = rollout_counts(game, pi_g, pi_l, ev_cfg.rollouts, ev_cfg.horizon, traj_rng,
                              record_counts=True)
        in_sg = np.minimum(traj.s_g, game.n_sl - 1)

    wall2 = time.perf_counter()
    cert = nash_gap(game, res, cfg.evaluation.nash_gap or "auto",
                    derive_seed(cfg.seed, CERT), task.eval_workers)
    cert_wall = time.perf_counter() - wall2

    means = [float(e.mean) for e in evs]
    mm = [e.mode_match_rate for e in evs]
    result: dict[str, Any] = {
        "format": UNIT_FORMAT,
        "version": UNIT_VERSION,
        "name": task.name,
        "k": k,
        "train_index": t,
        "train_seed": seed_t,
        "config_fingerprint": cfg.fingerprint(),
        "game": game_record(game),
        "train": _train_summary(res),
        "eval": {
            "seeds": seeds,
            "rollouts": ev_cfg.rollouts,
            "horizon": ev_cfg.horizon,
            "means": means,
            "stderrs": [float(e.stderr) for e in evs],
            "mode_match_rates": mm,
            "mean": float(np.mean(means)),
            "std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
            "truncation_bound": float(evs[0].truncation_bound),
        },
        "nash_gap": cert,
        "timing": {"train_wall_s": train_wall, "train_cpu_s": train_cpu,
                   "eval_wall_s": eval_wall, "nash_gap_wall_s": cert_wall},
    }
    files = {
        "result.json": json_bytes(result),
        **_policy_file("pi_g", pi_g, game),
        **_policy_file("pi_l", pi_l, game),
        "history.csv": _history_csv(getattr(res, "history", [])),
        "steps.csv": _steps_csv(evs),
        "trajectory.csv": _trajectory_csv(traj, game.n, in_sg),
    }
    return UnitOutput(task.name, files, result)


def nash_gap(game: Any, res: Any, mode: str, seed: int,
             workers: int | None = None) -> dict[str, Any] | None:
    """The Nash-gap certificate of a trained pair ``res.pi_g, res.pi_l``
    (:func:`altmarl.exact.nash_gap_certificate`, deviations ``res.last_proposals`` when the
    trainer reports them), with ``update_tolerance``, the trainer's certified tolerance
    (``res.tolerance``); ``None`` for ``mode = "off"``."""
    if mode == "off":
        return None
    from altmarl.exact import nash_gap_certificate

    cert = nash_gap_certificate(game, res.pi_g, res.pi_l, mode=mode, seed=seed,
                                deviations=getattr(res, "last_proposals", None),
                                workers=workers)
    # the other side: what UPDATE certified at convergence (an upper bound on the gap up to
    # the learners' own best-response error; None when the run did not converge)
    tol = getattr(res, "tolerance", None)
    cert["update_tolerance"] = None if tol is None else float(tol)
    return cert


def _train_summary(res: Any) -> dict[str, Any]:
    """Scalars of the training result: ``value`` (its ``.mean`` when it is an estimate),
    ``value_stderr``, and the small entries of ``res.to_dict()``."""
    v = getattr(res, "value", None)
    out: dict[str, Any] = {"value": _scalar(getattr(v, "mean", v)),
                           "value_stderr": _scalar(getattr(v, "stderr", None))}
    to_dict = getattr(res, "to_dict", None)
    if callable(to_dict):
        for key, val in to_dict().items():
            if key in ("value", "history"):
                continue
            sv = _jsonable_small(val)
            if sv is not _SKIP:
                out[key] = sv
    return out


_SKIP = object()


def _scalar(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Enum):
        return v.value
    return v


def _jsonable_small(v: Any) -> Any:
    """Scalars, short lists and small dicts of scalars; ``_SKIP`` for anything else."""
    v = _scalar(v)
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list | tuple) and len(v) <= 64:
        items = [_jsonable_small(x) for x in v]
        return _SKIP if any(x is _SKIP for x in items) else items
    if isinstance(v, Mapping) and len(v) <= 64:
        d = {str(a): _jsonable_small(b) for a, b in v.items()}
        return _SKIP if any(x is _SKIP for x in d.values()) else d
    return _SKIP


def _policy_file(stem: str, pol: Any, game: Any) -> dict[str, bytes]:
    """``{stem + suffix: bytes}`` of a policy file (``.npz`` tabular, ``.pt`` neural:
    :func:`altmarl.generative.files.policy_bytes`)."""
    from altmarl.generative.files import policy_bytes

    suffix, data = policy_bytes(pol, game)
    return {stem + suffix: data}


def _history_rows(history: Any) -> list[dict[str, Any]]:
    rows = []
    for i, step in enumerate(history or []):
        if isinstance(step, Mapping):
            d = dict(step)
        elif hasattr(step, "to_dict"):
            d = step.to_dict()
        elif hasattr(step, "__dataclass_fields__"):
            d = {f: getattr(step, f) for f in step.__dataclass_fields__}
        else:
            d = {"entry": str(step)}
        flat = {"step": i}
        for key, val in d.items():
            sv = _jsonable_small(val)
            if sv is _SKIP or isinstance(sv, list | dict):
                continue
            flat[str(key)] = sv
        rows.append(flat)
    return rows


def _history_csv(history: Any) -> bytes:
    rows = _history_rows(history)
    header: list[str] = []
    for r in rows:
        header += [key for key in r if key not in header]
    return csv_bytes(header or ["step"], [[r.get(h, "") for h in header] for r in rows])


def _steps_csv(evs: list[Any]) -> bytes:
    """Per time step, averaged over evaluation seeds: reward, occupancy per local state (per
    population bin on a generative game), global-state occupancy, mode-match rate."""
    reward = np.mean([e.reward_per_step for e in evs], axis=0)
    occ = np.mean([e.occupancy for e in evs], axis=0)
    gocc = np.mean([e.global_occupancy for e in evs], axis=0)
    mm = None if evs[0].mode_match is None else np.mean([e.mode_match for e in evs], axis=0)
    header = (["t", "reward"] + [f"occ_{x}" for x in range(occ.shape[1])]
              + [f"global_occ_{g}" for g in range(gocc.shape[1])] + ["mode_match"])
    rows = []
    for t in range(reward.shape[0]):
        rows.append([t, float(reward[t]), *map(float, occ[t]), *map(float, gocc[t]),
                     "" if mm is None else float(mm[t])])
    return csv_bytes(header, rows)


def _trajectory_csv(traj: Any, n: int, in_sg_bin: Any) -> bytes:
    """Example rollouts (a batch of ``R`` from the trajectory seed).

    Rollout 0: ``s_g``, ``a_g``, reward, fraction of agents per local state (``frac_x``; per
    population bin on a generative game) and in the local state equal to ``s_g`` (``in_sg``,
    the bin ``in_sg_bin`` of each global state; meaningful when local and global states
    name the same places, as the warehouse's zones). Means over the batch: ``mean_in_sg``
    and ``mean_largest`` (fraction of agents in the most populated local state) — unlike
    the per-state occupancy, these do not average out under symmetry. Without population
    bins (vector states) only ``t``, ``s_g``, ``a_g`` and ``reward`` are filled.
    """
    R, H = traj.rewards.shape
    sg = traj.s_g
    if traj.counts is None:
        frac = np.zeros((R, H, 0))
        in_sg = largest = np.full((R, H), np.nan)
    else:
        frac = traj.counts / n  # (R, H, bins)
        in_sg = (np.full((R, H), np.nan) if in_sg_bin is None
                 else np.take_along_axis(frac, in_sg_bin[..., None], axis=2)[..., 0])
        largest = frac.max(axis=2)
    header = (["t", "s_g", "a_g", "reward"] + [f"frac_{x}" for x in range(frac.shape[2])]
              + ["in_sg", "mean_in_sg", "mean_largest"])

    def state(v: Any) -> Any:
        return int(v) if np.issubdtype(np.asarray(v).dtype, np.integer) else float(v)

    rows = [[t, "" if sg is None else state(sg[0, t]), int(traj.a_g[0, t]),
             float(traj.rewards[0, t]), *map(float, frac[0, t]), float(in_sg[0, t]),
             float(in_sg[:, t].mean()), float(largest[:, t].mean())] for t in range(H)]
    return csv_bytes(header, rows)


# ---------------------------------------------------------------------------
# driver side
# ---------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def writer_tag() -> str:
    """A token unique to this writer (host, process, random): the suffix of every temporary
    name a driver creates in a run directory, so two writers never share one."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def write_unit(run_dir: str | os.PathLike[str], out: UnitOutput,
               fingerprint: str | None = None) -> Path:
    """Write a unit's files and its manifest atomically: into a hidden temporary directory,
    then one rename to ``units/<name>``. A reader (or ``--resume``) sees all files or none.

    An existing ``units/<name>`` is kept when it is intact (:func:`check_unit`), and
    replaced when it is damaged (moved aside, then deleted once the new one is in place).
    """
    name = check_unit_name(out.name)
    want = unit_files(out.files)
    if set(out.files) != set(want) or MANIFEST in out.files:
        raise ValueError(f"unit {name}: files {sorted(out.files)} do not match "
                         f"{list(want)}")
    udir = units_dir(run_dir)
    udir.mkdir(parents=True, exist_ok=True)
    final = udir / name
    tag = writer_tag()
    tmp = udir / f".{name}.tmp-{tag}"
    aside = udir / f".{name}.damaged-{tag}"
    tmp.mkdir()
    try:
        files = {**out.files, MANIFEST: json_bytes(unit_manifest(name, out.files))}
        for fname, data in files.items():
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():
            if check_unit(run_dir, name, fingerprint) is None:
                shutil.rmtree(tmp)  # finished meanwhile and intact: keep the first
                return final
            os.replace(final, aside)
        try:
            os.replace(tmp, final)
        except OSError:
            if final.exists() and check_unit(run_dir, name, fingerprint) is None:
                shutil.rmtree(tmp)  # another writer won the race with an intact unit
                return final
            raise
        _fsync_dir(udir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return final


def lock_run_dir(run_dir: str | os.PathLike[str]) -> DirectoryLock:
    """Create ``run_dir`` if needed and take its lock (:data:`~altmarl.rundir.LOCK_FILE`):
    the caller is then its only writer until it calls ``release()`` or exits. A second
    driver gets :class:`~altmarl.locking.LockHeld` (a ``ValueError``) naming the holder."""
    rd = Path(run_dir)
    if rd.exists() and not rd.is_dir():
        raise ValueError(f"{rd}: exists and is not a directory; choose another --out")
    rd.mkdir(parents=True, exist_ok=True)
    return DirectoryLock(rd, LOCK_FILE, "run directory").acquire()


#: hidden temporary names in a run directory: unit directories being written or replaced,
#: ``atomic_write_bytes`` temporaries
_STALE_UNIT = re.compile(r"\..+\.(tmp|damaged)-.+")


def clean_stale(run_dir: str | os.PathLike[str]) -> int:
    """Remove temporary files left by an interrupted run (unit directories being written,
    ``atomic_write_bytes`` temporaries of the summary files and plots); returns how many.

    A running driver's temporaries look exactly like stale ones, so this runs only under
    the run directory's lock: the caller's (:func:`lock_run_dir`), or one taken here for
    the cleanup (:class:`~altmarl.locking.LockHeld` when another driver holds it).
    """
    rd = Path(run_dir)
    if not holds_lock(rd, LOCK_FILE) and rd.is_dir():
        with DirectoryLock(rd, LOCK_FILE, "run directory"):
            return clean_stale(rd)
    stale: list[Path] = []
    udir = units_dir(rd)
    if udir.is_dir():
        stale += [p for p in udir.iterdir() if _STALE_UNIT.fullmatch(p.name)]
    for d in (rd, rd / "plots"):
        if d.is_dir():
            stale += [p for p in d.iterdir()
                      if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp")]
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(stale)


__all__ = [
    "DEFAULT_TRAINER",
    "MANIFEST",
    "UNIT_FILES",
    "UNIT_FORMAT",
    "UNIT_VERSION",
    "UnitFailed",
    "UnitOutput",
    "UnitTask",
    "check_unit",
    "clean_stale",
    "eval_seeds",
    "execute_unit",
    "is_finished",
    "lock_run_dir",
    "make_tasks",
    "read_unit",
    "resolve_trainer",
    "train_seed",
    "unit_name",
    "units_dir",
    "write_unit",
    "writer_tag",
]
