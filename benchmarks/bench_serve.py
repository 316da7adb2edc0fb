"""The dispatcher service on loopback (issue 22): throughput and latency of ``altmarl
serve`` for single and batched requests.

    python benchmarks/bench_serve.py [--quick]

Starts ``altmarl serve`` in its own process (a warehouse G-LEARN policy, ``k = 5``, decision
log on) on a free loopback port, then drives it with keep-alive HTTP/1.1 clients (stdlib
``http.client``, ``TCP_NODELAY``) in threads of this process: single ``POST /act`` requests
from 1 and 8 concurrent clients, and ``POST /act_batch`` with 64 and 256 decisions per
request. Reports decisions per second, and the p50 / p99 latency of a request as a client
sees it (send to last byte of the answer). For scale, the same decisions computed in
process (``ServedPolicy.decide``: validation + ``pi_g.act``). The issue's targets: at least
2,000 decisions/s batched and p99 below 10 ms for single requests. The machine is shared:
the load average is quoted, and client and server share its 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _common import load, machine, print_table  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.service import ServedPolicy  # noqa: E402

K = 5


def start(policy: Path, log: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(Path(am.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "altmarl", "serve", str(policy), "--env",
                             "warehouse", "--port", "0", "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"altmarl serve did not start: {proc.stdout.read()}")


def connection(port: int) -> http.client.HTTPConnection:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.connect()
    assert c.sock is not None
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def post(c: http.client.HTTPConnection, path: str, body: bytes) -> dict:
    c.request("POST", path, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {data[:200]!r}")
    return json.loads(data)


def drive(port: int, clients: int, requests: int, batch: int, seed: int = 0
          ) -> tuple[float, np.ndarray, int]:
    """``clients`` threads, ``requests`` each; returns (seconds, latencies, decisions)."""
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(64):
        s_g, samp = rng.integers(0, 5, batch), rng.integers(0, 5, (batch, K))
        if batch == 1:
            bodies.append(json.dumps({"s_g": int(s_g[0]), "sample": samp[0].tolist()}).encode())
        else:
            bodies.append(json.dumps({"requests": [{"s_g": int(a), "sample": b.tolist()}
                                                   for a, b in zip(s_g, samp, strict=True)]}
                                     ).encode())
    path = "/act" if batch == 1 else "/act_batch"
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        try:
            c = connection(port)
            post(c, path, bodies[0])  # warm the connection
            barrier.wait()
            out = lat[i]
            for j in range(requests):
                t0 = time.perf_counter()
                post(c, path, bodies[(i + j) % len(bodies)])
                out.append(time.perf_counter() - t0)
            c.close()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"client errors: {errors[:3]}")
    return secs, np.concatenate([np.asarray(x) for x in lat]), clients * requests * batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    game = am.envs.make("warehouse")
    pi_g = am.g_learn(game, am.LocalPolicy.uniform(game), K, m=10, seed=0)
    served = ServedPolicy(pi_g, game)
    rng = np.random.default_rng(1)
    s_g, samp = rng.integers(0, 5, 256).tolist(), rng.integers(0, 5, (256, K)).tolist()
    t0 = time.perf_counter()
    reps = 200
    for _ in range(reps):
        served.decide(s_g, samp)
    in_proc = reps * 256 / (time.perf_counter() - t0)
    print(machine())
    print(f"in process: ServedPolicy.decide on batches of 256: {in_proc:,.0f} decisions/s")
    with tempfile.TemporaryDirectory() as tmp:
        policy = pi_g.save(Path(tmp) / "pi_g.npz", game)
        proc, port = start(policy, Path(tmp) / "decisions")
        rows = []
        try:
            cases = [("single", 1, 1, int(3000 * scale)), ("single", 8, 1, int(500 * scale)),
                     ("batch 64", 1, 64, int(300 * scale)), ("batch 64", 8, 64, int(60 * scale)),
                     ("batch 256", 1, 256, int(100 * scale)),
                     ("batch 256", 8, 256, int(20 * scale))]
            for name, clients, batch, n in cases:
                secs, lat, decisions = drive(port, clients, n, batch)
                p50, p99 = np.percentile(lat, [50, 99]) * 1e3
                rows.append([name, clients, len(lat), f"{decisions / secs:,.0f}",
                             f"{len(lat) / secs:,.0f}", f"{p50:.2f}", f"{p99:.2f}"])
                print(f"  {name}, {clients} client(s): done ({load()})", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        logged = sum(1 for _ in open(Path(tmp) / "decisions.csv")) - 1
    print_table(f"altmarl serve on loopback (warehouse, k = {K}, decision log on; {load()})",
                ["requests", "clients", "requests sent", "decisions/s", "requests/s",
                 "p50 ms", "p99 ms"], rows)
    print(f"server exit code {proc.returncode}; {logged} decisions in the log; "
          f"{out.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
