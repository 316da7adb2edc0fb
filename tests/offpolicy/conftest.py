"""Fixtures of the off-policy tests: a small game with n = k, a short log of it and the
generative G-LEARN fixed point."""

from __future__ import annotations

import pytest

import altmarl as am
from altmarl.offpolicy import OfflineDataset, record_logs

from .helpers import ENV


@pytest.fixture(scope="module")
def game() -> am.TabularGame:
    return am.envs.make("random", **ENV)


@pytest.fixture(scope="module")
def small_log(game) -> OfflineDataset:
    return record_logs(game, 3, episodes=6, horizon=10, seed=0)


@pytest.fixture(scope="module")
def reference(game) -> am.GlobalPolicy:
    return am.g_learn(game, am.LocalPolicy.uniform(game), 3, m=None, tol=1e-12)
