"""This machine's limits and how close altmarl's hot kernels get (docs/performance.md,
"Roofline").

Limits, measured here:

* memory bandwidth, STREAM-style triad ``a = b + s c`` on float64 arrays far larger than
  the caches: in NumPy (two passes, ``np.multiply`` then ``np.add``; STREAM's count of
  24 bytes per element) and in one fused pass (Numba, the same loop as STREAM's C code);
* random-gather rate: ``v[idx]`` for uniform random indices into a float64 table of the
  size of G-LEARN's value vector at ``k = 50`` (12.6 MB), the access pattern of the
  G-LEARN kernels;
* sampler throughput: draws per second of the samplers altmarl uses (32-bit uniform
  integers for G-LEARN, binomials inside ``multinomial`` and hypergeometrics for the
  subsample of the count simulator);
* the cost of new memory: milliseconds per MB to write a fresh 256 MB array in a new
  process (every page faulted in), to write it again, and to write a second array after
  freeing the first (on virtual machines that return freed pages to their host the first
  touch can cost more than the work done on the array).

Kernels, each timed on its real inputs (warehouse, uniform ``pi_l``, ``m = 30``):

* G-LEARN policy matvec and backup (:mod:`altmarl.glearn.kernels`) at ``k = 30`` and
  ``k = 50``: stored samples per second, streamed bytes per second (5 bytes of sample store
  + 8 bytes of value per sample; the fraction of triad bandwidth) and gathers per second
  (the fraction of the random-gather rate);
* G-LEARN next-global-state draws (``sample_global``): uniform draws per second;
* the subsample (``multivariate_hypergeometric`` on 125 rollouts x 5 bins, ``k = 10``):
  hypergeometric draws per second (fraction of one large ``rng.hypergeometric`` call);
* the count simulator (``am.evaluate``, 250 x 100, ``n = 1000``): binomial draws per
  second inside its multinomials (fraction of NumPy's binomial rate at the same ``n p``).

Usage::

    python benchmarks/bench_roofline.py            # ~1-2 minutes on an idle 2-core machine
    python benchmarks/bench_roofline.py --quick    # smaller arrays, k = 30 only

Single thread throughout (BLAS and Numba). The machine may be shared: the load average is
printed; fractions are ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import limit_blas, load, machine, print_table  # noqa: E402


def best(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Fastest of ``repeats`` wall times (the roofline convention: the attainable rate)."""
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def median(fn: Callable[[], Any], repeats: int = 5) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def triad(n: int) -> tuple[float, float]:
    """Triad bandwidth (bytes/s, STREAM's 24 bytes per element): NumPy, fused Numba."""
    import numba

    b = np.random.default_rng(0).random(n)
    c = np.random.default_rng(1).random(n)
    a = np.empty(n)
    s = 3.0

    def np_triad() -> None:
        np.multiply(c, s, out=a)
        np.add(a, b, out=a)

    @numba.njit(nogil=True)
    def nb_triad(a: Any, b: Any, c: Any, s: float) -> None:
        for i in range(a.shape[0]):
            a[i] = b[i] + s * c[i]

    nb_triad(a, b, c, s)
    return 24 * n / best(np_triad), 24 * n / best(lambda: nb_triad(a, b, c, s))


def gather_rate(table: int, n: int) -> tuple[float, float]:
    """Gathers per second ``acc += v[idx[i]]`` (one fused Numba loop) from a float64 table
    of ``table`` entries: uniform random indices (every access a cache miss: the latency
    roof of a gather kernel) and the same indices sorted (every cache line used fully)."""
    import numba

    @numba.njit(nogil=True)
    def gather(v: Any, idx: Any) -> float:
        acc = 0.0
        for i in range(idx.shape[0]):
            acc += v[idx[i]]
        return acc

    v = np.random.default_rng(0).random(table)
    idx = np.random.default_rng(1).integers(0, table, n).astype(np.int32)
    srt = np.sort(idx)
    gather(v, idx)
    return n / best(lambda: gather(v, idx)), n / best(lambda: gather(v, srt))


_TOUCH = """
import sys, time
import numpy as np
mb = int(sys.argv[1])
t = time.perf_counter(); a = np.empty(mb << 20, dtype=np.uint8); a[:] = 1
first = time.perf_counter() - t
t = time.perf_counter(); a[:] = 2
again = time.perf_counter() - t
del a
t = time.perf_counter(); b = np.empty(mb << 20, dtype=np.uint8); b[:] = 1
reused = time.perf_counter() - t
print(first, again, reused)
"""


def first_touch(mb: int = 256) -> tuple[float, float, float]:
    """Seconds per MB, in a fresh process, to write ``mb`` MB of new memory (every page
    faulted in), to write it again, and to write a new array of the same size after the
    first is freed: what allocating a large array costs before any work is done on it."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _TOUCH, str(mb)], capture_output=True,
                         text=True, check=True, timeout=300).stdout.split()
    first, again, reused = (float(v) / mb for v in out)
    return first, again, reused


def sampler_rates(n: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    out = {"uint32 uniform (rng.integers)": n / best(
        lambda: rng.integers(0, 2**32, size=n, dtype=np.uint32))}
    for np_ in (13, 60):  # inversion (n p < 30) and BTPE regimes
        cnt = np.full(n // 10, 200 if np_ == 13 else 900)
        p = np_ / cnt[0]
        out[f"binomial, n p = {np_} (rng.binomial)"] = cnt.size / best(
            lambda cnt=cnt, p=p: rng.binomial(cnt, p))
    # the subsample's first colour: 10 of 1000 agents, 200 of them in the bin (HRUA regime)
    hg = np.full(n // 10, 200)
    out["hypergeometric, 10 of 1000 (rng.hypergeometric)"] = hg.size / best(
        lambda: rng.hypergeometric(hg, 800, 10))
    return out


def subsample_rate() -> float:
    """Hypergeometric draws per second of ``multivariate_hypergeometric`` on the count
    simulator's shape (125 rollouts x 5 bins of the warehouse, k = 10 of n = 1000)."""
    from altmarl.sampling import multivariate_hypergeometric

    rng = np.random.default_rng(0)
    counts = rng.multinomial(1000, np.full(5, 0.2), size=125)
    multivariate_hypergeometric(counts, 10, rng)
    t = best(lambda: [multivariate_hypergeometric(counts, 10, rng) for _ in range(100)])
    return 100 * 125 * 4 / t


def glearn_kernels(k: int) -> dict[str, float]:
    import altmarl as am
    from altmarl.glearn import kernels
    from altmarl.glearn.draws import sample_global
    from altmarl.glearn.operator import empirical_operator
    from altmarl.glearn.options import GLearnOptions

    game = am.envs.make("warehouse", n=1000)
    op = empirical_operator(game, am.LocalPolicy.uniform(game), k, seed=0,
                            options=GLearnOptions(m=30, threads=1))
    M = op.model
    M.fused = True
    S, N, A, m = M.n_sg, M.n_states, M.n_ag, M.m
    rng = np.random.default_rng(0)
    V = rng.random((S, N))
    acts = rng.integers(0, A, (S, N))
    mv = M.policy_matrix(acts)
    x = V.ravel()
    mv(x)
    M.expect(V)
    t_pol = median(lambda: mv(x))
    t_exp = median(lambda: M.expect(V), 3)
    ss = np.random.SeedSequence(1)
    sample_global(N, m, game.P_g, ss, kernels.use_fused(S * N * m))
    t_sg = median(lambda: sample_global(N, m, game.P_g, ss, kernels.use_fused(S * N * m)), 3)
    per_pol = S * N * m
    # exact_global=True: the same next local states, 4 B each, and a row of W per sample
    eg = empirical_operator(game, am.LocalPolicy.uniform(game), k, seed=0,
                            options=GLearnOptions(m=30, exact_global=True, threads=1)).model
    eg.fused = True
    mv_eg = eg.policy_matrix(acts)
    mv_eg(x)
    eg.expect(V)
    t_pol_eg = median(lambda: mv_eg(x))
    t_exp_eg = median(lambda: eg.expect(V), 3)
    return {
        "policy_eg_samples_per_s": per_pol / t_pol_eg,
        "policy_eg_bytes_per_s": per_pol * 12 / t_pol_eg,  # 4 B nxt + 8 B value
        "expect_eg_samples_per_s": per_pol * A / t_exp_eg,
        "expect_eg_bytes_per_s": per_pol * (4 + 8 * A) / t_exp_eg,  # one W row per sample
        "N": N,
        "policy_samples_per_s": per_pol / t_pol,
        "policy_bytes_per_s": per_pol * 13 / t_pol,  # 4 B nxt + 1 B sg + 8 B value
        "expect_samples_per_s": per_pol * A / t_exp,
        # the backup reads each row's next local states once for all a_g: 4 + A (1 + 8) B
        "expect_bytes_per_s": per_pol * (4 + A * 9) / t_exp,
        "sample_global_draws_per_s": S * N * A * m / t_sg,
    }


def evaluate_binomials() -> tuple[float, float]:
    """Binomial draws per second inside ``am.evaluate`` (250 x 100, n = 1000), and the
    evaluation's wall time."""
    import altmarl as am

    game = am.envs.make("warehouse", n=1000)
    pi_l = am.LocalPolicy.uniform(game)
    pi_g = am.g_learn(game, pi_l, 10, m=30, seed=0)
    am.evaluate(game, pi_g, pi_l, rollouts=20, horizon=5, workers=1)
    t = median(lambda: am.evaluate(game, pi_g, pi_l, rollouts=250, horizon=100, seed=0,
                                   workers=1), 3)
    # one multinomial per (rollout, step, bin) over |A_l| |S_l| cells: |A_l||S_l| - 1
    # conditional binomials each
    draws = 250 * 100 * game.n_sl * (game.n_al * game.n_sl - 1)
    return draws / t, t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(machine())
    print(limit_blas(1))
    import numba

    numba.set_num_threads(1)
    # first, before this script's own large arrays are freed and make the host's pages warm
    # for the next process: what a fresh process pays for new memory now (the first of
    # three fresh processes), and once the pages are warm (the median of the other two)
    touch = [first_touch(256) for _ in range(3)]
    t_first, t_again, t_reused = touch[0][0], touch[0][1], touch[0][2]
    t_warm = statistics.median([t[0] for t in touch[1:]])
    n = (1 << 23) if args.quick else (1 << 25)
    np_bw, nb_bw = triad(n)
    g_rate, g_sorted = gather_rate(316_251 * 5, 1 << 24)
    samp = sampler_rates(1 << 22)
    print_table("limits of this machine (one thread)", ["limit", "value"], [
        [f"triad bandwidth, NumPy (2 passes), {n * 8 >> 20} MB arrays", f"{np_bw / 1e9:.2f} GB/s"],
        ["triad bandwidth, fused one pass (Numba)", f"{nb_bw / 1e9:.2f} GB/s"],
        ["gathers from a 12.6 MB float64 table, random indices", f"{g_rate / 1e6:.0f} M/s"],
        ["gathers from the same table, sorted indices", f"{g_sorted / 1e6:.0f} M/s"],
        *[[name, f"{v / 1e6:.1f} M draws/s"] for name, v in samp.items()],
        ["writing 256 MB of new memory in a fresh process (page faults)",
         f"{t_first * 1e3:.2f} ms/MB"],
        ["writing it again / a new array after freeing the first",
         f"{t_again * 1e3:.2f} / {t_reused * 1e3:.2f} ms/MB"],
        ["new memory in the next fresh processes (pages just freed)",
         f"{t_warm * 1e3:.2f} ms/MB"],
    ])
    rows = []
    for k in ([30] if args.quick else [30, 50]):
        r = glearn_kernels(k)
        rows += [
            [f"G-LEARN policy matvec, k = {k} (N = {r['N']:,})",
             f"{r['policy_samples_per_s'] / 1e6:.0f} M samples/s",
             f"{r['policy_bytes_per_s'] / 1e9:.2f} GB/s = {r['policy_bytes_per_s'] / nb_bw:.0%} of triad",
             f"{r['policy_samples_per_s'] / g_rate:.0%} of random-gather rate, "
             f"{r['policy_samples_per_s'] / g_sorted:.0%} of sorted"],
            [f"G-LEARN backup (all a_g), k = {k}",
             f"{r['expect_samples_per_s'] / 1e6:.0f} M samples/s",
             f"{r['expect_bytes_per_s'] / 1e9:.2f} GB/s = {r['expect_bytes_per_s'] / nb_bw:.0%} of triad",
             f"{r['expect_samples_per_s'] / g_rate:.0%} of random-gather rate, "
             f"{r['expect_samples_per_s'] / g_sorted:.0%} of sorted"],
            [f"G-LEARN policy matvec, exact_global, k = {k}",
             f"{r['policy_eg_samples_per_s'] / 1e6:.0f} M samples/s",
             f"{r['policy_eg_bytes_per_s'] / 1e9:.2f} GB/s = "
             f"{r['policy_eg_bytes_per_s'] / nb_bw:.0%} of triad",
             f"{r['policy_eg_samples_per_s'] / g_rate:.0%} of random-gather rate"],
            [f"G-LEARN backup (all a_g), exact_global, k = {k}",
             f"{r['expect_eg_samples_per_s'] / 1e6:.0f} M samples/s",
             f"{r['expect_eg_bytes_per_s'] / 1e9:.2f} GB/s = "
             f"{r['expect_eg_bytes_per_s'] / nb_bw:.0%} of triad",
             f"{r['expect_eg_samples_per_s'] / g_rate:.0%} of random-gather rate"],
            [f"G-LEARN next global states, k = {k}",
             f"{r['sample_global_draws_per_s'] / 1e6:.0f} M draws/s", "",
             f"{r['sample_global_draws_per_s'] / samp['uint32 uniform (rng.integers)']:.0%} "
             "of the uint32 sampler"],
        ]
    sub = subsample_rate()
    rows.append(["subsample kernel (multivariate hypergeometric), 125 x 5 bins, k = 10",
                 f"{sub / 1e6:.1f} M draws/s", "",
                 f"{sub / samp['hypergeometric, 10 of 1000 (rng.hypergeometric)']:.0%} of "
                 "rng.hypergeometric (one large array call)"])
    bin_rate, t_eval = evaluate_binomials()
    rows.append([f"count simulator, 250 x 100, n = 1000 ({t_eval:.3f} s)",
                 f"{bin_rate / 1e6:.1f} M binomials/s", "",
                 f"{bin_rate / samp['binomial, n p = 13 (rng.binomial)']:.0%} of rng.binomial "
                 "at n p = 13"])
    print_table("hot kernels against those limits", ["kernel", "rate", "bandwidth",
                                                      "fraction of its limit"], rows)
    print(f"\n{load()} at the end")


if __name__ == "__main__":
    main()
