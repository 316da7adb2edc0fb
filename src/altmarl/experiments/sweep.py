"""Runs and sweeps: run directories, resume, aggregation (SPEC 9, 10).

A run directory (``altmarl run`` / ``sweep`` / ``reproduce``) holds::

    config.toml        resolved configuration (every default filled in; re-loadable)
    config.json        the same as JSON, with its fingerprint and the kind of run
    units/k0005_t00/   one finished unit (one k x one training seed), written atomically:
        manifest.json  SHA-256 digest and size of each file below, recorded at write time
        result.json    values per evaluation seed, training summary, timing
        pi_g.npz       learned global policy (GlobalPolicy.save)
        pi_l.npz       learned local policy (LocalPolicy.save)
        history.csv    ALTERNATING-MARL history, one row per proposal
        steps.csv      per time step (mean over evaluation seeds): reward, occupancy,
                       global-state occupancy, mode-match rate
        trajectory.csv one example rollout (zone fractions, s_g, a_g)
    metrics.csv        one row per (k, training run, evaluation seed)
    per_k.csv          aggregates per k (mean and spread over seeds, runtime, mode mismatch)
    summary.json       machine-readable summary (per-k aggregates, completeness, timing)
    plots/*.png        figures (:mod:`altmarl.plots`)

Everything except wall-clock timing (the ``timing`` entries of the JSON files and the
``*_s`` columns of the CSV files) is a pure function of the configuration: an interrupted
sweep resumed with ``--resume`` ends with the same files as an uninterrupted one.

Run directories heal: every unit is checked against its manifest (and its configuration's
fingerprint) whenever the directory is aggregated or resumed. A unit with a missing,
truncated or edited file is reported by name (``summary.json``: ``damaged``), never counts
as done, and is recomputed by ``--resume``; a damaged ``config.json`` is rebuilt from
``config.toml`` or from the configuration being resumed. ``docs/reliability.md`` lists
these promises and the tests that hold them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from altmarl.evaluation import seed_interval
from altmarl.experiments.backends import check_backend, run_tasks, runs_in_process
from altmarl.experiments.config import ExperimentConfig, parse_config
from altmarl.experiments.runner import (
    DEFAULT_TRAINER,
    UnitFailed,
    UnitOutput,
    clean_stale,
    lock_run_dir,
    make_tasks,
    write_unit,
)
from altmarl.io import atomic_write_bytes, csv_bytes, json_bytes
from altmarl.progress import Progress
from altmarl.rundir import (
    LOCK_FILE,
    RUN_CONFIG_FORMAT,
    SUMMARY_FORMAT,
    SUMMARY_VERSION,
    check_unit,
    read_run_record,
    scan_units,
    unit_name,
    units_dir,
)


@dataclass
class SweepReport:
    """What :func:`run_sweep` did: the run directory, its summary, and counts.

    ``repaired`` names what the run found damaged and rebuilt (a unit name or a file of the
    run directory -> what was wrong with it)."""

    run_dir: Path
    summary: dict[str, Any]
    ran: int
    skipped: int
    plots: list[Path] = field(default_factory=list)
    wall_s: float = 0.0
    repaired: dict[str, str] = field(default_factory=dict)


class SweepIncomplete(UnitFailed):
    """A sweep ran every unit it could and the run directory is still not complete; the
    message says which units are missing or damaged and why."""


# ---------------------------------------------------------------------------
# run directory
# ---------------------------------------------------------------------------


def read_run_config(run_dir: str | Path) -> tuple[ExperimentConfig, dict[str, Any]]:
    """The configuration stored in a run directory and the ``config.json`` record.

    Every problem is a ``ValueError`` naming the file: no ``config.json``, invalid JSON,
    a record of another format, an invalid configuration, or a fingerprint that does not
    match the stored configuration (an edited file).
    """
    p = Path(run_dir) / "config.json"
    rec = read_run_record(run_dir)
    cfg = parse_config(rec["config"], source=str(p), check_env=False)
    if rec.get("fingerprint") != cfg.fingerprint():
        raise ValueError(f"{p}: fingerprint {rec.get('fingerprint')!r} does not match the "
                         f"stored configuration ({cfg.fingerprint()}): the file was edited")
    return cfg, rec


def stored_config(run_dir: str | Path) -> tuple[ExperimentConfig | None, dict[str, Any],
                                                 list[str]]:
    """``(configuration, record, problems)`` of a run directory: from ``config.json``, or,
    when it is damaged, from ``config.toml`` (``problems`` says what was wrong; the
    configuration is ``None`` when neither file is usable)."""
    from altmarl.experiments.config import load_config

    out = Path(run_dir)
    try:
        cfg, rec = read_run_config(out)
        return cfg, rec, []
    except ValueError as exc:
        problems = [str(exc)]
    try:
        return load_config(out / "config.toml", check_env=False), {}, problems
    except (ValueError, OSError) as exc:
        problems.append(str(exc))
    return None, {}, problems


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]


def prepare_run_dir(run_dir: str | Path, cfg: ExperimentConfig, resume: bool,
                    kind: str, repaired: dict[str, str] | None = None) -> Path:
    """Create (or, with ``resume``, re-open) a run directory for ``cfg``.

    Raises ``ValueError`` when the directory already holds a run and ``resume`` is false,
    or holds a run of a different configuration. A damaged ``config.json`` is rebuilt on
    resume when ``config.toml`` or the units' fingerprints show the run is of ``cfg``; what
    was rebuilt is added to ``repaired``.
    """
    out = Path(run_dir)
    rec_path = out / "config.json"
    if rec_path.exists() or (out / "config.toml").exists():
        if not resume:
            raise ValueError(f"{out}: already holds a run; pass --resume to continue it or "
                             "choose another --out")
        old, _, problems = stored_config(out)
        if old is not None and old.fingerprint() != cfg.fingerprint():
            changes = _diff(old.resolved(), cfg.resolved())
            raise ValueError(f"{out}: holds a run of a different configuration, cannot resume "
                             f"({'; '.join(changes[:8])})")
        if old is None:
            others = sorted({r["config_fingerprint"] for r in scan_units(out).results}
                            - {cfg.fingerprint()})
            if others:
                raise ValueError(f"{out}: its configuration files are damaged "
                                 f"({'; '.join(problems)}) and its units were computed for "
                                 f"another configuration (fingerprint {others[0]}); cannot "
                                 "resume")
        if problems and repaired is not None:
            repaired["config.json"] = problems[0]
    elif out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise ValueError(f"{out}: exists and is not an altmarl run directory; choose another "
                         "--out")
    out.mkdir(parents=True, exist_ok=True)
    from altmarl import __version__

    rec = {"format": RUN_CONFIG_FORMAT, "version": 1, "kind": kind,
           "fingerprint": cfg.fingerprint(), "altmarl_version": __version__,
           "config": cfg.resolved()}
    atomic_write_bytes(out / "config.toml", cfg.to_toml().encode())
    atomic_write_bytes(rec_path, json_bytes(rec))
    clean_stale(out)
    return out


def run_progress(run_dir: str | Path, cfg: ExperimentConfig) -> tuple[int, int] | None:
    """``(finished, total)`` units of ``cfg`` in ``run_dir`` when it holds a run of that
    configuration (finished: intact, :func:`~altmarl.rundir.check_unit`); ``None`` when it
    holds no run or a run of another configuration (which :func:`run_sweep` refuses, naming
    the differences). Reads only: ``altmarl run`` asks it whether an existing directory
    is finished (re-used) or interrupted (continued with ``--resume``)."""
    out = Path(run_dir)
    if not ((out / "config.json").exists() or (out / "config.toml").exists()):
        return None
    fp = cfg.fingerprint()
    old, _, _ = stored_config(out)
    if old is not None and old.fingerprint() != fp:
        return None
    tasks = make_tasks(cfg)
    return sum(check_unit(out, t.name, fp) is None for t in tasks), len(tasks)


# ---------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------


def _std(x: list[float]) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def load_units(run_dir: str | Path) -> list[dict[str, Any]]:
    """``result.json`` of every finished, intact unit (:func:`~altmarl.experiments.runner.check_unit`),
    sorted by ``(k, train_index)``; damaged units are left out (see :func:`aggregate`)."""
    cfg, _, _ = stored_config(run_dir)
    return scan_units(run_dir, None if cfg is None else cfg.fingerprint()).results


def aggregate(run_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Recompute ``metrics.csv``, ``per_k.csv`` and ``summary.json`` from the finished units.

    Per ``k``, the spread is over all evaluations (training runs x evaluation seeds):
    ``mean``, ``std`` (sample standard deviation of the per-seed means), ``stderr`` =
    ``std / sqrt(count)`` and the Student-t 95% interval of the mean (``count - 1``
    degrees of freedom, :func:`altmarl.evaluation.seed_interval`). ``mode_mismatch`` is
    ``1 - mode_match_rate``: how often ``a_g`` differs from the population mode.

    Nash gap (issue 16): ``summary.json``'s ``nash_gap`` maps every unit to its
    certificate (:func:`altmarl.exact.nash_gap_certificate`: exact gaps, or a lower bound
    with its interval); per ``k``, ``nash_gap`` is the largest over the training runs,
    ``nash_gap_bound`` ``"exact"`` when every one is exact, else ``"lower"``, with the
    ``nash_gap_ci95`` of the estimates (``per_k.csv``: columns ``nash_gap``,
    ``nash_gap_bound``, ``nash_gap_ci95_low``, ``nash_gap_ci95_high``).

    Every unit is checked against its manifest and the configuration's fingerprint first:
    damaged units are left out of the aggregates and listed under ``damaged`` (unit name ->
    what is wrong, naming the file), and the run is ``complete`` only when every unit is
    present and intact.
    """
    out = Path(run_dir)
    cfg, rec, problems = stored_config(out)
    if cfg is None:
        raise ValueError(f"{out}: cannot read the run's configuration: {'; '.join(problems)}")
    scan = scan_units(out, cfg.fingerprint())
    units = scan.results
    expected = {(k, t) for k in cfg.ks() for t in range(cfg.sweep.train_seeds)}
    done = {(u["k"], u["train_index"]) for u in units}

    metric_rows: list[list[Any]] = []
    per_k: list[dict[str, Any]] = []
    certs: dict[int, dict[str, Any]] = {}
    timing_k: list[dict[str, Any]] = []
    for k in sorted({u["k"] for u in units}):
        uk = [u for u in units if u["k"] == k]
        vals: list[float] = []
        mism: list[float] = []
        for u in uk:
            ev = u["eval"]
            for e, (seed, m, se, mm) in enumerate(zip(ev["seeds"], ev["means"], ev["stderrs"],
                                                      ev["mode_match_rates"], strict=True)):
                metric_rows.append([k, u["train_index"], e, seed, m, se,
                                    "" if mm is None else mm, u["train_seed"],
                                    u["train"].get("value"), u["timing"]["train_wall_s"],
                                    u["timing"]["train_cpu_s"]])
                vals.append(m)
                if mm is not None:
                    mism.append(1.0 - mm)
        iv = seed_interval(vals)  # Student-t over the (few) evaluations
        mean, std, se = iv.mean, iv.std, iv.stderr
        walls = [u["timing"]["train_wall_s"] for u in uk]
        cpus = [u["timing"]["train_cpu_s"] for u in uk]
        certs[k] = {u["name"]: u.get("nash_gap") for u in uk}
        per_k.append({
            "k": k, "train_runs": len(uk), "evaluations": len(vals), "mean": mean, "std": std,
            "stderr": se,
            "ci95": None if iv.ci is None else list(iv.ci),
            "min": float(np.min(vals)), "max": float(np.max(vals)),
            "train_value_mean": _mean_or_none([u["train"].get("value") for u in uk]),
            "mode_mismatch_mean": float(np.mean(mism)) if mism else None,
            "mode_mismatch_std": _std(mism) if mism else None,
            **_gap_per_k(list(certs[k].values())),
        })
        timing_k.append({"k": k, "train_wall_s": float(np.mean(walls)),
                         "train_wall_s_std": _std(walls), "train_cpu_s": float(np.mean(cpus)),
                         "train_cpu_s_std": _std(cpus)})

    atomic_write_bytes(out / "metrics.csv", csv_bytes(
        ["k", "train_index", "eval_index", "eval_seed", "value", "stderr", "mode_match_rate",
         "train_seed", "train_value", "train_wall_s", "train_cpu_s"], metric_rows))
    pk_header = ["k", "train_runs", "evaluations", "mean", "std", "stderr", "ci95_low",
                 "ci95_high", "min", "max", "mode_mismatch_mean", "mode_mismatch_std",
                 "train_wall_s", "train_wall_s_std", "train_cpu_s", "nash_gap",
                 "nash_gap_bound", "nash_gap_ci95_low", "nash_gap_ci95_high"]
    pk_rows = [[p["k"], p["train_runs"], p["evaluations"], p["mean"], p["std"], _blank(p["stderr"]),
                *(p["ci95"] or ["", ""]), p["min"], p["max"],
                _blank(p["mode_mismatch_mean"]), _blank(p["mode_mismatch_std"]),
                tk["train_wall_s"], tk["train_wall_s_std"], tk["train_cpu_s"],
                _blank(p["nash_gap"]), _blank(p["nash_gap_bound"]),
                *(p["nash_gap_ci95"] or ["", ""])]
               for p, tk in zip(per_k, timing_k, strict=True)]
    atomic_write_bytes(out / "per_k.csv", csv_bytes(pk_header, pk_rows))

    best = max(per_k, key=lambda p: p["mean"]) if per_k else None
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "name": cfg.name,
        "kind": rec.get("kind", "sweep"),
        "config_fingerprint": cfg.fingerprint(),
        "env": cfg.env.model_dump(mode="json"),
        "ks": cfg.ks(),
        "train_seeds": cfg.sweep.train_seeds,
        "evaluation": cfg.evaluation.model_dump(mode="json"),
        "complete": done >= expected and not problems,
        "units_total": len(expected),
        "units_done": len(done & expected),
        "missing": [f"k={k}, t={t}" for k, t in sorted(expected - done)],
        "damaged": scan.damaged,
        "unexpected": scan.unexpected,
        "config_problems": problems,
        "per_k": per_k,
        "nash_gap": {name: c for k in sorted(certs) for name, c in certs[k].items()},
        "best": None if best is None else {"k": best["k"], "mean": best["mean"]},
        "timing": {"per_k": timing_k,
                   "total_train_wall_s": float(sum(t["train_wall_s"] * p["train_runs"]
                                                   for t, p in zip(timing_k, per_k, strict=True)))},
    }
    if extra:
        summary.update(extra)
    atomic_write_bytes(out / "summary.json", json_bytes(summary))
    return summary


def _blank(x: Any) -> Any:
    return "" if x is None else x


def _mean_or_none(xs: list[Any]) -> float | None:
    v = [float(x) for x in xs if isinstance(x, int | float)]
    return float(np.mean(v)) if v else None


# ---------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------


def run_sweep(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    resume: bool = False,
    kind: str = "sweep",
    plots: bool = True,
    progress: bool = True,
    console: Any = None,
    trainer: str = DEFAULT_TRAINER,
    on_unit: Callable[[UnitOutput], None] | None = None,
    callbacks: Any = None,
) -> SweepReport:
    """Run every unit of ``cfg`` (each ``k`` x each training seed) into ``out``.

    Parameters
    ----------
    backend, workers, address
        Where units run (:mod:`altmarl.experiments.backends`); the numbers do not depend
        on them.
    resume
        Re-open an existing run directory of the same configuration and skip its finished
        units (and remove temporary files left by an interrupted run). Damaged units are
        recomputed (``SweepReport.repaired`` names them).
    plots
        Draw the figures of :mod:`altmarl.plots` at the end.
    trainer
        ``"module:function"`` with the signature of ``am.alternating_marl``; the default is
        ALTERNATING-MARL itself (other values are for tests).
    callbacks
        Experiment trackers (:class:`altmarl.tracking.Tracker`: one or a list; the
        caller closes them). They receive the resolved configuration, then, for every
        unit computed by this call (in the driver, as each unit finishes, whatever the
        backend), its UPDATE proposals (``unit`` = the unit's name) and its results, and
        at the end the final numbers (:func:`altmarl.tracking.final_of_summary`) and the
        figures. Units re-used by ``resume`` are not sent again.

    Notes
    -----
    The driver holds the run directory's lock (:func:`~altmarl.experiments.runner.lock_run_dir`)
    from start to end: a second driver on the same directory gets
    :class:`~altmarl.locking.LockHeld` (a ``ValueError``: exit status 2 on the command line)
    naming the holder. A sweep that cannot complete raises (:class:`SweepIncomplete`,
    :class:`~altmarl.experiments.runner.UnitFailed`, ``WorkerDied``) instead of returning an
    incomplete run.
    """
    from altmarl.tracking.base import as_trackers

    t0 = time.perf_counter()
    check_backend(backend, workers, address)
    trackers = as_trackers(callbacks)
    lock = lock_run_dir(out)
    try:
        return _run_locked(cfg, Path(out), t0, backend=backend, workers=workers,
                           address=address, resume=resume, kind=kind, plots=plots,
                           progress=progress, console=console, trainer=trainer,
                           on_unit=on_unit, trackers=trackers)
    finally:
        lock.release()


def _run_locked(cfg: ExperimentConfig, out: Path, t0: float, *, backend: str,
                workers: int | None, address: str | None, resume: bool, kind: str,
                plots: bool, progress: bool, console: Any, trainer: str,
                on_unit: Callable[[UnitOutput], None] | None, trackers: Any) -> SweepReport:
    """:func:`run_sweep` while holding the run directory's lock."""
    from altmarl.io import csv_rows_from_bytes
    from altmarl.tracking.base import final_of_summary

    repaired: dict[str, str] = {}
    run_dir = prepare_run_dir(out, cfg, resume, kind, repaired)
    trackers.log_params({"kind": kind, "fingerprint": cfg.fingerprint(), **cfg.resolved()})
    fp = cfg.fingerprint()
    # every unit sizes its thread pools with default_threads(): the CPU count in this
    # process, one thread in a worker process while the pool is full (the idle cores
    # once fewer units are left than workers)
    tasks = make_tasks(cfg, trainer, eval_workers=None)
    todo = []
    for task in tasks:
        problem = check_unit(run_dir, task.name, fp)
        if problem is not None:
            todo.append(task)
            if (units_dir(run_dir) / task.name).exists():
                repaired[task.name] = problem  # damaged: recomputed below
    serial = runs_in_process(backend, workers, len(todo))
    skipped = len(tasks) - len(todo)
    ran = 0

    prog = _Progress(progress, console, total=len(tasks), done=skipped,
                     sweeps=cfg.algorithm.sweeps if serial or len(todo) == 1 else None)

    def on_done(o: UnitOutput) -> None:
        nonlocal ran
        write_unit(run_dir, o, fp)
        ran += 1
        aggregate(run_dir)
        if trackers:
            for row in csv_rows_from_bytes(o.files.get("history.csv", b"")):
                trackers.on_proposal(row, unit=o.name)
            trackers.on_unit(o.result, unit=o.name)
        prog.unit_done(o)
        if on_unit is not None:
            on_unit(o)

    with prog:
        try:
            run_tasks(todo, on_done, backend=backend, workers=workers, address=address,
                      callback=prog.callback)
        finally:
            if ran == 0 and not (run_dir / "summary.json").exists():
                aggregate(run_dir)
    summary = aggregate(run_dir)
    if not summary["complete"]:
        raise SweepIncomplete(f"{run_dir}: {incomplete_reason(summary)}")
    made: list[Path] = []
    if plots and summary["per_k"]:
        from altmarl.plots import make_plots

        made = make_plots(run_dir)
        summary = aggregate(run_dir, extra={"plots": [str(p.relative_to(run_dir))
                                                      for p in made]})
    if trackers:
        trackers.on_final(final_of_summary(summary))
        for p in made:
            trackers.log_figure(p.stem, p)
    return SweepReport(run_dir, summary, ran, skipped, made, time.perf_counter() - t0,
                       repaired)


def incomplete_reason(summary: dict[str, Any]) -> str:
    """What keeps a run's summary from being complete, in one sentence (damaged units and
    files by name, then the count of units not computed yet)."""
    parts = [f"damaged: {why}" for why in summary.get("damaged", {}).values()]
    parts += [f"damaged: {why}" for why in summary.get("config_problems", [])]
    damaged = set(summary.get("damaged", {}))
    missing = [m for m in summary.get("missing", [])
               if _unit_of(m) not in damaged]
    if missing:
        parts.append(f"{len(missing)} unit(s) not computed ({', '.join(missing[:6])}"
                     f"{', ...' if len(missing) > 6 else ''})")
    done, total = summary.get("units_done"), summary.get("units_total")
    return f"incomplete ({done}/{total} units): " + "; ".join(parts or ["unknown reason"])


def _unit_of(missing: str) -> str:
    """``"k=5, t=0"`` -> ``"k0005_t00"``."""
    k, t = (int(part.split("=")[1]) for part in missing.split(", "))
    return unit_name(k, t)


class _Progress:
    """One bar over units, plus (single-process runs) one over the ALTERNATING-MARL
    proposals of the current unit."""

    def __init__(self, enabled: bool, console: Any, total: int, done: int,
                 sweeps: int | None) -> None:
        self.progress = Progress(enabled, remaining=True, console=console)
        self.enabled = self.progress.active
        self.callback: Callable[..., Any] | None = None
        self.units = self.progress.add_task("units", total=total, completed=done)
        self.remaining = total - done
        self.inner = 0
        self.proposals = 0
        self.made = 0
        if sweeps is not None and self.enabled:
            # one global and one local proposal per sweep (the run may converge earlier)
            self.proposals = 2 * sweeps
            self.inner = self.progress.add_task("  ALTERNATING-MARL proposals",
                                                total=self.proposals)
            self.callback = self._step

    def _step(self, *args: Any, **kwargs: Any) -> None:
        self.made += 1
        self.progress.advance(self.inner)

    def unit_done(self, o: UnitOutput) -> None:
        if not self.enabled:
            return
        ev = o.result.get("eval", {})
        self.progress.advance(self.units, description=f"units (last: k={o.result.get('k')}, "
                                                      f"V={ev.get('mean', float('nan')):.2f})")
        self.remaining -= 1
        if self.callback is not None:
            if self.remaining > 0:
                self.progress.reset(self.inner, total=self.proposals)
            else:
                # the bar ends at the proposals actually made: a run that converged early
                # says so instead of showing a full bar
                train = o.result.get("train", {})
                why = (f"converged after {train.get('sweeps')} sweeps" if train.get("converged")
                       else "sweep limit reached")
                self.progress.update(self.inner, total=self.made, completed=self.made,
                                     description=f"  ALTERNATING-MARL proposals ({why})")
            self.made = 0

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


def _gap_per_k(certs: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Per-``k`` Nash-gap columns from the units' certificates: the largest gap, whether
    all are exact, and the interval of the estimates (``None`` when a unit has none)."""
    if not certs or any(c is None for c in certs):
        return {"nash_gap": None, "nash_gap_bound": None, "nash_gap_ci95": None}
    cs = [c for c in certs if c is not None]
    exact = all(c["exact"] for c in cs)
    cis = [c["ci95"] for c in cs if c.get("ci95")]
    return {"nash_gap": max(float(c["nash_gap"]) for c in cs),
            "nash_gap_bound": "exact" if exact else "lower",
            "nash_gap_ci95": [max(ci[0] for ci in cis), max(ci[1] for ci in cis)] if cis
            else None}


def format_gap(p: dict[str, Any]) -> str:
    """The Nash-gap cell of a per-``k`` entry: ``0.0123`` (exact) or ``>= 0.0123`` (a
    lower bound: estimated, or exact solver over part of a comparator; the interval is in
    ``summary.json`` / ``per_k.csv``), ``-`` when not computed."""
    v = p.get("nash_gap")
    if v is None:
        return "-"
    if p.get("nash_gap_bound") == "exact":
        return f"{v:.3g}"
    return f">= {v:.2g}"


def summary_table(summary: dict[str, Any], title: str | None = None) -> Any:
    """A rich table of the per-``k`` results of a summary."""
    from rich import box
    from rich.table import Table

    timing = {t["k"]: t for t in summary.get("timing", {}).get("per_k", [])}
    tab = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title=title or f"{summary['name']}: discounted reward per k "
                f"({summary['units_done']}/{summary['units_total']} units)",
                caption="reward: mean over training runs x evaluation seeds; std: over "
                        "seeds; off mode: steps where the global action is not the "
                        "population's most occupied local state; nash_gap: of the final pair (largest over "
                        "training runs), exact, or '>=' a lower bound (interval in "
                        "summary.json)")
    for col in ("k", "runs x seeds", "reward", "std", "95% CI", "off mode", "nash_gap",
                "train s"):
        tab.add_column(col, justify="right", no_wrap=True)
    damaged = summary.get("damaged") or {}
    if damaged:
        tab.caption = (f"{tab.caption}\nDAMAGED (left out; `--resume` recomputes them): "
                       + "; ".join(damaged.values()))
    for p in summary["per_k"]:
        ci = "-" if p["ci95"] is None else f"[{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]"
        mm = "-" if p["mode_mismatch_mean"] is None else f"{p['mode_mismatch_mean']:.1%}"
        tk = timing.get(p["k"], {})
        tab.add_row(str(p["k"]), f"{p['train_runs']} x {p['evaluations'] // p['train_runs']}",
                    f"{p['mean']:.2f}", f"{p['std']:.2f}", ci, mm, format_gap(p),
                    f"{tk.get('train_wall_s', float('nan')):.1f}")
    return tab
