"""The Nash gap (Definition D.1, SPEC 7): exact on small games, a lower-bound estimate on
large ones.

``gap_g = max_{pi_g'} V(pi_g', pi_l) - V(pi_g, pi_l)`` and
``gap_l = max_{pi_l'} V(pi_g, pi_l') - V(pi_g, pi_l)``, ``NashGap = max(gap_g, gap_l)``.

* :func:`exact_nash_gap` — built from small parts like OpenSpiel's NashConv: the value of
  the joint policy (:mod:`altmarl.exact.values`) subtracted from the values of the best
  responses (:mod:`altmarl.exact.best_response`) on the exact chain
  (:mod:`altmarl.exact.chain`), with both global comparators (restricted ``k``-sample
  policies and full information). Result: :class:`NashGapResult`.
* :func:`estimate_nash_gap` — for games too large for the chain: each maximum replaced by
  the best deviation the available solvers find — G-LEARN (SPEC 4) for the global player,
  L-LEARN (SPEC 5; by default both ``"induced-vi"`` and ``"direct"``) for the local one,
  plus any candidates the caller adds — and every value by a Monte-Carlo estimate with
  common random numbers (the same seed for every policy, so differences are paired per
  rollout). Result: :class:`NashGapEstimate`.

What the estimated numbers mean, honestly:

* the deviation found is *a* deviation, not the best one: the estimated gap is a
  **lower bound** on the true gap, up to Monte-Carlo error;
* with several candidates the best one is *selected* on one set of rollouts and its gap
  is *reported* on an independent set (otherwise the maximum of noisy estimates is
  biased upwards);
* each reported gap comes with the paired standard error and a 95% interval of the
  difference; ``lower_bound`` is ``max(0, difference)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from altmarl._random import child, int_seed
from altmarl._validate import check_choice, check_int
from altmarl.evaluation import Z95, Evaluation, evaluate
from altmarl.exact.best_response import (
    MAX_LOCAL_POLICIES,
    MAX_RESTRICTED_POLICIES,
    METHODS,
    BestResponse,
    full_info_best_response,
    local_best_response,
    restricted_best_response,
)
from altmarl.exact.chain import CountChain
from altmarl.exact.values import policy_value
from altmarl.game import TabularGame
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.update import paired_difference

# ---------------------------------------------------------------------------
# exact Nash gap (small games)
# ---------------------------------------------------------------------------


@dataclass
class NashGapResult:
    """Exact Nash gap of ``(pi_g, pi_l)`` (Definition D.1, SPEC 7).

    * ``gap_g`` — restricted comparator (global policies of a ``k``-sample histogram);
      ``None`` if not computed. Exact iff ``gap_g_exact``, otherwise a lower bound.
    * ``gap_g_full`` — full-information comparator (policies of ``(s_g, N)``, Theorem 4.4);
      always exact. ``gap_g <= gap_g_full``.
    * ``gap_l`` — shared local policies ``Pi_l``. ``gap_l_exact`` is true when the maximum
      over ``Pi_l`` is provably attained by a deterministic policy (``n = 1`` or ``pi_g``
      ignores the sample); otherwise it is exact over deterministic shared policies and a
      lower bound over stochastic ones.
    * ``nash_gap = max(gap_g, gap_l)`` (``None`` without ``gap_g``),
      ``nash_gap_full = max(gap_g_full, gap_l)``.
    """

    value: float
    k: int
    n: int
    gap_g: float | None
    gap_g_exact: bool
    gap_g_full: float
    gap_l: float
    gap_l_exact: bool
    nash_gap: float | None
    nash_gap_full: float
    br_g: BestResponse | None
    br_g_full: BestResponse
    br_l: BestResponse

    @property
    def exact(self) -> bool:
        """True when ``nash_gap`` is exact (not a lower bound)."""
        return self.gap_g is not None and self.gap_g_exact and self.gap_l_exact

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "value": self.value, "k": self.k, "n": self.n,
            "gap_g": self.gap_g, "gap_g_exact": self.gap_g_exact,
            "gap_g_full": self.gap_g_full, "gap_l": self.gap_l, "gap_l_exact": self.gap_l_exact,
            "nash_gap": self.nash_gap, "nash_gap_full": self.nash_gap_full,
            "br_g": None if self.br_g is None else self.br_g.summary(),
            "br_g_full": self.br_g_full.summary(), "br_l": self.br_l.summary(),
        }

    def __str__(self) -> str:
        def fmt(v: float | None, exact: bool = True) -> str:
            if v is None:
                return "not computed"
            return f"{v:.6g}" + ("" if exact else " (lower bound)")

        return (
            f"Exact Nash gap (n={self.n}, k={self.k}), V(pi_g, pi_l) = {self.value:.6g}\n"
            f"  gap_g  (k-sample policies)     = {fmt(self.gap_g, self.gap_g_exact)}\n"
            f"  gap_g  (full information)      = {fmt(self.gap_g_full)}\n"
            f"  gap_l  (shared local policies) = {fmt(self.gap_l, self.gap_l_exact)}\n"
            f"  NashGap = {fmt(self.nash_gap, self.exact)}, "
            f"full-information NashGap = {fmt(self.nash_gap_full, self.gap_l_exact)}"
        )


def exact_nash_gap(
    chain: CountChain,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    k: int,
    restricted: str = "auto",
    local: str = "auto",
    refine_local: bool = True,
    max_search_evals: int = 300,
    max_restricted_policies: int = MAX_RESTRICTED_POLICIES,
    max_local_policies: int = MAX_LOCAL_POLICIES,
) -> NashGapResult:
    """Nash gap of ``(pi_g, pi_l)`` (Definition D.1, SPEC 7) with both global comparators:
    each gap is a best-response value minus ``V(pi_g, pi_l)``.

    ``k`` is the subsample size of the restricted comparator. ``restricted``: ``"auto"``
    (exact when ``k = n`` or enumeration is allowed, otherwise a search that gives a lower
    bound), ``"enumerate"``, ``"search"`` or ``"skip"``; ``local``: ``"auto"``,
    ``"enumerate"`` or ``"search"`` (see :func:`local_best_response`). The deviation sets
    contain the current policies, so every gap is ``>= 0``; values are computed exactly,
    gaps are differences of exact values.
    """
    check_choice("restricted", restricted, (*METHODS, "skip"))
    v0 = policy_value(chain, pi_g, pi_l)
    br_full = full_info_best_response(chain, pi_l)
    br_g: BestResponse | None = None
    if restricted != "skip":
        starts = [pi_g] if pi_g.k == k else []
        br_g = restricted_best_response(chain, pi_l, k, starts=starts, method=restricted,
                                        max_evals=max_search_evals,
                                        max_policies=max_restricted_policies)
    br_l = local_best_response(chain, pi_g, method=local, refine=refine_local, start=pi_l,
                               max_policies=max_local_policies)
    gap_full = max(0.0, br_full.value - v0)
    gap_g = None if br_g is None else max(0.0, br_g.value - v0)
    gap_l = max(0.0, br_l.value - v0)
    return NashGapResult(
        value=v0, k=k, n=chain.n,
        gap_g=gap_g, gap_g_exact=br_g is not None and br_g.exact, gap_g_full=gap_full,
        gap_l=gap_l, gap_l_exact=br_l.exact,
        nash_gap=None if gap_g is None else max(gap_g, gap_l),
        nash_gap_full=max(gap_full, gap_l),
        br_g=br_g, br_g_full=br_full, br_l=br_l,
    )


# ---------------------------------------------------------------------------
# estimated Nash gap (large games): a lower bound
# ---------------------------------------------------------------------------

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
    return GapEstimate(player, diff, se, (diff - Z95 * se, diff + Z95 * se), ev.mean, dev,
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
    from altmarl.glearn import g_learn
    from altmarl.llearn import l_learn

    rollouts = check_int("rollouts", rollouts, minimum=2)
    horizon = check_int("horizon", horizon, minimum=2)
    if k_full is not None:
        k_full = game.check_k(k_full)
    t0 = time.perf_counter()
    # learners' seeds from child 0 of the root seed, the selection seed from child 1
    learn_seeds = [int(x) for x in child(seed, 0).generate_state(2 + len(local_solvers))]
    sel_seed = int_seed(child(seed, 1))
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


__all__ = [
    "GapEstimate",
    "NashGapEstimate",
    "NashGapResult",
    "estimate_nash_gap",
    "exact_nash_gap",
]
