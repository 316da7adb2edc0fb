"""The UPDATE comparison of ALTERNATING-MARL (paper Algorithm 14, Lemma D.14; SPEC 6, 13).

The one home of everything UPDATE needs, used by every loop (tabular, continuous, and the
generative games to come) through :func:`compare`:

* the *paired* (common-random-numbers) standard error of ``V_new - V_old``
  (:func:`paired_difference`, :func:`paired_stderr`);
* the tolerance ``eta`` (:class:`EtaRule`): fixed, or automatic
  ``eta = z se_diff / 2 + learner_tol``, plus in both cases half the truncation bias bound
  ``tail / 2`` (SPEC 13, below);
* the three-case decision (:func:`update_decision`). Given estimated joint values
  ``V_new`` (with the proposal) and ``V_old`` (without) and a tolerance ``eta``
  (learner error + Monte-Carlo error):

  - ``V_new - eta > V_old + eta``  -> ``ACCEPT``  (intervals separated, new ahead);
  - ``V_new + eta < V_old - eta``  -> ``REJECT``  (new clearly worse: keep the old policy);
  - otherwise                       -> ``NO_IMPROVEMENT`` (intervals overlap: that player
    has no ``2 eta``-improving deviation; the old policy is kept);

* what a non-accepted comparison certifies (:func:`certified_gap`) and Lemma D.15's bound
  on the number of accepted updates (:func:`max_accepted_updates`).

Estimates are any objects with ``mean``, ``stderr`` and ``returns`` (per-rollout
discounted returns, or ``None`` for exact values): :class:`~altmarl.evaluation.Evaluation`,
``ValueEstimate``, the continuous loop's rollout estimates (:class:`Estimate`).

Truncation (SPEC 13). A Monte-Carlo value cut at horizon ``H`` estimates
``V_H = V - tail``; a paired difference ``V_new,H - V_old,H`` is off the infinite-horizon
difference ``V_new - V_old`` by at most ``tail = gamma^H (r_max - r_min) / (1 - gamma)``
(:func:`truncation_bias`; ``r_min``, ``r_max`` the *true* bounds of the stage reward, which
may be negative). :class:`EtaRule` carries that bound (``tail``, 0 for exact values) and
adds ``tail / 2`` to every ``eta``, and :func:`certified_gap` adds ``tail``, so the
guarantees hold for the infinite-horizon objective ``V`` itself:

* a proposal is accepted only when ``diff > z se_diff + 2 learner_tol + tail``: a truly
  worse proposal (``V_new <= V_old``) is accepted with probability at most
  ``(1 - confidence) / 2`` whatever the horizon (never because of truncation);
* a proposal that is not accepted has true gain ``V_new - V_old <= 2 eta + z se_diff +
  tail`` (one-sided, at the confidence of ``z``).

A short horizon stays sound but makes ``eta`` large (fewer accepted proposals); the
default evaluation horizons of the loops (:func:`evaluation_horizon`) make ``tail`` a
negligible ``1e-4`` of the value span ``(r_max - r_min) / (1 - gamma)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


class Decision(StrEnum):
    """Outcome of :func:`update_decision`."""

    ACCEPT = "accept"
    REJECT = "reject"
    NO_IMPROVEMENT = "no-improvement"


def update_decision(v_new: float, v_old: float, eta: float) -> Decision:
    """Three-case UPDATE rule (Lemma D.14). Only ``ACCEPT`` replaces the old policy."""
    if not eta >= 0:
        raise ValueError(f"eta = {eta!r}: expected a number >= 0")
    if v_new - eta > v_old + eta:
        return Decision.ACCEPT
    if v_new + eta < v_old - eta:
        return Decision.REJECT
    return Decision.NO_IMPROVEMENT


def max_accepted_updates(span: float, gamma: float, eta: float) -> float:
    """Lemma D.15: at most ``span / ((1 - gamma) 2 eta)`` accepted updates, with
    ``span = r_max - r_min`` the range of the stage reward (the potential ``V`` lies in an
    interval of length ``span / (1 - gamma)``; ``span = r_max`` when ``r_min = 0``)."""
    return float("inf") if eta <= 0 else span / ((1.0 - gamma) * 2.0 * eta)


# ---------------------------------------------------------------------------
# truncation of the evaluation horizon (SPEC 13)
# ---------------------------------------------------------------------------

#: default target of :func:`evaluation_horizon`: ``gamma^H <= TAIL_FRACTION``, i.e. the
#: truncation bias of a paired difference is at most this fraction of the value span
TAIL_FRACTION = 1e-4
#: shortest default evaluation horizon (the paper's and the library's historical 100)
MIN_HORIZON = 100


def truncation_bias(gamma: float, horizon: int, r_min: float, r_max: float) -> float:
    """Bound on the truncation bias of a paired difference (SPEC 13):
    ``gamma^H (r_max - r_min) / (1 - gamma)``.

    Each value cut at ``H`` misses a tail ``sum_{t >= H} gamma^t r_t`` in
    ``gamma^H [r_min, r_max] / (1 - gamma)``, so the difference of two tails lies in
    ``[-bias, bias]``. ``r_min``, ``r_max``: the true bounds of the stage reward
    (rewards may be negative)."""
    if not 0 <= gamma < 1:
        raise ValueError(f"gamma = {gamma!r}: expected a number in [0, 1)")
    if not (math.isfinite(r_min) and math.isfinite(r_max) and r_min <= r_max):
        raise ValueError(f"r_min, r_max = {r_min!r}, {r_max!r}: expected finite r_min <= r_max")
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon = {horizon!r}: expected an integer >= 1")
    return float(gamma ** int(horizon) * (r_max - r_min) / (1.0 - gamma))


def evaluation_horizon(gamma: float, fraction: float = TAIL_FRACTION,
                       minimum: int = MIN_HORIZON) -> int:
    """Default horizon of UPDATE's value estimates: the smallest ``H >= minimum`` with
    ``gamma^H <= fraction``, so that :func:`truncation_bias` is at most ``fraction`` times
    the value span ``(r_max - r_min) / (1 - gamma)`` (SPEC 13).

    ``gamma = 0.9``: 100; ``0.95``: 180; ``0.99``: 917. The cost of an estimate grows like
    ``log(1 / fraction) / (1 - gamma)``; a shorter horizon stays sound because
    :class:`EtaRule` adds the bias bound to ``eta``."""
    if not 0 <= gamma < 1:
        raise ValueError(f"gamma = {gamma!r}: expected a number in [0, 1)")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction = {fraction!r}: expected a number in (0, 1)")
    if gamma == 0:
        return int(minimum)
    h = math.ceil(math.log(fraction) / math.log(gamma) - 1e-9)
    while gamma**h > fraction:  # guard the rounding of the logarithms
        h += 1
    return int(max(minimum, h))


#: :func:`warn_short_horizon` warns when ``gamma^H`` exceeds this (half the truncation
#: bound is then more than 1% of the value span)
SHORT_HORIZON_TAIL = 0.02


class TruncationWarning(UserWarning):
    """UPDATE's value estimates are so short that the truncation bound dominates ``eta``."""


def warn_short_horizon(gamma: float, horizon: int, tail: float) -> None:
    """Warn (:class:`TruncationWarning`) when ``gamma^horizon > SHORT_HORIZON_TAIL``: UPDATE
    adds ``tail / 2`` (SPEC 13, :func:`truncation_bias`) to every ``eta``, so a proposal
    must gain more than about ``tail`` to be accepted, and good proposals are refused.
    ``tail = 0`` (exact values, a custom evaluator): no warning."""
    if tail > 0 and 0 < gamma < 1 and gamma ** int(horizon) > SHORT_HORIZON_TAIL:
        warnings.warn(TruncationWarning(
            f"eval_horizon = {int(horizon)} at gamma = {gamma:g}: UPDATE adds half the "
            f"truncation bound gamma^H (r_max - r_min) / (1 - gamma) = {tail / 2:.4g} to its "
            f"tolerance eta, so a proposal must gain more than about {tail:.4g} to be "
            f"accepted; the default eval_horizon ({evaluation_horizon(gamma)} at this gamma) "
            "keeps the bound below 1e-4 of the value span"), stacklevel=3)


# ---------------------------------------------------------------------------
# estimates and the paired standard error
# ---------------------------------------------------------------------------


@runtime_checkable
class Estimate(Protocol):
    """A value estimate UPDATE can compare: ``mean``, ``stderr`` and the per-rollout
    ``returns`` (``None`` for exact values or estimates without rollouts)."""

    @property
    def mean(self) -> float: ...

    @property
    def stderr(self) -> float: ...

    @property
    def returns(self) -> NDArray[np.float64] | None: ...


@dataclass(frozen=True)
class RolloutEstimate:
    """An :class:`Estimate` from per-rollout returns: ``mean = returns.mean()``; ``data``
    carries what the evaluation produced besides the returns (e.g. trajectories the
    proposers learn from)."""

    returns: NDArray[Any]
    data: Any = None

    @property
    def mean(self) -> float:
        """Mean of the returns."""
        return float(self.returns.mean())

    @property
    def stderr(self) -> float:
        """``std(ddof=1) / sqrt(R)`` (``nan`` for one rollout)."""
        r = self.returns
        return float(r.std(ddof=1) / math.sqrt(r.size)) if r.size > 1 else float("nan")


def paired_difference(new: Estimate, old: Estimate) -> tuple[float, float]:
    """``(difference, standard error)`` of ``new - old``.

    Paired over rollouts when both carry returns of the same shape (common random numbers,
    at least two rollouts): the mean and ``std(ddof=1) / sqrt(R)`` of the per-rollout
    differences. Otherwise (exact values, different rollouts): ``new.mean - old.mean`` and
    ``sqrt(se_new^2 + se_old^2)``.
    """
    rn, ro = new.returns, old.returns
    if rn is not None and ro is not None and rn.shape == ro.shape and rn.size > 1:
        d = rn - ro
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    return float(new.mean - old.mean), float(math.hypot(new.stderr, old.stderr))


def paired_stderr(new: Estimate, old: Estimate) -> float:
    """Standard error of ``new.mean - old.mean`` (see :func:`paired_difference`)."""
    return paired_difference(new, old)[1]


# ---------------------------------------------------------------------------
# eta and the comparison
# ---------------------------------------------------------------------------


def normal_quantile(confidence: float) -> float:
    """Two-sided standard normal quantile ``z`` of ``confidence`` (1.96 at 0.95)."""
    from scipy.special import ndtri

    if not 0 < confidence < 1:
        raise ValueError(f"confidence = {confidence!r}: expected a number in (0, 1)")
    return float(ndtri(0.5 + confidence / 2))


@dataclass(frozen=True)
class EtaRule:
    """How UPDATE's tolerance is set (SPEC 6, 13).

    ``fixed``: ``eta = fixed + tail / 2`` for every comparison. ``None``: automatic,
    ``eta = z se_diff / 2 + learner_tol + tail / 2`` with ``se_diff`` the paired standard
    error of the comparison, so a proposal is accepted only when its estimated gain
    exceeds ``z se_diff + 2 learner_tol + tail``. ``tail`` (keyword, required): the bound
    on the truncation bias of a paired difference, :func:`truncation_bias` of the
    estimates' horizon (``0.0`` only for exact, infinite-horizon values): it makes the
    guarantees hold for the infinite-horizon objective (module docstring). ``z`` also
    scales the certified bound (:func:`certified_gap`).
    """

    fixed: float | None = None
    z: float = 2.0
    learner_tol: float = 0.0
    tail: float = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.fixed is not None and not self.fixed >= 0:
            raise ValueError(f"eta = {self.fixed!r}: expected None or a number >= 0")
        if not (self.z >= 0 and math.isfinite(self.z)):
            raise ValueError(f"z = {self.z!r}: expected a finite number >= 0")
        if not (self.learner_tol >= 0 and math.isfinite(self.learner_tol)):
            raise ValueError(f"learner_tol = {self.learner_tol!r}: expected a finite number >= 0")
        if isinstance(self.tail, bool) or not (self.tail >= 0 and math.isfinite(self.tail)):
            raise ValueError(f"tail = {self.tail!r}: expected a finite number >= 0 "
                             "(update.truncation_bias of the estimates' horizon)")

    def eta(self, se_diff: float) -> float:
        """The tolerance of one comparison whose paired standard error is ``se_diff``
        (``fixed`` or ``z se_diff / 2 + learner_tol``, plus ``tail / 2``)."""
        if self.fixed is not None:
            return float(self.fixed) + 0.5 * self.tail
        return 0.5 * self.z * se_diff + self.learner_tol + 0.5 * self.tail


@dataclass(frozen=True)
class Comparison:
    """One UPDATE comparison: the two estimated values, the paired difference and its
    standard error, the tolerance used (truncation included), the truncation bias bound
    ``tail`` of the estimates and the decision (Lemma D.14)."""

    v_new: float
    v_old: float
    diff: float
    se_diff: float
    eta: float
    decision: Decision
    tail: float = 0.0

    @property
    def accepted(self) -> bool:
        """Whether the proposal replaces the old policy."""
        return self.decision is Decision.ACCEPT


def compare(new: Estimate, old: Estimate, rule: EtaRule) -> Comparison:
    """UPDATE's comparison of a proposal's estimate ``new`` with the current pair's
    ``old`` (same common random numbers): paired standard error, ``eta`` by ``rule``,
    decision by :func:`update_decision`."""
    diff, se = paired_difference(new, old)
    eta = rule.eta(se)
    v_new, v_old = float(new.mean), float(old.mean)
    return Comparison(v_new, v_old, diff, se, eta, update_decision(v_new, v_old, eta),
                      float(rule.tail))


def certified_gap(eta: float | None, se_diff: float | None, z: float,
                  tail: float = 0.0) -> float:
    """What a non-accepted comparison certifies about that player's best deviation found:
    its true (infinite-horizon) gain is at most ``2 eta + z se_diff + tail`` (one-sided,
    at the confidence of ``z``; ``tail`` the truncation bias bound of the estimates,
    :func:`truncation_bias`); the learner's own best-response error adds to it."""
    return 2 * (eta or 0.0) + z * (se_diff or 0.0) + tail
