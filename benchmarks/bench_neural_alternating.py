"""Neural ALTERNATING-MARL on generative games (SPEC 6, 11; issue 15): wall time, the
UPDATE history, the estimated Nash gap.

    python benchmarks/bench_neural_alternating.py [--quick] [--k K] [--sweeps S] [--no-gap]

The fleet (``am.envs.make("fleet")``: n = 10^4, |S_l| = 100, |S_g| = 30) at ``k`` (default
10): ``am.alternating_marl`` with neural G-LEARN (2000 surrogate states, m = 10) and neural
L-LEARN (TRPO, 10 iterations of 4 x 50 steps), UPDATE on 32 rollouts of the truncation-aware
horizon with fresh common random numbers every sweep; then (unless ``--no-gap``) the
estimated Nash gap of the final pair (lower bound; 5 evaluation seeds x 32 rollouts x 100
steps, Student-t interval). ``--quick``: the fleet with n = 2000 and one sweep.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import limit_blas, machine, print_table  # noqa: E402

import altmarl as am  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 2000, one sweep")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sweeps", type=int, default=None)
    ap.add_argument("--no-gap", action="store_true", help="skip the Nash-gap estimate")
    args = ap.parse_args()
    limit_blas(1)
    print(machine())
    fleet = am.envs.make("fleet", n=2000 if args.quick else 10_000)
    sweeps = args.sweeps or (1 if args.quick else 2)
    t0 = time.perf_counter()
    res = am.alternating_marl(fleet, args.k, seed=0, sweeps=sweeps, m=10, eval_rollouts=32,
                              progress=False, g_options={"states": 2000},
                              l_options={"iterations": 10, "rollouts": 4})
    wall = time.perf_counter() - t0
    rows = [[h.sweep, h.player, h.decision, f"{h.v_new:.2f}",
             "" if h.v_old is None else f"{h.v_old:.2f}", f"{h.learn_time:.1f}",
             f"{h.eval_time:.1f}"] for h in res.history]
    print_table(f"fleet n = {fleet.n}, k = {args.k}: ALTERNATING-MARL, {wall:.0f} s in all; "
                f"held-out value {res.value.mean:.2f} +- {res.value.stderr:.2f}",
                ["sweep", "player", "decision", "V_new", "V_old", "learn s", "eval s"], rows)
    if not args.no_gap:
        from altmarl.exact import estimate_nash_gap

        t1 = time.perf_counter()
        est = estimate_nash_gap(fleet, res.pi_g, res.pi_l, rollouts=32, horizon=100, seeds=5,
                                m=10, g_learn_options={"states": 2000},
                                l_learn_options={s: {"iterations": 10, "rollouts": 4}
                                                 for s in ("trpo", "trpo-representative")})
        print(est)
        print(f"estimate: {time.perf_counter() - t1:.0f} s")
    print(machine())


if __name__ == "__main__":
    main()
