"""Joint-policy off-policy evaluation: logs with the population's local actions (the N_x_a
columns and the sidecar's local_behaviour), their loader, the joint importance weights
against the exact solver and by hand, and the CLI."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import altmarl as am
from altmarl import offpolicy as op
from altmarl.cli import app

from .helpers import ENV


@pytest.fixture(scope="module")
def joint_case():
    """n = k = 3 (the logged process is Markov), epsilon-greedy logs around the target
    dispatcher, uniform local behaviour; target pi_l = 0.8 uniform + 0.2 'always action 0'."""
    game = am.envs.make("random", **ENV)
    mu = am.LocalPolicy.uniform(game)
    pi_g = am.g_learn(game, mu, 3, m=None, tol=1e-12)
    det = am.LocalPolicy.deterministic(game, np.zeros((3, 2), np.int64))
    pi_l = am.LocalPolicy(0.8 * mu.table + 0.2 * det.table)
    exact = am.exact.ExactSolver(game, k=3)
    ds = op.record_logs(game, 3, episodes=2000, horizon=30, seed=1, behaviour="epsilon-greedy",
                        pi_g=pi_g, epsilon=0.1, local_actions=True)
    return game, pi_g, pi_l, mu, exact.value(pi_g, pi_l), exact.value(pi_g, mu), ds


@pytest.fixture(scope="module")
def local_log():
    game = am.envs.make("random", **ENV)
    return game, op.record_logs(game, 3, episodes=6, horizon=10, seed=0, local_actions=True)


def test_joint_estimates_cover_the_exact_joint_value(joint_case) -> None:
    game, pi_g, pi_l, mu, v_joint, v_logged, ds = joint_case
    assert abs(v_joint - v_logged) > 0.03  # the local policy matters in this game
    wis = am.offpolicy_evaluate(ds, pi_g, pi_l, method="wis", seed=0, behaviour_policy=pi_g)
    lo, hi = wis.ci95
    assert lo <= v_joint <= hi and not lo <= v_logged <= hi, (wis, v_joint, v_logged)
    assert "given local policy" in wis.estimand and not wis.flags
    for method in ("is", "pdis"):  # pdis: the same estimator
        est = am.offpolicy_evaluate(ds, pi_g, pi_l, method=method, seed=0,
                                    behaviour_policy=pi_g)
        slack = est.diagnostics["truncation_bound"]
        assert est.method == "is" and est.ci95[0] - slack <= v_joint <= est.ci95[1] + slack
    imp = wis.diagnostics["importance"]
    # the local ratios of 3 agents per step cost effective sample size
    assert imp["joint"] and 100 < imp["ess"] < imp["ess_global_only"] <= 2000
    assert imp["rows_local_impossible"] == 0 and imp["local_log_ratio_mean"] < 0
    # the logged local behaviour itself is no reweighting at all: same as pi_l=None
    same = am.offpolicy_evaluate(ds, pi_g, mu, method="wis", seed=0, behaviour_policy=pi_g)
    none = am.offpolicy_evaluate(ds, pi_g, None, method="wis", seed=0, behaviour_policy=pi_g)
    assert (same.value, same.ci95) == (none.value, none.ci95)
    assert not none.diagnostics["importance"]["joint"]


def test_joint_weights_by_hand() -> None:
    """One episode of two steps, n = 2, k = 1, |S_l| = 2, |A_l| = 2, uniform behaviour."""
    counts = [[[1, 0], [0, 1]], [[2, 0], [0, 0]]]  # step 0: (x0, a0), (x1, a1); step 1: 2 x (x0, a0)
    ds = op.OfflineDataset.from_arrays(
        s_g=[0, 0], h=[[1, 0], [1, 0]], a_g=[0, 0], r=[1.0, 2.0], s_g_next=[0, 0],
        h_next=[[1, 0], [1, 0]], k=1, n=2, spaces={"S_g": 1, "A_g": 1, "S_l": 2, "A_l": 2},
        gamma=0.5, info={"behaviour": {"kind": "uniform"}}, local_counts=counts,
        local_behaviour=np.full((2, 1, 2), 0.5))
    pi_l = am.LocalPolicy(np.array([[[0.75, 0.25]], [[0.5, 0.5]]]))
    # step 0: (0.75 / 0.5) (0.5 / 0.5) = 1.5; step 1: (0.75 / 0.5)^2 = 2.25, cumulative 3.375
    est = am.offpolicy_evaluate(ds, am.GlobalPolicy(1, [[0, 0]], 1), pi_l, method="is",
                                bootstrap=0)
    assert est.value == pytest.approx(1.5 * 1.0 + 0.5 * 3.375 * 2.0)
    # a local policy that never plays a logged action: the weight is 0 from there on
    never = am.LocalPolicy(np.array([[[1.0, 0.0]], [[1.0, 0.0]]]))
    est = am.offpolicy_evaluate(ds, am.GlobalPolicy(1, [[0, 0]], 1), never, method="is",
                                bootstrap=0)
    assert est.value == 0.0 and est.diagnostics["importance"]["rows_local_impossible"] == 1
    assert "weights-vanish" in est.flags


def test_joint_policy_errors(joint_case, small_log) -> None:
    game, pi_g, pi_l, mu, *_, ds = joint_case
    with pytest.raises(ValueError, match=r"pi_l: method='fqe'.*method='is' or 'wis'"):
        am.offpolicy_evaluate(ds, pi_g, pi_l, method="fqe", behaviour_policy=pi_g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fqe with the logged local policy is fine
        assert am.offpolicy_evaluate(ds, pi_g, mu, method="fqe", bootstrap=0).method == "fqe"
    with pytest.raises(ValueError, match=r"pi_l: the log carries no local actions.*"
                                         r"local_actions=True.*--local-actions"):
        am.offpolicy_evaluate(small_log, pi_g, pi_l, method="wis")
    with pytest.raises(ValueError, match=r"pi_l.table: expected shape \(\|S_l\|, \|S_g\|, "
                                         r"\|A_l\|\) = \(3, 2, 2\)"):
        am.offpolicy_evaluate(ds, pi_g, np.full((3, 2, 3), 1 / 3), method="wis")
    with pytest.raises(ValueError, match="pi_l: expected an altmarl.LocalPolicy"):
        am.offpolicy_evaluate(ds, pi_g, "uniform", method="wis")
    no_mu = op.OfflineDataset.from_arrays(ds.s_g, ds.h, ds.a_g, ds.r, ds.s_g_next, ds.h_next,
                                          k=3, spaces=game, gamma=ds.gamma, episode=ds.episode,
                                          t=ds.t, info=ds.info, local_counts=ds.local_counts)
    with pytest.raises(ValueError, match="local_behaviour"):
        am.offpolicy_evaluate(no_mu, pi_g, pi_l, method="wis", behaviour_policy=pi_g)


def test_recording_local_actions_changes_nothing_else(local_log) -> None:
    game, ds = local_log
    plain = op.record_logs(game, 3, episodes=6, horizon=10, seed=0)
    for f in ("s_g", "h", "a_g", "r", "s_g_next", "h_next", "episode", "t"):
        assert np.array_equal(getattr(ds, f), getattr(plain, f)), f
    assert plain.local_counts is None and ds.local_counts.shape == (60, 3, 2)
    assert (ds.local_counts.sum(axis=(1, 2)) == 3).all()
    # k = n: the sample is the population
    assert np.array_equal(ds.local_counts.sum(axis=2), ds.h)
    assert np.array_equal(ds.local_behaviour, am.LocalPolicy.uniform(game).table)


def test_local_actions_round_trip(tmp_path, local_log) -> None:
    game, ds = local_log
    meta_path = ds.save(tmp_path / "log.csv.gz")
    meta = json.loads(meta_path.read_text())
    assert meta["local_actions"] == "population" and meta["local_behaviour"]["kind"] == "table"
    assert meta["columns"][-6:] == op.local_columns(3, 2) == ["N_0_0", "N_0_1", "N_1_0",
                                                               "N_1_1", "N_2_0", "N_2_1"]
    back = op.load_dataset(tmp_path / "log.csv.gz", game=game)
    assert np.array_equal(back.local_counts, ds.local_counts)
    assert np.array_equal(back.local_behaviour, ds.local_behaviour)
    # a uniform behaviour written by hand
    meta["local_behaviour"] = {"kind": "uniform"}
    meta_path.write_text(json.dumps(meta))
    assert np.array_equal(op.load_dataset(meta_path).local_behaviour, ds.local_behaviour)
    # an old log (no local actions) still loads, with local_counts None
    assert op.load_dataset(op.record_logs(game, 3, 2, 3).save(tmp_path / "old")).local_counts \
        is None


def _saved(ds: op.OfflineDataset) -> Path:
    d = Path(tempfile.mkdtemp())
    meta_path = ds.save(d / "log.csv")
    meta = json.loads(meta_path.read_text())
    del meta["sha256"]
    meta_path.write_text(json.dumps(meta))
    return d


def _edit(d: Path, csv_fn=None, meta_fn=None) -> None:
    if csv_fn is not None:
        p = d / "log.csv"
        p.write_text("\n".join(csv_fn(p.read_text().splitlines())) + "\n")
    if meta_fn is not None:
        p = d / "log.json"
        meta = json.loads(p.read_text())
        meta_fn(meta)
        p.write_text(json.dumps(meta))


def _cell(lines: list[str], row: int, col: str, value: str) -> list[str]:
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(col)] = value
    lines[row + 1] = ",".join(cells)
    return lines


def _move(lines: list[str], row: int, src: str, dst: str) -> list[str]:
    """Move one agent from column ``src`` to ``dst`` (the row still sums to n)."""
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    i, j = header.index(src), header.index(dst)
    cells[i], cells[j] = str(int(cells[i]) - 1), str(int(cells[j]) + 1)
    lines[row + 1] = ",".join(cells)
    return lines


def _drop(lines: list[str], col: str) -> list[str]:
    j = lines[0].split(",").index(col)
    return [",".join(c for i, c in enumerate(line.split(",")) if i != j) for line in lines]


def _row_with(ds: op.OfflineDataset, x: int) -> int:
    return int(np.flatnonzero(ds.local_counts[:, x].sum(axis=1) > 0)[0])


LOCAL_CORRUPTIONS = [
    ("missing N column", lambda ds: (lambda ls: _drop(ls, "N_1_0"), None),
     r"missing column\(s\) \['N_1_0'\]"),
    ("N sum", lambda ds: (lambda ls: _cell(ls, 2, "N_0_0", "7"), None),
     r"row 2 \(line 4\): .*expected a count of agents in 0..n = 3"),
    ("N negative", lambda ds: (lambda ls: _cell(ls, 1, "N_2_1", "-1"), None), "0..n = 3"),
    ("N not summing to n", lambda ds: (lambda ls: _cell(
        ls, 0, "N_0_0", str(int(ds.local_counts[0, 0, 0]) + 1)), None),
     "local-action counts sum to 4: expected the population n = 3"),
    # k = n: h_0 = N_0_0 + N_0_1, so one agent moved out of state 0 leaves h_0 > N_0
    ("sample larger than population", lambda ds: (lambda ls: _move(
        ls, _row_with(ds, 0), f"N_0_{int(np.argmax(ds.local_counts[_row_with(ds, 0), 0]))}",
        "N_2_0"), None), "the sample is drawn from the population"),
    ("float count", lambda ds: (lambda ls: _cell(ls, 3, "N_1_1", "1.0"), None),
     "expected an integer"),
    ("undeclared N columns", lambda ds: (None, lambda m: (m.pop("local_actions"),
                                                          m.pop("local_behaviour"))),
     "look like local-action counts: declare them"),
    ("bad local_actions", lambda ds: (None, lambda m: m.update(local_actions="sample")),
     "local_actions = 'sample'"),
    ("no A_l", lambda ds: (None, lambda m: m["spaces"].pop("A_l")), "spaces.A_l"),
    ("no n", lambda ds: (None, lambda m: m.update(n=None)), "needs the population size n"),
    ("behaviour kind", lambda ds: (None, lambda m: m.update(local_behaviour={"kind": "greedy"})),
     "local_behaviour = "),
    ("behaviour shape", lambda ds: (None, lambda m: m["local_behaviour"].update(
        table=[[[0.5, 0.5]]])), r"local_behaviour.table: expected .* \(3, 2, 2\)"),
    ("behaviour row sum", lambda ds: (None, lambda m: m["local_behaviour"]["table"][1][0]
                                      .__setitem__(0, 0.9)),
     r"local_behaviour.table\[1\]\[0\] sums to 1.4"),
    ("behaviour text", lambda ds: (None, lambda m: m["local_behaviour"]["table"][0][0]
                                   .__setitem__(1, "0.5")), "nested lists of numbers"),
    ("behaviour without actions", lambda ds: (None, lambda m: m.pop("local_actions")),
     "local_behaviour: recorded without local_actions"),
]


@pytest.mark.parametrize("name, make, match", LOCAL_CORRUPTIONS,
                         ids=[c[0] for c in LOCAL_CORRUPTIONS])
def test_loader_rejects_bad_local_actions(local_log, name, make, match) -> None:
    _, ds = local_log
    d = _saved(ds)
    try:
        _edit(d, *make(ds))
        with pytest.raises(ValueError, match=match):
            op.load_dataset(d / "log.csv")
    finally:
        shutil.rmtree(d)


def test_loader_rejects_actions_the_behaviour_cannot_play(local_log) -> None:
    game, ds = local_log
    mu = np.full((3, 2, 2), 0.5)
    x, a = (int(v) for v in np.argwhere(ds.local_counts[0] > 0)[0])
    mu[x, int(ds.s_g[0]), a], mu[x, int(ds.s_g[0]), 1 - a] = 0.0, 1.0
    with pytest.raises(ValueError, match=rf"'N_{x}_{a}', row 0: .* probability 0"):
        op.OfflineDataset.from_arrays(ds.s_g, ds.h, ds.a_g, ds.r, ds.s_g_next, ds.h_next, k=3,
                                      spaces=game, gamma=ds.gamma, episode=ds.episode, t=ds.t,
                                      local_counts=ds.local_counts, local_behaviour=mu)
    with pytest.raises(ValueError, match="local_counts: expected shape"):
        op.OfflineDataset.from_arrays(ds.s_g, ds.h, ds.a_g, ds.r, ds.s_g_next, ds.h_next, k=3,
                                      spaces=game, gamma=ds.gamma, episode=ds.episode, t=ds.t,
                                      local_counts=ds.local_counts[:, :2])
    with pytest.raises(ValueError, match="A_l"):
        op.OfflineDataset.from_arrays(ds.s_g, ds.h, ds.a_g, ds.r, ds.s_g_next, ds.h_next, k=3,
                                      spaces={"S_g": 2, "A_g": 3, "S_l": 3}, n=3,
                                      gamma=ds.gamma, episode=ds.episode, t=ds.t,
                                      local_counts=ds.local_counts)


_TEXT = st.one_of(
    st.integers(-2, 5).map(str),
    st.sampled_from(["", "1.0", "+1", " 2 ", "0x1", "1e0", "None", "--1"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126,
                                   blacklist_characters=',"'), max_size=3),
)


@settings(max_examples=25, deadline=None)
@given(row=st.integers(0, 59), col=st.sampled_from(op.local_columns(3, 2)), text=_TEXT,
       fix=st.booleans())
def test_local_counts_never_load_silently_wrong(local_log, row, col, text, fix) -> None:
    """Any edit of a local-action count (and, with ``fix``, a compensating edit of another
    cell of the same row) either raises ValueError or loads exactly what the cells say with
    every invariant of the format intact."""
    _, ds = local_log
    d = _saved(ds)
    try:
        other = None
        try:
            int(text)
        except ValueError:
            fix = False
        if fix:
            x, a = (int(v) for v in col[2:].split("_"))
            flat = ds.local_counts[row].ravel().copy()
            j = (x * 2 + a + 1) % 6
            delta = int(text) - int(flat[x * 2 + a])
            other = (op.local_columns(3, 2)[j], str(int(flat[j]) - delta))

        def edit(ls: list[str]) -> list[str]:
            ls = _cell(ls, row, col, text)
            return _cell(ls, row, *other) if other is not None else ls

        _edit(d, edit)
        try:
            back = op.load_dataset(d / "log.csv")
        except ValueError:
            return
        x, a = (int(v) for v in col[2:].split("_"))
        assert back.local_counts[row, x, a] == int(text)
        N = back.local_counts
        assert (N >= 0).all() and (N.sum(axis=(1, 2)) == 3).all()
        assert (back.h <= N.sum(axis=2)).all()
    finally:
        shutil.rmtree(d)


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(
    st.none(), st.integers(), st.text(max_size=5),
    st.fixed_dictionaries({"kind": st.sampled_from(["uniform", "table", "x"])}),
    st.fixed_dictionaries({"kind": st.just("table"), "table": st.recursive(
        st.one_of(st.floats(allow_nan=True), st.integers(-1, 2), st.text(max_size=2)),
        lambda c: st.lists(c, min_size=0, max_size=3), max_leaves=20)})))
def test_local_behaviour_validator(value) -> None:
    """The sidecar's local_behaviour is either refused with a ValueError naming it or is a
    valid (|S_l|, |S_g|, |A_l|) table of probabilities."""
    sp = {"S_g": 1, "A_g": 2, "S_l": 2, "A_l": 2}
    try:
        t = op.check_local_behaviour(value, sp)
    except ValueError as exc:
        assert "local_behaviour" in str(exc)
        return
    assert t.shape == (2, 1, 2) and (t >= 0).all() and np.allclose(t.sum(axis=2), 1.0)


def test_cli_record_and_evaluate_a_joint_policy(tmp_path) -> None:
    runner = CliRunner()
    sets = [x for kv in ENV.items() for x in ("--set", f"{kv[0]}={kv[1]}")]
    game = am.envs.make("random", **ENV)
    mu = am.LocalPolicy.uniform(game)
    det = am.LocalPolicy.deterministic(game, np.zeros((3, 2), np.int64))
    am.LocalPolicy(0.8 * mu.table + 0.2 * det.table).save(tmp_path / "pl.npz", game)
    out = tmp_path / "d"
    res = runner.invoke(app, ["logs", "record", "random", "--k", "3", "--episodes", "200",
                              "--horizon", "20", "--out", str(out), "--no-progress",
                              "--local-actions", *sets])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["logs", "info", str(out)])
    assert res.exit_code == 0 and "local actions" in res.output
    res = runner.invoke(app, ["logs", "evaluate", str(out) + ".csv", "--policy", "uniform",
                              "--env", "random", *sets, "--k", "3", "--local-policy",
                              str(tmp_path / "pl.npz"), "--bootstrap", "20",
                              "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "e.json").read_text())
    assert [r["method"] for r in rows] == ["is", "wis"]  # FQE cannot reweight local actions
    assert "joint policy" in res.output and "global ratio alone" in res.output
    assert all(r["diagnostics"]["importance"]["joint"] for r in rows)
    res = runner.invoke(app, ["logs", "evaluate", str(out) + ".csv", "--policy", "uniform",
                              "--env", "random", *sets, "--k", "3", "--local-policy",
                              str(tmp_path / "pl.npz"), "--method", "fqe"])
    assert res.exit_code == 2 and "method='fqe'" in res.output
    # a log without local actions: the error says how to record them
    res = runner.invoke(app, ["logs", "record", "random", "--k", "3", "--episodes", "5",
                              "--horizon", "5", "--out", str(tmp_path / "old"),
                              "--no-progress", *sets])
    res = runner.invoke(app, ["logs", "evaluate", str(tmp_path / "old.csv"), "--policy",
                              "uniform", "--env", "random", *sets, "--k", "3",
                              "--local-policy", str(tmp_path / "pl.npz"), "--method", "pdis"])
    assert res.exit_code == 2 and "--local-actions" in res.output
