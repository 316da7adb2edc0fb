"""The `altmarl logs` commands (record, info, learn, convergence)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from altmarl.cli import app

from .helpers import ENV


def test_cli_record_info_learn(tmp_path) -> None:
    runner = CliRunner()
    sets = [x for kv in ENV.items() for x in ("--set", f"{kv[0]}={kv[1]}")]
    out = tmp_path / "logs" / "d"
    res = runner.invoke(app, ["logs", "record", "random", "--k", "3", "--episodes", "20",
                              "--horizon", "20", "--out", str(out), "--no-progress",
                              "--noise", "uniform", "--noise-l", "0.2", *sets])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "logs" / "d.csv").exists() and (tmp_path / "logs" / "d.json").exists()
    res = runner.invoke(app, ["logs", "info", str(out) + ".csv"])
    assert res.exit_code == 0 and "valid" in res.output and "400 transitions" in res.output
    res = runner.invoke(app, ["logs", "learn", str(out) + ".json", "--env", "random", *sets,
                              "--compare", "--out", str(tmp_path / "pol.npz"),
                              "--no-progress", "--epochs", "2"])
    assert res.exit_code == 0, res.output
    assert "q_err_sup" in res.output and (tmp_path / "pol.npz").exists()
    # bad data: a clear error and exit code 2
    (tmp_path / "logs" / "d.csv").write_text("episode,t\n0,0\n")
    res = runner.invoke(app, ["logs", "info", str(out) + ".csv"])
    assert res.exit_code == 2 and "SHA-256" in res.output
    res = runner.invoke(app, ["logs", "record", "random", "--k", "3", "--out", str(out),
                              "--noise", "uniform", *sets])
    assert res.exit_code == 2 and "--noise-g" in res.output


def test_cli_convergence_table(tmp_path) -> None:
    runner = CliRunner()
    sets = [x for kv in ENV.items() for x in ("--set", f"{kv[0]}={kv[1]}")]
    res = runner.invoke(app, ["logs", "convergence", "random", "--k", "3", *sets, "--sizes",
                              "500,4000", "--horizon", "50", "--json",
                              str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "t.json").read_text())
    assert [r["transitions"] for r in rows] == [500, 4000]
    assert rows[1]["q_err_sup"] < rows[0]["q_err_sup"]
