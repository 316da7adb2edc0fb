"""Off-policy G-LEARN: asynchronous Q-learning over ``(s_g, h, a_g)`` from logs (paper
Appendix E, eq. 38; SPEC 4 "Off-policy variant")::

    Q(s, a) <- Q(s, a) + alpha_t (r_t + gamma max_a' Q(s', a') - Q(s, a)),   s = (s_g, h).

* :func:`g_learn_offpolicy` -- eq. 38 sample by sample (``mode="sequential"``), or value
  iteration on the empirical model of the log (``mode="synchronous"``);
* :func:`step_sizes` -- the per-pair step-size schedules ``alpha(v)``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from altmarl import _random
from altmarl._validate import (
    SPACE_KEYS,
    check_choice,
    check_float,
    check_gamma,
    check_int,
    check_spaces,
)
from altmarl.game import TabularGame, check_recorded_game
from altmarl.histogram import check_table_size
from altmarl.offpolicy.dataset import OfflineDataset, load_dataset
from altmarl.policies import GlobalPolicy
from altmarl.progress import Progress

FloatArray = NDArray[np.float64]

#: step-size schedules of :func:`step_sizes`
SCHEDULES = ("rescaled-linear", "polynomial", "constant")
#: update modes of :func:`g_learn_offpolicy`
MODES = ("sequential", "synchronous")
#: greedy tie-breaking rules of :func:`g_learn_offpolicy`
TIE_BREAKS = ("seeded", "lowest")


def step_sizes(schedule: str, count: int, gamma: float, omega: float = 0.8,
               alpha: float = 0.1) -> FloatArray:
    """``alpha(v)`` for the ``v``-th update (``v = 0, 1, ...``) of one ``(s, a)`` pair.

    * ``"rescaled-linear"``: ``1 / (1 + (1 - gamma) v)`` -- the rescaled linear step size
      of Wainwright (2019) and, per pair, the ``alpha / (t + h)`` schedule with
      ``alpha = h = 1 / (1 - gamma)`` of the Markovian stochastic approximation result that
      Appendix E cites (Chen et al. 2021, Theorem 3.1);
    * ``"polynomial"``: ``1 / (1 + v)^omega``, ``1/2 < omega <= 1`` (``omega = 1``: the
      running average);
    * ``"constant"``: ``alpha``.
    """
    check_choice("schedule", schedule, SCHEDULES)
    v = np.arange(count, dtype=np.float64)
    if schedule == "rescaled-linear":
        return 1.0 / (1.0 + (1.0 - gamma) * v)
    if schedule == "polynomial":
        return np.asarray((1.0 + v) ** (-omega), dtype=np.float64)
    return np.full(count, alpha)


def _sequential_epoch(Q: list[float], visits: list[int], sa: list[int], rr: list[float],
                      nb: list[int], A: int, gamma: float, alphas: list[float],
                      step: Callable[[int], None], every: int) -> None:
    """One pass of eq. 38 over the samples, in order (plain Python on lists: about a
    microsecond per sample)."""
    T = len(sa)
    for lo in range(0, T, every):
        hi = min(T, lo + every)
        for j, r, b in zip(sa[lo:hi], rr[lo:hi], nb[lo:hi], strict=True):
            v = visits[j]
            q = Q[j]
            Q[j] = q + alphas[v] * (r + gamma * max(Q[b:b + A]) - q)
            visits[j] = v + 1
        step(hi - lo)


def g_learn_offpolicy(
    game_spaces: TabularGame | dict[str, int],
    dataset: OfflineDataset | str | os.PathLike[str],
    k: int | None = None,
    gamma: float | None = None,
    *,
    epochs: int | None = None,
    schedule: str = "rescaled-linear",
    omega: float = 0.8,
    alpha: float = 0.1,
    mode: str = "sequential",
    tol: float = 1e-8,
    q_init: float = 0.0,
    seed: int = 0,
    tie_break: str = "seeded",
    strict: bool = True,
    progress: bool = False,
) -> GlobalPolicy:
    """Off-policy G-LEARN (Appendix E, eq. 38): Q-learning over ``(s_g, h, a_g)`` from logs.

    Parameters
    ----------
    game_spaces
        The game (spaces, and with ``strict=True`` the recorded fingerprint, checked against
        the log) or a spaces dict ``{"S_g", "A_g", "S_l"}``: the learner is model-free and
        needs only the sizes.
    dataset
        An :class:`OfflineDataset` or a log path (loaded with :func:`load_dataset`).
    k
        Subsample size; must equal the log's (default: the log's).
    gamma
        Discount of the learned ``Q`` (default: the log's).
    epochs
        Passes over the data (default 1 for ``"sequential"``; for ``"synchronous"``, until
        the change is below ``tol``, at most 100000).
    schedule, omega, alpha
        Step size as a function of the pair's visit count (:func:`step_sizes`); counts keep
        growing across epochs.
    mode
        ``"sequential"`` (default): eq. 38 sample by sample, in log order.
        ``"synchronous"``: every epoch applies, to every visited pair at once, the average
        of its targets ``r + gamma max_a' Q(s', a')`` over the whole log (step size 1): value
        iteration on the empirical model of the log (certainty equivalence); vectorized.
    q_init
        Initial value of every entry; pairs without data keep it.
    seed, tie_break
        Greedy ties (e.g. states without data) are broken uniformly at random with a
        generator seeded from ``seed`` (``"seeded"``) or by the lowest action (``"lowest"``).

    Returns
    -------
    GlobalPolicy
        Greedy for the learned ``q`` (``(|S_g|, |H_k|, |A_g|)``); ``info`` has ``epochs``,
        ``updates``, ``transitions``, ``schedule``, ``mode``, ``last_epoch_change``
        (``||Q_e - Q_{e-1}||_inf`` of the last epoch), ``coverage`` and ``visits``
        statistics, ``wall_seconds``, and the log's ``behaviour``.
    """
    t0 = time.perf_counter()
    game = game_spaces if isinstance(game_spaces, TabularGame) else None
    sp = game.spaces if game is not None else check_spaces(game_spaces)
    if not isinstance(dataset, OfflineDataset):
        dataset = load_dataset(dataset, game if game is not None else sp, k, strict)
    ds = dataset
    for key in SPACE_KEYS:
        if ds.spaces[key] != sp[key]:
            raise ValueError(f"dataset.spaces.{key} = {ds.spaces[key]}: the game has {key} = "
                             f"{sp[key]}")
    if game is not None:
        check_recorded_game(ds.info.get("game"), game, "dataset", "recorded on", strict)
    if k is not None and k != ds.k:
        raise ValueError(f"k = {k}: the dataset was logged with k = {ds.k}")
    g = ds.gamma if gamma is None else check_gamma(gamma)
    check_choice("mode", mode, MODES)
    check_choice("schedule", schedule, SCHEDULES)
    if schedule == "polynomial" and not (0.5 < float(omega) <= 1.0):
        raise ValueError(f"omega = {omega!r}: expected 1/2 < omega <= 1")
    if schedule == "constant" and not (0.0 < float(alpha) <= 1.0):
        raise ValueError(f"alpha = {alpha!r}: expected 0 < alpha <= 1")
    check_choice("tie_break", tie_break, TIE_BREAKS)
    check_float("q_init", q_init)
    max_epochs = 100_000 if mode == "synchronous" else 1
    E = max_epochs if epochs is None else check_int("epochs", epochs, 1)
    S, A = ds.n_sg, ds.n_ag
    nh = check_table_size("off-policy G-LEARN: the Q table |S_g| x |H_k| x |A_g|", ds.k,
                          ds.n_sl, S * A)
    P = S * nh * A
    cur, nxt = ds.state_index()
    sa = cur * A + ds.a_g
    counts = np.bincount(sa, minlength=P)
    Qa = np.full(P, float(q_init))
    change = float("nan")
    epochs_run = 0
    if mode == "sequential":
        alphas = step_sizes(schedule, int(counts.max()) * E + 1, g, float(omega),
                            float(alpha)).tolist()
        Q = Qa.tolist()
        visits = [0] * P
        sa_l, r_l, nb_l = sa.tolist(), ds.r.tolist(), (nxt * A).tolist()
        with Progress(enabled=progress, transient=True) as bar:
            task = bar.add_task("off-policy G-LEARN", total=E * len(ds))

            def step(n: int) -> None:
                bar.advance(task, n)

            for _ in range(E):
                before = np.asarray(Q)
                _sequential_epoch(Q, visits, sa_l, r_l, nb_l, A, g, alphas, step, 1 << 16)
                Qa = np.asarray(Q, dtype=np.float64)
                change = float(np.abs(Qa - before).max())
                epochs_run += 1
    else:
        visited = counts > 0
        inv = np.zeros(P)
        inv[visited] = 1.0 / counts[visited]
        with Progress(enabled=progress, transient=True) as bar:
            task = bar.add_task("off-policy G-LEARN (synchronous)", total=E)
            for _ in range(E):
                V = Qa.reshape(-1, A).max(axis=1)
                target = np.bincount(sa, weights=ds.r + g * V[nxt], minlength=P) * inv
                new = np.where(visited, target, Qa)
                change = float(np.abs(new - Qa).max())
                Qa = new
                epochs_run += 1
                bar.advance(task)
                if epochs is None and change <= tol:
                    break
    q = Qa.reshape(S, nh, A)
    cov = ds.coverage()
    info: dict[str, Any] = {
        "method": "g-learn-offpolicy",
        "k": ds.k,
        "gamma": g,
        "mode": mode,
        "schedule": schedule if mode == "sequential" else "none (step 1)",
        "omega": float(omega) if schedule == "polynomial" else None,
        "alpha": float(alpha) if schedule == "constant" else None,
        "epochs": epochs_run,
        "transitions": len(ds),
        "updates": epochs_run * len(ds),
        "last_epoch_change": change,
        "q_init": float(q_init),
        "coverage": cov,
        "visits_min": int(counts[counts > 0].min()),
        "visits_max": int(counts.max()),
        "seed": int(seed),
        "tie_break": tie_break,
        "behaviour": ds.info.get("behaviour"),
        "wall_seconds": time.perf_counter() - t0,
    }
    # the root state of SeedSequence(seed) (not _random.tie_seed, G-LEARN's third child)
    tie_seed = (_random.int_seed(_random.as_seed_sequence(seed))
                if tie_break == "seeded" else None)
    return GlobalPolicy.from_q(ds.k, q, info=info, game=game, tie_seed=tie_seed)


__all__ = ["MODES", "SCHEDULES", "TIE_BREAKS", "g_learn_offpolicy", "step_sizes"]
