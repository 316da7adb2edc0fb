"""``altmarl run`` on generative games (SPEC 10, 11): built-in names, a user's
``module:function`` factory, the same run-directory layout with neural policy files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner

pytest.importorskip("torch")

import altmarl as am  # noqa: E402
from altmarl.cli import app  # noqa: E402
from altmarl.rundir import check_unit, unit_files  # noqa: E402

runner = CliRunner()

ALGO: dict[str, Any] = {
    "sweeps": 1, "m": 3, "eval_rollouts": 16, "eval_horizon": 30,
    "options": {"g_options": {"states": 200, "iterations": 5, "hidden": 16},
                "l_options": {"iterations": 2, "rollouts": 2, "horizon": 20, "tracked": 10,
                              "hidden": 16}},
}
EVAL = {"seeds": 2, "rollouts": 8, "horizon": 20}

USER_MODULE = '''
import numpy as np
import altmarl as am

def make_game(n=30):
    """A user's simulator: couriers on a ring of 4 zones chasing a demand zone."""
    def reset(rng, R):
        return rng.integers(0, 4, size=R), rng.integers(0, 4, size=(R, n))

    def step(s_g, s_l, a_g, a_l, rng):
        move = np.where(a_l == 1, 1, np.where(a_l == 2, -1, 0))
        s_l2 = (s_l + move * (rng.random(s_l.shape) < 0.8)) % 4
        s_g2 = np.where(rng.random(s_g.shape) < 0.7, a_g, s_g)
        d = np.abs(s_l - s_g[:, None]) % 4
        r_l = np.where(np.minimum(d, 4 - d) == 0, 2.0, 0.0)
        return s_g2, s_l2, np.ones(s_g.shape), r_l

    return am.GenerativeGame(n=n, gamma=0.9, num_global_actions=4, num_local_actions=3,
                             reset=reset, step=step, observe="counts", name="couriers",
                             num_global_states=4, num_local_states=4, r_min=0.0, r_max=3.0)
'''


def _config(tmp_path: Path, env: dict[str, Any]) -> Path:
    p = tmp_path / "gen.toml"
    p.write_text(tomli_w.dumps({"name": "gen-cli", "env": env, "algorithm": ALGO,
                                "evaluation": EVAL, "sweep": {"k": [3]}}))
    return p


def test_run_continuous_warehouse_writes_the_run_directory(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"name": "continuous-warehouse", "params": {"n": 40}})
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    ud = out / "units" / "k0003_t00"
    for f in ("config.toml", "config.json", "summary.json", "metrics.csv", "per_k.csv",
              "units/k0003_t00/pi_g.pt", "units/k0003_t00/pi_l.pt",
              "units/k0003_t00/history.csv", "units/k0003_t00/steps.csv",
              "plots/occupancy.png", "plots/alternation.png"):
        assert (out / f).is_file(), f
    assert unit_files(p.name for p in ud.iterdir())[1:3] == ("pi_g.pt", "pi_l.pt")
    assert check_unit(out, "k0003_t00") is None
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] and s["ks"] == [3]
    result = json.loads((ud / "result.json").read_text())
    assert result["game"]["name"] == "continuous-warehouse"
    # the neural policy files load for the game, without pickle
    from altmarl.generative.files import load_policy

    game = am.envs.make("continuous-warehouse", n=40)
    pi_g, pi_l = load_policy(ud / "pi_g.pt", "global", game), load_policy(ud / "pi_l.pt",
                                                                          "local", game)
    ev = am.evaluate(game, pi_g, pi_l, rollouts=8, horizon=20, seed=result["eval"]["seeds"][0])
    assert ev.mean == pytest.approx(result["eval"]["means"][0])
    # the five SPEC 8.2 bins in the records
    head = (ud / "steps.csv").read_text().splitlines()[0].split(",")
    assert [c for c in head if c.startswith("occ_")] == [f"occ_{i}" for i in range(5)]
    tr = (ud / "trajectory.csv").read_text().splitlines()[0].split(",")
    assert "frac_4" in tr and "in_sg" in tr
    # a damaged neural policy file is found and named
    (ud / "pi_l.pt").write_bytes(b"x")
    assert "pi_l.pt" in (check_unit(out, "k0003_t00") or "")


def test_run_a_users_module_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_couriers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "user-run"
    cfg = _config(tmp_path, {"name": "my_couriers:make_game", "params": {"n": 30}})
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "units" / "k0003_t00" / "pi_g.pt").is_file()
    assert (out / "plots" / "occupancy.png").is_file()
    # the factory name alone is a target too (defaults for everything else) ...
    assert am.envs.make("my_couriers:make_game").name == "couriers"
    from altmarl.experiments.config import resolve_target

    t = resolve_target("my_couriers:make_game")
    assert t.env.name == "my_couriers:make_game" and t.name == "my_couriers.make_game"
    # ... and bad factories are named
    (tmp_path / "not_a_game.py").write_text("def make():\n    return 3\n")
    with pytest.raises(ValueError, match="returned int: expected an altmarl.GenerativeGame"):
        am.envs.make("not_a_game:make")
    with pytest.raises(ValueError, match="cannot import module 'nowhere_mod'"):
        am.envs.make("nowhere_mod:f")
    with pytest.raises(ValueError, match="has no attribute 'nothing'"):
        am.envs.make("my_couriers:nothing")
    sys.modules.pop("my_couriers", None)
    sys.modules.pop("not_a_game", None)


def test_packaged_generative_configurations() -> None:
    from altmarl.experiments.config import packaged_config, resolve_target

    fleet = packaged_config("fleet")
    assert resolve_target("fleet") == fleet and fleet.env.name == "fleet"
    assert fleet.ks() == [10] and fleet.algorithm.options["g_options"]["states"] == 2000
    cw = resolve_target("continuous-warehouse")
    assert cw.env.params["n"] == 500 and cw.algorithm.kwargs()["m"] == 10
