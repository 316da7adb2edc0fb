"""Fuzzing every input altmarl accepts (issue 18): game construction, environment
parameters, API sizes, and every file format (policies, ``.npz`` containers, JSON, off-policy
logs, run directories, experiment configurations).

Each case asserts three things:

* the only exceptions are ``ValueError`` / ``TypeError`` (a "clean error"); anything else is
  a crash and fails the test;
* no invalid input is accepted: where the test knows the input is invalid (a mutated file
  whose bytes the format protects, an out-of-range value) acceptance fails the test, and
  whatever is accepted must satisfy the format's invariants;
* bounded time per case (:data:`CASE_SECONDS`) and, for files, bounded memory
  (:data:`CASE_BYTES`, measured with ``tracemalloc``).

The fast suite runs :data:`FAST` examples per target; the ``slow`` variants (``pytest -m
slow tests/test_fuzz.py``) run :data:`SLOW`. Counts (inputs tried, accepted, clean errors,
crashes) are printed at the end of the module (``-s``) and written to the JSON file named by
``ALTMARL_FUZZ_REPORT`` when it is set (docs/reliability.md quotes them).
"""

from __future__ import annotations

import collections
import copy
import gzip
import io as _bio
import json
import os
import shutil
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import altmarl as am
from altmarl import io as aio
from altmarl import limits

FAST = int(os.environ.get("ALTMARL_FUZZ_EXAMPLES", "30"))
SLOW = int(os.environ.get("ALTMARL_FUZZ_SLOW_EXAMPLES", "500"))
CASE_SECONDS = 10.0
CASE_BYTES = 256 * 2**20

#: per target: inputs tried, accepted, clean errors, crashes
TALLY: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Any:
    yield
    total: collections.Counter[str] = collections.Counter()
    lines = []
    for target in sorted(TALLY):
        c = TALLY[target]
        total.update({k: v for k, v in c.items() if k in ("tried", "accepted", "clean",
                                                          "crash")})
        extra = "".join(f"  {k} {v}" for k, v in sorted(c.items())
                        if k not in ("tried", "accepted", "clean", "crash"))
        lines.append(f"  {target:<14} tried {c['tried']:>6}  accepted {c['accepted']:>6}  "
                     f"clean errors {c['clean']:>6}  crashes {c['crash']:>3}{extra}")
    print("\nfuzz counts:\n" + "\n".join(lines) + f"\n  {'total':<14} tried {total['tried']:>6}"
          f"  accepted {total['accepted']:>6}  clean errors {total['clean']:>6}  crashes "
          f"{total['crash']:>3}")
    path = os.environ.get("ALTMARL_FUZZ_REPORT")
    if path:
        data = {t: dict(c) for t, c in TALLY.items()}
        data["total"] = dict(total)
        Path(path).write_text(json.dumps(data, indent=1, sort_keys=True))


class Accepted:
    """The value a case returned (the input was accepted)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def case(target: str, fn: Callable[[], Any], *, invalid: bool = False,
         memory: bool = False) -> Accepted | None:
    """Run one fuzz input: ``Accepted(result)`` or ``None`` for a clean error; a crash, an
    accepted ``invalid`` input, or a case over the time or memory budget fails."""
    TALLY[target]["tried"] += 1
    if memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    except (ValueError, TypeError, FileNotFoundError) as exc:
        # FileNotFoundError is the documented error for a file that does not exist (e.g. the
        # data file a sidecar names): only for a missing file
        if isinstance(exc, FileNotFoundError):
            assert exc.filename is None or not os.path.exists(exc.filename)
            assert "no such" in str(exc) or "not found" in str(exc), str(exc)
        TALLY[target]["clean"] += 1
        assert len(str(exc)) < 20_000, f"{target}: a {len(str(exc))}-character message"
        return None
    except Exception as exc:
        TALLY[target]["crash"] += 1
        raise AssertionError(f"{target}: crash {type(exc).__name__}: {exc}") from exc
    finally:
        elapsed = time.perf_counter() - t0
        if memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < CASE_BYTES, f"{target}: {peak} bytes allocated"
        assert elapsed < CASE_SECONDS, f"{target}: {elapsed:.1f} s"
    TALLY[target]["accepted"] += 1
    assert not invalid, f"{target}: accepted an invalid input"
    return Accepted(out)


def fuzz(body: Callable[[Any], None], examples: int) -> Callable[..., None]:
    """A hypothesis test running ``body(data)`` for ``examples`` inputs."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))(given(st.data())(body))


# ---------------------------------------------------------------------------
# value strategies
# ---------------------------------------------------------------------------

#: anything JSON can hold, nested a little
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12)

#: values that are never a valid integer size
NOT_AN_INT = st.one_of(
    st.booleans(), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
    st.complex_numbers(max_magnitude=10), st.lists(st.integers(0, 3), max_size=2),
    st.integers(2**63, 2**80), st.integers(-2**70, 0).filter(lambda v: v <= 0))

#: values that are never a valid discount factor
NOT_A_GAMMA = st.one_of(
    st.booleans(), st.text(max_size=5), st.none(), st.complex_numbers(max_magnitude=2),
    st.floats().filter(lambda v: not (0.0 <= v < 1.0)), st.lists(st.floats(0, 0.9), max_size=2))


def _random_game_arrays(data: Any) -> dict[str, Any]:
    S = data.draw(st.integers(1, 3), label="S_g")
    A = data.draw(st.integers(1, 3), label="A_g")
    L = data.draw(st.integers(1, 3), label="S_l")
    B = data.draw(st.integers(1, 3), label="A_l")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32), label="seed"))
    return {"P_g": rng.dirichlet(np.ones(S), size=(S, A)),
            "P_l": rng.dirichlet(np.ones(L), size=(L, S, B)),
            "r_g": rng.uniform(0, 1, size=(S, A)), "r_l": rng.uniform(0, 1, size=(L, S, B)),
            "gamma": data.draw(st.floats(0.0, 0.99), label="gamma"),
            "n": data.draw(st.integers(1, 10**6), label="n")}


def _corrupt_array(data: Any, arr: np.ndarray, stochastic: bool) -> Any:
    """A version of ``arr`` that is certainly invalid (as a probability table when
    ``stochastic``, as a reward table otherwise)."""
    how = data.draw(st.sampled_from(["nan", "inf", "huge", "dtype", "shape", "ragged", "scalar"]
                                    + (["negative", "row sum"] if stochastic else [])), label="how")
    a = np.array(arr, dtype=np.float64)
    idx = tuple(data.draw(st.integers(0, s - 1)) for s in a.shape)
    if how == "nan":
        a[idx] = np.nan
    elif how == "inf":
        a[idx] = data.draw(st.sampled_from([np.inf, -np.inf]))
    elif how == "huge":
        a[idx] = data.draw(st.sampled_from([1e101, -1e300, 1e308])) if not stochastic else 5.0
    elif how == "negative":
        a[idx] = -data.draw(st.floats(1e-6, 1.0))
    elif how == "row sum":
        a[idx] += data.draw(st.floats(1e-6, 0.5)) * data.draw(st.sampled_from([1, -1]))
        if a[idx] < 0:
            a[idx] = -a[idx] + 1.0
    elif how == "dtype":
        kind = data.draw(st.sampled_from(["str", "complex", "bool", "object"]))
        return {"str": a.astype(str), "complex": a.astype(complex) + 1j,
                "bool": a > 0.5, "object": np.array([None] * a.size, dtype=object).reshape(
                    a.shape)}[kind]
    elif how == "shape":
        shapes = [a[..., :0] if a.shape[-1] > 0 else a[..., None], a[None], a.reshape(-1)]
        return data.draw(st.sampled_from(shapes))
    elif how == "ragged":
        return [a.tolist(), [1.0]]
    elif how == "scalar":
        return data.draw(st.sampled_from(["0.5", 0.5, None, True]))
    return a


# ---------------------------------------------------------------------------
# game construction and environment parameters
# ---------------------------------------------------------------------------


def _game_body(data: Any) -> None:
    args = _random_game_arrays(data)
    field = data.draw(st.sampled_from(["none", "P_g", "P_l", "r_g", "r_l", "gamma", "n"]),
                      label="field")
    if field == "none":
        res = case("game", lambda: am.TabularGame(**args))
        assert res is not None, "a valid random game was refused"
        return
    if field in ("gamma",):
        args["gamma"] = data.draw(NOT_A_GAMMA, label="bad gamma")
    elif field == "n":
        args["n"] = data.draw(NOT_AN_INT, label="bad n")
    else:
        args[field] = _corrupt_array(data, args[field], field.startswith("P"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # negative rewards warn (Assumption 2.2)
        case("game", lambda: am.TabularGame(**args), invalid=True)


test_fuzz_game_construction = fuzz(_game_body, FAST)
test_fuzz_game_construction_slow = pytest.mark.slow(fuzz(_game_body, SLOW))


PARAM_VALUES = st.one_of(st.integers(-5, 300), st.integers(2**62, 2**80), st.floats(), st.text(max_size=4),
                         st.booleans(), st.none(), st.complex_numbers(max_magnitude=3),
                         st.lists(st.integers(0, 3), max_size=3))


def _envs_body(data: Any) -> None:
    name = data.draw(st.sampled_from(["warehouse", "random"]), label="env")
    keys = am.envs.parameters(name) or []
    kw = data.draw(st.dictionaries(st.sampled_from([*keys, "bogus"]), PARAM_VALUES, max_size=3),
                   label="params")
    if name == "warehouse" and isinstance(kw.get("n"), int) and not isinstance(kw["n"], bool):
        kw["n"] = min(max(kw["n"], -5), 10**6)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = case("envs", lambda: am.envs.make(name, **kw))
    if res is not None:
        game = res.value
        assert isinstance(game, am.TabularGame) and 1 <= game.n < 2**63
        assert "bogus" not in kw


test_fuzz_environment_parameters = fuzz(_envs_body, FAST)
test_fuzz_environment_parameters_slow = pytest.mark.slow(fuzz(_envs_body, SLOW))


SIZES = st.one_of(st.integers(1, 4), st.integers(10**9, 10**20), NOT_AN_INT)


def _api_body(data: Any) -> None:
    game = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=10**6, seed=1)
    which = data.draw(st.sampled_from(["constant", "sample_mode", "enumerate", "evaluate",
                                       "record_logs"]), label="api")
    a = data.draw(SIZES, label="a")
    b = data.draw(SIZES, label="b")
    small = all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4 for v in (a, b))
    from altmarl.histogram import enumerate_histograms
    from altmarl.offpolicy import record_logs

    game3 = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=10**6, seed=1)
    fns: dict[str, Callable[[], Any]] = {
        "constant": lambda: am.GlobalPolicy.constant(game, a),
        "sample_mode": lambda: am.GlobalPolicy.sample_mode(game3, a),
        "enumerate": lambda: enumerate_histograms(a, b),
        "evaluate": lambda: am.evaluate(game, am.GlobalPolicy.constant(game, 2),
                                        am.LocalPolicy.uniform(game), rollouts=a + 1
                                        if small else a, horizon=b, seed=0, workers=1),
        "record_logs": lambda: record_logs(game, 2, episodes=a, horizon=b),
    }
    def is_int(v: Any, lo: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= 4

    if which in ("constant", "sample_mode"):
        small = is_int(a, 1)
    elif which == "enumerate":
        small = is_int(a, 0) and is_int(b, 1)
    invalid = not small
    if which == "enumerate" and is_int(a, 0) is False and isinstance(b, int) and b == 1:
        # d = 1: H_k has one histogram for any k, so any k < 2**63 is fine
        invalid = not (isinstance(a, int) and not isinstance(a, bool) and 0 <= a < 2**63)
    res = case("api", fns[which], invalid=invalid)
    if small:
        assert res is not None, f"{which}({a}, {b}) refused"


test_fuzz_api_sizes = fuzz(_api_body, FAST)
test_fuzz_api_sizes_slow = pytest.mark.slow(fuzz(_api_body, SLOW))


# ---------------------------------------------------------------------------
# byte-level mutations of files
# ---------------------------------------------------------------------------


def _mutate_bytes(data: Any, blob: bytes) -> bytes:
    how = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete", "random",
                                     "overwrite"]), label="mutation")
    n = len(blob)
    if how == "truncate":
        return blob[:data.draw(st.integers(0, max(n - 1, 0)))]
    if how == "random":
        return data.draw(st.binary(max_size=2048))
    i = data.draw(st.integers(0, max(n - 1, 0)), label="at")
    if how == "flip":
        b = bytearray(blob)
        b[i] ^= data.draw(st.integers(1, 255))
        return bytes(b)
    if how == "insert":
        return blob[:i] + data.draw(st.binary(min_size=1, max_size=64)) + blob[i:]
    if how == "delete":
        return blob[:i] + blob[i + data.draw(st.integers(1, 64)):]
    chunk = data.draw(st.binary(min_size=1, max_size=64))
    return blob[:i] + chunk + blob[i + len(chunk):]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Valid files of every format, made once."""
    d = tmp_path_factory.mktemp("fuzz-files")
    game = am.envs.make("random", n_sg=2, n_ag=3, n_sl=3, n_al=2, n=3, gamma=0.8, seed=2)
    pg = am.g_learn(game, am.LocalPolicy.uniform(game), 2, m=None, tol=1e-10)
    pl = am.LocalPolicy(np.random.default_rng(0).dirichlet(np.ones(2), size=(3, 2)), game=game)
    from altmarl.offpolicy import record_logs

    log = record_logs(game, 2, episodes=3, horizon=5, seed=0)
    out = {"dir": d, "game": game, "pi_g": pg, "pi_l": pl, "log": log,
           "pi_g.npz": pg.save(d / "pi_g.npz", game).read_bytes(),
           "pi_l.npz": pl.save(d / "pi_l.npz", game).read_bytes(),
           "game.npz": game.save(d / "game.npz").read_bytes()}
    log.save(d / "log.csv")
    out["log.csv"] = (d / "log.csv").read_bytes()
    out["log.json"] = (d / "log.json").read_bytes()
    log.save(d / "gz.csv.gz")
    out["gz.csv.gz"] = (d / "gz.csv.gz").read_bytes()
    out["gz.json"] = (d / "gz.json").read_bytes()
    return out


def _scratch(files: dict[str, Any]) -> Path:
    d = files["dir"] / "case"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def _policy_bytes_body(files: dict[str, Any], data: Any) -> None:
    kind = data.draw(st.sampled_from(["pi_g.npz", "pi_l.npz", "game.npz"]), label="file")
    blob = files[kind]
    bad = _mutate_bytes(data, blob)
    d = _scratch(files)
    p = d / kind
    p.write_bytes(bad)
    game = files["game"]
    loader: dict[str, Callable[[], Any]] = {
        "pi_g.npz": lambda: am.GlobalPolicy.load(p, game),
        "pi_l.npz": lambda: am.LocalPolicy.load(p, game),
        "game.npz": lambda: am.TabularGame.load(p),
    }
    res = case("policy-bytes", loader[kind], memory=True)
    if res is None:
        return
    # accepted: the content must be exactly the original (zip CRCs and the checks protect
    # every array and the metadata; only unprotected header bytes may differ)
    got = res.value
    if kind == "pi_g.npz":
        ref = files["pi_g"]
        assert got.k == ref.k and np.array_equal(got.actions, ref.actions)
        assert (got.q is None) == (ref.q is None) and (got.q is None or np.array_equal(got.q,
                                                                                     ref.q))
    elif kind == "pi_l.npz":
        assert np.array_equal(got.table, files["pi_l"].table)
    else:
        assert got.fingerprint() == game.fingerprint()


@pytest.mark.parametrize("examples", [pytest.param(FAST, id="fast"),
                                      pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_fuzz_policy_and_game_file_bytes(files: dict[str, Any], examples: int) -> None:
    fuzz(lambda data: _policy_bytes_body(files, data), examples)()


_META_KEYS = ["format", "version", "spaces", "k", "game", "info", "n", "gamma"]


def _policy_meta_body(files: dict[str, Any], data: Any) -> None:
    kind = data.draw(st.sampled_from(["pi_g.npz", "pi_l.npz"]), label="file")
    meta, arrays = aio.load_npz(files["dir"] / kind)
    what = data.draw(st.sampled_from(["meta", "array", "spaces"]), label="what")
    if what == "meta":
        key = data.draw(st.sampled_from(_META_KEYS), label="key")
        meta[key] = data.draw(JSON, label="value")
    elif what == "spaces":
        meta["spaces"] = dict(meta["spaces"])
        key = data.draw(st.sampled_from(["S_g", "A_g", "S_l", "A_l"]), label="space")
        meta["spaces"][key] = data.draw(st.one_of(JSON, st.integers(-2, 10**7)))
    else:
        name = data.draw(st.sampled_from(sorted(arrays)), label="array")
        arrays[name] = data.draw(st.sampled_from([
            arrays[name].astype(np.float32), arrays[name].astype(complex),
            arrays[name][..., :1], arrays[name][None], np.full_like(arrays[name], -1),
            np.full(arrays[name].shape, np.nan), arrays[name].astype(str)]), label="new")
    d = _scratch(files)
    p = aio.save_npz(d / kind, meta, arrays)
    game = files["game"]
    fn = ((lambda: am.GlobalPolicy.load(p, game, strict=False)) if kind == "pi_g.npz"
          else (lambda: am.LocalPolicy.load(p, game, strict=False)))
    res = case("policy-meta", fn, memory=True)
    if res is None:
        return
    pol = res.value
    if kind == "pi_g.npz":  # invariants of an accepted global policy
        from altmarl.histogram import num_histograms

        assert type(pol.k) is int and pol.k >= 1
        assert pol.actions.shape == (game.n_sg, num_histograms(pol.k, game.n_sl))
        assert pol.actions.min() >= 0 and pol.actions.max() < game.n_ag
        assert pol.q is None or np.isfinite(pol.q).all()
    else:
        assert pol.table.shape == (game.n_sl, game.n_sg, game.n_al)
        assert np.isfinite(pol.table).all() and np.allclose(pol.table.sum(-1), 1)


@pytest.mark.parametrize("examples", [pytest.param(FAST, id="fast"),
                                      pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_fuzz_policy_file_contents(files: dict[str, Any], examples: int) -> None:
    fuzz(lambda data: _policy_meta_body(files, data), examples)()


def _npy(arr: np.ndarray) -> bytes:
    buf = _bio.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


MEMBER = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([np.zeros(3), np.array("{}"), np.array(json.dumps({"a": 1})),
                     np.arange(6).reshape(2, 3), np.array([None], dtype=object),
                     np.zeros(2, dtype=[("x", "f8")]), np.array(["a", "b"])]).map(_npy))


def _npz_body(files: dict[str, Any], data: Any) -> None:
    d = _scratch(files)
    p = d / "x.npz"
    if data.draw(st.booleans(), label="raw bytes"):
        p.write_bytes(data.draw(st.binary(max_size=4096)))
    else:
        names = data.draw(st.lists(st.sampled_from(["meta.npy", "a.npy", "b", "a.npy",
                                                    "dir/", "m.npy"]), max_size=5))
        with zipfile.ZipFile(p, "w", data.draw(st.sampled_from([zipfile.ZIP_STORED,
                                                                zipfile.ZIP_DEFLATED]))) as z:
            for name in names:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # duplicate names
                    z.writestr(name, data.draw(MEMBER))
    res = case("npz", lambda: aio.load_npz(p), memory=True)
    if res is not None:
        meta, arrays = res.value
        assert isinstance(meta, dict)
        assert all(a.dtype.kind in "biufcU" for a in arrays.values())


@pytest.mark.parametrize("examples", [pytest.param(FAST, id="fast"),
                                      pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_fuzz_npz_containers(files: dict[str, Any], examples: int) -> None:
    fuzz(lambda data: _npz_body(files, data), examples)()


def _json_body(files: dict[str, Any], data: Any) -> None:
    d = _scratch(files)
    p = d / "x.json"
    how = data.draw(st.sampled_from(["bytes", "json", "deep"]), label="how")
    if how == "bytes":
        p.write_bytes(data.draw(st.binary(max_size=512)))
    elif how == "json":
        p.write_text(json.dumps(data.draw(JSON)))
    else:
        depth = data.draw(st.integers(1, 200_000))
        p.write_text("[" * depth + "]" * data.draw(st.integers(0, depth)))
    res = case("json", lambda: aio.read_json(p), memory=True)
    if res is not None:
        assert isinstance(res.value, dict)


@pytest.mark.parametrize("examples", [pytest.param(FAST, id="fast"),
                                      pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_fuzz_json_files(files: dict[str, Any], examples: int) -> None:
    fuzz(lambda data: _json_body(files, data), examples)()


# ---------------------------------------------------------------------------
# off-policy logs
# ---------------------------------------------------------------------------

CELLS = st.one_of(st.integers(-2**64, 2**64).map(str), st.floats().map(repr),
                  st.sampled_from(["", "nan", "inf", "1e999", "1_0", "0x1", '"1,2"', " 1 ",
                                   "1.0", "\r", "٣", "__import__('os')", "\n",
                                   # NumPy 2.4's reader crashed on these (sign or space, then
                                   # a character beyond U+00FF)
                                   "+\u0100", " \u0100", "-\U0010ffff"]),
                  st.text(max_size=6))


def _check_dataset(ds: Any) -> None:
    """Invariants of every accepted log."""
    k, sp = ds.k, ds.spaces
    assert (ds.s_g >= 0).all() and (ds.s_g < sp["S_g"]).all()
    assert (ds.a_g >= 0).all() and (ds.a_g < sp["A_g"]).all()
    assert np.isfinite(ds.r).all()
    for h in (ds.h, ds.h_next):
        assert (h >= 0).all() and (h <= k).all() and (h.sum(axis=1) == k).all()
    keys = set(zip(ds.episode.tolist(), ds.t.tolist(), strict=True))
    assert len(keys) == len(ds)


def _log_body(files: dict[str, Any], data: Any) -> None:
    from altmarl.offpolicy import load_dataset

    gz = data.draw(st.booleans(), label="gz")
    stem = "gz" if gz else "log"
    data_name = "gz.csv.gz" if gz else "log.csv"
    d = _scratch(files)
    csv_blob, meta = files[data_name], json.loads(files[f"{stem}.json"])
    what = data.draw(st.sampled_from(["cell", "bytes", "meta", "meta-no-sha", "line"]),
                     label="what")
    invalid = False
    if what in ("cell", "line", "meta-no-sha"):
        meta.pop("sha256")
        meta.pop("rows", None) if what == "line" else None
    if what in ("cell", "line"):
        text = (gzip.decompress(csv_blob) if gz else csv_blob).decode()
        lines = text.split("\n")
        i = data.draw(st.integers(1, len(lines) - 2), label="row")
        if what == "cell":
            cells = lines[i].split(",")
            j = data.draw(st.integers(0, len(cells) - 1), label="col")
            cells[j] = data.draw(CELLS, label="cell")
            lines[i] = ",".join(cells)
        else:
            lines.insert(i, data.draw(st.text(max_size=40), label="line"))
        new = "\n".join(lines).encode()
        csv_blob = gzip.compress(new, mtime=0) if gz else new
    elif what == "bytes":
        mutated = _mutate_bytes(data, csv_blob)
        invalid = mutated != csv_blob  # the sidecar's sha256 protects every byte
        csv_blob = mutated
    elif what in ("meta", "meta-no-sha"):
        key = data.draw(st.sampled_from(["format", "version", "spaces", "k", "n", "gamma",
                                         "rows", "columns", "data", "extra_columns", "sha256",
                                         "game"]), label="key")
        meta[key] = data.draw(JSON, label="value")
    (d / data_name).write_bytes(csv_blob)
    (d / f"{stem}.json").write_text(json.dumps(meta))
    res = case("log", lambda: load_dataset(d / f"{stem}.json"), invalid=invalid, memory=True)
    if res is not None:
        _check_dataset(res.value)


@pytest.mark.parametrize("examples", [pytest.param(FAST, id="fast"),
                                      pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_fuzz_offpolicy_logs(files: dict[str, Any], examples: int) -> None:
    fuzz(lambda data: _log_body(files, data), examples)()


# ---------------------------------------------------------------------------
# run directories
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from altmarl.experiments import sweep as S
    from test_experiments import STUB, tiny_cfg

    out = tmp_path_factory.mktemp("fuzz-run") / "run"
    S.run_sweep(tiny_cfg(sweep={"k": [1, 2], "train_seeds": 1}), out, workers=1, trainer=STUB,
                progress=False, plots=False)
    return out


def _rundir_body(run_dir: Path, data: Any) -> None:
    from altmarl.experiments import sweep as S
    from altmarl.rundir import MANIFEST, UNIT_FILES, check_unit

    work = run_dir.parent / "case"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(run_dir, work)
    unit = data.draw(st.sampled_from(["k0001_t00", "k0002_t00"]), label="unit")
    target = data.draw(st.sampled_from([*UNIT_FILES, MANIFEST, "config.json", "config.toml"]),
                       label="file")
    p = work / target if target.startswith("config") else work / "units" / unit / target
    blob = p.read_bytes()
    how = data.draw(st.sampled_from(["bytes", "delete", "json"]), label="how")
    if how == "delete":
        p.unlink()
    elif how == "json" and target.endswith(".json"):
        obj = json.loads(blob)
        key = data.draw(st.sampled_from(sorted(obj)), label="key")
        obj[key] = data.draw(JSON, label="value")
        p.write_text(json.dumps(obj))
    else:
        p.write_bytes(_mutate_bytes(data, blob))
    changed = not p.exists() or p.read_bytes() != blob
    if changed and target == MANIFEST and p.exists():  # the manifest's bytes are not
        try:                                           # protected, its content is
            changed = json.loads(p.read_bytes()) != json.loads(blob)
        except ValueError:
            pass
    fp = S.stored_config(run_dir)[0].fingerprint()  # type: ignore[union-attr]
    res = case("rundir", lambda: (check_unit(work, unit, fp), S.aggregate(work)),
               memory=True)
    if res is None:  # only a damaged configuration may make aggregation fail
        assert target.startswith("config") and changed
        return
    problem, summary = res.value
    if problem is not None or summary["config_problems"]:
        TALLY["rundir"]["damage reported"] += 1
    if target.startswith("config"):
        if summary["config_problems"]:
            assert changed and not summary["complete"]
        if not changed:
            assert summary["complete"]
        return
    # a unit file that changed is always detected, named, and never counted as done
    assert (problem is not None) == changed, (problem, changed)
    if changed:
        assert problem.startswith(f"units/{unit}/")
        assert not summary["complete"] and unit in summary["damaged"]


@pytest.mark.parametrize("examples", [pytest.param(FAST, id="fast"),
                                      pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_fuzz_run_directories(run_dir: Path, examples: int) -> None:
    fuzz(lambda data: _rundir_body(run_dir, data), examples)()


# ---------------------------------------------------------------------------
# experiment configurations
# ---------------------------------------------------------------------------

_CFG: dict[str, Any] = {"name": "fz", "seed": 1,
                        "env": {"name": "random", "params": {"n": 12, "n_sl": 2}},
                        "algorithm": {"sweeps": 1, "m": 5},
                        "evaluation": {"seeds": 2, "rollouts": 4, "horizon": 5},
                        "sweep": {"k": [1, 2], "train_seeds": 1}}
_PATHS = [("name",), ("seed",), ("version",), ("env", "name"), ("env", "params", "n"),
          ("env", "params", "zones"), ("algorithm", "sweeps"), ("algorithm", "m"),
          ("algorithm", "eta"), ("algorithm", "options"), ("evaluation", "seeds"),
          ("evaluation", "rollouts"), ("evaluation", "horizon"), ("sweep", "k"),
          ("sweep", "train_seeds"), ("plots", "occupancy_k"), ("bogus",)]
CFG_VALUES = st.one_of(JSON, NOT_AN_INT, st.integers(10**6, 10**20),
                       st.fixed_dictionaries({"start": st.integers(-3, 10**12),
                                              "stop": st.integers(-3, 10**12),
                                              "step": st.integers(-1, 10**6)}),
                       st.sampled_from(["../x", "/abs", ".hidden", "a/b", "x" * 200]))


def _config_body(data: Any) -> None:
    from altmarl.experiments.config import parse_config

    cfg = copy.deepcopy(_CFG)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(_PATHS), label="path")
        node = cfg
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[path[-1]] = data.draw(CFG_VALUES, label="value")
    res = case("config", lambda: parse_config(cfg))
    if res is not None:  # invariants of an accepted configuration
        c = res.value
        assert 1 <= len(c.ks()) * c.sweep.train_seeds <= limits.MAX_UNITS
        assert c.evaluation.rollouts * c.evaluation.horizon <= limits.MAX_ROLLOUT_CELLS
        assert "/" not in c.name and not c.name.startswith(".")
        game = am.envs.make(c.env.name, **c.env.params)
        assert all(1 <= k <= game.n for k in c.ks())


test_fuzz_configurations = fuzz(_config_body, FAST)
test_fuzz_configurations_slow = pytest.mark.slow(fuzz(_config_body, SLOW))


def _toml_body(files: dict[str, Any], data: Any) -> None:
    import tomli_w

    from altmarl.experiments.config import load_config

    d = _scratch(files)
    p = d / "c.toml"
    base = tomli_w.dumps(_CFG).encode()
    how = data.draw(st.sampled_from(["mutate", "text"]), label="how")
    p.write_bytes(_mutate_bytes(data, base) if how == "mutate"
                  else data.draw(st.text(max_size=300)).encode())
    res = case("config-toml", lambda: load_config(p), memory=True)
    if res is not None:
        assert 1 <= len(res.value.ks()) * res.value.sweep.train_seeds <= limits.MAX_UNITS


@pytest.mark.parametrize("examples", [pytest.param(FAST, id="fast"),
                                      pytest.param(SLOW, id="slow", marks=pytest.mark.slow)])
def test_fuzz_configuration_files(files: dict[str, Any], examples: int) -> None:
    fuzz(lambda data: _toml_body(files, data), examples)()
