"""The fleet: electric vehicles serving a moving demand hotspot (a generative game, SPEC 11).

A city of ``Z`` zones on a ring (default 10); each of ``n`` vehicles (default ``10^4``) has
a zone ``z`` and a battery level ``b in 0..B-1`` (default ``B = 10``), local state
``s_l = z * B + b`` (``|S_l| = Z * B = 100`` by default). An operator (the global agent)
places a demand campaign; the global state is the campaign's zone ``c`` and a surge flag
``u in {0, 1}``: ``s_g = 2 c + u`` (``|S_g| = 2 Z = 20``).

* global action ``a_g in 0..Z-1``: the zone of the next campaign. ``c' = a_g`` with
  probability ``follow`` (0.6), ``c' = c`` with probability 0.3, otherwise a uniform zone;
  the surge flag flips with probability ``surge_flip`` (0.2). Global reward
  ``r_g = 1 - 0.5 dist(c, a_g) / (Z // 2)`` (moving a campaign far costs up to one half).
* local actions ``a_l``: 0 serve, 1 drive ``+1``, 2 drive ``-1``, 3 charge.
  A vehicle with an empty battery (``b = 0``) does not move and earns nothing unless it
  charges. Serving: the vehicle stays; its battery drops by one with probability 0.6 at the
  campaign zone (busy), 0.1 elsewhere. Driving: succeeds with probability 0.9; the battery
  drops by one with probability 0.5. Charging: the battery rises by one with probability
  0.8 (by two at depot zones, every ``depot_every``-th zone), capped at ``B - 1``.
* local reward: serving with ``b > 0`` earns ``(10 if z = c else 2 / (1 + dist(z, c))) *
  (1 + 0.5 u)``; driving and charging earn 0. So ``r_max = 1 + 15``.
* initial state: ``c``, ``u`` uniform; each vehicle in a uniform zone with a uniform battery
  level in ``B // 2 .. B - 1``, independently.

Every local transition depends on ``(s_i, s_g, a_i)`` only, independently across vehicles
(SPEC 1), so ``step`` serves the ``k``-agent surrogate of G-LEARN as well. The law is
finite, so it is compiled once into tables (:func:`fleet_tabular`, a
:class:`~altmarl.TabularGame`: exact solvers and the count simulator apply to it for small
``n``) and :func:`fleet` is its generative view (per-agent simulator, alias sampling, about
the cost of a hand-written vectorized step). The mean-field table at ``k = 20`` has
``C(20 + 99, 99) ~ 2.5 * 10^22`` histograms per global state: tabular G-LEARN cannot start,
the neural route (SPEC 11) is the way.
"""

from __future__ import annotations

import numpy as np

from altmarl._validate import check_float, check_int
from altmarl.game import IIDInit, TabularGame
from altmarl.generative.game import GenerativeGame

LOCAL_ACTIONS = ("serve", "drive +1", "drive -1", "charge")
#: probability that the campaign stays where it is
STAY = 0.3


def ring_distance(a: np.ndarray, b: np.ndarray, zones: int) -> np.ndarray:
    """Distance between zones on a ring of ``zones``."""
    diff = np.abs(np.asarray(a) - np.asarray(b)) % zones
    return np.minimum(diff, zones - diff)


def fleet_tabular(n: int = 10_000, gamma: float = 0.95, zones: int = 10, battery: int = 10,
                  follow: float = 0.6, surge_flip: float = 0.2,
                  depot_every: int = 2) -> TabularGame:
    """The fleet's law as tables (module docstring); ``s_l = z * battery + b``,
    ``s_g = 2 c + u``."""
    Z = check_int("zones", zones, 2)
    B = check_int("battery", battery, 2)
    dep = check_int("depot_every", depot_every, 1)
    fol = check_float("follow", follow, 0.0, 1.0 - STAY)
    flip = check_float("surge_flip", surge_flip, 0.0, 1.0)
    S_l, S_g = Z * B, 2 * Z
    half = max(1, Z // 2)
    # global transition: c' = a_g (follow), c (STAY) or uniform; surge flips w.p. flip
    Pc = np.full((Z, Z, Z), (1.0 - fol - STAY) / Z)  # [c, a, c']
    Pc[:, np.arange(Z), np.arange(Z)] += fol
    Pc[np.arange(Z), :, np.arange(Z)] += STAY
    Pu = np.array([[1 - flip, flip], [flip, 1 - flip]])  # [u, u']
    P_g = np.einsum("cay,uv->cuayv", Pc, Pu).reshape(S_g, Z, S_g)
    cz = np.arange(S_g) // 2
    r_g = 1.0 - 0.5 * ring_distance(cz[:, None], np.arange(Z)[None, :], Z) / half
    # local transition and reward
    P_l = np.zeros((S_l, S_g, 4, S_l))
    r_l = np.zeros((S_l, S_g, 4))
    for z in range(Z):
        for b in range(B):
            s = z * B + b
            for g in range(S_g):
                c, u = divmod(g, 2)
                d = int(ring_distance(np.array(z), np.array(c), Z))
                if b == 0:  # empty: only charging does anything
                    P_l[s, g, :3, s] = 1.0
                else:
                    p = 0.6 if d == 0 else 0.1
                    P_l[s, g, 0, s - 1] += p
                    P_l[s, g, 0, s] += 1 - p
                    r_l[s, g, 0] = (10.0 if d == 0 else 2.0 / (1.0 + d)) * (1.0 + 0.5 * u)
                    for a, step in ((1, 1), (2, -1)):
                        z2 = (z + step) % Z
                        for zz, pz in ((z2, 0.9), (z, 0.1)):
                            P_l[s, g, a, zz * B + b] += pz * 0.5
                            P_l[s, g, a, zz * B + b - 1] += pz * 0.5
                b2 = min(b + (2 if z % dep == 0 else 1), B - 1)
                P_l[s, g, 3, z * B + b2] += 0.8
                P_l[s, g, 3, s] += 0.2
    rho_l = np.zeros((Z, B))
    rho_l[:, B // 2:] = 1.0
    rho_l = (rho_l / rho_l.sum()).ravel()
    return TabularGame(P_g, P_l, r_g, r_l, gamma, n, IIDInit(np.full(S_g, 1.0 / S_g), rho_l),
                       name="fleet",
                       meta={"env": "fleet", "zones": Z, "battery": B, "follow": fol,
                             "surge_flip": flip, "depot_every": dep, "gamma": gamma})


def fleet(n: int = 10_000, gamma: float = 0.95, zones: int = 10, battery: int = 10,
          follow: float = 0.6, surge_flip: float = 0.2, depot_every: int = 2,
          check: str = "first") -> GenerativeGame:
    """The fleet as a :class:`~altmarl.GenerativeGame` (module docstring):
    ``|S_l| = zones * battery``, ``|S_g| = 2 * zones``, ``|A_g| = zones``, ``|A_l| = 4``,
    count observations; ``n = 10^4`` by default."""
    return fleet_tabular(n, gamma, zones, battery, follow, surge_flip,
                         depot_every).as_generative(check=check)
