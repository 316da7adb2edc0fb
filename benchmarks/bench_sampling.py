"""Count-simulator cost under the sampling schemes (issue 20, SPEC 12).

    python benchmarks/bench_sampling.py [--quick]

Times the count simulator (``evaluate``'s chunks, one thread, a fixed joint policy) under
``Uniform(k)``, ``Weighted(w, k)`` (unequal weights: the exponential-race sampler) and, on the
two-type warehouse, ``Stratified`` at the same total ``k``, for ``n = 10^3 .. 10^9``.
The issue's target: every scheme within 1.5x of uniform sampling at the same ``k``.
Repeats are interleaved (the machine is shared): the table quotes ratios.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _common import interleaved, limit_blas, machine, print_table  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.evaluation import CHUNK  # noqa: E402
from altmarl.generative.simulator import chunk_sizes  # noqa: E402
from altmarl.sampling import Stratified, Uniform, Weighted  # noqa: E402

TARGET = 1.5


def run(game, pi_g, pi_l, R, H, sampling, seed=0):  # type: ignore[no-untyped-def]
    """``evaluate``'s chunking (128-rollout chunks, SeedSequence children), one thread."""
    sizes = chunk_sizes(R, CHUNK)
    seqs = np.random.SeedSequence(seed).spawn(len(sizes))
    out = [am.rollout_counts(game, pi_g, pi_l, s, H, np.random.default_rng(q),
                             sampling=sampling).discounted_returns(game.gamma)
           for s, q in zip(sizes, seqs, strict=True)]
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    blas = limit_blas(1)
    R, H = (128, 50) if args.quick else (256, 100)
    reps = 3 if args.quick else 5
    ns = [10**3, 10**6, 10**9] if args.quick else [10**3, 10**5, 10**7, 10**9]
    ks = [5] if args.quick else [5, 10]
    rows = []
    worst = 0.0
    for n in ns:
        wh = am.envs.make("warehouse", n=n)
        typed = am.envs.make("warehouse", n=n, types=2)
        for k in ks:
            pi_l = am.LocalPolicy.uniform(wh)
            pi_g = am.GlobalPolicy.sample_mode(wh, k)
            w = Weighted((4.0, 1.0, 1.0, 1.0, 0.5), k)
            (t_u, t_w), _ = interleaved([
                functools.partial(run, wh, pi_g, pi_l, R, H, None),
                functools.partial(run, wh, pi_g, pi_l, R, H, w)], reps)
            # two-type fleet: a policy on H_k run under Uniform(k) and Stratified(ks)
            pl2 = am.LocalPolicy.uniform(typed)
            pg2 = am.GlobalPolicy.constant(typed, k, 0)
            strat = Stratified(am.sampling.allocate(k, (1, 1), typed.type_counts))
            (t_u2, t_s), _ = interleaved([
                functools.partial(run, typed, pg2, pl2, R, H, Uniform(k)),
                functools.partial(run, typed, pg2, pl2, R, H, strat)], reps)
            worst = max(worst, t_w / t_u, t_s / t_u2)
            rows.append([f"{n:.0e}", k, t_u * 1e3, t_w * 1e3, t_w / t_u, t_u2 * 1e3,
                         t_s * 1e3, t_s / t_u2])
    print_table(f"rollout_counts, {R} rollouts x horizon {H}, one thread ({blas}); "
                f"{machine()}",
                ["n", "k", "uniform ms", "weighted ms", "weighted/uniform",
                 "uniform (2 types) ms", "stratified ms", "stratified/uniform"], rows)
    print(f"\nworst ratio {worst:.2f} (target <= {TARGET}): "
          f"{'met' if worst <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
