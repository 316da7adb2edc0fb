"""Off-policy G-LEARN from logged data (paper Appendix E, eq. 38): the log format, the
recorder, the validating loader and the learner."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import altmarl as am
from altmarl import offpolicy as op
from altmarl import stochastic as sto
from altmarl.cli import app
from altmarl.histogram import num_histograms

# n = k: the logged (s_g, h) process is exactly the k-agent surrogate, so eq. 38 converges
# to the fixed point of generative G-LEARN with the exact expectation (m=None).
ENV = {"n_sg": 2, "n_ag": 3, "n_sl": 3, "n_al": 2, "n": 3, "gamma": 0.8, "seed": 2}


@pytest.fixture(scope="module")
def game() -> am.TabularGame:
    return am.envs.make("random", **ENV)


@pytest.fixture(scope="module")
def small_log(game) -> op.OfflineDataset:
    return op.record_logs(game, 3, episodes=6, horizon=10, seed=0)


@pytest.fixture(scope="module")
def reference(game) -> am.GlobalPolicy:
    return am.g_learn(game, am.LocalPolicy.uniform(game), 3, m=None, tol=1e-12)


# ---------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------


def test_record_logs_shapes_and_chaining(game, small_log) -> None:
    ds = small_log
    assert len(ds) == 60 and ds.k == 3 and ds.n == 3 and ds.gamma == 0.8
    assert (ds.h.sum(axis=1) == 3).all() and (ds.h_next.sum(axis=1) == 3).all()
    # the next state of step t is the state of step t + 1 (h' is the next row's fresh sample)
    same_ep = ds.episode[1:] == ds.episode[:-1]
    assert np.array_equal(ds.s_g_next[:-1][same_ep], ds.s_g[1:][same_ep])
    assert np.array_equal(ds.h_next[:-1][same_ep], ds.h[1:][same_ep])
    assert np.array_equal(ds.t, np.tile(np.arange(10), 6))
    again = op.record_logs(game, 3, episodes=6, horizon=10, seed=0)
    assert np.array_equal(again.r, ds.r) and np.array_equal(again.h, ds.h)


def test_observed_reward_uses_the_sampled_agents_actions() -> None:
    """With a deterministic pi_l the sampled agents' actions are known from h: the logged
    reward must be r_g + (1/k) sum_x h[x] r_l(x, s_g, pi(x, s_g)) exactly (n > k)."""
    g = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=3, n=40, seed=5)
    acts = np.array([[0, 2], [1, 1], [2, 0]])
    pi_l = am.LocalPolicy.deterministic(g, acts)
    ds = op.record_logs(g, 4, episodes=5, horizon=20, pi_l=pi_l, seed=1)
    rl = g.r_l[np.arange(3)[None, :], ds.s_g[:, None], acts[np.arange(3)[None, :], ds.s_g[:, None]]]
    expected = g.r_g[ds.s_g, ds.a_g] + (ds.h * rl).sum(axis=1) / 4
    assert np.allclose(ds.r, expected, atol=1e-12)


def test_observed_reward_is_unbiased_for_r_k() -> None:
    """Stochastic pi_l, n > k: E[r | s_g, h, a_g] = r_k(s_g, h, a_g) (SPEC 4)."""
    g = am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=3, n=50, seed=6)
    pi_l = am.LocalPolicy.uniform(g)
    ds = op.record_logs(g, 3, episodes=128, horizon=40, pi_l=pi_l, seed=2)
    rbar = g.local_reward(pi_l.table)  # (S_l, S_g)
    r_k = g.r_g[ds.s_g, ds.a_g] + (ds.h * rbar[:, ds.s_g].T).sum(axis=1) / 3
    resid = ds.r - r_k
    assert abs(resid.mean()) < 4 * resid.std() / np.sqrt(resid.size)
    assert resid.std() > 0  # the actions are random, so the reward is too


def test_epsilon_greedy_behaviour(game, reference) -> None:
    ds = op.record_logs(game, 3, episodes=20, horizon=50, behaviour="epsilon-greedy",
                        pi_g=reference, epsilon=0.3, seed=3)
    agree = (ds.a_g == reference.act(ds.s_g, ds.h)).mean()
    assert abs(agree - (0.7 + 0.3 / 3)) < 0.03
    assert ds.info["behaviour"] == {"kind": "epsilon-greedy", "epsilon": 0.3,
                                    "policy": ds.info["behaviour"]["policy"]}
    with pytest.raises(ValueError, match="Assumption E.1"):
        op.record_logs(game, 3, 2, 2, behaviour="epsilon-greedy", pi_g=reference, epsilon=0.0)
    with pytest.raises(ValueError, match="needs a GlobalPolicy"):
        op.record_logs(game, 3, 2, 2, behaviour="epsilon-greedy")
    with pytest.raises(ValueError, match="logged k"):
        op.record_logs(game, 2, 2, 2, behaviour="epsilon-greedy", pi_g=reference)
    with pytest.raises(ValueError, match="behaviour"):
        op.record_logs(game, 3, 2, 2, behaviour="greedy")


def test_record_with_a_reward_model(game) -> None:
    model = sto.RewardModel.from_game(game, noise_l=sto.uniform(0.3))
    ds = op.record_logs(game, 3, episodes=4, horizon=30, reward_model=model, seed=4)
    det = op.record_logs(game, 3, episodes=4, horizon=30, seed=4)
    assert ds.info["reward"]["kind"] == "stochastic"
    assert not np.allclose(ds.r, det.r)
    lo = model.bounds_g[0] + model.bounds_l[0]
    hi = model.bounds_g[1] + model.bounds_l[1]
    assert ds.r.min() >= lo and ds.r.max() <= hi


# ---------------------------------------------------------------------------
# the file format
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["log", "log.csv", "log.csv.gz"])
def test_save_load_round_trip(tmp_path, game, small_log, name) -> None:
    meta_path = small_log.save(tmp_path / name)
    assert meta_path.name == "log.json"
    for path in (tmp_path / name, meta_path):
        back = op.load_dataset(path, game=game, k=3)
        for f in ("s_g", "h", "a_g", "r", "s_g_next", "h_next", "episode", "t"):
            assert np.array_equal(getattr(back, f), getattr(small_log, f)), f
        assert back.info["behaviour"] == {"kind": "uniform"}
    meta = json.loads(meta_path.read_text())
    assert meta["columns"] == op.columns(3) and meta["rows"] == 60
    assert meta["columns"][:4] == ["episode", "t", "s_g", "h_0"] and "h'_2" in meta["columns"]


def test_from_arrays_defaults_to_one_trajectory(game) -> None:
    ds = op.OfflineDataset.from_arrays([0, 1], [[3, 0, 0], [1, 1, 1]], [0, 2], [0.5, 1.0],
                                       [1, 0], [[1, 1, 1], [0, 0, 3]], k=3, spaces=game,
                                       gamma=0.8)
    assert ds.episode.tolist() == [0, 0] and ds.t.tolist() == [0, 1] and ds.n == 3
    with pytest.raises(ValueError, match="expected integers"):
        op.OfflineDataset.from_arrays(["a"], [[3, 0, 0]], [0], [0.5], [1], [[3, 0, 0]], k=3,
                                      spaces=game, gamma=0.8)
    with pytest.raises(ValueError, match="shape"):
        op.OfflineDataset.from_arrays([0], [[3, 0]], [0], [0.5], [1], [[3, 0, 0]], k=3,
                                      spaces=game, gamma=0.8)
    with pytest.raises(ValueError, match="gamma"):
        op.OfflineDataset.from_arrays([0], [[3, 0, 0]], [0], [0.5], [1], [[3, 0, 0]], k=3,
                                      spaces=game, gamma=1.0)


def _fresh_log(ds: op.OfflineDataset, keep_sha: bool = False) -> Path:
    d = Path(tempfile.mkdtemp())
    meta_path = ds.save(d / "log.csv")
    if not keep_sha:
        meta = json.loads(meta_path.read_text())
        del meta["sha256"]
        meta_path.write_text(json.dumps(meta))
    return d


def _edit_csv(d: Path, fn: Any) -> None:
    p = d / "log.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(fn(lines)) + "\n")


def _edit_meta(d: Path, fn: Any) -> None:
    p = d / "log.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def _set_cell(lines: list[str], row: int, col: str, value: str) -> list[str]:
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(col)] = value
    lines[row + 1] = ",".join(cells)
    return lines


def _drop_col(lines: list[str], col: str) -> list[str]:
    j = lines[0].split(",").index(col)
    return [",".join(c for i, c in enumerate(line.split(",")) if i != j) for line in lines]


CORRUPTIONS: list[tuple[str, Any, Any, str]] = [
    ("missing column", lambda ls: _drop_col(ls, "r"), None, r"missing column\(s\) \['r'\]"),
    ("missing h column", lambda ls: _drop_col(ls, "h'_1"), None, "missing column"),
    ("unknown column", lambda ls: [ls[0] + ",note"] + [x + ",1" for x in ls[1:]], None,
     "unknown column"),
    ("duplicate column", lambda ls: [ls[0].replace("a_g", "r")] + ls[1:], None, "duplicate"),
    ("s_g out of range", lambda ls: _set_cell(ls, 4, "s_g", "2"), None,
     r"column 's_g', row 4 \(line 6\): value 2 is out of range: expected an integer in 0..1"),
    ("negative next state", lambda ls: _set_cell(ls, 0, "s_g'", "-1"), None, "out of range"),
    ("action out of range", lambda ls: _set_cell(ls, 2, "a_g", "3"), None, "0..2"),
    ("histogram sum", lambda ls: _set_cell(ls, 7, "h_0", "9"), None, "expected k = 3"),
    ("next histogram sum", lambda ls: _set_cell(ls, 1, "h'_2", "0"), None, "expected k = 3"),
    ("NaN reward", lambda ls: _set_cell(ls, 3, "r", "nan"), None, "finite number"),
    ("inf reward", lambda ls: _set_cell(ls, 3, "r", "inf"), None, "finite number"),
    ("float in int column", lambda ls: _set_cell(ls, 5, "h_1", "1.5"), None,
     r"column 'h_1', row 5 \(line 7\): value '1.5': expected an integer"),
    ("text in int column", lambda ls: _set_cell(ls, 5, "a_g", "two"), None, "expected an integer"),
    ("text reward", lambda ls: _set_cell(ls, 5, "r", "high"), None, "expected a number"),
    ("empty cell", lambda ls: _set_cell(ls, 5, "episode", ""), None, "expected an integer"),
    ("code in a cell", lambda ls: _set_cell(ls, 0, "r", "__import__('os').getcwd()"), None,
     "expected a number"),
    ("short row", lambda ls: ls[:3] + [ls[3].rsplit(",", 1)[0]] + ls[4:], None,
     r"row 2 \(line 4\) has 11 fields: expected 12"),
    ("long row", lambda ls: ls[:3] + [ls[3] + ",7"] + ls[4:], None, "has 13 fields"),
    ("whitespace line", lambda ls: ls[:3] + ["   "] + ls[3:], None, "has 1 fields"),
    ("quoted junk", lambda ls: _set_cell(ls, 1, "t", '"1,2"'), None, "expected an integer"),
    ("duplicate step", lambda ls: ls[:7] + [ls[6]] + ls[8:], None,
     r"row 6 \(line 8\): \(episode, t\) = \(0, 5\) appears twice"),
    ("no rows", lambda ls: ls[:1], None, "no data rows"),
    ("rows mismatch", lambda ls: ls[:-1], None, "rows = 60"),
    ("wrong format", None, lambda m: m.update(format="altmarl.global_policy"), "format"),
    ("future version", None, lambda m: m.update(version=2), "version 2"),
    ("k as text", None, lambda m: m.update(k="3"), r"k = '3'"),
    ("k mismatch with data", None, lambda m: m.update(k=2), "expected k = 2"),
    ("missing spaces", None, lambda m: m.pop("spaces"), "spaces"),
    ("bad space", None, lambda m: m["spaces"].update(S_g=0), "spaces.S_g"),
    ("S_l mismatch", None, lambda m: m["spaces"].update(S_l=2), "columns"),
    ("gamma 1", None, lambda m: m.update(gamma=1.0), "gamma"),
    ("gamma text", None, lambda m: m.update(gamma="0.9"), "gamma"),
    ("k > n", None, lambda m: m.update(n=2), "k <= n"),
    ("path in data", None, lambda m: m.update(data="../log.csv"), "plain file name"),
    ("header differs from metadata", None, lambda m: m.update(columns=m["columns"][::-1]),
     "differs from the metadata"),
]


@pytest.mark.parametrize("name, csv_fn, meta_fn, match", CORRUPTIONS,
                         ids=[c[0] for c in CORRUPTIONS])
def test_loader_rejects_bad_data(small_log, name, csv_fn, meta_fn, match) -> None:
    d = _fresh_log(small_log)
    try:
        if csv_fn is not None:
            _edit_csv(d, csv_fn)
        if meta_fn is not None:
            _edit_meta(d, meta_fn)
        with pytest.raises(ValueError, match=match):
            op.load_dataset(d / "log.csv")
    finally:
        shutil.rmtree(d)


def test_loader_accepts_blank_lines_crlf_and_bom(small_log) -> None:
    d = _fresh_log(small_log)
    try:
        p = d / "log.csv"
        lines = p.read_text().splitlines()
        text = "\ufeff" + "\r\n".join(lines[:5] + [""] + lines[5:]) + "\r\n\r\n"
        p.write_bytes(text.encode("utf-8"))
        back = op.load_dataset(p)
        assert np.array_equal(back.r, small_log.r) and np.array_equal(back.h, small_log.h)
        # line numbers in messages count the blank line
        _edit_csv(d, lambda ls: _set_cell(ls, 6, "a_g", "7") if ls[6] else ls)
        with pytest.raises(ValueError, match=r"row 5 \(line 8\)"):
            op.load_dataset(p)
    finally:
        shutil.rmtree(d)


def test_loader_checks_metadata_against_data_and_game(small_log, game) -> None:
    d = _fresh_log(small_log, keep_sha=True)
    try:
        _edit_csv(d, lambda ls: _set_cell(ls, 0, "r", "0.25"))
        with pytest.raises(ValueError, match="SHA-256"):
            op.load_dataset(d / "log.csv")
        small_log.save(d / "log.csv")
        other = am.envs.make("random", **{**ENV, "seed": 9})
        with pytest.raises(ValueError, match="fingerprint"):
            op.load_dataset(d / "log.csv", game=other)
        assert len(op.load_dataset(d / "log.csv", game=other, strict=False)) == 60
        bigger = am.envs.make("random", **{**ENV, "n_sg": 3})
        with pytest.raises(ValueError, match="spaces"):
            op.load_dataset(d / "log.csv", game=bigger)
        with pytest.raises(ValueError, match="k = 2 was requested"):
            op.load_dataset(d / "log.csv", k=2)
        (d / "log.json").write_text("{not json")
        with pytest.raises(ValueError, match="not valid JSON"):
            op.load_dataset(d / "log.csv")
        (d / "log.json").write_text('{"format": "altmarl.offpolicy_log", "gamma": NaN}')
        with pytest.raises(ValueError, match="NaN"):
            op.load_dataset(d / "log.csv")
        (d / "log.json").unlink()
        with pytest.raises(FileNotFoundError, match="sidecar"):
            op.load_dataset(d / "log.csv")
    finally:
        shutil.rmtree(d)


_TEXT = st.one_of(
    st.integers(-3, 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "1.0", "1e0", "+1", " 2 ", "0x1", "None", "True", "1_0", "--1"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126,
                                   blacklist_characters=',"'), max_size=4),
)


@given(row=st.integers(0, 59), col=st.sampled_from(op.columns(3)), text=_TEXT)
def test_loader_never_returns_a_silently_wrong_dataset(small_log, row, col, text) -> None:
    """Any single-cell edit either raises ValueError or loads exactly what the cell says,
    with every invariant of the format intact."""
    d = _fresh_log(small_log)
    try:
        _edit_csv(d, lambda ls: _set_cell(ls, row, col, text))
        try:
            ds = op.load_dataset(d / "log.csv")
        except ValueError:
            return
        field = {"s_g'": "s_g_next"}.get(col, col)
        if col.startswith("h'_"):
            got = ds.h_next[row, int(col[3:])]
        elif col.startswith("h_"):
            got = ds.h[row, int(col[2:])]
        else:
            got = getattr(ds, field)[row]
        expected = float(text) if col == "r" else int(text)
        assert got == expected
        assert np.isfinite(ds.r).all()
        assert ((ds.s_g >= 0) & (ds.s_g < 2)).all() and ((ds.a_g >= 0) & (ds.a_g < 3)).all()
        assert (ds.h.sum(axis=1) == 3).all() and (ds.h_next.sum(axis=1) == 3).all()
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------------------
# eq. 38
# ---------------------------------------------------------------------------


def test_sequential_update_is_eq_38(game) -> None:
    """Three hand-made transitions, updates computed by hand."""
    h0, h1 = [3, 0, 0], [1, 1, 1]
    ds = op.OfflineDataset.from_arrays([0, 1, 0], [h0, h1, h0], [2, 0, 2], [1.0, 0.5, 2.0],
                                       [1, 0, 1], [h1, h0, h1], k=3, spaces=game, gamma=0.5)
    pol = op.g_learn_offpolicy(game, ds, 3, schedule="constant", alpha=0.5)
    from altmarl.histogram import rank

    nh = num_histograms(3, 3)
    Q = np.zeros((2 * nh, 3))
    s0, s1 = 0 * nh + int(rank(np.array(h0), 3)), 1 * nh + int(rank(np.array(h1), 3))
    Q[s0, 2] += 0.5 * (1.0 + 0.5 * Q[s1].max() - Q[s0, 2])
    Q[s1, 0] += 0.5 * (0.5 + 0.5 * Q[s0].max() - Q[s1, 0])
    Q[s0, 2] += 0.5 * (2.0 + 0.5 * Q[s1].max() - Q[s0, 2])
    assert pol.q is not None
    assert np.allclose(pol.q.reshape(-1, 3), Q)
    # by hand: 0.5, then Q(s1, 0) = 0.375, then 0.5 + 0.5 (2 + 0.5 * 0.375 - 0.5)
    assert pol.q.reshape(-1, 3)[s0, 2] == pytest.approx(1.34375)
    assert pol.q.reshape(-1, 3)[s1, 0] == pytest.approx(0.375)
    assert pol.act(0, h0) == 2
    # rescaled linear: the first visit has step 1, so Q(s0, 2) = r after one update
    pol1 = op.g_learn_offpolicy(game.spaces, ds, 3)
    assert pol1.q is not None and pol1.q.reshape(-1, 3)[s0, 2] > 1.0


def test_synchronous_mode_is_value_iteration_on_the_empirical_model(game, small_log) -> None:
    pol = op.g_learn_offpolicy(game, small_log, mode="synchronous", tol=1e-12)
    cur, nxt = small_log.state_index()
    A, g = 3, 0.8
    P = num_histograms(3, 3) * 2 * A
    # certainty-equivalent model of the log, solved by plain value iteration
    Q = np.zeros(P)
    sa = cur * A + small_log.a_g
    cnt = np.bincount(sa, minlength=P)
    for _ in range(400):
        V = Q.reshape(-1, A).max(axis=1)
        tgt = np.bincount(sa, weights=small_log.r + g * V[nxt], minlength=P)
        Q = np.where(cnt > 0, tgt / np.maximum(cnt, 1), Q)
    assert pol.q is not None
    assert np.allclose(pol.q.reshape(-1), Q, atol=1e-9)
    assert pol.info["last_epoch_change"] <= 1e-12


@pytest.mark.parametrize("mode, epochs", [("sequential", 3), ("synchronous", None)])
def test_offpolicy_q_approaches_generative_fixed_point(game, reference, mode, epochs) -> None:
    """n = k: more data, smaller ||Q - Q_hat||; the policy's exact value approaches that of
    generative G-LEARN (m=None)."""
    pi_l = am.LocalPolicy.uniform(game)
    errs, gaps = [], []
    for episodes in (10, 60, 360):
        ds = op.record_logs(game, 3, episodes=episodes, horizon=50, seed=1)
        pol = op.g_learn_offpolicy(game, ds, 3, epochs=epochs, mode=mode)
        cmp = op.compare_generative(game, pi_l, pol, ds, reference=reference)
        assert cmp["value_method"] == "exact"
        errs.append(cmp["q_err_sup"])
        gaps.append(cmp["value_gap"])
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05 < errs[0]
    assert gaps[2] <= gaps[0] and gaps[2] < 1e-9
    assert min(gaps) >= -1e-9  # nothing beats the best response


def test_learner_validation(game, small_log, tmp_path) -> None:
    with pytest.raises(ValueError, match="logged with k = 3"):
        op.g_learn_offpolicy(game, small_log, 2)
    other = am.envs.make("random", **{**ENV, "n_ag": 2})
    with pytest.raises(ValueError, match="A_g"):
        op.g_learn_offpolicy(other, small_log)
    for kw, match in ((dict(schedule="harmonic"), "schedule"), (dict(mode="batch"), "mode"),
                      (dict(schedule="polynomial", omega=0.3), "omega"),
                      (dict(schedule="constant", alpha=0.0), "alpha"),
                      (dict(epochs=0), "epochs"), (dict(gamma=1.5), "gamma"),
                      (dict(q_init=float("nan")), "q_init")):
        with pytest.raises(ValueError, match=match):
            op.g_learn_offpolicy(game, small_log, **kw)
    moved = am.envs.make("random", **{**ENV, "seed": 7})
    with pytest.raises(ValueError, match="fingerprint"):
        op.g_learn_offpolicy(moved, small_log)
    assert op.g_learn_offpolicy(moved, small_log, strict=False).k == 3
    with pytest.raises(ValueError, match="spaces.S_l: missing"):
        op.g_learn_offpolicy({"S_g": 2, "A_g": 3}, small_log)
    # a path works as well, and the result saves / loads as a policy file
    small_log.save(tmp_path / "log")
    pol = op.g_learn_offpolicy(game, tmp_path / "log.csv", epochs=2, seed=3)
    assert pol.info["epochs"] == 2 and pol.info["updates"] == 120
    back = am.GlobalPolicy.load(pol.save(tmp_path / "pol.npz", game=game), game=game)
    assert np.array_equal(back.actions, pol.actions)


def test_step_sizes() -> None:
    a = op.step_sizes("rescaled-linear", 4, 0.9)
    assert np.allclose(a, 1 / (1 + 0.1 * np.arange(4)))
    assert np.allclose(op.step_sizes("polynomial", 3, 0.9, omega=1.0), [1, 1 / 2, 1 / 3])
    assert np.allclose(op.step_sizes("constant", 2, 0.9, alpha=0.2), 0.2)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


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


def test_tracked_next_histogram_targets_q_hat_for_n_above_k() -> None:
    """n > k: with h' = the same k agents after the step, the logged transition is the
    surrogate's, so the log's fixed point is Q_hat; with a fresh h' it is another one."""
    g = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=12, gamma=0.8, seed=3,
                     concentration=0.3)
    pi_l = am.LocalPolicy.uniform(g)
    ref = am.g_learn(g, pi_l, 1, m=None, tol=1e-12)
    assert ref.q is not None
    errs = {}
    for nh in ("tracked", "fresh"):
        for episodes in (40, 400):
            ds = op.record_logs(g, 1, episodes=episodes, horizon=50, seed=1, next_histogram=nh)
            assert ds.info["next_histogram"] == nh and (ds.h_next.sum(axis=1) == 1).all()
            pol = op.g_learn_offpolicy(g, ds, mode="synchronous")
            assert pol.q is not None
            errs[nh, episodes] = float(np.abs(pol.q - ref.q).max())
    assert errs["tracked", 400] < errs["tracked", 40] / 2 and errs["tracked", 400] < 0.01
    assert errs["fresh", 400] > 0.04  # a different fixed point: the bias does not vanish
    with pytest.raises(ValueError, match="next_histogram"):
        op.record_logs(g, 1, 2, 2, next_histogram="same")
