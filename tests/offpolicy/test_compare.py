"""compare_generative: off-policy Q against the generative G-LEARN fixed point."""

from __future__ import annotations

import pytest

import altmarl as am
from altmarl import offpolicy as op


@pytest.mark.parametrize("mode, epochs", [("sequential", 3), ("synchronous", None)])
def test_offpolicy_q_approaches_generative_fixed_point(game, reference, mode, epochs) -> None:
    """n = k: more data, smaller ||Q - Q_hat||; the policy's exact value approaches that of
    generative G-LEARN (m=None)."""
    pi_l = am.LocalPolicy.uniform(game)
    errs, gaps = [], []
    for episodes in (10, 60, 360):
        ds = op.record_logs(game, 3, episodes=episodes, horizon=50, seed=1)
        pol = op.g_learn_offpolicy(game, ds, 3, epochs=epochs, mode=mode)
        cmp = op.compare_generative(game, pi_l, pol, ds, reference=reference)
        assert cmp["value_method"] == "exact"
        errs.append(cmp["q_err_sup"])
        gaps.append(cmp["value_gap"])
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05 < errs[0]
    assert gaps[2] <= gaps[0] and gaps[2] < 1e-9
    assert min(gaps) >= -1e-9  # nothing beats the best response
