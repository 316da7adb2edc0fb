"""The generative view of a tabular game (SPEC 11): ``TabularGame.as_generative()``.

The same law as the tables (SPEC 1): ``reset`` draws ``(s_g, N)`` from the game's initial
distribution and gives the ``N[x]`` agents of each state ``x`` in a uniformly random order;
``step`` draws ``s_g' ~ P_g(. | s_g, a_g)`` per rollout and, independently per agent,
``s_i' ~ P_l(. | s_i, s_g, a_i)``, both with Walker's alias method (``O(1)`` per agent: one
uniform picks a column ``j`` and, by its fractional part, ``j`` or its alias), and returns
``r_g[s_g, a_g]`` and ``r_l[s_i, s_g, a_i]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from altmarl.generative.game import GenerativeGame

if TYPE_CHECKING:
    from altmarl.game import TabularGame

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def alias_tables(p: FloatArray) -> tuple[FloatArray, IntArray]:
    """Walker/Vose alias tables of the probability rows ``p`` (shape ``(rows, d)``),
    vectorized over rows: ``prob[r, j]`` is the chance of keeping column ``j`` and
    ``alias[r, j]`` the column taken otherwise. Sampling: ``j ~ U{0..d-1}``, ``u ~ U(0, 1)``,
    ``x = j if u < prob[r, j] else alias[r, j]``; then ``P(x) = p[r, x]``.

    Construction: ``d`` rounds; each round pairs, in every row, the unfinished column with
    the smallest scaled mass ``q <= 1`` with the one with the largest ``q >= 1``, which
    donates ``1 - q_small``.
    """
    rows, d = p.shape
    q = np.asarray(p, dtype=np.float64) * d
    prob = np.ones((rows, d))
    alias = np.broadcast_to(np.arange(d, dtype=np.int64), (rows, d)).copy()
    done = np.zeros((rows, d), dtype=bool)
    r = np.arange(rows)
    for _ in range(d - 1):
        small = np.where(done, np.inf, q).argmin(axis=1)
        done[r, small] = True
        large = np.where(done, -np.inf, q).argmax(axis=1)
        prob[r, small] = np.minimum(q[r, small], 1.0)
        alias[r, small] = large
        q[r, large] -= 1.0 - q[r, small]
    # the last column keeps itself (prob 1): its mass is 1 up to round-off
    return prob, alias


def sample_alias(prob: FloatArray, alias: IntArray, row: IntArray,
                 rng: np.random.Generator) -> IntArray:
    """One draw per entry of ``row`` from the alias tables (:func:`alias_tables`): one
    uniform ``v`` per draw, column ``j = floor(d v)``, kept when the fractional part of
    ``d v`` is below ``prob[row, j]``."""
    d = prob.shape[1]
    u = rng.random(row.shape)
    u *= d
    j = u.astype(np.int64)
    np.minimum(j, d - 1, out=j)  # d * v rounds up to d for v within 2^-53 of 1
    u -= j
    flat = row * d
    flat += j
    out = alias.ravel().take(flat)
    np.copyto(out, j, where=u < prob.ravel().take(flat))
    return out


class TabularSampler:
    """``reset`` and ``step`` functions with the law of a :class:`~altmarl.TabularGame`."""

    def __init__(self, game: TabularGame) -> None:
        self.game = game
        S_l, S_g, A_l = game.n_sl, game.n_sg, game.n_al
        self.prob_l, self.alias_l = alias_tables(game.P_l.reshape(S_l * S_g * A_l, S_l))
        self.prob_g, self.alias_g = alias_tables(game.P_g.reshape(S_g * game.n_ag, S_g))
        self.r_l_flat = np.ascontiguousarray(game.r_l).ravel()

    def reset(self, rng: np.random.Generator, R: int) -> tuple[IntArray, IntArray]:
        """``(s_g, N) ~ init``; agents of each state in a uniformly random order."""
        g = self.game
        s_g, N = g.sample_init(rng, R)
        states = np.repeat(np.tile(np.arange(g.n_sl, dtype=np.int64), R), N.ravel())
        return s_g, rng.permuted(states.reshape(R, g.n), axis=1)

    def step(self, s_g: IntArray, s_l: IntArray, a_g: IntArray, a_l: IntArray,
             rng: np.random.Generator) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """One transition of the tables, for any number of agents."""
        g = self.game
        r_g = g.r_g[s_g, a_g]
        # flat (s_l, s_g, a_l) row: indexes r_l and the rows of the alias tables of P_l
        row = s_l * g.n_sg
        row += s_g[:, None]
        row *= g.n_al
        row += a_l
        r_l = self.r_l_flat.take(row)
        nxt = sample_alias(self.prob_l, self.alias_l, row, rng)
        s_g2 = sample_alias(self.prob_g, self.alias_g, s_g * g.n_ag + a_g, rng)
        return s_g2, nxt, r_g, r_l


def tabular_view(game: TabularGame, check: str = "first", **meta: Any) -> GenerativeGame:
    """``game`` as a :class:`GenerativeGame` with count observations and the same law."""
    sampler = TabularSampler(game)
    return GenerativeGame(
        n=game.n, gamma=game.gamma, num_global_actions=game.n_ag,
        num_local_actions=game.n_al, reset=sampler.reset, step=sampler.step,
        observe="counts", name=game.name, num_global_states=game.n_sg,
        num_local_states=game.n_sl, r_max=game.r_max, r_min=game.reward_bounds[0],
        check=check,
        meta={**game.meta, **meta, "tabular_fingerprint": game.fingerprint(),
              "view": "as_generative"},
    )
