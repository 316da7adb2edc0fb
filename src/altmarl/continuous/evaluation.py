"""Monte-Carlo evaluation on the continuous warehouse (SPEC 3, eq. 2; NumPy only).

``V(pi_g, pi_l) = E[sum_{t < H} gamma^t r_t]`` from the initial distribution of SPEC 8.2,
estimated over ``R`` rollouts of the full ``n``-robot system. The same rollouts also give
the return truncated at any shorter horizon (the authors' code reports ``H = 50``), the
per-step reward, the zone occupancy over time and how often the dispatcher's action is the
population mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl.continuous.env import (
    ContinuousTrajectories,
    ContinuousWarehouse,
    GlobalActor,
    LocalActor,
    random_global,
    random_local,
    simulate,
)
from altmarl.evaluation import student_t_quantile

FloatArray = NDArray[np.float64]



@dataclass
class ContinuousEvaluation:
    """Result of :func:`evaluate_continuous`.

    ``mean``, ``std`` (over rollouts), ``stderr``, ``ci95`` (Student-t over the rollouts) of the
    discounted return over the
    full horizon; ``short`` maps a shorter horizon (e.g. 50) to its mean and std; per-step
    means ``reward_per_step (H,)``, ``occupancy (H, B)`` (fraction of robots per bin),
    ``mode_match (H,)``; ``initial_mode_match`` the same against the initial mode (the
    authors' heat-map definition); ``trace`` one rollout's occupancy, actions and modes.
    """

    mean: float
    std: float
    stderr: float
    ci95: tuple[float, float]
    returns: FloatArray
    short: dict[int, dict[str, float]]
    reward_per_step: FloatArray
    occupancy: FloatArray
    mode_match: FloatArray
    initial_mode_match: float
    rollouts: int
    horizon: int
    gamma: float
    trace: dict[str, Any] = field(default_factory=dict)

    @property
    def mode_match_rate(self) -> float:
        """Fraction of (rollout, step) pairs where ``a_g`` is the current population mode."""
        return float(self.mode_match.mean())

    def summary(self) -> dict[str, Any]:
        """JSON-friendly scalars (plus the per-step curves as lists)."""
        return {
            "mean": self.mean, "std": self.std, "stderr": self.stderr, "ci95": list(self.ci95),
            "rollouts": self.rollouts, "horizon": self.horizon, "gamma": self.gamma,
            "short_horizons": {str(h): v for h, v in self.short.items()},
            "mode_match_rate": self.mode_match_rate,
            "initial_mode_match_rate": self.initial_mode_match,
            "reward_per_step": self.reward_per_step.tolist(),
            "mode_match": self.mode_match.tolist(),
            "occupancy": self.occupancy.tolist(),
            "trace": self.trace,
        }


def summarize(env: ContinuousWarehouse, tr: ContinuousTrajectories,
              short_horizons: tuple[int, ...] = (50,)) -> ContinuousEvaluation:
    """Turn trajectories into a :class:`ContinuousEvaluation`."""
    R, H = tr.rewards.shape
    ret = tr.discounted_returns(env.gamma)
    mean = float(ret.mean())
    std = float(ret.std(ddof=1)) if R > 1 else float("nan")
    se = std / math.sqrt(R) if R > 1 else float("nan")
    short = {}
    for h in short_horizons:
        if 1 <= h < H:
            r = tr.discounted_returns(env.gamma, h)
            short[int(h)] = {"mean": float(r.mean()),
                             "std": float(r.std(ddof=1)) if R > 1 else float("nan")}
    occ = tr.counts / env.n
    trace = {"occupancy": occ[0].tolist(), "a_g": tr.a_g[0].tolist(),
             "mode": np.argmax(tr.counts[0], axis=1).tolist(),
             "initial_mode": int(tr.initial_mode[0]), "s_g": tr.s_g[0].tolist()}
    # over R rollouts: Student-t with R - 1 degrees of freedom (the default 50 rollouts are too
    # few for the normal quantile to be accurate to 1%)
    half = student_t_quantile(0.975, R - 1) * se if R > 1 else float("nan")
    return ContinuousEvaluation(
        mean=mean, std=std, stderr=se, ci95=(mean - half, mean + half), returns=ret,
        short=short, reward_per_step=tr.rewards.mean(axis=0), occupancy=occ.mean(axis=0),
        mode_match=tr.mode_match.mean(axis=0),
        initial_mode_match=float((tr.a_g == tr.initial_mode[:, None]).mean()),
        rollouts=R, horizon=H, gamma=env.gamma, trace=trace)


def evaluate_continuous(env: ContinuousWarehouse, pi_g: GlobalActor, pi_l: LocalActor, k: int,
                        rollouts: int = 50, horizon: int = 100,
                        seed: int | np.random.SeedSequence | None = 0,
                        short_horizons: tuple[int, ...] = (50,),
                        subsample: str = "agents") -> ContinuousEvaluation:
    """Estimate ``V(pi_g, pi_l)`` (SPEC eq. 2) by online execution (Algorithm 5).

    Parameters
    ----------
    pi_g, pi_l
        Batch policies (see :mod:`altmarl.continuous.env`).
    k
        Dispatcher's subsample size.
    rollouts, horizon
        ``R`` rollouts of ``H`` steps (defaults: SPEC 8.2 / Table 4, 50 and 100).
    seed
        Same seed, same numbers; policies evaluated with the same seed share their
        random numbers.
    short_horizons
        Also report the return truncated at these horizons (same rollouts).
    """
    tr = simulate(env, pi_g, pi_l, k, rollouts, horizon, seed, subsample=subsample)
    return summarize(env, tr, short_horizons)


def random_play(env: ContinuousWarehouse, rollouts: int = 50, horizon: int = 100,
                seed: int | np.random.SeedSequence | None = 0,
                short_horizons: tuple[int, ...] = (50,)) -> ContinuousEvaluation:
    """Baseline: dispatcher and robots act uniformly at random (``k`` is irrelevant)."""
    return evaluate_continuous(env, random_global(env.n_ag), random_local(env.n_al), 1,
                               rollouts, horizon, seed, short_horizons)
