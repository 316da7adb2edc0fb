"""The robustness study of docs/sampling.md (examples/sampling_study.py), quick mode."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

import altmarl as am

ROOT = Path(__file__).resolve().parent.parent


def load_study():
    spec = importlib.util.spec_from_file_location("sampling_study",
                                                  ROOT / "examples" / "sampling_study.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_reweighted_policy():
    study = load_study()
    game = am.envs.make("warehouse", n=20, zones=3)
    pi = am.GlobalPolicy.sample_mode(game, 4)
    same = study.reweighted_policy(pi, am.sampling.Weighted((2.0, 2.0, 2.0), 4))
    np.testing.assert_array_equal(same.actions, pi.actions)
    w = am.sampling.Weighted((3.0, 1.0, 1.0), 4)
    rw = study.reweighted_policy(pi, w)
    assert rw.sampling == w
    # h = (3, 1, 0) under w = (3, 1, 1): proportions (1, 1, 0) -> (2, 2, 0); mode tie -> 0
    h = np.array([3, 1, 0])
    assert rw.act(0, h) == pi.act(0, np.array([2, 2, 0]))
    # h = (0, 0, 4): nothing to correct
    assert rw.act(1, np.array([0, 0, 4])) == 2


def test_study_quick(tmp_path):
    study = load_study()
    out = tmp_path / "res.json"
    assert study.main(["--quick", "--out", str(tmp_path), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    first = res["telemetry_exact"][0]
    assert first["bias"] == 1.0
    assert first["V_weighted(pi_U)"] == first["V_uniform(pi_U)"]  # equal weights: Uniform
    assert all(r["V_weighted(best weighted policy)"] >= r["V_weighted(pi_U)"] - 1e-9
               for r in res["telemetry_exact"])
    assert {r["k"] for r in res["fleet_mc"]} == {2, 4}
    assert (tmp_path / "sampling_weighted_robustness.png").stat().st_size > 0
    assert (tmp_path / "sampling_stratified_vs_uniform.png").stat().st_size > 0
