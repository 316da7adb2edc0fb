"""The decision log of a dispatcher service and its join with observed outcomes into an
off-policy log (Appendix E's format, :mod:`altmarl.offpolicy.dataset`).

Decision log, version 1: ``NAME.csv`` plus the sidecar ``NAME.json``. One CSV row per
answered decision, appended (and flushed) as the service answers::

    time, id, episode, t, s_g, h_0 .. h_{d-1}, a_g, current_a_g, policy

``time`` (UNIX seconds), ``id`` (the request's ``id`` or one the service assigns),
``episode`` / ``t`` / ``current_a_g`` (as the client sent them, empty otherwise), the global
state (``s_g_0 ..`` for a vector global state), the sample's summary ``h`` (the count vector
of the ``k`` sampled local states; the binned histogram or set-encoder summary of
continuous ones; a learned set encoder's ``k x d`` sampled states, flattened), the
answered action and the policy's fingerprint. The sidecar (``format``
``"altmarl.decision_log"``) holds the spaces, ``k``, the scheme, ``gamma``, ``n``, the game's
name and fingerprint, the policy's fingerprint and source, the mode (``serve`` or
``shadow``) and the columns. A service restarted on the same log appends to it only when
the sidecar matches (same policy, game and columns).

Join (:func:`join_outcomes`, ``altmarl logs join``): outcomes are a CSV with columns ``id``
and ``r`` (the reward the global agent observed after that decision, Appendix E's
``r_g + (1/k) sum_{i in Delta} r_l``) and optionally ``a_g`` (the action the fleet actually
applied: in shadow mode, the current dispatcher's). Decisions are ordered by ``(episode,
t)`` (without ``episode``: one episode; without ``t``: the log's order within the episode);
the transition of decision ``t`` is
``(s_g, h, a_g, r)`` with the next decision's ``(s_g, h)`` as ``(s_g', h')`` (fresh
samples). An episode is cut where a step is missing or has no outcome; its last decision has
no next state and is dropped.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from altmarl.io import atomic_write_bytes, json_bytes, read_json
from altmarl.limits import MAX_JSON_BYTES

DECISION_FORMAT = "altmarl.decision_log"
DECISION_VERSION = 1


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".csv", ".json") else p
    return stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json")


def decision_columns(served: Any) -> list[str]:
    """The decision log's CSV columns for a :class:`~altmarl.service.policy.ServedPolicy`."""
    return (["time", "id", "episode", "t", *getattr(served, "global_columns", ["s_g"]),
             *served.summary_columns, "a_g", "current_a_g", "policy"])


class DecisionLog:
    """Appends decisions to ``NAME.csv`` (flushed after every request; thread-safe) and
    writes the sidecar ``NAME.json`` when opened (module docstring)."""

    def __init__(self, path: str | os.PathLike[str], served: Any, mode: str = "serve") -> None:
        self.csv_path, self.json_path = _paths(path)
        self.columns = decision_columns(served)
        self.policy = served.fingerprint
        meta = {"format": DECISION_FORMAT, "version": DECISION_VERSION,
                "spaces": {"S_g": served.n_sg, "A_g": served.n_ag, "S_l": served.n_sl},
                "k": served.k, "sampling": served.scheme, "gamma": served.gamma,
                "n": served.n, "game": {"name": served.game_name,
                                        "fingerprint": served.game_fingerprint},
                "policy": {"fingerprint": served.fingerprint, "source": served.source,
                           "kind": type(served.pi_g).__name__},
                "mode": mode, "columns": self.columns}
        if self.csv_path.exists() and self.csv_path.stat().st_size > 0:
            if not self.json_path.exists():
                raise ValueError(f"{self.csv_path}: exists without its sidecar "
                                 f"{self.json_path.name}; choose another --log")
            old = read_json(self.json_path, "decision log sidecar", MAX_JSON_BYTES)
            for key in ("format", "policy", "game", "columns", "k"):
                mine = meta[key] if key != "policy" else {"fingerprint": served.fingerprint}
                theirs = old.get(key) if key != "policy" else {
                    "fingerprint": (old.get("policy") or {}).get("fingerprint")}
                if mine != theirs:
                    raise ValueError(f"{self.csv_path}: a decision log of another {key} "
                                     f"({theirs!r}, this service: {mine!r}); choose another "
                                     "--log")
            meta["started"] = old.get("started", time.time())
            self.file = open(self.csv_path, "a", encoding="ascii", newline="")  # noqa: SIM115
        else:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            meta["started"] = time.time()
            self.file = open(self.csv_path, "w", encoding="ascii", newline="")  # noqa: SIM115
            self.file.write(",".join(self.columns) + "\n")
            self.file.flush()
        atomic_write_bytes(self.json_path, json_bytes(meta, indent=1, sort_keys=True))
        self.lock = threading.Lock()
        self.rows = 0

    def write(self, ids: list[str], episode: list[Any], t: list[Any], s_g: Any, obs: Any,
              a_g: Any, current: list[Any]) -> None:
        """Append one row per decision and flush."""
        now = f"{time.time():.6f}"
        blank = ""
        lines = []
        R = len(ids)
        sg = np.asarray(s_g).reshape(R, -1).tolist()  # a vector global state: one column each
        hh = np.asarray(obs).reshape(R, -1).tolist()  # (a learned encoder's set: k x d)
        aa = a_g.tolist()
        for i in range(R):
            g = ",".join(str(v) for v in sg[i])
            h = ",".join(str(v) for v in hh[i])
            e, tt, c = episode[i], t[i], current[i]
            lines.append(f"{now},{ids[i]},{blank if e is None else e},{blank if tt is None else tt},"
                         f"{g},{h},{aa[i]},{blank if c is None else c},{self.policy}\n")
        with self.lock:
            self.file.write("".join(lines))
            self.file.flush()
            self.rows += len(lines)

    def close(self) -> None:
        """Flush and close (graceful shutdown)."""
        with self.lock:
            if not self.file.closed:
                self.file.flush()
                os.fsync(self.file.fileno())
                self.file.close()


def _read_csv(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    from altmarl.io import open_regular
    from altmarl.limits import MAX_LOG_BYTES

    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_LOG_BYTES + 1)
    if len(data) > MAX_LOG_BYTES:
        raise ValueError(f"{path}: {what} larger than {MAX_LOG_BYTES} bytes (altmarl.limits)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        raise ValueError(f"{path}: empty; expected a header line")
    return [c.strip() for c in rows[0]], rows[1:]


def _int(v: str, path: Path, col: str, line: int, allow_blank: bool = False) -> int | None:
    v = v.strip()
    if v == "" and allow_blank:
        return None
    try:
        if v.lstrip("+-").isdigit() and v.isascii():
            return int(v)
    except ValueError:
        pass
    raise ValueError(f"{path}: column {col!r}, line {line}: value {v!r}: expected an integer")


def join_outcomes(decisions: str | os.PathLike[str], outcomes: str | os.PathLike[str], *,
                  behaviour: dict[str, Any] | None = None, n: int | None = None) -> Any:
    """An :class:`~altmarl.offpolicy.OfflineDataset` from a decision log and its outcomes
    (module docstring); ``behaviour`` goes to the sidecar (e.g. ``{"kind": "uniform"}``
    when the fleet explored uniformly), ``n`` overrides the population size."""
    from altmarl.offpolicy import OfflineDataset

    dec_csv, dec_json = _paths(decisions)
    meta = read_json(dec_json, "decision log sidecar", MAX_JSON_BYTES)
    if meta.get("format") != DECISION_FORMAT or meta.get("version") != DECISION_VERSION:
        raise ValueError(f"{dec_json}: not a decision log (format {meta.get('format')!r}, "
                         f"version {meta.get('version')!r}); expected {DECISION_FORMAT!r} "
                         f"version {DECISION_VERSION}")
    sp = meta.get("spaces") or {}
    if sp.get("S_g") is None or sp.get("S_l") is None:
        raise ValueError(f"{dec_json}: the policy's states are continuous; off-policy logs "
                         "need discrete states")
    header, rows = _read_csv(dec_csv, "decision log")
    if header != meta.get("columns"):
        raise ValueError(f"{dec_csv}: header differs from the sidecar's columns")
    col = {c: i for i, c in enumerate(header)}
    hcols = [c for c in header if c.startswith("h_")]
    oh, orows = _read_csv(Path(outcomes), "outcomes file")
    if "id" not in oh or "r" not in oh:
        raise ValueError(f"{outcomes}: expected columns 'id' and 'r' (optional 'a_g'); got "
                         f"{oh}")
    oi, ori, oa = oh.index("id"), oh.index("r"), oh.index("a_g") if "a_g" in oh else None
    out: dict[str, tuple[float, int | None]] = {}
    for j, row in enumerate(orows):
        line = j + 2
        if len(row) != len(oh):
            raise ValueError(f"{outcomes}: line {line} has {len(row)} fields: expected {len(oh)}")
        try:
            r = float(row[ori])
        except ValueError:
            raise ValueError(f"{outcomes}: column 'r', line {line}: value {row[ori]!r}: "
                             "expected a number") from None
        if not np.isfinite(r):
            raise ValueError(f"{outcomes}: column 'r', line {line}: value {row[ori]!r}: "
                             "expected a finite number")
        if row[oi] in out:
            raise ValueError(f"{outcomes}: id {row[oi]!r} appears twice (line {line})")
        applied = None if oa is None else _int(row[oa], Path(outcomes), "a_g", line)
        out[row[oi]] = (r, applied)
    recs = []
    seen: dict[int, int] = {}
    for j, row in enumerate(rows):
        line = j + 2
        if len(row) != len(header):
            raise ValueError(f"{dec_csv}: line {line} has {len(row)} fields: expected "
                             f"{len(header)}")
        ep = _int(row[col["episode"]], dec_csv, "episode", line, True)
        t = _int(row[col["t"]], dec_csv, "t", line, True)
        ep = 0 if ep is None else ep
        if t is None:  # no step given: the order of the log within the episode
            t = seen[ep] = seen.get(ep, -1) + 1
        recs.append((ep, t, row[col["id"]],
                     _int(row[col["s_g"]], dec_csv, "s_g", line),
                     [_int(row[col[c]], dec_csv, c, line) for c in hcols],
                     _int(row[col["a_g"]], dec_csv, "a_g", line)))
    recs.sort(key=lambda x: (x[0], x[1]))
    cols: dict[str, list[Any]] = {key: [] for key in ("s_g", "h", "a_g", "r", "s2", "h2",
                                                      "episode", "t")}
    new_ep, step = -1, 0
    prev_ok = False
    for cur, nxt in zip(recs, recs[1:], strict=False):
        linked = cur[0] == nxt[0] and nxt[1] == cur[1] + 1 and cur[2] in out
        if not linked:
            prev_ok = False
            continue
        if not prev_ok:
            new_ep, step = new_ep + 1, 0
        r, applied = out[cur[2]]
        cols["s_g"].append(cur[3])
        cols["h"].append(cur[4])
        cols["a_g"].append(cur[5] if applied is None else applied)
        cols["r"].append(r)
        cols["s2"].append(nxt[3])
        cols["h2"].append(nxt[4])
        cols["episode"].append(new_ep)
        cols["t"].append(step)
        step += 1
        prev_ok = True
    if not cols["r"]:
        raise ValueError(f"{dec_csv}: no decision has both an outcome and a next decision "
                         "(same episode, next step)")
    chose = ("the outcomes' a_g (the dispatcher the fleet followed)" if oa is not None
             else {"served_policy": meta.get("policy")})
    info = {"behaviour": behaviour or {"kind": "logged", "actions": chose},
            "game": meta.get("game"), "next_histogram": "fresh",
            "source_decisions": str(dec_csv), "mode": meta.get("mode")}
    spaces = {"S_g": int(sp["S_g"]), "A_g": int(sp["A_g"]), "S_l": int(sp["S_l"])}
    return OfflineDataset.from_arrays(
        np.asarray(cols["s_g"]), np.asarray(cols["h"]), np.asarray(cols["a_g"]),
        np.asarray(cols["r"], dtype=np.float64), np.asarray(cols["s2"]), np.asarray(cols["h2"]),
        k=int(meta["k"]), spaces=spaces, gamma=float(meta["gamma"]),
        n=n if n is not None else meta.get("n"), episode=np.asarray(cols["episode"]),
        t=np.asarray(cols["t"]), info=info)


__all__ = ["DECISION_FORMAT", "DECISION_VERSION", "DecisionLog", "decision_columns",
           "join_outcomes"]
