"""G-LEARN's options (SPEC 4, SPEC 10): one frozen, validated :class:`GLearnOptions`.

Every G-LEARN entry point (:func:`altmarl.glearn.api.g_learn`,
:func:`~altmarl.glearn.operator.empirical_operator`, :func:`~altmarl.glearn.solvers.solve`,
:func:`~altmarl.glearn.solvers.policy_from_operator`, the stochastic variant of Appendix F)
takes one options object instead of the same keywords on each function. ``am.g_learn``'s
keywords (SPEC 10: ``am.g_learn(game, pi_l, k=5, m=30, seed=0, ...)``) are a thin layer that
builds it (:meth:`GLearnOptions.from_keywords`).

The defaults are the named ``Final`` constants below; a bad value raises a ``ValueError``
naming the field (``m = 0: expected an integer >= 1``), through :mod:`altmarl._validate`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from altmarl._validate import check_bool, check_choice, check_int, check_positive
from altmarl.threads import resolve_threads

#: ``Q`` over histograms ``H_k`` (default) or over ordered ``k``-tuples (SPEC 4)
PARAMETERIZATIONS: Final = ("mean-field", "standard")
#: ``"pi"``: inexact policy iteration; ``"vi"``: SPEC 4's value iteration
SOLVERS: Final = ("pi", "vi")
#: how sample draws are shared across entries (:mod:`altmarl.glearn.draws`)
CRN_MODES: Final = ("pool", "states", "none")
#: greedy ties: uniform among the maximizers (seeded) or the lowest index
TIE_BREAKS: Final = ("seeded", "lowest")

#: samples per ``(s_g, h, a_g)`` (SPEC 10's ``m=30``)
DEFAULT_M: Final = 30
DEFAULT_PARAMETERIZATION: Final = "mean-field"
#: stop when the residual ``||T_hat Q - Q||_inf`` is below this
DEFAULT_TOL: Final = 1e-6
DEFAULT_SOLVER: Final = "pi"
DEFAULT_TIE_BREAK: Final = "seeded"
#: policy-iteration rounds when ``max_iter`` is not given (``"vi"`` derives its own bound)
DEFAULT_PI_ROUNDS: Final = 200
#: default cap on ``|S_g| * N * |A_g| * m`` stored samples (about 6 bytes each: ~3 GB)
MAX_SAMPLES: Final = 5 * 10**8
#: default cap on the ``Q`` table size ``|S_g| * N * |A_g|``
MAX_TABLE: Final = 5 * 10**7
#: default cap on ``|S_g| * |H_k|^2`` for the exact next-histogram matrices (``m=None``)
MAX_EXACT_ENTRIES: Final = 2 * 10**7
#: default pool size per ``(s_g, x, count)`` for ``crn="pool"``
POOL_SIZE: Final = 8192


@dataclass(frozen=True)
class GLearnOptions:
    """The options of G-LEARN (SPEC 4), validated on construction.

    Attributes
    ----------
    m
        Samples per ``(s_g, h, a_g)``, drawn once from the seed; ``None`` = exact
        expectation (mean-field: the dense law up to ``max_exact_entries`` entries, the
        matrix-free :class:`~altmarl.glearn.draws.HistogramLaw` above; standard: small ``k``).
    parameterization
        ``"mean-field"`` (``Q`` over histograms, default) or ``"standard"`` (``Q`` over
        ordered ``k``-tuples; the policy acts on the ordering-averaged ``Q``).
    tol, max_iter
        Stop when the residual ``||T_hat Q - Q||_inf`` is below ``tol`` (``"vi"``: when
        ``||Q_{t+1} - Q_t||_inf <= tol``); ``max_iter`` bounds the sweeps (``"vi"``) or
        policy-iteration rounds (``"pi"``); ``None`` = automatic.
    solver
        ``"pi"`` (inexact policy iteration, default) or ``"vi"`` (value iteration).
    crn
        How draws are shared across entries: ``"pool"``, ``"states"``, ``"none"``, or
        ``None`` = ``"pool"`` for mean-field, ``"states"`` for standard (:attr:`crn_mode`).
    tie_break
        ``"seeded"`` (uniform among maximizers, seeded from the seed) or ``"lowest"``.
    pool_size
        Streams per ``(s_g, x)`` for ``crn="pool"`` (at least ``m`` are used).
    progress
        Show a progress bar (:class:`altmarl.progress.Progress`).
    exact_global
        ``True``: the next global state enters by its exact law ``P_g(. | s_g, a_g)``
        instead of ``m`` sampled next global states (the ``m`` next local histograms stay
        sampled; :class:`altmarl.glearn.operator.ExactGlobalModel`). Lower variance, no
        global draws, about ``|A_g|`` times fewer gathers per backup; different numbers from
        the default ``False`` (SPEC 4's literal operator). Sampled operators only (``m`` not
        ``None``).
    threads
        Threads of a sampled operator's Numba products and draws (rows and sample streams
        spread over threads; every number identical for any value). ``None`` (default):
        :func:`altmarl.threads.default_threads` at each product and draw: the CPU count,
        or ``$ALTMARL_THREADS``; in the worker processes of sweeps (``altmarl reproduce``,
        the k-sweep) 1 while every core has a unit, the idle cores once fewer units are
        left (:attr:`thread_count` is the value now). Operators with fewer than
        :data:`altmarl.glearn.kernels.PARALLEL_MIN_SAMPLES` stored samples per action
        (``|S_g| N m``; the warehouse up to ``k = 17`` at ``m = 30``) run on one thread by
        default, where a second one costs more than it gains.
    max_samples, max_table, max_exact_entries
        Size limits: stored samples, ``Q`` entries, exact next-histogram entries.
    """

    m: int | None = DEFAULT_M
    parameterization: str = DEFAULT_PARAMETERIZATION
    tol: float = DEFAULT_TOL
    max_iter: int | None = None
    solver: str = DEFAULT_SOLVER
    crn: str | None = None
    tie_break: str = DEFAULT_TIE_BREAK
    pool_size: int = POOL_SIZE
    progress: bool = False
    max_samples: int = MAX_SAMPLES
    max_table: int = MAX_TABLE
    max_exact_entries: int = MAX_EXACT_ENTRIES
    exact_global: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)  # normalize (frozen dataclass)

        if self.m is not None:
            put("m", check_int("m", self.m, 1))
        param = check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        check_choice("crn", self.crn_mode, CRN_MODES)
        if param == "standard" and self.crn_mode == "pool":
            raise ValueError("crn = 'pool': only for parameterization='mean-field' "
                             "(standard tuples use 'states' or 'none')")
        put("tol", check_positive("tol", self.tol))
        if self.max_iter is not None:
            put("max_iter", check_int("max_iter", self.max_iter, 1))
        check_choice("solver", self.solver, SOLVERS)
        check_choice("tie_break", self.tie_break, TIE_BREAKS)
        put("pool_size", check_int("pool_size", self.pool_size, 1))
        put("progress", check_bool("progress", self.progress))
        put("exact_global", check_bool("exact_global", self.exact_global))
        if self.threads is not None:
            put("threads", check_int("threads", self.threads, 1))
        if self.exact_global and self.m is None:
            raise ValueError("exact_global = True: only for a sampled operator (m = None "
                             "already takes the exact expectation over everything)")
        for name in ("max_samples", "max_table", "max_exact_entries"):
            put(name, check_int(name, getattr(self, name), 1))

    @property
    def thread_count(self) -> int:
        """``threads`` with ``None`` resolved by :func:`altmarl.threads.default_threads`."""
        return resolve_threads(self.threads)

    @property
    def crn_mode(self) -> str:
        """``crn`` with ``None`` resolved: ``"pool"`` (mean-field) or ``"states"`` (standard)."""
        if self.crn is None:
            return "pool" if self.parameterization == "mean-field" else "states"
        return self.crn

    def replace(self, **changes: Any) -> GLearnOptions:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_keywords(cls, options: GLearnOptions | None = None,
                      **keywords: Any) -> GLearnOptions:
        """The options of a keyword call (SPEC 10's thin layer): ``GLearnOptions(**keywords)``,
        or ``options`` itself when given, in which case every keyword must keep its default
        (a ``ValueError`` names those that do not; unknown keywords raise ``TypeError``)."""
        if options is None:
            return cls(**keywords)
        if not isinstance(options, GLearnOptions):
            raise ValueError(f"options: expected None or an altmarl.GLearnOptions, got "
                             f"{type(options).__name__}")
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = sorted(set(keywords) - set(defaults))
        if unknown:
            raise TypeError(f"unexpected G-LEARN keyword(s) {unknown}; expected some of "
                            f"{sorted(defaults)}")
        given = sorted(name for name, val in keywords.items()
                       if not (val is defaults[name] or val == defaults[name]))
        if given:
            raise ValueError(f"options: pass G-LEARN options either as options=GLearnOptions(...) "
                             f"or as keywords, not both (also got {given})")
        return options
