"""How far off-policy estimates land from the exact value (docs/offpolicy.md, section 8).

Random games with ``|S_g| = 2, |A_g| = |S_l| = 3, |A_l| = 2``, ``gamma = 0.8``, Dirichlet
concentration 0.3, ``n = 12`` agents; target: the sample-mode dispatcher with ``k`` sampled
agents, uniform local agents. For each game and ``k`` the script prints the exact value of
the 12-agent system and of the ``k``-agent surrogate (``am.exact.ExactSolver``) and

* FQE on fresh-sample logs (uniform behaviour) -- not Markov: biased;
* FQE on tracked-sample logs (uniform behaviour) -- the surrogate's value;
* per-decision IS and weighted IS on epsilon-greedy logs (epsilon = 0.1 around the target)
  -- the 12-agent value, truncated at the horizon;

each with its bootstrap 95% interval. Usage::

    python examples/offpolicy_bias.py [--episodes 4000] [--horizon 30]
"""

from __future__ import annotations

import argparse
import time
import warnings

import altmarl as am
from altmarl.offpolicy import record_logs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=4000)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--seeds", default="3,4,5")
    args = ap.parse_args()
    print("| game seed | k | exact n = 12 | exact surrogate | FQE fresh | FQE tracked | IS | "
          "WIS |")
    print("|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for seed in (int(s) for s in args.seeds.split(",")):
        spec = dict(n_sg=2, n_ag=3, n_sl=3, n_al=2, gamma=0.8, seed=seed, concentration=0.3)
        game = am.envs.make("random", n=12, **spec)
        pi_l = am.LocalPolicy.uniform(game)
        for k in (1, 2):
            pi_g = am.GlobalPolicy.sample_mode(game, k)
            exact_n = am.exact.ExactSolver(game, k=k).value(pi_g, pi_l)
            surrogate = am.exact.ExactSolver(am.envs.make("random", n=k, **spec),
                                             k=k).value(pi_g, pi_l)
            cells = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for nh in ("fresh", "tracked"):
                    ds = record_logs(game, k, args.episodes, args.horizon, seed=1,
                                     next_histogram=nh)
                    cells.append(am.offpolicy_evaluate(ds, pi_g, seed=0))
                ds = record_logs(game, k, args.episodes, args.horizon, seed=1,
                                 behaviour="epsilon-greedy", pi_g=pi_g, epsilon=0.1)
                for method in ("is", "wis"):
                    cells.append(am.offpolicy_evaluate(ds, pi_g, method=method, seed=0,
                                                       behaviour_policy=pi_g))
            txt = [f"{e.value:.4f} [{e.ci95[0]:.4f}, {e.ci95[1]:.4f}]" for e in cells]
            print(f"| {seed} | {k} | {exact_n:.4f} | {surrogate:.4f} | " + " | ".join(txt)
                  + " |")
    print(f"\n{time.perf_counter() - t0:.1f} s; IS / WIS estimate the value truncated at "
          f"horizon {args.horizon} (tail <= {0.8 ** args.horizon / 0.2:.4f} r_max)")


if __name__ == "__main__":
    main()
