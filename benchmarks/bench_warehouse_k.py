"""Warehouse reward vs k (SPEC 8.1, paper Figure 6 / Table 3), ours vs induced-VI-only.

For every k, ALTERNATING-MARL is run twice from the same seed: with the library default
L-LEARN (``local_solver="direct"``: CRN policy search on the real objective) and with
induced-VI only (the practice of the paper's experiments and of the authors' code).
Both final joint policies are scored by the SAME evaluator with the SAME seed
(``evaluate``, 50 rollouts x horizon 100 by default, the paper's protocol), so the
difference is a paired, common-random-numbers comparison; a second, larger paired
evaluation (1000 rollouts, another seed) checks it. Inside the runs, UPDATE uses the
library default evaluator (200 rollouts x ``altmarl.update.evaluation_horizon``: 180 steps
at gamma = 0.95; ``--update-horizon H`` sets another).

Paper settings: n = 1000, m = 30, 10 alternations (sweeps), evaluation 50 rollouts x 100
steps, k in {1, 5, 10, 20, 35, 50}. The two runs share G-LEARN results whenever they ask
for the same best response (same local policy, k and seed), e.g. the first proposal.

Usage::

    python benchmarks/bench_warehouse_k.py            # paper settings, 1 training seed
    python benchmarks/bench_warehouse_k.py --seeds 3  # more training seeds
    python benchmarks/bench_warehouse_k.py --quick    # smoke run (k = 1, 5; small budgets)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import altmarl as am
from altmarl.glearn import g_learn
from altmarl.io import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402


def cached_g_learner(m: int, stats: dict[str, float]) -> Any:
    """G-LEARN hook that memoizes on (local policy, k, seed): both runs share the work."""
    cache: dict[tuple[bytes, int, int], am.GlobalPolicy] = {}

    def learn(game: am.TabularGame, pi_l: am.LocalPolicy, k: int, seed: int,
              pi_g: am.GlobalPolicy | None) -> am.GlobalPolicy:
        key = (pi_l.table.tobytes(), k, seed)
        if key not in cache:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[key] = g_learn(game, pi_l, k, m=m, seed=seed)
            stats["g_learn_seconds"] += time.perf_counter() - t0
            stats["g_learn_calls"] += 1
        return cache[key]

    return learn


def run(args: argparse.Namespace) -> dict[str, Any]:
    game = am.envs.make("warehouse", n=args.n)
    l_options: dict[str, Any] = {}
    if args.quick:
        l_options = {"rollouts": 16, "horizon": 50, "max_rounds": 3}
    rows = []
    for k in args.ks:
        per_seed = []
        for s in range(args.seeds):
            stats = {"g_learn_seconds": 0.0, "g_learn_calls": 0}
            gl = cached_g_learner(args.m, stats)
            out: dict[str, Any] = {"seed": s}
            for name, solver, opts in (("ours", "direct", l_options), ("ivi", "induced-vi", {})):
                t0 = time.perf_counter()
                res = am.alternating_marl(game, k, seed=s, sweeps=args.sweeps, m=args.m,
                                          local_solver=solver, l_options=opts,
                                          eval_rollouts=args.update_rollouts,
                                          eval_horizon=args.update_horizon,
                                          progress=args.progress, g_learner=gl)
                wall = time.perf_counter() - t0
                # the paper's evaluation (same seed for both: paired) ...
                ev = am.evaluate(game, res.pi_g, res.pi_l, args.eval_rollouts,
                                 args.eval_horizon, seed=args.eval_seed + s)
                # ... and a large paired check (another seed)
                big = am.evaluate(game, res.pi_g, res.pi_l, args.check_rollouts,
                                  args.eval_horizon, seed=args.eval_seed + 1000 + s)
                out[name] = {"mean": ev.mean, "stderr": ev.stderr, "returns": ev.returns,
                             "check_mean": big.mean, "check_stderr": big.stderr,
                             "check_returns": big.returns,
                             "sweeps": res.sweeps, "accepted": res.accepted,
                             "converged": res.converged, "wall": wall,
                             "decisions": [f"{r.player[0]}:{r.decision}" for r in res.history]}
                if args.save_dir is not None:
                    d_ = args.save_dir / f"k{k}_seed{s}_{name}"
                    d_.mkdir(parents=True, exist_ok=True)
                    res.pi_g.save(d_ / "pi_g.npz", game)
                    res.pi_l.save(d_ / "pi_l.npz", game)
            for key, tag in (("returns", ""), ("check_returns", "check_")):
                d = out["ours"][key] - out["ivi"][key]
                out[f"{tag}diff"] = float(d.mean())
                out[f"{tag}diff_se"] = float(d.std(ddof=1) / math.sqrt(d.size))
            out["g_learn_seconds"] = stats["g_learn_seconds"]
            out["g_learn_calls"] = stats["g_learn_calls"]
            for name in ("ours", "ivi"):
                out[name].pop("returns")
                out[name].pop("check_returns")
            per_seed.append(out)
            print(f"  k={k:>3} seed={s}: ours {out['ours']['mean']:.2f} "
                  f"(sweeps {out['ours']['sweeps']}, {out['ours']['wall']:.0f}s) | "
                  f"induced-vi {out['ivi']['mean']:.2f} "
                  f"(sweeps {out['ivi']['sweeps']}, {out['ivi']['wall']:.0f}s) | "
                  f"G-LEARN {out['g_learn_calls']} calls {out['g_learn_seconds']:.0f}s",
                  flush=True)
        rows.append({"k": k, "runs": per_seed, **_aggregate(per_seed)})
    return {"config": {k: v for k, v in vars(args).items()}, "machine": machine(),
            "rows": rows}


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("ours", "ivi"):
        means = np.array([r[name]["mean"] for r in runs])
        if len(runs) > 1:
            se = float(means.std(ddof=1) / math.sqrt(len(runs)))
        else:
            se = float(runs[0][name]["stderr"])
        checks = np.array([r[name]["check_mean"] for r in runs])
        if len(runs) > 1:
            check_se = float(checks.std(ddof=1) / math.sqrt(len(runs)))
        else:
            check_se = float(runs[0][name]["check_stderr"])
        out[name] = {"mean": float(means.mean()), "se": se,
                     "check_mean": float(checks.mean()), "check_se": check_se,
                     "wall": float(np.mean([r[name]["wall"] for r in runs])),
                     "sweeps": float(np.mean([r[name]["sweeps"] for r in runs]))}
    for tag in ("", "check_"):
        diffs = np.array([r[f"{tag}diff"] for r in runs])
        out[f"{tag}diff"] = float(diffs.mean())
        out[f"{tag}diff_se"] = (float(diffs.std(ddof=1) / math.sqrt(len(runs)))
                                if len(runs) > 1 else runs[0][f"{tag}diff_se"])
    out["g_learn_seconds"] = float(np.mean([r["g_learn_seconds"] for r in runs]))
    return out


def print_table(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print()
    if "machine" in result:
        print(result["machine"])
    print(f"warehouse n={cfg['n']}, m={cfg['m']}, sweeps<={cfg['sweeps']}, UPDATE evaluator "
          f"{cfg['update_rollouts']} x {cfg.get('update_horizon') or 'default horizon'}; final evaluation "
          f"{cfg['eval_rollouts']} rollouts x {cfg['eval_horizon']} steps (paper), same seed "
          f"for both methods; check: {cfg['check_rollouts']} rollouts, another seed; "
          f"{cfg['seeds']} training seed(s); +- = standard error "
          f"({'across seeds' if cfg['seeds'] > 1 else 'over rollouts'})")
    hdr = (f"{'k':>4} | {'ours (direct)':>16} | {'induced-vi only':>16} | "
           f"{'ours - ivi':>15} | {'check: ours':>16} | {'check: ivi':>16} | "
           f"{'check: ours - ivi':>17} | {'sweeps':>7} | {'time ours/ivi (s)':>17} | "
           f"{'G-LEARN (s)':>11}")
    print(hdr)
    print("-" * len(hdr))
    for r in result["rows"]:
        o, v = r["ours"], r["ivi"]
        print(f"{r['k']:>4} | {o['mean']:>7.2f} +- {o['se']:<5.2f} | "
              f"{v['mean']:>7.2f} +- {v['se']:<5.2f} | "
              f"{r['diff']:>+6.2f} +- {r['diff_se']:<5.2f} | "
              f"{o['check_mean']:>7.2f} +- {o['check_se']:<5.2f} | "
              f"{v['check_mean']:>7.2f} +- {v['check_se']:<5.2f} | "
              f"{r['check_diff']:>+7.2f} +- {r['check_diff_se']:<6.2f} | "
              f"{o['sweeps']:>3.0f}/{v['sweeps']:<3.0f} | "
              f"{o['wall']:>8.0f}/{v['wall']:<8.0f} | {r['g_learn_seconds']:>11.0f}")
    ours = [r["ours"]["mean"] for r in result["rows"]]
    ours_check = [r["ours"]["check_mean"] for r in result["rows"]]
    worse = [r["k"] for r in result["rows"]
             if r["check_diff"] + 2 * r["check_diff_se"] < 0]
    print(f"ours >= induced-vi in point estimate (paper evaluation) at every k: "
          f"{all(r['diff'] >= 0 for r in result['rows'])}; significantly worse (check, "
          f"2 se) at k = {worse or 'none'}; ours non-decreasing in k: "
          f"{all(b >= a for a, b in zip(ours, ours[1:], strict=False))} (paper evaluation), "
          f"{all(b >= a for a, b in zip(ours_check, ours_check[1:], strict=False))} (check)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: k = 1, 5, 2 sweeps")
    p.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 5, 10, 20, 35, 50])
    p.add_argument("--seeds", type=int, default=1, help="training seeds per k")
    p.add_argument("--sweeps", type=int, default=10)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--m", type=int, default=30)
    p.add_argument("--eval-rollouts", type=int, default=50,
                   help="final evaluation rollouts (paper: 50)")
    p.add_argument("--update-rollouts", type=int, default=200,
                   help="rollouts of the evaluator UPDATE uses inside the runs")
    p.add_argument("--check-rollouts", type=int, default=1000,
                   help="rollouts of the large paired check of the final policies")
    p.add_argument("--save-dir", type=Path, default=None,
                   help="save the final policies under this directory")
    p.add_argument("--eval-horizon", type=int, default=100,
                   help="horizon of the final evaluations (the paper's 100)")
    p.add_argument("--update-horizon", type=int, default=None,
                   help="horizon of UPDATE's evaluations inside the runs (default: the "
                        "library's, altmarl.update.evaluation_horizon: 180 at gamma = 0.95)")
    p.add_argument("--eval-seed", type=int, default=10_000,
                   help="seed of the final evaluation (plus the training seed)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--from-json", type=Path, default=None,
                   help="only print the table of a previous --out file")
    args = p.parse_args()
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
        result["rows"] = [{"k": r["k"], "runs": r["runs"], **_aggregate(r["runs"])}
                          for r in result["rows"]]
        print_table(result)
        return
    if args.quick:
        args.ks = [1, 5]
        args.sweeps = 2
        args.eval_rollouts = 20
        args.update_rollouts = 50
        args.check_rollouts = 100
        args.eval_horizon = 50
        args.update_horizon = 50
    t0 = time.perf_counter()
    result = run(args)
    result["wall_seconds"] = time.perf_counter() - t0
    print_table(result)
    print(f"total {result['wall_seconds']:.0f} s")
    if args.out is not None:
        cfg = dict(result["config"])
        cfg["out"] = str(cfg["out"])
        cfg["save_dir"] = None if cfg["save_dir"] is None else str(cfg["save_dir"])
        result["config"] = cfg
        atomic_write_bytes(args.out, json.dumps(result, indent=2).encode())


if __name__ == "__main__":
    main()
