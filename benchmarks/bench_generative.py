"""Per-agent simulator of generative games (SPEC 11, issue 15): agent-steps per second.

    python benchmarks/bench_generative.py [--quick] [--rollouts R] [--horizon H]

The fleet (``am.envs.make("fleet")``: n = 10^4 vehicles, |S_l| = 100, |S_g| = 30) under a
sample-mode dispatcher at k = 20 and (a) a stochastic tabular local policy (uniform table,
alias sampling) and (b) a deterministic one; then a random tabular game with |S_l| = 100
seen through ``as_generative()``. One step of the simulator = fresh k-subsample, count
observation, global action, every agent's local action, ``step``, stage reward (and the
counts record). Reported: agent-steps per second = R * H * n / wall time, with 1 and 2
threads (``evaluate``'s fixed 32-rollout chunks). Goal (issue 15): >= 2 x 10^7 on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _common import limit_blas, machine, print_table  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.generative import FunctionGlobalPolicy  # noqa: E402


def rate(game, pi_g, pi_l, R: int, H: int, workers: int, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Best of ``repeats`` agent-steps per second of ``evaluate`` on ``game``."""
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        am.evaluate(game, pi_g, pi_l, rollouts=R, horizon=H, seed=0, workers=workers)
        best = max(best, R * H * game.n / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rollouts and one repeat")
    ap.add_argument("--rollouts", type=int, default=None)
    ap.add_argument("--horizon", type=int, default=None)
    args = ap.parse_args()
    limit_blas(1)
    R = args.rollouts or (64 if args.quick else 128)
    H = args.horizon or (20 if args.quick else 50)
    repeats = 1 if args.quick else 3
    print(machine())
    fleet = am.envs.make("fleet")
    Z, B = fleet.meta["zones"], fleet.meta["battery"]
    mode = FunctionGlobalPolicy(
        20, lambda s_g, h: h.reshape(len(h), Z, B).sum(axis=2).argmax(axis=1), "mode zone")
    tab = am.envs.fleet_tabular(n=fleet.n)
    serve = am.LocalPolicy.deterministic(
        tab, np.where(np.arange(Z * B)[:, None] % B == 0, 3, 0) * np.ones((1, fleet.n_sg), int))
    rnd = am.envs.make("random", n_sg=10, n_ag=10, n_sl=100, n_al=4, n=10_000, seed=0)
    cases = [
        ("fleet, uniform pi_l (stochastic)", fleet, mode, am.LocalPolicy.uniform(fleet)),
        ("fleet, charge-or-serve pi_l (deterministic)", fleet, mode, serve),
        ("random |S_l|=100 as_generative, uniform pi_l", rnd.as_generative(),
         FunctionGlobalPolicy(20, lambda s_g, h: h[:, :10].argmax(axis=1)),
         am.LocalPolicy.uniform(rnd)),
    ]
    rows = []
    for name, game, pg, pl in cases:
        r1 = rate(game, pg, pl, R, H, 1, repeats)
        r2 = rate(game, pg, pl, R, H, 2, repeats)
        rows.append([name, f"{r1 / 1e6:.1f}", f"{r2 / 1e6:.1f}", f"{r2 / r1:.2f}"])
    print_table(f"Per-agent simulator, n = 10^4, k = 20, {R} rollouts x {H} steps, best of "
                f"{repeats}", ["case", "10^6 agent-steps/s, 1 thread", "2 threads", "speed-up"], rows)
    print(machine())


if __name__ == "__main__":
    main()
