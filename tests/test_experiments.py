"""Experiments: configuration validation, units, run directories, backends, resume
(SPEC 8.1, 9, 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

import altmarl as am
from altmarl.experiments import config as C
from altmarl.experiments import runner as R
from altmarl.experiments import sweep as S
from altmarl.histogram import num_histograms
from altmarl.io import read_csv_columns
from altmarl.rundir import read_summary

ROOT = Path(__file__).resolve().parents[1]
# the command line of the interpreter running the tests (any virtual environment location)
ALTMARL_CMD = [sys.executable, "-c", "from altmarl.cli import app; app()"]

# ---------------------------------------------------------------------------
# a stub trainer (tests only): same signature as am.alternating_marl, cheap, seeded
# ---------------------------------------------------------------------------


class _StubResult:
    def __init__(self, pi_g: am.GlobalPolicy, pi_l: am.LocalPolicy, value: float,
                 history: list[dict[str, Any]]) -> None:
        self.pi_g, self.pi_l, self.value, self.history = pi_g, pi_l, value, history

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "sweeps_run": len(self.history), "big": list(range(500))}


def stub_trainer(game: am.TabularGame, k: int, seed: int = 0, sweeps: int = 2, m: Any = 30,
                 local_solver: str = "induced-vi", callback: Any = None,
                 progress: bool = False) -> _StubResult:
    """A random global policy table and a random local policy, both from ``seed``."""
    rng = np.random.default_rng(seed)
    acts = rng.integers(0, game.n_ag, size=(game.n_sg, num_histograms(k, game.n_sl)))
    pi_g = am.GlobalPolicy(k, acts, game.n_ag, game=game)
    pi_l = am.LocalPolicy(rng.dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg)),
                          game=game)
    hist = []
    for s in range(sweeps):
        hist.append({"sweep": s, "player": "global", "v_new": float(rng.random()),
                     "v_old": 0.5, "decision": "accept", "wall_time": time.perf_counter()})
        if callback is not None:
            callback(hist[-1])
    return _StubResult(pi_g, pi_l, float(rng.random()), hist)


STUB = "test_experiments:stub_trainer"


def failing_trainer(game: am.TabularGame, k: int, seed: int = 0, **kw: Any) -> _StubResult:
    if k == 2:
        raise ValueError("learner exploded")
    return stub_trainer(game, k, seed=seed)


def tiny_cfg(check_env: bool = True, **over: Any) -> C.ExperimentConfig:
    d: dict[str, Any] = {
        "name": "tiny",
        "seed": 7,
        "env": {"name": "random", "params": {"n_sg": 2, "n_ag": 2, "n_sl": 3, "n_al": 2,
                                             "n": 12, "seed": 1}},
        "algorithm": {"sweeps": 2, "m": 5},
        # the estimated certificate (no deviations from the stub: no simulation) keeps the
        # many sweeps of these tests fast; the exact one is tested on its own below
        "evaluation": {"seeds": 3, "rollouts": 6, "horizon": 12, "nash_gap": "estimate"},
        "sweep": {"k": [1, 2, 3], "train_seeds": 2},
    }
    for key, val in over.items():
        d[key] = {**d[key], **val} if isinstance(val, dict) else val
    return C.parse_config(d, check_env=check_env)


# ---------------------------------------------------------------------------
# comparing run directories (everything except wall-clock timing)
# ---------------------------------------------------------------------------


def _timing_key(key: str) -> bool:
    k = key.lower()
    return k == "timing" or any(w in k for w in ("time", "wall", "cpu", "second"))


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not _timing_key(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _csv_no_timing(path: Path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    keep = [j for j, h in enumerate(rows[0]) if not _timing_key(h)] if rows else []
    return [[r[j] for j in keep] for r in rows]


def result_files(run_dir: Path) -> list[str]:
    """The result files of a run directory: not the figures, not the uniform-play baseline
    the command line adds for its report (``baseline.json``)."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                  if p.is_file() and "plots" not in p.parts and p.name != "baseline.json")


def assert_same_results(a: Path, b: Path) -> None:
    """Two run directories hold the same results: same files; JSON equal without timing
    entries; CSV equal without timing columns; policy arrays bitwise equal."""
    fa, fb = result_files(a), result_files(b)
    assert fa == fb
    for rel in fa:
        pa, pb = a / rel, b / rel
        if rel.endswith(R.MANIFEST):
            # digests and sizes differ: .npz members carry their write time, result.json
            # holds timing; the manifests list the same files
            ma, mb = (json.loads(p.read_text()) for p in (pa, pb))
            assert sorted(ma["files"]) == sorted(mb["files"]) == sorted(R.UNIT_FILES), rel
        elif rel.endswith(".json"):
            assert _strip(json.loads(pa.read_text())) == _strip(json.loads(pb.read_text())), rel
        elif rel.endswith(".csv"):
            assert _csv_no_timing(pa) == _csv_no_timing(pb), rel
        elif rel.endswith(".npz"):
            with np.load(pa, allow_pickle=False) as za, np.load(pb, allow_pickle=False) as zb:
                assert za.files == zb.files, rel
                for name in za.files:
                    if name == "meta":
                        assert _strip(json.loads(str(za[name]))) == _strip(
                            json.loads(str(zb[name]))), rel
                    else:
                        np.testing.assert_array_equal(za[name], zb[name], err_msg=rel)
        else:
            assert pa.read_bytes() == pb.read_bytes(), rel


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("data, key", [
    ({"algorithm": {"sweps": 3}}, "algorithm.sweps"),
    ({"evalution": {}}, "evalution"),
    ({"sweep": {"k": {"start": 1, "stp": 4}}}, "sweep.k.stp"),
    ({"seed": "3"}, "seed"),
    ({"evaluation": {"seeds": 1.5}}, "evaluation.seeds"),
    ({"evaluation": {"rollouts": 1}}, "evaluation.rollouts"),
    ({"algorithm": {"m": "exac"}}, "algorithm.m"),
    ({"algorithm": {"m": 0}}, "algorithm.m"),
    ({"algorithm": {"eta": -0.1}}, "algorithm.eta"),
    ({"sweep": {"k": [0, 3]}}, "sweep.k"),
    ({"sweep": {"k": [2000]}}, "sweep.k"),
    ({"sweep": {"train_seeds": 0}}, "sweep.train_seeds"),
    ({"env": {"name": "warehous"}}, "env"),
    ({"env": {"params": {"nn": 5}}}, "env"),
    ({"version": 2}, "version"),
    ({"algorithm": {"options": {"seed": 3}}}, "algorithm.options"),
])
def test_config_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError) as ei:
        C.parse_config(data)
    assert f" {key}:" in str(ei.value) or f" {key} " in str(ei.value), str(ei.value)


def test_config_error_from_toml_file_names_file_and_key(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\n[algorithm]\nsweeps = "ten"\n')
    with pytest.raises(ValueError) as ei:
        C.load_config(p)
    assert str(p) in str(ei.value) and "algorithm.sweeps" in str(ei.value)
    p.write_text("name = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        C.load_config(p)
    with pytest.raises(ValueError, match="no such configuration file"):
        C.load_config(tmp_path / "missing.toml")


def test_k_forms_and_defaults() -> None:
    assert C.parse_config({"sweep": {"k": {"start": 2, "stop": 10, "step": 4}}}).ks() == [2, 6, 10]
    assert C.parse_config({"sweep": {"k": 4}}).ks() == [4]
    assert C.parse_config({"sweep": {"k": [5, 1, 5]}}).ks() == [1, 5]
    with pytest.raises(ValueError, match="sweep.k"):
        C.parse_config({"sweep": {"k": {"start": 5, "stop": 2}}})
    cfg = C.parse_config({})
    assert cfg.algorithm.kwargs() == {"sweeps": 10, "m": 30}
    exact = C.parse_config({"algorithm": {"m": "exact", "eta": 0.5, "eval_rollouts": 64}})
    assert exact.algorithm.kwargs()["m"] is None
    assert exact.algorithm.kwargs()["eta"] == 0.5 and exact.algorithm.kwargs()["eval_rollouts"] == 64


@given(
    seed=st.integers(0, 2**40),
    ks=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    sweeps=st.integers(1, 20),
    m=st.one_of(st.integers(1, 100), st.just("exact")),
    eta=st.one_of(st.none(), st.floats(0, 10, allow_nan=False)),
    seeds=st.integers(1, 20),
)
def test_resolved_config_round_trips_through_toml(tmp_path_factory: Any, seed: int, ks: list[int],
                                                  sweeps: int, m: Any, eta: float | None,
                                                  seeds: int) -> None:
    algo: dict[str, Any] = {"sweeps": sweeps, "m": m}
    if eta is not None:
        algo["eta"] = eta
    cfg = C.parse_config({"seed": seed, "env": {"name": "random", "params": {"n": 12}},
                          "algorithm": algo, "evaluation": {"seeds": seeds},
                          "sweep": {"k": ks}})
    p = tmp_path_factory.mktemp("cfg") / "c.toml"
    p.write_text(cfg.to_toml())
    again = C.load_config(p)
    assert again.resolved() == cfg.resolved() and again.fingerprint() == cfg.fingerprint()
    assert again.ks() == sorted(set(ks))


def test_fingerprint_changes_with_any_setting() -> None:
    base = tiny_cfg()
    variants = [tiny_cfg(seed=8), tiny_cfg(algorithm={"sweeps": 3}),
                tiny_cfg(evaluation={"rollouts": 7}), tiny_cfg(sweep={"k": [1, 2]}),
                tiny_cfg(env={"params": {"n_sg": 2, "n_ag": 2, "n_sl": 3, "n_al": 2, "n": 13,
                                         "seed": 1}})]
    fps = {v.fingerprint() for v in variants}
    assert base.fingerprint() not in fps and len(fps) == len(variants)


def test_packaged_configs_are_valid_and_targets_resolve(tmp_path: Path) -> None:
    names = C.packaged_configs()
    assert {"warehouse", "warehouse_table3", "warehouse_quick", "random_small"} <= set(names)
    t3 = C.packaged_config("warehouse_table3")
    assert t3.ks() == list(range(1, 51))
    assert (t3.algorithm.m, t3.algorithm.sweeps) == (30, 10)
    assert (t3.evaluation.seeds, t3.evaluation.rollouts, t3.evaluation.horizon) == (15, 50, 100)
    assert t3.env.params["n"] == 1000 and t3.env.params["gamma"] == 0.95
    assert C.resolve_target("warehouse") == C.packaged_config("warehouse")
    assert C.resolve_target("random").env.name == "random"
    p = tmp_path / "x.toml"
    p.write_text(tomli_w.dumps({"name": "from-file", "sweep": {"k": [3]}}))
    assert C.resolve_target(str(p)).name == "from-file"
    with pytest.raises(ValueError, match="not a configuration file"):
        C.resolve_target("no-such-thing")
    for f in (ROOT / "examples").glob("*.toml"):
        C.load_config(f)


# ---------------------------------------------------------------------------
# seeds and units
# ---------------------------------------------------------------------------


def test_seed_derivation() -> None:
    assert R.train_seed(5, 0) == 5
    seeds = {R.train_seed(5, t) for t in range(1, 50)} | set(R.eval_seeds(5, 50))
    assert len(seeds) == 99 and 5 not in seeds
    assert R.eval_seeds(5, 3) == R.eval_seeds(5, 10)[:3]
    assert R.derive_seed(5, 1, 2) == R.derive_seed(5, 1, 2) != R.derive_seed(6, 1, 2)
    assert all(0 <= s < 2**64 for s in seeds)


def test_unit_output_is_deterministic_and_complete() -> None:
    cfg = tiny_cfg()
    task = [t for t in R.make_tasks(cfg, STUB) if (t.k, t.train_index) == (2, 1)][0]
    a, b = R.execute_unit(task), R.execute_unit(task)
    assert set(a.files) == set(R.UNIT_FILES)
    assert _strip(a.result) == _strip(b.result)
    res = a.result
    assert res["k"] == 2 and res["train_index"] == 1 and res["train_seed"] == R.train_seed(7, 1)
    assert res["eval"]["seeds"] == R.eval_seeds(7, 3)
    # the evaluation is am.evaluate with the derived seeds
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=12, seed=1)
    stub = stub_trainer(game, 2, seed=R.train_seed(7, 1))
    for s, m in zip(res["eval"]["seeds"], res["eval"]["means"], strict=True):
        ev = am.evaluate(game, stub.pi_g, stub.pi_l, rollouts=6, horizon=12, seed=s)
        assert ev.mean == m
    assert res["eval"]["mean"] == pytest.approx(np.mean(res["eval"]["means"]))
    # large entries of to_dict() are left out of result.json, scalars kept
    assert res["train"]["sweeps_run"] == 2 and "big" not in res["train"]
    # history.csv: one row per history entry, enum/str values kept
    lines = a.files["history.csv"].decode().splitlines()
    assert lines[0].split(",")[:3] == ["step", "sweep", "player"] and len(lines) == 3
    # the Nash-gap certificate: the stub proposes no deviation, so the lower bound is 0
    cert = res["nash_gap"]
    assert cert["exact"] is False and cert["bound"] == "lower" and cert["nash_gap"] == 0.0
    assert cert["gap_g"]["source"] == "none" and cert["seed"] == R.derive_seed(7, R.CERT)


def test_write_unit_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = [t for t in R.make_tasks(tiny_cfg(), STUB) if (t.k, t.train_index) == (1, 0)][0]
    out = R.execute_unit(task)

    def boom(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(R.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        R.write_unit(tmp_path, out)
    assert list((tmp_path / "units").iterdir()) == []  # nothing, not even a temp dir
    monkeypatch.undo()
    R.write_unit(tmp_path, out)
    assert R.is_finished(tmp_path, "k0001_t00")
    assert sorted(p.name for p in (tmp_path / "units" / "k0001_t00").iterdir()) == sorted(
        [*R.UNIT_FILES, R.MANIFEST])
    (tmp_path / "units" / ".k0002_t00.tmp-1-abc").mkdir()
    (tmp_path / "units" / ".k0003_t00.damaged-1-abc").mkdir()
    assert R.clean_stale(tmp_path) == 2
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["k0001_t00"]


# ---------------------------------------------------------------------------
# sweeps (stub trainer): aggregation, backends, resume
# ---------------------------------------------------------------------------


def test_sweep_aggregates_units(tmp_path: Path) -> None:
    cfg = tiny_cfg()
    rep = S.run_sweep(cfg, tmp_path / "run", workers=1, trainer=STUB, progress=False,
                      plots=False)
    assert (rep.ran, rep.skipped) == (6, 0)
    s = read_summary(rep.run_dir)
    assert s["complete"] and s["units_done"] == s["units_total"] == 6 and s["missing"] == []
    assert [p["k"] for p in s["per_k"]] == [1, 2, 3]
    metrics = read_csv_columns(rep.run_dir / "metrics.csv")
    assert len(metrics["k"]) == 3 * 2 * 3
    for p in s["per_k"]:
        vals = metrics["value"][metrics["k"] == p["k"]]
        assert p["evaluations"] == 6 and p["train_runs"] == 2
        assert p["mean"] == pytest.approx(vals.mean())
        assert p["std"] == pytest.approx(vals.std(ddof=1))
        # Student-t over the 6 evaluations (5 degrees of freedom), not the normal quantile
        half = 2.5705818366147395 * vals.std(ddof=1) / np.sqrt(6)
        assert p["ci95"] == pytest.approx([vals.mean() - half, vals.mean() + half])
        mm = metrics["mode_match_rate"][metrics["k"] == p["k"]]
        if p["mode_mismatch_mean"] is not None:
            assert p["mode_mismatch_mean"] == pytest.approx(1 - mm.mean())
    # the stored configuration reloads to the same configuration
    assert C.load_config(rep.run_dir / "config.toml").resolved() == cfg.resolved()
    for name in ("k0001_t00", "k0003_t01"):
        ud = rep.run_dir / "units" / name
        assert sorted(p.name for p in ud.iterdir()) == sorted([*R.UNIT_FILES, R.MANIFEST])
        game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=12, seed=1)
        am.GlobalPolicy.load(ud / "pi_g.npz", game)
        am.LocalPolicy.load(ud / "pi_l.npz", game)


def test_interrupted_sweep_resumes_to_identical_results(tmp_path: Path) -> None:
    cfg = tiny_cfg()
    S.run_sweep(cfg, tmp_path / "full", workers=1, trainer=STUB, progress=False, plots=False)

    seen: list[str] = []

    def interrupt(o: R.UnitOutput) -> None:
        seen.append(o.name)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        S.run_sweep(cfg, tmp_path / "part", workers=1, trainer=STUB, progress=False,
                    plots=False, on_unit=interrupt)
    part = read_summary(tmp_path / "part")
    assert not part["complete"] and part["units_done"] == 2 and len(part["missing"]) == 4
    with pytest.raises(ValueError, match="--resume"):
        S.run_sweep(cfg, tmp_path / "part", workers=1, trainer=STUB, progress=False)
    rep = S.run_sweep(cfg, tmp_path / "part", workers=1, resume=True, trainer=STUB,
                      progress=False, plots=False)
    assert (rep.ran, rep.skipped) == (4, 2)
    assert_same_results(tmp_path / "full", tmp_path / "part")


def killing_trainer(game: am.TabularGame, k: int, seed: int = 0,
                    g_options: dict[str, Any] | None = None, **kw: Any) -> _StubResult:
    """SIGKILLs its own worker process the first time it trains k = 2."""
    marker = Path((g_options or {})["marker"])
    if k == 2 and not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return stub_trainer(game, k, seed=seed)


def test_killed_worker_loses_nothing(tmp_path: Path) -> None:
    """A worker killed mid-unit breaks the pool; the pool is rebuilt for the unfinished
    units and the sweep ends with the same results as an undisturbed run."""
    marker = tmp_path / "marker"
    # ``marker`` is an option of the test trainer, not of G-LEARN: skip the pre-flight check
    cfg = tiny_cfg(check_env=False,
                   algorithm={"options": {"g_options": {"marker": str(marker)}}})
    rep = S.run_sweep(cfg, tmp_path / "pool", workers=2, progress=False, plots=False,
                      trainer="test_experiments:killing_trainer")
    assert marker.exists()  # a worker really was killed
    assert rep.summary["complete"] and rep.ran == 6
    S.run_sweep(cfg, tmp_path / "serial", workers=1, progress=False, plots=False,
                trainer="test_experiments:killing_trainer")
    assert_same_results(tmp_path / "serial", tmp_path / "pool")


def test_failing_unit_is_named_and_finished_units_are_kept(tmp_path: Path) -> None:
    cfg = tiny_cfg(sweep={"k": [1, 2, 3], "train_seeds": 1})
    with pytest.raises(R.UnitFailed, match=r"unit k0002_t00 \(k = 2.*ValueError: learner exploded"):
        S.run_sweep(cfg, tmp_path / "f", workers=1, trainer="test_experiments:failing_trainer",
                    progress=False)
    assert _finished(tmp_path / "f") == ["k0003_t00"]  # largest k first; it is saved


def test_resume_refuses_a_different_configuration(tmp_path: Path) -> None:
    S.run_sweep(tiny_cfg(sweep={"k": [1]}), tmp_path / "r", workers=1, trainer=STUB,
                progress=False, plots=False)
    with pytest.raises(ValueError, match=r"different configuration.*evaluation\.rollouts: 6 -> 7"):
        S.run_sweep(tiny_cfg(sweep={"k": [1]}, evaluation={"rollouts": 7}), tmp_path / "r",
                    resume=True, trainer=STUB, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an altmarl run directory"):
        S.run_sweep(tiny_cfg(), tmp_path / "other", trainer=STUB, progress=False)


def double(x: int) -> int:
    """A unit for run_tasks' ``fn`` (module level: worker processes import it)."""
    return 2 * x


@pytest.mark.parametrize("workers", [1, 2])
def test_run_tasks_with_a_custom_unit_function(workers: int) -> None:
    from altmarl.experiments.backends import run_tasks

    got: list[int] = []
    run_tasks([1, 2, 3], got.append, workers=workers, fn=double)
    assert sorted(got) == [2, 4, 6]


def test_backend_argument_errors(tmp_path: Path) -> None:
    from altmarl.experiments.backends import run_tasks

    with pytest.raises(ValueError, match="backend"):
        run_tasks([], lambda o: None, backend="dask")
    with pytest.raises(ValueError, match="workers"):
        run_tasks([], lambda o: None, workers=0)
    with pytest.raises(ValueError, match="address"):
        run_tasks([], lambda o: None, backend="local", address="ray://x:1")


# ---------------------------------------------------------------------------
# the real code path (am.alternating_marl): kill/resume of a CLI sweep, Ray vs local
# ---------------------------------------------------------------------------

REAL: dict[str, Any] = {
    "name": "tiny-real",
    "seed": 3,
    "env": {"name": "random", "params": {"n_sg": 2, "n_ag": 2, "n_sl": 3, "n_al": 2, "n": 12,
                                         "seed": 1}},
    "algorithm": {"sweeps": 2, "m": 5, "local_solver": "induced-vi", "eval_rollouts": 8,
                  "eval_horizon": 10},
    "evaluation": {"seeds": 2, "rollouts": 4, "horizon": 10},
    "sweep": {"k": [1, 2, 3, 4], "train_seeds": 2},
}


def _finished(run_dir: Path) -> list[str]:
    u = run_dir / "units"
    return sorted(p.name for p in u.iterdir() if not p.name.startswith(".")) if u.is_dir() else []


def test_killed_cli_sweep_resumes_to_identical_results(tmp_path: Path) -> None:
    """SIGKILL a real `altmarl sweep` (driver and its 2-process pool) once units have been
    written; `--resume` finishes the rest; every result file equals an uninterrupted
    in-process run's."""
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(tomli_w.dumps(REAL))
    out = tmp_path / "killed"
    cmd = [*ALTMARL_CMD, "sweep", str(cfg_path), "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not _finished(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = _finished(out)
    assert 1 <= len(done_before) < 8
    # resume in-process (--workers 1): the numbers depend neither on the worker count nor
    # on which process computed a unit
    res = subprocess.run([*cmd[:-4], "--workers", "1", "--out", str(out), "--resume"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"reused {len(done_before)}" in res.stdout
    assert len(_finished(out)) == 8 and not [p for p in (out / "units").iterdir()
                                             if p.name.startswith(".")]
    ref = S.run_sweep(C.parse_config(REAL), tmp_path / "ref", workers=1, progress=False)
    assert read_summary(out)["complete"]
    assert_same_results(ref.run_dir, out)


def test_ray_backend_matches_local(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cfg = C.parse_config({**REAL, "sweep": {"k": [1, 3], "train_seeds": 1}})
    S.run_sweep(cfg, tmp_path / "local", workers=1, progress=False, plots=False)
    S.run_sweep(cfg, tmp_path / "ray", backend="ray", workers=1, progress=False, plots=False)
    assert_same_results(tmp_path / "local", tmp_path / "ray")
    import ray

    assert not ray.is_initialized()  # the backend shut down the instance it started


def test_ray_tasks_run_single_threaded() -> None:
    """Ray schedules one CPU per task, so each task's altmarl pools take one thread
    (``_ray_execute`` runs ``single_threaded_worker`` first), whatever the driver's count."""
    pytest.importorskip("ray")
    from altmarl.experiments.backends import run_ray
    from altmarl.threads import default_threads

    got: list[tuple[int, int]] = []
    run_ray([0, 1], got.append, workers=2,
            fn=lambda t: (t, default_threads()))  # type: ignore[arg-type, return-value]
    assert sorted(got) == [(0, 1), (1, 1)]


# ---------------------------------------------------------------------------
# the Nash-gap certificate of run directories (issue 16)
# ---------------------------------------------------------------------------


def test_run_directory_carries_exact_nash_gaps(tmp_path: Path) -> None:
    """Small chain (182 states): exact gaps of every final pair in result.json, summary.json
    (per unit and per k), per_k.csv and the CLI table."""
    from altmarl.exact import ExactSolver

    cfg = tiny_cfg(evaluation={"nash_gap": "auto", "seeds": 2}, sweep={"k": [1, 2],
                                                                        "train_seeds": 1})
    rep = S.run_sweep(cfg, tmp_path / "r", trainer=STUB, progress=False, workers=1)
    summ = rep.summary
    game = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=12, seed=1)
    for k in (1, 2):
        stub = stub_trainer(game, k, seed=R.train_seed(7, 0))
        cert = summ["nash_gap"][f"k{k:04d}_t00"]
        want = ExactSolver(game, k).nash_gap(stub.pi_g, stub.pi_l, refine_local=False)
        assert cert["states"] == 182 and cert["gap_g_full"] == pytest.approx(want.gap_g_full)
        assert cert["gap_l"] == pytest.approx(want.gap_l, abs=1e-9)
        assert cert["nash_gap"] >= cert["gap_l"] - 1e-12 and cert["bound"] in ("exact", "lower")
        assert cert["exact"] == (cert["bound"] == "exact") == (cert["gap_g_exact"]
                                                               and cert["gap_l_exact"])
        pk = next(p for p in summ["per_k"] if p["k"] == k)
        assert pk["nash_gap"] == cert["nash_gap"] and pk["nash_gap_bound"] == cert["bound"]
    rows = (tmp_path / "r" / "per_k.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"nash_gap", "nash_gap_bound", "nash_gap_ci95_low"} <= set(header)
    col = header.index("nash_gap")
    assert [float(r.split(",")[col]) for r in rows[1:]] == [p["nash_gap"] for p in summ["per_k"]]
    from rich.console import Console

    con = Console(width=80, record=True)
    con.print(S.summary_table(summ))
    text = con.export_text()
    assert "nash_gap" in text and "train s" in text and "…" not in text


def test_format_gap_labels_exact_and_lower_bounds() -> None:
    assert S.format_gap({"nash_gap": 0.01234, "nash_gap_bound": "exact"}) == "0.0123"
    assert S.format_gap({"nash_gap": 0.01234, "nash_gap_bound": "lower"}) == ">= 0.012"
    assert S.format_gap({"nash_gap": None}) == "-"
