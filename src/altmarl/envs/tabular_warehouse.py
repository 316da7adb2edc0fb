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

``types=2`` is the two-type fleet of SPEC 12 (issue 20's worked example): *fast* robots
(type 0, a share ``fast_share`` of the fleet) and *slow* heavy-duty robots (type 1). A local
state is ``(type, zone)``, index ``type * zones + zone`` (``|S_l| = 2 zones``); the
dispatcher still picks a zone (``|A_g| = zones``) and ``P_g``, ``r_g`` are unchanged. Per
type ``c`` the local logits are those above with the move bonus ``MOVE_BONUS[c]`` in place of
``1.5`` (fast ``2.5``, slow ``0.5``), restricted to the zones of the same type (a robot never
changes type), and the reward at the dispatcher's zone is ``ON_SITE[c]`` in place of ``10``
(fast ``6``, slow ``16``: a slow robot carries more, but is slow to reach the zone);
``2 / (1 + d)`` elsewhere, the same action bonuses. Initial state: ``s_g`` uniform and, per
type, proportions over its zones ``~ Dirichlet(alpha)`` (:class:`~altmarl.game.
TypedDirichletInit`), ``type_counts = (round(fast_share n), n - ...)``.
"""

from __future__ import annotations

import numpy as np

from altmarl._validate import check_float, check_int, check_positive
from altmarl.game import DirichletInit, TabularGame, TypedDirichletInit, scale_counts, softmax
from altmarl.limits import MAX_SPACE, check_game_size

ZONES = 5
LOCAL_ACTIONS = ("stay", "move +1", "move -1")
ACTION_BONUS = (0.0, 0.5, -0.3)
#: two-type fleet (``types=2``): move logit bonus and on-site reward of (fast, slow) robots
MOVE_BONUS = (2.5, 0.5)
ON_SITE = (6.0, 16.0)


def circular_distance(a: np.ndarray, b: np.ndarray, zones: int = ZONES) -> np.ndarray:
    """Distance between zones on a ring of ``zones``."""
    diff = np.abs(np.asarray(a) - np.asarray(b)) % zones
    return np.minimum(diff, zones - diff)


def warehouse(n: int = 1000, gamma: float = 0.95, zones: int = ZONES, alpha: float = 0.3,
              types: int = 1, fast_share: float = 0.8) -> TabularGame:
    """Build the warehouse game (SPEC 8.1). ``zones`` other than 5 generalize the ring;
    ``types=2`` is the two-type fleet (module docstring; ``fast_share`` of fast robots)."""
    Z = check_int("zones", zones, 2, MAX_SPACE)
    check_game_size("warehouse: zones", Z, Z, Z, 3)
    check_positive("alpha", alpha)
    if check_int("types", types, 1, 2) == 2:
        return typed_warehouse(n, gamma, Z, alpha, fast_share)
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


def typed_warehouse(n: int = 1000, gamma: float = 0.95, zones: int = ZONES, alpha: float = 0.3,
                    fast_share: float = 0.8) -> TabularGame:
    """The two-type warehouse (``warehouse(types=2)``, module docstring; SPEC 12)."""
    Z = check_int("zones", zones, 2)
    check_positive("alpha", alpha)
    share = check_float("fast_share", fast_share, 0.0, 1.0)
    nn = check_int("n", n, 2)
    if not 0.0 < share < 1.0:
        raise ValueError(f"fast_share = {fast_share!r}: expected a number in (0, 1)")
    lg = np.full((Z, Z, Z), 0.1)
    for s in range(Z):
        for a in range(Z):
            lg[s, a, a] += 3.0
            lg[s, a, s] += 0.5
    P_g = softmax(lg)
    d_sl = 2 * Z
    P_l = np.zeros((d_sl, Z, 3, d_sl))
    r_l = np.zeros((d_sl, Z, 3))
    dist = circular_distance(np.arange(Z)[:, None], np.arange(Z)[None, :], Z)
    for c in range(2):
        ll = np.full((Z, Z, 3, Z), 0.1)
        for s in range(Z):
            for g in range(Z):
                for a in range(3):
                    ll[s, g, a, s] += 3.5
                    if a == 1:
                        ll[s, g, a, (s + 1) % Z] += MOVE_BONUS[c]
                    elif a == 2:
                        ll[s, g, a, (s - 1) % Z] += MOVE_BONUS[c]
                    ll[s, g, a, g] += 0.3
        block = slice(c * Z, (c + 1) * Z)
        P_l[block, :, :, block] = softmax(ll)
        base = np.where(dist == 0, ON_SITE[c], 2.0 / (1.0 + dist))
        r_l[block] = base[:, :, None] + np.asarray(ACTION_BONUS)[None, None, :]
    types = np.repeat(np.arange(2), Z)
    n_fast = min(nn - 1, max(1, int(round(share * nn))))
    counts = (n_fast, nn - n_fast) if nn >= 2 else scale_counts((1, 1), nn)
    types.setflags(write=False)
    init = TypedDirichletInit(np.full(Z, 1.0 / Z), np.full(d_sl, float(alpha)), types, counts)
    return TabularGame(P_g, P_l, np.ones((Z, Z)), r_l, gamma, nn, init,
                       name="warehouse-2types",
                       meta={"env": "warehouse", "zones": Z, "alpha": alpha, "gamma": gamma,
                             "types": 2, "fast_share": share},
                       types=types, type_counts=counts)
