"""``altmarl serve``: a learned dispatcher as an HTTP service (FastAPI + uvicorn; the
``serve`` extra; :mod:`altmarl.service`, docs/deployment.md).

    altmarl serve RUN_DIR_OR_POLICY [--host 127.0.0.1] [--port 8000] [--log decisions.csv]
                  [--env ENV_OR_CONFIG] [--k K] [--shadow] [--graceful-timeout 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from altmarl.cli.common import console, fail


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``altmarl`` app."""

    @app.command("serve")
    def serve_cmd(
        source: str = typer.Argument(..., help="run directory, unit directory or global policy "
                                     "file (.npz tabular, .pt neural; needs --env), or "
                                     "sample-mode with --env"),
        host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
        port: int = typer.Option(8000, "--port", help="TCP port (0: any free port)"),
        log: Path | None = typer.Option(None, "--log", help="decision log: appends one row per "
                                        "decision to LOG.csv, sidecar LOG.json"),
        env: str | None = typer.Option(None, "--env", help="game of a bare policy file "
                                       "(environment name, packaged configuration or TOML)"),
        k: int | None = typer.Option(None, "--k", help="unit of a run directory (default: best)"),
        shadow: bool = typer.Option(False, "--shadow", help="shadow mode: answers are marked "
                                    "shadow and logged; the fleet keeps its current dispatcher"),
        graceful: float = typer.Option(10.0, "--graceful-timeout", help="seconds to finish "
                                       "requests in flight on shutdown"),
    ) -> None:
        """Serve a global policy over HTTP: GET /health, POST /act, POST /act_batch,
        GET /metrics (Prometheus)."""
        try:
            from altmarl.service import app as service_app
        except ImportError as exc:
            fail(f"altmarl serve needs FastAPI and uvicorn ({exc.name} is missing): "
                 "pip install 'altmarl[serve]'")
        from altmarl.experiments.assess import env_game, load_source
        from altmarl.service import DecisionLog, ServedPolicy

        try:
            if not 0 <= port <= 65535:
                raise ValueError(f"--port = {port}: expected 0..65535")
            if not graceful > 0:
                raise ValueError(f"--graceful-timeout = {graceful}: expected seconds > 0")
            game = env_game(env) if env is not None else None
            pair, g = load_source(source, game, k=k)
            served = ServedPolicy(pair.pi_g, g, source)
            dlog = None if log is None else DecisionLog(log, served,
                                                        "shadow" if shadow else "serve")
            sock = service_app.bind(host, port)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        server = service_app.make_server(service_app.create_app(served, dlog, shadow),
                                         graceful_seconds=graceful)
        bound = sock.getsockname()[1]
        con = console()
        con.print(f"serving {pair.description} (policy {served.fingerprint}, k = {served.k}, "
                  f"{served.scheme}, game {served.game_name} {served.game_fingerprint}"
                  f"{', shadow mode' if shadow else ''}) on http://{host}:{bound}", highlight=False,
                  soft_wrap=True)
        if dlog is not None:
            con.print(f"decision log: {dlog.csv_path} (+ {dlog.json_path.name})",
                      highlight=False, soft_wrap=True)
        con.print("endpoints: GET /health, POST /act, POST /act_batch, GET /metrics; Ctrl-C "
                  "or SIGTERM stops gracefully", highlight=False, soft_wrap=True)
        sys.stdout.flush()
        try:
            server.run(sockets=[sock])
        finally:
            if dlog is not None:
                dlog.close()
            sock.close()
        con.print(f"stopped: {server.config.app.metrics.decisions} decisions answered",
                  highlight=False)
