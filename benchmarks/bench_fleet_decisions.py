"""What the fleet benchmark's learned dispatchers do differently from "follow the charge"
(docs/generative.md, the fleet benchmark).

    python benchmarks/bench_fleet.py                    # writes /tmp/altmarl-bench-fleet
    python benchmarks/bench_fleet_decisions.py [--work DIR] [--seeds 2]

For every ``k`` whose ``pi_g.pt`` the benchmark wrote in ``--work``, plays the learned
dispatcher with the charge-and-chase rule (``low = 3``) on ``--seeds`` evaluation seeds x 32
rollouts x 100 steps and counts, per campaign age (fresh, mature, worn out), the decisions
that differ from follow the charge's in the same state and those that move a campaign
follow the charge would keep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_fleet import charge_and_chase, dispatchers, per_seed  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.envs.generative_fleet import AGES, fleet_tabular  # noqa: E402
from altmarl.generative.files import load_policy  # noqa: E402
from altmarl.generative.policies import FunctionGlobalPolicy  # noqa: E402


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
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args()
    tab = fleet_tabular()
    game = tab.as_generative(check="first")
    rule = am.LocalPolicy.deterministic(tab, charge_and_chase(10, 10, 3))
    files = sorted(Path(a.work).glob("k*/pi_g.pt"))
    if not files:
        raise SystemExit(f"{a.work}: no k*/pi_g.pt (run benchmarks/bench_fleet.py first, "
                         "or UPDATE kept the hand-written dispatcher)")
    for f in files:
        pol = load_policy(f, "global", game)
        ref = FunctionGlobalPolicy(pol.k, dispatchers(10, 10)["follow the charge"],
                                   "follow the charge")
        cmp = Compared(pol, ref)
        v = per_seed(game, cmp, rule, list(range(a.seeds)), 32, 100)
        c = cmp.counts
        print(f"k = {pol.k}: value {np.mean(v):.2f} with the rule; " + "; ".join(
            f"{AGES[e]}: {100 * c[e, 0] / c[e, 2]:.0f}% changed, {100 * c[e, 1] / c[e, 2]:.0f}% "
            "moved where follow the charge keeps" for e in range(len(AGES))))


if __name__ == "__main__":
    main()
