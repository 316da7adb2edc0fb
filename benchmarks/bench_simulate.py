"""Count-simulator throughput vs n, and vs the per-agent simulator (issue 2, issue 11).

    python benchmarks/bench_simulate.py [--quick]

Evaluates a fixed joint policy on the warehouse (750 rollouts x horizon 100) for
n = 10^3 .. 10^9 with the count simulator, and the per-agent simulator at small n.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, print_table, timeit  # noqa: E402

import altmarl as am  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    ap.add_argument("--rollouts", type=int, default=750)
    ap.add_argument("--horizon", type=int, default=100)
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    R, H = args.rollouts, args.horizon
    print(f"machine: {machine()}")
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
    print_table(f"count simulator, warehouse, {R} rollouts x horizon {H} (median of {reps})",
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


if __name__ == "__main__":
    main()
