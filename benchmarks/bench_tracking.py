"""Experiment tracking (issue 21): what logging costs an ALTERNATING-MARL run, and what a
quick hyper-parameter search costs.

    python benchmarks/bench_tracking.py [--quick]

The cost of logging one UPDATE proposal with each tracker (the proposals of one
``am.alternating_marl`` run on the warehouse, ``n = 1000``, ``k = 5``, replayed; start and
close included) next to the mean wall time of a proposal of that run: the two numbers come
from one process, so the load of the shared machine inflates both. Then the one-time
creation of an MLflow SQLite store and ``altmarl tune random_small --trials 4 --quick``
(in-process).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 sweeps, 200 replayed proposals")
    args = ap.parse_args()
    import altmarl as am
    from altmarl.tracking import CSVTracker, MLflowTracker, TensorBoardTracker, WandbTracker

    sweeps, events = (3, 200) if args.quick else (10, 1000)
    game = am.envs.make("warehouse", n=1000)
    res = am.alternating_marl(game, 5, seed=0, sweeps=sweeps, progress=False)
    per_proposal = sum(r.wall_time for r in res.history) / len(res.history)
    rows = [r.to_dict() for r in res.history]
    tmp = Path(tempfile.mkdtemp(prefix="altmarl-bench-tracking-"))
    t0 = time.perf_counter()
    with MLflowTracker("store", root=tmp) as ml:  # the store's one-time creation
        ml.log_params({"create": 1})
    create_s = time.perf_counter() - t0

    def replay(tracker: object) -> float:
        """Seconds per proposal logged: ``events`` proposals (the run's, with the sweep
        shifted), then close (flush)."""
        t = time.perf_counter()
        for i in range(events):
            row = dict(rows[i % len(rows)], sweep=1 + i // 2)
            tracker.on_proposal(row, unit="k0005_t00")  # type: ignore[attr-defined]
        tracker.close()  # type: ignore[attr-defined]
        return (time.perf_counter() - t) / events

    costs = {"csv": replay(CSVTracker(tmp / "csv")),
             "tensorboard": replay(TensorBoardTracker(tmp / "tb")),
             "mlflow (existing store)": replay(MLflowTracker("replay", root=tmp)),
             "wandb (offline)": replay(WandbTracker(tmp, "replay"))}
    print(machine())
    print_table(f"cost of logging one UPDATE proposal ({events} proposals replayed, "
                "including start and close) against the mean wall time of a proposal of "
                f"the run (warehouse n = 1000, k = 5: {per_proposal:.2f} s)",
                ["tracker", "ms per proposal", "fraction of a proposal"],
                [[name, f"{1e3 * c:.2f}", f"{c / per_proposal:.2%}"]
                 for name, c in costs.items()])
    print(f"\ncreating the MLflow SQLite store (first use of a directory): {create_s:.1f} s")

    from altmarl.experiments.config import packaged_config
    from altmarl.experiments.tuning import tune

    t0 = time.perf_counter()
    rep = tune(packaged_config("random_small"), tmp / "tune", 4, quick=True, progress=False)
    wall = time.perf_counter() - t0
    states = [r["state"] for r in rep.rows]
    print(f"altmarl tune random_small --trials 4 --quick: {wall:.1f} s in all "
          f"({wall / 4:.1f} s per trial; {states.count('pruned')} of 4 pruned; plots "
          "included)")


if __name__ == "__main__":
    main()
