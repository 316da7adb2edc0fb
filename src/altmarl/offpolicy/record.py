"""Logs of the real ``n``-agent system under a behaviour policy (paper Appendix E; SPEC 4
"Off-policy variant"), drawn with the count simulator's step
(:func:`altmarl.simulate.count_step`, SPEC 3).

:func:`record_logs` returns an :class:`~altmarl.offpolicy.dataset.OfflineDataset` whose
metadata describes the behaviour (uniform or epsilon-greedy global actions; local agents
follow ``pi_l``), the reward model and the game.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from altmarl import _random
from altmarl._validate import check_bool, check_choice, check_int
from altmarl.game import TabularGame, check_game
from altmarl.generative.simulator import chunk_sizes
from altmarl.histogram import rank
from altmarl.limits import INT64_MAX, check_simulation
from altmarl.offpolicy.dataset import OfflineDataset
from altmarl.policies import (
    GlobalPolicy,
    LocalPolicy,
    check_global_policy,
    check_local_policy,
)
from altmarl.progress import Progress
from altmarl.simulate import (
    count_step,
    multivariate_hypergeometric,
    step_tables,
    subsample_histograms,
)

if TYPE_CHECKING:
    from altmarl.glearn.rewards import RewardModel

#: behaviour policies of the global agent
BEHAVIOURS = ("uniform", "epsilon-greedy")
#: what the logged ``h'`` is (see :func:`record_logs`)
NEXT_HISTOGRAMS = ("fresh", "tracked")
#: episodes per independently seeded chunk of :func:`record_logs`
CHUNK = 128


def _policy_description(pol: GlobalPolicy | LocalPolicy | None) -> dict[str, Any] | None:
    if pol is None:
        return None
    desc: dict[str, Any] = {"type": type(pol).__name__}
    for key in ("kind", "method", "k", "m", "seed"):
        if key in pol.info:
            val = pol.info[key]
            desc[key] = val if isinstance(val, int | float | str | type(None)) else repr(val)
    if isinstance(pol, GlobalPolicy):
        desc["k"] = pol.k
    return desc


def record_logs(
    game: TabularGame,
    k: int,
    episodes: int = 100,
    horizon: int = 100,
    *,
    pi_l: LocalPolicy | None = None,
    behaviour: str = "uniform",
    pi_g: GlobalPolicy | None = None,
    epsilon: float = 0.1,
    reward_model: RewardModel | None = None,
    next_histogram: str = "fresh",
    local_actions: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> OfflineDataset:
    """Log ``episodes`` trajectories of ``horizon`` steps of the ``n``-agent system under a
    behaviour policy (Appendix E), with the exact count simulator (SPEC 3).

    Per step, vectorized over episodes: ``h`` = histogram of a fresh uniform ``k``-subset
    (multivariate hypergeometric); ``a_g`` = behaviour action (``"uniform"`` over ``A_g``,
    or ``"epsilon-greedy"``: ``pi_g(s_g, h)`` with probability ``1 - epsilon``, else
    uniform; every action then has probability ``>= epsilon / |A_g| > 0``, Assumption E.1);
    every local agent acts by ``pi_l`` (default uniform) and moves (multinomial per
    (state, action) cell); the sampled agents' action counts are a multivariate
    hypergeometric sub-draw of each bin's action counts, which gives the observed reward
    ``r = r_g(s_g, a_g) + (1/k) sum_{i in Delta} r_l(s_i, s_g, a_i)`` (or draws of it from
    ``reward_model``). Episodes run in chunks of ``CHUNK`` seeded by the
    children ``0, 1, ...`` of ``SeedSequence(seed)``.

    ``next_histogram`` says what ``h'`` is:

    * ``"fresh"`` (default): the histogram of a fresh ``k``-sample of the next population,
      which is also the next row's ``h`` (what a dispatcher that samples ``k`` agents every
      step logs). For ``n > k`` the logged ``(s_g, h)`` process is not the ``k``-agent
      surrogate, and eq. 38 converges to the fixed point of *this* process (which depends
      on the behaviour policy), not exactly to G-LEARN's ``Q_hat`` (docs/offpolicy.md).
    * ``"tracked"``: the histogram of the *same* ``k`` sampled agents after their move
      (a multivariate hypergeometric sub-draw of the population's (state, action, next
      state) counts); the next row's ``h`` is still a fresh sample. Then ``(s_g, h) ->
      (s_g', h')`` is exactly the surrogate's transition for any ``n``, and eq. 38
      converges to ``Q_hat`` of G-LEARN with the exact expectation.

    ``local_actions=True`` also logs, per step, the population's local-action counts
    ``N[x, a]`` (the count simulator's cells: no extra random draw, the other columns are
    unchanged) and the local behaviour ``pi_l``'s table in the sidecar, which is what
    :func:`~altmarl.offpolicy.ope.offpolicy_evaluate` needs to evaluate a *joint* policy
    ``(pi_g, pi_l')`` by importance sampling (docs/offpolicy.md, section 7).
    """
    game = check_game(game)
    k = game.check_k(k)
    R_tot = check_int("episodes", episodes, 1, INT64_MAX)
    H = check_int("horizon", horizon, 1, INT64_MAX)
    # the log in memory (rows x columns) and the k sampled agents simulated per step
    local_actions = check_bool("local_actions", local_actions)
    check_simulation("record_logs: episodes", R_tot, H,
                     2 * game.n_sl + 6 + (game.n_sl * game.n_al if local_actions else 0),
                     k + game.n_sl)
    seed = check_int("seed", seed, 0)
    check_choice("behaviour", behaviour, BEHAVIOURS)
    if pi_l is None:
        pi_l = LocalPolicy.uniform(game)
    pi_l = check_local_policy(game, pi_l)
    eps = 1.0
    if behaviour == "epsilon-greedy":
        if not isinstance(pi_g, GlobalPolicy):
            raise ValueError("pi_g: behaviour 'epsilon-greedy' needs a GlobalPolicy to be greedy "
                             "around")
        if pi_g.k != k:
            raise ValueError(f"pi_g.k = {pi_g.k}: the behaviour policy must act on the logged "
                             f"k = {k} sample")
        check_global_policy(game, pi_g)
        eps = float(epsilon)
        if not (0.0 < eps <= 1.0):
            raise ValueError(f"epsilon = {epsilon!r}: expected 0 < epsilon <= 1 (every action "
                             "needs positive probability, Assumption E.1)")
    if reward_model is not None:
        reward_model.check_game(game)
    check_choice("next_histogram", next_histogram, NEXT_HISTOGRAMS)
    tracked = next_histogram == "tracked"
    n, d, Ag = game.n, game.n_sl, game.n_ag
    tables = step_tables(game, pi_l.table)
    sizes = chunk_sizes(R_tot, CHUNK)
    out: dict[str, list[NDArray[Any]]] = {key: [] for key in
                                          ("s_g", "h", "a_g", "r", "s_g'", "h'", "N")}
    with Progress(enabled=progress, transient=True) as bar:
        task = bar.add_task("recording logs", total=len(sizes) * H)
        for j, R in enumerate(sizes):
            rng = _random.rng(seed, j)  # chunk j: child j of SeedSequence(seed)
            s_g, N = game.sample_init(rng, R)
            h = subsample_histograms(N, k, rng)
            rec = {"s_g": np.empty((R, H), np.int64), "a_g": np.empty((R, H), np.int64),
                   "r": np.empty((R, H)), "s_g'": np.empty((R, H), np.int64),
                   "h": np.empty((R, H, d), np.int64), "h'": np.empty((R, H, d), np.int64)}
            if local_actions:
                rec["N"] = np.empty((R, H, d, game.n_al), np.int64)
            for t in range(H):
                a_g = rng.integers(0, Ag, size=R)
                if behaviour == "epsilon-greedy":
                    assert pi_g is not None
                    greedy = pi_g.act_ranked(s_g, rank(h, k))
                    a_g = np.where(rng.random(R) < eps, a_g, greedy)
                # the step's reward is the k sampled agents' (Appendix E): 1/k times their
                # local rewards, the sampled agents' actions a sub-draw of each bin's
                cs = count_step(tables, s_g, N, a_g, rng, sample=h, reward_model=reward_model)
                r, s_next, N = cs.reward, cs.s_g, cs.counts
                h_next = subsample_histograms(N, k, rng)
                h_logged = h_next
                if tracked and k < n:  # where the same k agents went
                    assert cs.sampled is not None
                    h_logged = multivariate_hypergeometric(cs.moves, cs.sampled,
                                                           rng).sum(axis=(1, 2))
                rec["s_g"][:, t], rec["a_g"][:, t], rec["r"][:, t] = s_g, a_g, r
                rec["s_g'"][:, t], rec["h"][:, t], rec["h'"][:, t] = s_next, h, h_logged
                if local_actions:
                    rec["N"][:, t] = cs.act_counts
                s_g, h = s_next, h_next
                bar.advance(task)
            for key, val in rec.items():
                out[key].append(val.reshape((R * H,) + val.shape[2:]))
    cat = {key: np.concatenate(v, axis=0) for key, v in out.items() if v}
    episode = np.repeat(np.arange(R_tot, dtype=np.int64), H)
    tt = np.tile(np.arange(H, dtype=np.int64), R_tot)
    bdesc: dict[str, Any] = {"kind": behaviour}
    if behaviour == "epsilon-greedy":
        bdesc.update(epsilon=eps, policy=_policy_description(pi_g))
    info = {
        "behaviour": bdesc,
        "local_policy": _policy_description(pi_l),
        "reward": ({"kind": "deterministic"} if reward_model is None
                   else {"kind": "stochastic", **reward_model.describe()}),
        "game": {"name": game.name, "fingerprint": game.fingerprint()},
        "next_histogram": next_histogram,
        "episodes": R_tot,
        "horizon": H,
        "seed": seed,
    }
    return OfflineDataset.from_arrays(
        cat["s_g"], cat["h"], cat["a_g"], cat["r"], cat["s_g'"], cat["h'"], k=k,
        spaces=game.spaces, gamma=game.gamma, n=n, episode=episode, t=tt, info=info,
        local_counts=cat.get("N"), local_behaviour=pi_l.table if local_actions else None)


__all__ = ["BEHAVIOURS", "CHUNK", "NEXT_HISTOGRAMS", "record_logs"]
