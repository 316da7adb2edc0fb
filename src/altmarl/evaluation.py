"""Monte-Carlo evaluation of a joint policy (SPEC 3, eq. 2).

``V(pi_g, pi_l) = E[sum_t gamma^t r(s(t), a(t))]`` from the initial distribution,
estimated over ``R`` rollouts of horizon ``H`` with the count simulator
(:func:`evaluate`), and the value-estimate vocabulary the learners share:
:class:`ValueEstimate`, the :data:`Evaluator` protocol and :func:`mc_evaluator`. UPDATE
compares such estimates with :func:`altmarl.update.compare` (paired standard error,
:func:`altmarl.update.paired_stderr`).

Reproducibility: the rollouts are cut into fixed chunks of ``CHUNK`` rollouts and chunk
``j`` uses ``SeedSequence(seed).spawn(...)[j]``; chunks run on a thread pool (NumPy's
samplers release the GIL), so the numbers do not depend on the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from altmarl._validate import check_int, check_open_unit
from altmarl.display import html_table
from altmarl.game import TabularGame
from altmarl.generative import GenerativeGame, GlobalActor, LocalActor
from altmarl.generative.simulator import chunk_sizes, concat_chunks
from altmarl.generative.simulator import simulate as simulate_generative
from altmarl.limits import INT64_MAX, check_simulation
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme
from altmarl.simulate import Trajectories, rollout_agents, rollout_counts
from altmarl.threads import default_threads, map_threads

if TYPE_CHECKING:
    from altmarl.glearn.rewards import RewardModel

FloatArray = NDArray[np.float64]

#: rollouts per independently seeded chunk
CHUNK = 128

#: two-sided 95% standard normal quantile ``Phi^{-1}(0.975)``: the 95% interval over the
#: rollouts of one evaluation (hundreds of them) is ``mean +- Z95 * stderr``
#: (:func:`altmarl.update.normal_quantile` computes other levels); intervals over a few
#: seeds use Student's t (:func:`seed_interval`)
Z95 = 1.959963984540054


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df >= 1`` degrees of freedom (``scipy``);
    ``student_t_quantile(0.975, 14) = 2.145``, ``(0.975, 4) = 2.776``."""
    from scipy.stats import t as student_t

    if isinstance(df, bool) or int(df) != df or df < 1:
        raise ValueError(f"df = {df!r}: expected an integer >= 1")
    if not 0 < p < 1:
        raise ValueError(f"p = {p!r}: expected a number in (0, 1)")
    return float(student_t.ppf(p, int(df)))


@dataclass(frozen=True)
class SeedInterval:
    """Mean of ``n`` independent per-seed values with its Student-t interval
    (:func:`seed_interval`): ``std`` the sample standard deviation (``ddof = 1``),
    ``stderr = std / sqrt(n)``, ``quantile`` the t quantile with ``n - 1`` degrees of
    freedom, ``ci = (mean - quantile stderr, mean + quantile stderr)``; ``stderr``,
    ``quantile`` and ``ci`` are ``None`` for one value."""

    mean: float
    std: float
    stderr: float | None
    ci: tuple[float, float] | None
    quantile: float | None
    n: int
    confidence: float

    def summary(self) -> dict[str, Any]:
        """JSON-friendly dict (``ci`` as a list)."""
        return {"mean": self.mean, "std": self.std, "stderr": self.stderr,
                "ci": None if self.ci is None else list(self.ci), "quantile": self.quantile,
                "n": self.n, "confidence": self.confidence,
                "interval": "Student-t over seeds"}


def seed_interval(values: Any, confidence: float = 0.95) -> SeedInterval:
    """Interval estimate of the mean of a few per-seed values (SPEC 3, 9): Student's t with
    ``n - 1`` degrees of freedom, ``mean +- t_{n-1, (1 + confidence) / 2} std / sqrt(n)``.

    The one helper for intervals over seeds (per-``k`` rows of a sweep over 5 or 15
    evaluation seeds, the uniform-play baseline, per-seed paired differences of the
    estimated Nash gap, fits of the theory experiment): with so few values the normal
    quantile makes the 95% interval 9% (15 seeds) to 29% (5 seeds) too narrow.
    Per-rollout intervals over hundreds of rollouts keep :data:`Z95`. One value: std 0 and
    no interval."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("values: expected at least one value")
    if not np.all(np.isfinite(v)):
        raise ValueError("values: expected finite numbers")
    check_open_unit("confidence", confidence)
    n = int(v.size)
    mean = float(v.mean())
    if n == 1:
        return SeedInterval(mean, 0.0, None, None, None, 1, float(confidence))
    std = float(v.std(ddof=1))
    se = std / math.sqrt(n)
    q = student_t_quantile(0.5 + confidence / 2, n - 1)
    return SeedInterval(mean, std, se, (mean - q * se, mean + q * se), q, n, float(confidence))


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    ``mean``, ``stderr``, ``ci95`` of the discounted return; ``truncation_bound`` =
    ``gamma^H r_max / (1 - gamma)`` (the bias from stopping at ``H``); ``returns`` per
    rollout; per-step means over rollouts: ``reward_per_step`` (H,), ``occupancy``
    (H, |S_l|) fraction of agents per local state, ``global_occupancy`` (H, |S_g|),
    ``mode_match`` (H,) fraction of rollouts where ``a_g`` equals the population mode
    (``None`` unless ``|A_g| = |S_l|``).
    """

    mean: float
    stderr: float
    ci95: tuple[float, float]
    truncation_bound: float
    returns: FloatArray
    reward_per_step: FloatArray
    occupancy: FloatArray
    global_occupancy: FloatArray
    mode_match: FloatArray | None
    rollouts: int
    horizon: int
    seed: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mode_match_rate(self) -> float | None:
        """Overall fraction of steps where ``a_g`` equals the population mode."""
        return None if self.mode_match is None else float(self.mode_match.mean())

    def summary(self) -> dict[str, Any]:
        """JSON-friendly scalar summary."""
        return {
            "mean": self.mean,
            "stderr": self.stderr,
            "ci95": list(self.ci95),
            "truncation_bound": self.truncation_bound,
            "rollouts": self.rollouts,
            "horizon": self.horizon,
            "seed": self.seed,
            "mode_match_rate": self.mode_match_rate,
        }

    def __repr__(self) -> str:
        lo, hi = self.ci95
        return (f"Evaluation(mean={self.mean:.4f}, stderr={self.stderr:.4f}, "
                f"ci95=({lo:.4f}, {hi:.4f}), R={self.rollouts}, H={self.horizon})")

    def _repr_html_(self) -> str:
        """Notebook display: the value with its interval and the evaluation protocol."""
        rows: list[tuple[str, Any]] = [
            ("V(pi_g, pi_l)", self.mean), ("standard error", self.stderr),
            ("95% interval", self.ci95),
            ("rollouts x horizon", f"{self.rollouts} x {self.horizon}"),
            ("seed", self.seed), ("truncation bound", self.truncation_bound),
        ]
        if self.mode_match_rate is not None:
            rows.append(("a_g = population mode", f"{self.mode_match_rate:.1%} of steps"))
        return html_table("Evaluation", rows,
                          note="discounted return over rollouts (SPEC eq. 2)")


def simulate_batched(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    rollouts: int,
    horizon: int,
    seed: int | np.random.SeedSequence | None,
    workers: int | None = None,
    simulator: str = "counts",
    record_counts: bool = True,
    reward_model: RewardModel | None = None,
    sampling: Scheme | None = None,
) -> Trajectories:
    """Run the simulator in fixed, independently seeded chunks and concatenate them.

    ``reward_model`` (count simulator only) draws stochastic rewards, see
    :func:`altmarl.simulate.rollout_counts`; ``sampling`` the global agent's sampling scheme
    (default the policy's own)."""
    if simulator not in ("counts", "agents"):
        raise ValueError(f"simulator = {simulator!r}: expected 'counts' or 'agents'")
    if reward_model is not None and simulator != "counts":
        raise ValueError("reward_model: stochastic rewards are drawn by the count simulator "
                         "only; use simulator='counts'")
    extra: dict[str, Any] = {} if reward_model is None else {"reward_model": reward_model}
    if sampling is not None:
        extra["sampling"] = sampling
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    sizes = chunk_sizes(rollouts, CHUNK)
    seqs = ss.spawn(len(sizes))
    fn = rollout_counts if simulator == "counts" else rollout_agents

    def run(j: int) -> Trajectories:
        rng = np.random.default_rng(seqs[j])
        out: Trajectories = fn(game, pi_g, pi_l, sizes[j], horizon, rng,
                               record_counts=record_counts, **extra)
        return out

    w = default_threads() if workers is None else max(1, int(workers))
    parts = map_threads(run, len(sizes), w)
    return Trajectories(*(concat_chunks(parts, name) for name in
                          ("rewards", "s_g", "a_g", "counts", "mode_match")))


def evaluate(
    game: TabularGame | GenerativeGame,
    pi_g: GlobalPolicy | GlobalActor,
    pi_l: LocalPolicy | LocalActor,
    rollouts: int = 50,
    horizon: int = 100,
    seed: int | None = 0,
    workers: int | None = None,
    simulator: str = "counts",
    reward_model: RewardModel | None = None,
    sampling: Scheme | None = None,
) -> Evaluation:
    """Estimate ``V(pi_g, pi_l)`` (SPEC eq. 2) by online execution (Algorithm 5).

    Parameters
    ----------
    rollouts, horizon
        ``R`` independent rollouts of ``H`` steps.
    seed
        Drives every random draw; same seed, same numbers for any ``workers``.
    workers
        Threads (default: the CPU count).
    simulator
        ``"counts"`` (default, cost independent of ``n``) or ``"agents"``.
    reward_model
        Optional :class:`altmarl.RewardModel` (Appendix F): rewards are drawn
        from it (count simulator only); ``truncation_bound`` then uses its ``r_max``.
    sampling
        How the global agent's sample is drawn (:mod:`altmarl.sampling`, SPEC 12). Default:
        the policy's own scheme (``pi_g.sampling``, ``Uniform(k)`` unless it was made for
        another). Another scheme executes the policy under it (e.g. a uniformly trained
        policy under ``Weighted`` telemetry); its samples must be histograms the policy can
        act on (``ValueError`` otherwise). ``extra["sampling"]`` records the scheme used.

    Notes
    -----
    A :class:`~altmarl.generative.GenerativeGame`, or policies that are not the tabular
    classes (any object with the protocol of :mod:`altmarl.generative.policies`), are
    evaluated by :func:`evaluate_generative` (per-agent simulator; ``simulator`` is then
    ignored; a tabular game is seen through ``as_generative()``).
    """
    if isinstance(game, GenerativeGame) or not (
            isinstance(pi_g, GlobalPolicy) and isinstance(pi_l, LocalPolicy)):
        if reward_model is not None:
            raise ValueError("reward_model: stochastic rewards need a tabular game and tabular "
                             "policies (count simulator)")
        if sampling is not None:
            raise ValueError("sampling: sampling schemes need a tabular game and tabular "
                             "policies (altmarl.sampling)")
        gen = game if isinstance(game, GenerativeGame) else game.as_generative()
        return evaluate_generative(gen, pi_g, pi_l, rollouts, horizon, seed, workers)
    rollouts = check_int("rollouts", rollouts, 1, INT64_MAX)
    horizon = check_int("horizon", horizon, 1, INT64_MAX)
    # memory: rewards, s_g, a_g, mode and counts per (rollout, step); time: k sampled agents
    # per step (counts) or all n agents (agents)
    check_simulation("evaluate", rollouts, horizon, game.n_sl + 3,
                     game.n if simulator == "agents" else min(pi_g.k, game.n) + game.n_sl)
    traj = simulate_batched(game, pi_g, pi_l, int(rollouts), int(horizon), seed, workers, simulator,
                            reward_model=reward_model, sampling=sampling)
    used = pi_g.sampling if sampling is None else sampling
    r_max = game.r_max if reward_model is None else reward_model.r_max
    returns = traj.discounted_returns(game.gamma)
    R = returns.size
    mean = float(returns.mean())
    stderr = float(returns.std(ddof=1) / math.sqrt(R)) if R > 1 else float("nan")
    half = Z95 * stderr if R > 1 else float("nan")
    assert traj.counts is not None
    occ = (traj.counts / game.n).mean(axis=0)
    gocc = np.stack([(traj.s_g == g).mean(axis=0) for g in range(game.n_sg)], axis=1)
    return Evaluation(
        mean=mean,
        stderr=stderr,
        ci95=(mean - half, mean + half),
        truncation_bound=float(game.gamma**horizon * r_max / (1 - game.gamma)),
        returns=returns,
        reward_per_step=traj.rewards.mean(axis=0),
        occupancy=occ,
        global_occupancy=gocc,
        mode_match=None if traj.mode_match is None else traj.mode_match.mean(axis=0),
        rollouts=R,
        horizon=int(horizon),
        seed=seed,
        extra={} if sampling is None else {"sampling": used.to_json()},
    )


# ---------------------------------------------------------------------------
# value estimates and evaluators (the objects ALTERNATING-MARL, L-LEARN and nash compare)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueEstimate:
    """An estimate of ``V(pi_g, pi_l)``: ``mean``, ``stderr`` and, for Monte-Carlo
    estimates, the per-rollout discounted ``returns`` (used for paired, common-random-
    numbers standard errors of differences). Exact values have ``stderr = 0``."""

    mean: float
    stderr: float = 0.0
    returns: FloatArray | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly scalars."""
        return {"mean": self.mean, "stderr": self.stderr}

    def _repr_html_(self) -> str:
        """Notebook display: mean, standard error and how many rollouts (or exact)."""
        how = "exact" if self.returns is None else f"{len(self.returns)} rollouts"
        return html_table("ValueEstimate", [("V(pi_g, pi_l)", self.mean),
                                            ("standard error", self.stderr), ("from", how)])


#: ``evaluator(pi_g, pi_l) -> ValueEstimate``
Evaluator = Callable[[GlobalPolicy, LocalPolicy], ValueEstimate]


def mc_evaluator(
    game: TabularGame,
    rollouts: int = 50,
    horizon: int = 100,
    seed: int = 0,
    workers: int | None = None,
    sampling: Scheme | None = None,
) -> Evaluator:
    """Monte-Carlo evaluator with a fixed seed (SPEC 3): every call uses the same seed, so
    two calls are common-random-numbers estimates (same initial states per rollout).
    ``sampling``: the scheme every evaluation draws with (default each policy's own)."""

    def ev(pi_g: GlobalPolicy, pi_l: LocalPolicy) -> ValueEstimate:
        e = evaluate(game, pi_g, pi_l, rollouts=rollouts, horizon=horizon, seed=seed,
                     workers=workers, sampling=sampling)
        se = e.stderr if math.isfinite(e.stderr) else 0.0
        return ValueEstimate(e.mean, se, e.returns)

    return ev


def evaluate_generative(
    game: GenerativeGame,
    pi_g: Any,
    pi_l: Any,
    rollouts: int = 50,
    horizon: int = 100,
    seed: int | None = 0,
    workers: int | None = None,
) -> Evaluation:
    """:func:`evaluate` on a generative game (SPEC 3, 11): the per-agent simulator
    :func:`altmarl.generative.simulator.simulate`, any policies with the protocol of
    :mod:`altmarl.generative.policies`.

    Records: ``occupancy`` ``(H, bins)`` per population bin (per local state when they are
    discrete, per histogram bin for scalar states: ``game.population_bins``; else
    ``(H, 0)``), ``global_occupancy`` ``(H, |S_g|)`` for discrete global states (else
    ``(H, 0)``); ``mode_match`` when ``|A_g|`` equals the number of bins;
    ``truncation_bound`` is NaN unless the game declares ``r_max``.
    """
    traj = simulate_generative(game, pi_g, pi_l, rollouts, horizon, seed, workers)
    H = int(horizon)
    returns = traj.discounted_returns(game.gamma)
    R = returns.size
    mean = float(returns.mean())
    stderr = float(returns.std(ddof=1) / math.sqrt(R)) if R > 1 else float("nan")
    half = Z95 * stderr if R > 1 else float("nan")
    occ = (np.zeros((H, 0)) if traj.counts is None else (traj.counts / game.n).mean(axis=0))
    if traj.s_g is None or game.n_sg is None:
        gocc = np.zeros((H, 0))
    else:
        gocc = np.stack([(traj.s_g == g).mean(axis=0) for g in range(game.n_sg)], axis=1)
    bound = (float("nan") if game.r_max is None
             else float(game.gamma**H * game.r_max / (1 - game.gamma)))
    return Evaluation(
        mean=mean, stderr=stderr, ci95=(mean - half, mean + half), truncation_bound=bound,
        returns=returns, reward_per_step=traj.rewards.mean(axis=0), occupancy=occ,
        global_occupancy=gocc,
        mode_match=None if traj.mode_match is None else traj.mode_match.mean(axis=0),
        rollouts=R, horizon=H, seed=seed, extra={"simulator": "generative", "game": game.name},
    )
