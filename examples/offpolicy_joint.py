"""Off-policy evaluation of a joint policy ``(pi_g, pi_l)`` from logs with local actions,
and how its effective sample size collapses as the population grows (docs/offpolicy.md,
section 7).

Random game (``|S_g| = 2, |A_g| = |S_l| = 3, |A_l| = 2``, ``gamma = 0.8``, Dirichlet
concentration 0.3, seed 5), ``k = 2`` sampled agents (``k = 1`` for ``n = 1``), target: the
sample-mode dispatcher; logs: epsilon-greedy (0.1) around it, uniform local agents
(``mu_l``), the population's local actions recorded. Target local policy
``pi_l = (1 - delta) mu_l + delta pi_0`` (``pi_0``: always local action 0). For each ``n``
the script prints the exact value of the joint policy and of ``pi_g`` with the logged local
agents (``am.exact.ExactSolver``), per-decision IS and weighted IS with their bootstrap 95%
intervals on the first log, how many of ``--repeats`` independent logs (seeds 0, 1, ...)
give intervals covering the exact joint value (IS allowing its truncation bound), and the
median Kish effective sample size of the weights at the effective horizon
``round(1 / (1 - gamma)) = 5``, with the joint weights and with the global ratio only.
Usage::

    python examples/offpolicy_joint.py [--episodes 2000] [--horizon 30] [--delta 0.2]
                                       [--ns 1,2,4,8,16,32] [--repeats 10]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import altmarl as am
from altmarl.offpolicy import record_logs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--delta", type=float, default=0.2)
    ap.add_argument("--ns", default="1,2,4,8,16,32")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    print(f"delta = {args.delta}, {args.episodes} episodes x {args.horizon} steps, "
          f"{args.repeats} logs per n\n")
    print("| n | k | exact joint | exact logged local | IS joint (log 0) | WIS joint (log 0) | "
          "IS covers | WIS covers | ESS joint | ESS global only |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for n in (int(x) for x in args.ns.split(",")):
        k = min(n, 2)
        game = am.envs.make("random", n=n, n_sg=2, n_ag=3, n_sl=3, n_al=2, gamma=0.8, seed=5,
                            concentration=0.3)
        mu = am.LocalPolicy.uniform(game)
        pi_0 = am.LocalPolicy.deterministic(game, np.zeros((game.n_sl, game.n_sg), np.int64))
        pi_l = am.LocalPolicy((1 - args.delta) * mu.table + args.delta * pi_0.table)
        pi_g = am.GlobalPolicy.sample_mode(game, k)
        solver = am.exact.ExactSolver(game, k=k)
        exact_joint, exact_logged = solver.value(pi_g, pi_l), solver.value(pi_g, mu)
        first: list[am.offpolicy.OffPolicyEstimate] = []
        covers = {"is": 0, "wis": 0}
        ess, ess_g = [], []
        for rep in range(args.repeats):
            ds = record_logs(game, k, args.episodes, args.horizon, seed=rep, pi_l=mu,
                             behaviour="epsilon-greedy", pi_g=pi_g, epsilon=0.1,
                             local_actions=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for method in ("is", "wis"):
                    est = am.offpolicy_evaluate(ds, pi_g, pi_l, method=method, seed=0,
                                                behaviour_policy=pi_g)
                    slack = est.diagnostics["truncation_bound"] if method == "is" else 0.0
                    assert est.ci95 is not None
                    covers[method] += est.ci95[0] - slack <= exact_joint <= est.ci95[1] + slack
                    if rep == 0:
                        first.append(est)
            imp = est.diagnostics["importance"]
            ess.append(imp["ess"])
            ess_g.append(imp["ess_global_only"])
        txt = [f"{e.value:.4f} [{e.ci95[0]:.4f}, {e.ci95[1]:.4f}]" for e in first
               if e.ci95 is not None]
        print(f"| {n} | {k} | {exact_joint:.4f} | {exact_logged:.4f} | " + " | ".join(txt)
              + f" | {covers['is']}/{args.repeats} | {covers['wis']}/{args.repeats} | "
              f"{np.median(ess):.0f} | {np.median(ess_g):.0f} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.1f} s; IS / WIS estimate the value truncated at "
          f"horizon {args.horizon} (tail <= {0.8 ** args.horizon / 0.2:.4f} r_max)")


if __name__ == "__main__":
    main()
