"""Stable-Baselines3 on the global agent's Gymnasium environment vs G-LEARN (docs/interfaces.md).

Setting: the warehouse (SPEC 8.1, ``n = 1000``), the local agents fixed to the uniform
``pi_l``; for each ``k`` the global agent's best response is learned

* by G-LEARN (``am.g_learn(game, pi_l, k, m=30, seed)``, paper Algorithm 22), and
* by SB3 PPO and/or DQN on :class:`altmarl.interfaces.GlobalAgentEnv` (observation
  ``[one_hot(s_g), h/k]``, reward = stage reward of SPEC eq. 1, episodes of ``horizon``
  steps, ``gamma = game.gamma``), for a stated budget of environment steps;

the SB3 model is tabulated over all ``(s_g, h)`` into a :class:`GlobalPolicy` (exact, the
observation *is* ``(s_g, h)``), and every policy is scored by :func:`am.evaluate` with the
same seed (common random numbers). Reference rows: the sample-mode heuristic ("go where
most sampled robots are") and the constant policy ``a_g = 0``.

Usage::

    python benchmarks/bench_sb3.py              # k = 1, 5, 10; 200k SB3 steps; PPO and DQN
    python benchmarks/bench_sb3.py --quick      # smoke run (seconds)
    python benchmarks/bench_sb3.py --ks 1 5 --steps 100000 --algos ppo --out results.json

Timings are wall-clock on a shared machine (noisy); compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np

import altmarl as am
from altmarl.io import atomic_write_bytes

try:
    import stable_baselines3 as sb3
    import torch
except ImportError as exc:  # pragma: no cover
    raise SystemExit(f"bench_sb3 needs Stable-Baselines3 and torch: pip install 'altmarl[sb3]' "
                     f"({exc})") from None

from altmarl.interfaces import GlobalAgentEnv


def _g_learn() -> Any:
    fn = getattr(am, "g_learn", None)
    if fn is None:
        from altmarl.glearn import g_learn as fn
    return fn


def _score(game: am.TabularGame, pi_g: am.GlobalPolicy, pi_l: am.LocalPolicy,
           args: argparse.Namespace) -> am.Evaluation:
    return am.evaluate(game, pi_g, pi_l, rollouts=args.rollouts, horizon=args.horizon,
                       seed=args.eval_seed, workers=1)


def _make_model(algo: str, env: GlobalAgentEnv, gamma: float, seed: int) -> Any:
    if algo == "ppo":
        # SB3 defaults (n_steps 2048, batch 64, 10 epochs, lr 3e-4), gamma of the game
        return sb3.PPO("MlpPolicy", env, gamma=gamma, seed=seed, device="cpu", verbose=0)
    if algo == "dqn":
        return sb3.DQN("MlpPolicy", env, gamma=gamma, seed=seed, device="cpu", verbose=0,
                       learning_starts=1000, buffer_size=100_000, exploration_fraction=0.2,
                       target_update_interval=1000)
    raise ValueError(f"algo = {algo!r}: expected 'ppo' or 'dqn'")


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    game = am.envs.make("warehouse", n=args.n)
    pi_l = am.LocalPolicy.uniform(game)
    g_learn = _g_learn()
    rows: list[dict[str, Any]] = []
    ref: dict[int, am.GlobalPolicy] = {}

    def add(k: int, method: str, pi: am.GlobalPolicy, seconds: float, samples: int | None,
            extra: dict[str, Any] | None = None) -> None:
        ev = _score(game, pi, pi_l, args)
        acts = pi.actions.ravel()
        top = np.bincount(acts, minlength=game.n_ag).max() / acts.size
        agree = float((pi.actions == ref[k].actions).mean()) if k in ref else float("nan")
        row = {"k": k, "method": method, "value": ev.mean, "stderr": ev.stderr,
               "seconds": seconds, "samples": samples,
               "distinct_actions": int(np.unique(acts).size),
               "top_action_share": float(top), "agree_g_learn": agree,
               "mode_match_rate": ev.mode_match_rate, **(extra or {})}
        rows.append(row)
        print(f"k={k:3d} {method:14s} V={ev.mean:8.3f} ± {ev.stderr:.3f}  "
              f"time={seconds:8.2f}s  samples={samples}  agree(G-LEARN)={agree:.2f}  "
              f"top-action share={top:.2f}  mode-match={ev.mode_match_rate:.2f}", flush=True)
        if args.out:
            tag = f"k{k}_{method}" + (f"_seed{extra['seed']}" if extra and "seed" in extra else "")
            pi.save(f"{args.out}.policies/{tag.replace('(', '').replace(')', '')}.npz", game)

    for k in args.ks:
        for seed in args.seeds:
            t0 = time.perf_counter()
            pi_g = g_learn(game, pi_l, k, m=args.m, seed=seed)
            dt = time.perf_counter() - t0
            ref.setdefault(k, pi_g)
            add(k, "g-learn", pi_g, dt, int(pi_g.info.get("samples", 0)), {"seed": seed})
        add(k, "constant(0)", am.GlobalPolicy.constant(game, k, 0), 0.0, 0)
        add(k, "sample-mode", am.GlobalPolicy.sample_mode(game, k), 0.0, 0)
        for algo in args.algos:
            for seed in args.seeds:
                env = GlobalAgentEnv(game, pi_l, k, horizon=args.horizon, obs="box")
                model = _make_model(algo, env, game.gamma, seed)
                t0 = time.perf_counter()
                model.learn(total_timesteps=args.steps)
                t_train = time.perf_counter() - t0
                pi_sb3 = env.tabulate(lambda o, m=model: m.predict(o, deterministic=True)[0],
                                      info={"method": f"sb3-{algo}", "steps": args.steps})
                add(k, f"sb3-{algo}", pi_sb3, t_train, args.steps, {"seed": seed})
    return {
        "config": {"env": "warehouse", "n": args.n, "pi_l": "uniform", "ks": args.ks,
                   "m": args.m, "sb3_steps": args.steps, "algos": args.algos,
                   "seeds": args.seeds, "eval": {"rollouts": args.rollouts,
                                                 "horizon": args.horizon,
                                                 "seed": args.eval_seed},
                   "versions": {"python": platform.python_version(),
                                "stable_baselines3": sb3.__version__,
                                "torch": torch.__version__, "numpy": np.__version__},
                   "torch_threads": 1},
        "rows": rows,
    }


def env_speed(steps: int = 5000) -> list[tuple[str, float]]:
    """Microseconds per ``step`` of each environment (warehouse, random actions)."""
    from altmarl.interfaces import AltMarlParallelEnv, LocalAgentEnv

    game = am.envs.make("warehouse", n=1000)
    pi_l = am.LocalPolicy.uniform(game)
    rng = np.random.default_rng(0)
    out = []

    def time_env(label: str, env: Any, n_act: int) -> None:
        acts = rng.integers(0, n_act, size=steps)
        env.reset(seed=0)
        t0 = time.perf_counter()
        for a in acts:
            if env.step(int(a))[3]:
                env.reset()
        out.append((label, (time.perf_counter() - t0) / steps * 1e6))

    time_env("GlobalAgentEnv (n=1000, k=5, obs=dict)", GlobalAgentEnv(game, pi_l, 5), game.n_ag)
    time_env("GlobalAgentEnv (n=1000, k=5, obs=box)", GlobalAgentEnv(game, pi_l, 5, obs="box"),
             game.n_ag)
    time_env("GlobalAgentEnv (n=10^6, k=5, obs=box)",
             GlobalAgentEnv(game.with_n(10**6), pi_l, 5, obs="box"), game.n_ag)
    time_env("LocalAgentEnv (n=1000, k=5)",
             LocalAgentEnv(game, am.GlobalPolicy.sample_mode(game, 5), pi_l), game.n_al)
    for n in (10, 100, 1000):
        env = AltMarlParallelEnv(game.with_n(n), 5)
        acts = {a: 0 for a in env.possible_agents}
        reps = max(50, steps // n)
        env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(reps):
            if not env.agents:
                env.reset()
            env.step(acts)
        out.append((f"AltMarlParallelEnv (n={n}, k=5)", (time.perf_counter() - t0) / reps * 1e6))
    return out


def compare(policy_dir: str, args: argparse.Namespace) -> list[str]:
    """Paired differences ``V(method) - V(G-LEARN)`` per ``k`` from the policies a run saved
    (``--out``), on the same evaluation seed (common random numbers)."""
    from pathlib import Path

    game = am.envs.make("warehouse", n=args.n)
    pi_l = am.LocalPolicy.uniform(game)
    out = ["| k | method | V(method) - V(G-LEARN) (± paired s.e.) |", "|---|---|---|"]
    files = sorted(Path(policy_dir).glob("k*_*.npz"))
    ks = sorted({int(f.name[1:].split("_")[0]) for f in files})
    for k in ks:
        ref_file = next(f for f in files if f.name.startswith(f"k{k}_g-learn"))
        ref = _score(game, am.GlobalPolicy.load(ref_file, game), pi_l, args).returns
        for f in files:
            if f.name.startswith(f"k{k}_") and f != ref_file:
                ret = _score(game, am.GlobalPolicy.load(f, game), pi_l, args).returns
                diff = ret - ref
                se = diff.std(ddof=1) / np.sqrt(diff.size)
                method = f.stem.split("_", 1)[1]
                out.append(f"| {k} | {method} | {diff.mean():+.2f} ± {se:.2f} |")
    return out


def markdown(result: dict[str, Any]) -> str:
    """The docs table: value ± stderr, wall time, and time relative to G-LEARN."""
    rows = result["rows"]
    out = ["| k | method | V (± s.e.) | wall time (s) | time / G-LEARN | samples or env steps "
           "| same action as G-LEARN | top-action share | a_g = population mode |",
           "|---|---|---|---|---|---|---|---|---|"]
    for k in result["config"]["ks"]:
        g_times = [r["seconds"] for r in rows if r["k"] == k and r["method"] == "g-learn"]
        g_time = float(np.mean(g_times)) if g_times else float("nan")
        for r in (r for r in rows if r["k"] == k):
            ratio = "" if r["seconds"] == 0 else f"{r['seconds'] / g_time:.1f}x"
            seed = f" (seed {r['seed']})" if "seed" in r else ""
            out.append(f"| {k} | {r['method']}{seed} | {r['value']:.2f} ± {r['stderr']:.2f} | "
                       f"{r['seconds']:.2f} | {ratio} | {r['samples']:,} | "
                       f"{r['agree_g_learn']:.0%} | {r['top_action_share']:.0%} | "
                       f"{r['mode_match_rate']:.0%} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: k=1, 2k steps, few rollouts")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--m", type=int, default=30, help="G-LEARN samples per (s_g, h, a_g)")
    p.add_argument("--steps", type=int, default=200_000, help="SB3 environment steps")
    p.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--rollouts", type=int, default=500)
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--out", type=str, default=None,
                   help="write the results as JSON (and the policies to OUT.policies/)")
    p.add_argument("--speed", action="store_true",
                   help="only time one step of each environment (microseconds) and exit")
    p.add_argument("--compare", type=str, default=None, metavar="DIR",
                   help="only print paired value differences vs G-LEARN for the policies a "
                        "run saved in DIR (OUT.policies/) and exit")
    args = p.parse_args(argv)
    if args.compare:
        print("\n".join(compare(args.compare, args)))
        return 0
    if args.speed:
        print("| environment | us / step |\n|---|---|")
        for label, us in env_speed():
            print(f"| {label} | {us:.0f} |")
        return 0
    if args.quick:
        args.ks, args.steps, args.rollouts, args.horizon = [1], 2048, 32, 50
    t0 = time.perf_counter()
    result = run(args)
    result["total_seconds"] = time.perf_counter() - t0
    result["command"] = " ".join(["python", "benchmarks/bench_sb3.py", *(argv or sys.argv[1:])])
    print()
    print(markdown(result))
    if args.out:
        atomic_write_bytes(args.out, json.dumps(result, indent=2).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
