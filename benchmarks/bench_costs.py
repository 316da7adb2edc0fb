"""Cost curves (docs/performance.md, "Cost curves"): G-LEARN time and peak memory vs ``k``
and vs ``|S_l|``, the count simulator's time vs ``n`` and vs the number of rollouts, and
ALTERNATING-MARL's training time vs ``k``; one PNG per family.

Every point is one fresh subprocess (wall and CPU seconds of the call, the process's peak
resident memory, which includes ~60 MB of interpreter and libraries, plus Numba's ~100 MB
once the fused G-LEARN kernels are loaded); single-threaded (BLAS and ``workers=1``).
G-LEARN: warehouse (``|S_g| = |A_g| = 5``), uniform ``pi_l``, ``m = 30``, ``tol = 1e-6``;
vs ``|S_l|``: random games (``|S_g| = |A_g| = 5``, ``|A_l| = 3``, ``n = 1000``) at
``k = 5`` and ``10``. Evaluation: G-LEARN's policy at ``k = 10`` on the warehouse,
uniform ``pi_l``, horizon 100; 250 rollouts vs ``n``, ``n = 1000`` vs rollouts.
ALTERNATING-MARL: ``am.alternating_marl(game, k, seed=0)`` with its defaults.

Usage::

    python benchmarks/bench_costs.py --out docs/figures        # ~15 min on an idle machine
    python benchmarks/bench_costs.py --quick --out /tmp/costs  # a few points per curve
    python benchmarks/bench_costs.py --only glearn_k evaluate_n --out docs/figures
    python benchmarks/bench_costs.py --quick --k 1 5 10 20 30 40 50 --out docs/figures

Writes ``perf_glearn_k.png``, ``perf_glearn_sl.png``, ``perf_evaluate.png``,
``perf_alternating_k.png`` and the raw points ``perf_costs.json`` to ``--out``.
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

sys.path.insert(0, str(Path(__file__).parent))
from _common import limit_blas, load, machine  # noqa: E402

FAMILIES = ("glearn_k", "glearn_sl", "evaluate_n", "evaluate_rollouts", "alternating_k")


def child(cfg: dict[str, Any]) -> None:
    """One point, printed as one JSON line."""
    import warnings

    import altmarl as am

    limit_blas(1)
    warnings.simplefilter("ignore")
    kind = cfg["kind"]
    t0 = c0 = 0.0
    if kind == "glearn":
        if cfg.get("n_sl"):
            game = am.envs.make("random", n_sg=5, n_ag=5, n_sl=cfg["n_sl"], n_al=3, n=1000,
                                seed=0)
        else:
            game = am.envs.make("warehouse", n=1000)
        pi_l = am.LocalPolicy.uniform(game)
        t0, c0 = time.perf_counter(), time.process_time()
        pol = am.g_learn(game, pi_l, cfg["k"], m=30, seed=0, tol=1e-6, threads=1)
        extra = {"n_states": pol.info["n_states"]}
    elif kind == "evaluate":
        game = am.envs.make("warehouse", n=cfg["n"])
        pi_l = am.LocalPolicy.uniform(game)
        pi_g = am.g_learn(game, pi_l, 10, m=30, seed=0, threads=1)
        am.evaluate(game, pi_g, pi_l, rollouts=10, horizon=5, seed=1, workers=1)
        t0, c0 = time.perf_counter(), time.process_time()
        ev = am.evaluate(game, pi_g, pi_l, rollouts=cfg["rollouts"], horizon=100, seed=0,
                         workers=1)
        extra = {"value": ev.mean}
    else:
        game = am.envs.make("warehouse", n=1000)
        t0, c0 = time.perf_counter(), time.process_time()
        res = am.alternating_marl(game, cfg["k"], seed=0, progress=False)
        extra = {"value": float(res.value.mean)}
    out = {**cfg, **extra, "wall_s": time.perf_counter() - t0,
           "cpu_s": time.process_time() - c0,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(out, default=float))


def run_child(cfg: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)],
                       capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{cfg}: child failed\n{p.stderr[-2000:]}")
    r = dict(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"  {cfg}: {r['wall_s']:.3f} s, {r['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    return r


def grids(quick: bool, k: list[int] | None = None) -> dict[str, list[dict[str, Any]]]:
    ks = k or ([1, 5, 10, 20, 30] if quick else [1, 2, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50])
    sls = [2, 4, 6, 8] if quick else [2, 3, 4, 5, 6, 8, 10, 12]
    ns = [10**3, 10**5, 10**7, 10**9] if quick else [10**e for e in range(3, 10)]
    rs = [50, 200, 800] if quick else [50, 100, 200, 400, 800, 1600]
    aks = [1, 2, 5] if quick else [1, 2, 3, 5, 7, 10]
    return {
        "glearn_k": [{"kind": "glearn", "k": k} for k in ks],
        "glearn_sl": [{"kind": "glearn", "k": k, "n_sl": d} for k in (5, 10) for d in sls
                      if not (k == 10 and d > 8)],
        "evaluate_n": [{"kind": "evaluate", "n": n, "rollouts": 250} for n in ns],
        "evaluate_rollouts": [{"kind": "evaluate", "n": 1000, "rollouts": r} for r in rs],
        "alternating_k": [{"kind": "alternating", "k": k} for k in aks],
    }


def plot(points: dict[str, list[dict[str, Any]]], out: Path, note: str) -> list[Path]:
    from altmarl.plots.style import k_ticks, legend, plain_log, pyplot, save_figure

    plt = pyplot()
    files = []
    if "glearn_k" in points:
        pts = points["glearn_k"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        ks = [p["k"] for p in pts]
        a1.plot(ks, [p["wall_s"] for p in pts], "o-", label="wall")
        if all(p["cpu_s"] == p["cpu_s"] for p in pts):  # (nan: not recorded)
            a1.plot(ks, [p["cpu_s"] for p in pts], "s--", label="CPU")
        a1.set_yscale("log")
        plain_log(a1)
        a1.set_xlabel("k (agents in the surrogate)")
        a1.set_ylabel("seconds")
        a1.set_title("G-LEARN time vs k (warehouse, m = 30)")
        k_ticks(a1, ks)
        legend(a1)
        a2.plot(ks, [p["peak_rss_mb"] for p in pts], "o-")
        a2.set_xlabel("k (agents in the surrogate)")
        a2.set_ylabel("peak resident memory (MB)")
        a2.set_title("G-LEARN memory vs k")
        k_ticks(a2, ks)
        fig.text(0.01, -0.02, note, fontsize=7)
        files.append(save_figure(fig, out / "perf_glearn_k.png"))
    if "glearn_sl" in points:
        pts = points["glearn_sl"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for k in sorted({p["k"] for p in pts}):
            sub = [p for p in pts if p["k"] == k]
            d = [p["n_sl"] for p in sub]
            a1.plot(d, [p["wall_s"] for p in sub], "o-", label=f"k = {k}")
            a2.plot(d, [p["peak_rss_mb"] for p in sub], "o-", label=f"k = {k}")
        a1.set_yscale("log")
        plain_log(a1)
        for a in (a1, a2):
            a.set_xlabel("|S_l| (local states)")
            legend(a)
        a1.set_ylabel("seconds (wall)")
        a2.set_ylabel("peak resident memory (MB)")
        a1.set_title("G-LEARN time vs |S_l| (random games)")
        a2.set_title("G-LEARN memory vs |S_l|")
        fig.text(0.01, -0.02, note, fontsize=7)
        files.append(save_figure(fig, out / "perf_glearn_sl.png"))
    if "evaluate_n" in points or "evaluate_rollouts" in points:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        if "evaluate_n" not in points:
            a1.set_visible(False)
        if "evaluate_rollouts" not in points:
            a2.set_visible(False)
        if "evaluate_n" in points:
            pts = points["evaluate_n"]
            a1.plot([p["n"] for p in pts], [p["wall_s"] for p in pts], "o-", label="wall")
            if all(p["cpu_s"] == p["cpu_s"] for p in pts):
                a1.plot([p["n"] for p in pts], [p["cpu_s"] for p in pts], "s--", label="CPU")
            legend(a1)
            a1.set_xscale("log")
            a1.set_ylim(bottom=0)
            a1.set_xlabel("n (agents in the population)")
            a1.set_ylabel("seconds (1 thread)")
            a1.set_title("evaluate, 250 rollouts x 100 steps")
        if "evaluate_rollouts" in points:
            pts = points["evaluate_rollouts"]
            a2.plot([p["rollouts"] for p in pts], [p["wall_s"] for p in pts], "o-", label="wall")
            if all(p["cpu_s"] == p["cpu_s"] for p in pts):
                a2.plot([p["rollouts"] for p in pts], [p["cpu_s"] for p in pts], "s--",
                        label="CPU")
            legend(a2)
            a2.set_xscale("log")
            a2.set_yscale("log")
            plain_log(a2)
            plain_log(a2, "x")
            a2.set_xlabel("rollouts (horizon 100, n = 1000)")
            a2.set_ylabel("seconds (1 thread)")
            a2.set_title("evaluate vs rollouts")
        fig.text(0.01, -0.02, note, fontsize=7)
        files.append(save_figure(fig, out / "perf_evaluate.png"))
    if "alternating_k" in points:
        pts = points["alternating_k"]
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ks = [p["k"] for p in pts]
        ax.plot(ks, [p["wall_s"] for p in pts], "o-", label="wall")
        if all(p["cpu_s"] == p["cpu_s"] for p in pts):
            ax.plot(ks, [p["cpu_s"] for p in pts], "s--", label="CPU")
        ax.set_xlabel("k")
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.set_title("ALTERNATING-MARL training vs k (defaults)")
        k_ticks(ax, ks)
        legend(ax)
        fig.text(0.01, -0.02, note, fontsize=7)
        files.append(save_figure(fig, out / "perf_alternating_k.png"))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".", help="directory for the PNGs and perf_costs.json")
    ap.add_argument("--quick", action="store_true", help="a few points per curve")
    ap.add_argument("--only", nargs="+", choices=FAMILIES)
    ap.add_argument("--k", type=int, nargs="+", help="the k of the G-LEARN vs k curve")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print(machine())
    load0 = load()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = {name: [run_child(c) for c in cfgs]
              for name, cfgs in grids(args.quick, args.k).items() if not args.only or name in args.only}
    note = f"{machine().rsplit(';', 1)[0]}; {load0} at the start, {load()} at the end"
    (out / "perf_costs.json").write_text(json.dumps({"machine": note, "points": points},
                                                    indent=1, default=float))
    for f in plot(points, out, note):
        print("wrote", f)


if __name__ == "__main__":
    main()
