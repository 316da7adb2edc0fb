"""The tabular warehouse (paper Appendix G.1, SPEC 8.1; constants of the authors' code).

Five zones on a ring. The dispatcher (global agent) picks a target zone ``a_g``; robots
(local agents) stay or step ``+1`` / ``-1`` around the ring. Every transition row is a
softmax of logits:

* ``P_g(. | s_g, a_g)``: ``0.1`` everywhere, ``+3.0`` at ``a_g``, ``+0.5`` at ``s_g``;
* ``P_l(. | s_l, s_g, a_l)``: ``0.1`` everywhere, ``+3.5`` at ``s_l``, ``+1.5`` at
  ``s_l + 1`` if ``a_l = 1`` / ``s_l - 1`` if ``a_l = 2`` (mod 5), ``+0.3`` at ``s_g``;
* ``r_g = 1``; ``r_l = base + [0, 0.5, -0.3][a_l]``, ``base = 10`` if ``s_l = s_g`` else
  ``2 / (1 + d)``, ``d`` the circular distance;
* initial state: ``s_g`` uniform, proportions ``~ Dirichlet(0.3, ...)``, agents i.i.d.
"""

from __future__ import annotations

import numpy as np

from altmarl._validate import check_int, check_positive
from altmarl.game import DirichletInit, TabularGame, softmax
from altmarl.limits import MAX_SPACE, check_game_size

ZONES = 5
LOCAL_ACTIONS = ("stay", "move +1", "move -1")
ACTION_BONUS = (0.0, 0.5, -0.3)


def circular_distance(a: np.ndarray, b: np.ndarray, zones: int = ZONES) -> np.ndarray:
    """Distance between zones on a ring of ``zones``."""
    diff = np.abs(np.asarray(a) - np.asarray(b)) % zones
    return np.minimum(diff, zones - diff)


def warehouse(n: int = 1000, gamma: float = 0.95, zones: int = ZONES, alpha: float = 0.3) -> TabularGame:
    """Build the warehouse game (SPEC 8.1). ``zones`` other than 5 generalize the ring."""
    Z = check_int("zones", zones, 2, MAX_SPACE)
    check_game_size("warehouse: zones", Z, Z, Z, 3)
    check_positive("alpha", alpha)
    # global transition
    lg = np.full((Z, Z, Z), 0.1)
    for s in range(Z):
        for a in range(Z):
            lg[s, a, a] += 3.0
            lg[s, a, s] += 0.5
    P_g = softmax(lg)
    # local transition
    ll = np.full((Z, Z, 3, Z), 0.1)
    for s in range(Z):
        for g in range(Z):
            for a in range(3):
                ll[s, g, a, s] += 3.5
                if a == 1:
                    ll[s, g, a, (s + 1) % Z] += 1.5
                elif a == 2:
                    ll[s, g, a, (s - 1) % Z] += 1.5
                ll[s, g, a, g] += 0.3
    P_l = softmax(ll)
    r_g = np.ones((Z, Z))
    s_l = np.arange(Z)[:, None]
    s_g = np.arange(Z)[None, :]
    d = circular_distance(s_l, s_g, Z)
    base = np.where(d == 0, 10.0, 2.0 / (1.0 + d))
    r_l = base[:, :, None] + np.asarray(ACTION_BONUS)[None, None, :]
    init = DirichletInit(np.full(Z, 1.0 / Z), np.full(Z, float(alpha)))
    return TabularGame(P_g, P_l, r_g, r_l, gamma, n, init, name="warehouse",
                       meta={"env": "warehouse", "zones": Z, "alpha": alpha, "gamma": gamma})
