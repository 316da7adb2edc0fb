"""The dispatcher service against a real uvicorn server on loopback (a free port, bounded
request counts and time, stopped by the test): endpoints, 422 naming the field, metrics,
the decision log, a load test with 8 concurrent clients, and ``altmarl serve`` itself with a
graceful SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import altmarl as am

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from altmarl.service import DecisionLog, ServedPolicy, join_outcomes  # noqa: E402
from altmarl.service.app import MAX_BODY, RunningServer, create_app  # noqa: E402

TIMEOUT = 10.0  # seconds per request


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    game = am.envs.make("warehouse", n=100)
    pi_g = am.g_learn(game, am.LocalPolicy.uniform(game), 4, m=5, seed=0)
    served = ServedPolicy(pi_g, game, "g_learn")
    log_path = tmp_path_factory.mktemp("svc") / "decisions"
    dlog = DecisionLog(log_path, served, "shadow")
    srv = RunningServer(create_app(served, dlog, shadow=True))
    yield game, pi_g, served, srv, dlog
    srv.stop()


def test_endpoints_and_validation(setup) -> None:
    game, pi_g, served, srv, _ = setup
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
        h = c.get("/health").json()
        assert h["status"] == "ok" and h["policy"] == served.fingerprint and h["k"] == 4
        assert h["game"]["fingerprint"] == game.fingerprint() and h["mode"] == "shadow"
        r = c.post("/act", json={"s_g": 2, "sample": [0, 2, 2, 4], "episode": 0, "t": 0,
                                 "id": "a-1", "current_a_g": 1})
        assert r.status_code == 200
        body = r.json()
        assert body["a_g"] == pi_g.act(2, [1, 0, 2, 0, 1]) and body["id"] == "a-1"
        assert body["shadow"] is True and body["policy"] == served.fingerprint
        cases = [
            ({"s_g": 9, "sample": [0] * 4}, ["body", "s_g"], "0..4"),
            ({"s_g": 1, "sample": [0] * 3}, ["body", "sample"], "k = 4"),
            ({"s_g": 1, "sample": [0, 0, 5, 0]}, ["body", "sample", 2], "0..4"),
            ({"s_g": 1, "sample": [0] * 4, "current_a_g": 7}, ["body", "current_a_g"], "0..4"),
            ({"s_g": "1", "sample": [0] * 4}, ["body", "s_g"], ""),
            ({"s_g": 1}, ["body", "sample"], "required"),
            ({"s_g": 1, "sample": [0] * 4, "extra": 1}, ["body", "extra"], "not permitted"),
            ({"s_g": 1, "sample": [0] * 4, "id": "no,commas"}, ["body", "id"], "pattern"),
        ]
        for req, loc, words in cases:
            r = c.post("/act", json=req)
            assert r.status_code == 422, (req, r.text)
            det = r.json()["detail"][0]
            assert det["loc"][:len(loc)] == loc and words in det["msg"], (req, det)
        r = c.post("/act_batch", json={"requests": [{"s_g": 0, "sample": [0] * 4},
                                                    {"s_g": 0, "sample": [0, 1]}]})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "requests", 1, "sample"]
        assert c.post("/act_batch", json={"requests": []}).status_code == 422
        assert c.post("/act", content=b"{nope", headers={"content-type": "application/json"}
                      ).status_code == 422
        big = b"[" + b"0," * (MAX_BODY // 2) + b"0]"
        assert c.post("/act", content=big).status_code == 413
        text = c.get("/metrics").text
    assert re.search(r'altmarl_requests_total\{endpoint="/act",status="422"\} (\d+)', text)
    assert 'altmarl_errors_total{endpoint="/act",kind="validation"}' in text
    assert 'altmarl_errors_total{endpoint="/act",kind="too_large"} 1' in text
    assert 'altmarl_request_latency_seconds_bucket{endpoint="/act",le="+Inf"}' in text
    assert "altmarl_shadow_compared_total" in text
    assert "500" not in re.findall(r'status="(\d+)"', text)


def test_load_eight_clients(setup) -> None:
    """8 concurrent clients, 120 single and 4 batched requests (32 decisions) each: every
    answer equals pi_g.act, no error, every decision logged."""
    game, pi_g, served, srv, dlog = setup
    errors: list[str] = []
    rows_before = dlog.rows
    m_before = srv.server.config.app.metrics.decisions

    def client(i: int) -> None:
        rng = np.random.default_rng(i)
        try:
            with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
                for j in range(120):
                    s, samp = int(rng.integers(5)), rng.integers(0, 5, 4).tolist()
                    r = c.post("/act", json={"s_g": s, "sample": samp, "episode": i, "t": j})
                    want = pi_g.act(s, np.bincount(samp, minlength=5))
                    if r.status_code != 200 or r.json()["a_g"] != want:
                        errors.append(f"client {i} request {j}: {r.status_code} {r.text}")
                for _ in range(4):
                    sg = rng.integers(0, 5, 32)
                    samples = rng.integers(0, 5, (32, 4))
                    r = c.post("/act_batch", json={"requests": [
                        {"s_g": int(a), "sample": b.tolist()} for a, b in zip(sg, samples, strict=True)]})
                    hist = np.stack([np.bincount(b, minlength=5) for b in samples])
                    if r.status_code != 200 or r.json()["actions"] != pi_g.act(sg, hist).tolist():
                        errors.append(f"client {i} batch: {r.status_code} {r.text[:200]}")
        except Exception as exc:  # a transport error is a failure too
            errors.append(f"client {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, 120 - (time.monotonic() - t0)))
    assert not any(t.is_alive() for t in threads), "clients did not finish within 120 s"
    assert not errors, errors[:5]
    n = 8 * (120 + 4 * 32)
    assert dlog.rows - rows_before == n
    assert srv.server.config.app.metrics.decisions - m_before == n


def test_decision_log_joins_into_an_offpolicy_log(setup, tmp_path) -> None:
    game, pi_g, served, srv, dlog = setup
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
        ids = []
        for t in range(20):
            r = c.post("/act", json={"s_g": t % 5, "sample": [t % 5, 0, 1, 2], "episode": 99,
                                     "t": t, "current_a_g": 0})
            ids.append(r.json()["id"])
    out = tmp_path / "outcomes.csv"
    out.write_text("id,r,a_g\n" + "".join(f"{i},{1.5},{0}\n" for i in ids))
    ds = join_outcomes(dlog.csv_path, out, behaviour={"kind": "uniform"})
    assert len(ds) == 19 and set(ds.a_g.tolist()) == {0}
    assert ds.s_g.tolist() == [t % 5 for t in range(19)]
    assert ds.info["game"]["fingerprint"] == game.fingerprint()


def _start_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "altmarl", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"altmarl serve did not start: {proc.stdout.read()}")


def test_cli_serve_and_graceful_sigterm(tmp_path) -> None:
    game = am.envs.make("warehouse", n=100)
    pi_g = am.GlobalPolicy.sample_mode(game, 3)
    pi_g.save(tmp_path / "pi_g.npz", game)
    env = {**os.environ, "PYTHONPATH": str(Path(am.__file__).parents[1])}
    proc, url = _start_cli([str(tmp_path / "pi_g.npz"), "--env", "warehouse", "--port", "0",
                            "--log", str(tmp_path / "dec")], env)
    try:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as c:
            assert c.get("/health").json()["policy"] == ServedPolicy(pi_g, game).fingerprint
            for t in range(30):
                r = c.post("/act", json={"s_g": 1, "sample": [t % 5, 2, 2]})
                assert r.status_code == 200 and r.json()["a_g"] == 2
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "30 decisions answered" in out
    lines = (tmp_path / "dec.csv").read_text().splitlines()
    assert len(lines) == 31 and lines[-1].endswith(ServedPolicy(pi_g, game).fingerprint)
    meta = json.loads((tmp_path / "dec.json").read_text())
    assert meta["format"] == "altmarl.decision_log" and meta["k"] == 3
    # a policy file for another game is refused before the server starts
    other = am.envs.make("random", n_sg=5, n_ag=5, n_sl=5, n_al=3, n=100)
    am.GlobalPolicy.constant(other, 3, 0).save(tmp_path / "other.npz", other)
    res = subprocess.run([sys.executable, "-m", "altmarl", "serve", str(tmp_path / "other.npz"),
                          "--env", "warehouse", "--port", "0"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 2 and "fingerprint" in res.stderr + res.stdout
