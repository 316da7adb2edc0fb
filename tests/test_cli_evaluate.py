"""``altmarl evaluate`` and ``altmarl compare`` (saved policies, common random numbers,
Student-t intervals; :mod:`altmarl.experiments.assess`)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from typer.testing import CliRunner

from altmarl.cli import app
from altmarl.experiments.assess import compare_rows, student_interval

runner = CliRunner()

TINY: dict[str, Any] = {
    "name": "tiny-eval",
    "seed": 3,
    "env": {"name": "random", "params": {"n_sg": 2, "n_ag": 2, "n_sl": 2, "n_al": 2, "n": 8,
                                         "seed": 4}},
    "algorithm": {"sweeps": 2, "m": 4, "local_solver": "induced-vi", "eval_rollouts": 8,
                  "eval_horizon": 10},
    "evaluation": {"seeds": 3, "rollouts": 6, "horizon": 12},
    "sweep": {"k": [2], "train_seeds": 1},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("eval")
    cfg = tmp / "c.toml"
    cfg.write_text(tomli_w.dumps(TINY))
    out = tmp / "run"
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _value(output: str, prefix: str = "value: ") -> float:
    m = re.search(re.escape(prefix) + r"(-?\d+\.\d+)", output)
    assert m, output
    return float(m.group(1))


def test_student_interval_matches_scipy() -> None:
    from scipy import stats

    x = [1.0, 2.0, 4.0, 3.5]
    s = student_interval(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert s["ci95"] == pytest.approx([lo, hi])
    assert student_interval([1.0])["ci95"] is None


def test_compare_rows_pair_by_seed() -> None:
    rows = [{"label": "a", "means": [1.0, 2.0, 3.0]}, {"label": "b", "means": [1.5, 2.4, 3.6]}]
    out = compare_rows(rows)
    assert out[0]["diff"] is None
    # the paired difference has the spread of the differences, not of the values
    assert out[1]["diff"]["mean"] == pytest.approx(0.5)
    assert out[1]["diff"]["std"] == pytest.approx(np.std([0.5, 0.4, 0.6], ddof=1))


def test_evaluate_a_run_directory_repeats_its_summary(run_dir: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(run_dir)])
    assert res.exit_code == 0, res.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert _value(res.output) == pytest.approx(summary["per_k"][0]["mean"], abs=0.006)
    assert "95% interval" in res.output and "uniform play, same seeds" in res.output
    assert "the run's own evaluation protocol" in res.output


def test_evaluate_options_change_the_protocol(run_dir: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(run_dir), "--seeds", "2", "--rollouts", "4",
                              "--horizon", "5", "--n", "20"])
    assert res.exit_code == 0, res.output
    assert "(n = 20); 2 evaluation seeds x 4 rollouts x horizon 5" in res.output


def test_compare_is_paired_and_consistent(run_dir: Path, tmp_path: Path,
                                          monkeypatch: Any) -> None:
    (tmp_path / "my_dispatch.py").write_text(
        "import altmarl as am\n"
        "def zero(game):\n"
        "    return am.GlobalPolicy.constant(game, 1, 0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_dispatch", raising=False)
    res = runner.invoke(app, ["compare", str(run_dir), "my_dispatch:zero", str(run_dir)])
    assert res.exit_code == 0, res.output
    values = [float(v) for v in re.findall(r"value (-?\d+\.\d+)", res.output)]
    assert len(values) == 3 and values[0] == values[2]
    diffs = re.findall(r"([BC]) - A: ([+-]\d+\.\d+)", res.output)
    assert [d[0] for d in diffs] == ["B", "C"]
    assert float(diffs[0][1]) == pytest.approx(values[1] - values[0], abs=0.011)
    assert float(diffs[1][1]) == 0.0  # the same policies with the same seeds: no difference
    assert "paired standard error" in res.output


def test_compare_with_uniform_play_uses_one_simulator(run_dir: Path) -> None:
    res = runner.invoke(app, ["compare", str(run_dir), "uniform", "--seeds", "2"])
    assert res.exit_code == 0, res.output
    assert "per-agent simulator" in res.output and "B - A:" in res.output


@pytest.mark.parametrize("args, parts", [
    (["evaluate", "uniform"], ["needs a game", "--env"]),
    (["evaluate", "nowhere"], ["not a run directory", "module:function"]),
    (["compare", "uniform"], ["at least two policy sources"]),
    (["evaluate", "uniform", "--env", "warehouse", "--sampling", "x"], ["--sampling", "JSON"]),
    (["evaluate", "uniform", "--env", "warehous"], ["did you mean 'warehouse'?"]),
    (["evaluate", "uniform", "--env", "warehouse", "--seeds", "1"], ["--seeds"]),
])
def test_evaluate_and_compare_fail_cleanly(args: list[str], parts: list[str]) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for part in parts:
        assert part in res.output, (part, res.output)


def test_evaluate_refuses_other_run_directory_kinds(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"format": "altmarl-continuous-sweep/1"}))
    res = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert res.exit_code == 2 and "altmarl continuous sweep" in res.output
