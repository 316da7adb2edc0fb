"""Count-simulator throughput vs n, and vs the per-agent simulator (issue 2, issue 11).

    python benchmarks/bench_simulate.py [--quick] [--compare-ref REV]

Evaluates a fixed joint policy on the warehouse (750 rollouts x horizon 100) for
n = 10^3 .. 10^9 with the count simulator, and the per-agent simulator at small n; then the
cost vs |S_l| (random games) and the count step on the fleet's tables (|S_l| = 100, what
``GlobalAgentEnv`` steps); with ``--compare-ref REV`` also the simulator of git revision
``REV`` against the working tree's, same chunks and seeds (the numbers must be identical,
the tables say so).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _common import interleaved, limit_blas, machine, module_at, print_table, timeit  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl import simulate  # noqa: E402
from altmarl.evaluation import CHUNK  # noqa: E402
from altmarl.generative.simulator import chunk_sizes  # noqa: E402


def chunked(rollout_counts, game, pi_g, pi_l, R, H, seed=0):  # type: ignore[no-untyped-def]
    """``evaluate``'s chunking (128-rollout chunks, SeedSequence children), one thread."""
    sizes = chunk_sizes(R, CHUNK)
    seqs = np.random.SeedSequence(seed).spawn(len(sizes))
    parts = [rollout_counts(game, pi_g, pi_l, s, H, np.random.default_rng(q), record_counts=True)
             for s, q in zip(sizes, seqs, strict=True)]
    return np.concatenate([p.discounted_returns(game.gamma) for p in parts])


def compare(ref: str, quick: bool, H: int) -> None:
    """Before/after: ``simulate.py`` at ``ref`` vs the working tree, interleaved repeats."""
    try:
        old = module_at(ref, "src/altmarl/simulate.py", "_simulate_before")
    except Exception as exc:  # noqa: BLE001
        print(f"\n(--compare-ref {ref}: cannot load the old simulator: {exc})")
        return
    base = am.envs.make("warehouse", n=1000)
    pi_l = am.LocalPolicy.uniform(base)
    reps = 3 if quick else 7
    cases = [(1000, 5, 1), (1000, 5, 50), (1000, 5, 750), (1000, 50, 750), (10**9, 5, 750)]
    if quick:
        cases = [(1000, 5, 1), (1000, 5, 128), (10**9, 5, 128)]
    rows = []
    for n, k, R in cases:
        g = base.with_n(n)
        pi_g = am.GlobalPolicy.sample_mode(g, k)
        (t_old, t_new), (r_old, r_new) = interleaved(
            [functools.partial(chunked, old.rollout_counts, g, pi_g, pi_l, R, H),
             functools.partial(chunked, simulate.rollout_counts, g, pi_g, pi_l, R, H)], reps)
        rows.append([f"{n:.0e}", k, R, t_old * 1e3, t_new * 1e3, t_old / t_new,
                     "yes" if np.array_equal(r_old, r_new) else "NO"])
    print_table(f"rollout_counts before ({ref}) / after (working tree), warehouse, horizon {H}, "
                f"1 thread, evaluate's chunks (median of {reps}, interleaved)",
                ["n", "k", "rollouts", "before ms", "after ms", "speed-up", "identical returns"],
                rows)


def chunk_overhead(quick: bool, H: int) -> None:
    """What evaluate's fixed 128-rollout chunks cost: the same rollouts in one call."""
    g = am.envs.make("warehouse", n=1000)
    pi_l = am.LocalPolicy.uniform(g)
    pi_g = am.GlobalPolicy.sample_mode(g, 5)
    reps = 3 if quick else 7
    rows = []
    for R in ([256] if quick else [256, 768]):
        (t_chunks, t_one), _ = interleaved(
            [functools.partial(chunked, simulate.rollout_counts, g, pi_g, pi_l, R, H),
             functools.partial(simulate.rollout_counts, g, pi_g, pi_l, R, H,
                               np.random.default_rng(0), True)], reps)
        rows.append([R, R // 128, t_chunks * 1e3, t_one * 1e3, t_chunks / t_one])
    print_table(f"per-chunk overhead: evaluate's 128-rollout chunks vs one call (warehouse, "
                f"horizon {H}, 1 thread, median of {reps}, interleaved; different streams)",
                ["rollouts", "chunks", "chunked ms", "one call ms", "chunked / one call"], rows)


def sl_sweep(quick: bool, H: int) -> None:
    """Cost vs |S_l|: random games (|S_g| = |A_g| = |A_l| = 2, n = 1000, k = 5)."""
    R = 256
    reps = 1 if quick else 3
    rows = []
    t_ref = None
    for d in ([2, 5, 10] if quick else [2, 5, 10, 20, 40]):
        g = am.envs.make("random", n_sg=2, n_ag=2, n_sl=d, n_al=2, n=1000, gamma=0.95, seed=0)
        k = 5
        nh = am.num_histograms(k, d)
        pi_g = am.GlobalPolicy(k, np.random.default_rng(0).integers(0, 2, size=(2, nh)), 2, game=g)
        pi_l = am.LocalPolicy.uniform(g)
        t, _ = timeit(lambda g=g, p=pi_g, pl=pi_l: am.evaluate(g, p, pl, rollouts=R, horizon=H,
                                                                seed=0, workers=1), reps)
        t_ref = t if t_ref is None else t_ref
        rows.append([d, d * d * 2, nh, t, t / (R * H) * 1e6, t / t_ref])
    print_table(f"count simulator cost vs |S_l| (random game, |S_g|=|A_g|=|A_l|=2, n=1000, "
                f"k=5, {R} rollouts x {H}, 1 thread, median of {reps})",
                ["|S_l|", "cells |S_l|^2 |A_l|", "|H_k|", "seconds", "us / rollout-step",
                 "time / time(|S_l|=2)"], rows)


def fleet_steps(ref: str | None, quick: bool) -> None:
    """The count step on a large local space: the fleet's tables (|S_l| = 100, |S_g| = 30,
    |A_l| = 4, ``n = 10^4``; what ``GlobalAgentEnv`` steps), one row per step, with the step
    tables of this tree and, with ``ref``, those built by ``simulate.py`` at ``ref``."""
    from altmarl.envs.generative_fleet import fleet_tabular

    tab = fleet_tabular()
    rule = am.LocalPolicy.uniform(tab).table
    variants = [("working tree", simulate.step_tables(tab, rule))]
    if ref is not None:
        try:
            old = module_at(ref, "src/altmarl/simulate.py", "_simulate_tables_before")
            variants.insert(0, (ref, old.step_tables(tab, rule)))
        except Exception as exc:  # noqa: BLE001
            print(f"\n(--compare-ref {ref}: cannot load the old simulator: {exc})")
    steps = 300 if quick else 2000
    N0 = np.random.default_rng(0).multinomial(tab.n, np.full(tab.n_sl, 1 / tab.n_sl))[None, :]

    def run(tables: Any) -> Any:
        rng = np.random.default_rng(0)
        s_g, N, out = np.zeros(1, np.int64), N0.copy(), []
        for t in range(steps):
            st = simulate.count_step(tables, s_g, N, np.array([t % tab.n_ag]), rng)
            s_g, N = st.s_g, st.counts
            out.append(st.reward[0])
        return np.array(out)

    times, outs = interleaved([functools.partial(run, t) for _, t in variants], 3)
    rows = [[name, str(t.joint.flags["C_CONTIGUOUS"]), steps / sec, times[0] / sec,
             "yes" if np.array_equal(o, outs[-1]) else "NO"]
            for (name, t), sec, o in zip(variants, times, outs, strict=True)]
    print_table(f"count steps per second on the fleet's tables (n = 10^4, |S_l| = 100, one "
                f"row, {steps} steps, 1 thread, median of 3, interleaved)",
                ["step tables", "joint in C order", "steps / s", "speed-up", "same rewards"],
                rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    ap.add_argument("--rollouts", type=int, default=750)
    ap.add_argument("--horizon", type=int, default=100)
    ap.add_argument("--compare-ref", metavar="REV",
                    help="also time simulate.py as of git revision REV (before/after)")
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    R, H = args.rollouts, args.horizon
    print(f"machine: {machine()}; {limit_blas(1)}")
    base = am.envs.make("warehouse", n=1000)
    pi_l = am.LocalPolicy.uniform(base)
    pi_g = am.GlobalPolicy.sample_mode(base, 5)
    rows = []
    t_ref = None
    ns = [10**3, 10**6, 10**9] if args.quick else [10**3, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9]
    for n in ns:
        g = base.with_n(n)
        for w in (1, 2):
            t, ev = timeit(lambda g=g, w=w: am.evaluate(g, pi_g, pi_l, rollouts=R, horizon=H,
                                                      seed=0, workers=w), reps)
            if n == 10**3 and w == 2:
                t_ref = t
            rows.append([f"{n:.0e}", w, t, R * H / t / 1e6, "" if t_ref is None else t / t_ref,
                         f"{ev.mean:.2f} ± {ev.stderr:.2f}"])
    print_table(f"count simulator, warehouse (k = 5, sample-mode pi_g, uniform pi_l), {R} "
                f"rollouts x horizon {H} (median of {reps})",
                ["n", "threads", "seconds", "M rollout-steps/s", "time / time(n=1e3, 2 thr)", "value"],
                rows)
    rows = []
    for n in ([100, 1000] if args.quick else [100, 1000, 10_000]):
        g = base.with_n(n)
        Ra = min(R, 100)
        ta, _ = timeit(lambda g=g, Ra=Ra: am.evaluate(g, pi_g, pi_l, rollouts=Ra, horizon=H, seed=0,
                                                     workers=1, simulator="agents"), reps)
        tc, _ = timeit(lambda g=g, Ra=Ra: am.evaluate(g, pi_g, pi_l, rollouts=Ra, horizon=H, seed=0,
                                                     workers=1), reps)
        rows.append([n, Ra, ta, tc, ta / tc])
    print_table("per-agent vs count simulator (1 thread, same rollouts)",
                ["n", "rollouts", "per-agent s", "counts s", "speed-up"], rows)
    sl_sweep(args.quick, H)
    chunk_overhead(args.quick, H)
    fleet_steps(args.compare_ref, args.quick)
    if args.compare_ref:
        compare(args.compare_ref, args.quick, H)


if __name__ == "__main__":
    main()
