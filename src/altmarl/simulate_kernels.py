"""Numba kernels of the count simulator (SPEC 3, Algorithm 5).

* :func:`multinomial_rows` — the population move of one step, NumPy's
  ``Generator.multinomial`` recipe draw for draw (:func:`altmarl.simulate.multinomial_moves`);
* :func:`uniform_rollout_block` — steps ``t0 .. t1 - 1`` of a batch of rollouts under a
  tabular global policy that observes a uniform sample (:class:`altmarl.sampling.Uniform`,
  the default scheme), in one compiled loop that releases the GIL: the sample, the global
  action, the move and the next global state, making the same draws from the same stream
  as the step-by-step loop of :func:`altmarl.simulate.rollout_counts` (one
  :func:`altmarl.simulate.global_actions` and one :func:`altmarl.simulate.count_step` per
  step). The stage rewards are left to the caller: they are computed from the recorded
  action counts with the same NumPy expression as :func:`~altmarl.simulate.count_step`.

Importing this module imports Numba; :mod:`altmarl.simulate` does so on first use.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from altmarl.sampling_kernels import hypergeometric_rows


@numba.njit(cache=True, nogil=True, boundscheck=False)
def multinomial_rows(rng: Any, joint: Any, s_g: Any, counts: Any, out: Any) -> None:
    """``out[r, x] ~ Multinomial(counts[r, x], joint[s_g[r], x])`` for every row, in C
    order, as conditional binomials ``Binomial(left, p_j / (1 - p_0 - ... - p_{j-1}))``
    cell by cell, stopping when no agent is left: NumPy's ``Generator.multinomial``
    recipe, so the same draws from the same stream."""
    R, d = counts.shape
    m = joint.shape[2]
    for r in range(R):
        s = s_g[r]
        for x in range(d):
            left = counts[r, x]
            remaining = 1.0
            for j in range(m):
                out[r, x, j] = 0
            for j in range(m - 1):
                b = rng.binomial(left, joint[s, x, j] / remaining)
                out[r, x, j] = b
                left -= b
                if left <= 0:
                    break
                remaining -= joint[s, x, j]
            if left > 0:
                out[r, x, m - 1] = left


@numba.njit(cache=True, nogil=True, boundscheck=False)
def uniform_rollout_block(rng: Any, state: int, joint: Any, cdf_g: Any, actions: Any,
                          table: Any, k: int, n: int, limit: int, s_g: Any, counts: Any,
                          t0: int, t1: int, rec_s: Any, rec_a: Any, rec_n: Any,
                          rec_mode: Any, acts: Any) -> None:
    """Steps ``t0 .. t1 - 1`` of ``R`` rollouts in place (``s_g`` ``(R,)`` and ``counts``
    ``(R, d)`` hold the state and are advanced), for every step, in the stream order of the
    step-by-step loop:

    1. ``h ~ MultivariateHypergeometric(counts, k)`` (colours outer, rows inner, with
       :func:`altmarl.sampling_kernels.hypergeometric_rows` on the bit generator at
       ``state``; no draw when ``k = n``, the population every row sums to) and
       ``a_g = actions[s_g, rank(h)]`` (``rank`` of :func:`altmarl.histogram.rank`, with
       ``table`` its :func:`~altmarl.histogram.binomial_table`);
    2. the move, :func:`multinomial_rows` from ``rng``;
    3. ``s_g' `` by inverse CDF of ``cdf_g[s_g, a_g]`` with one ``rng.random()`` per row
       (:func:`altmarl.simulate.inverse_cdf_rows`); ``counts'[y] = sum_{x,a} M[x, a, y]``.

    Records, at column ``t``: ``rec_s`` / ``rec_a`` ``(R, H)`` the state and action before
    the step; ``rec_n`` ``(R, H, d)`` the counts before the step and ``rec_mode`` ``(R, H)``
    whether ``a_g`` is their first largest bin (``np.argmax``), each only when its array is
    not empty (``size 0``: not recorded); ``acts[t - t0]`` ``(R, d, |A_l|)`` the action
    counts of the move. The caller checks every index: ``s_g`` in ``[0, |S_g|)``,
    ``counts >= 0`` with rows summing to ``n``, ``actions`` of shape ``(|S_g|, |H_k|)``
    with values in ``[0, cdf_g.shape[1])``, ``rec_*`` and ``acts`` of the shapes above
    (the kernel does not bound-check). ``rng`` and ``state`` are the same generator (the
    caller holds its lock)."""
    R, d = counts.shape
    A = acts.shape[3]
    m = joint.shape[2]
    G = cdf_g.shape[2]
    h = np.empty((R, d), dtype=np.int64)
    left0 = np.full(R, k, dtype=np.int64)
    moves = np.empty((R, d, m), dtype=np.int64)
    keep_n = rec_n.size > 0
    keep_mode = rec_mode.size > 0
    for t in range(t0, t1):
        for r in range(R):
            rec_s[r, t] = s_g[r]
            if keep_n:
                for x in range(d):
                    rec_n[r, t, x] = counts[r, x]
        if k == n:
            for r in range(R):
                for x in range(d):
                    h[r, x] = counts[r, x]
        elif not hypergeometric_rows(state, counts, left0, h, limit):
            raise ValueError("uniform_rollout_block: counts outside the hypergeometric domain")
        for r in range(R):
            # the rank of h in H_k (altmarl.histogram.rank)
            rem = k
            idx = 0
            for i in range(d - 1):
                e = d - 1 - i
                nxt = rem - h[r, i]
                idx += table[rem, e] - table[nxt, e]
                rem = nxt
            a_g = actions[s_g[r], idx]
            rec_a[r, t] = a_g
            if keep_mode:
                best = 0
                for x in range(1, d):
                    if counts[r, x] > counts[r, best]:
                        best = x
                rec_mode[r, t] = a_g == best
        multinomial_rows(rng, joint, s_g, counts, moves)
        b = t - t0
        for r in range(R):
            for y in range(d):
                counts[r, y] = 0
            for x in range(d):
                for a in range(A):
                    tot = 0
                    for y in range(d):
                        v = moves[r, x, a * d + y]
                        tot += v
                        counts[r, y] += v
                    acts[b, r, x, a] = tot
        for r in range(R):
            # s_g' by inverse CDF (altmarl.simulate.inverse_cdf_rows)
            u = rng.random()
            row = cdf_g[s_g[r], rec_a[r, t]]
            c = 0
            for j in range(G):
                if row[j] < u:
                    c += 1
            s_g[r] = min(c, G - 1)
