"""The ``[sampling]`` section of experiment configurations (SPEC 12)."""

from __future__ import annotations

import pytest

import altmarl as am
from altmarl.experiments import config as C
from altmarl.experiments import runner as R
from altmarl.sampling import Stratified, Uniform, Weighted, allocate


def cfg_dict(**sampling):
    d = {"name": "t", "seed": 1,
         "env": {"name": "warehouse", "params": {"n": 20, "zones": 3, "types": 2}},
         "algorithm": {"sweeps": 1, "m": 10, "local_solver": "induced-vi",
                       "eval_rollouts": 8, "eval_horizon": 10},
         "evaluation": {"seeds": 1, "rollouts": 4, "horizon": 5},
         "sweep": {"k": [2, 4], "train_seeds": 1}}
    if sampling:
        d["sampling"] = sampling
    return d


def test_absent_section_keeps_the_fingerprint():
    base = C.parse_config(cfg_dict())
    assert base.sampling is None and "sampling" not in base.resolved()
    uni = C.parse_config(cfg_dict(scheme="uniform"))
    assert uni.fingerprint() != base.fingerprint()


def test_schemes_per_k():
    game = am.envs.make("warehouse", n=20, zones=3, types=2)
    cfg = C.parse_config(cfg_dict(scheme="stratified"))
    assert cfg.sampling is not None
    assert cfg.sampling.scheme_for(4, game) == Stratified((3, 1)).bind(game)  # 16 : 4
    eq = C.parse_config(cfg_dict(scheme="stratified", allocation="equal")).sampling
    assert eq is not None and eq.scheme_for(4, game).ks == (2, 2)
    w = C.parse_config(cfg_dict(scheme="weighted", weights=[1, 2, 3, 1, 1, 1])).sampling
    assert w is not None and w.scheme_for(2, game) == Weighted((1, 2, 3, 1, 1, 1), 2)
    u = C.parse_config(cfg_dict(scheme="uniform")).sampling
    assert u is not None and u.scheme_for(2, game) == Uniform(2)
    assert allocate(7, [1, 1, 2]) == (2, 2, 3) and allocate(3, [5, 1], [2, 9]) == (2, 1)


@pytest.mark.parametrize("sampling, match", [
    ({"scheme": "weighted"}, "needs one weight per local state"),
    ({"scheme": "weighted", "weights": [1, -1, 1, 1, 1, 1]}, r"sampling.w\[1\] = -1.0"),
    ({"scheme": "weighted", "weights": [0, 0, 0, 0, 0, 0]}, "all weights are zero"),
    ({"scheme": "weighted", "weights": [1, 1]}, "2 weights for a game with"),
    ({"scheme": "uniform", "weights": [1, 1]}, "only for scheme"),
    ({"scheme": "stratified", "allocation": [1, 0]}, "positive shares"),
    ({"scheme": "stratified", "allocation": [1, 1, 1]}, "3 shares for 2 types"),
    ({"scheme": "cluster"}, "sampling.scheme"),
    ({"scheme": "uniform", "k": 3}, "sampling.k"),
])
def test_bad_sampling_sections_are_named(sampling, match):
    with pytest.raises(ValueError, match=match):
        C.parse_config(cfg_dict(**sampling))


def test_stratified_on_an_untyped_game_is_refused():
    d = cfg_dict(scheme="stratified")
    d["env"]["params"] = {"n": 20, "zones": 3}
    with pytest.raises(ValueError, match="the game has one type"):
        C.parse_config(d)


def test_a_unit_trains_under_the_configured_scheme(tmp_path):
    import numpy as np

    from altmarl.io import load_npz

    cfg = C.parse_config(cfg_dict(scheme="stratified", allocation="equal"))
    task = [t for t in R.make_tasks(cfg) if t.k == 2][0]
    out = R.execute_unit(task)
    path = tmp_path / "pi_g.npz"
    path.write_bytes(out.files["pi_g.npz"])
    meta, _ = load_npz(path)
    assert meta["sampling"]["scheme"] == "stratified" and meta["sampling"]["ks"] == [1, 1]
    assert np.isfinite(out.result["eval"]["mean"])
