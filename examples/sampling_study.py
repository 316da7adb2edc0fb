"""Robustness study of the sampling schemes (issue 20, SPEC 12; docs/sampling.md).

    python examples/sampling_study.py [--quick] [--out docs/figures] [--json results.json]

Two questions, each measured exactly on small games (the exact chain, ``am.exact``) and by
Monte Carlo on the warehouse (``n = 1000``):

1. *Biased telemetry.* A dispatcher trained under uniform sampling is executed under
   ``Weighted`` sampling (zone 0 reports ``bias`` times more often than the others). How
   much value does it lose, and how much does training for the right scheme recover?
   Exactly: the restricted best response on weighted samples (the best policy of the class,
   i.e. ideal training for the scheme). Both: the *reweighted* policy, which maps a weighted
   histogram ``h`` to the uniform policy's action on ``h / w`` rescaled to ``k`` agents
   (:func:`reweighted_policy`). G-LEARN's surrogate stays uniform under ``Weighted``
   (docs/g_learn.md), so G-LEARN itself cannot recover anything.
2. *Two-type fleet.* Fast and slow robots (``am.envs.make("warehouse", types=2)``, 80% fast):
   G-LEARN under ``Uniform(k)`` against ``Stratified`` at the same total ``k`` (equal and
   proportional allocation).

Every Monte-Carlo value is ``am.evaluate`` with the same seeds for all policies (paired
differences, their standard errors from the per-rollout returns).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import altmarl as am
from altmarl.exact import ExactSolver
from altmarl.sampling import Stratified, Uniform, Weighted, allocate


def reweighted_policy(pi_g: am.GlobalPolicy, scheme: Weighted) -> am.GlobalPolicy:
    """The uniform policy ``pi_g`` corrected for weighted sampling: on a weighted histogram
    ``h`` it plays ``pi_g(s_g, h')``, ``h'`` the histogram of ``k`` agents closest to the
    proportions ``h_x / w_x`` (largest remainder). For small ``k / n`` a weighted draw picks
    state ``x`` with probability ``w_x N_x / sum w N``, so ``h / w`` estimates ``N`` up to a
    factor."""
    k, d = pi_g.k, pi_g.n_sl
    H = am.enumerate_histograms(k, d)
    w = scheme.weights
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(w > 0, H / np.where(w > 0, w, 1.0), 0.0)
    p = p / p.sum(axis=1, keepdims=True) * k
    base = np.floor(p).astype(np.int64)
    left = k - base.sum(axis=1)
    order = np.argsort(-(p - base), axis=1, kind="stable")
    for r in range(H.shape[0]):
        base[r, order[r, :left[r]]] += 1
    acts = pi_g.actions[:, am.rank(base, k)]
    return am.GlobalPolicy(k, acts, pi_g.n_ag, info={"kind": f"reweighted ({scheme.describe()})"},
                           sampling=scheme)


def paired(evs: dict[str, am.Evaluation], ref: str) -> dict[str, dict[str, float]]:
    """Mean, s.e., and the paired difference to ``ref`` with its s.e., per policy."""
    out = {}
    r0 = evs[ref].returns
    for name, ev in evs.items():
        diff = ev.returns - r0
        out[name] = {"mean": ev.mean, "stderr": ev.stderr, "diff": float(diff.mean()),
                     "diff_stderr": float(diff.std(ddof=1) / math.sqrt(diff.size))}
    return out


# ---------------------------------------------------------------------------
# 1. biased telemetry
# ---------------------------------------------------------------------------


def weights_for(bias: float, zones: int, k: int, d: int | None = None) -> Weighted:
    w = np.ones(d or zones)
    w[0] = bias
    return Weighted(tuple(w), k)


def telemetry_exact(biases: list[float], zones: int = 3, n: int = 6, k: int = 2,
                    search: bool = True) -> list[dict[str, Any]]:
    """Small warehouse (``zones`` zones, ``n`` robots, subsample ``k``), uniform local policy:
    exact values. With ``search``, the restricted best responses (policy-improvement search
    from the uniform policy: a lower bound on the best policy of the class)."""
    game = am.envs.make("warehouse", n=n, zones=zones, gamma=0.9 if zones == 3 else 0.95)
    pi_l = am.LocalPolicy.uniform(game)
    pi_u = am.g_learn(game, pi_l, k=k, m=None if zones == 3 else 30, seed=0)
    ex = ExactSolver(game, k, max_states=10_000)
    full = ex.full_info_best_response(pi_l).value
    br_u = (ex.restricted_best_response(pi_l, method="search", max_evals=400, starts=[pi_u])
            if search else None)
    rows = []
    for bias in biases:
        w = weights_for(bias, zones, k)
        row = {
            "bias": bias,
            "V_uniform(pi_U)": ex.value(pi_u, pi_l),
            "V_weighted(pi_U)": ex.value(pi_u, pi_l, sampling=w),
            "V_weighted(reweighted pi_U)": ex.value(reweighted_policy(pi_u, w), pi_l),
            "V_full_information": full,
        }
        if search:
            assert br_u is not None
            starts = [am.GlobalPolicy(k, pi_u.actions, game.n_ag, sampling=w),
                      reweighted_policy(pi_u, w)]
            br_w = ex.restricted_best_response(pi_l, sampling=w, method="search",
                                               max_evals=400, starts=starts)
            row["V_weighted(best weighted policy)"] = br_w.value
            row["V_uniform(best uniform policy)"] = br_u.value
        rows.append(row)
    return rows


def telemetry_mc(biases: list[float], rollouts: int, n: int = 1000, k: int = 5,
                 seed: int = 1) -> list[dict[str, Any]]:
    game = am.envs.make("warehouse", n=n)
    pi_l = am.LocalPolicy.uniform(game)
    pi_u = am.g_learn(game, pi_l, k=k, m=30, seed=0)
    rows = []
    for bias in biases:
        w = weights_for(bias, 5, k)
        evs = {
            "pi_U under uniform": am.evaluate(game, pi_u, pi_l, rollouts, 100, seed=seed),
            "pi_U under weighted": am.evaluate(game, pi_u, pi_l, rollouts, 100, seed=seed,
                                               sampling=w),
            "reweighted pi_U under weighted": am.evaluate(game, reweighted_policy(pi_u, w),
                                                          pi_l, rollouts, 100, seed=seed),
        }
        rows.append({"bias": bias, **paired(evs, "pi_U under weighted")})
    return rows


# ---------------------------------------------------------------------------
# 2. two-type fleet
# ---------------------------------------------------------------------------


def fleet_exact() -> list[dict[str, Any]]:
    """Two-type warehouse with 3 zones, n = 6 (4 fast, 2 slow), uniform local policy:
    exact values of G-LEARN (m = None) under Uniform(2) and Stratified((1, 1))."""
    game = am.envs.make("warehouse", types=2, n=6, zones=3, gamma=0.9, fast_share=2 / 3)
    pi_l = am.LocalPolicy.uniform(game)
    rows = []
    for scheme in (Uniform(2), Stratified((1, 1))):
        pol = am.g_learn(game, pi_l, sampling=scheme, m=None, seed=0)
        ex = ExactSolver(game, sampling=scheme)
        rows.append({"scheme": scheme.describe(), "observations": pol.actions.shape[1],
                     "V(G-LEARN)": ex.value(pol, pi_l),
                     "V_full_information": ex.full_info_best_response(pi_l).value})
    return rows


def fleet_mc(ks: list[int], rollouts: int, n: int = 1000, seed: int = 2) -> list[dict[str, Any]]:
    game = am.envs.make("warehouse", types=2, n=n)
    pi_l = am.LocalPolicy.uniform(game)
    rows = []
    for k in ks:
        schemes = {"uniform": Uniform(k),
                   "stratified (equal)": Stratified(allocate(k, (1, 1), game.type_counts)),
                   "stratified (proportional)": Stratified(allocate(k, game.type_counts,
                                                                    game.type_counts))}
        evs = {}
        sizes = {}
        for name, scheme in schemes.items():
            pol = am.g_learn(game, pi_l, sampling=scheme, m=30, seed=0)
            sizes[name] = pol.actions.shape[1]
            evs[name] = am.evaluate(game, pol, pi_l, rollouts, 100, seed=seed)
        rows.append({"k": k, "schemes": {nm: sc.describe() for nm, sc in schemes.items()},
                     "table_sizes": sizes, "values": paired(evs, "uniform")})
    return rows


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------


def figures(res: dict[str, Any], out: Path) -> list[Path]:
    from altmarl.plots.style import pyplot, save_figure

    plt = pyplot()
    paths = []
    ex = res["telemetry_exact"]
    b = [r["bias"] for r in ex]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style in (("V_uniform(pi_U)", "k--"), ("V_weighted(pi_U)", "o-"),
                       ("V_weighted(reweighted pi_U)", "s-"),
                       ("V_weighted(best weighted policy)", "^-"),
                       ("V_full_information", ":")):
        ax[0].plot(b, [r[key] for r in ex], style, label=key)
    ax[0].set_xscale("log")
    ax[0].set_xlabel("telemetry bias w[zone 0] / w[other zones]")
    ax[0].set_ylabel("exact V")
    ax[0].set_title("3-zone warehouse, n = 6, k = 2 (exact)")
    ax[0].legend(fontsize=7)
    mc = res["telemetry_mc"]
    b = [r["bias"] for r in mc]
    for key, mk in (("pi_U under uniform", "k--"), ("pi_U under weighted", "o-"),
                    ("reweighted pi_U under weighted", "s-")):
        ax[1].errorbar(b, [r[key]["mean"] for r in mc],
                       yerr=[1.96 * r[key]["stderr"] for r in mc], fmt=mk, capsize=3,
                       label=key)
    ax[1].set_xscale("log")
    ax[1].set_xlabel("telemetry bias w[zone 0] / w[other zones]")
    ax[1].set_ylabel("V (Monte Carlo, 95% CI)")
    ax[1].set_title("warehouse, n = 1000, k = 5")
    ax[1].legend(fontsize=7)
    paths.append(save_figure(fig, out / "sampling_weighted_robustness.png"))
    plt.close(fig)

    fl = res["fleet_mc"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ks = np.array([r["k"] for r in fl], dtype=float)
    for i, name in enumerate(fl[0]["values"]):
        vals = [r["values"][name] for r in fl]
        ax.errorbar(ks + 0.08 * (i - 1), [v["diff"] for v in vals],
                    yerr=[1.96 * v["diff_stderr"] for v in vals], fmt="o-", capsize=3,
                    label=name)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("total sample size k")
    ax.set_ylabel("V - V(uniform)  (paired, 95% CI)")
    ax.set_title("two-type warehouse (80% fast), n = 1000")
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out / "sampling_stratified_vs_uniform.png"))
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    biases = [1.0, 3.0, 10.0] if args.quick else [1.0, 2.0, 4.0, 10.0, 30.0]
    rollouts = 200 if args.quick else 2000
    res = {
        "telemetry_exact": telemetry_exact(biases),
        "telemetry_exact_5zones": telemetry_exact(biases, zones=5, n=8, k=3, search=False),
        "telemetry_mc": telemetry_mc(biases, rollouts),
        "fleet_exact": fleet_exact(),
        "fleet_mc": fleet_mc([2, 4] if args.quick else [2, 4, 6, 8], rollouts),
    }
    res["seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    paths = figures(res, args.out)
    text = json.dumps(res, indent=1, default=float)
    if args.json is not None:
        args.json.write_text(text)
    else:
        sys.stdout.write(text + "\n")
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
