"""Run a small sweep from Python and read its results (altmarl.experiments).

    python examples/sweep_api.py

The process pool starts workers with ``forkserver``/``spawn``: as with any
``multiprocessing`` program, the entry point must be guarded by ``if __name__ ==
"__main__"``.
"""

from __future__ import annotations

from altmarl.experiments import parse_config, run_sweep


def main() -> None:
    cfg = parse_config({
        "name": "random-api",
        "seed": 0,
        "env": {"name": "random", "params": {"n_sg": 2, "n_ag": 3, "n_sl": 3, "n_al": 2, "n": 50}},
        "algorithm": {"sweeps": 3, "m": 10, "local_solver": "induced-vi"},
        "evaluation": {"seeds": 4, "rollouts": 32, "horizon": 50},
        "sweep": {"k": [1, 2, 4, 8], "train_seeds": 2},
    })
    report = run_sweep(cfg, "runs/random-api", workers=2, resume=True)
    for row in report.summary["per_k"]:
        print(f"k = {row['k']:2d}: V = {row['mean']:.3f} +- {row['std']:.3f} "
              f"({row['evaluations']} evaluations)")
    print("plots:", *report.plots, sep="\n  ")


if __name__ == "__main__":  # required: worker processes re-import this module
    main()
