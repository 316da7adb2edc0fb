"""Exact solver cost vs n (SPEC 7, issue 11): build, value, best responses.

    python benchmarks/bench_exact.py [--quick]

The exact solver (``altmarl.exact.ExactSolver``) turns the n-agent system into a Markov
chain on ``(s_g, N)`` with ``|S_g| C(n + |S_l| - 1, |S_l| - 1)`` states. For a small
random game (``|S_g| = |A_g| = |A_l| = 2``, ``gamma = 0.9``, seed 0) and growing ``n`` it
times, in one process:

* **build**: ``ExactSolver(game, k)`` (state enumeration, initial law), the
  hypergeometric sample law ``W[N, h]`` and the count transition ``P(N' | N, s_g)``
  (FFT of the generating function) for the uniform ``pi_l``;
* **value**: ``V(pi_g, pi_l)`` (dense LU up to ``dense_limit = 1000`` states, GMRES above);
* **full-info BR**: policy iteration on the chain (global best response seeing ``N``);
* **restricted BR**: exhaustive enumeration of the deterministic ``k``-sample policies;
* **local BR**: exhaustive enumeration of the deterministic shared local policies (no
  stochastic refinement), against a ``pi_g`` that reacts to its sample.

Every figure is the median of several repeats (one in ``--quick``) with BLAS limited to
one thread; a last table shows what a second BLAS thread does to the dense solves on
this (shared) machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _common import interleaved, limit_blas, machine, print_table  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.exact import ExactSolver  # noqa: E402


def _game(d: int, n: int) -> am.TabularGame:
    return am.envs.make("random", n_sg=2, n_ag=2, n_sl=d, n_al=2, n=n, gamma=0.9, seed=0)


def _reacting_pi_g(game: am.TabularGame, k: int) -> am.GlobalPolicy:
    """A fixed global policy whose action depends on the sample (seeded)."""
    nh = am.num_histograms(k, game.n_sl)
    acts = np.random.default_rng(1).integers(0, game.n_ag, size=(game.n_sg, nh))
    acts[:, 0], acts[:, -1] = 0, 1  # make sure it is not constant in h
    return am.GlobalPolicy(k, acts, game.n_ag, game=game)


def one(d: int, n: int, k: int) -> dict[str, Any]:
    """Time every stage once for the game with ``|S_l| = d`` and ``n`` agents."""
    game = _game(d, n)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = _reacting_pi_g(game, k)
    out: dict[str, Any] = {}
    t = time.perf_counter()
    ex = ExactSolver(game, k)
    ex.hypergeometric(k)
    ex.count_transitions(pi_l)
    out["build"] = time.perf_counter() - t
    out["states"] = ex.n_states
    t = time.perf_counter()
    out["value"] = ex.value(pi_g, pi_l)
    out["value_s"] = time.perf_counter() - t
    out["solver"] = "LU" if ex.n_states <= ex.dense_limit else "GMRES"
    t = time.perf_counter()
    bf = ex.full_info_best_response(pi_l)
    out["full_s"], out["full_evals"], out["full_v"] = time.perf_counter() - t, bf.evaluations, bf.value
    t = time.perf_counter()
    br = ex.restricted_best_response(pi_l, method="enumerate")
    out["restr_s"], out["restr_evals"], out["restr_v"] = time.perf_counter() - t, br.evaluations, br.value
    t = time.perf_counter()
    bl = ex.local_best_response(pi_g, method="enumerate", refine=False)
    out["local_s"], out["local_evals"], out["local_v"] = time.perf_counter() - t, bl.evaluations, bl.value
    return out


def sweep(d: int, k: int, ns: list[int], reps: int) -> None:
    rows = []
    prev: dict[str, Any] | None = None
    one(d, ns[0], k)  # warm-up (first-call costs of NumPy/SciPy)
    for n in ns:
        runs = [one(d, n, k)]
        if runs[0]["states"] <= 2000:  # the largest rows run once (they take ~30 s)
            runs += [one(d, n, k) for _ in range(reps - 1)]
        med = {key: float(np.median([r[key] for r in runs])) for key in
               ("build", "value_s", "full_s", "restr_s", "local_s")}
        r0 = runs[0]
        total = sum(med.values())
        growth = "" if prev is None else f"{total / prev['total']:.3g}x for {r0['states'] / prev['states']:.3g}x states"
        rows.append([n, r0["states"], med["build"], f"{med['value_s']:.4g} ({r0['solver']})",
                     f"{med['full_s']:.4g} ({r0['full_evals']})",
                     f"{med['restr_s']:.4g} ({r0['restr_evals']})",
                     f"{med['local_s']:.4g} ({r0['local_evals']})", total, growth,
                     f"{r0['value']:.4f}"])
        prev = {"total": total, "states": r0["states"]}
    print_table(f"ExactSolver cost vs n: random game |S_g|=|A_g|=|A_l|=2, |S_l|={d}, k={k}, "
                f"uniform pi_l (seconds, median of {reps} up to 2000 states, else one run; "
                "in brackets: solver / evaluations)",
                ["n", "chain states", "build s", "value s", "full-info BR s", "restricted BR s",
                 "local BR s", "total s", "growth", "V(pi_g, pi_l)"], rows)


def blas_threads(reps: int) -> None:
    """Dense LU solves (value at ~1000 states; restricted enumeration) with 1 vs 2 BLAS
    threads, interleaved."""
    from altmarl.threads import limit_blas_threads

    rows = []
    for d, n, k in [(2, 499, 2), (3, 30, 1)]:
        game = _game(d, n)
        pi_l = am.LocalPolicy.uniform(game)
        pi_g = _reacting_pi_g(game, k)
        ex = ExactSolver(game, k)
        ex.count_transitions(pi_l)

        def value(th: int, ex: ExactSolver = ex, pi_g: am.GlobalPolicy = pi_g,
                  pi_l: am.LocalPolicy = pi_l) -> float:
            with limit_blas_threads(th):
                return ex.value(pi_g, pi_l)

        def restricted(th: int, ex: ExactSolver = ex, pi_l: am.LocalPolicy = pi_l) -> float:
            with limit_blas_threads(th):
                return ex.restricted_best_response(pi_l, method="enumerate").value

        (v1, v2), _ = interleaved([lambda: value(1), lambda: value(2)], reps)
        (r1, r2), _ = interleaved([lambda: restricted(1), lambda: restricted(2)], max(1, reps // 2))
        rows.append([f"|S_l|={d}, n={n}, k={k}", ex.n_states, v1, v2, v2 / v1, r1, r2, r2 / r1])
    print_table(f"BLAS threads and the dense solves (interleaved, median of {reps})",
                ["game", "chain states", "value s (1 thr)", "value s (2 thr)", "2 thr / 1 thr",
                 "restricted BR s (1 thr)", "restricted BR s (2 thr)", "2 thr / 1 thr"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller n, one repeat")
    args = ap.parse_args()
    print(f"machine: {machine()}; {limit_blas(1)}")
    reps = 1 if args.quick else 3
    sweep(2, 2, [4, 16, 64, 256, 1024] if args.quick else [4, 16, 64, 256, 1024, 2999], reps)
    sweep(3, 1, [4, 8, 16, 32] if args.quick else [4, 8, 16, 32, 64], reps)
    blas_threads(3 if args.quick else 5)


if __name__ == "__main__":
    main()
