"""L-LEARN solvers side by side (SPEC 5, issue 11): time, samples, value reached.

    python benchmarks/bench_l_learn.py [--quick] [--compare-ref REV]

Every solver answers the same question -- the shared local policy that best responds to a
fixed ``pi_g`` -- and every answer is scored by ONE evaluator per instance:

* **warehouse** (``n = 1000``; ``pi_g`` = G-LEARN's best response to the uniform
  ``pi_l``, ``m = 30``, seed 0): ``induced-vi`` (library defaults), ``direct`` (library
  defaults: ``objective="auto"``, the mean-field search at this ``n``; ``--quick``: 16
  rollouts x 50 steps, 3 rounds), ``direct`` with ``objective="crn"`` (the count
  simulator's law with common random numbers, the same budget), ``chained`` (mean-field and
  k-chained UCFH, truncated at 20 macro steps, ``eps = 1``, ``m = 1000``,
  ``width_scale = 0.3``; small ``k`` only) and the uniform policy; evaluator:
  ``am.evaluate`` with 1000 rollouts x 100 steps (``--quick``: 200), one seed for all, so
  differences are paired (common initial states);
* **small random game** (``|S_g| = |A_g| = |S_l| = |A_l| = 2``, ``n = 8``, ``k = 2``,
  ``gamma = 0.9``): same solvers; evaluator: the exact value
  (``ExactSolver.value``), next to the exact best deterministic shared policy.

``samples`` is each solver's own count (``info["samples"]``: simulator steps and
k-sample histograms for induced-vi / direct, chained-MDP micro-steps for chained).
With ``--compare-ref REV`` it also times the CRN evaluator of the direct solver (the hot
path) as of git revision ``REV`` against the working tree.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _common import interleaved, limit_blas, machine, module_at, print_table  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.exact import ExactSolver  # noqa: E402
from altmarl.glearn import g_learn  # noqa: E402
from altmarl.llearn import CRNEvaluator, truncation_horizon  # noqa: E402


def run_solver(game: am.TabularGame, pi_g: am.GlobalPolicy, solver: str,
               options: dict[str, Any]) -> tuple[am.LocalPolicy, float, float]:
    """One L-LEARN call from the uniform policy: the policy, wall and CPU seconds."""
    pi_l0 = am.LocalPolicy.uniform(game)
    c, t = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pol = am.l_learn(game, pi_g, solver, seed=0, pi_l=pi_l0, estimate_value=False, **options)
    return pol, time.perf_counter() - t, time.process_time() - c


def _chained_opts(variant: str, episodes: int, H: int, eps: float) -> dict[str, Any]:
    return {"variant": variant, "eps": eps, "horizon": H, "episodes": episodes, "m": 1000,
            "width_scale": 0.3}


def warehouse(quick: bool) -> None:
    game = am.envs.make("warehouse", n=1000)
    uniform = am.LocalPolicy.uniform(game)
    R_eval = 200 if quick else 1000
    direct_opts: dict[str, Any] = ({"rollouts": 16, "horizon": 50, "max_rounds": 3}
                                   if quick else {})
    rows = []
    for k in ([1, 5] if quick else [1, 2, 5, 20]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pi_g = g_learn(game, uniform, k, m=30, seed=0)
        runs: list[tuple[str, am.LocalPolicy, float, float, Any]] = [
            ("uniform (no learning)", uniform, 0.0, 0.0, 0)]
        budget = " (quick budget)" if quick else ""
        for name, solver, opts in [("induced-vi", "induced-vi", {}),
                                   ("direct" + budget, "direct", direct_opts),
                                   ("direct, objective crn" + budget, "direct",
                                    {**direct_opts, "objective": "crn"})]:
            pol, w, c = run_solver(game, pi_g, solver, opts)
            runs.append((name, pol, w, c, pol.info["samples"]))
        chained = [("mean-field", 1, 150 if quick else 1000), ("k-chained", 1, 150 if quick else 1000)]
        if not quick:
            chained.append(("k-chained", 2, 300))
        for variant, kk, episodes in chained:
            if kk != k:
                continue
            pol, w, c = run_solver(game, pi_g, "chained", _chained_opts(variant, episodes, 20, 1.0))
            runs.append((f"chained {variant} ({episodes} episodes, H = 20)", pol, w, c,
                         pol.info["samples"]))
        evs = [am.evaluate(game, pi_g, p, rollouts=R_eval, horizon=100, seed=777) for _, p, *_ in runs]
        ref = evs[1].returns  # induced-vi
        for (name, _, w, c, samples), ev in zip(runs, evs, strict=True):
            d = ev.returns - ref
            se = float(d.std(ddof=1) / math.sqrt(d.size))
            rows.append([k, name, f"{w:.3g}", f"{c:.3g}", f"{samples:,}",
                         f"{ev.mean:.2f} ± {ev.stderr:.2f}",
                         "0" if name == "induced-vi" else f"{d.mean():+.2f} ± {se:.2f}"])
    print_table(f"L-LEARN on the warehouse (n = 1000, pi_g = G-LEARN vs uniform pi_l); value: "
                f"evaluate, {R_eval} rollouts x 100, seed 777 for all (paired)",
                ["k", "solver", "wall s", "CPU s", "samples", "V(pi_g, pi_l) ± se",
                 "minus induced-vi ± paired se"], rows)


def small_game(quick: bool) -> None:
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=8, gamma=0.9, seed=0)
    k = 2
    uniform = am.LocalPolicy.uniform(game)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pi_g = g_learn(game, uniform, k, m=30, seed=0)
    ex = ExactSolver(game, k)
    t = time.perf_counter()
    best = ex.local_best_response(pi_g, method="enumerate", refine=False)
    t_best = time.perf_counter() - t
    runs: list[tuple[str, am.LocalPolicy, float, float, Any]] = [
        ("uniform (no learning)", uniform, 0.0, 0.0, 0)]
    for name, solver in [("induced-vi", "induced-vi"), ("direct", "direct")]:
        pol, w, c = run_solver(game, pi_g, solver, {})
        runs.append((name, pol, w, c, pol.info["samples"]))
    eps = 0.1
    H = truncation_horizon(game.gamma, game.r_max, eps)
    for variant in ("k-chained", "mean-field"):
        episodes = 300 if quick else 3000
        pol, w, c = run_solver(game, pi_g, "chained", _chained_opts(variant, episodes, H, eps))
        runs.append((f"chained {variant} ({episodes} episodes)", pol, w, c, pol.info["samples"]))
    rows = []
    for name, pol, w, c, samples in runs:
        v = ex.value(pi_g, pol)
        rows.append([name, f"{w:.3g}", f"{c:.3g}", f"{samples:,}", f"{v:.4f}",
                     f"{best.value - v:.4f}"])
    rows.append(["exact enumeration (16 deterministic policies)", f"{t_best:.3g}", "", "-",
                 f"{best.value:.4f}", "0"])
    print_table(f"L-LEARN on a small random game (|S_g|=|A_g|=|S_l|=|A_l|=2, n=8, k={k}, "
                "gamma=0.9; pi_g = G-LEARN vs uniform); value: exact (ExactSolver)",
                ["solver", "wall s", "CPU s", "samples", "exact V(pi_g, pi_l)",
                 "best deterministic - V"], rows)


def compare(ref: str, quick: bool) -> None:
    """Before/after for the direct solver's CRN evaluator (``src/altmarl/l_learn.py`` at
    ``ref``, a revision before the ``llearn`` package, against ``altmarl.llearn.direct``)."""
    try:
        old = module_at(ref, "src/altmarl/l_learn.py", "_l_learn_before")
    except Exception as exc:  # noqa: BLE001
        print(f"\n(--compare-ref {ref}: cannot load the old l_learn: {exc})")
        return
    game = am.envs.make("warehouse", n=1000)
    uniform = am.LocalPolicy.uniform(game)
    R, H = (16, 50) if quick else (64, 100)
    reps = 3 if quick else 5
    tables = np.eye(3)[np.random.default_rng(0).integers(0, 3, size=(64, 5, 5))]
    rows = []
    for k in ([5, 50] if quick else [1, 5, 20, 50]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pi_g = g_learn(game, uniform, k, m=30, seed=0)
        ev_old = old.CRNEvaluator(game, pi_g, R, H, 0)
        ev_new = CRNEvaluator(game, pi_g, R, H, 0)
        (t_old, t_new), (v_old, v_new) = interleaved(
            [functools.partial(ev_old.returns, tables), functools.partial(ev_new.returns, tables)],
            reps)
        rows.append([k, f"64 x {R} x {H}", t_old, t_new, t_old / t_new,
                     "yes" if np.array_equal(v_old, v_new) else "NO"])
    print_table(f"CRNEvaluator.returns before ({ref}) / after (working tree): 64 deterministic "
                f"candidate tables, warehouse n = 1000 (seconds, median of {reps}, interleaved)",
                ["k", "candidates x rollouts x steps", "before s", "after s", "speed-up",
                 "identical returns"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small budgets and evaluations")
    ap.add_argument("--compare-ref", metavar="REV",
                    help="also time the CRN evaluator of src/altmarl/l_learn.py (before the "
                         "llearn package) as of git revision REV")
    args = ap.parse_args()
    print(f"machine: {machine()}; {limit_blas(1)}")
    small_game(args.quick)
    warehouse(args.quick)
    if args.compare_ref:
        compare(args.compare_ref, args.quick)


if __name__ == "__main__":
    main()
