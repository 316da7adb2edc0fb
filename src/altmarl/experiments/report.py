"""What the numbers of a run directory mean (SPEC 3, 6, 10): the reference they are judged
against, why each run stopped, the settings behind them.

* :func:`uniform_play` — the value of *uniform play* (every local agent and the global agent
  draw uniformly random actions) under a run's evaluation protocol: the same evaluation
  seeds, rollouts and horizon as the learned policies;
* :func:`run_baseline` — :func:`uniform_play` for a tabular run directory, computed once
  and kept in ``baseline.json``;
* :func:`stop_reason` — why ALTERNATING-MARL stopped (converged after a quiet sweep, or the
  sweep limit), from a unit's training summary;
* :func:`settings_text` — the settings that decide the numbers (local solver, ``m``,
  sweeps, evaluation protocol), so two runs with different numbers can be told apart;
* :func:`nash_gap_text` — the Nash-gap certificate of the final pairs in words;
* :func:`explain` — the lines ``altmarl run / sweep / reproduce / plot`` print under their
  table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from altmarl.evaluation import evaluate, seed_interval
from altmarl.generative.policies import UniformGlobalPolicy, UniformLocalPolicy
from altmarl.io import atomic_write_bytes, json_bytes, read_json

#: the file of a run directory that keeps its uniform-play baseline
BASELINE_FILE = "baseline.json"
BASELINE_FORMAT = "altmarl.uniform_play"
#: tag of the uniform global agent's stream (child of each evaluation seed)
UNIFORM_TAG = 0x756E69


def uniform_play(game: Any, seeds: Sequence[int], rollouts: int, horizon: int) -> dict[str, Any]:
    """The discounted value of uniform play (both players uniformly random, SPEC eq. 2),
    evaluated with each of ``seeds`` (``rollouts`` x ``horizon``): per-seed means, their
    mean, sample standard deviation, standard error and Student-t 95% interval (the same
    statistics as a run's ``per_k`` rows). Uses the per-agent simulator (one thread), so
    the numbers are reproducible."""
    means = []
    for s in seeds:
        pg = UniformGlobalPolicy(game.n_ag, seed=[int(s), UNIFORM_TAG])
        ev = evaluate(game, pg, UniformLocalPolicy(game.n_al), rollouts=rollouts,
                      horizon=horizon, seed=int(s), workers=1)
        means.append(float(ev.mean))
    iv = seed_interval(means)  # Student-t over the seeds, as a run's per_k rows
    return {"format": BASELINE_FORMAT, "policy": "uniform play", "means": means,
            "mean": iv.mean, "std": iv.std, "stderr": iv.stderr,
            "ci95": None if iv.ci is None else list(iv.ci),
            "seeds": [int(s) for s in seeds], "rollouts": int(rollouts), "horizon": int(horizon)}


def _baseline_key(cfg: dict[str, Any]) -> str:
    blob = json.dumps({"env": cfg.get("env"), "evaluation": cfg.get("evaluation"),
                       "seed": cfg.get("seed")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_baseline(run_dir: str | Path) -> dict[str, Any] | None:
    """:func:`uniform_play` for the game and evaluation protocol of a tabular run directory
    (``None`` for generative games). Computed once and kept in ``baseline.json`` (keyed by
    the environment, the evaluation settings and the seed)."""
    from altmarl import envs
    from altmarl.experiments.runner import eval_seeds
    from altmarl.game import TabularGame
    from altmarl.rundir import read_run_record

    rd = Path(run_dir)
    cfg = read_run_record(rd)["config"]
    key = _baseline_key(cfg)
    path = rd / BASELINE_FILE
    if path.is_file():
        try:
            old = read_json(path, "uniform-play baseline")
            if old.get("format") == BASELINE_FORMAT and old.get("key") == key:
                return old  # type: ignore[no-any-return]
        except (ValueError, OSError):
            pass  # damaged: recomputed below
    game = envs.make(cfg["env"]["name"], **cfg["env"].get("params", {}))
    if not isinstance(game, TabularGame):
        return None
    ev = cfg["evaluation"]
    out = {**uniform_play(game, eval_seeds(cfg["seed"], ev["seeds"]), ev["rollouts"],
                          ev["horizon"]), "key": key}
    atomic_write_bytes(path, json_bytes(out))
    return out


def stop_reason(train: dict[str, Any]) -> str:
    """Why one ALTERNATING-MARL run stopped, from a unit's ``result.json["train"]``: how
    many of the at most ``2 x sweeps`` proposals (one G-LEARN and one L-LEARN per sweep,
    SPEC 6) were made and played, and whether the run converged or hit the sweep limit."""
    ran = train.get("sweeps")
    limit = (train.get("config") or {}).get("sweeps")
    played = train.get("accepted")
    if isinstance(ran, int) and isinstance(limit, int):
        head = (f"after {2 * ran} of at most {2 * limit} proposals ({ran} of {limit} sweeps"
                f"{f', {played} played' if isinstance(played, int) else ''})")
    else:
        head = f"after {ran} of at most {limit} sweeps"
    if train.get("converged"):
        return (f"converged {head}: in the last sweep UPDATE played neither G-LEARN's nor "
                "L-LEARN's proposal, so neither player found an improvement larger than the "
                "UPDATE tolerance")
    if ran is not None and limit is not None:
        return (f"reached the sweep limit {head} while proposals were still accepted "
                "(raise algorithm.sweeps to continue)")
    return "stopped (no convergence record)"


def settings_text(cfg: dict[str, Any]) -> str:
    """The settings behind the numbers of a run, in one line."""
    algo, ev = cfg.get("algorithm", {}), cfg.get("evaluation", {})
    env = cfg.get("env", {})
    params = ", ".join(f"{k} = {v}" for k, v in env.get("params", {}).items())
    solver = algo.get("local_solver") or "direct (the library default)"
    m = algo.get("m", 30)
    return (f"env {env.get('name')}{f' ({params})' if params else ''}; L-LEARN solver "
            f"{solver}; G-LEARN m = {m}; at most {algo.get('sweeps', 10)} sweeps; evaluation "
            f"{ev.get('seeds')} seed{'' if ev.get('seeds') == 1 else 's'} x "
            f"{ev.get('rollouts')} rollouts x horizon "
            f"{ev.get('horizon')}, discounted")


def _fmt_ci(ci: Sequence[float] | None) -> str:
    return "" if ci is None else f", 95% interval [{ci[0]:.2f}, {ci[1]:.2f}]"


def explain(run_dir: str | Path, summary: dict[str, Any],
            baseline: dict[str, Any] | None = None) -> list[str]:
    """The lines under the table of ``altmarl run / sweep / reproduce``: the value against
    uniform play, why the runs stopped, the Nash-gap certificate when the summary has one
    (:func:`nash_gap_text`), the settings."""
    from altmarl.rundir import read_run_record, scan_units

    rd = Path(run_dir)
    lines: list[str] = []
    per_k = summary.get("per_k") or []
    rec_cfg = read_run_record(rd)["config"]
    if per_k:
        best = max(per_k, key=lambda p: p["mean"])
        what = "value" if len(per_k) == 1 else f"best value (k = {best['k']})"
        lines.append(f"{what}: {best['mean']:.2f}{_fmt_ci(best.get('ci95'))} (discounted "
                     "reward of the learned policies, mean over evaluation seeds)")
        if baseline is not None:
            gain = best["mean"] - baseline["mean"]
            rel = f" ({gain / abs(baseline['mean']):+.0%})" if baseline["mean"] else ""
            lines.append(f"uniform play (every agent acts uniformly at random), same "
                         f"evaluation: {baseline['mean']:.2f}{_fmt_ci(baseline.get('ci95'))}; "
                         f"the learned policies gain {gain:+.2f}{rel}")
    units = scan_units(rd, summary.get("config_fingerprint")).results
    reasons = [stop_reason(u.get("train", {})) for u in units]
    if len(units) == 1:
        lines.append(f"stopped: {reasons[0]}")
    elif units:
        conv = sum(bool(u.get("train", {}).get("converged")) for u in units)
        sweeps = [u.get("train", {}).get("sweeps") for u in units]
        ran = [s for s in sweeps if isinstance(s, int)]
        span = ("" if not ran else f" (after {ran[0]} sweeps each)" if min(ran) == max(ran)
                else f" (after {min(ran)} to {max(ran)} sweeps)")
        lines.append(f"stopped: {conv} of {len(units)} runs converged{span}; "
                     f"{len(units) - conv} reached the sweep limit")
    gap_line = nash_gap_text(per_k)
    if gap_line:
        lines.append(gap_line)
    lines.append(f"settings: {settings_text(rec_cfg)}")
    return lines


def nash_gap_text(per_k: Sequence[dict[str, Any]]) -> str | None:
    """The Nash-gap certificate of the final pairs in words (``per_k`` rows of a summary
    with ``nash_gap``, ``nash_gap_bound``, ``nash_gap_ci95``; ``None`` without one)."""
    rows = [p for p in per_k if p.get("nash_gap") is not None]
    if not rows:
        return None
    worst = max(rows, key=lambda p: p["nash_gap"])
    where = f"k = {worst['k']}" if len(rows) == 1 else f"largest over k, at k = {worst['k']}"
    if all(p.get("nash_gap_bound") == "exact" for p in rows):
        return (f"Nash gap: {worst['nash_gap']:.3g} ({where}; exact: no player can gain more "
                "than this by changing its policy alone)")
    ci = worst.get("nash_gap_ci95")
    ci_text = (f"; 95% interval of the best deviation's gain [{ci[0]:.3g}, {ci[1]:.3g}]"
               if ci else "")
    if worst["nash_gap"] <= 0:
        return (f"Nash gap: no deviation the run tried improves on the final pair ({where}"
                f"{ci_text}); a lower bound: the exact gap is computed only on small games")
    return (f"Nash gap: at least {worst['nash_gap']:.3g} ({where}; a lower bound from the "
            f"deviations the run tried{ci_text}; the exact gap is computed only on small "
            "games)")


__all__ = ["BASELINE_FILE", "explain", "nash_gap_text", "run_baseline", "settings_text", "stop_reason",
           "uniform_play"]
