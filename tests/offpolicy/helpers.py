"""Shared settings of the off-policy tests."""

from __future__ import annotations

# n = k: the logged (s_g, h) process is exactly the k-agent surrogate, so eq. 38 converges
# to the fixed point of generative G-LEARN with the exact expectation (m=None).
ENV = {"n_sg": 2, "n_ag": 3, "n_sl": 3, "n_al": 2, "n": 3, "gamma": 0.8, "seed": 2}
