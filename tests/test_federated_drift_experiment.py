"""The drifting-federation experiment (docs/federated.md): configuration, the plug-in
server, summaries with paired intervals, and ``altmarl federated run / plot`` end to end
in the quick mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from altmarl.cli import app
from altmarl.federated.drift import DriftConfig, make_drift_data
from altmarl.federated.drift_experiment import (
    DriftExperiment,
    paired,
    plugin_policy,
    read_drift_summary,
    summarize,
)
from altmarl.federated.simulator import load_digits_arrays
from altmarl.rundir import run_dir_kind


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="ks"):
        DriftExperiment(fed=DriftConfig(n_clients=10), ks=(1, 20))
    with pytest.raises(ValueError, match="local_start"):
        DriftExperiment(local_start="greedy")
    with pytest.raises(ValueError, match="eval_seeds"):
        DriftExperiment(eval_seeds=1)
    exp = DriftExperiment.quick(3)
    assert DriftExperiment.from_json(exp.to_json()) == exp and exp.seed == 3
    assert DriftExperiment().ks == (1, 2, 5, 10, 20, 50)


def test_plugin_server_offers_the_largest_gain():
    cfg = DriftConfig(n_clients=10, pilot_clients=4, pilot_rounds=5)
    data = make_drift_data(cfg, 0, load_digits_arrays())
    pol = plugin_policy(data, 3)
    M, C = cfg.n_models, cfg.regimes
    h = np.zeros((3, cfg.n_sl))
    h[0, 2 * M + C] = 3              # three clients of regime 2 holding the global model
    h[1, 2 * M + 2] = 3              # three clients already holding their cluster model
    h[1, 1 * M + C] = 0
    h[2, 0 * M + 3] = 2              # two clients of regime 0 holding cluster 3 ...
    h[2, 1 * M + 1] = 1              # ... and one served client
    a = pol.act(np.zeros(3, dtype=np.int64), h)
    assert a[0] == 2
    assert a[2] in (0, C)            # cluster 0 or the global model, whichever gains more
    gain0 = data.published[0, 0] - data.published[3, 0]
    gainG = data.published[C, 0] - data.published[3, 0]
    assert a[2] == (0 if gain0 >= gainG else C)
    # nobody gains from anything: ties go to model 0
    assert a[1] == 0


def test_paired_differences_and_summary():
    rows = []
    for s in range(4):
        for name, fam, k, v in (("FedAvg full", "fedavg", None, 1.0 + s),
                                ("fixed offer=a", "fixed", None, 2.0 + s),
                                ("fixed offer=b", "fixed", None, 0.5 + s),
                                ("learned k=2", "learned", 2, 2.5 + s + 0.1 * (s % 2)),
                                ("FedAvg k=2", "fedavg", 2, 1.5 + s)):
            rows.append({"method": name, "family": fam, "k": k, "seed": s, "return": v,
                         "accuracy": 0.5, "transfers_per_round": 1.0, "polls_per_round": 0.0})
    out = {r["method"]: r for r in summarize(DriftExperiment.quick(), rows)}
    lrn = out["learned k=2"]
    assert lrn["best_fixed"] == "fixed offer=a"
    assert lrn["vs_best_fixed"]["mean"] == pytest.approx(0.55)
    assert lrn["vs_fedavg_k"]["mean"] == pytest.approx(1.05)
    lo, hi = lrn["vs_fedavg_full"]["ci95"]
    assert lo < 1.55 < hi and hi - lo < 0.2   # paired: the seed effect cancels
    assert paired([1.0, 2.0], [1.0, 2.0])["std"] == 0.0


def test_cli_quick_run_and_plot(tmp_path: Path):
    out = tmp_path / "drift"
    runner = CliRunner()
    res = runner.invoke(app, ["federated", "run", "--quick", "--ks", "1,2", "--out", str(out),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    for f in ("summary.json", "summary.csv", "episodes.csv", "curves.csv", "learning.csv",
              "models.json", "config.json", "value_vs_k.png", "pareto.png", "information.png",
              "curves.png", "policies/k1_pi_g.pt"):
        assert (out / f).exists(), f
    assert run_dir_kind(out) == "federated"
    rows = {r["method"]: r for r in read_drift_summary(out)}
    assert {"learned k=1", "learned k=2", "FedAvg full", "FedAvg k=2", "plug-in full info",
            "fixed offer=global", "learned k=2, full info"} <= set(rows)
    n = DriftExperiment.quick().fed.n_clients
    assert rows["FedAvg full"]["transfers_per_round"] == 2 * n
    assert rows["FedAvg k=2"]["transfers_per_round"] == 4
    assert rows["learned k=2"]["polls_per_round"] == 2
    assert rows["fixed offer=global"]["polls_per_round"] == 0
    assert rows["fixed offer=global"]["transfers_per_round"] == 0   # everyone holds it
    assert rows["FedAvg full"]["vs_fedavg_full"]["mean"] == 0.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["seeds"] == 3
    res = runner.invoke(app, ["federated", "plot", str(out)])
    assert res.exit_code == 0 and "learned k=1" in res.output, res.output
    res = runner.invoke(app, ["federated", "run", "--quick", "--upload-cost", "0.3", "--out",
                              str(tmp_path / "bad")])
    assert res.exit_code == 2 and "--experiment estimated" in res.output
    res = runner.invoke(app, ["federated", "run", "--experiment", "nope"])
    assert res.exit_code == 2 and "expected one of 'drift', 'estimated'" in res.output


def test_build_experiment_applies_the_given_options_only(tmp_path: Path):
    """``altmarl federated run``'s settings: quick or default with --seed, --ks, options
    that were given replace their fields (None keeps the field); --config keeps its seed."""
    from altmarl.cli.federated import build_experiment

    base = DriftExperiment.quick(5)
    exp = build_experiment(DriftExperiment, None, True, 5, "1,3", {"m": 4, "local_start": None},
                           {"n_clients": None, "transfer_cost": 0.25})
    assert exp.seed == 5 and exp.ks == (1, 3) and exp.m == 4
    assert exp.local_start == base.local_start and exp.fed.n_clients == base.fed.n_clients
    assert exp.fed.transfer_cost == 0.25
    cfg = tmp_path / "exp.json"
    cfg.write_text(json.dumps(base.to_json()))
    again = build_experiment(DriftExperiment, cfg, False, 9, None, {}, {})
    assert again == base  # the file's seed, not --seed
