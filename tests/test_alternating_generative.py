"""ALTERNATING-MARL on generative games (SPEC 6, 11): the generative adapter on the one loop,
UPDATE, history, checkpoints and resume."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import altmarl as am  # noqa: E402
from altmarl.alternating.generative import (  # noqa: E402
    LATEST,
    GenerativeOptions,
    run_generative,
)
from altmarl.generative.neural import NeuralGlobalPolicy  # noqa: E402
from altmarl.generative.neural_local import NeuralLocalPolicy  # noqa: E402

SMALL = {
    "sweeps": 2, "eval_rollouts": 32, "eval_horizon": 40, "m": 4,
    "g_options": {"states": 200, "iterations": 8, "hidden": 16},
    "l_options": {"iterations": 2, "rollouts": 2, "horizon": 20, "tracked": 16, "hidden": 16},
}


@pytest.fixture(scope="module")
def gen():
    return am.envs.make("warehouse", n=60).as_generative()


@pytest.fixture(scope="module")
def run(gen):
    return am.alternating_marl(gen, 3, seed=0, progress=False, **SMALL)


def numbers(res):
    return [(h.sweep, h.player, h.v_new, h.v_old, h.decision) for h in res.history]


def same_policies(a, b):
    for x, y in zip(a.pi_g.net.state_dict().values(), b.pi_g.net.state_dict().values(),
                    strict=True):
        assert torch.equal(x, y)
    for x, y in zip(a.pi_l.policy.state_dict().values(), b.pi_l.policy.state_dict().values(),
                    strict=True):
        assert torch.equal(x, y)


def test_generative_run_through_the_one_loop(run, gen):
    res = run
    assert isinstance(res.pi_g, NeuralGlobalPolicy) and res.pi_g.k == 3
    assert isinstance(res.pi_l, NeuralLocalPolicy)
    assert res.config["kind"] == "generative" and res.config["local_solver"] == "trpo"
    hist = res.history
    assert [h.player for h in hist] == ["global", "local"] * (len(hist) // 2)
    assert hist[0].decision == "initial" and hist[0].v_old is None
    for h in hist[1:]:
        assert h.decision in ("accept", "reject", "no-improvement")
        # eta = z se / 2 + half the truncation bound of the 40-step estimates (SPEC 13)
        assert h.se_diff is not None and h.eta == pytest.approx(
            0.5 * 1.959963984540054 * h.se_diff + 0.5 * res.config["truncation_tail"])
        # UPDATE (Lemma D.14): accept exactly when V_new - eta > V_old + eta
        assert (h.decision == "accept") == (h.v_new - h.eta > h.v_old + h.eta)
        assert h.eval_samples >= 32 * 40 * 60
    assert res.sweeps == len(hist) // 2 and np.isfinite(res.value.mean)
    assert res.value.rollouts == 32 and res.to_dict()["k"] == 3
    # fresh common random numbers every sweep: sweep 2 re-evaluates the played pair
    s2 = [h for h in hist if h.sweep == 2]
    if s2:
        played = [h for h in hist if h.sweep == 1 and h.accepted][-1]
        assert s2[0].v_old != played.v_new


def test_same_seed_same_run(run, gen):
    again = am.alternating_marl(gen, 3, seed=0, progress=False, **SMALL)
    assert numbers(again) == numbers(run) and again.value.mean == run.value.mean
    same_policies(again, run)


def test_checkpoint_and_resume_give_the_same_numbers(run, gen, tmp_path):
    stops = {"n": 0}

    def stop_in_sweep_2(rec):
        stops["n"] += 1
        return rec.sweep == 2  # stop at sweep 2's first proposal: sweep 1 is checkpointed

    cut = am.alternating_marl(gen, 3, seed=0, progress=False, callback=stop_in_sweep_2,
                              checkpoint_dir=tmp_path, **SMALL)
    assert cut.sweeps == 2 and len(cut.history) == 3  # sweep 1 + the cut proposal
    assert (tmp_path / LATEST).read_text().strip() == "sweep-0001"
    assert sorted(p.name for p in (tmp_path / "sweep-0001").iterdir()) == [
        "candidate.pt", "pi_g.pt", "pi_l.pt", "state.json"]
    resumed = am.alternating_marl(gen, 3, seed=0, progress=False, checkpoint_dir=tmp_path,
                                  **SMALL)
    assert numbers(resumed) == numbers(run) and resumed.value.mean == run.value.mean
    same_policies(resumed, run)
    # finished: resuming again runs nothing and returns the same pair
    done = am.alternating_marl(gen, 3, seed=0, progress=False, checkpoint_dir=tmp_path,
                               **SMALL)
    assert numbers(done) == numbers(run) and done.value.mean == run.value.mean
    # another run's checkpoint, or a damaged file, is refused and named
    with pytest.raises(ValueError, match="seed differs"):
        am.alternating_marl(gen, 3, seed=1, progress=False, checkpoint_dir=tmp_path, **SMALL)
    last = tmp_path / (tmp_path / LATEST).read_text().strip()
    (last / "pi_l.pt").write_bytes(b"broken")
    with pytest.raises(ValueError, match=r"pi_l.pt: missing or damaged"):
        am.alternating_marl(gen, 3, seed=0, progress=False, checkpoint_dir=tmp_path, **SMALL)
    fresh = am.alternating_marl(gen, 3, seed=0, progress=False, checkpoint_dir=tmp_path,
                                resume=False, **SMALL)
    assert numbers(fresh) == numbers(run)


def test_hooks_options_and_errors(gen):
    tab = am.envs.make("warehouse", n=60)
    mode = am.GlobalPolicy.sample_mode(tab, 3)
    calls = []

    def g_hook(game, pi_l, k, seed, pi_g):
        calls.append(("g", k, pi_g is None))
        return mode

    def l_hook(game, pi_g, pi_l, seed):
        calls.append(("l", type(pi_l).__name__))
        return am.LocalPolicy.uniform(tab)

    res = run_generative(gen, 3, GenerativeOptions(sweeps=3, eval_rollouts=16, eval_horizon=20,
                                                   patience=1),
                         progress=False, g_learner=g_hook, l_learner=l_hook)
    assert calls[0] == ("g", 3, True) and calls[1] == ("l", "NeuralLocalPolicy")
    assert res.pi_g is mode and res.converged and res.tolerance is not None
    lo, hi = tab.reward_bounds
    assert gen.reward_bounds == (lo, tab.r_max)
    assert res.config["eval_horizon"] == 20
    assert res.config["truncation_tail"] == pytest.approx(0.95**20 * (tab.r_max - lo) / 0.05)
    undeclared = am.GenerativeGame(gen.n, gen.gamma, gen.n_ag, gen.n_al, gen.reset_fn,
                                   gen.step_fn, num_global_states=gen.n_sg,
                                   num_local_states=gen.n_sl, r_max=gen.r_max)
    with pytest.raises(ValueError, match="declare r_min and r_max"):
        run_generative(undeclared, 3, GenerativeOptions(sweeps=1), progress=False,
                       g_learner=g_hook, l_learner=l_hook)
    with pytest.raises(ValueError, match="local_solver"):
        GenerativeOptions(local_solver="direct")
    with pytest.raises(ValueError, match="checkpoints are written for generative games"):
        am.alternating_marl(tab, 2, checkpoint_dir="x", progress=False)
    with pytest.raises(ValueError, match="k = 5"):
        run_generative(gen, 3, GenerativeOptions(sweeps=1), progress=False,
                       g_learner=lambda *a: am.GlobalPolicy.sample_mode(tab, 5))
