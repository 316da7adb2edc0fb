"""The dispatcher service (FastAPI + uvicorn): ``altmarl serve`` (docs/deployment.md).

Endpoints of :func:`create_app`:

* ``GET /health`` -- 200 with the policy's fingerprint, ``k``, scheme, game and mode;
* ``POST /act`` -- ``{"s_g": int, "sample": [local states of the k sampled agents]}`` (a
  state is an integer, a number, or a list of numbers for a game with vector states; and
  optionally ``id``, ``episode``, ``t``, ``current_a_g``: the current dispatcher's action in
  shadow mode) -> ``{"a_g": int, "id": str, "policy": fingerprint, "shadow": bool}``;
* ``POST /act_batch`` -- ``{"requests": [...]}`` (at most ``MAX_BATCH``) ->
  ``{"actions": [...], "ids": [...], "policy": fingerprint, "shadow": bool}``;
* ``GET /metrics`` -- Prometheus text (:mod:`altmarl.service.metrics`).

Every request is validated before it reaches the policy: wrong types and unknown fields
(pydantic, strict: ``"3"``, ``3.0`` and ``true`` are not states), out-of-range states and
samples of the wrong size for the policy's ``k`` or scheme get a 422 whose ``detail``
names the field (``["body", "requests", 3, "sample", 1]``), never a 500; a body above
``MAX_BODY`` bytes gets a 413. Each answered decision is appended to the decision log
(:mod:`altmarl.service.decisions`). Shutdown (SIGINT / SIGTERM) is graceful: uvicorn stops
accepting connections, finishes the requests in flight, then the log is flushed and closed.
"""

import contextlib
import itertools
import math
import os
import signal
import socket
import threading
import time
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from altmarl.service.decisions import DecisionLog
from altmarl.service.metrics import CONTENT_TYPE, Metrics
from altmarl.service.policy import MAX_BATCH, MAX_STATE_DIM, RequestError, ServedPolicy

#: largest request body, bytes
MAX_BODY = 16 * 2**20
#: largest sample accepted by the parser (the policy's k is checked next)
MAX_SAMPLE = 100_000

Number = StrictInt | StrictFloat


#: a vector state (continuous vector local or global states)
Vector = Annotated[list[Number], Field(max_length=MAX_STATE_DIM)]


class ActRequest(BaseModel):
    """One decision request (a state is a number, or a list of numbers for vector states;
    :class:`~altmarl.service.policy.ServedPolicy` checks them against the policy's game)."""

    model_config = ConfigDict(extra="forbid")
    s_g: Number | Vector
    sample: list[Number | Vector] = Field(max_length=MAX_SAMPLE)
    id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    episode: StrictInt | None = Field(None, ge=0, le=2**62)
    t: StrictInt | None = Field(None, ge=0, le=2**62)
    current_a_g: StrictInt | None = Field(None, ge=0)


class BatchRequest(BaseModel):
    """Several decision requests answered at once."""

    model_config = ConfigDict(extra="forbid")
    requests: list[ActRequest] = Field(min_length=1, max_length=MAX_BATCH)


class _Timing:
    """Pure ASGI middleware: latency and status per endpoint, and the body-size limit."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path = scope.get("path", "")
        endpoint = path if path in ("/act", "/act_batch", "/health", "/metrics") else "other"
        status = [500]

        async def send_wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            self.metrics.error(endpoint, "too_large")
            resp = JSONResponse({"detail": [{"loc": ["body"], "msg": f"request body above "
                                             f"{MAX_BODY} bytes", "type": "too_large"}]},
                                status_code=413)
            await resp(scope, receive, send_wrapped)
        else:
            await self.app(scope, receive, send_wrapped)
        self.metrics.observe(endpoint, status[0], time.perf_counter() - t0)


def create_app(served: ServedPolicy, decision_log: DecisionLog | None = None,
               shadow: bool = False) -> FastAPI:
    """The service answering with ``served`` (module docstring); ``decision_log`` receives
    every decision; ``shadow`` marks the answers as not acted upon (logged only)."""
    metrics = Metrics()
    prefix = os.urandom(4).hex()
    counter = itertools.count()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        if decision_log is not None:
            decision_log.close()

    app = FastAPI(title="altmarl dispatcher", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json")
    app.state.metrics = metrics
    app.state.served = served

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.error(request.url.path, "validation")
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")}
                  for e in exc.errors()[:20]]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(RequestError)
    async def out_of_range(request: Request, exc: RequestError) -> JSONResponse:
        metrics.error(request.url.path, "validation")
        return JSONResponse({"detail": exc.detail()}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        metrics.error(request.url.path, "internal")
        return JSONResponse({"detail": [{"loc": [], "msg": f"internal error: "
                                         f"{type(exc).__name__}", "type": "internal"}]},
                            status_code=500)

    def answer(reqs: list[ActRequest], locs: list[tuple[Any, ...]]) -> tuple[list[int],
                                                                            list[str]]:
        for r, loc in zip(reqs, locs, strict=True):
            if r.current_a_g is not None and r.current_a_g >= served.n_ag:
                raise RequestError((*loc, "current_a_g"), f"current_a_g = {r.current_a_g}: "
                                   f"expected a global action in 0..{served.n_ag - 1}")
        dec = served.decide([r.s_g for r in reqs], [r.sample for r in reqs], locs)
        ids = [r.id if r.id is not None else f"{prefix}-{next(counter)}" for r in reqs]
        acts = dec.a_g.tolist()
        current = [r.current_a_g for r in reqs]
        if decision_log is not None:
            decision_log.write(ids, [r.episode for r in reqs], [r.t for r in reqs], dec.s_g,
                               dec.obs, dec.a_g, current)
        compared = [(a, c) for a, c in zip(acts, current, strict=True) if c is not None]
        metrics.decided(len(acts), sum(a == c for a, c in compared), len(compared))
        return acts, ids

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "mode": "shadow" if shadow else "serve", **served.describe(),
                "decisions": metrics.decisions,
                "decision_log": None if decision_log is None else str(decision_log.csv_path)}

    @app.post("/act", response_class=JSONResponse)
    async def act(req: ActRequest) -> JSONResponse:
        acts, ids = answer([req], [()])
        return JSONResponse({"a_g": acts[0], "id": ids[0], "policy": served.fingerprint,
                             "shadow": shadow})

    @app.post("/act_batch", response_class=JSONResponse)
    async def act_batch(req: BatchRequest) -> JSONResponse:
        acts, ids = answer(req.requests, [("requests", i) for i in range(len(req.requests))])
        return JSONResponse({"actions": acts, "ids": ids, "policy": served.fingerprint,
                             "shadow": shadow})

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    return _Timing(app, metrics)  # type: ignore[return-value]


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening TCP socket on ``(host, port)`` (``port = 0``: a free port; read it with
    ``sock.getsockname()[1]``); ``ValueError`` when the address is taken or invalid."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto = IPPROTO_TCP: asyncio then sets TCP_NODELAY on every connection (with proto 0
    # it does not, and small responses wait ~40 ms for delayed ACKs)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})"
                         ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, *, log_level: str = "warning", graceful_seconds: float = 10.0
                ) -> Any:
    """A ``uvicorn.Server`` for ``app`` (no access log; graceful shutdown waits at most
    ``graceful_seconds`` for requests in flight)."""
    import uvicorn

    class Server(uvicorn.Server):  # type: ignore[misc]
        """uvicorn's server, but a graceful stop on SIGINT / SIGTERM ends with exit code 0
        (uvicorn re-raises the signal afterwards, which kills the process by it)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (signal.SIGINT, signal.SIGTERM)
            old = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
            try:
                yield
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=max(1, math.ceil(graceful_seconds)))
    return Server(config)


class RunningServer:
    """A real uvicorn server in a background thread of this process (tests, benchmarks,
    embedding): ``with RunningServer(app) as srv: httpx.get(srv.url + "/health")``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 start_timeout: float = 20.0) -> None:
        self.sock = bind(host, port)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self.server = make_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the service did not start within {start_timeout} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful shutdown; waits for the server thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


__all__ = ["MAX_BODY", "ActRequest", "BatchRequest", "RunningServer", "bind", "create_app",
           "make_server"]
