"""Run the benchmark suite and print every table (issue 11).

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--with NAME ...] [--out FILE.md]

Each benchmark is its own script (runnable alone); this driver runs them one after the
other in subprocesses (so one's memory does not disturb the next), prints their tables
and optionally writes everything to a Markdown file. The default suite:

* ``simulate``  count simulator vs n, vs the per-agent simulator, vs |S_l|; before/after
* ``g_learn``   G-LEARN time and memory vs k, mean-field vs standard, vs |S_l|
* ``exact``     exact solver: build, value, best responses vs n
* ``l_learn``   L-LEARN solvers (induced-vi, direct, chained): time, samples, value; before/after
* ``reproduce`` ``altmarl reproduce warehouse --quick`` end to end

Opt-in (``--with NAME`` or ``--only NAME``; long): ``warehouse_k`` (paper's reward vs k,
ours vs induced-vi), ``sb3`` (Stable-Baselines3 vs G-LEARN, ~40 min), ``continuous``.

BLAS is limited to one thread in every benchmark (``--blas-threads`` to change): on a
shared machine BLAS's own threads oversubscribe the cores (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import machine  # noqa: E402

#: the last commit before the issue-11 optimizations of simulate.py and l_learn.py: the
#: "before" of the before/after tables (read with ``git show``, nothing is checked out)
BEFORE_REF = "ba5ab0b"

#: name -> (script, extra args in full mode, extra args in quick mode, in the default suite)
SUITE: dict[str, tuple[str, list[str], list[str], bool]] = {
    "simulate": ("bench_simulate.py", ["--compare-ref", BEFORE_REF],
                 ["--quick", "--compare-ref", BEFORE_REF], True),
    "g_learn": ("bench_g_learn.py", [], ["--quick"], True),
    "exact": ("bench_exact.py", [], ["--quick"], True),
    "l_learn": ("bench_l_learn.py", ["--compare-ref", BEFORE_REF],
                ["--quick", "--compare-ref", BEFORE_REF], True),
    "reproduce": ("bench_reproduce.py", [], ["--quick"], True),
    "sampling": ("bench_sampling.py", [], ["--quick"], True),
    "warehouse_k": ("bench_warehouse_k.py", [], ["--quick"], False),
    "sb3": ("bench_sb3.py", [], ["--quick"], False),
    "continuous": ("bench_continuous.py", [], ["--quick"], False),
    "tracking": ("bench_tracking.py", [], ["--quick"], False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short versions of every benchmark")
    ap.add_argument("--only", nargs="*", choices=sorted(SUITE), help="run only these")
    ap.add_argument("--with", dest="extra", nargs="*", default=[], choices=sorted(SUITE),
                    help="add opt-in benchmarks to the default suite")
    ap.add_argument("--out", type=Path, help="also write the output to this Markdown file")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS/OpenMP threads in the benchmarks (default 1)")
    args = ap.parse_args()
    names = args.only or [n for n, spec in SUITE.items() if spec[3] or n in args.extra]
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.blas_threads)
    head = (f"machine: {machine()}\nmode: {'quick' if args.quick else 'full'}; "
            f"BLAS threads: {args.blas_threads}")
    print(head, flush=True)
    chunks: list[str] = [f"# altmarl benchmarks\n\n{head}\n"]
    failed = []
    t_all = time.perf_counter()
    for name in names:
        script, full, quick, _ = SUITE[name]
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        shown = f"python benchmarks/{script} {' '.join(cmd[2:])}".strip()
        print(f"\n## {name}: {shown}", flush=True)
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t
        out = proc.stdout + (f"\n(stderr)\n{proc.stderr[-2000:]}" if proc.returncode else "")
        print(out, flush=True)
        print(f"({name}: {dt:.1f} s, exit {proc.returncode})", flush=True)
        chunks.append(f"## {name}\n\n`{shown}` ({dt:.0f} s)\n\n{out}\n")
        if proc.returncode:
            failed.append(name)
    print(f"\nsuite: {time.perf_counter() - t_all:.0f} s; {machine()}")
    if args.out:
        from altmarl.io import atomic_write_bytes

        atomic_write_bytes(args.out, "\n".join(chunks).encode())
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
