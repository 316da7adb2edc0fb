"""Seeded random games for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from altmarl import _random
from altmarl._validate import check_float, check_int, check_positive
from altmarl.game import TabularGame, check_types, scale_counts
from altmarl.limits import MAX_SPACE, check_game_size


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
    types: Sequence[int] | None = None,
    type_counts: Sequence[int] | None = None,
) -> TabularGame:
    """A random game: transition rows ``~ Dirichlet(concentration)``, rewards
    ``~ U(0, r_max / 2)`` for each of ``r_g`` and ``r_l`` (so ``r_max`` bounds the stage
    reward), i.i.d. uniform initial states.

    ``types`` (one label per local state, SPEC 12) makes a typed game: each ``P_l`` row is
    the Dirichlet row restricted to the states of the agent's type and renormalized (the
    same draws as the untyped game), and ``type_counts`` (default: ``n`` split evenly)
    agents of each type start uniform over the states of their type."""
    n_sg, n_ag, n_sl, n_al = (check_int(name, v, 1, MAX_SPACE) for name, v in (
        ("n_sg", n_sg), ("n_ag", n_ag), ("n_sl", n_sl), ("n_al", n_al)))
    check_game_size("random", n_sg, n_ag, n_sl, n_al)
    seed = check_int("seed", seed, 0)
    check_positive("concentration", concentration)
    check_float("r_max", r_max, 0.0)
    rng = _random.rng(seed)
    P_g = rng.dirichlet(np.full(n_sg, concentration), size=(n_sg, n_ag))
    P_l = rng.dirichlet(np.full(n_sl, concentration), size=(n_sl, n_sg, n_al))
    r_g = rng.uniform(0, r_max / 2, size=(n_sg, n_ag))
    r_l = rng.uniform(0, r_max / 2, size=(n_sl, n_sg, n_al))
    meta = {"env": "random", "n_sg": n_sg, "n_ag": n_ag, "n_sl": n_sl, "n_al": n_al,
            "seed": seed, "gamma": gamma}
    if types is None:
        return TabularGame(P_g, P_l, r_g, r_l, gamma, n, name=f"random(seed={seed})",
                           meta=meta)
    t = np.asarray(types)
    if t.dtype.kind not in "iuf" or t.shape != (n_sl,):
        raise ValueError(f"types: expected one integer label per local state, shape ({n_sl},), "
                         f"got {t.dtype} of shape {t.shape}")
    # labels are 0..C-1 with every type non-empty, so C <= |S_l|: never more (check_types
    # then names a label out of range)
    C = min(int(t.max()) + 1, n_sl) if t.size and np.isfinite(t).all() else 0
    counts = scale_counts(tuple([1] * C), n) if type_counts is None else type_counts
    t, tc = check_types(t, counts, n_sl, n)
    same = (t[:, None] == t[None, :]).astype(np.float64)  # (x, x')
    P_l = P_l * same[:, None, None, :]
    P_l /= P_l.sum(axis=-1, keepdims=True)
    meta.update(types=t.tolist(), type_counts=list(tc))
    return TabularGame(P_g, P_l, r_g, r_l, gamma, n, name=f"random(seed={seed}, typed)",
                       meta=meta, types=t, type_counts=tc)
