"""Service metrics in the Prometheus text exposition format (version 0.0.4), without a
client library: counters of requests (by endpoint and status), decisions and errors (by
kind), a latency histogram per endpoint, and the shadow-mode agreement with the current
dispatcher. Thread-safe (one lock; a few hundred nanoseconds per observation)."""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict

#: latency histogram bucket bounds, seconds
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Counters and latency histograms of one service process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.time()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.decisions = 0
        self.shadow_compared = 0
        self.shadow_agreed = 0
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """One finished request."""
        with self.lock:
            self.requests[(endpoint, status)] += 1
            b = self.buckets.get(endpoint)
            if b is None:
                b = self.buckets[endpoint] = [0] * (len(BUCKETS) + 1)
            b[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[endpoint] += seconds

    def error(self, endpoint: str, kind: str) -> None:
        """A rejected request (``kind``: ``validation``, ``too_large``, ``internal``)."""
        with self.lock:
            self.errors[(endpoint, kind)] += 1

    def decided(self, count: int, agreed: int = 0, compared: int = 0) -> None:
        """``count`` decisions answered; in shadow mode, ``agreed`` of ``compared`` equal
        the current dispatcher's action."""
        with self.lock:
            self.decisions += count
            self.shadow_agreed += agreed
            self.shadow_compared += compared

    def render(self) -> str:
        """The exposition text."""
        out = [
            "# HELP altmarl_requests_total HTTP requests by endpoint and status code.",
            "# TYPE altmarl_requests_total counter",
        ]
        with self.lock:
            for (ep, st), v in sorted(self.requests.items()):
                out.append(f'altmarl_requests_total{{endpoint="{ep}",status="{st}"}} {v}')
            out += ["# HELP altmarl_errors_total Rejected requests by endpoint and kind.",
                    "# TYPE altmarl_errors_total counter"]
            for (ep, kind), v in sorted(self.errors.items()):
                out.append(f'altmarl_errors_total{{endpoint="{ep}",kind="{kind}"}} {v}')
            out += ["# HELP altmarl_decisions_total Global actions answered.",
                    "# TYPE altmarl_decisions_total counter",
                    f"altmarl_decisions_total {self.decisions}",
                    "# HELP altmarl_shadow_compared_total Decisions that came with the "
                    "current dispatcher's action.",
                    "# TYPE altmarl_shadow_compared_total counter",
                    f"altmarl_shadow_compared_total {self.shadow_compared}",
                    "# HELP altmarl_shadow_agreed_total Of those, decisions equal to it.",
                    "# TYPE altmarl_shadow_agreed_total counter",
                    f"altmarl_shadow_agreed_total {self.shadow_agreed}",
                    "# HELP altmarl_request_latency_seconds Time to answer a request.",
                    "# TYPE altmarl_request_latency_seconds histogram"]
            for ep in sorted(self.buckets):
                cum = 0
                for le, c in zip((*BUCKETS, float("inf")), self.buckets[ep], strict=True):
                    cum += c
                    le_s = "+Inf" if le == float("inf") else repr(le)
                    out.append(f'altmarl_request_latency_seconds_bucket{{endpoint="{ep}",'
                               f'le="{le_s}"}} {cum}')
                out.append(f'altmarl_request_latency_seconds_sum{{endpoint="{ep}"}} '
                           f"{self.sums[ep]:.9g}")
                out.append(f'altmarl_request_latency_seconds_count{{endpoint="{ep}"}} {cum}')
            out += ["# HELP altmarl_uptime_seconds Seconds since the service started.",
                    "# TYPE altmarl_uptime_seconds gauge",
                    f"altmarl_uptime_seconds {time.time() - self.started:.3f}"]
        return "\n".join(out) + "\n"


__all__ = ["BUCKETS", "CONTENT_TYPE", "Metrics"]
