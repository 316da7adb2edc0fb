"""altmarl side by side with the authors' public code (github.com/emiletimothy/alternating-marl,
MIT) on the same work and the same warehouse tables (SPEC 8.1).

This script fetches nothing. Point it at a checkout of the authors' repository (the
directory holding ``scripts/global_agent_optimizer.py``) with ``--authors PATH`` or the
environment variable ``ALTMARL_AUTHORS_REPO``; without one it reports altmarl's figures
alone. Work items:

* ``glearn-K`` — G-LEARN under the uniform ``pi_l`` at ``k = K`` (``--k``, default 10 30 50).
  altmarl: ``am.g_learn(game, pi_l, k, m=30, tol=1e-6)`` (30 sampled successors per
  entry, solved to ``1e-6``) with ``threads=1`` and ``threads=2`` (the default on two
  cores; the same numbers); authors: ``GlobalAgentOptimizer`` with their settings (one
  rounded mean-field successor, at most 100 value-iteration sweeps);
  A third row runs altmarl with ``exact_global=True`` (the next global state averaged
  exactly, the next histograms sampled as in the default; a different estimator);
* ``vi-K`` — ten value-iteration sweeps at ``k = K`` (``--vi-k``, default 30) on an
  operator built before the clock: altmarl's ``solver="vi"`` (``m = 30`` samples per entry)
  vs the authors' ``_run_vi`` (one rounded successor); the table's seconds are per sweep;
* ``evaluate`` — the same policy pair (altmarl's G-LEARN policy at ``k = 10``, uniform
  ``pi_l``), 250 rollouts x 100 steps, ``n = 1000``: ``am.evaluate`` (1 and 2 threads) vs
  ``AlternatingMARL.evaluate`` (per-agent simulation);
* ``alternating-K`` — ALTERNATING-MARL training at ``k = K`` (``--alt-k``, default 10):
  ``am.alternating_marl(game, k, seed=0)`` with its defaults (``direct`` L-LEARN) vs
  ``AlternatingMARL.train()`` (their 5-iteration protocol, induced-VI quality); after the
  clock both results are valued by the same ``am.evaluate`` (250 x 100, one seed), with
  its standard error. The default direct search scores candidates on the mean-field
  population (``objective="auto"``, ``n >= 100``); a third row runs altmarl with
  ``l_options={"objective": "crn"}``, the previous default (the count simulator's law with
  common random numbers);
* ``ksweep`` — the k-sweep end to end, ``k in {1, 10, 20, 30, 40, 50}`` (``--sweep-k``):
  the authors' protocol of ``scripts/marl_example.py`` (for each ``k``: ``train()``, then
  ``evaluate`` on 10 seeds, their default rollouts and horizon) vs altmarl's ``reproduce``
  settings (``configs/warehouse_table3.toml``: 10 sweeps, ``m = 30``, induced-VI, 15
  evaluation seeds x 50 rollouts x 100 steps) run by ``run_sweep`` with 2 worker processes
  (``altmarl (2 workers)``) and with 1; wall seconds (the workers' CPU is not charged to
  the parent process).

Every run is a fresh subprocess (wall and CPU seconds of the call, peak resident memory of
the process). Repetitions are interleaved (authors, altmarl, authors, altmarl, ...) and
reported as medians, with the load average at the start and at the end; the machine may be
shared, so quote the ratio, not the seconds. altmarl's Numba kernels are loaded before the
clock starts (their one-time cost per process, compilation or cache load, is reported in
the ``warm-up`` column).

Usage::

    python benchmarks/bench_authors.py                           # altmarl alone
    python benchmarks/bench_authors.py --authors ~/alternating-marl
    ALTMARL_AUTHORS_REPO=~/alternating-marl python benchmarks/bench_authors.py --reps 5
    python benchmarks/bench_authors.py --quick                   # k = 10 and 30, 2 repetitions
    python benchmarks/bench_authors.py --only glearn-10 evaluate --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import limit_blas, load, machine, print_table  # noqa: E402

ENV_VAR = "ALTMARL_AUTHORS_REPO"


# ---------------------------------------------------------------------------
# the work, run in a child process
# ---------------------------------------------------------------------------


def _game() -> Any:
    import altmarl as am

    return am.envs.make("warehouse", n=1000)


def _authors_modules(repo: str) -> tuple[Any, Any]:
    scripts = Path(repo).expanduser().resolve() / "scripts"
    sys.path.insert(0, str(scripts))
    import alternating_marl  # type: ignore[import-not-found]
    import global_agent_optimizer  # type: ignore[import-not-found]

    return global_agent_optimizer, alternating_marl


def _authors_alg(repo: str, game: Any, k: int) -> Any:
    """The authors' ``AlternatingMARL`` on altmarl's warehouse tables."""
    _, alt = _authors_modules(repo)
    return alt.AlternatingMARL(
        n_sg=game.n_sg, n_sl=game.n_sl, n_ga=game.n_ag, n_al=game.n_al, n_agents=game.n,
        k=k, gamma=game.gamma,
        P_g=lambda s, a: game.P_g[s, a], P_l=lambda x, s, a: game.P_l[x, s, a],
        r_g=lambda s, a: float(game.r_g[s, a]), r_l=lambda x, s, a: float(game.r_l[x, s, a]))


def _authors_policies(game: Any, alg: Any) -> tuple[Any, Any]:
    """The authors' policy dictionaries as altmarl policies (unseen histograms: action 0,
    as in their ``evaluate``)."""
    import numpy as np

    import altmarl as am
    from altmarl.histogram import enumerate_histograms

    hists = enumerate_histograms(alg.k, game.n_sl)
    acts = np.array([[alg.pi_g.get(s, {}).get(tuple(int(v) for v in h), 0) for h in hists]
                     for s in range(game.n_sg)], dtype=np.int64)
    table = np.array([[alg.pi_l[s][x] for s in range(game.n_sg)] for x in range(game.n_sl)])
    return (am.GlobalPolicy(alg.k, acts, game.n_ag, game=game),
            am.LocalPolicy(table / table.sum(axis=-1, keepdims=True), game=game))


def _warm_kernels(threads: int = 1) -> float:
    """Load altmarl's Numba kernels (compile or read the on-disk cache; ``threads > 1``:
    the row-parallel ones too); seconds taken."""
    from altmarl.glearn import kernels

    return kernels.warm_up(threads)


def _altmarl_pi_g(game: Any, k: int, exact_global: bool = False, threads: int = 1) -> Any:
    import altmarl as am

    return am.g_learn(game, am.LocalPolicy.uniform(game), k, m=30, seed=0, tol=1e-6,
                      exact_global=exact_global, threads=threads)


def _ksweep(cfg: dict[str, Any], game: Any) -> Any:
    """The ``ksweep`` work item's function: the authors' protocol or altmarl's sweep."""
    ks = [int(v) for v in cfg["ks"]]
    if cfg["impl"] == "authors":
        def authors() -> None:
            for k in ks:
                alg = _authors_alg(cfg["repo"], game, k)
                alg.train()
                for s in range(10):
                    alg.evaluate(seed=s)

        return authors
    import tempfile

    import altmarl as am
    from altmarl.experiments.config import load_config
    from altmarl.experiments.sweep import run_sweep

    conf = load_config(Path(am.__file__).parent / "configs" / "warehouse_table3.toml")
    conf = conf.with_overrides(k=ks)
    workers = int(cfg.get("workers", 2))

    def ours() -> None:
        with tempfile.TemporaryDirectory() as d:
            run_sweep(conf, Path(d) / "run", workers=workers, plots=False, progress=False)

    return ours


#: value-iteration sweeps timed by the ``vi-K`` work item
VI_SWEEPS = 10


def child(cfg: dict[str, Any]) -> None:
    """Run one (work, implementation) pair and print one JSON line."""
    import warnings

    import numpy as np

    import altmarl as am

    limit_blas(1)
    warnings.simplefilter("ignore")
    game = _game()
    work, impl, k = cfg["work"], cfg["impl"], int(cfg["k"])
    out: dict[str, Any] = {**cfg, "warmup_s": 0.0}
    pi_l = am.LocalPolicy.uniform(game)
    if impl == "altmarl":
        out["warmup_s"] = _warm_kernels(1 if work == "ksweep" else int(cfg.get("workers", 1)))
    fn: Any
    if work in ("glearn", "vi"):
        if impl == "authors":
            gao, _ = _authors_modules(cfg["repo"])
            K = game.local_kernel(pi_l.table)
            rbar = game.local_reward(pi_l.table)

            def build(max_iter: int) -> Any:
                return gao.GlobalAgentOptimizer(
                    n_sg=game.n_sg, n_sl=game.n_sl, n_ga=game.n_ag, k=k, gamma=game.gamma,
                    P_g=lambda s, a: game.P_g[s, a], P_l_pi=lambda x, s: K[x, s],
                    r_g=lambda s, a: float(game.r_g[s, a]),
                    r_l_pi=lambda x, s: float(rbar[x, s]), n_mc=30, max_iter=max_iter,
                    tol=1e-6)

            if work == "glearn":
                def fn() -> Any:
                    return build(100)
            else:
                opt = build(1)

                def fn() -> Any:
                    return opt._run_vi(VI_SWEEPS, 0.0)
        elif work == "glearn":
            def fn() -> Any:
                return _altmarl_pi_g(game, k, bool(cfg.get("exact_global", False)),
                                     int(cfg.get("workers", 1)))
        else:
            from altmarl.glearn.operator import empirical_operator
            from altmarl.glearn.solvers import solve

            o = am.GLearnOptions(m=30, solver="vi", max_iter=VI_SWEEPS,
                                 exact_global=bool(cfg.get("exact_global", False)),
                                 threads=int(cfg.get("workers", 1)))
            op = empirical_operator(game, pi_l, k, 0, o)
            solve(op, o.replace(max_iter=1))  # first product outside the clock, as for theirs

            def fn() -> Any:
                return solve(op, o)
    elif work == "evaluate":
        pi_g = _altmarl_pi_g(game, k)
        if impl == "authors":
            alg = _authors_alg(cfg["repo"], game, k)
            from altmarl.histogram import enumerate_histograms

            hists = enumerate_histograms(k, game.n_sl)
            alg.pi_g = {s: {tuple(int(v) for v in h): int(pi_g.actions[s, i])
                            for i, h in enumerate(hists)} for s in range(game.n_sg)}
            alg.pi_l = {s: {x: pi_l.table[x, s].copy() for x in range(game.n_sl)}
                        for s in range(game.n_sg)}

            def fn() -> Any:
                return alg.evaluate(n_rollouts=250, horizon=100, seed=0)
        else:
            workers = int(cfg.get("workers", 1))
            am.evaluate(game, pi_g, pi_l, rollouts=20, horizon=5, seed=1, workers=workers)

            def fn() -> Any:
                return am.evaluate(game, pi_g, pi_l, rollouts=250, horizon=100, seed=0,
                                   workers=workers).mean
    elif work == "alternating":
        if impl == "authors":
            alg = _authors_alg(cfg["repo"], game, k)

            def fn() -> Any:
                alg.train()
                return _authors_policies(game, alg)
        else:
            l_options = {"objective": cfg["objective"]} if cfg.get("objective") else None
            # load the search kernels before the clock (~0.3 s; a one-sweep k = 1 run)
            am.alternating_marl(game, 1, seed=0, sweeps=1, progress=False, l_options=l_options)

            def fn() -> Any:
                res = am.alternating_marl(game, k, seed=0, progress=False, l_options=l_options)
                return res.pi_g, res.pi_l
    elif work == "ksweep":
        fn = _ksweep(cfg, game)
    else:
        raise SystemExit(f"unknown work {work!r}")
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    out["wall_s"] = time.perf_counter() - t0
    out["cpu_s"] = time.process_time() - c0
    if work == "vi":  # seconds per sweep (altmarl's solve adds one backup: the true residual)
        sweeps = VI_SWEEPS + (1 if impl == "altmarl" else 0)
        out["wall_s"] /= sweeps
        out["cpu_s"] /= sweeps
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["value"] = float(result) if isinstance(result, float) else float(np.nan)
    if work == "alternating":  # both results valued by the same evaluator, after the clock
        ev = am.evaluate(game, result[0], result[1], rollouts=250, horizon=100, seed=12345)
        out["value"], out["stderr"] = ev.mean, ev.stderr
    print(json.dumps(out))


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------


def _value(rs: list[dict[str, Any]]) -> str:
    """The work's value (median over repetitions; with its standard error when given)."""
    v = statistics.median(r["value"] for r in rs)
    if v != v:  # nan: no value for this work
        return ""
    se = [r["stderr"] for r in rs if "stderr" in r]
    return f"{v:.2f}" + (f" ± {statistics.median(se):.2f}" if se else "")


def run_child(cfg: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)],
                       capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{cfg}: child failed\n{p.stderr[-2000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def items(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    out = [(f"glearn-{k}", {"work": "glearn", "k": k}) for k in args.k]
    out += [(f"vi-{k}", {"work": "vi", "k": k}) for k in args.vi_k]
    out.append(("evaluate", {"work": "evaluate", "k": 10}))
    out += [(f"alternating-{k}", {"work": "alternating", "k": k}) for k in args.alt_k]
    out.append(("ksweep", {"work": "ksweep", "k": 0, "ks": args.sweep_k}))
    if args.only:
        out = [it for it in out if it[0] in args.only]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--authors", default=os.environ.get(ENV_VAR),
                    help=f"checkout of the authors' repository (default ${ENV_VAR})")
    ap.add_argument("--k", type=int, nargs="+", default=[10, 30, 50])
    ap.add_argument("--alt-k", type=int, nargs="+", default=[10])
    ap.add_argument("--vi-k", type=int, nargs="+", default=[30])
    ap.add_argument("--sweep-k", type=int, nargs="+", default=[1, 10, 20, 30, 40, 50],
                    help="the k values of the ksweep work item")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median)")
    ap.add_argument("--quick", action="store_true", help="k = 10 and 30, 2 repetitions")
    ap.add_argument("--only", nargs="+", help="work items to run (e.g. glearn-10 evaluate)")
    ap.add_argument("--json", help="also write the raw runs to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.quick:
        args.k, args.reps = [10, 30], 2
    repo = args.authors
    if repo and not (Path(repo).expanduser() / "scripts" / "global_agent_optimizer.py").is_file():
        raise SystemExit(f"--authors {repo}: not a checkout of the authors' repository "
                         "(no scripts/global_agent_optimizer.py)")
    print(machine())
    print(limit_blas(1))
    print("authors' code:", repo or f"not given (--authors PATH or ${ENV_VAR}): altmarl alone")
    load0 = load()
    runs: list[dict[str, Any]] = []
    rows = []
    for name, base in items(args):
        impls: list[dict[str, Any]] = []
        if repo:
            impls.append({"impl": "authors", "repo": str(Path(repo).expanduser())})
        if base["work"] == "ksweep":
            impls += [{"impl": "altmarl", "workers": 2}, {"impl": "altmarl", "workers": 1}]
        else:
            impls.append({"impl": "altmarl"})
        if base["work"] in ("evaluate", "glearn"):
            impls.append({"impl": "altmarl", "workers": 2})
        if base["work"] in ("glearn", "vi"):
            impls.append({"impl": "altmarl", "exact_global": True})
        if base["work"] == "alternating":
            impls.append({"impl": "altmarl", "objective": "crn"})
        got: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(impls))}
        for _ in range(args.reps):
            for i, extra in enumerate(impls):  # interleaved: A B A B ...
                r = run_child({**base, **extra})
                print(f"  {name} {extra.get('impl')} {extra.get('workers', '')}: "
                      f"{r['wall_s']:.3f} s", file=sys.stderr, flush=True)
                got[i].append(r)
                runs.append(r)
        ref = statistics.median(r["wall_s"] for r in got[0]) if repo else None
        ref_cpu = statistics.median(r["cpu_s"] for r in got[0]) if repo else None
        for i, extra in enumerate(impls):
            rs = got[i]
            wall = statistics.median(r["wall_s"] for r in rs)
            w = extra.get("workers")
            unit = "worker" if base["work"] == "ksweep" else "thread"
            label = extra["impl"] + (f" ({w} {unit}{'s' if w != 1 else ''})" if w else "")
            label += " (exact_global)" if extra.get("exact_global") else ""
            label += f" (objective {extra['objective']})" if extra.get("objective") else ""
            label += " (s per sweep)" if base["work"] == "vi" else ""
            cpu = statistics.median(r["cpu_s"] for r in rs)
            # worker processes' CPU is not charged to the child: no CPU ratio
            multi = base["work"] == "ksweep" and (w or 1) > 1
            rows.append([name, label, f"{wall:.4g}", f"{cpu:.4g}",
                         f"{statistics.median(r['peak_rss_mb'] for r in rs):.0f}",
                         f"{statistics.median(r['warmup_s'] for r in rs):.2f}",
                         _value(rs),
                         "" if ref is None else f"{ref / wall:.2f}",
                         "" if ref_cpu is None or multi else f"{ref_cpu / cpu:.2f}"])
    print(f"\nload at the start: {load0}; at the end: {load()}; {args.reps} interleaved "
          "repetitions, medians\n")
    print_table("altmarl and the authors' code, same work", ["work", "code", "wall s", "cpu s", "peak MB", "warm-up s", "value",
                 "speed-up vs authors (wall)", "(CPU)"], rows)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
