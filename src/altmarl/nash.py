"""Nash-gap *estimate* for games too large for the exact solver (SPEC 7).

``gap_g = max_{pi_g'} V(pi_g', pi_l) - V(pi_g, pi_l)`` and
``gap_l = max_{pi_l'} V(pi_g, pi_l') - V(pi_g, pi_l)`` (Definition D.1) cannot be computed
exactly when the chain on ``(s_g, N)`` is large. :func:`estimate_nash_gap` replaces each
maximum by the best deviation the available solvers find — G-LEARN (SPEC 4) for the
global player, L-LEARN (SPEC 5; by default both ``"induced-vi"`` and ``"direct"``) for the
local one, plus any candidates the caller adds — and every value by a Monte-Carlo
estimate with common random numbers (the same seed for every policy, so differences are
paired per rollout).

What the numbers mean, honestly:

* the deviation found is *a* deviation, not the best one: the estimated gap is a
  **lower bound** on the true gap, up to Monte-Carlo error;
* with several candidates the best one is *selected* on one set of rollouts and its gap
  is *reported* on an independent set (otherwise the maximum of noisy estimates is
  biased upwards);
* each reported gap comes with the paired standard error and a 95% interval of the
  difference; ``lower_bound`` is ``max(0, difference)``.

Use :class:`altmarl.exact.ExactSolver` for exact numbers on small games.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from altmarl.evaluation import Evaluation, evaluate
from altmarl.game import TabularGame
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.update import paired_difference

_Z95 = 1.959963984540054


@dataclass
class GapEstimate:
    """Estimated improvement of the best deviation found over the current joint policy.

    ``difference`` is the Monte-Carlo mean of ``V(deviation) - V(current)`` on the
    reporting rollouts (paired), ``stderr`` / ``ci95`` its uncertainty; ``lower_bound =
    max(0, difference)`` — the gap is *at least* this much (up to Monte-Carlo error).
    """

    player: str
    difference: float
    stderr: float
    ci95: tuple[float, float]
    deviation_value: float
    deviation: Any
    source: str
    candidates: dict[str, float] = field(default_factory=dict)

    @property
    def lower_bound(self) -> float:
        return max(0.0, self.difference)

    def summary(self) -> dict[str, Any]:
        return {"player": self.player, "difference": self.difference, "stderr": self.stderr,
                "ci95": list(self.ci95), "lower_bound": self.lower_bound,
                "deviation_value": self.deviation_value, "source": self.source,
                "candidates_selection_values": self.candidates}


@dataclass
class NashGapEstimate:
    """Monte-Carlo Nash-gap **estimate** (a lower bound: best deviations found by the
    available solvers). ``gap_g_full`` is filled when a larger-``k`` G-LEARN deviation
    was requested as a proxy for the full-information comparator (still a lower bound
    on the full-information gap)."""

    value: Evaluation
    gap_g: GapEstimate
    gap_l: GapEstimate
    gap_g_full: GapEstimate | None
    rollouts: int
    horizon: int
    seed: int
    seconds: float
    is_estimate: bool = True

    @property
    def nash_gap_lower_bound(self) -> float:
        """``max(gap_g, gap_l)`` lower bounds (restricted global comparator)."""
        return max(self.gap_g.lower_bound, self.gap_l.lower_bound)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": "estimate (lower bound: best deviations found; Monte-Carlo with CRN)",
            "value": self.value.summary(),
            "gap_g": self.gap_g.summary(), "gap_l": self.gap_l.summary(),
            "gap_g_full": None if self.gap_g_full is None else self.gap_g_full.summary(),
            "nash_gap_lower_bound": self.nash_gap_lower_bound,
            "rollouts": self.rollouts, "horizon": self.horizon, "seed": self.seed,
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        def line(name: str, g: GapEstimate) -> str:
            lo, hi = g.ci95
            return (f"  {name} >= {g.lower_bound:.4g}  (difference {g.difference:+.4g}, "
                    f"95% CI [{lo:.4g}, {hi:.4g}], deviation: {g.source})")

        lines = [
            "Nash gap ESTIMATE (lower bound: best deviations found by the solvers; "
            f"Monte-Carlo, {self.rollouts} rollouts x {self.horizon} steps, common random "
            "numbers)",
            f"  V(pi_g, pi_l) ~= {self.value.mean:.6g} +- {self.value.stderr:.2g}",
            line("gap_g", self.gap_g),
        ]
        if self.gap_g_full is not None:
            lines.append(line("gap_g (larger-k proxy for full information)", self.gap_g_full))
        lines.append(line("gap_l", self.gap_l))
        lines.append(f"  NashGap >= {self.nash_gap_lower_bound:.4g} (estimate)")
        return "\n".join(lines)


def _best_deviation(
    game: TabularGame,
    player: str,
    candidates: dict[str, Any],
    current: tuple[GlobalPolicy, LocalPolicy],
    cur_eval: Evaluation,
    rollouts: int,
    horizon: int,
    sel_seed: int,
    workers: int | None,
) -> GapEstimate:
    pi_g, pi_l = current

    def joint(p: Any) -> tuple[GlobalPolicy, LocalPolicy]:
        return (p, pi_l) if player == "global" else (pi_g, p)

    sel_values: dict[str, float] = {}
    if len(candidates) > 1:
        for name, p in candidates.items():
            sel_values[name] = evaluate(game, *joint(p), rollouts=rollouts, horizon=horizon,
                                        seed=sel_seed, workers=workers).mean
        best = max(sel_values, key=lambda nm: sel_values[nm])
    else:
        best = next(iter(candidates))
    dev = candidates[best]
    ev = evaluate(game, *joint(dev), rollouts=rollouts, horizon=horizon, seed=cur_eval.seed,
                  workers=workers)
    diff, se = paired_difference(ev, cur_eval)
    return GapEstimate(player, diff, se, (diff - _Z95 * se, diff + _Z95 * se), ev.mean, dev,
                       best, sel_values)


def estimate_nash_gap(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    *,
    rollouts: int = 200,
    horizon: int = 100,
    seed: int = 0,
    m: int | None = 30,
    local_solvers: tuple[str, ...] = ("induced-vi", "direct"),
    k_full: int | None = None,
    extra_global: dict[str, GlobalPolicy] | None = None,
    extra_local: dict[str, LocalPolicy] | None = None,
    g_learn_options: dict[str, Any] | None = None,
    l_learn_options: dict[str, dict[str, Any]] | None = None,
    workers: int | None = None,
) -> NashGapEstimate:
    """Estimate the Nash gap of ``(pi_g, pi_l)`` on a large game (SPEC 7): a **lower
    bound** given by the best deviations the solvers find, with Monte-Carlo values.

    Parameters
    ----------
    rollouts, horizon, seed
        Monte-Carlo budget; every policy is evaluated with the same ``seed`` (common random
        numbers), candidate selection uses an independent seed.
    m
        G-LEARN samples per ``(s_g, h, a_g)`` (``None``: exact expectation, small ``k``).
    local_solvers
        L-LEARN solvers to try (``"induced-vi"``, ``"direct"``, ``"chained"``).
    k_full
        If given (``pi_g.k < k_full <= n``), also learn a G-LEARN policy with this larger
        subsample as a proxy for the full-information comparator.
    extra_global, extra_local
        Further named candidate deviations (e.g. heuristics).
    g_learn_options, l_learn_options
        Extra keyword arguments for ``g_learn`` and, per solver name, for ``l_learn``.
    """
    from altmarl.g_learn import g_learn  # type: ignore[import-not-found,unused-ignore]
    from altmarl.l_learn import l_learn

    for name, v in (("rollouts", rollouts), ("horizon", horizon)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} = {v!r}: expected an integer >= 2")
    if k_full is not None:
        k_full = game.check_k(k_full)
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(seed)
    s_learn, s_sel = ss.spawn(2)
    learn_seeds = [int(x) for x in s_learn.generate_state(2 + len(local_solvers))]
    sel_seed = int(s_sel.generate_state(1)[0])
    cur = evaluate(game, pi_g, pi_l, rollouts=rollouts, horizon=horizon, seed=seed,
                   workers=workers)
    gopts = dict(g_learn_options or {})

    # global deviations: G-LEARN at the same k (+ extras)
    g_cands: dict[str, Any] = {}
    g_cands[f"g_learn(k={pi_g.k}, m={m})"] = g_learn(game, pi_l, k=pi_g.k, m=m,
                                                     seed=learn_seeds[0], **gopts)
    for name, p in (extra_global or {}).items():
        if p.k != pi_g.k:
            raise ValueError(f"extra_global[{name!r}].k = {p.k}: expected k = {pi_g.k} "
                             "(restricted comparator)")
        g_cands[name] = p
    gap_g = _best_deviation(game, "global", g_cands, (pi_g, pi_l), cur, rollouts, horizon,
                            sel_seed, workers)
    gap_g_full = None
    if k_full is not None:
        dev = g_learn(game, pi_l, k=k_full, m=m, seed=learn_seeds[1], **gopts)
        gap_g_full = _best_deviation(game, "global", {f"g_learn(k={k_full}, m={m})": dev},
                                     (pi_g, pi_l), cur, rollouts, horizon, sel_seed, workers)

    # local deviations: every requested L-LEARN solver (+ extras)
    l_cands: dict[str, Any] = {}
    lopts = l_learn_options or {}
    for i, solver in enumerate(local_solvers):
        l_cands[f"l_learn({solver})"] = l_learn(game, pi_g, solver=solver,
                                                seed=learn_seeds[2 + i], pi_l=pi_l,
                                                estimate_value=False, **lopts.get(solver, {}))
    l_cands.update(extra_local or {})
    if not l_cands:
        raise ValueError("local_solvers: expected at least one solver or extra_local policy")
    gap_l = _best_deviation(game, "local", l_cands, (pi_g, pi_l), cur, rollouts, horizon,
                            sel_seed, workers)
    return NashGapEstimate(cur, gap_g, gap_l, gap_g_full, rollouts, horizon, seed,
                           time.perf_counter() - t0)


__all__ = ["GapEstimate", "NashGapEstimate", "estimate_nash_gap"]
