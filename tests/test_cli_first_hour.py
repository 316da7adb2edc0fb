"""The first hour of a new user (issue 17): every command a newcomer touches fails cleanly.

Each bad input exits with status 2 before any work starts (no run directory, no progress),
prints no traceback, and the message names the offending field and the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import typer
from typer.testing import CliRunner

from altmarl.cli import app

runner = CliRunner()

TINY: dict[str, Any] = {
    "name": "tiny-first",
    "seed": 1,
    "env": {"name": "random", "params": {"n_sg": 2, "n_ag": 2, "n_sl": 2, "n_al": 2, "n": 6,
                                         "seed": 2}},
    "algorithm": {"sweeps": 2, "m": 4, "local_solver": "induced-vi", "eval_rollouts": 8,
                  "eval_horizon": 10},
    "evaluation": {"seeds": 2, "rollouts": 4, "horizon": 10},
    "sweep": {"k": [2], "train_seeds": 1},
}


def _toml(tmp_path: Path, **over: Any) -> Path:
    d = json.loads(json.dumps(TINY))
    for section, val in over.items():
        d[section] = {**d[section], **val} if isinstance(val, dict) else val
    p = tmp_path / "c.toml"
    p.write_text(tomli_w.dumps(d))
    return p


def _clean_failure(res: Any, *parts: str, code: int = 2) -> None:
    """Exit ``code``, no traceback, every one of ``parts`` in the message."""
    assert res.exit_code == code, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    for part in parts:
        assert part in res.output, (part, res.output)


# --- validation happens before any work ---------------------------------------------------


def test_misspelled_local_solver_fails_before_work(tmp_path: Path) -> None:
    cfg = _toml(tmp_path, algorithm={"local_solver": "dirct"})
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    _clean_failure(res, "algorithm.local_solver = 'dirct'", "did you mean 'direct'?",
                   "'induced-vi', 'direct', 'chained'")
    assert not out.exists()  # nothing was started


def test_too_big_table_fails_before_work_and_says_how_to_raise_the_limit(tmp_path: Path) -> None:
    out = tmp_path / "big"
    res = runner.invoke(app, ["run", "warehouse", "--k", "200", "--out", str(out)])
    _clean_failure(res, "warehouse --k 200: sweep.k = 200", "above max_table",
                   "[algorithm.options.g_options]", "max_table = 1800000000",
                   "am.g_learn(..., max_table=1800000000)")
    assert not out.exists()


def test_unknown_g_option_is_named(tmp_path: Path) -> None:
    cfg = _toml(tmp_path, algorithm={"options": {"g_options": {"max_tabel": 10}}})
    res = runner.invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "s")])
    _clean_failure(res, "algorithm.options.g_options.max_tabel: not an option of G-LEARN",
                   "max_table")


def test_misspelled_env_parameter_names_only_the_bad_key(tmp_path: Path) -> None:
    params = {**TINY["env"]["params"], "n_sll": 3}
    cfg = _toml(tmp_path, env={"params": params})
    res = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "r")])
    _clean_failure(res, "env.params.n_sll: unknown parameter of env 'random'",
                   "did you mean 'n_sl'?")
    assert "'n'" not in res.output.split("its parameters are")[0]  # valid keys not blamed


def test_misspelled_keys_get_the_closest_key(tmp_path: Path) -> None:
    d = json.loads(json.dumps(TINY))
    d["evaluaton"] = d.pop("evaluation")
    d["algorithm"]["sweps"] = d["algorithm"].pop("sweeps")
    p = tmp_path / "c.toml"
    p.write_text(tomli_w.dumps(d))
    res = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "r")])
    _clean_failure(res, "evaluaton: unknown key (did you mean 'evaluation'?)",
                   "algorithm.sweps: unknown key (did you mean 'sweeps'?)")
    cfg = _toml(tmp_path, algorithm={"gamma": 0.9})  # no close key: the keys are listed
    res = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "r")])
    _clean_failure(res, "algorithm.gamma: unknown key; the keys here are sweeps, m, eta")
    res = runner.invoke(app, ["continuous", "run", "--quick", "--set", "trpo.max_kll=0.1",
                              "--out", str(tmp_path / "c")])
    _clean_failure(res, "--set: trpo.max_kll: unknown key (did you mean 'max_kl'?)")
    res = runner.invoke(app, ["continuous", "run", "--quick", "--n", "1",
                              "--out", str(tmp_path / "c")])  # a flag, not --set
    _clean_failure(res, "options: n: Input should be greater than or equal to 2 (got 1)")
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_pydantic_messages_have_no_internal_prefix(tmp_path: Path) -> None:
    cfg = _toml(tmp_path, sweep={"k": {"start": 3, "stop": 1}})
    res = runner.invoke(app, ["run", str(cfg)])
    _clean_failure(res, "sweep.k: stop = 1 is below start = 3")
    assert "Value error" not in res.output and "{'start'" not in res.output


def test_bad_k_flag_is_a_usage_error() -> None:
    res = runner.invoke(app, ["run", "warehouse", "--k", "0"])
    assert res.exit_code == 2 and "--k" in res.output and "Traceback" not in res.output


# --- names the commands accept ---------------------------------------------------------------


def test_sweep_accepts_packaged_configuration_names() -> None:
    from altmarl.experiments.config import resolve_config

    assert resolve_config("random_small").name == "random-small"
    res = runner.invoke(app, ["sweep", "random_smal"])
    _clean_failure(res, "did you mean 'random_small'?", "packaged: ", "random_small, warehouse")


def test_unknown_target_of_run_suggests_the_closest_name() -> None:
    res = runner.invoke(app, ["run", "warehous"])
    _clean_failure(res, "did you mean 'warehouse'?", "altmarl envs")


def test_bad_backend_flag_fails_before_work(tmp_path: Path) -> None:
    res = runner.invoke(app, ["sweep", str(_toml(tmp_path)), "--backend", "slurm",
                              "--out", str(tmp_path / "s")])
    _clean_failure(res, "--backend = 'slurm': expected one of local, ray")
    assert not (tmp_path / "s").exists()


# --- interrupted and failed runs print a command that works ---------------------------------


@pytest.mark.parametrize("error", ["interrupt", "unit"])
def test_run_prints_a_command_that_continues_it(tmp_path: Path, monkeypatch: Any,
                                                error: str) -> None:
    import altmarl.experiments.sweep as S
    from altmarl.experiments.runner import UnitFailed

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt if error == "interrupt" else UnitFailed("unit k0002_t00 failed")

    monkeypatch.setattr(S, "run_sweep", boom)
    cfg = _toml(tmp_path)
    out = tmp_path / "r"
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == (130 if error == "interrupt" else 1)
    assert "Traceback" not in res.output
    how = f"altmarl run {cfg} --k 2 --seed 1 --resume --out {out}"
    assert how in res.output
    # and the printed command is accepted by the command line
    monkeypatch.undo()
    again = runner.invoke(app, how.split()[1:])
    assert again.exit_code == 0, again.output


def _numbers(run_dir: Path) -> tuple[Any, ...]:
    summary = json.loads((run_dir / "summary.json").read_text())
    unit = json.loads((run_dir / "units/k0002_t00/result.json").read_text())
    return (summary["per_k"][0]["mean"], summary["per_k"][0]["ci95"], unit["eval"]["means"],
            unit["train"]["value"], [line.split(",")[:9] for line in  # timings left out
                                     (run_dir / "metrics.csv").read_text().splitlines()],
            _tables(run_dir / "units/k0002_t00/pi_g.npz"),
            _tables(run_dir / "units/k0002_t00/pi_l.npz"))


def _tables(path: Path) -> dict[str, bytes]:
    """The arrays of a policy file (its metadata records when it was written)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return {name: z[name].tobytes() for name in z.files if name != "meta"}


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path: Path, monkeypatch: Any) -> None:
    import altmarl.experiments.sweep as S

    cfg = _toml(tmp_path)
    whole = tmp_path / "whole"
    assert runner.invoke(app, ["run", str(cfg), "--out", str(whole)]).exit_code == 0

    # Ctrl-C while the unit's files are written: a half-written unit is left behind
    def killed(run_dir: Any, o: Any, fp: Any = None) -> None:
        tmp = Path(run_dir) / "units" / f".{o.name}.tmp-killed"
        tmp.mkdir(parents=True)
        (tmp / "result.json").write_bytes(o.files["result.json"][:20])
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "write_unit", killed)
    out = tmp_path / "r"
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 130 and "Traceback" not in res.output
    how = f"altmarl run {cfg} --k 2 --seed 1 --resume --out {out}"
    assert how in res.output
    monkeypatch.undo()

    # the same command without --resume does not silently continue: it names the fix
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    _clean_failure(res, f"{out}: holds an unfinished run of this configuration",
                   "0 of 1 unit(s) finished", how)
    # the printed command resumes: the stale files are gone, the numbers are the same
    res = runner.invoke(app, how.split()[1:])
    assert res.exit_code == 0, res.output
    assert not list((out / "units").glob(".*"))
    assert _numbers(out) == _numbers(whole)

    # a damaged finished run: refused without --resume, healed with it
    pi_g = out / "units/k0002_t00/pi_g.npz"
    pi_g.write_bytes(pi_g.read_bytes()[:-7])
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    _clean_failure(res, "0 of 1 unit(s) finished and intact", "--resume")
    res = runner.invoke(app, how.split()[1:])
    assert res.exit_code == 0, res.output
    assert "repaired: k0002_t00 (units/k0002_t00/pi_g.npz" in res.output
    assert _numbers(out) == _numbers(whole)

    # a finished run is re-used by the plain command; another configuration is refused
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0 and "ran 0 unit(s), reused 1" in res.output
    res = runner.invoke(app, ["run", str(cfg), "--seed", "5", "--resume", "--out", str(out)])
    _clean_failure(res, "holds a run of a different configuration", "seed")


def _terminal(buf: Any) -> Any:
    from rich.console import Console

    return Console(file=buf, force_terminal=True, width=140)


def test_progress_bars_end_at_the_proposals_made(tmp_path: Path, monkeypatch: Any) -> None:
    import io

    import altmarl as am
    import altmarl.alternating.loop as L
    from altmarl.experiments.config import resolve_config
    from altmarl.experiments.sweep import run_sweep
    from altmarl.progress import Progress

    buf = io.StringIO()
    monkeypatch.setattr(L, "Progress", lambda enabled: Progress(enabled, console=_terminal(buf)))
    game = am.envs.make("random", n=6, seed=2)
    res = am.alternating_marl(game, 2, seed=1, sweeps=10, m=4, local_solver="induced-vi",
                              eval_rollouts=8, eval_horizon=10, progress=True)
    assert res.converged and res.sweeps < 10
    made = 2 * res.sweeps
    text = buf.getvalue()
    assert f"{made}/{made}" in text and f"converged after {res.sweeps} of at most 10" in text

    buf = io.StringIO()  # the run's bar (altmarl run): the same
    cfg = resolve_config(str(_toml(tmp_path, algorithm={"sweeps": 10})))
    rep = run_sweep(cfg, tmp_path / "r", workers=1, plots=False, console=_terminal(buf))
    unit = json.loads((tmp_path / "r/units/k0002_t00/result.json").read_text())["train"]
    assert unit["converged"] and unit["sweeps"] < 10, rep.summary
    made = 2 * unit["sweeps"]
    text = buf.getvalue()
    assert f"{made}/{made}" in text and f"converged after {unit['sweeps']} sweeps" in text


# --- plot commands on every kind of run directory -------------------------------------------


@pytest.fixture(scope="module")
def theory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("theory") / "t"
    res = runner.invoke(app, ["theory", "--quick", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def tabular_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tab")
    p = tmp / "c.toml"
    p.write_text(tomli_w.dumps(TINY))
    out = tmp / "run"
    res = runner.invoke(app, ["run", str(p), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_plot_redraws_a_theory_run(theory_dir: Path, monkeypatch: Any) -> None:
    import re

    import altmarl.plots.theory as T

    for png in theory_dir.glob("*.png"):
        png.unlink()
    figures: dict[str, Any] = {}
    save = T.save_figure

    def keep(fig: Any, path: Any, **kw: Any) -> Any:
        if Path(path).name in ("gap_vs_k.png", "table_size.png"):
            fig.canvas.draw()
            figures[Path(path).name] = [(ax.get_xscale(), [t.get_text() for t in
                                                            ax.get_xticklabels()])
                                        for ax in fig.axes]
        return save(fig, path, **kw)

    monkeypatch.setattr(T, "save_figure", keep)
    res = runner.invoke(app, ["plot", str(theory_dir)])
    assert res.exit_code == 0, res.output
    assert (theory_dir / "gap_vs_k.png").is_file() and "plot:" in res.output
    assert "gap(k): k=1:" in res.output
    # the digest read back from disk lists k in increasing order, the games as configured
    for line in res.output.splitlines():
        if "gap(k):" in line:
            ks = [int(k) for k in re.findall(r"k=(\d+):", line)]
            assert ks == sorted(ks), line
    first = json.loads((theory_dir / "config.json").read_text())["gap_games"][0]["label"]
    assert res.output.startswith(first)
    assert "gap_sup" not in res.output and " 1 games" not in res.output
    # k ticks at the sampled k (gap figures) and integers (table sizes)
    from altmarl.io import read_csv_rows

    sampled = sorted({int(r["k"]) for r in read_csv_rows(theory_dir / "gap_vs_k.csv")})
    assert figures["gap_vs_k.png"][0][1] == [str(k) for k in sampled]
    ticks = [t for t in figures["table_size.png"][0][1] if t]
    assert ticks and all(re.fullmatch(r"\d+", t) for t in ticks), ticks


def test_plot_commands_name_the_right_command_for_other_kinds(theory_dir: Path,
                                                             tabular_dir: Path) -> None:
    res = runner.invoke(app, ["continuous", "plot", str(tabular_dir)])
    _clean_failure(res, "run directory of `altmarl run / sweep / reproduce`",
                   f"altmarl plot {tabular_dir}")
    res = runner.invoke(app, ["federated", "plot", str(theory_dir)])
    _clean_failure(res, "run directory of `altmarl theory`", f"altmarl plot {theory_dir}")


def test_plot_on_a_unit_or_one_continuous_run_names_what_to_do(tabular_dir: Path,
                                                               tmp_path: Path) -> None:
    unit = tabular_dir / "units" / "k0002_t00"
    for cmd in (["plot"], ["continuous", "plot"], ["federated", "plot"]):
        res = runner.invoke(app, [*cmd, str(unit)])
        _clean_failure(res, "a unit directory of the run", f"altmarl plot {tabular_dir}")
    crun = tmp_path / "crun"
    crun.mkdir()
    (crun / "result.json").write_text(json.dumps({"format": "altmarl-continuous-run/1"}))
    for cmd in (["plot"], ["continuous", "plot"]):
        res = runner.invoke(app, [*cmd, str(crun)])
        _clean_failure(res, "one `altmarl continuous run` has no figures",
                       "altmarl continuous sweep")
        assert f"altmarl plot {crun}" not in res.output  # would fail the same way


def test_plot_on_a_damaged_continuous_or_federated_directory(tmp_path: Path) -> None:
    cs = tmp_path / "cs"
    cs.mkdir()
    (cs / "config.json").write_text(json.dumps({"format": "altmarl-continuous-sweep/1"}))
    res = runner.invoke(app, ["plot", str(cs)])
    _clean_failure(res, "cannot read the continuous sweep", "altmarl continuous sweep --out")
    fed = tmp_path / "fed"
    fed.mkdir()
    (fed / "summary.json").write_text(json.dumps({"methods": "x", "estimation": {}}))
    res = runner.invoke(app, ["federated", "plot", str(fed)])
    _clean_failure(res, "cannot read the federated run")
    res = runner.invoke(app, ["plot", str(tmp_path)])
    _clean_failure(res, "not an altmarl run directory")


def test_evaluate_says_when_its_numbers_repeat_the_run_summary(tabular_dir: Path) -> None:
    same = "the numbers repeat its summary"
    res = runner.invoke(app, ["evaluate", str(tabular_dir)])
    assert res.exit_code == 0 and same in res.output, res.output
    res = runner.invoke(app, ["evaluate", str(tabular_dir), "--n", "8"])
    assert res.exit_code == 0 and same not in res.output, res.output
    res = runner.invoke(app, ["compare", str(tabular_dir), "uniform"])  # per-agent simulator
    assert res.exit_code == 0 and same not in res.output, res.output
    assert "differ from its summary by simulation noise" in res.output


def test_run_report_says_what_the_numbers_mean(tabular_dir: Path) -> None:
    res = runner.invoke(app, ["plot", str(tabular_dir)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "uniform play (every agent acts uniformly at random)" in out
    assert "the learned policies gain" in out
    assert "stopped: " in out and "sweeps" in out
    assert "settings: env random" in out and "L-LEARN solver induced-vi" in out
    assert "plot: " in out


# --- help and output ---------------------------------------------------------------------


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    out = [prefix]
    if isinstance(group, click.Group):
        for name, cmd in group.commands.items():
            out += _commands(cmd, (*prefix, name))
    return out


def test_no_command_help_shows_bool_after_a_flag() -> None:
    root = typer.main.get_command(app)
    for path in _commands(root):
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, path
        assert "<bool>" not in res.output, path
        assert "<list[" not in res.output, path  # no Python types after --set or A B ...


def test_help_paragraphs_flow_instead_of_keeping_docstring_line_breaks() -> None:
    root = typer.main.get_command(app)
    for path in _commands(root)[1:]:
        cmd = root
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        for para in (cmd.help or "").split("\n\n"):
            assert "\n" not in para, (path, para)
    res = runner.invoke(app, ["run", "--help"])
    assert res.exit_code == 0 and "configuration,\n" not in res.output  # no break mid-line


def test_output_to_a_pipe_is_not_wrapped() -> None:
    from altmarl.cli.common import FILE_WIDTH, console

    con = console()  # CliRunner's stdout is not a terminal
    assert con.width == FILE_WIDTH


def test_alternating_marl_prints_nothing_when_stderr_is_not_a_terminal() -> None:
    code = ("import altmarl as am; g = am.envs.make('random', n=6); "
            "am.alternating_marl(g, 2, sweeps=1, m=3, eval_rollouts=4)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert res.stderr == "" and res.stdout == ""


# --- continuous quick mode -------------------------------------------------------------------


def test_continuous_quick_defaults_fit_the_quick_population() -> None:
    from altmarl.continuous.sweep import QUICK_KS, quick_config

    assert max(QUICK_KS) <= quick_config().n
    res = runner.invoke(app, ["continuous", "sweep", "--quick", "--ks", "5,75"])
    _clean_failure(res, "--ks: 75 exceed the number of robots n = 60", "--n")


def test_continuous_table_uses_the_configured_horizon() -> None:
    from altmarl.cli.continuous import format_sweep

    stats = {"mean": 1.0, "std": float("nan")}
    row = {"k": 1, "seeds": 1, "value": stats, "value_h50": {"mean": float("nan")},
           "mode_match_rate": stats, "mode_accuracy_reset": stats, "train_s": stats,
           "train_cpu_s": stats}
    rnd = {"horizon": 20, "short_horizon": 20, "value": stats, "value_h50": stats,
           "rollout_std": 1.0, "rollout_std_h50": 1.0}
    text = format_sweep({"config": {"eval_horizon": 20}, "per_k": [row], "random": rnd})
    assert "V (H=20)" in text and "H=100" not in text and "H=50" not in text
    assert "nan" not in text
    assert text.count("H=20") == 1  # the header
    assert text.count("over horizon 20") == 1  # one random-play entry, not repeated
    assert "V = 1.00 over horizon 20" in text


# --- the docs a newcomer reads ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("## ", 1)[0]
    root = typer.main.get_command(app)
    for name in root.commands:  # type: ignore[attr-defined]
        assert f"altmarl {name}" in block, name
    assert "docs/img/main_job_alternation.png" in readme  # the main job's figure is shown
    assert (ROOT / "docs/img/main_job_alternation.png").is_file()


def test_doc_pages_explain_spec_references_and_link_to_existing_pages() -> None:
    import re

    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        if re.search(r"SPEC \d", text) and page.name != "math.md":  # cites a section
            assert "is section n of the [math reference](math.md)" in text, page.name
        for target in re.findall(r"\]\(([a-z_\-]+\.md)(?:#[^)]*)?\)", text):
            assert (ROOT / "docs" / target).is_file(), (page.name, target)
        assert "Edits outside this topic" not in text and "(issue 1" not in text, page.name


def test_user_docs_carry_no_development_notes() -> None:
    import re

    notes = re.compile(r"the lead's call|goals of issue \d+|\bissue \d+\b|\.venv/bin/|"
                       r"re-?run when|this change\b|helper session", re.IGNORECASE)
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        hits = [m.group(0) for m in notes.finditer(page.read_text())]
        assert not hits, (page.name, hits)


def test_saving_a_figure_prints_no_matplotlib_note(tmp_path: Path) -> None:
    import warnings

    import numpy as np

    from altmarl.plots.style import legend, pyplot, save_figure

    fig, ax = pyplot().subplots()
    ax.plot(np.arange(200_000), np.sin(np.arange(200_000)), label="many points")
    legend(ax)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
