"""The continuous warehouse of SPEC 8.2 as a generative game (SPEC 11):
``am.envs.make("continuous-warehouse", n=500)``.

The law is :class:`altmarl.continuous.env.ContinuousWarehouse`'s (scalar states in
``[-2, 2]``, five targets, three moves; its model pieces ``reset``, ``step_global``,
``step_local``, ``r_g``, ``r_l`` are called as they are), given to
:class:`~altmarl.GenerativeGame` as ``reset`` / ``step`` functions:

    step(s_g, s_l, a_g, a_l, rng):  r_g(s_g, a_g), r_l(s_i, s_g, a_i) of the state before the
                                    step; s_l' = step_local(s_l, a_l, N(0, 1) draws);
                                    s_g' = step_global(s_g, a_g, N(0, 1) draws)

The global agent sees the histogram of its ``k``-sample in the five equal bins of SPEC 8.2
(observer ``Histogram(edges)`` with the four inner edges ``-1.2, -0.4, 0.4, 1.2``: the same
bins as ``ContinuousWarehouse.bin_of``), so :class:`altmarl.continuous.GlobalAgent` (whose
``act(s_g, hist)`` reads these counts) and :class:`altmarl.continuous.LocalAgent`
(``act(s_l, s_g, rng)``: its greedy network actions) act on it, and ``am.evaluate`` scores
the networks of ``run_continuous`` on the per-agent simulator.

How it relates to ``run_continuous`` (docs/continuous.md): same law, another simulator.
``run_continuous`` keeps its own batched simulator (six independent random streams for
common random numbers across policies, float32 positions, the local network compiled to a
bilinear table) and its learners (cross-entropy or rollout G-LEARN, TRPO), so its seeded
published numbers stay reproducible. ``am.alternating_marl(am.envs.make(
"continuous-warehouse"), k)`` runs the general code on this game: neural G-LEARN (fitted
Q-iteration), neural L-LEARN (the same TRPO update), the per-agent simulator (float64
positions, one stream per chunk of rollouts). Values of the same policies agree within
Monte-Carlo error between the two simulators (tests/test_generative_warehouse.py), not bit
for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl.generative.game import GenerativeGame
from altmarl.generative.observe import Histogram


def continuous_warehouse(n: int = 500, check: str = "first", **params: Any) -> GenerativeGame:
    """The continuous warehouse (SPEC 8.2) as a :class:`~altmarl.GenerativeGame` (module
    docstring). ``params`` are the other fields of
    :class:`altmarl.continuous.env.ContinuousWarehouse` (``gamma``, ``targets``, ...);
    ``check="first"`` validates the probe calls in full and later calls by shape (the
    functions are the library's own)."""
    from altmarl.continuous.env import ContinuousWarehouse

    known = sorted(set(ContinuousWarehouse.__dataclass_fields__) - {"n", "name"})
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"env 'continuous-warehouse': unknown parameter(s) {unknown}; "
                         f"accepted: ['n', 'check', {', '.join(repr(x) for x in known)}]")
    env = ContinuousWarehouse(n=n, **params)

    def reset(rng: np.random.Generator, R: int) -> tuple[NDArray[Any], NDArray[Any]]:
        return env.reset(rng, R)

    def step(s_g: NDArray[Any], s_l: NDArray[Any], a_g: NDArray[Any], a_l: NDArray[Any],
             rng: np.random.Generator) -> tuple[Any, Any, Any, Any]:
        s_g = np.asarray(s_g, dtype=np.float64)
        s_l = np.asarray(s_l, dtype=np.float64)
        r_g = env.r_g(s_g, a_g)
        r_l = env.r_l(s_l, s_g[:, None], a_l)
        s_l2 = env.step_local(s_l, a_l, rng.standard_normal(s_l.shape))
        s_g2 = env.step_global(s_g, a_g, rng.standard_normal(s_g.shape))
        return s_g2, s_l2, r_g, r_l

    return GenerativeGame(
        n=env.n, gamma=env.gamma, num_global_actions=env.n_ag, num_local_actions=env.n_al,
        reset=reset, step=step, observe=Histogram(env.bin_edges[1:-1]),
        name="continuous-warehouse", r_min=env.r_min, r_max=env.r_max, check=check,
        meta={"env": env.to_json(), "source": "altmarl.continuous.env.ContinuousWarehouse"})


__all__ = ["continuous_warehouse"]
