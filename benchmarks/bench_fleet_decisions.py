"""What the fleet benchmark's learned dispatchers do differently from "follow the charge"
(docs/generative.md, the fleet benchmark).

    python benchmarks/bench_fleet.py                    # trains into /tmp/altmarl-bench-fleet
    python benchmarks/bench_fleet_decisions.py [--work DIR] [--seed 0] [--seeds 6]

For every ``k`` the benchmark trained in ``--work``, plays three global policies with the
hand-written local rule the selection chose (``selection.json``) on the benchmark's
evaluation seeds (``--seed``, ``--seeds``: the same as ``bench_fleet.py``'s) x 32 rollouts x
100 steps: the global policy ALTERNATING-MARL played at the end (``alternating.json``), the
greedy PPO policy, and follow the charge. Reports each value with the paired difference to
follow the charge (Student-t 95% interval over the seeds) and, per campaign age (fresh,
mature, worn out), the share of the learner's decisions that differ from follow the charge's
in the same state and the share that move a campaign follow the charge would keep.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_fleet import (  # noqa: E402
    charge_and_chase,
    dispatchers,
    per_seed,
    played_global,
    ppo_global,
)

import altmarl as am  # noqa: E402
from altmarl.envs.generative_fleet import AGES, fleet_tabular  # noqa: E402
from altmarl.experiments.assess import student_interval  # noqa: E402
from altmarl.experiments.runner import eval_seeds  # noqa: E402
from altmarl.generative.policies import FunctionGlobalPolicy  # noqa: E402

REFERENCE = "follow the charge"


class Compared:
    """Plays ``pol`` and counts, per campaign age, its decisions against ``ref``'s."""

    def __init__(self, pol: Any, ref: Any) -> None:
        self.pol, self.ref, self.k = pol, ref, pol.k
        self.counts = np.zeros((len(AGES), 3))  # changed, moved where ref keeps, all

    def act(self, s_g: Any, obs: Any) -> Any:
        a = np.asarray(self.pol.act(s_g, obs))
        b = np.asarray(self.ref.act(s_g, obs))
        s = np.asarray(s_g)
        e, c = s % len(AGES), s // len(AGES)
        np.add.at(self.counts, (e, 0), a != b)
        np.add.at(self.counts, (e, 1), (a != c) & (b == c))
        np.add.at(self.counts, (e, 2), 1)
        return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/altmarl-bench-fleet")
    ap.add_argument("--seed", type=int, default=0, help="bench_fleet.py's --seed")
    ap.add_argument("--seeds", type=int, default=6, help="bench_fleet.py's --seeds")
    a = ap.parse_args()
    work = Path(a.work)
    sel_file = work / "selection.json"
    if not sel_file.is_file():
        raise SystemExit(f"{work}: no selection.json (run benchmarks/bench_fleet.py first)")
    hand = {int(k): v for k, v in json.loads(sel_file.read_text()).items()}
    tab = fleet_tabular()
    game = tab.as_generative(check="first")
    seeds = eval_seeds(a.seed, a.seeds)
    for k in sorted(hand):
        d = work / f"k{k:03d}"
        if not (d / "alternating.json").is_file() or not (d / "ppo.zip").is_file():
            print(f"k = {k}: not trained in {d}")
            continue
        rule = am.LocalPolicy.deterministic(tab, charge_and_chase(10, 10, hand[k]["low"]))
        ref = FunctionGlobalPolicy(k, dispatchers(10, 10)[REFERENCE], REFERENCE)
        disp = FunctionGlobalPolicy(k, dispatchers(10, 10)[hand[k]["dispatcher"]],
                                    hand[k]["dispatcher"])
        base = np.array(per_seed(game, ref, rule, seeds, 32, 100))
        print(f"k = {k}: {REFERENCE} {base.mean():.2f} (local rule low = {hand[k]['low']}, "
              f"{len(seeds)} seeds x 32 rollouts x 100 steps)")
        learners = {"ALTERNATING-MARL's global policy": played_global(d, game, disp, False),
                    "SB3 PPO": ppo_global(d, tab, k)}
        for name, pol in learners.items():
            cmp = Compared(pol, ref)
            v = np.array(per_seed(game, cmp, rule, seeds, 32, 100))
            iv = student_interval(list(v - base))
            c = cmp.counts
            print(f"  {name}: {v.mean():.2f}, paired difference {iv['mean']:+.2f} "
                  f"[{iv['ci95'][0]:+.2f}, {iv['ci95'][1]:+.2f}]; " + "; ".join(
                      f"{AGES[e]}: {100 * c[e, 0] / c[e, 2]:.0f}% changed, "
                      f"{100 * c[e, 1] / c[e, 2]:.0f}% moved where {REFERENCE} keeps"
                      for e in range(len(AGES))))


if __name__ == "__main__":
    main()
