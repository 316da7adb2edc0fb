"""k-sweep of ALTERNATING-MARL on the continuous warehouse (paper Appendix G.2, Table 4).

For every ``k`` in ``ks`` and every training seed, :func:`run_sweep` runs
:func:`altmarl.continuous.alternating.run_continuous` (one job per ``(k, seed)``, through
the execution backends of :mod:`altmarl.experiments.backends`: in-process, a process pool
that replaces dead workers, or Ray), saves each run
in ``runs/k{k}_s{seed}/`` (``result.json``, ``policies.pt``), evaluates the random-play
baseline with the same evaluation seeds, and writes

* ``config.json`` — the resolved sweep configuration;
* ``per_run.csv`` — one row per (k, seed);
* ``per_k.csv`` and ``summary.json`` — per k: mean and standard deviation *across training
  seeds* of the per-seed evaluation (50 rollouts, horizon 100, discounted), the same for
  the return truncated at horizon 50 (the authors' protocol), mode accuracy, training time;
* ``reward_vs_k.png``, ``runtime_vs_k.png``, ``mode_accuracy_vs_k.png``,
  ``zone_heatmap.png`` — drawn from the run directory only
  (:func:`altmarl.plots.continuous.plot_sweep`, also importable from here).

A finished run is never recomputed with ``resume=True``; an interrupted one continues from
its checkpoint. Numbers depend only on the configuration and the seeds, not on the number
of workers.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from altmarl.io import atomic_write_bytes, json_bytes, write_csv
from altmarl.plots.continuous import plot_sweep
from altmarl.progress import Progress

SWEEP_FORMAT = "altmarl-continuous-sweep/1"
DEFAULT_KS = (1, 5, 10, 25, 50, 75)
#: the subsample sizes of ``altmarl continuous sweep --quick`` (its ``n = 60``)
QUICK_KS = (1, 5, 10)
#: training seeds per ``k`` of ``altmarl continuous sweep --quick``
QUICK_SEEDS = 3
DEFAULT_SEEDS = 15


def quick_config() -> Any:
    """A small configuration for smoke tests and ``--quick`` (seconds per run)."""
    from altmarl.continuous.alternating import ContinuousConfig
    from altmarl.continuous.trpo import TRPOConfig

    return ContinuousConfig(
        n=60, alternations=2, patience=2, ce_samples=200, ce_epochs=5, rollout_states=8,
        rollout_len=3, rollout_hists=2, rollout_epochs=5, trpo_iters=1, trpo_rollouts=2,
        trpo_horizon=10, trpo_tracked=8, trpo=TRPOConfig(critic_epochs=1, fisher_samples=0),
        update_rollouts=4, update_horizon=None, eval_rollouts=4, eval_horizon=20, table_grid=41,
        hidden=16)


def _run_name(k: int, seed: int) -> str:
    return f"k{k:03d}_s{seed:03d}"


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj, indent=1, sort_keys=False, nonfinite="null"))


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run (or finish) one (k, seed) job; top-level so worker processes can import it.

    ``job``: ``{"k", "seed", "config": ContinuousConfig.to_json(), "env": env.to_json(),
    "dir": run directory}``. Returns the compact per-run record.
    """
    from altmarl.continuous.alternating import ContinuousConfig, run_continuous
    from altmarl.continuous.env import ContinuousWarehouse

    cfg = ContinuousConfig.from_json(job["config"])
    env = ContinuousWarehouse.from_json(job["env"])
    d = Path(job["dir"])
    res = run_continuous(int(job["k"]), int(job["seed"]), cfg, env, checkpoint_dir=d / "checkpoint",
                         resume=True)
    res.save(d)
    shutil.rmtree(d / "checkpoint", ignore_errors=True)
    return run_record(res.summary())


def run_record(summary: dict[str, Any]) -> dict[str, Any]:
    """Compact per-run row from a ``result.json`` dict."""
    ev = summary["evaluation"]
    h50 = ev["short_horizons"].get("50", {"mean": float("nan"), "std": float("nan")})
    return {
        "k": summary["k"], "seed": summary["seed"], "value": ev["mean"], "std": ev["std"],
        "stderr": ev["stderr"], "value_h50": h50["mean"], "std_h50": h50["std"],
        "mode_match_rate": ev["mode_match_rate"],
        "initial_mode_match_rate": ev["initial_mode_match_rate"],
        "mode_accuracy_reset": summary["mode_accuracy_reset"], "train_s": summary["train_s"],
        "train_cpu_s": summary.get("train_cpu_s", float("nan")), "eval_s": summary["eval_s"],
        "sweeps": summary["sweeps"], "accepted_global": summary["accepted_global"],
        "accepted_local": summary["accepted_local"], "table_value": summary["table_value"],
    }


def _stats(x: Sequence[float]) -> dict[str, float]:
    a = np.asarray(x, dtype=np.float64)
    n = a.size
    sd = float(a.std(ddof=1)) if n > 1 else float("nan")
    return {"mean": float(a.mean()) if n else float("nan"), "std": sd,
            "stderr": sd / math.sqrt(n) if n > 1 else float("nan"), "n": int(n)}


def random_baseline(env: Any, seeds: Sequence[int], rollouts: int, horizon: int) -> dict[str, Any]:
    """Random play (both players uniform) evaluated with the final-evaluation seeds of each
    training seed: per-seed means, their spread, and the spread over all rollouts (the
    authors' "+-" for random play)."""
    from altmarl.continuous.alternating import EVAL_TAG
    from altmarl.continuous.env import random_global, random_local, simulate

    per_seed, pooled, pooled50 = [], [], []
    h50 = min(50, int(horizon))
    for s in seeds:
        tr = simulate(env, random_global(env.n_ag), random_local(env.n_al), 1, rollouts, horizon,
                      np.random.SeedSequence([int(s), EVAL_TAG]))
        full, short = tr.discounted_returns(env.gamma), tr.discounted_returns(env.gamma, h50)
        per_seed.append({"seed": int(s), "value": float(full.mean()),
                         "value_h50": float(short.mean())})
        pooled.extend(full.tolist())
        pooled50.extend(short.tolist())
    return {"per_seed": per_seed,
            "value": _stats([r["value"] for r in per_seed]),
            "value_h50": _stats([r["value_h50"] for r in per_seed]),
            "rollout_std": float(np.std(pooled, ddof=1)) if len(pooled) > 1 else float("nan"),
            "rollout_std_h50": float(np.std(pooled50, ddof=1)) if len(pooled50) > 1 else float("nan"),
            "rollouts_per_seed": int(rollouts), "horizon": int(horizon), "short_horizon": h50}


def aggregate(out: str | Path) -> dict[str, Any]:
    """Read every finished run of a sweep directory and write ``per_run.csv``,
    ``per_k.csv`` and ``summary.json``; returns the summary."""
    out = Path(out)
    spec = json.loads((out / "config.json").read_text())
    rows = []
    for f in sorted((out / "runs").glob("*/result.json")):
        rows.append(run_record(json.loads(f.read_text())))
    rows.sort(key=lambda r: (r["k"], r["seed"]))
    per_k = []
    for k in spec["ks"]:
        rs = [r for r in rows if r["k"] == k]
        if not rs:
            continue
        per_k.append({
            "k": k, "seeds": len(rs),
            "value": _stats([r["value"] for r in rs]),
            "value_h50": _stats([r["value_h50"] for r in rs]),
            "mode_match_rate": _stats([r["mode_match_rate"] for r in rs]),
            "initial_mode_match_rate": _stats([r["initial_mode_match_rate"] for r in rs]),
            "mode_accuracy_reset": _stats([r["mode_accuracy_reset"] for r in rs]),
            "train_s": _stats([r["train_s"] for r in rs]),
            "train_cpu_s": _stats([r["train_cpu_s"] for r in rs]),
            "sweeps": _stats([r["sweeps"] for r in rs]),
        })
    total = len(spec["ks"]) * len(spec["seeds"])
    summary = {"format": SWEEP_FORMAT, "ks": spec["ks"], "seeds": spec["seeds"],
               "config": spec["config"], "env": spec["env"], "runs_done": len(rows),
               "runs_total": total, "complete": len(rows) == total, "per_k": per_k,
               "random": spec.get("random"), "wall_s": spec.get("wall_s")}
    _write_json(out / "summary.json", summary)
    write_csv(out / "per_run.csv", rows)
    flat = []
    for r in per_k:
        row: dict[str, Any] = {"k": r["k"], "seeds": r["seeds"]}
        for key in ("value", "value_h50", "mode_match_rate", "initial_mode_match_rate",
                    "mode_accuracy_reset", "train_s", "train_cpu_s", "sweeps"):
            row[f"{key}_mean"] = r[key]["mean"]
            row[f"{key}_std"] = r[key]["std"]
        flat.append(row)
    write_csv(out / "per_k.csv", flat)
    return summary


def run_sweep(
    out: str | Path,
    ks: Sequence[int] = DEFAULT_KS,
    seeds: int | Sequence[int] = DEFAULT_SEEDS,
    config: Any = None,
    env: Any = None,
    workers: int = 1,
    resume: bool = True,
    progress: bool = True,
    plots: bool = True,
    backend: str = "local",
    address: str | None = None,
    callbacks: Any = None,
) -> dict[str, Any]:
    """Run the k-sweep into the directory ``out`` (see the module docstring).

    Parameters
    ----------
    ks
        Subsample sizes (default ``1, 5, 10, 25, 50, 75``).
    seeds
        Number of training seeds (``0..seeds-1``) or an explicit list (default 15).
    config
        :class:`~altmarl.continuous.alternating.ContinuousConfig` (default: the defaults).
    workers
        Parallel runs (one (k, seed) run each at a time; PyTorch and BLAS use
        ``config.torch_threads`` threads per run). Results do not depend on it.
    resume
        Reuse finished runs and continue interrupted ones; otherwise ``out`` must not hold
        a sweep with another configuration.
    backend, address
        Where the runs execute (:mod:`altmarl.experiments.backends`): ``"local"`` (in this
        process with one worker, else a process pool whose dead workers are replaced; a
        restarted run continues from its checkpoint) or ``"ray"`` (a local Ray instance, or
        the cluster at ``address``; the run directory must be on a shared file system).
        Results do not depend on it.
    callbacks
        Experiment trackers (:class:`altmarl.tracking.Tracker`, one or a list; the caller
        closes them): the sweep's configuration, then for every run finished by this call
        its UPDATE proposals (``unit`` = ``k005_s000``) and results, at the end the figures.
    """
    from altmarl.continuous.alternating import ContinuousConfig
    from altmarl.continuous.env import ContinuousWarehouse
    from altmarl.tracking.base import as_trackers

    trackers = as_trackers(callbacks)

    cfg = config or ContinuousConfig()
    env = env or ContinuousWarehouse(n=cfg.n)
    ks = [env.check_k(k) for k in ks]
    if not ks:
        raise ValueError("ks: expected at least one subsample size")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks = {ks}: expected distinct values")
    seed_list = list(range(int(seeds))) if isinstance(seeds, int | np.integer) else [int(s) for s in seeds]
    if not seed_list or min(seed_list) < 0 or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds = {seeds!r}: expected a positive count or distinct integers >= 0")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers = {workers!r}: expected an integer >= 1")
    from altmarl.experiments.backends import check_backend

    check_backend(backend, workers, address)
    out = Path(out)
    spec = {"format": SWEEP_FORMAT, "ks": ks, "seeds": seed_list, "config": cfg.to_json(),
            "env": env.to_json()}
    cpath = out / "config.json"
    if cpath.exists():
        old = json.loads(cpath.read_text())
        same = all(old.get(key) == spec[key] for key in ("config", "env"))
        if not same:
            raise ValueError(f"{out}: holds a sweep with another configuration; use another "
                             "--out directory")
        if not resume:
            shutil.rmtree(out / "runs", ignore_errors=True)
        spec = {**old, **spec}
    out.mkdir(parents=True, exist_ok=True)
    _write_json(cpath, spec)
    trackers.log_params({"ks": ks, "seeds": seed_list, "config": cfg.to_json(),
                         "env": env.to_json()})
    jobs = []
    for k in ks:
        for s in seed_list:
            d = out / "runs" / _run_name(k, s)
            if resume and (d / "result.json").exists():
                continue
            jobs.append({"k": k, "seed": s, "config": cfg.to_json(), "env": env.to_json(),
                         "dir": str(d)})
    t0 = time.perf_counter()
    _execute(jobs, backend, workers, address, progress, trackers)
    spec["wall_s"] = float(spec.get("wall_s") or 0.0) + time.perf_counter() - t0
    spec["random"] = random_baseline(env, seed_list, cfg.eval_rollouts, cfg.eval_horizon)
    spec["workers"] = workers
    spec["backend"] = backend
    _write_json(cpath, spec)
    summary = aggregate(out)
    if plots:
        summary["plots"] = [str(p) for p in plot_sweep(out)]
    if trackers:
        best = max(summary["per_k"], key=lambda r: r["value"]["mean"], default=None)
        trackers.on_final({"runs_done": summary["runs_done"], "complete": summary["complete"],
                           "best_k": None if best is None else best["k"],
                           "best_value": None if best is None else best["value"]["mean"]})
        for p in summary.get("plots", []):
            trackers.log_figure(Path(p).stem, p)
    return summary


def track_run(trackers: Any, rec: dict[str, Any], run_dir: str | Path) -> None:
    """Send one finished ``(k, seed)`` run to ``trackers``: its proposals (from
    ``result.json``'s history) and its results as a unit ``k005_s000``."""
    from altmarl.continuous.alternating import history_proposals

    name = _run_name(int(rec["k"]), int(rec["seed"]))
    summary = json.loads((Path(run_dir) / "result.json").read_text())
    for row in history_proposals(summary.get("history") or []):
        trackers.on_proposal(row, unit=name)
    trackers.on_unit({"k": rec["k"], "eval": {"mean": rec["value"], "std": rec["std"]},
                      "train": {"sweeps": rec["sweeps"]},
                      "timing": {"train_wall_s": rec["train_s"]}}, unit=name)


def _execute(jobs: list[dict[str, Any]], backend: str, workers: int, address: str | None,
             progress: bool, trackers: Any = None) -> None:
    """Run the jobs through :mod:`altmarl.experiments.backends` (in-process, process pool
    with worker restarts, or Ray); an interrupted or failed sweep leaves finished runs saved
    and unfinished ones with their checkpoint for ``resume``."""
    from altmarl.experiments.backends import run_tasks

    with Progress(progress, remaining=True) as bar:
        task = bar.add_task("continuous sweep", total=len(jobs))

        dirs = {(j["k"], j["seed"]): j["dir"] for j in jobs}

        def on_done(rec: dict[str, Any]) -> None:
            bar.advance(task, status=f"k={rec['k']} seed={rec['seed']} V={rec['value']:.1f}")
            if trackers:
                track_run(trackers, rec, dirs[(rec["k"], rec["seed"])])

        run_tasks(jobs, on_done, backend=backend, workers=workers, address=address, fn=run_job)
