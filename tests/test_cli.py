"""The experiment commands of the ``altmarl`` CLI (SPEC 10): run, sweep, reproduce, plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner

from altmarl.cli import app

runner = CliRunner()

TINY: dict[str, Any] = {
    "name": "tiny-cli",
    "seed": 1,
    "env": {"name": "random", "params": {"n_sg": 2, "n_ag": 2, "n_sl": 2, "n_al": 2, "n": 6,
                                         "seed": 2}},
    "algorithm": {"sweeps": 2, "m": 4, "local_solver": "induced-vi", "eval_rollouts": 8,
                  "eval_horizon": 10},
    "evaluation": {"seeds": 2, "rollouts": 4, "horizon": 10},
    "sweep": {"k": [1, 2], "train_seeds": 1},
}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(tomli_w.dumps(data))
    return p


def test_help_lists_experiment_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("run", "sweep", "reproduce", "plot"):
        assert cmd in res.output
    res = runner.invoke(app, ["sweep", "--help"])
    for opt in ("--backend", "--workers", "--address", "--resume", "--out"):
        assert opt in res.output


def test_run_from_config_writes_a_run_directory(tmp_path: Path) -> None:
    cfg = _write(tmp_path, TINY)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(cfg), "--k", "2", "--seed", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for f in ("config.toml", "config.json", "summary.json", "metrics.csv", "per_k.csv",
              "units/k0002_t00/pi_g.npz", "units/k0002_t00/pi_l.npz",
              "units/k0002_t00/history.csv", "plots/occupancy.png", "plots/alternation.png"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    assert s["kind"] == "run" and s["ks"] == [2] and s["complete"]
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 5
    assert "plot:" in res.output and "occupancy.png" in res.output
    # running it again re-uses the finished unit (same configuration, same numbers)
    again = runner.invoke(app, ["run", str(cfg), "--k", "2", "--seed", "5", "--out", str(out)])
    assert again.exit_code == 0 and "reused 1" in again.output
    # ... but a different configuration is refused
    other = runner.invoke(app, ["run", str(cfg), "--k", "1", "--seed", "5", "--out", str(out)])
    assert other.exit_code == 2 and "different configuration" in other.output


def test_run_needs_one_k(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", str(_write(tmp_path, TINY)), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--k" in res.output
    res = runner.invoke(app, ["run", "no-such-env"])
    assert res.exit_code == 2 and "not a configuration file" in res.output


def test_sweep_errors_name_the_key(tmp_path: Path) -> None:
    bad = _write(tmp_path, {**TINY, "algorithm": {**TINY["algorithm"], "sweps": 3}})
    res = runner.invoke(app, ["sweep", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "algorithm.sweps" in res.output and "unknown key" in res.output
    good = _write(tmp_path, TINY, "good.toml")
    res = runner.invoke(app, ["sweep", str(good), "--backend", "dask", "--out",
                              str(tmp_path / "o2")])
    assert res.exit_code == 2 and "backend" in res.output
    assert not (tmp_path / "o2").exists()  # refused before anything was written


def test_sweep_resume_and_plot(tmp_path: Path) -> None:
    cfg = _write(tmp_path, TINY)
    out = tmp_path / "sw"
    res = runner.invoke(app, ["sweep", str(cfg), "--workers", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "ran 2 unit(s), reused 0" in res.output
    for f in ("reward_vs_k.png", "runtime_vs_k.png", "mode_mismatch_vs_k.png", "occupancy.png"):
        assert (out / "plots" / f).is_file()
    res = runner.invoke(app, ["sweep", str(cfg), "--out", str(out)])
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, ["sweep", str(cfg), "--resume", "--out", str(out)])
    assert res.exit_code == 0 and "ran 0 unit(s), reused 2" in res.output
    for p in (out / "plots").iterdir():
        p.unlink()
    res = runner.invoke(app, ["plot", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "plots" / "reward_vs_k.png").is_file()
    res = runner.invoke(app, ["plot", str(tmp_path)])
    assert res.exit_code == 2 and "not an altmarl run directory" in res.output


def test_reproduce_rejects_unknown_experiment() -> None:
    res = runner.invoke(app, ["reproduce", "factory"])
    assert res.exit_code == 2 and "warehouse" in res.output
    res = runner.invoke(app, ["reproduce", "warehouse", "--train-seeds", "0"])
    assert res.exit_code == 2 and "train_seeds" in res.output


@pytest.mark.slow
def test_reproduce_quick(tmp_path: Path) -> None:
    out = tmp_path / "q"
    res = runner.invoke(app, ["reproduce", "warehouse", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] and s["kind"] == "reproduce"
    assert "authors" in res.output


def test_run_warehouse_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "warehouse"])  # the README quick start
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "warehouse-k10-seed0" / "plots" / "occupancy.png").is_file()
    assert "plot: runs/warehouse-k10-seed0/plots/occupancy.png" in res.output


def test_version_and_envs() -> None:
    from altmarl import __version__, envs

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output == f"altmarl {__version__}\n"
    assert __version__ != "0+unknown"  # read from the installed metadata (test_packaging.py)
    res = runner.invoke(app, ["envs"])
    assert res.exit_code == 0
    # one line per environment: name, description; then its parameters with defaults
    names = [line.split(":")[0] for line in res.output.splitlines()
             if line and not line.startswith((" ", "use:"))]
    assert names == envs.names()
    assert "warehouse: the paper's tabular warehouse" in res.output
    assert "parameters: n=1000, gamma=0.95, zones=5, alpha=0.3" in res.output


def test_python_dash_m_altmarl() -> None:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "altmarl", "--version"], capture_output=True,
                         text=True, check=True)
    assert res.stdout.strip() == "altmarl 0.1.0"
    res = subprocess.run([sys.executable, "-m", "altmarl", "envs"], capture_output=True,
                         text=True, check=True)
    assert "warehouse:" in res.stdout.split()


def test_every_command_group_is_registered() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("envs", "run", "sweep", "reproduce", "plot", "theory", "logs", "continuous",
                "federated", "tune", "--version"):
        assert cmd in res.output, cmd
