"""G-LEARN's entry points (SPEC 4, SPEC 10): :func:`g_learn` (exported as ``am.g_learn``),
the global agent's best response to a fixed ``pi_l`` (paper Algorithm 22), and
:func:`g_learn_stochastic` (``am.g_learn_stochastic``), the same with stochastic rewards
(Appendix F).

Each is three steps: options (:class:`~altmarl.glearn.options.GLearnOptions`, built from
the keywords), operator (:func:`~altmarl.glearn.operator.empirical_operator` or
:func:`~altmarl.glearn.stochastic.randomized_operator`), and the greedy policy of its fixed
point (:func:`~altmarl.glearn.solvers.policy_from_operator`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from numpy.typing import NDArray

from altmarl.game import TabularGame
from altmarl.generative.game import GenerativeGame
from altmarl.glearn.operator import empirical_operator
from altmarl.glearn.options import (
    DEFAULT_M,
    DEFAULT_PARAMETERIZATION,
    DEFAULT_SOLVER,
    DEFAULT_TIE_BREAK,
    DEFAULT_TOL,
    MAX_EXACT_ENTRIES,
    MAX_SAMPLES,
    MAX_TABLE,
    POOL_SIZE,
    GLearnOptions,
)
from altmarl.glearn.rewards import RewardModel
from altmarl.glearn.solvers import policy_from_operator
from altmarl.glearn.stochastic import randomized_operator
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme

if TYPE_CHECKING:
    from altmarl.generative.neural import NeuralGlobalPolicy

FloatArray = NDArray[np.float64]

#: confidence ``1 - delta`` of the ``hoeffding_eps`` reported by :func:`g_learn_stochastic`
HOEFFDING_DELTA = 0.05


@overload
def g_learn(game: TabularGame, pi_l: LocalPolicy | FloatArray, k: int | None = None,
            m: int | None = 30, seed: int = 0, *args: Any, **kwargs: Any) -> GlobalPolicy: ...


@overload
def g_learn(game: GenerativeGame, pi_l: Any, k: int | None = None, m: int | None = 30,
            seed: int = 0, *args: Any, **kwargs: Any) -> NeuralGlobalPolicy: ...


def g_learn(
    game: TabularGame | GenerativeGame,
    pi_l: LocalPolicy | FloatArray,
    k: int | None = None,
    m: int | None = DEFAULT_M,
    seed: int = 0,
    parameterization: str = DEFAULT_PARAMETERIZATION,
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
    solver: str = DEFAULT_SOLVER,
    crn: str | None = None,
    tie_break: str = DEFAULT_TIE_BREAK,
    pool_size: int = POOL_SIZE,
    progress: bool = False,
    max_samples: int = MAX_SAMPLES,
    max_table: int = MAX_TABLE,
    max_exact_entries: int = MAX_EXACT_ENTRIES,
    *,
    options: GLearnOptions | None = None,
    sampling: Scheme | None = None,
    exact_global: bool = False,
    threads: int | None = None,
) -> GlobalPolicy | NeuralGlobalPolicy:
    """G-LEARN (paper Algorithm 22, SPEC 4): the global agent's best response to ``pi_l``
    in the ``k``-agent surrogate, as a greedy :class:`~altmarl.policies.GlobalPolicy`.

    The keywords after ``seed`` are the fields of
    :class:`~altmarl.glearn.options.GLearnOptions` (documented there), a thin layer that
    builds it; alternatively pass ``options=GLearnOptions(...)`` and leave them at their
    defaults.

    Parameters
    ----------
    game, pi_l
        The game and the fixed shared local policy (a :class:`LocalPolicy` or its table).
    k
        Subsample size, ``1 <= k <= n`` (may be left out when ``sampling`` is given).
    m
        Samples per ``(s_g, h, a_g)``, drawn once from ``seed``; ``None`` = exact
        expectation (mean-field: the dense law up to ``max_exact_entries`` entries, the
        matrix-free :class:`~altmarl.glearn.draws.HistogramLaw` above; standard: small ``k``).
    seed
        Drives every draw (samples and tie-breaking).
    parameterization
        ``"mean-field"`` (``Q`` over histograms, default) or ``"standard"`` (``Q`` over
        ordered ``k``-tuples; the policy acts on the ordering-averaged ``Q``).
    tol, max_iter
        Stop when the residual ``||T_hat Q - Q||_inf`` is below ``tol`` (``"vi"``: when
        ``||Q_{t+1} - Q_t||_inf <= tol``); ``max_iter`` bounds the sweeps (``"vi"``) or
        policy-iteration rounds (``"pi"``); hitting it warns
        (:class:`~altmarl.glearn.solvers.ConvergenceWarning`).
    solver
        ``"pi"`` (inexact policy iteration with GMRES evaluation; default, fast) or
        ``"vi"`` (value iteration from ``Q = 0``, SPEC 4). Same operator, same fixed point.
    crn
        How sample draws are shared across entries (:mod:`altmarl.glearn.draws`):
        ``"pool"`` (mean-field default), ``"states"`` (standard default), ``"none"``.
    tie_break
        ``"seeded"`` (uniform among maximizers, seeded from ``seed``) or ``"lowest"``.
    pool_size, max_samples, max_table, max_exact_entries
        Pool streams for ``crn="pool"`` and the size limits (clear refusals above them).
    progress
        Show a progress bar (off by default).
    options
        All of the above but ``k`` and ``seed`` as one :class:`GLearnOptions`.
    exact_global
        ``True``: average over the next global state's exact law ``P_g(. | s_g, a_g)``
        instead of ``m`` sampled next global states (the next local histograms stay
        sampled). Lower variance, several times faster on large ``k``; different numbers
        from the default (SPEC 4's literal sampled operator).
    threads
        Threads of the Numba products and draws of large operators (identical numbers for
        any value; ``None``: :func:`altmarl.threads.default_threads` at each product, the
        CPU count, 1 in the worker processes of sweeps while every core has a unit).
    sampling
        The global agent's sampling scheme (SPEC 12, :mod:`altmarl.sampling`; default
        ``Uniform(k)``). ``Stratified(ks)`` on a typed game: the surrogate has ``k_c`` agents
        of type ``c``, the table ``prod_c C(k_c + |S_c| - 1, |S_c| - 1)`` histograms per
        global state (``info["histograms_per_type"]``, ``info["histograms"]``), and its local
        reward weighs each type by its population share ``n_c / n``. ``Weighted(w, k)``: the
        surrogate is still the uniform ``k``-agent one (a weighted sample's histogram is a
        biased view of the population that the surrogate does not model); the policy is
        tagged with the scheme, so :func:`altmarl.evaluate` executes it under it.

    Notes
    -----
    On a :class:`~altmarl.GenerativeGame` this is neural G-LEARN (SPEC 11, fitted
    Q-iteration on the ``k``-agent surrogate with ``m`` draws per target, default 10;
    :func:`altmarl.generative.neural.neural_g_learn` has every option) and returns a
    :class:`~altmarl.generative.neural.NeuralGlobalPolicy`; the tabular options other than
    ``m`` and ``progress`` are then ignored.

    Returns
    -------
    GlobalPolicy
        With ``q`` (``(|S_g|, |H_k|, |A_g|)``) and ``info``: ``iterations``, ``sweeps``,
        ``matvecs``, ``residual`` (true ``||T_hat Q - Q||_inf``), ``converged``,
        ``samples`` (SPEC 4's count ``|S_g| N |A_g| m``), ``draws`` (random variates
        actually drawn), table sizes, ``wall_seconds``, ``parameterization``, ``m``,
        ``seed``, ...
    """
    if isinstance(game, GenerativeGame):
        # neural G-LEARN (SPEC 11); imported here: it needs PyTorch, ``import altmarl`` not
        from altmarl.generative.neural import neural_g_learn

        if options is not None:
            m, progress = options.m, options.progress
        if sampling is not None:
            if sampling.kind != "uniform":
                raise ValueError("sampling: neural G-LEARN on a GenerativeGame samples "
                                 "uniformly; only am.sampling.Uniform(k) is accepted")
            k = sampling.k if k is None else k
        if k is None:
            raise ValueError("k: expected a subsample size")
        return neural_g_learn(game, pi_l, k, m=10 if m is None else m, seed=seed,
                              progress=progress)
    started = (time.perf_counter(), time.process_time())
    opts = GLearnOptions.from_keywords(
        options, m=m, parameterization=parameterization, tol=tol, max_iter=max_iter,
        solver=solver, crn=crn, tie_break=tie_break, pool_size=pool_size, progress=progress,
        max_samples=max_samples, max_table=max_table, max_exact_entries=max_exact_entries,
        exact_global=exact_global, threads=threads)
    op = empirical_operator(game, pi_l, k, seed, opts, sampling=sampling)
    return policy_from_operator(game, op, seed, opts, started=started)


def g_learn_stochastic(
    game: TabularGame,
    pi_l: LocalPolicy | FloatArray,
    k: int,
    reward_model: RewardModel,
    m: int | None = DEFAULT_M,
    m_reward: int | None = None,
    seed: int = 0,
    *,
    options: GLearnOptions | None = None,
    **keywords: Any,
) -> GlobalPolicy:
    """G-LEARN with stochastic rewards (Appendix F): the greedy policy of the fixed point
    of the randomized empirical operator
    :func:`~altmarl.glearn.stochastic.randomized_operator`.

    Arguments as in :func:`g_learn` (``keywords`` are further
    :class:`~altmarl.glearn.options.GLearnOptions` fields, or pass ``options``) plus
    ``reward_model`` and ``m_reward`` (reward draws averaged per entry; default ``m``). The
    result's ``info`` adds ``m_reward``, ``reward_model`` (description) and
    ``hoeffding_eps``: the accuracy that Lemma F.4 guarantees for the averaged rewards with
    probability 0.95 at this ``m_reward``.
    """
    started = (time.perf_counter(), time.process_time())
    opts = GLearnOptions.from_keywords(options, m=m, **keywords)
    op = randomized_operator(game, pi_l, k, reward_model, seed, opts, m_reward)
    mr = opts.m if m_reward is None else int(m_reward)
    entries = int(np.prod(op.shape))
    eps = reward_model.hoeffding_eps(mr, HOEFFDING_DELTA, entries)
    extra = {"m_reward": mr, "reward_model": reward_model.describe(), "hoeffding_eps": eps}
    return policy_from_operator(game, op, seed, opts, method="g-learn-stochastic",
                                extra_info=extra, started=started)


def mean_reward_q(game: TabularGame, pi_l: LocalPolicy | FloatArray, k: int,
                  reward_model: RewardModel, **kwargs: Any) -> FloatArray:
    """``Q`` of G-LEARN on the mean-reward game (the target of :func:`g_learn_stochastic`
    as ``m_reward`` grows); ``kwargs`` go to :func:`g_learn`."""
    pol = g_learn(reward_model.mean_game(game), pi_l, k, **kwargs)
    assert pol.q is not None
    return pol.q
