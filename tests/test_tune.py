"""Hyper-parameter search (issue 21): ``altmarl tune`` writes a resumable Optuna study,
tuning.csv, plots and a best.toml that ``altmarl run`` reproduces; the search space and
the median pruning on the alternation history."""

from __future__ import annotations

import json
import shutil

import optuna
import pytest
from typer.testing import CliRunner

from altmarl.cli import app
from altmarl.experiments.config import packaged_config
from altmarl.experiments.tuning import (
    DEFAULT_SPACE,
    parse_space,
    pruning_callback,
    suggest,
    trial_config,
)
from altmarl.io import read_csv_rows

runner = CliRunner()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One quick study of two trials (shared: it is the slow part)."""
    out = tmp_path_factory.mktemp("tune") / "tune"
    r = runner.invoke(app, ["tune", "random_small", "--trials", "2", "--quick", "--out",
                            str(out), "--no-progress", "--track", "csv"])
    assert r.exit_code == 0, r.output
    return out


def test_tune_writes_study_csv_plots_and_a_best_toml_that_run_reproduces(tuned, tmp_path):
    out = tuned
    rows = read_csv_rows(out / "tuning.csv")
    assert [row["number"] for row in rows] == [0, 1]
    assert {row["state"] for row in rows} <= {"complete", "pruned"}
    assert (out / "study.db").is_file()
    assert {p.name for p in (out / "plots").iterdir()} >= {"optimization_history.png",
                                                           "intermediate_values.png"}
    best = json.loads((out / "tuning.json").read_text())["best"]
    done = [row for row in rows if row["state"] == "complete"]
    assert best["objective"] == max(row["objective"] for row in done)
    # each finished trial is a run directory
    for row in done:
        assert (out / row["run_dir"] / "summary.json").is_file()
    # best.toml is a configuration `altmarl run` accepts, and it gives the trial's number
    r2 = runner.invoke(app, ["run", str(out / "best.toml"), "--out", str(tmp_path / "best")])
    assert r2.exit_code == 0, r2.output
    summary = json.loads((tmp_path / "best" / "summary.json").read_text())
    assert summary["per_k"][0]["mean"] == best["value"]
    assert summary["per_k"][0]["k"] == best["k"]
    # the trackers saw each trial
    scal = read_csv_rows(out / "tracking" / "scalars.csv")
    assert [s["step"] for s in scal if s["tag"] == "tune/complete"] == [0, 1]


def test_tune_resumes_and_refuses_another_search(tuned, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tuned, out)
    rows = read_csv_rows(out / "tuning.csv")
    r3 = runner.invoke(app, ["tune", "random_small", "--trials", "3", "--quick", "--out",
                             str(out), "--no-progress"])
    assert r3.exit_code == 0, r3.output
    assert "ran 1 trial(s), 3 in the study" in r3.output
    rows3 = read_csv_rows(out / "tuning.csv")
    assert [{key: v for key, v in r.items() if key != "run_dir"} for r in rows3[:2]] == \
        [{key: v for key, v in r.items() if key != "run_dir"} for r in rows]
    r4 = runner.invoke(app, ["tune", "random_small", "--trials", "4", "--quick", "--out",
                             str(out), "--objective", "value-cost", "--cost", "0.1"])
    assert r4.exit_code == 2 and "another search" in r4.output


def test_tune_rejects_bad_input_before_work(tmp_path):
    out = tmp_path / "t"
    r = runner.invoke(app, ["tune", "random_small", "--trials", "2", "--objective",
                            "value-cost", "--out", str(out)])
    assert r.exit_code == 2 and "--cost" in r.output
    space = tmp_path / "space.toml"
    space.write_text('[m]\ntype = "int"\nlow = 10\nhigh = 5\n')
    r = runner.invoke(app, ["tune", "random_small", "--trials", "2", "--space", str(space),
                            "--out", str(out)])
    assert r.exit_code == 2 and "m" in r.output and "low <= high" in r.output
    with pytest.raises(ValueError, match="sweps: not a tunable parameter"):
        parse_space({"sweps": {"type": "int", "low": 1, "high": 2}})
    with pytest.raises(ValueError, match="'vi' is not an L-LEARN solver"):
        parse_space({"local_solver": {"type": "categorical", "choices": ["vi"]}})


def test_space_is_conditional_and_configs_validate():
    space = parse_space(DEFAULT_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0),
                                direction="maximize")
    base = packaged_config("random_small")
    seen = set()
    for _ in range(12):
        trial = study.ask()
        params = suggest(trial, space, base.ks())
        solver = params["local_solver"]
        seen.add(solver)
        other = "induced-vi" if solver == "direct" else "direct"
        assert not any(key.startswith(other + ".") for key in params)
        assert params["k"] in base.ks()
        cfg = trial_config(base, params, "t")
        algo = cfg.algorithm
        assert algo.m == params["m"] and algo.eval_rollouts == params["eval_rollouts"]
        assert algo.options["confidence"] == params["confidence"]
        l_opts = algo.options.get("l_options", {})
        assert l_opts == {key.split(".", 1)[1]: v for key, v in params.items()
                          if key.startswith(solver + ".")}
        assert cfg.ks() == [params["k"]] and cfg.sweep.train_seeds == 1
        study.tell(trial, 0.0)
    assert seen == {"direct", "induced-vi"}


def test_median_pruning_on_the_alternation_history():
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1,
                                                                   n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(
        value=10.0, params={}, distributions={},
        intermediate_values={0: 10.0, 1: 10.0, 2: 10.0}))
    good, bad = study.ask(), study.ask()
    rec = {"sweep": 1, "player": "local", "v_new": 12.0, "v_old": 9.0, "accepted": True,
           "decision": "accept"}
    pruning_callback(good, k=2, objective="value", cost=0.0)(rec)  # 12 > median 10
    assert good.storage.get_trial(good._trial_id).intermediate_values == {1: 12.0}
    # the same proposal with a cost per agent falls below the median: pruned
    with pytest.raises(optuna.TrialPruned):
        pruning_callback(bad, k=2, objective="value-cost", cost=1.5)(rec)
    assert bad.storage.get_trial(bad._trial_id).intermediate_values == {1: 9.0}


def test_plot_redraws_a_tuning_directory_and_evaluate_points_to_a_trial(tuned, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tuned, out)
    shutil.rmtree(out / "plots")
    r = runner.invoke(app, ["plot", str(out)])
    assert r.exit_code == 0, r.output
    assert "tuning: the best" in r.output and "plot: " in r.output
    assert (out / "plots" / "optimization_history.png").is_file()
    best = json.loads((out / "tuning.json").read_text())["best"]["number"]
    r = runner.invoke(app, ["evaluate", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"altmarl evaluate {out}/trials/trial_{best:04d}" in r.output


def test_tuning_figures_speak_words_and_tick_at_integers(tmp_path, monkeypatch):
    import altmarl.plots.tuning as T

    figures = {}
    save = T.save_figure

    def keep(fig, path, **kw):
        fig.canvas.draw()
        figures[path.name] = fig.axes
        return save(fig, path, **kw)

    monkeypatch.setattr(T, "save_figure", keep)
    trials = [{"number": 0, "state": "complete", "objective": 1.0,
               "intermediate": {0: 0.5, 1: 1.0}, "params": {"m": 5, "local_solver": "direct"}},
              {"number": 1, "state": "pruned", "objective": None,
               "intermediate": {0: 0.2}, "params": {"m": 7, "local_solver": "induced-vi"}},
              {"number": 2, "state": "complete", "objective": 1.5,
               "intermediate": {0: 0.6, 1: 1.2, 2: 1.5},
               "params": {"m": 9, "local_solver": "induced-vi"}}]
    paths = T.plot_tuning(trials, tmp_path, importances={"m": 0.7, "local_solver": 0.3},
                          scales={"m": "log", "local_solver": "categorical"}, title="tiny")
    assert sorted(p.name for p in paths) == ["intermediate_values.png",
                                             "optimization_history.png",
                                             "param_importances.png", "slice.png"]
    for name in ("optimization_history.png", "intermediate_values.png"):
        (ax,) = figures[name]
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert ticks and all(t.lstrip("−-").isdigit() for t in ticks), (name, ticks)
        assert "tiny" in ax.get_title()
    labels = [t.get_text() for t in figures["intermediate_values.png"][0].get_legend().get_texts()]
    assert labels == ["trial 0", "trial 1 (pruned)", "trial 2"]
    m_axis = next(ax for ax in figures["slice.png"] if ax.get_xlabel() == "m")
    assert [t.get_text() for t in m_axis.get_xticklabels()] == ["5", "9"]  # finished trials
