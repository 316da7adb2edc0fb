"""G-LEARN cost vs k on the warehouse (SPEC 4, 8.1): time, peak memory, table sizes.

Every configuration runs in its own subprocess (fresh interpreter), which reports the
wall and CPU time of the ``g_learn`` call and the process's peak resident memory
(``ru_maxrss``, which includes the ~100 MB of the interpreter and NumPy/SciPy). The
warehouse has ``|S_g| = |S_l| = |A_g| = 5``; ``pi_l`` is uniform; ``m = 30``; ``tol = 1e-6``.

* mean-field, default solver (``"pi"``): ``k`` up to 50 (``|H_50| = 316,251``);
* mean-field, plain value iteration (``"vi"``, SPEC 4 from ``Q = 0``) for comparison;
* standard parameterization (``Q`` over ordered k-tuples, ``|S_l|^k``): small ``k`` only;
* cost vs ``|S_l|``: random games (``|S_g| = |A_g| = 5``, ``|A_l| = 3``, ``n = 1000``,
  uniform ``pi_l``) with ``|S_l|`` from 2 to 20 at ``k = 5`` (and ``k = 10``).

Usage::

    python benchmarks/bench_g_learn.py           # full table (k up to 50; a few minutes)
    python benchmarks/bench_g_learn.py --quick   # short run (k up to 20)
    python benchmarks/bench_g_learn.py --json out.json
    python benchmarks/bench_g_learn.py --quality # only: estimation error per crn mode
    python benchmarks/bench_g_learn.py --layout 30 40 50 --reps 3
        # only: the Z-order store layout (altmarl.glearn.layout) off vs on, interleaved
        # fresh processes, medians; checks that the Q tables are bit-identical
    python benchmarks/bench_g_learn.py --exact 8 12 20
        # only: m = None (exact expectation): the dense law where the default limit allows
        # it and the matrix-free law (altmarl.glearn.draws.HistogramLaw) at every k

The machine is shared in development: CPU seconds are the more stable figure, and the
load average is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import limit_blas, machine, print_table  # noqa: E402


def child(cfg: dict[str, Any]) -> None:
    """Run one configuration and print a JSON line with its figures."""
    import hashlib
    import warnings

    import altmarl as am
    from altmarl.glearn import g_learn, kernels, layout

    limit_blas(1)
    if cfg.get("layout") is not None:  # force the store layout off (False) or on (True)
        layout.LAYOUT_MIN_BYTES = 0 if cfg["layout"] else 1 << 62
        kernels.warm_up(int(cfg.get("threads", 1)))
    env = dict(cfg.get("env") or {"name": "warehouse", "n": 1000})
    game = am.envs.make(env.pop("name"), **env)
    pi_l = am.LocalPolicy.uniform(game)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extra = ({"max_exact_entries": cfg["max_exact_entries"]}
                 if "max_exact_entries" in cfg else {})
        pol = g_learn(game, pi_l, cfg["k"], m=cfg["m"], seed=0, solver=cfg["solver"],
                      parameterization=cfg["param"], tol=cfg["tol"],
                      threads=int(cfg.get("threads", 1)), **extra)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    info = pol.info
    out = {
        **cfg,
        "wall_s": wall,
        "cpu_s": cpu,
        "sample_s": info["sample_seconds"],
        "solve_s": info["solve_seconds"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_rss_mb": rss0,
        "n_states": info["n_states"],
        "table": info["table_size"],
        "samples": info["samples"],
        "iterations": info["iterations"],
        "sweeps": info["sweeps"],
        "matvecs": info["matvecs"],
        "residual": info["residual"],
        "converged": info["converged"],
        "q_sha": hashlib.sha256(np.ascontiguousarray(pol.q).tobytes()).hexdigest()[:16],
    }
    print(json.dumps(out))


def quality(quick: bool) -> None:
    """Estimation error of the sampled operator vs the exact one (warehouse, k = 8), per
    ``crn`` mode: ``||Q_m - Q_exact||_inf`` and the suboptimality of the greedy policy in
    the exact surrogate (``max_s V*(s) - V^pi(s)`` and its mean over states)."""
    import numpy as np

    import altmarl as am
    from altmarl.glearn import GLearnOptions, empirical_operator, solve

    game = am.envs.make("warehouse", n=1000)
    pi_l = am.LocalPolicy.uniform(game)
    k = 8
    exact = empirical_operator(game, pi_l, k, options=GLearnOptions(m=None))
    q_star, _ = solve(exact, GLearnOptions(tol=1e-10))
    v_star = q_star.max(axis=-1)
    model = exact.model  # exact surrogate: D[s][h, h'] = P(h' | h, s_g = s)
    S, N = model.n_sg, model.n_states
    eye = np.eye(S * N)

    def policy_value(actions: np.ndarray) -> np.ndarray:
        # dense P_pi[(s, h), (s', h')] = P_g[s, pi(s, h), s'] D[s][h, h'] (small)
        pg = game.P_g[np.arange(S)[:, None], actions]  # (S, N, S')
        A = np.einsum("shy,shk->shyk", pg, model.D).reshape(S * N, S * N)
        r = game.r_g[np.arange(S)[:, None], actions] + model.r_loc
        return np.linalg.solve(eye - game.gamma * A, r.ravel()).reshape(S, N)

    seeds = range(3 if quick else 5)
    rows = []
    for m in (5, 30) if quick else (5, 30, 120):
        for crn in ("pool", "states", "none"):
            errs, gaps_max, gaps_mean, secs = [], [], [], []
            for seed in seeds:
                t = time.perf_counter()
                pol = am.g_learn(game, pi_l, k, m=m, seed=seed, crn=crn, tie_break="lowest")
                secs.append(time.perf_counter() - t)
                errs.append(float(np.abs(pol.q - q_star).max()))
                gap = v_star - policy_value(pol.actions)
                gaps_max.append(float(gap.max()))
                gaps_mean.append(float(gap.mean()))
            rows.append([m, crn, float(np.mean(errs)), float(np.mean(gaps_max)),
                         float(np.mean(gaps_mean)), float(np.mean(secs))])
    print_table(f"Sampled vs exact operator (warehouse, k = {k}, mean over {len(seeds)} seeds)",
                ["m", "crn", "max |Q_m - Q*|", "max gap V*-V^pi", "mean gap", "seconds"], rows)


def layout_table(args: argparse.Namespace) -> None:
    """G-LEARN with the store layout forced off and on, in alternating fresh processes."""
    print(f"# G-LEARN, Z-order store layout off vs on (warehouse, m = {args.m}, tol = {args.tol:g})")
    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    table = []
    for k in args.layout:
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for _ in range(args.reps):
            for on in (False, True):
                cfg = {"param": "mean-field", "solver": "pi", "k": k, "m": args.m,
                       "tol": args.tol, "layout": on}
                res = run_child(cfg, args.timeout)
                if "error" in res:
                    raise SystemExit(f"k = {k}, layout {on}: {res['error']}")
                runs[on].append(res)
                print(f"  k={k:>2} layout {'on ' if on else 'off'}: {res['cpu_s']:.2f} s CPU, "
                      f"{res['wall_s']:.2f} s wall, {res['peak_rss_mb']:.0f} MB", flush=True)
        med = {on: float(np.median([r["cpu_s"] for r in runs[on]])) for on in runs}
        same = len({r["q_sha"] for r in runs[False] + runs[True]}) == 1
        n = runs[False][0]["n_states"]
        table.append([k, n, 8 * 5 * n / 2**20, med[False], med[True], med[False] / med[True],
                      max(r["peak_rss_mb"] for r in runs[False]),
                      max(r["peak_rss_mb"] for r in runs[True]), "yes" if same else "NO"])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print_table(f"G-LEARN CPU s, medians of {args.reps}, layout off / on",
                ["k", "N", "V MiB", "off CPU s", "on CPU s", "speed-up", "off peak MB",
                 "on peak MB", "same Q"], table)


def exact_table(args: argparse.Namespace) -> None:
    """m = None: the dense next-histogram law (when within the default max_exact_entries)
    and the matrix-free law (max_exact_entries = 1 forces it), fresh processes."""
    from altmarl.glearn.options import MAX_EXACT_ENTRIES
    from altmarl.histogram import num_histograms

    print(f"# G-LEARN m = None (warehouse, tol = {args.tol:g}); machine: {machine()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    table = []
    for k in args.exact:
        N = num_histograms(k, 5)
        paths = (["dense"] if 5 * N * N <= MAX_EXACT_ENTRIES else []) + ["matrix-free"]
        for path in paths:
            cfg: dict[str, Any] = {"param": "mean-field", "solver": "pi", "k": k, "m": None,
                                   "tol": args.tol}
            if path == "matrix-free":
                cfg["max_exact_entries"] = 1
            res = run_child(cfg, args.timeout)
            if "error" in res:
                raise SystemExit(f"k = {k} {path}: {res['error']}")
            print(f"  k={k:>2} {path}: {res['cpu_s']:.2f} s CPU, {res['peak_rss_mb']:.0f} MB",
                  flush=True)
            table.append([k, N, path, res["wall_s"], res["cpu_s"], res["peak_rss_mb"],
                          res["matvecs"], f"{res['residual']:.1e}"])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print_table("G-LEARN m = None: dense vs matrix-free next-histogram law",
                ["k", "N", "law", "wall s", "CPU s", "peak RSS MB", "matvecs", "residual"],
                table)


def run_child(cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**cfg, "error": f"timeout after {timeout:.0f} s"}
    if proc.returncode:
        return {**cfg, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run (k up to 20)")
    ap.add_argument("--m", type=int, default=30)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per configuration (s)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--quality", action="store_true",
                    help="only the estimation-error table of the crn modes (k = 8)")
    ap.add_argument("--layout", type=int, nargs="+", metavar="K",
                    help="only: G-LEARN with the Z-order store layout off and on at these k")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of --layout (medians)")
    ap.add_argument("--exact", type=int, nargs="+", metavar="K",
                    help="only: m = None, dense and matrix-free law, at these k")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.layout:
        layout_table(args)
        return
    if args.exact:
        exact_table(args)
        return
    if args.quality:
        quality(args.quick)
        return
    if args.quick:
        mf_ks, vi_ks, std_ks = [1, 5, 10, 20], [10], [1, 3, 5]
    else:
        mf_ks, vi_ks, std_ks = [1, 5, 10, 20, 30, 40, 50], [10, 20, 30], [1, 3, 5, 6, 7]
    cfgs = ([{"param": "mean-field", "solver": "pi", "k": k} for k in mf_ks]
            + [{"param": "mean-field", "solver": "vi", "k": k} for k in vi_ks]
            + [{"param": "standard", "solver": "pi", "k": k} for k in std_ks])
    sl_grid = ([(d, 5) for d in (2, 5, 10)] if args.quick else
               [(d, 5) for d in (2, 3, 5, 8, 12, 20)] + [(d, 10) for d in (2, 3, 5, 8)])
    cfgs += [{"param": "mean-field", "solver": "pi", "k": k,
              "env": {"name": "random", "n_sg": 5, "n_ag": 5, "n_sl": d, "n_al": 3, "n": 1000,
                      "gamma": 0.95, "seed": 0}} for d, k in sl_grid]
    rows = []
    print(f"# G-LEARN cost vs k (warehouse, m = {args.m}, tol = {args.tol:g})")
    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    for cfg in cfgs:
        res = run_child({**cfg, "m": args.m, "tol": args.tol}, args.timeout)
        rows.append(res)
        if "error" in res:
            print(f"  {cfg}: {res['error']}", flush=True)
        else:
            where = f" |S_l|={cfg['env']['n_sl']}" if cfg.get("env") else ""
            print(f"  {cfg['param']:>10} {cfg['solver']} k={cfg['k']:>2}{where}: {res['wall_s']:.2f} s "
                  f"wall, {res['cpu_s']:.2f} s CPU, {res['peak_rss_mb']:.0f} MB", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    sl_rows = [r for r in rows if r.get("env")]
    rows = [r for r in rows if not r.get("env")]
    header = ["param", "solver", "k", "states N", "Q table", "samples", "wall s", "CPU s",
              "sample s", "solve s", "peak RSS MB", "iters", "sweeps", "matvecs", "residual"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["param"], r["solver"], r["k"], "-", "-", "-", r["error"], "", "", "",
                          "", "", "", "", ""])
            continue
        table.append([r["param"], r["solver"], r["k"], r["n_states"], r["table"], r["samples"],
                      r["wall_s"], r["cpu_s"], r["sample_s"], r["solve_s"], r["peak_rss_mb"],
                      r["iterations"], r["sweeps"], r["matvecs"], f"{r['residual']:.1e}"])
    print_table("G-LEARN time and peak memory vs k (warehouse, uniform pi_l)", header, table)
    table = []
    base: dict[int, float] = {}
    for r in sl_rows:
        d = r["env"]["n_sl"]
        if "error" in r:
            table.append([d, r["k"], "-", "-", "-", r["error"], "", "", ""])
            continue
        base.setdefault(r["k"], r["cpu_s"])
        table.append([d, r["k"], r["n_states"], r["table"], r["samples"], r["wall_s"], r["cpu_s"],
                      r["peak_rss_mb"], r["cpu_s"] / base[r["k"]]])
    if table:
        print_table("G-LEARN cost vs |S_l| (random game, |S_g| = |A_g| = 5, |A_l| = 3, mean-field, "
                    "solver pi)", ["|S_l|", "k", "states |H_k|", "Q table", "samples", "wall s",
                                   "CPU s", "peak RSS MB", "CPU / CPU(|S_l| = 2)"], table)
    if args.json:
        from altmarl.io import atomic_write_bytes

        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())


if __name__ == "__main__":
    main()
