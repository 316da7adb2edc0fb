"""Neural G-LEARN's improvement step on the fleet (docs/generative.md, "The learners alone
against the best dispatcher"): one fitted evaluation of the best hand-written dispatcher
(follow the charge, charge-and-chase local rule with ``low = 3``), then its greedy step and
cautious steps with several margins, each scored against the dispatcher on the same seeds.

    python benchmarks/bench_fleet_margins.py --k 20 --states 8000 --margins 0 2 4 8 16

The fit (``targets="pi_g"``, ``common_draws=True``, ``m`` draws, 150 rounds with
``min_iterations=60``) is done once: ``improve`` only decides how its greedy step is
applied, so every margin reuses the same network (:class:`NeuralGlobalPolicy` with
``base``). Reported per margin: the value over ``--seeds`` seeds x 32 rollouts x 100 steps
of the per-agent simulator (common random numbers), the per-seed differences to the
dispatcher, and the share of decisions changed per campaign age (fresh, mature, worn out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_fleet import charge_and_chase, dispatchers, per_seed  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.envs.generative_fleet import AGES, fleet_tabular  # noqa: E402
from altmarl.generative.neural import NeuralGlobalPolicy, neural_g_learn  # noqa: E402
from altmarl.generative.policies import FunctionGlobalPolicy  # noqa: E402


class Counting:
    """A global policy that counts, per campaign age, the decisions that differ from the
    base policy's."""

    def __init__(self, pol: NeuralGlobalPolicy) -> None:
        self.pol, self.k = pol, pol.k
        self.changed = np.zeros((len(AGES), 2))

    def act(self, s_g: Any, obs: Any) -> Any:
        a = self.pol.act(s_g, obs)
        assert self.pol.base is not None
        e = np.asarray(s_g) % len(AGES)
        np.add.at(self.changed, (e, 0), a != np.asarray(self.pol.base.act(s_g, obs)))
        np.add.at(self.changed, (e, 1), 1)
        return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--states", type=int, default=8000)
    ap.add_argument("--m", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0, help="the fit's seed")
    ap.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 2.0, 4.0, 8.0, 16.0])
    a = ap.parse_args()
    tab = fleet_tabular()
    game = tab.as_generative(check="first")
    rule = am.LocalPolicy.deterministic(tab, charge_and_chase(10, 10, 3))
    disp = FunctionGlobalPolicy(a.k, dispatchers(10, 10)["follow the charge"],
                                "follow the charge")
    c0 = time.process_time()
    fit = neural_g_learn(game, rule, a.k, m=a.m, seed=a.seed, states=a.states, pi_g=disp,
                         iterations=150, min_iterations=60, common_draws=True,
                         targets="pi_g", improve="cautious", margin=0.0)
    cpu = time.process_time() - c0
    seeds = list(range(a.seeds))
    base = np.array(per_seed(game, disp, rule, seeds, 32, 100))
    print(f"k = {a.k}, {a.states} states, m = {a.m}: fit {cpu:.0f} s CPU, "
          f"{fit.info['iterations']} rounds; follow the charge {base.mean():.2f}")
    for mg in a.margins:
        pol = Counting(NeuralGlobalPolicy(a.k, fit.net, fit.features, fit.n_ag, fit.arch,
                                          base=disp, margin=mg))
        v = np.array(per_seed(game, pol, rule, seeds, 32, 100))
        share = pol.changed[:, 0] / np.maximum(1, pol.changed[:, 1])
        print(f"margin {mg:g}: {v.mean():.2f} (per seed " + ", ".join(
            f"{d:+.2f}" for d in v - base) + "); decisions changed " + ", ".join(
            f"{nm} {100 * s:.0f}%" for nm, s in zip(AGES, share, strict=True)))


if __name__ == "__main__":
    main()
