"""Shared fixtures and hypothesis settings."""

from __future__ import annotations

import os

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def warehouse():
    import altmarl as am

    return am.envs.make("warehouse", n=1000)


@pytest.fixture
def tiny_game():
    import altmarl as am

    return am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.9, seed=3)
