"""The drifting-federation experiment (paper Example 2.6, SPEC 6, 8.3 and 11;
docs/federated.md): ALTERNATING-MARL on the generative game for several ``k``, evaluated
in the real deployment simulator with paired intervals against FedAvg and fixed settings.

Pipeline of :func:`run_drift_experiment` (one seed drives everything, SPEC 9):

1. **Data and models** (:func:`altmarl.federated.drift.make_drift_data`): the split, the
   cluster and global models trained by FedAvg, their predictions.
2. **Learn.** For every ``k``: :func:`altmarl.alternating.generative.run_generative` on
   :func:`~altmarl.federated.drift.drift_game` (neural G-LEARN, TRPO L-LEARN, UPDATE on the
   per-agent simulator), started from the myopic client rule (``local_start = "myopic"``)
   or from the uniform policy of SPEC 6 (``"uniform"``); policies under ``policies/``.
3. **Evaluate** every method with :func:`altmarl.federated.drift_eval.run_method` on
   ``eval_seeds`` seeds x ``eval_rollouts`` episodes: the same seeds for every method
   (common random numbers), one value per seed (the mean discounted return of its
   episodes); intervals are Student-t over the seeds, differences are paired per seed.
   Methods: ``learned k=K``; ``FedAvg full``; ``FedAvg k=K``; ``fixed offer=B`` (a constant
   offer, myopic clients); the diagnostics ``plug-in k=K`` (offer the model with the
   largest published accuracy gain over the sample, myopic clients), ``plug-in full info``
   and ``learned k=K, full info`` (the ``k``-policy shown the whole population).
4. **Write** ``summary.json`` / ``summary.csv`` (per method), ``episodes.csv`` (per method
   and seed), ``curves.csv`` (per round), ``learning.csv`` (the ALTERNATING-MARL history),
   ``config.json``, ``models.json`` (accuracy of every model on every regime) and the plots
   (:func:`altmarl.plots.federated.plot_drift_run`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from altmarl._random import derive_seed
from altmarl._validate import check_choice
from altmarl.experiments.assess import student_interval
from altmarl.federated.drift import (
    DriftConfig,
    DriftData,
    drift_game,
    make_drift_data,
    myopic_table,
)
from altmarl.federated.drift_eval import Method, MethodRun, run_method
from altmarl.federated.simulator import check_ks_within_clients
from altmarl.generative.files import save_policy
from altmarl.generative.game import GenerativeGame
from altmarl.generative.policies import FunctionGlobalPolicy
from altmarl.io import atomic_write_bytes, dict_rows_csv_bytes, json_bytes, read_json
from altmarl.policies import LocalPolicy
from altmarl.progress import Progress
from altmarl.settings import LISTS_AS_TUPLES, CheckedConfig

#: seed-derivation domains (SPEC 9)
DATA, LEARN, EVAL = range(3)
#: ``summary.json`` tag of this experiment (:func:`altmarl.rundir.run_dir_kind`)
EXPERIMENT = "federated-drift"
LOCAL_STARTS = ("myopic", "uniform")


class DriftExperiment(CheckedConfig):
    """Configuration of :func:`run_drift_experiment` (module docstring).

    ``fed`` the federation and its game; ``ks`` subsample sizes; ``seed`` the root seed.
    ALTERNATING-MARL: ``sweeps``, ``m`` (draws per Bellman target), ``g_states``,
    ``g_epochs``, ``g_patience``, ``g_iterations``, ``g_min_iterations`` (neural G-LEARN), ``l_iterations``,
    ``l_rollouts`` (TRPO L-LEARN), ``train_rollouts`` and ``update_horizon`` (UPDATE's
    estimates: ``train_rollouts`` episodes of ``update_horizon`` rounds; ``None``: the
    deployment's episode, ``fed.horizon``, on which every method is scored),
    ``local_start``. Evaluation: ``eval_seeds`` x ``eval_rollouts`` episodes of
    ``fed.horizon`` rounds per method.
    """

    config_what: ClassVar[str] = "federated drift experiment configuration"

    fed: DriftConfig = Field(default_factory=DriftConfig)
    ks: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1, max_length=20),
                  LISTS_AS_TUPLES] = (1, 2, 5, 10, 20, 50)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    sweeps: int = Field(default=2, ge=1, le=100)
    m: int = Field(default=10, ge=1, le=1000)
    g_states: int = Field(default=2000, ge=10, le=100_000)
    g_epochs: int = Field(default=8, ge=1, le=100)
    g_patience: int = Field(default=15, ge=1, le=1000)
    g_iterations: int = Field(default=150, ge=1, le=10_000)
    g_min_iterations: int = Field(default=40, ge=1, le=10_000)
    l_iterations: int = Field(default=10, ge=1, le=1000)
    l_rollouts: int = Field(default=4, ge=1, le=1000)
    train_rollouts: int = Field(default=32, ge=2, le=10_000)
    update_horizon: int | None = Field(default=None, ge=1, le=100_000)
    local_start: str = "myopic"
    eval_seeds: int = Field(default=8, ge=2, le=1000)
    eval_rollouts: int = Field(default=4, ge=1, le=10_000)

    @field_validator("ks")
    @classmethod
    def _ks_within_n(cls, v: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        return check_ks_within_clients(v, info.data.get("fed"))

    @field_validator("g_min_iterations")
    @classmethod
    def _min_it(cls, v: int, info: ValidationInfo) -> int:
        top = info.data.get("g_iterations")
        if top is not None and v > top:
            raise ValueError(f"expected at most g_iterations = {top}")
        return v

    @field_validator("local_start")
    @classmethod
    def _start(cls, v: str) -> str:
        return check_choice("local_start", v, LOCAL_STARTS)

    @classmethod
    def quick(cls, seed: int = 0) -> DriftExperiment:
        """A seconds-long version (20 clients, 6-round episodes, tiny learners): for tests
        and smoke runs, not for conclusions. UPDATE compares 40-round estimates: on 6
        rounds the truncation bound (``0.9^6 = 0.53`` times the value span) would dominate
        ``eta``."""
        fed = DriftConfig(n_clients=20, horizon=6, pilot_clients=5, pilot_rounds=8)
        return cls(fed=fed, ks=(1, 3), seed=seed, sweeps=1, m=2, g_states=64, g_epochs=1,
                   g_patience=2, g_iterations=3, g_min_iterations=2, l_iterations=1, l_rollouts=1,
                   train_rollouts=4, update_horizon=40, eval_seeds=3, eval_rollouts=2)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (``fed`` nested, tuples as lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str | None = None) -> DriftExperiment:
        """Inverse of :meth:`to_json`; unknown keys raise ``ValueError``."""
        return cls.parse(d, source)

    def replace(self, **changes: Any) -> DriftExperiment:
        """A copy with some fields changed (validated)."""
        return self.parse({**dict(self), **changes}, source="replace")


# ---------------------------------------------------------------------------
# policies of the diagnostics and baselines
# ---------------------------------------------------------------------------


def plugin_policy(data: DriftData, k: int) -> FunctionGlobalPolicy:
    """The plug-in server: offer the model ``b`` maximizing ``sum_x h[x] max(0, acc[b, c_x]
    - acc[m_x, c_x])`` over the counts ``h`` of the sample's local states ``x = (c, m)``
    (published accuracies: the one-round gain if the sampled clients who gain download).
    Ties go to the lowest index."""
    cfg = data.config
    C, M = cfg.regimes, cfg.n_models
    acc = data.published
    # gain[b, c, m]: accuracy gained by a client of regime c holding m when offered b
    gain = np.maximum(0.0, acc[:, None, :].transpose(0, 2, 1) - acc.T[None, :, :])
    gain = gain.reshape(M, C * M)

    def rule(s_g: Any, obs: Any) -> Any:
        return np.asarray(np.asarray(obs, dtype=np.float64) @ gain.T).argmax(axis=1)

    return FunctionGlobalPolicy(k, rule, "plug-in")


def constant_policy(b: int) -> FunctionGlobalPolicy:
    """Always offer model ``b``."""
    return FunctionGlobalPolicy(1, lambda s_g, obs: np.full(np.shape(s_g)[0], b,
                                                            dtype=np.int64), f"offer {b}")


def model_names(cfg: DriftConfig) -> list[str]:
    """``cluster 0deg``, ..., ``global``."""
    return [f"cluster {90 * c}deg" for c in range(cfg.regimes)] + ["global"]


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------


def learn(exp: DriftExperiment, game: GenerativeGame, data: DriftData, k: int,
          progress: bool = False) -> Any:
    """Step 2 for one ``k``: an :class:`altmarl.alternating.tabular.AlternatingResult`."""
    from altmarl.alternating.generative import GenerativeOptions, run_generative

    opts = GenerativeOptions(
        sweeps=exp.sweeps, m=exp.m, eval_rollouts=exp.train_rollouts,
        eval_horizon=exp.fed.horizon if exp.update_horizon is None else exp.update_horizon,
        g_options={"states": exp.g_states, "epochs": exp.g_epochs,
                   "patience": exp.g_patience, "iterations": exp.g_iterations,
                   "min_iterations": exp.g_min_iterations},
        l_options={"iterations": exp.l_iterations, "rollouts": exp.l_rollouts,
                   "horizon": exp.fed.horizon})
    pi_l0 = LocalPolicy(myopic_table(data), {"kind": "myopic"}) \
        if exp.local_start == "myopic" else None
    return run_generative(game, k, opts, seed=derive_seed(exp.seed, LEARN, k) % 2**63,
                          pi_l0=pi_l0, progress=progress)


def methods(exp: DriftExperiment, data: DriftData, learned: dict[int, Any]) -> list[Method]:
    """The methods of step 3 (module docstring)."""
    cfg = exp.fed
    myopic = LocalPolicy(myopic_table(data), {"kind": "myopic"})
    names = model_names(cfg)
    out: list[Method] = []
    for k, res in learned.items():
        out.append(Method(f"learned k={k}", "learned", k, res.pi_g, res.pi_l))
    out.append(Method("FedAvg full", "fedavg", None, fedavg=True))
    for k in exp.ks:
        out.append(Method(f"FedAvg k={k}", "fedavg", k, fedavg=True))
    for b in range(cfg.n_models):
        out.append(Method(f"fixed offer={names[b]}", "fixed", None, constant_policy(b), myopic,
                          polls=False))
    for k in exp.ks:
        out.append(Method(f"plug-in k={k}", "plugin", k, plugin_policy(data, k), myopic))
    out.append(Method("plug-in full info", "plugin-full", None,
                      plugin_policy(data, max(exp.ks)), myopic, full_info=True))
    for k, res in learned.items():
        out.append(Method(f"learned k={k}, full info", "learned-full", k, res.pi_g, res.pi_l,
                          full_info=True))
    return out


def evaluate_methods(exp: DriftExperiment, data: DriftData, game: GenerativeGame,
                     meths: list[Method], tick: Callable[[str], None] | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[float]]]]:
    """Step 3: per method and seed, the mean return, accuracy, transfers and polls per
    round; and per method the mean accuracy per round (curves)."""
    cfg = exp.fed
    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, list[float]]] = {}
    for meth in meths:
        acc_sum = np.zeros(cfg.horizon)
        tr_sum = np.zeros(cfg.horizon)
        for s in range(exp.eval_seeds):
            run: MethodRun = run_method(data, game, meth, exp.eval_rollouts, cfg.horizon,
                                        seed=derive_seed(exp.seed, EVAL, s) % 2**63)
            rows.append({"method": meth.name, "family": meth.family, "k": meth.k, "seed": s,
                         "return": float(run.returns(cfg.gamma).mean()),
                         "accuracy": float(run.accuracy.mean()),
                         "transfers_per_round": float(run.transfers.mean()),
                         "polls_per_round": float(run.polls.mean())})
            acc_sum += run.accuracy.mean(axis=0)
            tr_sum += run.transfers.mean(axis=0)
        curves[meth.name] = {"accuracy": (acc_sum / exp.eval_seeds).tolist(),
                             "transfers": (tr_sum / exp.eval_seeds).tolist()}
        if tick:
            tick(f"evaluated {meth.name}")
    return rows, curves


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Student-t interval of the per-seed differences ``a - b``."""
    return student_interval((np.asarray(a) - np.asarray(b)).tolist())


def summarize(exp: DriftExperiment, episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: Student-t intervals over seeds and the paired differences to FedAvg with
    full participation, to FedAvg with the same ``k``, and to the best fixed setting."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in episodes:
        by.setdefault(r["method"], []).append(r)
    vals = {name: [r["return"] for r in sorted(rs, key=lambda r: r["seed"])]
            for name, rs in by.items()}
    fixed = [n for n in by if by[n][0]["family"] == "fixed"]
    best_fixed = max(fixed, key=lambda n: float(np.mean(vals[n])))
    out = []
    for name, rs in by.items():
        st = student_interval(vals[name])
        k = rs[0]["k"]
        row: dict[str, Any] = {
            "method": name, "family": rs[0]["family"], "k": k,
            "return": st["mean"], "return_ci95": st["ci95"], "return_se": st["stderr"],
            "accuracy": float(np.mean([r["accuracy"] for r in rs])),
            "transfers_per_round": float(np.mean([r["transfers_per_round"] for r in rs])),
            "polls_per_round": float(np.mean([r["polls_per_round"] for r in rs])),
            "vs_fedavg_full": paired(vals[name], vals["FedAvg full"]),
            "vs_best_fixed": paired(vals[name], vals[best_fixed]),
            "best_fixed": best_fixed,
        }
        if k is not None and f"FedAvg k={k}" in vals:
            row["vs_fedavg_k"] = paired(vals[name], vals[f"FedAvg k={k}"])
        if rs[0]["family"] == "learned-full":
            row["vs_learned_k"] = paired(vals[name], vals[f"learned k={k}"])
        if rs[0]["family"] == "plugin":
            row["vs_plugin_full"] = paired(vals[name], vals["plug-in full info"])
        out.append(row)
    return out


def format_drift_table(rows: list[dict[str, Any]]) -> str:
    """The summary as a fixed-width text table."""

    def ci(d: dict[str, Any] | None) -> str:
        if not d or d.get("ci95") is None:
            return "-"
        lo, hi = d["ci95"]
        return f"{d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    head = (f"{'method':<28} {'return':>8} {'acc':>6} {'transfers':>9} {'polls':>6}  "
            f"{'vs FedAvg full (95% CI)':<26} {'vs best fixed (95% CI)':<26}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<28} {r['return']:8.3f} {r['accuracy']:6.3f} "
                     f"{r['transfers_per_round']:9.1f} {r['polls_per_round']:6.0f}  "
                     f"{ci(r['vs_fedavg_full']):<26} {ci(r['vs_best_fixed']):<26}")
    return "\n".join(lines)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    with Progress(enabled, transient=True) as bar:
        task = bar.add_task("federated drift", total=total)
        yield lambda msg: bar.advance(task, status=msg)


def run_drift_experiment(out: str | Path, exp: DriftExperiment | None = None,
                         progress: bool = True) -> dict[str, Any]:
    """Run the pipeline (module docstring), write the run directory ``out`` and return
    ``summary.json``'s content."""
    exp = exp or DriftExperiment()
    run = Path(out)
    (run / "policies").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run / "config.json", json_bytes({"experiment": EXPERIMENT,
                                                        **exp.to_json()}))
    t0 = time.perf_counter()
    data = make_drift_data(exp.fed, derive_seed(exp.seed, DATA) % 2**63)
    game = drift_game(data)
    names = model_names(exp.fed)
    atomic_write_bytes(run / "models.json", json_bytes({
        "models": names, "regimes": [f"{90 * c}deg" for c in range(exp.fed.regimes)],
        "accuracy": data.accuracy.tolist(), "published": data.published.tolist()}))
    t_data = time.perf_counter() - t0
    learned: dict[int, Any] = {}
    learning: list[dict[str, Any]] = []
    n_methods = 2 * len(exp.ks) * 2 + 2 + exp.fed.n_models
    timing: dict[str, float] = {"data_s": t_data}
    with _progress(progress, len(exp.ks) + n_methods) as tick:
        for k in exp.ks:
            t = time.perf_counter()
            res = learn(exp, game, data, k)
            timing[f"learn_k{k}_s"] = time.perf_counter() - t
            learned[k] = res
            save_policy(res.pi_g, run / "policies" / f"k{k}_pi_g", game)
            save_policy(res.pi_l, run / "policies" / f"k{k}_pi_l", game)
            for h in res.history:
                learning.append({"k": k, "sweep": h.sweep, "player": h.player,
                                 "decision": h.decision, "v_new": h.v_new, "v_old": h.v_old,
                                 "learn_time_s": h.learn_time})
            tick(f"ALTERNATING-MARL k={k}")
        t = time.perf_counter()
        episodes, curves = evaluate_methods(exp, data, game, methods(exp, data, learned), tick)
        timing["evaluate_s"] = time.perf_counter() - t
    rows = summarize(exp, episodes)
    timing["total_s"] = time.perf_counter() - t0
    summary = {"experiment": EXPERIMENT, "methods": rows, "timing": timing,
               "local_policies": {str(k): getattr(res.pi_l, "info", {}).get("kind", "neural")
                                  for k, res in learned.items()},
               "protocol": {"seeds": exp.eval_seeds, "rollouts": exp.eval_rollouts,
                            "horizon": exp.fed.horizon, "gamma": exp.fed.gamma,
                            "interval": "Student-t 95% over seeds, paired per seed"}}
    atomic_write_bytes(run / "episodes.csv", dict_rows_csv_bytes(episodes))
    atomic_write_bytes(run / "learning.csv", dict_rows_csv_bytes(learning))
    atomic_write_bytes(run / "summary.csv", dict_rows_csv_bytes([_flat(r) for r in rows]))
    crow = [{"round": t, **{f"{m} {q}": curves[m][q][t] for m in curves
                            for q in ("accuracy", "transfers")}}
            for t in range(exp.fed.horizon)]
    atomic_write_bytes(run / "curves.csv", dict_rows_csv_bytes(crow))
    summary["plots"] = [str(p) for p in plot_drift(run, rows)]
    atomic_write_bytes(run / "summary.json", json_bytes(summary))
    return summary


def _flat(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in r.items():
        if isinstance(v, dict):
            out[f"{key}_mean"] = v.get("mean")
            ci = v.get("ci95") or [None, None]
            out[f"{key}_lo"], out[f"{key}_hi"] = ci
        elif isinstance(v, list):
            out[f"{key}_lo"], out[f"{key}_hi"] = v
        else:
            out[key] = v
    return out


def read_drift_summary(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-method rows of a run directory's ``summary.json``."""
    obj = read_json(Path(run_dir) / "summary.json", "summary.json")
    if not isinstance(obj, dict) or obj.get("experiment") != EXPERIMENT:
        raise ValueError("summary.json: not a federated drift run")
    rows = obj["methods"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("summary.json: methods is not a list of rows")
    return rows


def plot_drift(run_dir: str | Path, rows: list[dict[str, Any]] | None = None) -> list[Path]:
    """Draw the figures of a run directory (:func:`altmarl.plots.federated.plot_drift_run`)."""
    from altmarl.plots.federated import plot_drift_run

    rows = read_drift_summary(run_dir) if rows is None else rows
    with open(Path(run_dir) / "curves.csv", newline="") as fh:
        curves = list(csv.DictReader(fh))
    return plot_drift_run(Path(run_dir), rows, curves)


__all__ = ["EXPERIMENT", "DriftExperiment", "constant_policy", "evaluate_methods",
           "format_drift_table", "learn", "methods", "model_names", "paired", "plot_drift",
           "plugin_policy", "read_drift_summary", "run_drift_experiment", "summarize"]

