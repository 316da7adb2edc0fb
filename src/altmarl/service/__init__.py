"""Serving a learned dispatcher (``altmarl serve``; docs/deployment.md): the optional
``serve`` extra (FastAPI + uvicorn).

* :mod:`~altmarl.service.policy` -- :class:`ServedPolicy`: request validation and batched
  decisions of a tabular or neural global policy, :func:`policy_fingerprint`;
* :mod:`~altmarl.service.decisions` -- the decision log and :func:`join_outcomes`, which
  turns it and the observed rewards into an off-policy log (:mod:`altmarl.offpolicy`);
* :mod:`~altmarl.service.metrics` -- Prometheus text metrics;
* :mod:`~altmarl.service.app` -- the FastAPI app (:func:`create_app`), the socket and
  uvicorn server helpers, :class:`RunningServer` (a server in a background thread).

Only :mod:`~altmarl.service.app` imports FastAPI; the rest works without the extra.
"""

from altmarl.service.decisions import DecisionLog, join_outcomes
from altmarl.service.metrics import Metrics
from altmarl.service.policy import RequestError, ServedPolicy, policy_fingerprint

__all__ = ["DecisionLog", "Metrics", "RequestError", "ServedPolicy", "join_outcomes",
           "policy_fingerprint"]
