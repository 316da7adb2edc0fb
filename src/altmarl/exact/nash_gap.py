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
  rollout). Result: :class:`NashGapEstimate`. On generative games (SPEC 11) the same
  function takes its deviations from the neural learners (neural G-LEARN, TRPO L-LEARN in
  both variants) and its values from the per-agent simulator, over several evaluation
  seeds with a Student-t interval.

What the estimated numbers mean, honestly:

* the deviation found is *a* deviation, not the best one: the estimated gap is a
  **lower bound** on the true gap, up to Monte-Carlo error;
* with several candidates the best one is *selected* on one set of rollouts and its gap
  is *reported* on an independent set (otherwise the maximum of noisy estimates is
  biased upwards);
* each reported gap comes with the paired standard error and a 95% interval of the
  difference (normal over rollouts with one evaluation seed; Student-t over the per-seed
  paired differences with several), widened by the truncation bound
  ``gamma^H (r_max - r_min) / (1 - gamma)`` of the ``H``-step values (SPEC 13) so that it
  is an interval for the infinite-horizon difference; ``lower_bound`` is
  ``max(0, difference)``.

:func:`nash_gap_certificate` — what every run directory reports for each final pair
(``summary.json``, key ``nash_gap``): the exact gap when the chain is affordable
(:data:`CERTIFICATE_MAX_STATES`), otherwise the estimated lower bound with its interval,
cheap by default (the run's own last proposals as the deviations, no new learning).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from altmarl._random import child, int_seed
from altmarl._validate import check_choice, check_int
from altmarl.display import html_table
from altmarl.evaluation import Z95, Evaluation, evaluate, seed_interval
from altmarl.exact.best_response import (
    MAX_LOCAL_POLICIES,
    MAX_RESTRICTED_POLICIES,
    METHODS,
    BestResponse,
    full_info_best_response,
    local_best_response,
    restricted_best_response,
)
from altmarl.exact.chain import MAX_STATES, CountChain
from altmarl.exact.values import policy_value
from altmarl.game import TabularGame
from altmarl.generative.game import GenerativeGame
from altmarl.histogram import num_histograms
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme, observable
from altmarl.threads import limit_blas_threads
from altmarl.update import evaluation_horizon, paired_difference, truncation_bias

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
    #: the restricted comparator's sampling scheme (SPEC 12), described
    sampling: str = "Uniform"

    @property
    def exact(self) -> bool:
        """True when ``nash_gap`` is exact (not a lower bound)."""
        return self.gap_g is not None and self.gap_g_exact and self.gap_l_exact

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "value": self.value, "k": self.k, "n": self.n, "sampling": self.sampling,
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

    def _repr_html_(self) -> str:
        """Notebook display: the value, each player's gap (exact or a lower bound)."""
        def gap(v: float | None, exact: bool) -> str:
            return "not computed" if v is None else f"{v:.6g}" + ("" if exact else " (lower bound)")

        return html_table(f"Exact Nash gap (n = {self.n}, k = {self.k})", [
            ("V(pi_g, pi_l)", self.value),
            ("NashGap", gap(self.nash_gap, self.exact)),
            ("gap_g (k-sample policies)", gap(self.gap_g, self.gap_g_exact)),
            ("gap_g (full information)", gap(self.gap_g_full, True)),
            ("gap_l (shared local policies)", gap(self.gap_l, self.gap_l_exact)),
            ("full-information NashGap", gap(self.nash_gap_full, self.gap_l_exact)),
            ("sampling", self.sampling),
        ], note="Definition D.1, SPEC 7: best-response values minus V(pi_g, pi_l)")


def exact_nash_gap(
    chain: CountChain,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    k: int | Scheme,
    restricted: str = "auto",
    local: str = "auto",
    refine_local: bool = True,
    max_search_evals: int = 300,
    max_restricted_policies: int = MAX_RESTRICTED_POLICIES,
    max_local_policies: int = MAX_LOCAL_POLICIES,
) -> NashGapResult:
    """Nash gap of ``(pi_g, pi_l)`` (Definition D.1, SPEC 7) with both global comparators:
    each gap is a best-response value minus ``V(pi_g, pi_l)``.

    ``k`` is the subsample size of the restricted comparator, or its sampling scheme (SPEC
    12: the comparator class is the policies on that scheme's samples; when ``pi_g`` can act
    on them (same total size) it is executed under that scheme, so every value is for the
    sampling in force, as for uniform sampling; otherwise under its own). ``restricted``: ``"auto"``
    (exact when ``k = n`` or enumeration is allowed, otherwise a search that gives a lower
    bound), ``"enumerate"``, ``"search"`` or ``"skip"``; ``local``: ``"auto"``,
    ``"enumerate"`` or ``"search"`` (see :func:`local_best_response`). The deviation sets
    contain the current policies, so every gap is ``>= 0``; values are computed exactly,
    gaps are differences of exact values.
    """
    check_choice("restricted", restricted, (*METHODS, "skip"))
    scheme = chain.scheme(k)
    if observable(pi_g.sampling.bind(chain.game), scheme):
        pi_g = chain.executed_policy(pi_g, scheme)  # the policy as run under the scheme
    v0 = policy_value(chain, pi_g, pi_l)
    br_full = full_info_best_response(chain, pi_l)
    br_g: BestResponse | None = None
    if restricted != "skip":
        starts = [pi_g] if pi_g.sampling.bind(chain.game) == scheme else []
        br_g = restricted_best_response(chain, pi_l, scheme, starts=starts, method=restricted,
                                        max_evals=max_search_evals,
                                        max_policies=max_restricted_policies)
    br_l = local_best_response(chain, pi_g, method=local, refine=refine_local, start=pi_l,
                               max_policies=max_local_policies)
    gap_full = max(0.0, br_full.value - v0)
    gap_g = None if br_g is None else max(0.0, br_g.value - v0)
    gap_l = max(0.0, br_l.value - v0)
    return NashGapResult(
        value=v0, k=scheme.k, n=chain.n,
        gap_g=gap_g, gap_g_exact=br_g is not None and br_g.exact, gap_g_full=gap_full,
        gap_l=gap_l, gap_l_exact=br_l.exact,
        nash_gap=None if gap_g is None else max(gap_g, gap_l),
        nash_gap_full=max(gap_full, gap_l),
        br_g=br_g, br_g_full=br_full, br_l=br_l,
        sampling=scheme.describe(),
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
    ``interval`` says how ``ci95`` was formed: with one evaluation seed, a normal interval
    of the per-rollout paired differences; with ``seeds > 1``, a Student-t interval
    (``seeds - 1`` degrees of freedom) of the per-seed paired differences ``per_seed``;
    either widened by ``truncation``, the bound on the truncation bias of the ``H``-step
    difference (SPEC 13), so that it is an interval for the infinite-horizon difference
    (``None``: a generative game without declared reward bounds; the interval is then
    for the ``H``-step difference). ``source = "none"``: no deviation was available (the
    current policy itself, difference 0).
    """

    player: str
    difference: float
    stderr: float
    ci95: tuple[float, float]
    deviation_value: float
    deviation: Any
    source: str
    candidates: dict[str, float] = field(default_factory=dict)
    interval: str = "normal, paired over rollouts"
    seeds: int = 1
    per_seed: list[float] = field(default_factory=list)
    truncation: float | None = 0.0

    @property
    def lower_bound(self) -> float:
        return max(0.0, self.difference)

    def summary(self) -> dict[str, Any]:
        return {"player": self.player, "difference": self.difference, "stderr": self.stderr,
                "ci95": list(self.ci95), "lower_bound": self.lower_bound,
                "deviation_value": self.deviation_value, "source": self.source,
                "candidates_selection_values": self.candidates, "interval": self.interval,
                "seeds": self.seeds, "per_seed": list(self.per_seed),
                "truncation": self.truncation}


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
    seeds: int = 1
    seed_values: list[float] = field(default_factory=list)

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
            "seeds": self.seeds, "seed_values": list(self.seed_values),
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        def line(name: str, g: GapEstimate) -> str:
            lo, hi = g.ci95
            return (f"  {name} >= {g.lower_bound:.4g}  (difference {g.difference:+.4g}, "
                    f"95% CI [{lo:.4g}, {hi:.4g}], deviation: {g.source})")

        seeds = f"{self.seeds} evaluation seeds x " if self.seeds > 1 else ""
        lines = [
            "Nash gap ESTIMATE (lower bound: best deviations found by the solvers; "
            f"Monte-Carlo, {seeds}{self.rollouts} rollouts x {self.horizon} steps, common "
            "random numbers)",
            f"  V(pi_g, pi_l) ~= {self.value.mean:.6g} +- {self.value.stderr:.2g}",
            line("gap_g", self.gap_g),
        ]
        if self.gap_g_full is not None:
            lines.append(line("gap_g (larger-k proxy for full information)", self.gap_g_full))
        lines.append(line("gap_l", self.gap_l))
        lines.append(f"  NashGap >= {self.nash_gap_lower_bound:.4g} (estimate)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Notebook display: the value, each player's best deviation with its interval."""
        parts = [("gap_g", self.gap_g), ("gap_g (larger-k proxy)", self.gap_g_full),
                 ("gap_l", self.gap_l)]
        records = [[name, g.lower_bound, g.difference, g.ci95, g.source]
                   for name, g in parts if g is not None]
        seeds = f"{self.seeds} seeds x " if self.seeds > 1 else ""
        return html_table("Nash gap estimate (a lower bound)", [
            ("V(pi_g, pi_l)", self.value.mean), ("standard error", self.value.stderr),
            ("NashGap >=", self.nash_gap_lower_bound),
            ("rollouts x horizon", f"{seeds}{self.rollouts} x {self.horizon}"),
        ], columns=["player", ">=", "difference", "95% interval", "deviation"],
            records=records,
            note="best deviations found by the solvers; Monte-Carlo with common random numbers")


class NashGapCertificate(dict[str, Any]):
    """The JSON-friendly dict :func:`nash_gap_certificate` returns (a plain ``dict`` for
    every purpose: ``json.dumps``, equality, keys), shown as a table in notebooks."""

    def _repr_html_(self) -> str:
        """Notebook display: the gap, exact or a lower bound, with its interval."""
        exact = bool(self.get("exact"))
        rows: list[tuple[str, Any]] = [
            ("NashGap", self.get("nash_gap")),
            ("bound", "exact" if exact else "lower bound"),
        ]
        if "ci95" in self:
            rows.append(("95% interval of the best gain", tuple(self["ci95"])))
        for player in ("gap_g", "gap_l"):
            part = self.get(player)
            rows.append((player, part.get("lower_bound") if isinstance(part, dict) else part))
        rows += [(key, self[key]) for key in ("value", "k", "n", "states", "rollouts",
                                              "horizon", "seconds") if key in self]
        return html_table("Nash-gap certificate", rows, note=str(self.get("method", "")))


def _best_deviation(
    game: TabularGame | GenerativeGame,
    player: str,
    candidates: dict[str, Any],
    current: tuple[Any, Any],
    cur_evals: list[Evaluation],
    rollouts: int,
    horizon: int,
    sel_seeds: list[int],
    workers: int | None,
) -> GapEstimate:
    pi_g, pi_l = current
    bounds = game.reward_bounds
    tail = None if bounds is None else truncation_bias(game.gamma, horizon, *bounds)
    if not candidates:  # no deviation available: the current policy itself
        return GapEstimate(player, 0.0, 0.0, (0.0, 0.0), float(cur_evals[0].mean), None,
                           "none", truncation=tail)
    widen = tail or 0.0

    def joint(p: Any) -> tuple[Any, Any]:
        return (p, pi_l) if player == "global" else (pi_g, p)

    sel_values: dict[str, float] = {}
    if len(candidates) > 1:
        for name, p in candidates.items():
            sel_values[name] = float(np.mean([
                evaluate(game, *joint(p), rollouts=rollouts, horizon=horizon, seed=s,
                         workers=workers).mean for s in sel_seeds]))
        best = max(sel_values, key=lambda nm: sel_values[nm])
    else:
        best = next(iter(candidates))
    dev = candidates[best]
    evs = [evaluate(game, *joint(dev), rollouts=rollouts, horizon=horizon, seed=cur.seed,
                    workers=workers) for cur in cur_evals]
    pairs = [paired_difference(ev, cur) for ev, cur in zip(evs, cur_evals, strict=True)]
    if len(pairs) == 1:
        diff, se = pairs[0]
        half = Z95 * se + widen
        return GapEstimate(player, diff, se, (diff - half, diff + half), evs[0].mean,
                           dev, best, sel_values, truncation=tail)
    per_seed = [d for d, _ in pairs]
    S = len(per_seed)
    iv = seed_interval(per_seed)  # Student-t over the seeds
    diff, se = iv.mean, float(iv.stderr or 0.0)
    half = float(iv.quantile or 0.0) * se + widen
    return GapEstimate(player, diff, se, (diff - half, diff + half),
                       float(np.mean([e.mean for e in evs])), dev, best, sel_values,
                       interval=f"Student-t ({S - 1} degrees of freedom) over {S} "
                                "evaluation seeds, each a paired CRN difference",
                       seeds=S, per_seed=per_seed, truncation=tail)


def _g_learner(generative: bool) -> Callable[..., Any]:
    """G-LEARN for the game's kind: neural G-LEARN with all its options on generative games
    (``am.g_learn`` passes it only ``m``), tabular G-LEARN otherwise."""
    if generative:
        from altmarl.generative.neural import neural_g_learn

        return neural_g_learn
    from altmarl.glearn import g_learn

    return g_learn


def _m(m: int | None, generative: bool) -> Any:
    """G-LEARN's ``m``; neural G-LEARN has no exact expectation (``None``: its default 10)."""
    return (10 if m is None else m) if generative else m


#: default L-LEARN deviations per kind of game
TABULAR_LOCAL_SOLVERS = ("induced-vi", "direct")
GENERATIVE_LOCAL_SOLVERS = ("trpo", "trpo-representative")
#: default evaluation seeds of a generative game's estimate (tabular games: 1)
GENERATIVE_SEEDS = 5


def estimate_nash_gap(
    game: TabularGame | GenerativeGame,
    pi_g: Any,
    pi_l: Any,
    *,
    rollouts: int = 200,
    horizon: int = 100,
    seed: int = 0,
    m: int | None = 30,
    local_solvers: tuple[str, ...] | None = None,
    k_full: int | None = None,
    extra_global: dict[str, Any] | None = None,
    extra_local: dict[str, Any] | None = None,
    g_learn_options: dict[str, Any] | None = None,
    l_learn_options: dict[str, dict[str, Any]] | None = None,
    workers: int | None = None,
    seeds: int | None = None,
    learn: bool = True,
) -> NashGapEstimate:
    """Estimate the Nash gap of ``(pi_g, pi_l)`` on a large game (SPEC 7): a **lower
    bound** given by the best deviations the solvers find, with Monte-Carlo values.

    On a :class:`~altmarl.GenerativeGame` (SPEC 11) the deviations come from the neural
    learners (``am.g_learn``: fitted Q-iteration; ``am.l_learn``: TRPO, both variants) and
    every value from the per-agent simulator; any policy kind is accepted.

    Parameters
    ----------
    rollouts, horizon, seed
        Monte-Carlo budget; every policy is evaluated with the same seeds (common random
        numbers), candidate selection uses independent seeds.
    seeds
        Evaluation seeds ``S`` (default 1 on tabular games, :data:`GENERATIVE_SEEDS` on
        generative ones). ``S = 1``: the seed ``seed``, a normal interval over the
        rollouts' paired differences. ``S > 1``: ``seed`` and ``S - 1`` derived seeds,
        each giving one paired difference (same rollouts for the deviation and the current
        pair), and a Student-t interval over the ``S`` differences; the selection of the
        best candidate averages over ``S`` independent selection seeds.
    m
        G-LEARN samples per ``(s_g, h, a_g)`` (``None``: exact expectation, small ``k``;
        on generative games: draws per Bellman target).
    local_solvers
        L-LEARN solvers to try (default ``("induced-vi", "direct")`` on tabular games,
        ``("trpo", "trpo-representative")`` on generative ones).
    k_full
        If given (``pi_g.k < k_full <= n``), also learn a G-LEARN policy with this larger
        subsample as a proxy for the full-information comparator.
    extra_global, extra_local
        Further named candidate deviations (e.g. heuristics).
    g_learn_options, l_learn_options
        Extra keyword arguments for ``g_learn`` and, per solver name, for ``l_learn``.
    learn
        ``False``: no learner runs (no G-LEARN, no L-LEARN, ``k_full`` ignored); the
        deviations are ``extra_global`` / ``extra_local`` only, and a player without one
        gets the difference 0 (source ``"none"``). The cheap certificate of run
        directories (:func:`nash_gap_certificate`).
    """
    from altmarl.llearn import l_learn

    generative = isinstance(game, GenerativeGame)
    g_learn = _g_learner(generative)
    if local_solvers is None:
        local_solvers = GENERATIVE_LOCAL_SOLVERS if generative else TABULAR_LOCAL_SOLVERS
    rollouts = check_int("rollouts", rollouts, minimum=2)
    horizon = check_int("horizon", horizon, minimum=2)
    S = check_int("seeds", seeds if seeds is not None else (GENERATIVE_SEEDS if generative
                                                            else 1), minimum=1)
    if k_full is not None:
        k_full = game.check_k(k_full)
    t0 = time.perf_counter()
    # learners' seeds from child 0 of the root seed, the selection seeds from child 1 (and
    # child (3, e)), the further evaluation seeds from child (2, e)
    learn_seeds = [int(x) for x in child(seed, 0).generate_state(2 + len(local_solvers))]
    sel_seeds = [int_seed(child(seed, 1))] + [int_seed(child(seed, 3, e)) for e in range(1, S)]
    eval_seeds = [seed] + [int_seed(child(seed, 2, e)) for e in range(1, S)]
    curs = [evaluate(game, pi_g, pi_l, rollouts=rollouts, horizon=horizon, seed=s,
                     workers=workers) for s in eval_seeds]
    gopts = dict(g_learn_options or {})
    if workers is not None and not generative:  # G-LEARN's threads follow the evaluations'
        gopts.setdefault("threads", check_int("workers", workers, 1))

    # global deviations: G-LEARN at the same k (+ extras)
    g_cands: dict[str, Any] = {}
    if learn:
        g_cands[f"g_learn(k={pi_g.k}, m={m})"] = g_learn(
            game, pi_l, k=pi_g.k, m=_m(m, generative), seed=learn_seeds[0], **gopts)
    for name, p in (extra_global or {}).items():
        if p.k != pi_g.k:
            raise ValueError(f"extra_global[{name!r}].k = {p.k}: expected k = {pi_g.k} "
                             "(restricted comparator)")
        g_cands[name] = p
    gap_g = _best_deviation(game, "global", g_cands, (pi_g, pi_l), curs, rollouts, horizon,
                            sel_seeds, workers)
    gap_g_full = None
    if k_full is not None and learn:
        dev = g_learn(game, pi_l, k=k_full, m=_m(m, generative), seed=learn_seeds[1], **gopts)
        gap_g_full = _best_deviation(game, "global", {f"g_learn(k={k_full}, m={m})": dev},
                                     (pi_g, pi_l), curs, rollouts, horizon, sel_seeds, workers)

    # local deviations: every requested L-LEARN solver (+ extras)
    l_cands: dict[str, Any] = {}
    lopts = l_learn_options or {}
    for i, solver in enumerate(local_solvers if learn else ()):
        l_cands[f"l_learn({solver})"] = l_learn(game, pi_g, solver=solver,
                                                seed=learn_seeds[2 + i], pi_l=pi_l,
                                                estimate_value=False, **lopts.get(solver, {}))
    l_cands.update(extra_local or {})
    if not l_cands and learn:
        raise ValueError("local_solvers: expected at least one solver or extra_local policy")
    gap_l = _best_deviation(game, "local", l_cands, (pi_g, pi_l), curs, rollouts, horizon,
                            sel_seeds, workers)
    return NashGapEstimate(curs[0], gap_g, gap_l, gap_g_full, rollouts, horizon, seed,
                           time.perf_counter() - t0, seeds=S,
                           seed_values=[float(c.mean) for c in curs])


# ---------------------------------------------------------------------------
# the certificate of a run directory
# ---------------------------------------------------------------------------

#: chain states up to which :func:`nash_gap_certificate` computes the exact gap (a chain
#: of this size and its bounded best responses take about a second)
CERTIFICATE_MAX_STATES = 320
#: enumeration limit and search budget of the certificate's best responses
CERTIFICATE_MAX_POLICIES = 64
CERTIFICATE_SEARCH_EVALS = 30
#: Monte-Carlo rollouts of the estimated certificate
CERTIFICATE_ROLLOUTS = 200
#: what :func:`nash_gap_certificate` may do
CERTIFICATE_MODES = ("auto", "exact", "estimate")


def nash_gap_certificate(
    game: TabularGame | GenerativeGame,
    pi_g: Any,
    pi_l: Any,
    *,
    deviations: dict[str, Any] | None = None,
    mode: str = "auto",
    seed: int = 0,
    rollouts: int = CERTIFICATE_ROLLOUTS,
    horizon: int | None = None,
    max_states: int = CERTIFICATE_MAX_STATES,
    workers: int | None = None,
) -> NashGapCertificate:
    """The Nash-gap certificate of a final pair (Definition D.1, SPEC 7), JSON-friendly:
    what every run directory writes under ``nash_gap``.

    * **exact** (``mode = "auto"`` when the chain has at most ``max_states`` states, or
      ``"exact"``): :func:`exact_nash_gap` with the restricted comparator at ``pi_g.k``
      (enumerations up to :data:`CERTIFICATE_MAX_POLICIES` policies, else searches of
      :data:`CERTIFICATE_SEARCH_EVALS` evaluations; no stochastic refinement) —
      ``{"exact", "bound": "exact" | "lower", "nash_gap", "nash_gap_full", "gap_g",
      "gap_g_exact", "gap_g_full", "gap_l", "gap_l_exact", "value", "states", ...}``;
      ``exact`` is true when ``nash_gap`` is exact (:attr:`NashGapResult.exact`; otherwise
      a restricted search or the stochastic local policies make it a lower bound).
    * **estimate** (larger games, or ``mode = "estimate"``): :func:`estimate_nash_gap`
      without new learning (``learn=False``): the deviations are ``deviations``
      (``{"global": pi_g', "local": pi_l'}``, e.g. the run's last proposals), evaluated
      with ``rollouts`` x ``horizon`` (default :func:`altmarl.update.evaluation_horizon`)
      common-random-numbers rollouts of ``seed``, independent of the run's own (one
      evaluation seed, also on generative games). Without deviations nothing is simulated:
      ``nash_gap = 0``, ``value = None``. Generative games always get this path.
      ``{"exact": false, "bound": "lower", "nash_gap": max(0, best difference),
      "ci95", "gap_g", "gap_l", "value", ...}``: the true gap is *at least* ``nash_gap``
      up to Monte-Carlo error; ``ci95`` is an interval for the best deviation's
      infinite-horizon gain (each player's normal 95% interval widened by the truncation
      bound; the interval of the maximum is ``[max of lows, max of highs]``). A player
      without a deviation contributes 0.

    Cost: the exact path, at most about ``1 + 2 x 64`` chain solves (about a second at 320
    states); the estimate, ``1 + len(deviations)`` evaluations.
    """
    check_choice("mode", mode, CERTIFICATE_MODES)
    t0 = time.perf_counter()
    devs = {p: d for p, d in (deviations or {}).items() if d is not None}
    bad = sorted(set(devs) - {"global", "local"})
    if bad:
        raise ValueError(f"deviations: unknown players {bad}; expected 'global' and 'local'")
    generative = isinstance(game, GenerativeGame)
    if not generative and not isinstance(game, TabularGame):
        raise ValueError(f"game: expected a TabularGame or a GenerativeGame, got "
                         f"{type(game).__name__}")
    if generative and mode == "exact":
        raise ValueError("mode = 'exact': the exact solver needs a TabularGame; a generative "
                         "game gets the estimate")
    states = (game.n_sg * num_histograms(game.n, game.n_sl)
              if isinstance(game, TabularGame) else None)
    chain = None
    if not isinstance(game, TabularGame):
        pass
    elif mode == "exact":  # up to the exact solver's own limit (refused above it)
        chain = CountChain(game, max_states=max(max_states, MAX_STATES))
    elif mode == "auto":
        try:
            chain = CountChain(game, max_states=max_states)
        except ValueError:  # too large, or no exact initial law: the estimate
            chain = None
    if chain is not None:
        scheme = pi_g.sampling
        # one BLAS thread: the same bits in a driver and in a pool worker (resume checks)
        with limit_blas_threads(1):
            r = exact_nash_gap(chain, pi_g, pi_l,
                               scheme.k if scheme.kind == "uniform" else scheme,
                               refine_local=False, max_search_evals=CERTIFICATE_SEARCH_EVALS,
                               max_restricted_policies=CERTIFICATE_MAX_POLICIES,
                               max_local_policies=CERTIFICATE_MAX_POLICIES)
        return NashGapCertificate({
            "exact": r.exact, "bound": "exact" if r.exact else "lower",
            "method": "exact chain (SPEC 7): best responses minus V(pi_g, pi_l)",
            "nash_gap": r.nash_gap if r.nash_gap is not None else r.nash_gap_full,
            "nash_gap_full": r.nash_gap_full, "gap_g": r.gap_g, "gap_g_exact": r.gap_g_exact,
            "gap_g_full": r.gap_g_full, "gap_l": r.gap_l, "gap_l_exact": r.gap_l_exact,
            "value": r.value, "k": r.k, "n": r.n, "states": chain.n_states,
            "seconds": time.perf_counter() - t0,
        })
    H = evaluation_horizon(game.gamma) if horizon is None else horizon
    method = ("estimate (lower bound): the deviations found (the run's last proposals) "
              "against the final pair, Monte-Carlo with common random numbers")
    if not devs:  # nothing to evaluate: the trivial lower bound, no simulation
        bounds = game.reward_bounds
        tail = None if bounds is None else truncation_bias(game.gamma, H, *bounds)
        none = {"lower_bound": 0.0, "difference": 0.0, "stderr": 0.0, "ci95": [0.0, 0.0],
                "truncation": tail, "source": "none"}
        return NashGapCertificate({
                "exact": False, "bound": "lower",
                "method": "estimate (lower bound): no deviation available, the gap is >= 0",
                "nash_gap": 0.0, "ci95": [0.0, 0.0], "gap_g": none, "gap_l": dict(none),
                "value": None, "value_stderr": None, "k": pi_g.k, "n": game.n,
                "states": states, "rollouts": 0, "horizon": H, "seed": seed,
                "seconds": time.perf_counter() - t0})
    est = estimate_nash_gap(
        game, pi_g, pi_l, rollouts=rollouts, horizon=H, seed=seed, learn=False, seeds=1,
        extra_global={"last global proposal": devs["global"]} if "global" in devs else None,
        extra_local={"last local proposal": devs["local"]} if "local" in devs else None,
        workers=workers)

    def part(g: GapEstimate) -> dict[str, Any]:
        return {"lower_bound": g.lower_bound, "difference": g.difference, "stderr": g.stderr,
                "ci95": list(g.ci95), "truncation": g.truncation, "source": g.source}

    g, loc = est.gap_g, est.gap_l
    return NashGapCertificate({
        "exact": False, "bound": "lower",
        "method": method,
        "nash_gap": est.nash_gap_lower_bound,
        "ci95": [max(g.ci95[0], loc.ci95[0]), max(g.ci95[1], loc.ci95[1])],
        "gap_g": part(g), "gap_l": part(loc), "value": est.value.mean,
        "value_stderr": est.value.stderr, "k": pi_g.k, "n": game.n, "states": states,
        "rollouts": rollouts, "horizon": H, "seed": seed,
        "seconds": time.perf_counter() - t0,
    })


__all__ = [
    "CERTIFICATE_MAX_POLICIES",
    "CERTIFICATE_MAX_STATES",
    "CERTIFICATE_MODES",
    "CERTIFICATE_ROLLOUTS",
    "CERTIFICATE_SEARCH_EVALS",
    "GapEstimate",
    "NashGapCertificate",
    "NashGapEstimate",
    "NashGapResult",
    "estimate_nash_gap",
    "exact_nash_gap",
    "nash_gap_certificate",
]
