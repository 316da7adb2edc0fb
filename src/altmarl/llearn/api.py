"""The L-LEARN entry point (paper Algorithm 2, SPEC 5) and its solver registry.

:func:`l_learn` validates the game and the policies, builds the chosen solver's frozen
options object from its keywords (:func:`solver_options`; the keyword layer of SPEC 10),
runs the solver with a child seed, and estimates the value of the result with another.
Each solver is one :class:`Solver` entry of :data:`REGISTRY`:

``"induced-vi"`` (SPEC 5.1)
    :func:`altmarl.llearn.induced_vi.induced_vi` with :class:`InducedVIOptions`;
``"direct"`` (SPEC 5.3)
    :func:`altmarl.llearn.direct.direct_search` with :class:`DirectOptions`;
``"chained"`` (SPEC 5.2)
    :func:`altmarl.llearn.chained.chained_best_response` with :class:`ChainedOptions`
    (small instances only).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from altmarl._random import SeedLike, as_seed_sequence, int_seed
from altmarl._validate import check_choice, check_instance
from altmarl.evaluation import Evaluator, mc_evaluator
from altmarl.game import TabularGame
from altmarl.generative.game import GenerativeGame
from altmarl.llearn.chained import ChainedOptions, chained_best_response
from altmarl.llearn.direct import DirectOptions, direct_search
from altmarl.llearn.induced_vi import InducedVIOptions, induced_vi
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.simulate import check_joint

FloatArray = NDArray[np.float64]

#: the options object of any L-LEARN solver
SolverOptions = InducedVIOptions | DirectOptions | ChainedOptions
#: ``run(game, pi_g, pi_l, seed, options) -> (table, info, own value estimate or None)``
SolverRun = Callable[[TabularGame, GlobalPolicy, "LocalPolicy | None", np.random.SeedSequence,
                      Any], tuple[FloatArray, dict[str, Any], "float | None"]]

#: default Monte-Carlo evaluation of the returned policy: rollouts ...
DEFAULT_EVAL_ROLLOUTS: Final = 50
#: ... of this many steps
DEFAULT_EVAL_HORIZON: Final = 100


@dataclass(frozen=True)
class Solver:
    """One L-LEARN solver: its ``name``, the SPEC section it implements, its frozen options
    class and ``run`` (the adapter :func:`l_learn` calls)."""

    name: str
    spec: str
    options: type
    run: SolverRun

    def option_names(self) -> list[str]:
        """The keywords :func:`l_learn` accepts for this solver (its options' fields)."""
        return sorted(f.name for f in dataclasses.fields(self.options))


def _run_induced_vi(game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy | None,
                    seed: np.random.SeedSequence, options: InducedVIOptions
                    ) -> tuple[FloatArray, dict[str, Any], float | None]:
    table, info = induced_vi(game, pi_g, pi_l, seed, options)
    return table, info, None


def _run_direct(game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy | None,
                seed: np.random.SeedSequence, options: DirectOptions
                ) -> tuple[FloatArray, dict[str, Any], float | None]:
    table, info = direct_search(game, pi_g, pi_l, seed, options)
    return table, info, info["search_value"]


def _run_chained(game: TabularGame, pi_g: GlobalPolicy, pi_l: LocalPolicy | None,
                 seed: np.random.SeedSequence, options: ChainedOptions
                 ) -> tuple[FloatArray, dict[str, Any], float | None]:
    table, cinfo = chained_best_response(game, pi_g, int_seed(seed), options)
    info = dict(cinfo)
    own_value = info.pop("value", None)
    info["chained_value"] = own_value
    return table, info, own_value


#: the solvers :func:`l_learn` dispatches to, by name
REGISTRY: Final[dict[str, Solver]] = {
    "induced-vi": Solver("induced-vi", "5.1", InducedVIOptions, _run_induced_vi),
    "direct": Solver("direct", "5.3", DirectOptions, _run_direct),
    "chained": Solver("chained", "5.2", ChainedOptions, _run_chained),
}
#: the solver names
SOLVERS: Final = tuple(REGISTRY)


def solver_options(solver: str, options: SolverOptions | None = None,
                   **keywords: Any) -> SolverOptions:
    """The frozen options object of ``solver``: ``options`` (default: the solver's
    defaults) with ``keywords`` replacing fields. An unknown keyword raises a
    ``ValueError`` naming it and listing the solver's options; a bad value one naming the
    field."""
    spec = REGISTRY[check_choice("solver", solver, SOLVERS)]
    allowed = spec.option_names()
    bad = sorted(set(keywords) - set(allowed))
    if bad:
        raise ValueError(f"options {bad}: not accepted by the {solver!r} solver; "
                         f"expected some of {allowed}")
    if options is None:
        return spec.options(**keywords)  # type: ignore[no-any-return]
    base: Any = check_instance("options", options, spec.options)
    return dataclasses.replace(base, **keywords) if keywords else base  # type: ignore[no-any-return]


def l_learn(
    game: TabularGame | GenerativeGame,
    pi_g: Any,
    solver: Any = None,
    seed: SeedLike = 0,
    *,
    pi_l: Any = None,
    evaluator: Evaluator | None = None,
    estimate_value: bool = True,
    eval_rollouts: int = DEFAULT_EVAL_ROLLOUTS,
    eval_horizon: int = DEFAULT_EVAL_HORIZON,
    options: SolverOptions | None = None,
    **keywords: Any,
) -> Any:
    """L-LEARN (paper Algorithm 2, SPEC 5): a shared local policy that (approximately) best
    responds to ``pi_g``.

    Parameters
    ----------
    game, pi_g
        The game and the fixed global policy.
    solver
        A name of :data:`SOLVERS`: ``"induced-vi"`` (SPEC 5.1, :func:`induced_vi`; the
        default, ``None``), ``"direct"`` (SPEC 5.3, :func:`direct_search`) or ``"chained"``
        (SPEC 5.2, :func:`chained_best_response`). On a :class:`~altmarl.GenerativeGame`
        this is neural L-LEARN (:func:`altmarl.generative.neural_local.l_learn_generative`:
        ``"trpo"`` by default, ``"trpo-representative"``; ``am.l_learn(game, pi_g, pi_l)``
        takes the third argument as ``pi_l``; ``keywords`` go to ``neural_l_learn``) and
        returns a :class:`~altmarl.generative.neural_local.NeuralLocalPolicy`.
    seed
        Drives every random draw of the solver.
    pi_l
        The current local policy: it defines the population induced-VI responds to and is
        a starting point of the direct search (default: uniform).
    evaluator
        ``evaluator(pi_g, pi_l') -> ValueEstimate`` for ``info["value"]``; default a
        Monte-Carlo evaluation (``eval_rollouts`` x ``eval_horizon``, seed derived from
        ``seed``). ``estimate_value=False`` skips it (``info["value"]`` is then the
        solver's own estimate when it has one, else ``None``).
    options, **keywords
        The solver's options object (:class:`InducedVIOptions`, :class:`DirectOptions`,
        :class:`ChainedOptions`) and/or its fields as keywords (:func:`solver_options`);
        unknown names raise ``ValueError``.

    Returns
    -------
    LocalPolicy
        ``info``: ``solver``, ``value``, ``value_stderr``, ``samples`` (generative-model
        calls spent learning: count-simulator steps of one rollout + k-sample histograms
        drawn; the value estimate is not included), ``wall_time`` (seconds, learning
        only) and solver diagnostics.
    """
    if isinstance(game, GenerativeGame):
        # neural L-LEARN (SPEC 11); imported here: it needs PyTorch, ``import altmarl`` not
        from altmarl.generative.neural_local import l_learn_generative

        if options is not None:
            raise ValueError("options: the solver options objects are for tabular games; "
                             "pass neural L-LEARN's keywords (neural_l_learn)")
        return l_learn_generative(game, pi_g, solver, seed, pi_l=pi_l, evaluator=evaluator,
                                  estimate_value=estimate_value, eval_rollouts=eval_rollouts,
                                  eval_horizon=eval_horizon, **keywords)
    solver = "induced-vi" if solver is None else solver
    spec = REGISTRY[check_choice("solver", solver, SOLVERS)]
    check_instance("pi_g", pi_g, GlobalPolicy, "an altmarl.GlobalPolicy")
    if pi_l is not None and not isinstance(pi_l, LocalPolicy):
        raise ValueError(f"pi_l: expected None or an altmarl.LocalPolicy, got {type(pi_l).__name__}")
    check_joint(game, pi_g, pi_l)
    opts = solver_options(solver, options, **keywords)
    s_solver, s_eval = as_seed_sequence(seed).spawn(2)
    t0 = time.perf_counter()
    table, info, own_value = spec.run(game, pi_g, pi_l, s_solver, opts)
    wall = time.perf_counter() - t0
    info["solver"] = solver
    info["wall_time"] = wall
    info.setdefault("samples", 0)
    pol = LocalPolicy(table, info, game)
    if estimate_value:
        ev = evaluator or mc_evaluator(game, eval_rollouts, eval_horizon, int_seed(s_eval))
        est = ev(pi_g, pol)
        pol.info["value"], pol.info["value_stderr"] = est.mean, est.stderr
    else:
        pol.info["value"] = own_value
        pol.info["value_stderr"] = None
    return pol
