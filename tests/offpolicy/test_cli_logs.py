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


def test_cli_evaluate(tmp_path) -> None:
    runner = CliRunner()
    sets = [x for kv in ENV.items() for x in ("--set", f"{kv[0]}={kv[1]}")]
    out = tmp_path / "d"
    res = runner.invoke(app, ["logs", "record", "random", "--k", "3", "--episodes", "200",
                              "--horizon", "20", "--out", str(out), "--no-progress", *sets])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["logs", "evaluate", str(out) + ".csv", "--policy", "sample-mode",
                              "--k", "3", "--env", "random", *sets, "--bootstrap", "20",
                              "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "e.json").read_text())
    assert [r["method"] for r in rows] == ["fqe", "is", "wis"]
    assert "95% interval" in res.output and "effective sample size" in res.output
    lo, hi = rows[0]["ci95"]
    assert lo <= rows[0]["value"] <= hi
    # a policy file (no --env): the spaces are checked against the log's
    import altmarl as am

    game = am.envs.make("random", **ENV)
    am.GlobalPolicy.constant(game, 3, 1).save(tmp_path / "c.npz", game)
    res = runner.invoke(app, ["logs", "evaluate", str(out) + ".json", "--policy",
                              str(tmp_path / "c.npz"), "--method", "fqe", "--bootstrap", "0"])
    assert res.exit_code == 0 and " fqe:" in res.output and "no interval" in res.output
    am.GlobalPolicy.constant(game, 2, 1).save(tmp_path / "c2.npz", game)
    res = runner.invoke(app, ["logs", "evaluate", str(out) + ".json", "--policy",
                              str(tmp_path / "c2.npz")])
    assert res.exit_code == 2 and "k = 3" in res.output
    res = runner.invoke(app, ["logs", "evaluate", str(out) + ".json", "--policy",
                              str(tmp_path / "c.npz"), "--method", "dr"])
    assert res.exit_code == 2 and "--method" in res.output
