"""The UPDATE rule of ALTERNATING-MARL (paper Algorithm 14, Lemma D.14; SPEC 6).

Given estimated joint values ``V_new`` (with the proposal) and ``V_old`` (without) and a
tolerance ``eta`` (learner error + Monte-Carlo error):

* ``V_new - eta > V_old + eta``  -> ``ACCEPT``  (intervals separated, new ahead);
* ``V_new + eta < V_old - eta``  -> ``REJECT``  (new clearly worse: keep the old policy);
* otherwise                       -> ``NO_IMPROVEMENT`` (intervals overlap: that player has
  no ``2 eta``-improving deviation; the old policy is kept).
"""

from __future__ import annotations

from enum import StrEnum


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


def max_accepted_updates(r_max: float, gamma: float, eta: float) -> float:
    """Lemma D.15: at most ``r_max / ((1 - gamma) 2 eta)`` accepted updates."""
    return float("inf") if eta <= 0 else r_max / ((1.0 - gamma) * 2.0 * eta)
