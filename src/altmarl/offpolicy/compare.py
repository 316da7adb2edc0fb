"""Off-policy against generative G-LEARN (paper Appendix E; SPEC 4 "Off-policy variant"):
how far the ``Q`` learned from logs is from the G-LEARN fixed point ``Q_hat`` (``m=None``,
the exact expectation), and how the two greedy policies' values compare (exact with
:class:`altmarl.exact.ExactSolver` when the chain is small, else Monte-Carlo with common
random numbers and the paired standard error of :func:`altmarl.update.paired_difference`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from altmarl._validate import check_choice
from altmarl.game import TabularGame
from altmarl.offpolicy.dataset import OfflineDataset
from altmarl.policies import GlobalPolicy, LocalPolicy

#: how :func:`compare_generative` computes the policies' values
VALUE_METHODS = ("auto", "exact", "mc")


def compare_generative(
    game: TabularGame,
    pi_l: LocalPolicy,
    policy: GlobalPolicy,
    dataset: OfflineDataset | None = None,
    reference: GlobalPolicy | None = None,
    value: str = "auto",
    rollouts: int = 500,
    horizon: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Distance of an off-policy ``Q`` to the generative G-LEARN fixed point (``m=None``,
    exact expectation; computed unless ``reference`` is given), and both policies' values.

    Returns ``q_err_sup`` (all entries), ``q_err_sup_visited`` and ``q_err_mean_data``
    (mean over the log's transitions of ``|Q - Q_hat|`` at the logged ``(s, a)``; needs
    ``dataset``), ``value`` and ``value_reference`` (exact with
    :class:`altmarl.exact.ExactSolver` when ``value="exact"`` or ``"auto"`` and the chain is
    small enough; else Monte-Carlo with common random numbers, ``value_stderr``), and
    ``value_gap`` = reference minus learned.
    """
    from altmarl import g_learn

    if policy.q is None:
        raise ValueError("policy: expected a policy with a Q table (from g_learn_offpolicy)")
    if reference is None:
        reference = g_learn(game, pi_l, policy.k, m=None, seed=seed, tol=1e-10)
    assert reference.q is not None
    diff = np.abs(policy.q - reference.q)
    out: dict[str, Any] = {"q_err_sup": float(diff.max())}
    if dataset is not None:
        cur, _ = dataset.state_index()
        flat = diff.reshape(-1, game.n_ag)
        vals = flat[cur, dataset.a_g]
        visited = np.zeros(flat.size, dtype=bool)
        visited[cur * game.n_ag + dataset.a_g] = True
        out["q_err_sup_visited"] = float(flat.reshape(-1)[visited].max())
        out["q_err_mean_data"] = float(vals.mean())
    check_choice("value", value, VALUE_METHODS)
    done = False
    if value in ("auto", "exact"):
        from altmarl.exact import ExactSolver

        try:
            ex = ExactSolver(game, policy.k)
        except ValueError:
            if value == "exact":
                raise
        else:
            out["value"] = ex.value(policy, pi_l)
            out["value_reference"] = ex.value(reference, pi_l)
            out["value_method"] = "exact"
            done = True
    if not done:
        from altmarl.evaluation import evaluate
        from altmarl.update import paired_difference

        H = horizon or int(math.ceil(math.log(1e-3) / math.log(max(game.gamma, 1e-3))))
        ev = evaluate(game, policy, pi_l, rollouts=rollouts, horizon=H, seed=seed)
        ev_ref = evaluate(game, reference, pi_l, rollouts=rollouts, horizon=H, seed=seed)
        out.update(value=ev.mean, value_reference=ev_ref.mean, value_stderr=ev.stderr,
                   value_method=f"monte-carlo (R={rollouts}, H={H}, common seed)")
        out["value_gap_stderr"] = paired_difference(ev_ref, ev)[1]
    out["value_gap"] = out["value_reference"] - out["value"]
    return out


__all__ = ["VALUE_METHODS", "compare_generative"]
