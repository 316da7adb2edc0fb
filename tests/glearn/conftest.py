"""Fixtures of the G-LEARN tests."""

from __future__ import annotations

import pytest

import altmarl as am


@pytest.fixture
def game3() -> am.TabularGame:
    return am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=6, gamma=0.8, seed=2)

