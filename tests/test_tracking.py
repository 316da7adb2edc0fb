"""Experiment tracking (issue 21): the callback interface, the four backends read back,
the ``--track`` option, and numbers that do not depend on tracking."""

from __future__ import annotations

import glob
import json
import math
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import altmarl as am
from altmarl.cli import app
from altmarl.io import read_csv_rows
from altmarl.tracking import (
    DECISION_CODES,
    BaseTracker,
    CSVTracker,
    MLflowTracker,
    TensorBoardTracker,
    Trackers,
    WandbTracker,
    as_trackers,
    check_kinds,
    flatten_params,
    proposal_metrics,
)

runner = CliRunner()


def _run(game, callbacks=None):
    return am.alternating_marl(game, k=2, seed=3, sweeps=3, eval_rollouts=20, eval_horizon=30,
                               progress=False, callbacks=callbacks)


class Recorder(BaseTracker):
    """Keeps every primitive call (a tracker written against the base class)."""

    kind = "recorder"

    def __init__(self) -> None:
        self.scalars: list[tuple[dict[str, float], int, str]] = []
        self.hparams: dict[str, object] = {}
        self.images: list[tuple[str, bytes]] = []
        self.closed = 0

    def log_scalars(self, values, step, axis="step"):
        self.scalars.append((dict(values), step, axis))

    def log_hparams(self, flat):
        self.hparams.update(flat)

    def log_image(self, name, png):
        self.images.append((name, png))

    def close(self):
        self.closed += 1


def _tb_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(logdir, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_tracking_changes_no_number_and_sees_every_proposal(tiny_game, tmp_path):
    plain = _run(tiny_game)
    rec, csv = Recorder(), CSVTracker(tmp_path / "csv")
    tracked = _run(tiny_game, callbacks=[rec, csv])
    assert tracked.value.mean == plain.value.mean and tracked.value.stderr == plain.value.stderr
    assert [h.to_dict()["v_new"] for h in tracked.history] == \
        [h.to_dict()["v_new"] for h in plain.history]
    np.testing.assert_array_equal(tracked.pi_g.actions, plain.pi_g.actions)
    np.testing.assert_array_equal(tracked.pi_l.table, plain.pi_l.table)
    # parameters before the proposals: the run's config, flattened
    assert rec.hparams["k"] == 2 and rec.hparams["seed"] == 3
    # one scalar call per proposal at step 2 (sweep - 1) + player, then the final numbers
    steps = [(s, axis) for _, s, axis in rec.scalars]
    assert steps[:-1] == [(2 * (h.sweep - 1) + (h.player == "local"), "proposal")
                          for h in tracked.history]
    for (vals, _, _), h in zip(rec.scalars, tracked.history, strict=False):
        assert vals[f"{h.player}/v_new"] == h.v_new
        assert vals[f"{h.player}/decision"] == DECISION_CODES[h.decision]
        assert vals["played_value"] == (h.v_new if h.accepted else h.v_old)
        if h.se_diff is not None:
            assert vals[f"{h.player}/se_diff"] == h.se_diff
            assert vals[f"{h.player}/eta"] == h.eta
    final = rec.scalars[-1][0]
    assert final["final/value"] == tracked.value.mean
    assert final["final/converged"] == float(tracked.converged)
    if tracked.tolerance is not None:
        assert final["final/nash_gap_bound"] == tracked.tolerance
    # the CSV file holds the same proposals, decisions as text
    rows = read_csv_rows(tmp_path / "csv" / "proposals.csv")
    assert [r["decision"] for r in rows] == [h.decision for h in tracked.history]
    assert [r["v_new"] for r in rows] == pytest.approx([h.v_new for h in tracked.history],
                                                        rel=1e-15)
    assert json.loads((tmp_path / "csv" / "final.json").read_text())["value"] == \
        tracked.value.mean


def test_tensorboard_event_files_read_back(tiny_game, tmp_path):
    import matplotlib.pyplot as plt

    with TensorBoardTracker(tmp_path / "tb") as tb:
        res = _run(tiny_game, callbacks=tb)
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        tb.log_figure("curve", fig)
        plt.close(fig)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = _tb_scalars(str(tmp_path / "tb"))
    glob_recs = [h for h in res.history if h.player == "global"]
    got = scalars["global/v_new"]
    assert [s for s, _ in got] == [2 * (h.sweep - 1) for h in glob_recs]
    assert [v for _, v in got] == pytest.approx([h.v_new for h in glob_recs], rel=1e-6)
    assert scalars["final/value"][0][1] == pytest.approx(res.value.mean, rel=1e-6)
    ea = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "tensors": 0})
    ea.Reload()
    img = ea.Images("figures/curve")[0]
    assert img.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and img.width == 200
    assert "_hparams_/session_start_info" in ea.Tags()["tensors"]
    text = ea.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "k = 2" in text and "seed = 3" in text


def test_mlflow_store_read_back(tiny_game, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ml = MLflowTracker("tiny", root=tmp_path)
    res = _run(tiny_game, callbacks=[ml])
    ml.log_figure("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    ml.close()
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(ml.run_id)
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.data.params["k"] == "2" and run.data.params["seed"] == "3"
    hist = client.get_metric_history(ml.run_id, "local/v_new")
    loc = [h for h in res.history if h.player == "local"]
    assert sorted((m.step, m.value) for m in hist) == \
        [(2 * (h.sweep - 1) + 1, pytest.approx(h.v_new, rel=1e-12)) for h in loc]
    assert run.data.metrics["final/value"] == pytest.approx(res.value.mean, rel=1e-12)
    arts = [a.path for a in client.list_artifacts(ml.run_id, "figures")]
    assert arts == ["figures/png.png"]


def test_wandb_offline_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    w = WandbTracker(tmp_path, "offline-test")
    w.log_params({"algorithm": {"m": 30}})
    w.on_proposal({"sweep": 1, "player": "global", "v_new": 1.25, "decision": "initial",
                   "accepted": True}, unit="k0002_t00")
    w.on_final({"value": 2.5})
    assert "offline" in w.where()
    w.close()
    import wandb

    wandb.teardown()  # stop the W&B service of this process: everything is on disk
    keys = (b"k0002_t00/global/v_new", b"k0002_t00/proposal", b"algorithm.m", b"final/value")
    data = b""
    for _ in range(60):  # the service writes the run file itself: give a loaded machine time
        files = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
        data = open(files[0], "rb").read() if len(files) == 1 else b""
        if all(key in data for key in keys):
            break
        time.sleep(0.5)
    assert len(files) == 1, files  # offline: nothing sent, one local run file
    missing = [key for key in keys if key not in data]
    assert not missing, (missing, len(data))


def test_cli_track_csv_and_tensorboard(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", "random_small", "--k", "2", "--out", str(out),
                            "--track", "csv", "--track", "tensorboard", "--track", "csv"])
    assert r.exit_code == 0, r.output
    assert "tracking (csv)" in r.output and "tensorboard --logdir" in r.output
    rows = read_csv_rows(out / "tracking" / "proposals.csv")
    hist = read_csv_rows(out / "units" / "k0002_t00" / "history.csv")
    assert [r["unit"] for r in rows] == ["k0002_t00"] * len(hist)
    assert [r["v_new"] for r in rows] == [h["v_new"] for h in hist]
    units = read_csv_rows(out / "tracking" / "units.csv")
    result = json.loads((out / "units" / "k0002_t00" / "result.json").read_text())
    assert units[0]["value"] == result["eval"]["mean"]
    assert units[0]["nash_gap"] == result["nash_gap"]["nash_gap"]
    params = json.loads((out / "tracking" / "params.json").read_text())
    assert params["sweep.k"] == "[2]" and params["algorithm.m"] == 10
    figs = sorted(p.name for p in (out / "tracking" / "figures").iterdir())
    assert figs == sorted(p.name for p in (out / "plots").glob("*.png"))
    scalars = _tb_scalars(str(out / "tensorboard"))
    assert scalars["per_k/value"] == [(2, pytest.approx(result["eval"]["mean"], rel=1e-6))]
    assert len(scalars["k0002_t00/played_value"]) == len(hist)


def test_cli_track_rejects_unknown_kind_before_work(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", "random_small", "--k", "2", "--out", str(out),
                            "--track", "tensorbord"])
    assert r.exit_code == 2
    assert "--track" in r.output and "did you mean 'tensorboard'" in r.output
    assert not out.exists()


def test_check_kinds_and_as_trackers():
    assert check_kinds(["csv", "mlflow", "csv"]) == ["csv", "mlflow"]
    with pytest.raises(ValueError, match="--track = 'x'"):
        check_kinds(["x"])
    with pytest.raises(TypeError, match=r"callbacks\[1\]: int is not a tracker"):
        as_trackers([Recorder(), 3])
    one = Recorder()
    ts = as_trackers(one)
    assert isinstance(ts, Trackers) and list(ts) == [one]
    ts.close()
    assert one.closed == 1
    assert not as_trackers(None)


def test_flatten_params_and_proposal_metrics():
    flat = flatten_params({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None, "f": True})
    assert flat == {"a.b": 1, "a.c.d": "[1, 2]", "e": "None", "f": True}
    # a history.csv row (strings and blanks) gives the same numbers as the record
    step, player, m = proposal_metrics({"sweep": "2", "player": "local", "v_new": "1.5",
                                        "v_old": "1.0", "se_diff": "", "decision": "reject",
                                        "accepted": "False", "eta": "nan"})
    assert (step, player) == (3, "local")
    assert m["diff"] == 0.5 and m["decision"] == -1.0 and m["accepted"] == 0.0
    assert m["played_value"] == 1.0 and "se_diff" not in m and "eta" not in m
    assert all(math.isfinite(v) for v in m.values())
