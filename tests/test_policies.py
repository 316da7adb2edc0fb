"""Policies and their pickle-free, versioned file format (SPEC 2)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import altmarl as am
from altmarl.policies import greedy, one_hot


def test_local_policy_round_trip(tmp_path, warehouse):
    rng = np.random.default_rng(0)
    t = rng.dirichlet(np.ones(3), size=(5, 5))
    pi = am.LocalPolicy(t, info={"kind": "test", "value": np.float64(1.5)}, game=warehouse)
    p = pi.save(tmp_path / "pi_l", game=warehouse)
    assert p.suffix == ".npz"
    back = am.LocalPolicy.load(p, game=warehouse)
    assert np.array_equal(back.table, pi.table)
    assert back.info["value"] == 1.5


def test_global_policy_round_trip_and_act(tmp_path, warehouse):
    q = np.random.default_rng(1).normal(size=(5, am.num_histograms(3, 5), 5))
    pi = am.GlobalPolicy.from_q(3, q, info={"iterations": 7}, game=warehouse)
    p = pi.save(tmp_path / "pi_g.npz", game=warehouse)
    back = am.GlobalPolicy.load(p, game=warehouse)
    assert back.k == 3 and np.array_equal(back.actions, pi.actions)
    assert np.array_equal(back.q, q) and back.info["iterations"] == 7
    h = np.array([1, 0, 2, 0, 0])
    assert back.act(4, h) == int(np.argmax(q[4, am.rank(h, 3)]))
    hs = am.enumerate_histograms(3, 5)
    assert np.array_equal(back.act(np.zeros(len(hs), int), hs), q[0].argmax(axis=1))
    with pytest.raises(ValueError, match="k = 3"):
        back.act(0, np.array([1, 1, 0, 0, 0]))


def test_policy_bytes_are_the_saved_file(tmp_path, warehouse):
    """``to_bytes`` / ``generative.files.policy_bytes`` (what a run directory stores) give
    exactly the bytes ``save`` writes, for both tabular policies and the uniform generative
    local policy, with and without ``Q``."""
    from altmarl.generative.files import policy_bytes, save_policy
    from altmarl.generative.policies import UniformLocalPolicy

    q = np.random.default_rng(2).normal(size=(5, am.num_histograms(2, 5), 5))
    pg = am.GlobalPolicy.from_q(2, q, info={"iterations": 3}, game=warehouse)
    pl = am.LocalPolicy.uniform(warehouse)
    assert pg.to_bytes(warehouse, include_q=False) == pg.save(
        tmp_path / "noq.npz", warehouse, include_q=False).read_bytes()
    for name, pol in (("g", pg), ("l", pl), ("u", UniformLocalPolicy(warehouse.n_al))):
        suffix, data = policy_bytes(pol, warehouse)
        assert suffix == ".npz"
        assert data == save_policy(pol, tmp_path / name, warehouse).read_bytes()
    assert am.GlobalPolicy.load(tmp_path / "g.npz", warehouse).q.tolist() == q.tolist()


def test_file_for_another_game_is_rejected(tmp_path, warehouse):
    pi = am.GlobalPolicy.constant(warehouse, 2, 1)
    p = pi.save(tmp_path / "g.npz", game=warehouse)
    other = am.envs.make("random", n_sg=5, n_ag=5, n_sl=5, n_al=3, n=10)
    with pytest.raises(ValueError, match="fingerprint"):
        am.GlobalPolicy.load(p, game=other)
    assert am.GlobalPolicy.load(p, game=other, strict=False).k == 2
    small = am.envs.make("random", n=10)
    with pytest.raises(ValueError, match="spaces"):
        am.GlobalPolicy.load(p, game=small)
    # same dynamics, other n: accepted (cost and policy do not depend on n)
    assert am.GlobalPolicy.load(p, game=warehouse.with_n(10**6)).k == 2
    pl = am.LocalPolicy.uniform(warehouse).save(tmp_path / "l.npz", game=warehouse)
    with pytest.raises(ValueError, match="spaces"):
        am.LocalPolicy.load(pl, game=small)


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_bad_files_give_clear_errors(tmp_path, warehouse):
    p = am.LocalPolicy.uniform(warehouse).save(tmp_path / "l.npz", game=warehouse)
    _rewrite(p, version=99)
    with pytest.raises(ValueError, match="version 99"):
        am.LocalPolicy.load(p)
    p2 = am.LocalPolicy.uniform(warehouse).save(tmp_path / "l2.npz", game=warehouse)
    with pytest.raises(ValueError, match="format"):
        am.GlobalPolicy.load(p2)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a valid altmarl policy file"):
        am.LocalPolicy.load(junk)
    with pytest.raises(FileNotFoundError):
        am.LocalPolicy.load(tmp_path / "missing.npz")


def test_loading_never_unpickles(tmp_path):
    """An object array (which would need pickle) is refused, not executed."""
    p = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("table.npy", buf.getvalue())
        meta = io.BytesIO()
        np.save(meta, np.array(json.dumps({"format": "altmarl.local_policy", "version": 1,
                                           "spaces": {"S_g": 1, "A_g": 1, "S_l": 1, "A_l": 1}})))
        zf.writestr("meta.npy", meta.getvalue())
    with pytest.raises(ValueError, match="not a valid altmarl policy file"):
        am.LocalPolicy.load(p)


def test_local_policy_validation(warehouse):
    with pytest.raises(ValueError, match="pi_l.table"):
        am.LocalPolicy(np.ones((5, 5, 3)), game=warehouse)
    with pytest.raises(ValueError, match="pi_l.table: expected shape"):
        am.LocalPolicy(np.full((5, 4, 3), 1 / 3), game=warehouse)
    det = am.LocalPolicy.deterministic(warehouse, np.ones((5, 5), int))
    assert det.is_deterministic() and np.all(det.greedy_actions() == 1)
    with pytest.raises(ValueError, match="actions"):
        am.LocalPolicy.deterministic(warehouse, np.full((5, 5), 3))


def test_greedy_tie_breaking_is_documented_and_seeded():
    q = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    assert list(greedy(q)) == [1, 0]  # lowest index without a seed
    a = greedy(np.tile(q, (50, 1)), tie_seed=7)
    b = greedy(np.tile(q, (50, 1)), tie_seed=7)
    assert np.array_equal(a, b)
    assert set(a[0::2]) <= {1, 2} and len(set(a[1::2])) > 1  # only maximizers, randomized


def test_one_hot_is_the_deterministic_table():
    a = np.array([[2, 0], [1, 1]])
    t = one_hot(a, 3)
    assert t.shape == (2, 2, 3) and t.dtype == np.float64
    np.testing.assert_array_equal(t.argmax(-1), a)
    np.testing.assert_array_equal(t.sum(-1), 1.0)
    assert one_hot(np.zeros(0, dtype=np.int64), 2).shape == (0, 2)


# ---------------------------------------------------------------------------
# untrusted policy files and API sizes (issue 18)
# ---------------------------------------------------------------------------


def _global_file(tmp_path, tiny_game, **meta_over):
    pol = am.GlobalPolicy.constant(tiny_game, 2)
    p = pol.save(tmp_path / "g.npz", tiny_game)
    from altmarl.io import load_npz, save_npz

    meta, arrays = load_npz(p)
    arrays.update(meta_over.pop("_arrays", {}))
    for key, val in meta_over.items():
        if isinstance(val, dict) and isinstance(meta.get(key), dict):
            meta[key] = {**meta[key], **val}
        else:
            meta[key] = val
    return save_npz(tmp_path / "bad.npz", meta, arrays)


def test_huge_k_in_metadata_is_refused_by_logarithms(tmp_path, tiny_game, forbid):
    """k = S_l = 10^6 in a 5 KB file: refused by logarithms, without the exact binomial
    |H_k| = C(2 x 10^6 - 1, 10^6 - 1), a 600000-digit integer (issue 18: a CPU-minute):
    no binomial beyond C(1000, .) is computed."""
    from altmarl import histogram

    p = _global_file(tmp_path, tiny_game, k=10**6, spaces={"S_l": 10**6},
                     sampling={"k": 10**6})
    calls = forbid(histogram, "comb", allow=lambda n, r: n <= 1000)
    with pytest.raises(ValueError, match="cannot be .*for meta.k = 1000000"):
        am.GlobalPolicy.load(p)
    assert not calls
    p = _global_file(tmp_path, tiny_game, k=10**18)
    with pytest.raises(ValueError, match="meta.k"):
        am.GlobalPolicy.load(p)


@pytest.mark.parametrize("over, match", [
    ({"version": 1.0}, "format version 1.0 is not supported"),
    ({"version": True}, "format version True is not supported"),
    ({"k": True}, "meta.k = True"),
    ({"k": 2.0}, "meta.k = 2.0"),
    ({"spaces": {"S_g": "2"}}, "meta.spaces.S_g"),
    ({"spaces": {"S_g": 10**19}}, "meta.spaces.S_g"),
    ({"game": [1, 2]}, "meta.game must be a JSON object"),
    ({"info": "x"}, "meta.info must be a JSON object"),
    ({"_arrays": {"q": np.full((2, 3, 2), np.nan)}}, r"pi_g.q\[0, 0, 0\] = nan"),
    ({"_arrays": {"q": np.ones((2, 3, 2), dtype=complex)}}, "'q' must be floating point"),
    ({"_arrays": {"q": np.array([[[0.0, 1.0]] * 3] * 2)}}, "is not greedy for pi_g.q"),
    ({"_arrays": {"actions": np.zeros((2, 3))}}, "'actions' must be integers"),
])
def test_policy_file_entries_are_type_checked(tmp_path, tiny_game, over, match):
    p = _global_file(tmp_path, tiny_game, **over)
    with pytest.raises(ValueError, match=match):
        am.GlobalPolicy.load(p)


def test_global_policy_constructor_is_strict():
    with pytest.raises(ValueError, match="pi_g.k = True"):
        am.GlobalPolicy(True, [[0, 0]], 2)
    with pytest.raises(ValueError, match="pi_g.actions: expected an array of integers"):
        am.GlobalPolicy(1, [[0.0, 1.5]], 2)
    with pytest.raises(ValueError, match="pi_g.actions: expected an array of integers"):
        am.GlobalPolicy(1, [["0", "1"]], 2)
    with pytest.raises(ValueError, match="pi_g.q: expected an array of real numbers"):
        am.GlobalPolicy(1, [[0, 1]], 2, q=np.ones((1, 2, 2), dtype=complex))


def test_api_table_sizes_are_bounded_up_front(warehouse, peak_memory, forbid):
    """Refused before the tables are built (the histograms are never enumerated) and under
    1 MiB, while the refused tables hold 2.1e11 (|S_g| x |H_1000|), 5.6e8 (|S_g| x |S_l| x
    |H_150|) and 1.5e12 (|H_{10^6}| x 3) entries: 1.7 TB, 4.5 GB, 12 TB as int64."""
    from altmarl import histogram
    from altmarl.histogram import enumerate_histograms

    calls = forbid(histogram, "_enumerate")
    with peak_memory() as mem:
        with pytest.raises(ValueError,
                           match="GlobalPolicy.constant: a table .* exceeds the limit"):
            am.GlobalPolicy.constant(warehouse, 1000)
        with pytest.raises(ValueError, match="GlobalPolicy.from_function: a table .* exceeds"):
            am.GlobalPolicy.sample_mode(warehouse, 150)
        with pytest.raises(ValueError, match="enumerate_histograms: a table .* exceeds"):
            enumerate_histograms(10**6, 3)
        with pytest.raises(ValueError, match="enumerate_histograms: d"):
            enumerate_histograms(3, 0)
        with pytest.raises(ValueError, match="action = 9"):
            am.GlobalPolicy.constant(warehouse, 2, action=9)
    assert not calls
    assert mem.bytes < 2**20, mem.bytes


def test_check_local_and_global_policy(tiny_game):
    from altmarl.policies import check_global_policy, check_local_policy

    pi_l = am.LocalPolicy.uniform(tiny_game)
    assert check_local_policy(tiny_game, pi_l) is pi_l
    from_table = check_local_policy(tiny_game, pi_l.table)
    assert isinstance(from_table, am.LocalPolicy) and np.array_equal(from_table.table, pi_l.table)
    with pytest.raises(ValueError, match=r"^pi_l: expected an altmarl.LocalPolicy .* got list"):
        check_local_policy(tiny_game, [[0.5, 0.5]])
    bigger = am.envs.make("random", n_sg=2, n_ag=2, n_sl=3, n_al=2, n=4, seed=3)
    with pytest.raises(ValueError, match=r"^mine.table: expected shape \(\|S_l\|, \|S_g\|, "
                                         r"\|A_l\|\) = \(3, 2, 2\) for game"):
        check_local_policy(bigger, pi_l, "mine")
    pi_g = am.GlobalPolicy.from_function(tiny_game, 2, lambda sg, h: sg % 2)
    assert check_global_policy(tiny_game, pi_g) is pi_g
    with pytest.raises(ValueError, match="^pi_g: expected an altmarl.GlobalPolicy, got LocalPolicy"):
        check_global_policy(tiny_game, pi_l)
    with pytest.raises(ValueError, match=r"^pi_g: made for \|S_g\|=2, \|S_l\|=2, \|A_g\|=2"):
        check_global_policy(bigger, pi_g)
    with pytest.raises(ValueError, match="k = 2"):
        check_global_policy(tiny_game.with_n(1), pi_g)


@pytest.mark.parametrize("renamed", [b"q.npy", b"actions.npy"])
def test_a_renamed_array_is_refused_not_dropped(tmp_path, renamed):
    """A damaged member name (here renamed in place, so every CRC still holds) must not make
    an optional array (``q``) silently disappear from a loaded policy: found by the fuzz
    suite (an overwritten byte in the zip directory)."""
    game = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=3, gamma=0.8, seed=2)
    pg = am.g_learn(game, am.LocalPolicy.uniform(game), 2, m=None, tol=1e-10)
    blob = pg.save(tmp_path / "pi_g.npz", game).read_bytes()
    assert blob.count(renamed) == 2  # local header and central directory
    bad = tmp_path / "bad.npz"
    bad.write_bytes(blob.replace(renamed, b"3" + renamed[1:]))
    with pytest.raises(ValueError, match=r"unexpected entries \[.3.*\] in an altmarl policy"):
        am.GlobalPolicy.load(bad, game)


def test_game_and_local_policy_files_refuse_unknown_entries(tmp_path):
    game = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=3, gamma=0.8, seed=2)
    for blob, name, load in (
            (game.save(tmp_path / "g.npz").read_bytes(), b"r_l.npy", am.TabularGame.load),
            (am.LocalPolicy.uniform(game).save(tmp_path / "l.npz").read_bytes(), b"table.npy",
             lambda p: am.LocalPolicy.load(p, game))):
        bad = tmp_path / "bad.npz"
        bad.write_bytes(blob.replace(name, b"x" + name[1:]))
        with pytest.raises(ValueError, match="unexpected entries"):
            load(bad)
