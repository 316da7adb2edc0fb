"""The theory experiment (SPEC 7, "Theory to exhibit"; Theorem 4.4, Theorem 4.8, Remark 4.9).

Three parts, one run directory (``altmarl theory [--quick] [--out DIR]``):

(a) ``gap_vs_k.csv`` — for a fixed local policy (uniform), the *full-information gap* of the
    G-LEARN policy, ``gap(k) = V*(full information) - V(pi_hat_k, pi_l)``, computed
    exactly with :class:`altmarl.exact.ExactSolver` on small warehouse-like games
    (``|S_l| = 2`` or ``3``, ``n`` from 30 to 200), for G-LEARN with the exact expectation
    (``m = None``, deterministic) and, on the first game, with ``m`` samples averaged over
    seeds. Theorem 4.4 predicts ``O(1/sqrt(k))``; the log-log slope of ``gap`` vs ``k`` is
    fitted on ``k <= fit_max_frac * n`` (beyond that the sample is a large fraction of the
    population and the finite-population correction makes the gap fall faster, to 0 at
    ``k = n``). Where ``|A_g|^{|S_g| |H_k|}`` is small the exact *restricted* optimum (best
    policy of a ``k``-sample) is also computed, which splits the gap into the price of
    information and G-LEARN's suboptimality within its class.
(b) ``table_size.csv`` — mean-field ``|H_k| = C(k + d - 1, d - 1)`` vs standard ``d^k``
    table sizes (Remark 4.9).
(c) ``cost_vs_n.csv`` — cost vs ``n`` at fixed ``k``: G-LEARN wall time and sample count
    (independent of ``n``) vs the exact solver's chain size and time (grows like
    ``n^{d-1}`` states).

``summary.json`` holds the fitted slopes and the headline numbers; ``plot_theory`` draws
``gap_vs_k.png``, ``table_size.png`` and ``cost_vs_n.png`` from the CSV files.
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, ValidationError

from altmarl import envs
from altmarl.exact import ExactSolver
from altmarl.glearn import g_learn
from altmarl.histogram import effective_k, num_histograms
from altmarl.io import atomic_write_bytes, dict_rows_csv_bytes, write_json
from altmarl.plots.theory import plot_theory
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.progress import Progress
from altmarl.settings import LISTS_AS_TUPLES, StrictConfig, format_validation_errors
from altmarl.threads import limit_blas_threads

# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


#: G-LEARN stopping tolerance in part (a) (``||T_hat Q - Q||_inf``): tight, so that the
#: greedy policies are not decided by solver error
G_LEARN_TOL = 1e-9

PositiveInts = Annotated[tuple[Annotated[int, Field(ge=1)], ...], LISTS_AS_TUPLES]
Seeds = Annotated[tuple[Annotated[int, Field(ge=0)], ...], LISTS_AS_TUPLES]


class GapGame(StrictConfig):
    """One game of part (a): an environment of :mod:`altmarl.envs` and the ``k`` grid."""

    label: str
    env: str
    params: dict[str, Any]
    ks: PositiveInts

    def __init__(self, label: str, env: str, params: dict[str, Any], ks: Any) -> None:
        """``GapGame(label, env, params, ks)``, positionally or by keyword."""
        fields: dict[str, Any] = {"label": label, "env": env, "params": params, "ks": ks}
        super().__init__(**fields)


class TheoryConfig(StrictConfig):
    """Resolved configuration of the theory experiment (written to ``config.json``); a
    frozen, validated model like the experiment files (:mod:`altmarl.experiments.config`).
    Build one with :func:`quick_config` / :func:`full_config`, :func:`parse_theory_config`
    (a mapping, errors name the dotted key) or :meth:`replace`."""

    quick: bool
    seed: int = Field(ge=0)
    gap_games: Annotated[tuple[GapGame, ...], LISTS_AS_TUPLES]
    #: G-LEARN samples for the seeded runs on the first game (``None``: skip them)
    finite_m: int | None = Field(ge=1)
    finite_m_seeds: Seeds
    finite_m_ks: PositiveInts
    #: slope fitted on ``k <= fit_max_frac * n``
    fit_max_frac: float = Field(gt=0)
    #: compute the exact restricted optimum when ``|A_g|^{|S_g||H_k|}`` is at most this
    restricted_max_policies: int = Field(ge=1)
    table_ds: PositiveInts
    table_kmax: int = Field(ge=1)
    cost_env: str
    cost_params: dict[str, Any]
    cost_k: int = Field(ge=1)
    cost_m: int = Field(ge=1)
    cost_glearn_ns: PositiveInts
    cost_exact_ns: PositiveInts
    cost_repeats: int = Field(ge=1)
    max_states: int = Field(default=6000, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)

    def replace(self, **changes: Any) -> TheoryConfig:
        """A copy with some fields replaced, validated again."""
        return parse_theory_config({**dict(self), **changes}, source="replace")


def parse_theory_config(data: Any, source: str = "theory config") -> TheoryConfig:
    """Validate a mapping as a :class:`TheoryConfig`; a ``ValueError`` names each offending
    dotted key (the format of :func:`altmarl.settings.format_validation_errors`)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a table of settings, got {type(data).__name__}")
    try:
        return TheoryConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(format_validation_errors(exc, source, "theory configuration")) from None


def quick_config(seed: int = 0) -> TheoryConfig:
    """Small version (well under a minute): ``|S_l| = 2`` warehouse with ``n = 40``."""
    return parse_theory_config(dict(
        quick=True, seed=seed,
        gap_games=(GapGame("warehouse(zones=2, n=40)", "warehouse",
                           {"n": 40, "zones": 2, "gamma": 0.95},
                           (1, 2, 3, 4, 6, 8, 10, 14, 20, 28, 40)),),
        finite_m=30, finite_m_seeds=(0, 1), finite_m_ks=(1, 2, 4, 10),
        fit_max_frac=0.25, restricted_max_policies=256,
        table_ds=(2, 3, 5), table_kmax=20,
        cost_env="warehouse", cost_params={"zones": 3, "gamma": 0.95}, cost_k=2, cost_m=10,
        cost_glearn_ns=(10, 100, 1000, 100_000), cost_exact_ns=(4, 8, 12, 16),
        cost_repeats=3,
    ), source="theory config")


def full_config(seed: int = 0) -> TheoryConfig:
    """The full experiment (a few minutes on one core)."""
    return parse_theory_config(dict(
        quick=False, seed=seed,
        gap_games=(
            GapGame("warehouse(zones=3, n=30)", "warehouse", {"n": 30, "zones": 3, "gamma": 0.95},
                    (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30)),
            GapGame("warehouse(zones=2, n=200)", "warehouse",
                    {"n": 200, "zones": 2, "gamma": 0.95},
                    (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50, 64, 100, 150, 200)),
        ),
        finite_m=30, finite_m_seeds=(0, 1, 2, 3, 4), finite_m_ks=(1, 2, 3, 4, 6, 8, 12, 15),
        fit_max_frac=0.25, restricted_max_policies=1024,
        table_ds=(2, 3, 5), table_kmax=50,
        cost_env="warehouse", cost_params={"zones": 3, "gamma": 0.95}, cost_k=4, cost_m=30,
        cost_glearn_ns=(10, 100, 1000, 10_000, 1_000_000),
        cost_exact_ns=(5, 10, 20, 30, 40, 50, 60),
        cost_repeats=3,
    ), source="theory config")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def fit_loglog_slope(ks: Any, gaps: Any, k_max: float) -> dict[str, Any]:
    """Least-squares fit of ``log gap = a + b log k`` on the points with ``k <= k_max`` and
    ``gap > 0``. Returns ``slope`` (``b``), ``intercept`` (``a``), the abscissae used
    (``x_used``) and the ``r2`` of the fit (``slope`` is ``None`` with fewer than 3 points)."""
    k = np.asarray(ks, dtype=np.float64)
    g = np.asarray(gaps, dtype=np.float64)
    sel = (k <= k_max) & (g > 0) & np.isfinite(g)
    out: dict[str, Any] = {"k_max": float(k_max), "points": int(sel.sum()),
                           "x_used": [float(x) for x in k[sel]]}
    if sel.sum() < 3:
        out.update(slope=None, intercept=None, r2=None)
        return out
    x, y = np.log(k[sel]), np.log(g[sel])
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss = float(((y - y.mean()) ** 2).sum())
    out.update(slope=float(b), intercept=float(a),
               r2=float(1 - (resid ** 2).sum() / ss) if ss > 0 else 1.0)
    return out


# ---------------------------------------------------------------------------
# the three parts
# ---------------------------------------------------------------------------


def gap_vs_k(cfg: TheoryConfig, progress: Progress) -> tuple[list[dict[str, Any]],
                                                               dict[str, Any]]:
    """Part (a): exact full-information gap of G-LEARN policies vs ``k``."""
    rows: list[dict[str, Any]] = []
    fits: dict[str, Any] = {}
    for gi, spec in enumerate(cfg.gap_games):
        game = envs.make(spec.env, **spec.params)
        pi_l = LocalPolicy.uniform(game)
        t0 = time.perf_counter()
        ex = ExactSolver(game, 1, max_states=cfg.max_states,
                         max_restricted_policies=cfg.restricted_max_policies)
        full = ex.full_info_best_response(pi_l)
        t_full = time.perf_counter() - t0
        base = {"game": spec.label, "n": game.n, "d": game.n_sl, "opt_value": full.value}
        runs: list[tuple[int, int | None, int]] = [(k, None, cfg.seed) for k in spec.ks]
        if gi == 0 and cfg.finite_m is not None:
            runs += [(k, cfg.finite_m, s) for k in cfg.finite_m_ks for s in cfg.finite_m_seeds]
        for k, m, seed in runs:
            if k > game.n:
                continue
            t1 = time.perf_counter()
            pi = g_learn(game, pi_l, k=k, m=m, seed=seed, tol=G_LEARN_TOL)
            t_learn = time.perf_counter() - t1
            v = ex.value(pi, pi_l)
            row = {**base, "k": k, "m": "exact" if m is None else m, "seed": seed,
                   "hist_size": num_histograms(k, game.n_sl), "value": v,
                   "gap_full": max(0.0, full.value - v), "g_learn_seconds": t_learn,
                   "restricted_opt_value": None, "gap_restricted": None,
                   "gap_sample_mode": None}
            if game.n_ag == game.n_sl:
                row["gap_sample_mode"] = max(
                    0.0, full.value - ex.value(GlobalPolicy.sample_mode(game, k), pi_l))
            log_count = game.n_sg * num_histograms(k, game.n_sl) * np.log(game.n_ag)
            if m is None and (k == game.n or log_count <= np.log(cfg.restricted_max_policies)):
                r = ex.restricted_best_response(pi_l, k=k, method="auto")
                row["restricted_opt_value"] = r.value
                row["gap_restricted"] = max(0.0, r.value - v)
            rows.append(row)
            progress.advance(status=f"{spec.label}: k={k} m={row['m']}")
        exact_rows = [r for r in rows if r["game"] == spec.label and r["m"] == "exact"]
        fit = fit_loglog_slope([r["k"] for r in exact_rows], [r["gap_full"] for r in exact_rows],
                               cfg.fit_max_frac * game.n)
        below_n = [r for r in exact_rows if r["k"] < game.n]
        fit_eff = fit_loglog_slope([effective_k(r["k"], game.n) for r in below_n],
                                   [r["gap_full"] for r in below_n], math.inf)
        entry: dict[str, Any] = {
            "n": game.n, "d": game.n_sl, "opt_value": full.value,
            "exact_solver_states": ex.n_states, "full_info_seconds": t_full,
            "fit_exact_expectation": fit,
            "fit_effective_k": {**fit_eff, "k_used": [r["k"] for r in below_n
                                                      if r["gap_full"] > 0]},
            "gap_by_k_exact_expectation": {str(r["k"]): r["gap_full"] for r in exact_rows},
        }
        fm = [r for r in rows if r["game"] == spec.label and r["m"] != "exact"]
        if fm:
            ks = sorted({r["k"] for r in fm})
            means = [float(np.mean([r["gap_full"] for r in fm if r["k"] == k])) for k in ks]
            entry["fit_finite_m"] = {"m": cfg.finite_m, "seeds": len(cfg.finite_m_seeds),
                                     **fit_loglog_slope(ks, means, cfg.fit_max_frac * game.n)}
            entry["gap_by_k_finite_m_mean"] = {str(k): g for k, g in zip(ks, means, strict=True)}
        fits[spec.label] = entry
    return rows, fits


def table_sizes(cfg: TheoryConfig) -> list[dict[str, Any]]:
    """Part (b): mean-field ``|H_k|`` vs standard ``d^k`` table sizes."""
    rows = []
    for d in cfg.table_ds:
        for k in range(1, cfg.table_kmax + 1):
            mf = num_histograms(k, d)
            std = d**k
            rows.append({"d": d, "k": k, "mean_field": mf, "standard": float(std),
                         "ratio": float(std) / mf})
    return rows


def cost_vs_n(cfg: TheoryConfig, progress: Progress) -> list[dict[str, Any]]:
    """Part (c): G-LEARN cost (flat in ``n``) vs exact-solver cost (grows with ``n``)."""
    rows: list[dict[str, Any]] = []
    # warm-up (imports, FFT plans, caches) so that the first timed n is not penalized
    warm = envs.make(cfg.cost_env, n=max(cfg.cost_k, 2), **cfg.cost_params)
    g_learn(warm, LocalPolicy.uniform(warm), k=cfg.cost_k, m=cfg.cost_m, seed=cfg.seed)
    ExactSolver(warm, cfg.cost_k).full_info_best_response(LocalPolicy.uniform(warm))
    for n in cfg.cost_glearn_ns:
        game = envs.make(cfg.cost_env, n=n, **cfg.cost_params)
        pi_l = LocalPolicy.uniform(game)
        times = []
        pi = None
        for _ in range(cfg.cost_repeats):
            t0 = time.perf_counter()
            pi = g_learn(game, pi_l, k=cfg.cost_k, m=cfg.cost_m, seed=cfg.seed)
            times.append(time.perf_counter() - t0)
        assert pi is not None
        samples = pi.info.get("samples")
        rows.append({"method": "g_learn", "n": n, "k": cfg.cost_k, "m": cfg.cost_m,
                     "seconds": min(times), "samples": samples, "states": None})
        progress.advance(status=f"cost: g_learn n={n}")
    for n in cfg.cost_exact_ns:
        game = envs.make(cfg.cost_env, n=n, **cfg.cost_params)
        pi_l = LocalPolicy.uniform(game)
        k = min(cfg.cost_k, n)
        pi = GlobalPolicy.constant(game, k, 0)
        times = []
        states = None
        for _ in range(cfg.cost_repeats):
            t0 = time.perf_counter()
            ex = ExactSolver(game, k, max_states=cfg.max_states)
            ex.value(pi, pi_l)
            ex.full_info_best_response(pi_l)
            times.append(time.perf_counter() - t0)
            states = ex.n_states
        rows.append({"method": "exact", "n": n, "k": k, "m": None, "seconds": min(times),
                     "samples": None, "states": states})
        progress.advance(status=f"cost: exact n={n}")
    return rows


# ---------------------------------------------------------------------------
# run directory
# ---------------------------------------------------------------------------

GAP_COLUMNS = ["game", "n", "d", "k", "m", "seed", "hist_size", "value", "opt_value",
               "gap_full", "restricted_opt_value", "gap_restricted", "gap_sample_mode",
               "g_learn_seconds"]
TABLE_COLUMNS = ["d", "k", "mean_field", "standard", "ratio"]
COST_COLUMNS = ["method", "n", "k", "m", "seconds", "samples", "states"]


def run_theory(out: str | Path, quick: bool = False, seed: int = 0,
               progress: bool = True, config: TheoryConfig | None = None) -> dict[str, Any]:
    """Run the theory experiment and write the run directory ``out``: ``config.json``,
    ``gap_vs_k.csv``, ``table_size.csv``, ``cost_vs_n.csv``, ``summary.json`` and the
    PNG plots. Returns the summary."""
    cfg = config or (quick_config(seed) if quick else full_config(seed))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg.model_dump())
    n_gap = sum(len([k for k in s.ks if k <= s.params.get("n", 10**9)]) for s in cfg.gap_games)
    if cfg.finite_m is not None:
        n_gap += len(cfg.finite_m_ks) * len(cfg.finite_m_seeds)
    total = n_gap + len(cfg.cost_glearn_ns) + len(cfg.cost_exact_ns)
    t0 = time.perf_counter()
    bar = Progress(progress)
    bar.add_task("theory", total=total)
    # one BLAS thread: multithreaded BLAS on busy cores would make part (c)'s timings erratic
    with limit_blas_threads(1) as blas_threads, bar:
        gap_rows, fits = gap_vs_k(cfg, bar)
        atomic_write_bytes(out / "gap_vs_k.csv", dict_rows_csv_bytes(gap_rows, GAP_COLUMNS))
        size_rows = table_sizes(cfg)
        atomic_write_bytes(out / "table_size.csv", dict_rows_csv_bytes(size_rows, TABLE_COLUMNS))
        cost_rows = cost_vs_n(cfg, bar)
        atomic_write_bytes(out / "cost_vs_n.csv", dict_rows_csv_bytes(cost_rows, COST_COLUMNS))
    g_rows = [r for r in cost_rows if r["method"] == "g_learn"]
    e_rows = [r for r in cost_rows if r["method"] == "exact"]
    g_secs = [r["seconds"] for r in g_rows]
    summary: dict[str, Any] = {
        "experiment": "theory",
        "command": "altmarl theory" + (" --quick" if cfg.quick else "")
                   + (f" --seed {cfg.seed}" if cfg.seed else ""),
        "quick": cfg.quick,
        "seed": cfg.seed,
        "pi_l": "uniform (fixed)",
        "gap_vs_k": fits,
        "table_size": {
            f"d={d}": {f"k={k}": {"mean_field": r["mean_field"], "standard": r["standard"]}
                       for k in (1, 5, 10, 20, 50) for r in size_rows
                       if r["d"] == d and r["k"] == k}
            for d in cfg.table_ds},
        "cost_vs_n": {
            "k": cfg.cost_k, "m": cfg.cost_m,
            "g_learn_seconds_by_n": {str(r["n"]): r["seconds"] for r in g_rows},
            "g_learn_samples_by_n": {str(r["n"]): r["samples"] for r in g_rows},
            "g_learn_max_over_min_seconds": (max(g_secs) / min(g_secs)) if g_secs else None,
            "exact_seconds_by_n": {str(r["n"]): r["seconds"] for r in e_rows},
            "exact_states_by_n": {str(r["n"]): r["states"] for r in e_rows},
        },
        "blas_threads": blas_threads,
        "wall_seconds": time.perf_counter() - t0,
        "python": platform.python_version(),
    }
    write_json(out / "summary.json", summary)
    summary["plots"] = [str(p) for p in plot_theory(out)]
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Short human-readable digest of ``summary.json`` (printed by the CLI)."""
    lines = []
    for label, e in summary["gap_vs_k"].items():
        fit = e["fit_exact_expectation"]
        slope = "n/a" if fit["slope"] is None else f"{fit['slope']:.3f}"
        fe = e.get("fit_effective_k", {})
        slope_e = "n/a" if fe.get("slope") is None else f"{fe['slope']:.3f}"
        lines.append(f"{label}: V* = {e['opt_value']:.4f}; log-log slope of the full-information "
                     f"gap (m exact) vs k, k <= {fit['k_max']:g}: {slope}; vs effective k "
                     f"k(n-1)/(n-k), all k < n: {slope_e}")
        gaps = e["gap_by_k_exact_expectation"]
        lines.append("  gap(k): " + ", ".join(f"k={k}: {float(v):.4g}" for k, v in
                                          sorted(gaps.items(), key=lambda kv: int(kv[0]))))
        if "fit_finite_m" in e:
            ff = e["fit_finite_m"]
            s2 = "n/a" if ff["slope"] is None else f"{ff['slope']:.3f}"
            lines.append(f"  m={ff['m']} ({ff['seeds']} seeds): slope {s2}")
    c = summary["cost_vs_n"]
    if c.get("g_learn_max_over_min_seconds") is not None:
        lines.append(f"G-LEARN time over n = {', '.join(c['g_learn_seconds_by_n'])}: max/min = "
                     f"{c['g_learn_max_over_min_seconds']:.2f}")
    lines.append("exact solver seconds by n: " + ", ".join(
        f"{n}: {s:.3g}" for n, s in sorted(c["exact_seconds_by_n"].items(),
                                           key=lambda kv: int(kv[0]))))
    return "\n".join(lines)


__all__ = [
    "GapGame",
    "TheoryConfig",
    "cost_vs_n",
    "effective_k",
    "fit_loglog_slope",
    "format_summary",
    "full_config",
    "gap_vs_k",
    "plot_theory",
    "parse_theory_config",
    "quick_config",
    "run_theory",
    "table_sizes",
]
