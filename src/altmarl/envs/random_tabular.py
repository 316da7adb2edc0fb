"""Seeded random games for tests and benchmarks."""

from __future__ import annotations

import numpy as np

from altmarl import _random
from altmarl._validate import check_float, check_int, check_positive
from altmarl.game import TabularGame


def random_game(
    n_sg: int = 2,
    n_ag: int = 2,
    n_sl: int = 2,
    n_al: int = 2,
    n: int = 4,
    gamma: float = 0.9,
    seed: int = 0,
    concentration: float = 1.0,
    r_max: float = 1.0,
) -> TabularGame:
    """A random game: transition rows ``~ Dirichlet(concentration)``, rewards
    ``~ U(0, r_max / 2)`` for each of ``r_g`` and ``r_l`` (so ``r_max`` bounds the stage
    reward), i.i.d. uniform initial states."""
    n_sg, n_ag, n_sl, n_al = (check_int(name, v, 1) for name, v in (
        ("n_sg", n_sg), ("n_ag", n_ag), ("n_sl", n_sl), ("n_al", n_al)))
    seed = check_int("seed", seed, 0)
    check_positive("concentration", concentration)
    check_float("r_max", r_max, 0.0)
    rng = _random.rng(seed)
    P_g = rng.dirichlet(np.full(n_sg, concentration), size=(n_sg, n_ag))
    P_l = rng.dirichlet(np.full(n_sl, concentration), size=(n_sl, n_sg, n_al))
    r_g = rng.uniform(0, r_max / 2, size=(n_sg, n_ag))
    r_l = rng.uniform(0, r_max / 2, size=(n_sl, n_sg, n_al))
    return TabularGame(P_g, P_l, r_g, r_l, gamma, n, name=f"random(seed={seed})",
                       meta={"env": "random", "n_sg": n_sg, "n_ag": n_ag, "n_sl": n_sl,
                             "n_al": n_al, "seed": seed, "gamma": gamma})
