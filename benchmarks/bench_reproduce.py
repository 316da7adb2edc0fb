"""End-to-end time of ``altmarl reproduce warehouse --quick`` (issue 11).

    python benchmarks/bench_reproduce.py [--quick] [--repeats N] [--workers N]

Runs the command line exactly as a user would (a subprocess of the installed ``altmarl``
entry point, a fresh run directory each time) and reports the wall time, the per-unit
training wall and CPU times the command records in ``summary.json`` (its units run in a
process pool whose workers come from a forkserver, so the OS does not charge their CPU to
the command; the main process's own CPU time and peak memory are reported separately). Also times ``altmarl --help`` (interpreter + import
start-up, paid once per command). ``--quick`` runs the command once; otherwise the median
of ``--repeats`` (default 3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402


def altmarl_exe() -> list[str]:
    """The ``altmarl`` entry point next to this interpreter (else ``python -m altmarl``)."""
    exe = Path(sys.executable).with_name("altmarl")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "altmarl"]


def run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; wall seconds, CPU seconds of it and its waited-for children, peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
    return {"wall": wall,
            "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "maxrss_mb": after.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None,
                    help="passed to `altmarl reproduce --workers` (default: the command's)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the last run directory here instead of deleting it")
    args = ap.parse_args()
    reps = 1 if args.quick else max(1, args.repeats)
    print(f"machine: {machine()}")
    exe = altmarl_exe()
    env = dict(os.environ)
    help_runs = [run([*exe, "--help"], env)["wall"] for _ in range(3 if args.quick else 5)]
    results: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench_reproduce_"))
    try:
        for i in range(reps):
            out = workdir / f"run{i}"
            cmd = [*exe, "reproduce", "warehouse", "--quick", "--out", str(out)]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            res = run(cmd, env)
            summary = json.loads((out / "summary.json").read_text())
            if not summary.get("complete", False):
                raise SystemExit(f"run {out} is not complete: {summary.get('missing')}")
            timing = summary.get("timing", {})
            res["train_wall"] = timing.get("total_train_wall_s")
            res["train_cpu"] = sum(float(p.get("train_cpu_s") or 0.0) * summary.get("train_seeds", 1)
                                   for p in timing.get("per_k", []))
            results.append(res)
            print(f"  run {i + 1}/{reps}: {res['wall']:.1f} s wall", flush=True)
        if args.keep is not None and results:
            if args.keep.exists():
                shutil.rmtree(args.keep)
            shutil.copytree(workdir / f"run{reps - 1}", args.keep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    med = {key: statistics.median(r[key] for r in results)
           for key in ("wall", "cpu", "train_wall", "train_cpu")}
    cmd_txt = "altmarl reproduce warehouse --quick" + (
        f" --workers {args.workers}" if args.workers is not None else "")
    print_table(f"end to end: `{cmd_txt}` (median of {reps})",
                ["what", "wall s", "units: sum of training wall s", "units: sum of training CPU s",
                 "main process CPU s", "main process peak RSS MB"],
                [[cmd_txt, med["wall"], med["train_wall"], med["train_cpu"], med["cpu"],
                  f"{max(r['maxrss_mb'] for r in results):.0f}"],
                 ["altmarl --help (start-up)", statistics.median(help_runs), "", "", "", ""]])
    per_k = summary.get("timing", {}).get("per_k", [])
    if per_k:
        rows = [[p["k"], p.get("train_wall_s"), p.get("train_cpu_s"),
                 f"{p['train_wall_s'] / p['train_cpu_s']:.2f}" if p.get("train_cpu_s") else ""]
                for p in per_k]
        print_table("per-k training time recorded by the last run (summary.json)",
                    ["k", "train wall s", "train CPU s", "wall / CPU"], rows)


if __name__ == "__main__":
    main()
