"""The surrogate's state space (SPEC 4): ``k`` local agents seen as a histogram ``h in H_k``
(mean-field parameterization) or as an ordered ``k``-tuple (standard parameterization).

* mean-field: ``N = |H_k| = C(k + |S_l| - 1, |S_l| - 1)`` states, in
  :func:`altmarl.histogram.rank` order;
* standard: ``N = |S_l|^k`` tuples ``(tau_1, ..., tau_k)``, index
  ``sum_i tau_i |S_l|^(k-1-i)`` (``tau_1`` most significant).

:func:`state_counts` gives, for either, the number of agents per local state of every
surrogate state (what ``r_k`` needs); :func:`histogram_q` maps a tuple ``Q`` to the
histogram ``Q`` the returned policy acts on (the average over orderings).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from altmarl.game import TabularGame
from altmarl.histogram import build_histograms, num_histograms, num_tuples, rank

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def num_states(k: int, d: int, parameterization: str) -> int:
    """``N``: ``|H_k|`` (``"mean-field"``) or ``|S_l|^k`` (``"standard"``), ``d = |S_l|``."""
    return num_histograms(k, d) if parameterization == "mean-field" else num_tuples(k, d)


def table_size(game: TabularGame, k: int, parameterization: str = "mean-field") -> int:
    """``|S_g| N |A_g|`` with ``N = |H_k|`` or ``|S_l|^k`` (SPEC 4's table size)."""
    return game.n_sg * num_states(k, game.n_sl, parameterization) * game.n_ag


def tuple_digits(idx: IntArray, k: int, d: int) -> IntArray:
    """Digits ``(tau_1, ..., tau_k)`` of tuple indices (``tau_1`` most significant)."""
    powers = d ** np.arange(k - 1, -1, -1, dtype=np.int64)
    return np.asarray((idx[:, None] // powers[None, :]) % d, dtype=np.int64)


def state_counts(k: int, d: int, parameterization: str) -> IntArray:
    """Per surrogate state (in index order), the number of agents in each local state, as a
    ``(N, d)`` int64 array: ``H_k`` itself (mean-field) or the digit counts of every
    ordered tuple (standard)."""
    if parameterization == "mean-field":
        return build_histograms(k, d)
    dig = tuple_digits(np.arange(num_tuples(k, d), dtype=np.int64), k, d)
    return np.stack([(dig == x).sum(axis=1) for x in range(d)], axis=1).astype(np.int64)


def histogram_q(q_tuples: FloatArray, k: int, d: int) -> FloatArray:
    """Standard -> mean-field: average a tuple-indexed ``Q`` (``(S_g, |S_l|^k, A_g)``) over
    the orderings of each histogram (uniform over the tuples with that histogram)."""
    n_t = q_tuples.shape[1]
    if n_t != d**k:
        raise ValueError(f"q_tuples: expected {d}^{k} = {d**k} tuples on axis 1, got {n_t}")
    hr = rank(state_counts(k, d, "standard"), k)
    nh = num_histograms(k, d)
    mult = np.bincount(hr, minlength=nh).astype(np.float64)
    S, _, A = q_tuples.shape
    out = np.empty((S, nh, A))
    for s in range(S):
        for a in range(A):
            out[s, :, a] = np.bincount(hr, weights=q_tuples[s, :, a], minlength=nh) / mult
    return out
