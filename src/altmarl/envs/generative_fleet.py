"""The fleet: electric vehicles serving a campaign whose demand wears out (a generative game,
SPEC 11).

A city of ``Z`` zones on a ring (default 10); each of ``n`` vehicles (default ``10^4``) has
a zone ``z`` and a battery level ``b in 0..B-1`` (default ``B = 10``), local state
``s_l = z * B + b`` (``|S_l| = Z * B = 100`` by default). An operator (the global agent)
places a demand campaign; the global state is the campaign's zone ``c`` and its age
``e in {0: fresh, 1: mature, 2: worn out}``: ``s_g = 3 c + e`` (``|S_g| = 3 Z = 30``).

* global action ``a_g in 0..Z-1``: the zone of the next campaign. ``a_g = c`` keeps the
  campaign, which ages by one level with probability ``age_rate`` (0.25; capped at worn
  out). ``a_g != c`` moves it to ``a_g`` as a fresh campaign with probability ``follow``
  (0.8); otherwise it stays and ages. Independently, with probability ``jump`` (0.1) a
  competitor's event relocates the campaign to a uniform zone as a fresh one, wherever the
  vehicles are. Global reward ``r_g = 1 - 0.5 dist(c, a_g) / (Z // 2)`` (announcing a far
  campaign costs up to one half).
* local actions ``a_l``: 0 serve, 1 drive ``+1``, 2 drive ``-1``, 3 charge.
  A vehicle with an empty battery (``b = 0``) does not move and earns nothing unless it
  charges. Serving: the vehicle stays; its battery drops by one with probability 0.6 at the
  campaign zone (busy), 0.1 elsewhere. Driving: succeeds with probability 0.9; the battery
  drops by one with probability 0.5. Charging: the battery rises by one with probability
  0.8 (by two at depot zones, every ``depot_every``-th zone), capped at ``B - 1``.
* local reward: serving with ``b > 0`` earns ``10 * (1, 0.5, 0.2)[e]`` at the campaign zone
  and ``2 / (1 + dist(z, c))`` elsewhere; driving and charging earn 0. So ``r_max = 1 + 10``.
* initial state: a uniform campaign zone, fresh; the fleet's proportions over the ``Z B``
  (zone, battery) cells drawn from a symmetric ``Dirichlet(concentration)`` (0.05): each
  shift starts with the vehicles parked in a few random zones with random charge.

Why the population matters to the operator: a campaign wears out, so it must move, and the
best next zone is where charged vehicles are (they earn at once, the others drive and
drain); the fleet starts in random places and the competitor's jumps separate the campaign
from the fleet. The global state does not say where the vehicles are; the ``k``-sample
does. (An earlier version of this environment had campaigns that never wore out and a
fleet that started spread uniformly: a constant campaign zone was near-optimal there, so
observing the population was worth nothing.)

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
from altmarl.game import DirichletInit, TabularGame
from altmarl.generative.game import GenerativeGame

LOCAL_ACTIONS = ("serve", "drive +1", "drive -1", "charge")
#: campaign ages: fresh, mature, worn out
AGES = ("fresh", "mature", "worn out")
#: the campaign zone's pay per serving vehicle at each age
CAMPAIGN_PAY = (10.0, 5.0, 2.0)


def ring_distance(a: np.ndarray, b: np.ndarray, zones: int) -> np.ndarray:
    """Distance between zones on a ring of ``zones``."""
    diff = np.abs(np.asarray(a) - np.asarray(b)) % zones
    return np.minimum(diff, zones - diff)


def fleet_tabular(n: int = 10_000, gamma: float = 0.95, zones: int = 10, battery: int = 10,
                  follow: float = 0.8, jump: float = 0.1, age_rate: float = 0.25,
                  depot_every: int = 2, concentration: float = 0.05) -> TabularGame:
    """The fleet's law as tables (module docstring); ``s_l = z * battery + b``,
    ``s_g = 3 c + e``."""
    Z = check_int("zones", zones, 2)
    B = check_int("battery", battery, 2)
    dep = check_int("depot_every", depot_every, 1)
    fol = check_float("follow", follow, 0.0, 1.0)
    jmp = check_float("jump", jump, 0.0, 1.0)
    rate = check_float("age_rate", age_rate, 0.0, 1.0)
    conc = check_float("concentration", concentration, positive=True)
    E = len(AGES)
    S_l, S_g = Z * B, E * Z
    half = max(1, Z // 2)
    # global transition [c, e, a_g, c', e']
    P = np.zeros((Z, E, Z, Z, E))
    for c in range(Z):
        for e in range(E):
            older = min(e + 1, E - 1)
            for x in range(Z):
                stay = 1.0 if x == c else 1.0 - fol
                P[c, e, x, c, e] += stay * (1.0 - rate)
                P[c, e, x, c, older] += stay * rate
                if x != c:
                    P[c, e, x, x, 0] += fol
    P *= 1.0 - jmp
    P[:, :, :, :, 0] += jmp / Z
    P_g = P.reshape(S_g, Z, S_g)
    cz = np.arange(S_g) // E
    r_g = 1.0 - 0.5 * ring_distance(cz[:, None], np.arange(Z)[None, :], Z) / half
    # local transition and reward
    P_l = np.zeros((S_l, S_g, 4, S_l))
    r_l = np.zeros((S_l, S_g, 4))
    for z in range(Z):
        for b in range(B):
            s = z * B + b
            for g in range(S_g):
                c, e = divmod(g, E)
                d = int(ring_distance(np.array(z), np.array(c), Z))
                if b == 0:  # empty: only charging does anything
                    P_l[s, g, :3, s] = 1.0
                else:
                    p = 0.6 if d == 0 else 0.1
                    P_l[s, g, 0, s - 1] += p
                    P_l[s, g, 0, s] += 1 - p
                    r_l[s, g, 0] = CAMPAIGN_PAY[e] if d == 0 else 2.0 / (1.0 + d)
                    for a, step in ((1, 1), (2, -1)):
                        z2 = (z + step) % Z
                        for zz, pz in ((z2, 0.9), (z, 0.1)):
                            P_l[s, g, a, zz * B + b] += pz * 0.5
                            P_l[s, g, a, zz * B + b - 1] += pz * 0.5
                b2 = min(b + (2 if z % dep == 0 else 1), B - 1)
                P_l[s, g, 3, z * B + b2] += 0.8
                P_l[s, g, 3, s] += 0.2
    rho_g = np.zeros((Z, E))
    rho_g[:, 0] = 1.0 / Z
    return TabularGame(P_g, P_l, r_g, r_l, gamma, n,
                       DirichletInit(rho_g.ravel(), np.full(S_l, conc)), name="fleet",
                       meta={"env": "fleet", "version": 2, "zones": Z, "battery": B,
                             "ages": E, "follow": fol, "jump": jmp, "age_rate": rate,
                             "depot_every": dep, "concentration": conc, "gamma": gamma})


def fleet(n: int = 10_000, gamma: float = 0.95, zones: int = 10, battery: int = 10,
          follow: float = 0.8, jump: float = 0.1, age_rate: float = 0.25, depot_every: int = 2,
          concentration: float = 0.05, check: str = "first") -> GenerativeGame:
    """The fleet as a :class:`~altmarl.GenerativeGame` (module docstring):
    ``|S_l| = zones * battery``, ``|S_g| = 3 * zones``, ``|A_g| = zones``, ``|A_l| = 4``,
    count observations; ``n = 10^4`` by default."""
    return fleet_tabular(n, gamma, zones, battery, follow, jump, age_rate, depot_every,
                         concentration).as_generative(check=check)
