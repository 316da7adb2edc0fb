"""The federated-optimization experiment (paper Example 2.6, SPEC 8.3): estimate the game
from simulated rounds, run ALTERNATING-MARL on it for several ``k``, and evaluate the
learned policies in the *real* simulator against fixed baselines.

Pipeline of :func:`run_experiment` (one seed drives everything, SPEC 9):

1. **Explore.** ``explore_episodes`` episodes of ``horizon`` rounds under
   :class:`~altmarl.federated.controllers.ExploreController`, cycling over
   ``train_federations`` data splits; every global and local transition is counted
   (``counts.npz``).
2. **Estimate.** :func:`altmarl.federated.game.estimate_game` (``game.npz``,
   ``estimation.json``).
3. **Learn.** For every ``k`` in ``ks``: :func:`altmarl.alternating_marl` on the estimated
   game (``eval_horizon = update_horizon``, by default ALTERNATING-MARL's), policies saved
   under ``policies/``.
4. **Evaluate in the real simulator** on ``eval_federations`` *held-out* data splits
   (never used for estimation), ``eval_repeats`` episodes each, with common random
   numbers (every method sees the same splits and the same episode seeds):

   * ``learned k=K`` — online execution (:class:`PolicyController`);
   * ``fedavg k=K`` — FedAvg with ``K`` uniformly sampled participants per round,
     ``local_steps[baseline_action]`` local steps, plain average (server step 1);
   * ``fixed lr=X steps=S`` — every client trains ``S`` steps each round, server step
     ``X`` (the constant joint policies of the game; ``lr=1``, ``S=max`` is FedAvg with
     full participation);
   * ``explore`` — the exploratory behaviour itself.

   The learned and fixed policies are also evaluated in the estimated game
   (``model_return``), which measures how faithful the model is.
5. **Write** ``episodes.csv`` (one row per method and episode), ``summary.csv`` /
   ``summary.json`` (mean and standard error per method), ``curves.csv`` (mean validation
   accuracy per round), ``config.json`` and PNG plots (:func:`plot_run`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from altmarl._random import derive_seed
from altmarl._validate import check_choice
from altmarl.evaluation import evaluate
from altmarl.federated.controllers import (
    Controller,
    ExploreController,
    FedAvgController,
    FixedController,
    PolicyController,
    run_episode,
)
from altmarl.federated.game import TransitionCounts, estimate_game
from altmarl.federated.simulator import (
    FederatedConfig,
    FederatedSimulator,
    check_ks_within_clients,
    make_federation,
)
from altmarl.game import TabularGame
from altmarl.io import atomic_write_bytes, dict_rows_csv_bytes, json_bytes
from altmarl.llearn import SOLVERS
from altmarl.plots.federated import plot_federated_run
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.progress import Progress
from altmarl.settings import LISTS_AS_TUPLES, CheckedConfig

#: seed-derivation domains (SPEC 9)
EXPLORE, TRAIN_FED, EVAL_FED, EVAL_RUN, LEARN, MODEL_EVAL = range(6)


class FederatedExperiment(CheckedConfig):
    """Configuration of :func:`run_experiment` (module docstring).

    ``fed`` the federation and its game; ``ks`` subsample sizes; ``seed`` the root seed;
    ``explore_episodes``, ``train_federations``, ``explore_eps`` the data collection;
    ``alpha`` the estimator's pseudo-count; ``sweeps``, ``m``, ``local_solver``,
    ``eval_rollouts`` ALTERNATING-MARL's options; ``update_horizon`` the horizon of its
    UPDATE value estimates (``None``: its default, long enough that the truncation bound in
    ``eta`` stays below 1e-4 of the value span; the ``horizon`` of a federation, 40 rounds,
    would make that bound refuse every local proposal); ``eval_federations``, ``eval_repeats``
    the real-simulator evaluation; ``baseline_action`` the local action of the FedAvg
    baselines; ``target_acc`` for "rounds to target accuracy".

    Validated and frozen (:class:`altmarl.settings.CheckedConfig`): errors name the dotted
    key (``config: fed.n_clients: ...``); :meth:`from_json` reads the ``config.json`` of a
    run and the ``--config`` file of ``altmarl federated run``.
    """

    config_what: ClassVar[str] = "federated experiment configuration"

    fed: FederatedConfig = Field(default_factory=FederatedConfig)
    ks: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1),
                  LISTS_AS_TUPLES] = (1, 2, 5, 10, 20, 50)
    seed: int = Field(default=0, ge=0)
    explore_episodes: int = Field(default=18, ge=1)
    train_federations: int = Field(default=3, ge=1)
    explore_eps: float = Field(default=0.2, gt=0, le=1)
    alpha: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    sweeps: int = Field(default=5, ge=1)
    m: int = Field(default=300, ge=1)
    local_solver: str = "direct"
    eval_rollouts: int = Field(default=100, ge=1)
    update_horizon: int | None = Field(default=None, ge=1, le=100_000)
    eval_federations: int = Field(default=6, ge=1)
    eval_repeats: int = Field(default=1, ge=1)
    baseline_action: int = -1
    target_acc: float = Field(default=0.9, gt=0, le=1)

    @field_validator("ks")
    @classmethod
    def _ks_within_n(cls, v: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        return check_ks_within_clients(v, info.data.get("fed"))

    @field_validator("local_solver")
    @classmethod
    def _solver(cls, v: str) -> str:
        return check_choice("local_solver", v, SOLVERS)

    @field_validator("baseline_action")
    @classmethod
    def _training_action(cls, v: int, info: ValidationInfo) -> int:
        fed = info.data.get("fed")
        if fed is not None and (not -fed.n_al <= v < fed.n_al or fed.local_steps[v] == 0):
            raise ValueError(f"expected the index of a training action in local_steps = "
                             f"{fed.local_steps}")
        return v

    @classmethod
    def quick(cls, seed: int = 0) -> FederatedExperiment:
        """A small version (tens of clients, a few rounds; seconds): for tests and smoke
        runs, not for conclusions."""
        fed = FederatedConfig(n_clients=40, samples_per_client=16, horizon=8)
        return cls(fed=fed, ks=(1, 3), seed=seed, explore_episodes=3, train_federations=1,
                   sweeps=2, m=5, local_solver="induced-vi", eval_rollouts=20,
                   eval_federations=1, eval_repeats=1)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (``fed`` nested, tuples as lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str | None = None) -> FederatedExperiment:
        """Inverse of :meth:`to_json`; unknown keys raise ``ValueError`` (lines prefixed
        with ``source``, e.g. the file name)."""
        return cls.parse(d, source)

    def replace(self, **changes: Any) -> FederatedExperiment:
        """A copy with some fields changed (validated)."""
        return self.parse({**dict(self), **changes}, source="replace")


# ---------------------------------------------------------------------------
# steps of the pipeline
# ---------------------------------------------------------------------------


def collect(exp: FederatedExperiment, tick: Callable[[str], None] | None = None
            ) -> TransitionCounts:
    """Step 1: exploratory episodes on the training splits, counted."""
    cfg = exp.fed
    counts = TransitionCounts(cfg.n_sg, cfg.n_ag, cfg.n_sl, cfg.n_al)
    sims = [FederatedSimulator(cfg, make_federation(cfg, derive_seed(exp.seed, TRAIN_FED, j)))
            for j in range(exp.train_federations)]
    for e in range(exp.explore_episodes):
        rng = np.random.default_rng(derive_seed(exp.seed, EXPLORE, e))
        run_episode(sims[e % len(sims)], ExploreController(exp.explore_eps), cfg.horizon, rng,
                    counts)
        if tick:
            tick(f"explore {e + 1}/{exp.explore_episodes}")
    return counts


def estimate(exp: FederatedExperiment, counts: TransitionCounts) -> TabularGame:
    """Step 2: the estimated game (``n`` = number of clients)."""
    game, _ = estimate_game(counts, exp.fed.gamma, exp.fed.n_clients, exp.alpha,
                            name="federated-digits", meta={"federated": exp.fed.to_json()})
    return game


@dataclass
class Method:
    """A controller to evaluate: ``name``, ``family`` (``learned`` / ``fedavg`` / ``fixed``
    / ``explore``), ``k`` (or ``None``), a factory and, when the method is a joint policy
    of the game, the policy pair (for the model-predicted return)."""

    name: str
    family: str
    k: int | None
    make: Callable[[], Controller]
    policies: tuple[GlobalPolicy, LocalPolicy] | None = None


def baseline_methods(exp: FederatedExperiment, game: TabularGame) -> list[Method]:
    """The fixed baselines of step 4."""
    cfg = exp.fed
    a_b = exp.baseline_action % cfg.n_al
    a_1 = cfg.server_lrs.index(1.0) if 1.0 in cfg.server_lrs else int(np.argmin(cfg.server_lrs))
    out: list[Method] = []
    for k in exp.ks:
        out.append(Method(f"fedavg k={k}", "fedavg", k,
                          partial(FedAvgController, k, a_b, a_1)))
    for a_g, lr in enumerate(cfg.server_lrs):
        for a_l, s in enumerate(cfg.local_steps):
            if s == 0:
                continue
            pols = (GlobalPolicy.constant(game, 1, a_g),
                    LocalPolicy.deterministic(game, np.full((cfg.n_sl, cfg.n_sg), a_l)))
            out.append(Method(f"fixed lr={lr:g} steps={s}", "fixed", None,
                              partial(FixedController, a_g, a_l), pols))
    out.append(Method("explore", "explore", None, partial(ExploreController, exp.explore_eps)))
    return out


def evaluate_methods(exp: FederatedExperiment, methods: Sequence[Method],
                     tick: Callable[[str], None] | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Step 4: every method on the held-out splits (common random numbers). Returns one
    row of metrics per (method, episode) and per-round means over the episodes: columns
    ``"<method> acc"`` (validation accuracy, ``H + 1`` rounds) and ``"<method> uploads"``
    (uploads in the round; the last entry is ``nan``)."""
    cfg = exp.fed
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[np.ndarray]] = {}
    for f in range(exp.eval_federations):
        sim = FederatedSimulator(cfg, make_federation(cfg, derive_seed(exp.seed, EVAL_FED, f)))
        for r in range(exp.eval_repeats):
            ep_seed = derive_seed(exp.seed, EVAL_RUN, f, r)
            for m in methods:
                log = run_episode(sim, m.make(), cfg.horizon, np.random.default_rng(ep_seed))
                rows.append({"method": m.name, "family": m.family, "k": m.k, "federation": f,
                             "repeat": r, **log.metrics(cfg.gamma, exp.target_acc)})
                curves.setdefault(f"{m.name} acc", []).append(log.val_acc)
                curves.setdefault(f"{m.name} uploads", []).append(
                    np.append(log.uploads.astype(float), np.nan))
                if tick:
                    tick(f"evaluate {m.name} (split {f + 1}/{exp.eval_federations})")
    return rows, {k: np.mean(v, axis=0) for k, v in curves.items()}



def summarize(rows: Sequence[dict[str, Any]], methods: Sequence[Method],
              extra: dict[str, dict[str, Any]] | None = None,
              reference: str | None = None) -> list[dict[str, Any]]:
    """Mean and standard error per method of the episode metrics (``rounds_to_target``:
    mean over the episodes that reached the target, and how many did). With
    ``reference`` (a method name), also the paired differences ``d_return`` and
    ``d_final_acc`` to it over the same (split, repeat) episodes, with standard errors."""
    def key(r: dict[str, Any]) -> tuple[int, int]:
        return (int(r["federation"]), int(r["repeat"]))

    ref = {key(r): r for r in rows if r["method"] == reference}
    out = []
    for m in methods:
        rs = [r for r in rows if r["method"] == m.name]
        s: dict[str, Any] = {"method": m.name, "family": m.family, "k": m.k,
                             "episodes": len(rs)}
        for name in ("return", "final_acc", "final_loss", "best_acc", "uploads_per_round",
                     "steps_per_round", "polls_per_round"):
            s[name], s[name + "_se"] = _mean_se([r[name] for r in rs])
        rt = np.array([r["rounds_to_target"] for r in rs], dtype=float)
        ok = np.isfinite(rt)
        s["rounds_to_target"] = float(rt[ok].mean()) if ok.any() else None
        s["reached_target"] = int(ok.sum())
        if ref:
            pairs = [(r, ref[key(r)]) for r in rs if key(r) in ref]
            for name in ("return", "final_acc"):
                s[f"d_{name}"], s[f"d_{name}_se"] = _mean_se([a[name] - b[name]
                                                              for a, b in pairs])
        s.update((extra or {}).get(m.name, {}))
        out.append(s)
    return out


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return float(v.mean()), se


def reference_method(cfg: FederatedConfig) -> str:
    """Name of plain FedAvg with full participation among the fixed baselines: server step
    1 (or the smallest), the largest number of local steps."""
    lr = 1.0 if 1.0 in cfg.server_lrs else min(cfg.server_lrs)
    return f"fixed lr={lr:g} steps={max(cfg.local_steps)}"


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """``tick(message)`` advancing one transient bar of :class:`altmarl.progress.Progress`."""
    with Progress(enabled, transient=True) as bar:
        task = bar.add_task("federated", total=total)
        yield lambda msg: bar.advance(task, status=msg)


def save_game(game: TabularGame, path: str | Path) -> None:
    """Write ``game`` to ``path``: :meth:`altmarl.TabularGame.save` (kept for callers of
    this module's former helper)."""
    game.save(path)


def load_game(path: str | Path) -> TabularGame:
    """Read a game file: :meth:`altmarl.TabularGame.load` (kept for callers of this
    module's former helper)."""
    return TabularGame.load(path)


def run_experiment(out: str | Path, exp: FederatedExperiment | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Run the whole pipeline (module docstring) and write the run directory ``out``.

    Returns the summary (also written to ``summary.json``).
    """
    import altmarl as am

    exp = exp or FederatedExperiment()
    run = Path(out)
    (run / "policies").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run / "config.json", json_bytes(exp.to_json(), sort_keys=False, nonfinite="null"))
    cfg = exp.fed
    n_methods = 2 * len(exp.ks) + cfg.n_ag * sum(s > 0 for s in cfg.local_steps) + 1
    total = exp.explore_episodes + len(exp.ks) + n_methods * exp.eval_federations * \
        exp.eval_repeats
    timings: dict[str, float] = {}
    with _progress(progress, total) as tick:
        t0 = time.perf_counter()
        counts = collect(exp, tick)
        counts.save(run / "counts.npz")
        game = estimate(exp, counts)
        game.save(run / "game.npz")
        atomic_write_bytes(run / "estimation.json", json_bytes(game.meta["estimation"], sort_keys=False, nonfinite="null"))
        timings["explore_and_estimate"] = time.perf_counter() - t0

        methods: list[Method] = []
        extra: dict[str, dict[str, Any]] = {}
        learn_rows: list[dict[str, Any]] = []
        for k in exp.ks:
            t1 = time.perf_counter()
            res = am.alternating_marl(game, k, seed=derive_seed(exp.seed, LEARN, k),
                                      sweeps=exp.sweeps, m=exp.m, local_solver=exp.local_solver,
                                      eval_rollouts=exp.eval_rollouts,
                                      eval_horizon=exp.update_horizon, progress=False)
            wall = time.perf_counter() - t1
            res.pi_g.save(run / "policies" / f"k{k}_pi_g.npz", game)
            res.pi_l.save(run / "policies" / f"k{k}_pi_l.npz", game)
            for rec in res.history:
                learn_rows.append({"k": k, **{key: v for key, v in rec.to_dict().items()
                                              if key != "info"}})
            name = f"learned k={k}"
            methods.append(Method(name, "learned", k,
                                  partial(PolicyController, res.pi_g, res.pi_l),
                                  (res.pi_g, res.pi_l)))
            extra[name] = {"train_seconds": wall, "converged": res.converged,
                           "sweeps_run": res.sweeps,
                           "accepted": sum(r.accepted for r in res.history)}
            tick(f"ALTERNATING-MARL k={k}")
        atomic_write_bytes(run / "learning.csv", dict_rows_csv_bytes(learn_rows))
        timings["alternating_marl"] = sum(e["train_seconds"] for e in extra.values())

        methods += baseline_methods(exp, game)
        # the model's prediction for every method that is a joint policy of the game
        for m in methods:
            if m.policies is not None:
                ev = evaluate(game, *m.policies, rollouts=exp.eval_rollouts,
                              horizon=cfg.horizon, seed=derive_seed(exp.seed, MODEL_EVAL))
                extra.setdefault(m.name, {}).update(model_return=ev.mean,
                                                    model_return_se=ev.stderr)
        t2 = time.perf_counter()
        rows, curves = evaluate_methods(exp, methods, tick)
        timings["real_evaluation"] = time.perf_counter() - t2

    summary_rows = summarize(rows, methods, extra, reference_method(cfg))
    atomic_write_bytes(run / "episodes.csv", dict_rows_csv_bytes(rows))
    atomic_write_bytes(run / "summary.csv", dict_rows_csv_bytes(summary_rows))
    H = cfg.horizon
    curve_rows = [{"round": t, **{name: (None if np.isnan(c[t]) else float(c[t]))
                                  for name, c in curves.items()}} for t in range(H + 1)]
    atomic_write_bytes(run / "curves.csv", dict_rows_csv_bytes(curve_rows))
    summary = {"config": exp.to_json(), "estimation": game.meta["estimation"],
               "reference": reference_method(cfg), "methods": summary_rows,
               "timings": timings}
    atomic_write_bytes(run / "summary.json", json_bytes(summary, sort_keys=False, nonfinite="null"))
    summary["plots"] = [str(p) for p in plot_run(run)]
    return summary


# ---------------------------------------------------------------------------
# reading a run directory: table and plots
# ---------------------------------------------------------------------------


def read_summary(run: str | Path) -> list[dict[str, Any]]:
    """The per-method rows of ``summary.json``."""
    data = json.loads((Path(run) / "summary.json").read_text())
    return list(data["methods"])


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the per-method summary."""
    head = ("| method | return (real) | vs FedAvg-full (paired) | return (model) | val. acc. | "
            "val. loss | uploads / round | local steps / round | polls / round | "
            "rounds to target |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        mr = r.get("model_return")
        model = f"{mr:.2f}" if isinstance(mr, float) else "-"
        rt = r.get("rounds_to_target")
        rts = "-" if rt is None else f"{rt:.1f} ({r['reached_target']}/{r['episodes']})"
        dr = r.get("d_return")
        d = f"{dr:+.2f} ± {r['d_return_se']:.2f}" if isinstance(dr, float) else "-"
        lines.append(
            f"| {r['method']} | {r['return']:.2f} ± {r['return_se']:.2f} | {d} | {model} | "
            f"{r['final_acc']:.3f} ± {r['final_acc_se']:.3f} | {r['final_loss']:.3f} | "
            f"{r['uploads_per_round']:.1f} | {r['steps_per_round']:.0f} | "
            f"{r['polls_per_round']:.0f} | {rts} |")
    return "\n".join(lines)


def plot_run(run: str | Path) -> list[Path]:
    """Draw the figures of a run directory (:func:`altmarl.plots.federated.plot_federated_run`
    on its ``summary.json`` rows): ``accuracy_vs_k.png``, ``pareto.png``, ``curves.png``."""
    return plot_federated_run(run, read_summary(run))


__all__ = [
    "FederatedExperiment",
    "Method",
    "baseline_methods",
    "collect",
    "derive_seed",
    "estimate",
    "evaluate_methods",
    "format_table",
    "load_game",
    "plot_run",
    "read_summary",
    "reference_method",
    "run_experiment",
    "save_game",
    "summarize",
]
