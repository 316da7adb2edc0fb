"""The tracker backends (SPEC 10): CSV files, TensorBoard event files, an MLflow store and
W&B (offline by default), each on :class:`altmarl.tracking.base.BaseTracker`.

Every backend opens its files or its run on the first event, so a tracker can be made
before the run directory exists; each imports its library only then (``pip install
'altmarl[tensorboard]'``, ``[mlflow]``, ``[wandb]``).

* :class:`CSVTracker` — ``DIR/proposals.csv`` (one row per proposal, the decision as
  text), ``DIR/units.csv``, ``DIR/params.json``, ``DIR/final.json``, ``DIR/figures/*.png``;
  every file is rewritten atomically after each event, and an existing ``proposals.csv``
  is continued.
* :class:`TensorBoardTracker` — event files in ``LOGDIR`` (``tensorboard --logdir
  LOGDIR``): scalars, the configuration in the HParams and Text dashboards, figures as
  images. Written with TensorBoard's own event writer (no TensorFlow or PyTorch).
* :class:`MLflowTracker` — one MLflow run: the configuration as parameters, the series
  as metrics with their step, figures as artifacts. Store: ``MLFLOW_TRACKING_URI`` when
  set, else a local SQLite store ``ROOT/mlruns/mlflow.db`` with artifacts in
  ``ROOT/mlruns/artifacts`` (``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``);
  experiment ``MLFLOW_EXPERIMENT_NAME`` or ``"altmarl"``.
* :class:`WandbTracker` — one W&B run in ``DIR/wandb``, ``mode = WANDB_MODE`` or
  ``"offline"`` (``wandb sync DIR/wandb/offline-run-*`` uploads it later); project
  ``WANDB_PROJECT`` or ``"altmarl"``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from altmarl.io import atomic_write_bytes, dict_rows_csv_bytes, json_bytes, read_csv_rows
from altmarl.tracking.base import BaseTracker, proposal_index, proposal_row, unit_metrics

#: the columns of ``proposals.csv`` (then any further fields of the record)
PROPOSAL_COLUMNS = ("unit", "proposal", "sweep", "player", "decision", "accepted", "v_new",
                    "v_old", "diff", "se_new", "se_old", "se_diff", "eta", "learn_time",
                    "eval_time", "wall_time", "samples", "eval_samples")


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep.strip("._") or "figure"


class CSVTracker(BaseTracker):
    """Plain files in ``directory`` (see the module docstring)."""

    kind = "csv"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.proposals: list[dict[str, Any]] | None = None
        self.units: list[dict[str, Any]] = []
        self.scalars: list[dict[str, Any]] = []

    def where(self) -> str:
        """Where the files are."""
        return f"{self.dir} (proposals.csv, units.csv, params.json, final.json, figures/)"

    def _open(self) -> list[dict[str, Any]]:
        if self.proposals is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            p = self.dir / "proposals.csv"
            self.proposals = read_csv_rows(p) if p.is_file() else []
        return self.proposals

    def log_scalars(self, values: Mapping[str, float], step: int, axis: str = "step") -> None:
        """Other scalars go to ``scalars.csv`` (tag, step, value)."""
        self._open()
        self.scalars += [{"tag": tag, "step": step, "value": v} for tag, v in values.items()]
        atomic_write_bytes(self.dir / "scalars.csv",
                           dict_rows_csv_bytes(self.scalars, ["tag", "step", "value"]))

    def log_hparams(self, flat: Mapping[str, Any]) -> None:
        self._open()
        atomic_write_bytes(self.dir / "params.json", json_bytes(dict(flat)))

    def log_image(self, name: str, png: bytes) -> None:
        self._open()
        atomic_write_bytes(self.dir / "figures" / f"{_safe_name(name)}.png", png)

    def on_proposal(self, record: Any, *, unit: str | None = None) -> None:
        rows = self._open()
        row = proposal_row(record)
        row = {"unit": unit or "", "proposal": proposal_index(row), **row}
        rows.append(row)
        extra = [key for r in rows for key in r if key not in PROPOSAL_COLUMNS]
        header = list(PROPOSAL_COLUMNS) + list(dict.fromkeys(extra))
        atomic_write_bytes(self.dir / "proposals.csv", dict_rows_csv_bytes(rows, header))

    def on_unit(self, result: Mapping[str, Any], *, unit: str) -> None:
        self._open()
        k, metrics = unit_metrics(result)
        self.units.append({"unit": unit, "k": k, **metrics})
        header = ["unit", "k"] + list(dict.fromkeys(key for r in self.units for key in r
                                                    if key not in ("unit", "k")))
        atomic_write_bytes(self.dir / "units.csv", dict_rows_csv_bytes(self.units, header))

    def on_final(self, final: Mapping[str, Any]) -> None:
        self._open()
        atomic_write_bytes(self.dir / "final.json", json_bytes(dict(final), nonfinite="null"))


class TensorBoardTracker(BaseTracker):
    """TensorBoard event files in ``logdir`` (see the module docstring)."""

    kind = "tensorboard"

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)
        self.writer: Any = None

    def where(self) -> str:
        """Where the event files are and how to look at them."""
        return f"{self.logdir} (tensorboard --logdir {self.logdir})"

    def _w(self) -> Any:
        if self.writer is None:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self.logdir.mkdir(parents=True, exist_ok=True)
            self.writer = EventFileWriter(str(self.logdir), max_queue_size=100,
                                          flush_secs=30)
        return self.writer

    def _add(self, summary: Any, step: int = 0) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._w().add_event(Event(summary=summary, step=int(step), wall_time=time.time()))

    def log_scalars(self, values: Mapping[str, float], step: int, axis: str = "step") -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        if values:
            self._add(Summary(value=[Summary.Value(tag=tag, simple_value=float(v))
                                     for tag, v in values.items()]), step)

    def log_text(self, tag: str, text: str) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData

        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
            plugin_name="text", content=TextPluginData(version=0).SerializeToString()))
        tensor = TensorProto(dtype="DT_STRING", string_val=[text.encode("utf-8")],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        self._add(Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)]))

    def log_hparams(self, flat: Mapping[str, Any]) -> None:
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        self._add(hparams_pb(dict(flat)))
        text = "\n".join(f"    {key} = {v!r}" for key, v in flat.items())
        self.log_text("config", text)

    def log_image(self, name: str, png: bytes) -> None:
        import struct

        from tensorboard.compat.proto.summary_pb2 import Summary

        # width and height from the PNG header (IHDR)
        width, height = struct.unpack(">II", png[16:24]) if png[:8] == b"\x89PNG\r\n\x1a\n" \
            else (0, 0)
        img = Summary.Image(height=height, width=width, colorspace=4,
                            encoded_image_string=png)
        self._add(Summary(value=[Summary.Value(tag=f"figures/{name}", image=img)]))

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def mlflow_uri(root: str | os.PathLike[str] | None = None) -> tuple[str, str | None]:
    """``(tracking URI, artifact location)`` of the MLflow store: ``MLFLOW_TRACKING_URI``
    (artifacts where its server puts them), else the local SQLite store
    ``ROOT/mlruns/mlflow.db`` (``ROOT`` default: the working directory) with artifacts in
    ``ROOT/mlruns/artifacts``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, None
    base = (Path(root) if root is not None else Path.cwd()).resolve() / "mlruns"
    return f"sqlite:///{base / 'mlflow.db'}", (base / "artifacts").as_uri()


class MLflowTracker(BaseTracker):
    """One MLflow run (see the module docstring); ``run_id`` once it has started."""

    kind = "mlflow"

    def __init__(self, run_name: str, root: str | os.PathLike[str] | None = None,
                 experiment: str | None = None) -> None:
        self.run_name = run_name
        self.root = root
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "altmarl"
        self.client: Any = None
        self.run_id: str | None = None
        self.tracking_uri: str | None = None
        self.buffer: list[Any] = []

    def where(self) -> str:
        """The store and the run."""
        uri = self.tracking_uri or mlflow_uri(self.root)[0]
        return (f"{uri}, experiment {self.experiment!r}, run {self.run_name!r}"
                + (f" ({self.run_id})" if self.run_id else "")
                + (f" (mlflow ui --backend-store-uri {uri})" if uri.startswith("sqlite") else ""))

    def _start(self) -> Any:
        if self.client is None:
            import logging

            from mlflow import MlflowClient

            uri, artifacts = mlflow_uri(self.root)
            if uri.startswith("sqlite:///"):
                Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            # the store's first use creates its tables and says so at INFO level
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            client = MlflowClient(tracking_uri=uri)
            exp = client.get_experiment_by_name(self.experiment)
            exp_id = (exp.experiment_id if exp is not None else
                      client.create_experiment(self.experiment, artifact_location=artifacts))
            run = client.create_run(exp_id, run_name=self.run_name,
                                    tags={"altmarl.run_name": self.run_name})
            self.client, self.run_id, self.tracking_uri = client, run.info.run_id, uri
        return self.client

    def log_scalars(self, values: Mapping[str, float], step: int, axis: str = "step") -> None:
        from mlflow.entities import Metric

        self._start()
        now = int(time.time() * 1000)
        self.buffer += [Metric(key=tag, value=float(v), timestamp=now, step=int(step))
                        for tag, v in values.items()]
        if len(self.buffer) >= 900:
            self.flush()

    def log_hparams(self, flat: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        client = self._start()
        params = [Param(key, str(v)[:6000]) for key, v in flat.items()]
        for i in range(0, len(params), 100):
            client.log_batch(self.run_id, params=params[i:i + 100])

    def log_text(self, tag: str, text: str) -> None:
        self._start().log_text(self.run_id, text, f"{_safe_name(tag)}.txt")

    def log_image(self, name: str, png: bytes) -> None:
        client = self._start()
        with tempfile.TemporaryDirectory(prefix="altmarl-mlflow-") as d:
            p = Path(d) / f"{_safe_name(name)}.png"
            p.write_bytes(png)
            client.log_artifact(self.run_id, str(p), artifact_path="figures")

    def log_summary(self, final: Mapping[str, float]) -> None:
        super().log_summary(final)
        self.flush()

    def flush(self) -> None:
        if self.client is not None and self.buffer:
            for i in range(0, len(self.buffer), 900):
                self.client.log_batch(self.run_id, metrics=self.buffer[i:i + 900])
            self.buffer = []

    def close(self) -> None:
        if self.client is not None:
            self.flush()
            self.client.set_terminated(self.run_id)
            self.client = None


class WandbTracker(BaseTracker):
    """One W&B run in ``directory/wandb`` (see the module docstring)."""

    kind = "wandb"

    def __init__(self, directory: str | os.PathLike[str], run_name: str,
                 project: str | None = None) -> None:
        self.dir = Path(directory)
        self.run_name = run_name
        self.project = project or os.environ.get("WANDB_PROJECT") or "altmarl"
        self.run: Any = None
        self.axes: set[str] = set()

    def where(self) -> str:
        """The run's directory and mode."""
        mode = os.environ.get("WANDB_MODE") or "offline"
        return (f"{self.dir / 'wandb'} (mode {mode}, project {self.project!r}"
                + ("; upload with `wandb sync`)" if mode == "offline" else ")"))

    def _start(self) -> Any:
        if self.run is None:
            import wandb

            self.dir.mkdir(parents=True, exist_ok=True)
            mode = os.environ.get("WANDB_MODE") or "offline"
            self.run = wandb.init(project=self.project, name=self.run_name, dir=str(self.dir),
                                  mode=mode,  # type: ignore[arg-type]
                                  settings=wandb.Settings(console="off", silent=True),
                                  reinit="create_new")
        return self.run

    def log_scalars(self, values: Mapping[str, float], step: int, axis: str = "step") -> None:
        run = self._start()
        if axis not in self.axes:
            prefix = axis.rsplit("/", 1)[0] + "/" if "/" in axis else ""
            run.define_metric(axis)
            run.define_metric(f"{prefix}*", step_metric=axis)
            self.axes.add(axis)
        run.log({**{tag: float(v) for tag, v in values.items()}, axis: step})

    def log_hparams(self, flat: Mapping[str, Any]) -> None:
        self._start().config.update(dict(flat), allow_val_change=True)

    def log_image(self, name: str, png: bytes) -> None:
        import wandb

        run = self._start()
        p = self.dir / "wandb" / "figures" / f"{_safe_name(name)}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(png)
        run.log({f"figures/{name}": wandb.Image(str(p))})

    def log_summary(self, final: Mapping[str, float]) -> None:
        self._start().summary.update({f"final/{key}": v for key, v in final.items()})

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


__all__ = ["PROPOSAL_COLUMNS", "CSVTracker", "MLflowTracker", "TensorBoardTracker",
           "WandbTracker", "mlflow_uri"]
