"""Run directories that heal (issue 18): every unit is checked against the SHA-256 digests
recorded when it was written; a damaged unit is named, left out of the summary and
recomputed on resume; a damaged configuration record is rebuilt; the summary is never
complete over a damaged unit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from altmarl.experiments import runner as R
from altmarl.experiments import sweep as S
from altmarl.locking import DirectoryLock, LockHeld, holds_lock
from altmarl.rundir import read_summary
from test_experiments import ALTMARL_CMD, STUB, assert_same_results, tiny_cfg


def _sweep(cfg: Any, out: Path, **kw: Any) -> S.SweepReport:
    return S.run_sweep(cfg, out, workers=kw.pop("workers", 1), trainer=STUB, progress=False,
                       plots=kw.pop("plots", False), **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An undisturbed run of the tiny configuration."""
    out = tmp_path_factory.mktemp("ref") / "run"
    _sweep(tiny_cfg(), out)
    return out


def _copy(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _edit_mean(p: Path) -> None:
    d = json.loads(p.read_text())
    d["eval"]["means"][0] += 1.0
    p.write_text(json.dumps(d))


def _edit_fingerprint(p: Path) -> None:
    d = json.loads(p.read_text())
    d["config_fingerprint"] = "0" * 16
    p.write_text(json.dumps(d))


DAMAGE = {
    "no result.json": ("result.json", lambda p: p.unlink(), "result.json: missing"),
    "truncated pi_g.npz": ("pi_g.npz", _truncate, r"pi_g.npz: truncated \(\d+ of \d+ bytes\)"),
    "edited mean": ("result.json", _edit_mean, "result.json: (content changed|truncated|grown)"),
    "edited fingerprint": ("result.json", _edit_fingerprint,
                           "result.json: (content changed|truncated|grown)"),
    "corrupt result.json": ("result.json", lambda p: p.write_text("{bad"),
                            "result.json: (content changed|truncated|grown)"),
    "no manifest": ("manifest.json", lambda p: p.unlink(), "manifest.json: missing"),
    "corrupt manifest": ("manifest.json", lambda p: p.write_text("[1, 2"),
                         "manifest.json: not valid JSON"),
    "steps.csv a FIFO": ("steps.csv", lambda p: (p.unlink(), __import__("os").mkfifo(p)),
                         "steps.csv: expected a unit file .*found a FIFO"),
    "unit directory emptied": ("", lambda p: [f.unlink() for f in p.iterdir()],
                               "manifest.json: missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_unit_is_named_left_out_and_recomputed(reference: Path, tmp_path: Path,
                                                       damage: str) -> None:
    fname, spoil, pattern = DAMAGE[damage]
    out = _copy(reference, tmp_path)
    spoil(out / "units" / "k0002_t01" / fname)

    problem = R.check_unit(out, "k0002_t01", tiny_cfg().fingerprint())
    assert problem is not None and problem.startswith("units/k0002_t01/")
    assert re.search(pattern, problem), problem
    # the other units are untouched; the summary is not complete and names the unit
    s = S.aggregate(out)
    assert not s["complete"] and s["units_done"] == 5
    assert list(s["damaged"]) == ["k0002_t01"] and "k=2, t=1" in s["missing"]
    assert {(p["k"], p["train_runs"]) for p in s["per_k"]} == {(1, 2), (2, 1), (3, 2)}
    # resume recomputes exactly that unit and ends with the undisturbed run's files
    rep = _sweep(tiny_cfg(), out, resume=True)
    assert (rep.ran, rep.skipped) == (1, 5)
    assert list(rep.repaired) == ["k0002_t01"] and re.search(pattern, rep.repaired["k0002_t01"])
    assert rep.summary["complete"] and rep.summary["damaged"] == {}
    assert_same_results(reference, out)


def test_write_unit_replaces_a_damaged_unit_and_keeps_an_intact_one(tmp_path: Path) -> None:
    tasks = {(t.k, t.train_index): t for t in R.make_tasks(tiny_cfg(), STUB)}
    out = R.execute_unit(tasks[(1, 0)])
    final = R.write_unit(tmp_path, out)
    # intact: a second write keeps the first
    first = (final / "result.json").read_bytes()
    again = R.UnitOutput(out.name, {**out.files, "result.json": first.replace(b"{", b"{ ", 1)})
    R.write_unit(tmp_path, again)
    assert (final / "result.json").read_bytes() == first
    # damaged (the bug of issue 18: the new result was thrown away): replaced
    (final / "result.json").unlink()
    assert not R.is_finished(tmp_path, out.name)
    R.write_unit(tmp_path, out)
    assert R.is_finished(tmp_path, out.name)
    assert [p.name for p in (tmp_path / "units").iterdir()] == [out.name]  # nothing aside


def test_write_unit_refuses_names_that_are_not_unit_names(tmp_path: Path) -> None:
    task = R.make_tasks(tiny_cfg(), STUB)[0]
    out = R.execute_unit(task)
    for bad in ("../k0001_t00", "/tmp/x", "k1_t0", "", "k0001_t00/.."):
        with pytest.raises(ValueError, match="unit name"):
            R.write_unit(tmp_path, R.UnitOutput(bad, out.files))
    with pytest.raises(ValueError, match="do not match"):
        R.write_unit(tmp_path, R.UnitOutput(task.name, {"result.json": b"{}"}))


def test_result_json_entries_are_checked(tmp_path: Path, reference: Path) -> None:
    """A result.json that parses but lacks what aggregation reads is a named error."""
    good = json.loads((reference / "units" / "k0001_t00" / "result.json").read_text())
    cases = [
        ("eval", lambda d: d.pop("eval")),
        ("eval.means", lambda d: d["eval"].update(means="x")),
        ("timing.train_wall_s", lambda d: d["timing"].update(train_wall_s=True)),
        ("k", lambda d: d.update(k=-1)),
        ("eval", lambda d: d["eval"].update(seeds=d["eval"]["seeds"][:1])),
    ]
    for i, (key, edit) in enumerate(cases):
        d = json.loads(json.dumps(good))
        edit(d)
        ud = tmp_path / f"case{i}"
        ud.mkdir()
        (ud / "result.json").write_text(json.dumps(d))
        with pytest.raises(ValueError, match=rf"result.json: {key}"):
            R.read_unit(ud)
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "result.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="result.json: JSON nested too deeply"):
        R.read_unit(deep)


def test_damaged_config_json_is_named_and_rebuilt_on_resume(reference: Path,
                                                            tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    (out / "config.json").write_text('{"format": "altmarl.run_config", "config": {')
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        S.read_run_config(out)
    # the summary falls back to config.toml, says what is wrong, and is not complete
    s = S.aggregate(out)
    assert s["units_done"] == 6 and not s["complete"]
    assert "config.json" in s["config_problems"][0]
    rep = _sweep(tiny_cfg(), out, resume=True)
    assert rep.ran == 0 and "config.json" in rep.repaired and rep.summary["complete"]
    S.read_run_config(out)  # rebuilt
    assert_same_results(reference, out)


def test_edited_config_json_is_detected(reference: Path, tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    rec = json.loads((out / "config.json").read_text())
    rec["config"]["evaluation"]["rollouts"] = 7
    (out / "config.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="config.json: fingerprint .* was edited"):
        S.read_run_config(out)


def test_both_config_files_damaged(reference: Path, tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    (out / "config.json").write_text("{")
    (out / "config.toml").write_text("[[[")
    with pytest.raises(ValueError, match="cannot read the run's configuration.*config.json"):
        S.aggregate(out)
    # the units say which configuration this is: resuming another one is refused
    with pytest.raises(ValueError, match="damaged .* another configuration"):
        _sweep(tiny_cfg(evaluation={"rollouts": 7}), out, resume=True)
    rep = _sweep(tiny_cfg(), out, resume=True)
    assert rep.ran == 0 and rep.summary["complete"]
    assert_same_results(reference, out)


def test_sweep_never_ends_complete_over_a_unit_damaged_while_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit that is damaged right after it was written (a failing disk) makes the sweep
    raise, naming the unit; a resume then completes it."""
    real = R.write_unit

    def spoiling_write(run_dir: Any, out: R.UnitOutput, fingerprint: Any = None) -> Path:
        final = real(run_dir, out, fingerprint)
        if out.name == "k0003_t00":
            _truncate(final / "pi_l.npz")
        return final

    monkeypatch.setattr(S, "write_unit", spoiling_write)
    with pytest.raises(S.SweepIncomplete, match=r"incomplete \(5/6 units\): damaged: "
                                                r"units/k0003_t00/pi_l.npz: truncated"):
        _sweep(tiny_cfg(), tmp_path / "run")
    monkeypatch.undo()
    rep = _sweep(tiny_cfg(), tmp_path / "run", resume=True)
    assert rep.ran == 1 and rep.summary["complete"]


def test_plot_cli_names_a_damaged_unit_and_plots_the_rest(reference: Path,
                                                          tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    (out / "units" / "k0001_t00" / "result.json").write_text("{bad")
    (out / "units" / "k0003_t00" / "history.csv").unlink()
    res = subprocess.run([*ALTMARL_CMD, "plot", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "DAMAGED" in text and "units/k0001_t00/result.json" in text
    assert "units/k0003_t00/history.csv: missing" in text
    assert "(4/6 units" in text
    s = read_summary(out)
    assert not s["complete"] and sorted(s["damaged"]) == ["k0001_t00", "k0003_t00"]
    assert (out / "plots" / "reward_vs_k.png").is_file()


POOL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_experiments import STUB, tiny_cfg
from altmarl.experiments import sweep as S
from altmarl.locking import DirectoryLock, LockHeld, holds_lock
from altmarl.rundir import read_summary

def boom(o):
    raise RuntimeError("on_unit failed")

if __name__ == "__main__":
    try:
        S.run_sweep(tiny_cfg(), Path({out!r}), workers=2, trainer=STUB, progress=False,
                    plots=False, on_unit=boom)
    except RuntimeError as exc:
        print("raised:", exc)
"""


def test_error_in_the_driver_stops_the_pool_without_stray_tracebacks(tmp_path: Path) -> None:
    """An error while handling a finished unit stops the process pool; no
    "InvalidStateError: CANCELLED" traceback from the executor's thread (issue 18)."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT.format(tests=str(Path(__file__).parent),
                                         out=str(tmp_path / "run")))
    for _ in range(3):  # the race needed several tries to show
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             timeout=300)
        assert "raised: on_unit failed" in res.stdout, res.stderr
        assert "InvalidStateError" not in res.stderr and "Traceback" not in res.stderr, \
            res.stderr


# ---------------------------------------------------------------------------
# one driver per run directory: the lock
# ---------------------------------------------------------------------------

HOLDER = """
import sys, time
from altmarl.locking import DirectoryLock
lock = DirectoryLock(sys.argv[1], "driver.lock", "run directory").acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _start_holder(run_dir: Path) -> subprocess.Popen[str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_driver_is_refused_and_a_killed_holder_frees_the_lock(
        reference: Path, tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    (out / "units" / "k0001_t00" / "pi_l.npz").unlink()
    stale = out / "units" / ".k0001_t00.tmp-otherhost-1-abc"
    stale.mkdir()
    holder = _start_holder(out)
    try:
        info = json.loads((out / "driver.lock").read_text())
        assert info["pid"] == holder.pid and info["host"] and info["started"]
        with pytest.raises(LockHeld, match=rf"in use by another altmarl process \(pid "
                                           rf"{holder.pid} on host .*, started "):
            _sweep(tiny_cfg(), out, resume=True)
        # start-up cleanup never runs under someone else's lock
        with pytest.raises(LockHeld):
            R.clean_stale(out)
        assert stale.is_dir()
        # the command line: exit status 2 and a message naming the holder
        cfg_path = tmp_path / "tiny.toml"
        cfg_path.write_text((out / "config.toml").read_text())
        res = subprocess.run([*ALTMARL_CMD, "sweep", str(cfg_path), "--resume", "--out",
                              str(out)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"pid {holder.pid}" in " ".join(res.stderr.split())
        assert "Traceback" not in res.stderr
    finally:
        holder.kill()  # SIGKILL: no clean-up in the holder
        holder.wait()
    assert (out / "driver.lock").is_file()  # left behind by the killed holder ...
    rep = _sweep(tiny_cfg(), out, resume=True)  # ... and simply taken over
    assert rep.ran == 1 and rep.summary["complete"] and not stale.exists()
    assert not (out / "driver.lock").exists()  # removed on release
    assert_same_results(reference, out)


def test_lock_is_exclusive_within_a_process_and_refuses_odd_lock_files(tmp_path: Path) -> None:
    with DirectoryLock(tmp_path, "driver.lock") as lock:
        assert lock.held and holds_lock(tmp_path)
        with pytest.raises(LockHeld, match="already holds"):
            DirectoryLock(tmp_path, "driver.lock").acquire()
        assert R.clean_stale(tmp_path) == 0  # runs under the caller's lock
    assert not holds_lock(tmp_path) and not (tmp_path / "driver.lock").exists()
    import os

    os.mkfifo(tmp_path / "fifo.lock")
    with pytest.raises(ValueError, match="not a regular file"):
        DirectoryLock(tmp_path, "fifo.lock").acquire()
    (tmp_path / "link.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="symbolic link"):
        DirectoryLock(tmp_path, "link.lock").acquire()
    assert not (tmp_path / "elsewhere").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        _sweep(tiny_cfg(), tmp_path / "file")


def test_two_concurrent_drivers_one_runs_one_is_refused(tmp_path: Path) -> None:
    """Two `altmarl sweep` of one directory started together: one computes every unit, the
    other is refused with exit status 2 naming the first; nothing is computed twice."""
    import tomli_w

    from test_experiments import REAL

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(tomli_w.dumps({**REAL, "sweep": {"k": [1, 2], "train_seeds": 1}}))
    out = tmp_path / "run"
    cmd = [*ALTMARL_CMD, "sweep", str(cfg_path), "--workers", "1", "--out", str(out),
           "--resume"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    ran = [int(m.group(1)) for r in results for m in [re.search(r"ran (\d+) unit", r[1])] if m]
    assert sum(ran) == 2, results  # nothing computed twice
    if codes == [0, 2]:  # the usual case: they overlapped
        refused = next(r for r in results if r[0] == 2)
        assert "in use by another altmarl process (pid" in " ".join(refused[2].split())
    else:  # the first one finished before the second started
        assert codes == [0, 0], results
    assert read_summary(out)["complete"]
