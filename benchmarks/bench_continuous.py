"""Continuous warehouse (issue 8): cost of the pieces of one ALTERNATING-MARL run and the
projected time of the full k-sweep (6 k x 15 seeds, n = 500).

    python benchmarks/bench_continuous.py [--quick] [--k 75] [--g-method ce|rollout]

Reports CPU time (``time.process_time``) next to wall time: on a shared machine the wall
time of a single-threaded job is inflated by other processes, its CPU time much less.
The projection assumes one run per core: ``90 runs x CPU seconds per run / 2 cores``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _common import machine, print_table  # noqa: E402


def cpu_wall(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median CPU and wall seconds of ``repeats`` calls."""
    cpus, walls = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return float(np.median(cpus)), float(np.median(walls))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, shorter full run")
    ap.add_argument("--k", type=int, default=75)
    ap.add_argument("--g-method", default="ce", choices=["ce", "rollout"])
    args = ap.parse_args()
    from altmarl.continuous.alternating import ContinuousConfig, run_continuous, update_horizon
    from altmarl.continuous.env import ContinuousWarehouse, simulate
    from altmarl.continuous.global_agent import GlobalAgent, g_learn_ce, g_learn_rollout
    from altmarl.continuous.trpo import LocalAgent, TRPOConfig, collect, fit_critic, trpo_step
    from altmarl.threads import set_torch_threads

    set_torch_threads(1)
    reps = 1 if args.quick else 3
    print(f"machine: {machine()}")
    env = ContinuousWarehouse()
    k = args.k
    cfg = ContinuousConfig(g_method=args.g_method)
    ga = GlobalAgent(env, k, init_seed=1)
    la = LocalAgent(env, init_seed=2, table_grid=cfg.table_grid)
    g_learn_ce(ga, np.random.default_rng(0), epochs=50)
    rng = np.random.default_rng(0)

    rows = []
    R, H = 16, 100
    steps = R * H * env.n
    for name, actor in (("table (greedy)", la.actor(True)), ("network (greedy)", la.actor(True, True)),
                        ("table (sampled)", la.actor(False)),
                        ("network (sampled)", la.actor(False, True))):
        c, w = cpu_wall(lambda a=actor: simulate(env, ga.actor(), a, k, R, H, 1), reps)
        rows.append([name, c, w, 1e9 * c / steps])
    print_table(f"simulate {R} rollouts x {H} steps x n = {env.n} robots (k = {k})",
                ["local policy", "CPU s", "wall s", "CPU ns / robot-step"], rows)
    t_tab, t_net = rows[0][1], rows[1][1]
    print(f"\ntable vs network (greedy): {t_net / t_tab:.1f}x faster")

    batch = collect(la, ga.actor(), k, cfg.trpo_rollouts, cfg.trpo_horizon, cfg.trpo_tracked,
                    np.random.SeedSequence(3))
    tcfg = TRPOConfig()
    tr = simulate(env, ga.actor(), la.actor(True), k, 16, 100, 1, record_positions=True)
    from altmarl.continuous.global_agent import harvest_states

    sg, sl = harvest_states(tr.positions, tr.s_g, cfg.rollout_states, env.gamma, rng)
    parts = [
        (f"G-LEARN ce ({cfg.ce_samples} samples, {cfg.ce_epochs} Adam steps)",
         lambda: g_learn_ce(ga.clone(), rng, samples=cfg.ce_samples, epochs=cfg.ce_epochs)),
        (f"G-LEARN rollout ({cfg.rollout_states} states x 5 actions x {cfg.rollout_len} steps)",
         lambda: g_learn_rollout(ga.clone(), la.actor(True), sg, sl, np.random.SeedSequence(1),
                                 rollout_len=cfg.rollout_len, hist_draws=cfg.rollout_hists,
                                 epochs=cfg.rollout_epochs)),
        (f"L-LEARN collect ({cfg.trpo_rollouts} x {cfg.trpo_horizon} steps, "
         f"{cfg.trpo_tracked} tracked)",
         lambda: collect(la, ga.actor(), k, cfg.trpo_rollouts, cfg.trpo_horizon,
                         cfg.trpo_tracked, np.random.SeedSequence(3))),
        (f"TRPO step ({batch.obs.shape[0]} samples)", lambda: trpo_step(la.clone(), batch, tcfg, rng)),
        ("critic fit", lambda: fit_critic(la.clone(), batch, tcfg, rng)),
        (f"table build ({cfg.table_grid}^2 grid)", lambda: (la.invalidate(), la.table())),
        (f"UPDATE evaluation ({cfg.update_rollouts} x {update_horizon(cfg, env)})",
         lambda: simulate(env, ga.actor(), la.actor(True), k, cfg.update_rollouts,
                          update_horizon(cfg, env), 2)),
    ]
    rows = [[name, *cpu_wall(fn, reps)] for name, fn in parts]
    print_table("pieces of one sweep", ["piece", "CPU s", "wall s"], rows)

    full = cfg if not args.quick else cfg.replace(alternations=5, patience=5)
    c0, w0 = time.process_time(), time.perf_counter()
    res = run_continuous(k, 0, full)
    c1, w1 = time.process_time() - c0, time.perf_counter() - w0
    print(f"\nfull run: k = {k}, g_method = {args.g_method}, {res.extra['sweeps']} sweeps: "
          f"{c1:.1f} s CPU, {w1:.1f} s wall; V = {res.value:.1f} "
          f"(horizon-50: {res.evaluation.short[50]['mean']:.1f})")
    per_run = c1 if not args.quick else c1 * full.alternations / max(1, res.extra["sweeps"])
    if not args.quick:
        print(f"projected full sweep (90 runs, 2 dedicated cores): {90 * per_run / 2 / 60:.1f} min "
              f"(authors' code: about 21 s per run -> {90 * 21 / 2 / 60:.1f} min)")


if __name__ == "__main__":
    main()
