"""Federated optimization with partial participation (paper Example 2.6, SPEC 8.3).

A server trains a logistic-regression model on scikit-learn's ``load_digits`` with ``n``
non-IID clients; each round it can poll only ``k`` clients' (bucketed) local losses,
picks a server step size, and every client decides how many local steps to run (0 = skip
the round, no upload). This script walks through the pipeline step by step:

1. simulate rounds under exploratory policies and count transitions;
2. estimate the tabular game (P_g, P_l, r_g, r_l) from the counts;
3. run ALTERNATING-MARL on the estimated game;
4. run the learned policy in the *real* simulator against FedAvg baselines.

Usage::

    python examples/federated.py            # small (about 10 s of compute)
    python examples/federated.py --full     # n = 300 clients, 40 rounds (minutes)

The full experiment with tables and plots is ``altmarl federated run`` (docs/federated.md).
"""

from __future__ import annotations

import argparse

import numpy as np

import altmarl as am
from altmarl.federated import (
    ExploreController,
    FedAvgController,
    FederatedConfig,
    FederatedSimulator,
    FixedController,
    PolicyController,
    TransitionCounts,
    estimate_game,
    make_federation,
    run_episode,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="n = 300 clients, 40 rounds")
    ap.add_argument("--k", type=int, default=5, help="clients polled per round")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    cfg = (FederatedConfig() if args.full
           else FederatedConfig(n_clients=80, samples_per_client=20, horizon=15))
    episodes = 12 if args.full else 4
    ss = np.random.SeedSequence(args.seed)
    s_train, s_test, s_explore, s_learn, s_eval = ss.spawn(5)

    # 1. explore: random state-dependent behaviour, every transition counted
    train = FederatedSimulator(cfg, make_federation(cfg, s_train))
    counts = TransitionCounts(cfg.n_sg, cfg.n_ag, cfg.n_sl, cfg.n_al)
    for rng in (np.random.default_rng(s) for s in s_explore.spawn(episodes)):
        run_episode(train, ExploreController(eps=0.2), cfg.horizon, rng, counts)

    # 2. estimate the game (smoothed counts; unvisited rows fall back to pooled rows)
    game, report = estimate_game(counts, cfg.gamma, cfg.n_clients)
    print(game)
    print("coverage:", report.summary())

    # 3. ALTERNATING-MARL on the estimated game
    res = am.alternating_marl(game, args.k, seed=int(s_learn.generate_state(1)[0]),
                              sweeps=3, m=30, local_solver="induced-vi",
                              eval_horizon=cfg.horizon, progress=False)
    print(f"ALTERNATING-MARL k={args.k}: model value {res.value.mean:.2f}, "
          f"converged={res.converged}")
    print("local policy (rows: validation-loss bucket; columns: local-loss bucket; "
          "entry: local steps)")
    print(np.asarray(cfg.local_steps)[res.pi_l.greedy_actions().T])

    # 4. evaluate in the real simulator, on a held-out data split, same episode seed
    test = FederatedSimulator(cfg, make_federation(cfg, s_test))
    ep_seed = int(s_eval.generate_state(1)[0])
    methods = {
        f"learned (k={args.k})": PolicyController(res.pi_g, res.pi_l),
        f"FedAvg, {args.k} sampled clients": FedAvgController(args.k, cfg.n_al - 1),
        "FedAvg, full participation": FixedController(0, cfg.n_al - 1),
    }
    print(f"\n{'method':34s} {'return':>7s} {'val acc':>8s} {'uploads/round':>14s}")
    for name, ctl in methods.items():
        log = run_episode(test, ctl, cfg.horizon, np.random.default_rng(ep_seed))
        m = log.metrics(cfg.gamma, target_acc=0.9)
        print(f"{name:34s} {m['return']:7.2f} {m['final_acc']:8.3f} "
              f"{m['uploads_per_round']:14.1f}")


if __name__ == "__main__":
    main()
