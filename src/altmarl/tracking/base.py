"""The one tracking interface (SPEC 10): what a run reports to experiment trackers.

A tracker receives five kinds of events:

* :meth:`Tracker.log_params` — the resolved configuration, once, as hyper-parameters
  (flattened to dotted keys by :func:`flatten_params`);
* :meth:`Tracker.on_proposal` — every UPDATE proposal of ALTERNATING-MARL (paper
  Algorithm 14, Lemma D.14): the estimated values ``v_new`` / ``v_old``, their standard
  errors and the paired standard error ``se_diff``, the tolerance ``eta``, the decision,
  wall time and samples (:func:`proposal_metrics`);
* :meth:`Tracker.on_unit` — one finished unit of a run directory (one ``k`` x one training
  seed): its held-out value, spread, Nash-gap certificate and training time
  (:func:`unit_metrics`);
* :meth:`Tracker.on_final` — the run's final numbers: the value and its standard error,
  the Nash-gap certificate (:func:`final_of_result`, :func:`final_of_summary`);
* :meth:`Tracker.log_figure` — a figure (a PNG file or a matplotlib figure).

:class:`BaseTracker` turns the events into four primitives a backend implements (scalars
at a step, a text, an image, hyper-parameters); :class:`Trackers` fans one event out to
several trackers. Trackers only read what a run computed: they never touch a random stream
or change a number.

Tags: proposals of unit ``u`` (``None`` outside run directories) are logged as
``u/global/v_new``, ``u/local/eta``, ... and ``u/played_value`` (the value of the pair
played after the proposal) at step ``proposal = 2 (sweep - 1) + player`` (global 0, local
1), so a resumed run continues the same axis; per-unit results as ``per_k/value`` ... at
step ``k``; final numbers as ``final/value`` ... at step 0. The decision is a number in
the scalar series (:data:`DECISION_CODES`: accept and initial 1, no improvement 0,
reject -1) and a text in the CSV file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: the decision of a proposal as a number (scalar series)
DECISION_CODES = {"accept": 1.0, "initial": 1.0, "no-improvement": 0.0, "reject": -1.0}

#: the numbers of a proposal that become scalar series (in this order)
PROPOSAL_FIELDS = ("v_new", "v_old", "diff", "se_new", "se_old", "se_diff", "eta", "decision",
                   "accepted", "learn_time", "eval_time", "wall_time", "samples",
                   "eval_samples")


@runtime_checkable
class Tracker(Protocol):
    """What ``alternating_marl(callbacks=...)``, the sweep runner and the continuous runs
    call (see the module docstring). :class:`BaseTracker` implements it; any object with
    these methods works."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """The resolved configuration (nested mappings allowed)."""

    def on_proposal(self, record: Any, *, unit: str | None = None) -> None:
        """One UPDATE proposal: a :class:`~altmarl.alternating.loop.StepRecord` or its
        ``to_dict()`` (a row of ``history.csv``)."""

    def on_unit(self, result: Mapping[str, Any], *, unit: str) -> None:
        """A finished unit: the ``result.json`` of a run directory's unit."""

    def on_final(self, final: Mapping[str, Any]) -> None:
        """The run's final numbers (flat mapping of scalars)."""

    def log_figure(self, name: str, figure: Any) -> None:
        """A figure: a PNG file path or a matplotlib figure."""

    def close(self) -> None:
        """Flush and release the backend (idempotent)."""


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"algorithm": {"m": 30}}`` -> ``{"algorithm.m": 30}``; lists become their JSON-ish
    text, ``None`` the string ``"None"``, other values stay scalars."""
    out: dict[str, Any] = {}
    for key, val in params.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping):
            out.update(flatten_params(val, name + "."))
        elif isinstance(val, bool | int | float | str):
            out[name] = val
        elif val is None:
            out[name] = "None"
        else:
            out[name] = str(list(val)) if isinstance(val, tuple | list) else str(val)
    return out


def _num(v: Any) -> float | None:
    """A finite float, or ``None`` (blank cells, ``None``, NaN, text)."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str) and v.strip():
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def proposal_row(record: Any) -> dict[str, Any]:
    """A proposal as a dict (``StepRecord.to_dict()``, or the mapping itself), with
    ``diff = v_new - v_old`` added."""
    d = dict(record.to_dict()) if hasattr(record, "to_dict") else dict(record)
    d.pop("info", None)
    v_new, v_old = _num(d.get("v_new")), _num(d.get("v_old"))
    if "diff" not in d or d.get("diff") in (None, ""):
        d["diff"] = None if v_new is None or v_old is None else v_new - v_old
    if "wall_time" not in d or d.get("wall_time") in (None, ""):
        lt, et = _num(d.get("learn_time")), _num(d.get("eval_time"))
        d["wall_time"] = None if lt is None or et is None else lt + et
    return d


def proposal_index(row: Mapping[str, Any]) -> int:
    """The step of a proposal: ``2 (sweep - 1) + (0 global, 1 local)``."""
    sweep = int(_num(row.get("sweep")) or 1)
    return 2 * (sweep - 1) + (0 if row.get("player") == "global" else 1)


def _accepted(row: Mapping[str, Any]) -> bool:
    a = row.get("accepted")
    return a is True or str(a).lower() in ("true", "1", "1.0")


def proposal_metrics(record: Any) -> tuple[int, str, dict[str, float]]:
    """``(step, player, metrics)`` of one proposal: the numbers of :data:`PROPOSAL_FIELDS`
    that are defined (the decision as :data:`DECISION_CODES`), and ``played_value``, the
    estimate of the pair played after it (``v_new`` when accepted, else ``v_old``)."""
    row = proposal_row(record)
    player = str(row.get("player", "global"))
    out: dict[str, float] = {}
    for key in PROPOSAL_FIELDS:
        if key == "decision":
            code = DECISION_CODES.get(str(row.get("decision")))
            if code is not None:
                out[key] = code
        elif key == "accepted":
            out[key] = 1.0 if _accepted(row) else 0.0
        else:
            v = _num(row.get(key))
            if v is not None:
                out[key] = v
    played = row.get("v_new") if _accepted(row) else row.get("v_old")
    pv = _num(played)
    if pv is not None:
        out["played_value"] = pv
    return proposal_index(row), player, out


def unit_metrics(result: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """``(k, metrics)`` of a unit's ``result.json``: held-out ``value`` and ``value_std``
    (over evaluation seeds), ``train_value``, ``nash_gap`` (exact, or the estimated lower
    bound) with ``nash_gap_exact`` and the UPDATE ``tolerance``, ``sweeps``,
    ``converged``, ``accepted`` and the training wall time."""
    ev = result.get("eval") or {}
    train = result.get("train") or {}
    cert = result.get("nash_gap") or {}
    timing = result.get("timing") or {}
    raw = {"value": ev.get("mean"), "value_std": ev.get("std"),
           "train_value": train.get("value"), "nash_gap": cert.get("nash_gap"),
           "nash_gap_exact": cert.get("exact") if cert else None,
           "tolerance": train.get("tolerance"), "sweeps": train.get("sweeps"),
           "converged": train.get("converged"), "accepted": train.get("accepted"),
           "train_wall_s": timing.get("train_wall_s")}
    out = {key: f for key, v in raw.items() if (f := _num(v)) is not None}
    return int(result.get("k", 0)), out


def final_of_result(res: Any) -> dict[str, Any]:
    """The final numbers of an ``AlternatingResult`` (or anything with ``value``,
    ``converged``, ``sweeps``, ``tolerance``): ``value``, ``value_stderr``, ``k``,
    ``converged``, ``sweeps``, ``accepted``, ``samples``, ``wall_time`` and
    ``nash_gap_bound``, the certified part of the Nash-gap bound UPDATE gives at
    convergence (``AlternatingResult.tolerance``)."""
    v = getattr(res, "value", None)
    out: dict[str, Any] = {"value": getattr(v, "mean", v),
                           "value_stderr": getattr(v, "stderr", None)}
    for key in ("converged", "sweeps", "accepted", "samples", "wall_time"):
        if hasattr(res, key):
            out[key] = getattr(res, key)
    k = getattr(getattr(res, "pi_g", None), "k", None)
    if k is not None:
        out["k"] = k
    out["nash_gap_bound"] = getattr(res, "tolerance", None)
    return out


def final_of_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The final numbers of a run directory's ``summary.json``: the best ``k`` and its
    value, and (one ``k``) its value, spread and Nash-gap certificate."""
    per_k = list(summary.get("per_k") or [])
    out: dict[str, Any] = {"units_done": summary.get("units_done"),
                           "complete": summary.get("complete")}
    best = summary.get("best") or {}
    if best:
        out["best_k"], out["best_value"] = best.get("k"), best.get("mean")
    if len(per_k) == 1:
        p = per_k[0]
        out.update({"k": p.get("k"), "value": p.get("mean"), "value_std": p.get("std"),
                    "value_stderr": p.get("stderr"), "nash_gap": p.get("nash_gap"),
                    "nash_gap_exact": None if p.get("nash_gap_bound") is None
                    else p.get("nash_gap_bound") == "exact"})
    return out


def figure_png(figure: Any) -> bytes:
    """PNG bytes of a figure: a path to a PNG file, PNG bytes, or a matplotlib figure."""
    if isinstance(figure, bytes):
        return figure
    if isinstance(figure, str | Path):
        return Path(figure).read_bytes()
    import io

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


class BaseTracker:
    """A tracker from four primitives (see the module docstring): subclasses implement
    :meth:`log_scalars`, and optionally :meth:`log_text`, :meth:`log_image`,
    :meth:`log_hparams`, :meth:`flush` and :meth:`close`. Usable as a context manager
    (``close`` at the end)."""

    #: the name of the kind (``--track NAME``)
    kind = "base"

    def log_scalars(self, values: Mapping[str, float], step: int, axis: str = "step") -> None:
        """Scalars ``tag -> value`` at ``step``; ``axis`` names what the step counts
        (``"u/proposal"``, ``"per_k/k"``, ``"final/step"``: W&B's step metrics)."""
        raise NotImplementedError

    def log_text(self, tag: str, text: str) -> None:
        """A text (e.g. the configuration as TOML)."""

    def log_image(self, name: str, png: bytes) -> None:
        """A PNG image."""

    def log_hparams(self, flat: Mapping[str, Any]) -> None:
        """Hyper-parameters (flat dotted keys, scalar values)."""

    def log_summary(self, final: Mapping[str, float]) -> None:
        """The final numbers (default: scalars ``final/...`` at step 0)."""
        self.log_scalars({f"final/{key}": v for key, v in final.items()}, 0, axis="final/step")

    def flush(self) -> None:
        """Make what was logged visible to readers."""

    def where(self) -> str:
        """Where this tracker writes (for the command line's report)."""
        return self.kind

    def close(self) -> None:
        """Flush and release the backend (idempotent)."""
        self.flush()

    # --- the Tracker protocol -------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """The resolved configuration as hyper-parameters."""
        self.log_hparams(flatten_params(params))

    def on_proposal(self, record: Any, *, unit: str | None = None) -> None:
        """One UPDATE proposal (see :func:`proposal_metrics` for the tags)."""
        step, player, metrics = proposal_metrics(record)
        pre = f"{unit}/" if unit else ""
        vals = {f"{pre}{player}/{key}": v for key, v in metrics.items() if key != "played_value"}
        if "played_value" in metrics:
            vals[f"{pre}played_value"] = metrics["played_value"]
        self.log_scalars(vals, step, axis=f"{pre}proposal")

    def on_unit(self, result: Mapping[str, Any], *, unit: str) -> None:
        """A finished unit: ``per_k/...`` at step ``k``."""
        k, metrics = unit_metrics(result)
        self.log_scalars({f"per_k/{key}": v for key, v in metrics.items()}, k, axis="per_k/k")

    def on_final(self, final: Mapping[str, Any]) -> None:
        """The final numbers (the numeric ones)."""
        nums = {key: f for key, v in final.items() if (f := _num(v)) is not None}
        self.log_summary(nums)
        self.flush()

    def log_figure(self, name: str, figure: Any) -> None:
        """A figure (PNG path, PNG bytes or matplotlib figure) as an image."""
        self.log_image(name, figure_png(figure))

    def __enter__(self) -> BaseTracker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Trackers:
    """Several trackers as one: every event goes to each of them, in order."""

    def __init__(self, trackers: Iterable[Any] = ()) -> None:
        self.trackers: list[Any] = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def __len__(self) -> int:
        return len(self.trackers)

    def __iter__(self) -> Any:
        return iter(self.trackers)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.log_params(params)

    def on_proposal(self, record: Any, *, unit: str | None = None) -> None:
        for t in self.trackers:
            t.on_proposal(record, unit=unit)

    def on_unit(self, result: Mapping[str, Any], *, unit: str) -> None:
        for t in self.trackers:
            t.on_unit(result, unit=unit)

    def on_final(self, final: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.on_final(final)

    def log_figure(self, name: str, figure: Any) -> None:
        for t in self.trackers:
            t.log_figure(name, figure)

    def close(self) -> None:
        for t in self.trackers:
            t.close()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def as_trackers(callbacks: Any) -> Trackers:
    """``None``, one tracker, or a sequence of trackers -> :class:`Trackers`; a
    ``TypeError`` names an object that lacks a method of :class:`Tracker`."""
    if callbacks is None:
        return Trackers()
    if isinstance(callbacks, Trackers):
        return callbacks
    items: Sequence[Any] = (list(callbacks) if isinstance(callbacks, list | tuple)
                            else [callbacks])
    for i, t in enumerate(items):
        missing = [m for m in ("log_params", "on_proposal", "on_unit", "on_final",
                               "log_figure", "close") if not callable(getattr(t, m, None))]
        if missing:
            raise TypeError(f"callbacks[{i}]: {type(t).__name__} is not a tracker (no "
                            f"{', '.join(missing)}); expected an altmarl.tracking.Tracker")
    return Trackers(items)


def with_trackers(callback: Callable[[Any], bool | None] | None, trackers: Trackers
                  ) -> Callable[[Any], bool | None] | None:
    """The loop callback of :func:`altmarl.alternating.loop.run_alternating` that sends
    every record to ``trackers`` (:meth:`Tracker.on_proposal`) and then calls ``callback``
    (whose answer, ``True`` = stop, it returns); ``callback`` itself without trackers."""
    if not trackers:
        return callback

    def cb(rec: Any) -> bool | None:
        trackers.on_proposal(rec)
        return None if callback is None else callback(rec)

    return cb


__all__ = ["DECISION_CODES", "PROPOSAL_FIELDS", "BaseTracker", "Tracker", "Trackers",
           "as_trackers", "figure_png", "final_of_result", "final_of_summary",
           "flatten_params", "proposal_index", "proposal_metrics", "proposal_row",
           "unit_metrics", "with_trackers"]
