"""``ExactSolver``: one object for the exact solver of small games (SPEC 7, SPEC 10
``am.exact.ExactSolver(game, k)``).

A thin facade over the parts of :mod:`altmarl.exact`: it *is* the game's
:class:`~altmarl.exact.chain.CountChain` (state space, initial law, kernels) and adds the
restricted subsample size ``k``, the enumeration limits and one method per part:

* :meth:`ExactSolver.value` / :meth:`ExactSolver.values` / :meth:`ExactSolver.occupancy`
  — :mod:`altmarl.exact.values`;
* :meth:`ExactSolver.full_info_best_response`, :meth:`ExactSolver.restricted_best_response`,
  :meth:`ExactSolver.local_best_response` — :mod:`altmarl.exact.best_response`;
* :meth:`ExactSolver.nash_gap` — :func:`altmarl.exact.nash_gap.exact_nash_gap`.
"""

from __future__ import annotations

from altmarl.exact import best_response as responses
from altmarl.exact import nash_gap as gaps
from altmarl.exact import values as chain_values
from altmarl.exact.best_response import (
    MAX_LOCAL_POLICIES,
    MAX_RESTRICTED_POLICIES,
    BestResponse,
)
from altmarl.exact.chain import DENSE_LIMIT, MAX_STATES, CountChain, FloatArray
from altmarl.exact.nash_gap import NashGapResult
from altmarl.game import TabularGame
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.sampling import Scheme, resolve


class ExactSolver(CountChain):
    """Exact Markov chain of the ``n``-agent system on ``(s_g, N)`` (SPEC 7).

    Parameters
    ----------
    game
        A tabular game whose ``init`` has an exact ``log_pmf``.
    k
        Subsample size of the restricted global policy class (``1 <= k <= n``).
        :meth:`value` accepts global policies of any ``k``.
    sampling
        The sampling scheme of the restricted class (SPEC 12, :mod:`altmarl.sampling`;
        default ``Uniform(k)``; ``k`` may then be left out). The exact chain uses the
        scheme's law of ``h`` given ``N`` in place of the hypergeometric one; for a typed
        game its count vectors keep the per-type sums.
    max_states
        Refuse games whose chain has more than this many states ``|S_g| |H_n|``.
    max_restricted_policies, max_local_policies
        Limits for the exhaustive enumerations in the best responses.
    dense_limit
        Chains up to this size are solved by dense LU, larger ones by GMRES.
    """

    def __init__(
        self,
        game: TabularGame,
        k: int | None = None,
        *,
        sampling: Scheme | None = None,
        max_states: int = MAX_STATES,
        max_restricted_policies: int = MAX_RESTRICTED_POLICIES,
        max_local_policies: int = MAX_LOCAL_POLICIES,
        dense_limit: int = DENSE_LIMIT,
    ) -> None:
        if not isinstance(game, TabularGame):
            raise ValueError(f"game: expected a TabularGame, got {type(game).__name__}")
        #: the restricted class's scheme, bound to the game
        self.sampling: Scheme = resolve(sampling, k, game)
        self.k = self.sampling.k
        self.max_restricted_policies = int(max_restricted_policies)
        self.max_local_policies = int(max_local_policies)
        super().__init__(game, max_states=max_states, dense_limit=dense_limit)

    # --- values -----------------------------------------------------------------
    def values(self, pi_g: GlobalPolicy, pi_l: LocalPolicy,
               sampling: Scheme | None = None) -> FloatArray:
        """``V(s_g, N)`` of the joint policy for every chain state, ``(|S_g|, |H_n|)``;
        ``sampling`` executes ``pi_g`` under another scheme (default its own, as
        :func:`altmarl.evaluate`)."""
        return chain_values.policy_values(self, pi_g, pi_l, sampling)

    def value(self, pi_g: GlobalPolicy, pi_l: LocalPolicy,
              sampling: Scheme | None = None) -> float:
        """``V(pi_g, pi_l)`` from the initial distribution (SPEC eq. 2), exactly (``pi_g``'s
        samples drawn by ``sampling``, default its own scheme)."""
        return chain_values.policy_value(self, pi_g, pi_l, sampling)

    def occupancy(self, pi_g: GlobalPolicy, pi_l: LocalPolicy,
                  sampling: Scheme | None = None) -> FloatArray:
        """Discounted state occupancy ``d(s) = sum_t gamma^t P(s_t = s)`` from the initial
        distribution (sums to ``1 / (1 - gamma)``), ``(|S_g|, |H_n|)``."""
        return chain_values.occupancy(self, pi_g, pi_l, sampling)

    # --- best responses ---------------------------------------------------------
    def full_info_best_response(self, pi_l: LocalPolicy, max_iter: int = 200) -> BestResponse:
        """Optimal global policy with full information (sees ``N``), for fixed ``pi_l``
        (:func:`altmarl.exact.best_response.full_info_best_response`)."""
        return responses.full_info_best_response(self, pi_l, max_iter)

    def restricted_best_response(
        self,
        pi_l: LocalPolicy,
        starts: list[GlobalPolicy] | None = None,
        method: str = "auto",
        max_evals: int = 300,
        k: int | None = None,
        sampling: Scheme | None = None,
    ) -> BestResponse:
        """Best global policy among those that see a ``k``-sample histogram
        (:func:`altmarl.exact.best_response.restricted_best_response`) of the solver's
        scheme; ``k`` (``Uniform(k)``) or ``sampling`` overrides it,
        ``max_restricted_policies`` bounds the enumeration."""
        scheme = self.sampling if k is None and sampling is None else resolve(sampling, k,
                                                                              self.game)
        return responses.restricted_best_response(
            self, pi_l, scheme if scheme.kind != "uniform" else scheme.k, starts=starts,
            method=method,
            max_evals=max_evals, max_policies=self.max_restricted_policies)

    def local_best_response(
        self,
        pi_g: GlobalPolicy,
        method: str = "auto",
        refine: bool = True,
        max_refine_evals: int = 400,
        max_search_evals: int = 2000,
        start: LocalPolicy | None = None,
    ) -> BestResponse:
        """Best shared local policy for fixed ``pi_g`` (SPEC 5's objective;
        :func:`altmarl.exact.best_response.local_best_response`), ``max_local_policies``
        bounds the enumeration."""
        return responses.local_best_response(
            self, pi_g, method=method, refine=refine, max_refine_evals=max_refine_evals,
            max_search_evals=max_search_evals, start=start,
            max_policies=self.max_local_policies)

    # --- Nash gap -----------------------------------------------------------------
    def nash_gap(
        self,
        pi_g: GlobalPolicy,
        pi_l: LocalPolicy,
        restricted: str = "auto",
        local: str = "auto",
        refine_local: bool = True,
        max_search_evals: int = 300,
    ) -> NashGapResult:
        """Nash gap of ``(pi_g, pi_l)`` (Definition D.1, SPEC 7) with both global
        comparators, the restricted one at the solver's ``k``
        (:func:`altmarl.exact.nash_gap.exact_nash_gap`); with a non-uniform scheme ``pi_g``
        is executed under it when it can act on its samples."""
        scheme = self.sampling.k if self.sampling.kind == "uniform" else self.sampling
        return gaps.exact_nash_gap(
            self, pi_g, pi_l, scheme, restricted=restricted, local=local,
            refine_local=refine_local, max_search_evals=max_search_evals,
            max_restricted_policies=self.max_restricted_policies,
            max_local_policies=self.max_local_policies)

    def __repr__(self) -> str:
        scheme = "" if self.sampling.kind == "uniform" else f"sampling={self.sampling.describe()}, "
        return (f"ExactSolver(game={self.game.name!r}, n={self.n}, k={self.k}, {scheme}"
                f"states={self.n_states})")


__all__ = ["ExactSolver"]
