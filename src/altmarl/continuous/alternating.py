"""ALTERNATING-MARL on the continuous warehouse (paper Algorithm 14 + Appendix G.2; SPEC 6,
8.2).

Start from freshly initialised networks and alternate, for at most ``alternations``
sweeps:

1. evaluate the current pair ``(pi_g, pi_l)`` on ``update_rollouts`` rollouts with the
   sweep's common random numbers (CRN);
2. G-LEARN proposes ``pi_g'`` (``g_method = "ce"``: the paper's cross-entropy on the
   population mode; ``"rollout"``: label-free rollout policy iteration), evaluated with
   the same CRN; :func:`altmarl.update.update_decision` accepts, rejects or reports no
   improvement;
3. L-LEARN proposes ``pi_l'`` by TRPO against the (possibly new) ``pi_g``; same test.

The UPDATE tolerance ``eta`` is either fixed or, by default, ``eta = eta_z * se / 2`` with
``se`` the standard error of the paired CRN differences ``V_new - V_old``, plus in both
cases half the truncation bias bound ``gamma^H (r_max - r_min) / (1 - gamma)`` of the
``update_horizon``-step estimates (SPEC 13, :func:`update_rule`): a proposal is accepted
when it is ahead by more than ``eta_z`` standard errors plus that bound (so never because
of truncation) and rejected when it is behind by as much. ``update_horizon = None``
(default) makes the bound ``1e-4`` of the value span (180 steps at ``gamma = 0.95``).

Both learners are *anytime* learners: each keeps a candidate that continues training
from sweep to sweep; the candidate becomes the played policy when UPDATE accepts it and
otherwise keeps training while the played policy stays (with ``reset_on_reject`` a
rejected candidate restarts from the played policy). TRPO improves the *stochastic*
policy a little at each step, whereas the value compared is that of its greedy version;
letting the candidate run on until its greedy version is significantly better is what
makes the two fit together. ``accept_all=True`` plays every proposal (the UPDATE decision is
still computed and recorded): the loop of the authors' code, for comparison. The loop stops after ``patience``
consecutive sweeps without an accepted proposal (SPEC 6 with ``patience = 1``) or after
``alternations`` sweeps (the default ``patience = alternations = 30`` runs the paper's
fixed 30 alternations: a TRPO candidate often needs several sweeps before its greedy
version is significantly better than the played policy, so SPEC's stopping rule would end
most runs before the local player has learned anything).

Value used everywhere (UPDATE and final evaluation): the discounted return over
``horizon`` steps with greedy actions of both networks (``local_eval = "greedy"``, the
authors' protocol; ``"sample"`` plays the stochastic local policy instead).

Reproducible and resumable: every random draw comes from ``SeedSequence([seed, k])``
children keyed by (sweep, purpose); after each sweep the networks are checkpointed with
``torch.save`` of state dicts (loaded with ``weights_only=True``) next to a JSON file with
the configuration and the history, so an interrupted run continues to the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from altmarl._random import child as rnd_child
from altmarl.alternating.loop import (
    GLOBAL,
    GameAdapter,
    LoopState,
    Proposal,
    StepRecord,
    run_alternating,
)
from altmarl.continuous.env import ContinuousWarehouse, simulate
from altmarl.continuous.evaluation import ContinuousEvaluation, summarize
from altmarl.continuous.global_agent import (
    GlobalAgent,
    GMethod,
    g_learn_ce,
    g_learn_rollout,
    harvest_states,
    mode_accuracy_at_reset,
)
from altmarl.continuous.nets import load_state, save_state, torch_seed
from altmarl.continuous.trpo import LocalAgent, TRPOConfig, l_learn_trpo
from altmarl.io import atomic_write_bytes, json_bytes, read_json
from altmarl.settings import CheckedConfig
from altmarl.threads import set_torch_threads
from altmarl.update import (
    Comparison,
    Decision,
    EtaRule,
    RolloutEstimate,
    evaluation_horizon,
    truncation_bias,
    warn_short_horizon,
)

CHECKPOINT_FORMAT = "altmarl-continuous-checkpoint/1"
RESULT_FORMAT = "altmarl-continuous-result/1"
#: spawn-key tag of the final evaluation seed (independent of k: CRN across k)
EVAL_TAG = 2**31 - 1

class ContinuousConfig(CheckedConfig):
    """Configuration of one ALTERNATING-MARL run on the continuous warehouse.

    Defaults follow SPEC 8.2 / paper Table 4 where they give a value (n = 500, 30
    alternations, 3000 cross-entropy samples, Adam 3e-3, clip 1, TRPO radius 0.01 with
    10 CG iterations and damping 0.1, evaluation on 50 rollouts of horizon 100) and are
    otherwise chosen for the 15-minute sweep budget (docs/continuous.md).

    Validated and frozen (:class:`altmarl.settings.CheckedConfig`): a bad value raises a
    ``ValueError`` naming the dotted key (``config: trpo.max_kl: ...``).
    """

    config_source: ClassVar[str] = "config"
    config_what: ClassVar[str] = "continuous configuration"

    n: int = Field(default=500, ge=2)
    alternations: int = Field(default=30, ge=1)
    patience: int = Field(default=30, ge=1)
    g_method: GMethod = "ce"
    use_s_g: bool = True
    hidden: int = Field(default=64, ge=1)
    lr: float = Field(default=3e-3, gt=0, allow_inf_nan=False)
    grad_clip: float = Field(default=1.0, ge=0)
    ce_samples: int = Field(default=3000, ge=1)
    ce_epochs: int = Field(default=10, ge=0)
    rollout_states: int = Field(default=64, ge=1)
    rollout_len: int = Field(default=10, ge=1)
    rollout_hists: int = Field(default=4, ge=1)
    rollout_epochs: int = Field(default=50, ge=0)
    trpo_iters: int = Field(default=1, ge=1)
    trpo_rollouts: int = Field(default=8, ge=1)
    trpo_horizon: int = Field(default=50, ge=1)
    trpo_tracked: int = Field(default=16, ge=1)
    trpo: TRPOConfig = Field(default_factory=TRPOConfig)
    update_rollouts: int = Field(default=16, ge=2)
    #: ``None``: :func:`altmarl.update.evaluation_horizon` of the game's ``gamma``
    update_horizon: int | None = Field(default=None, ge=1)
    #: ``None``: automatic ``eta = eta_z se_diff / 2 + tail / 2`` (:func:`update_rule`)
    eta: float | None = Field(default=None, ge=0)
    eta_z: float = Field(default=2.0, ge=0)
    reset_on_reject: bool = False
    accept_all: bool = False
    eval_rollouts: int = Field(default=50, ge=2)
    eval_horizon: int = Field(default=100, ge=1)
    local_eval: Literal["greedy", "sample"] = "greedy"
    subsample: Literal["agents", "counts"] = "agents"
    table_grid: int = Field(default=201, ge=2)
    torch_threads: int = Field(default=1, ge=1)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (nested ``trpo``)."""
        return self.model_dump()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ContinuousConfig:
        """Inverse of :meth:`to_json`; unknown keys are rejected."""
        return cls.parse(d)

    def replace(self, **changes: Any) -> ContinuousConfig:
        """Copy with some fields changed (validated)."""
        return self.parse({**dict(self), **changes})


def update_horizon(cfg: ContinuousConfig, env: ContinuousWarehouse) -> int:
    """Horizon of UPDATE's estimates: ``cfg.update_horizon``, or (``None``)
    :func:`altmarl.update.evaluation_horizon` of ``env.gamma`` (180 at the default 0.95)."""
    return evaluation_horizon(env.gamma) if cfg.update_horizon is None else cfg.update_horizon


def update_rule(cfg: ContinuousConfig, env: ContinuousWarehouse) -> EtaRule:
    """UPDATE's tolerance (SPEC 6, 13): fixed ``eta`` or ``eta_z se / 2``, plus half the
    truncation bias bound ``gamma^H (r_max - r_min) / (1 - gamma)`` of the ``H``-step
    estimates (:func:`update_horizon`; ``r_min < 0``: moving costs)."""
    horizon = update_horizon(cfg, env)
    tail = truncation_bias(env.gamma, horizon, env.r_min, env.r_max)
    warn_short_horizon(env.gamma, horizon, tail)
    return EtaRule(fixed=cfg.eta, z=cfg.eta_z, tail=tail)


@dataclass
class ContinuousResult:
    """Outcome of :func:`run_continuous`: the played networks, the UPDATE history (one
    entry per sweep), the final evaluation of the networks (``evaluation``) and diagnostics
    (``summary()`` for JSON)."""

    k: int
    seed: int
    config: ContinuousConfig
    env: ContinuousWarehouse
    global_agent: GlobalAgent
    local_agent: LocalAgent
    history: list[dict[str, Any]]
    evaluation: ContinuousEvaluation
    extra: dict[str, Any]

    @property
    def value(self) -> float:
        """Final estimate of ``V(pi_g, pi_l)`` (discounted return, ``eval_horizon``)."""
        return self.evaluation.mean

    def summary(self) -> dict[str, Any]:
        """JSON-friendly record (format ``altmarl-continuous-result/1``)."""
        return {"format": RESULT_FORMAT, "k": self.k, "seed": self.seed,
                "config": self.config.to_json(), "env": self.env.to_json(),
                "value": self.value, "evaluation": self.evaluation.summary(),
                "history": self.history, **self.extra}

    def save(self, directory: str | Path) -> Path:
        """Write ``result.json`` and ``policies.pt`` (state dicts) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_state(d / "policies.pt", {"global": self.global_agent.state_dict(),
                                       **{f"local_{k}": v for k, v in
                                          self.local_agent.state_dict().items()}})
        atomic_write_bytes(d / "result.json", json_bytes(self.summary(), indent=1, sort_keys=False,
                                                         nonfinite="null"))
        return d


def load_policies(path: str | Path, env: ContinuousWarehouse, k: int, config: ContinuousConfig
                  ) -> tuple[GlobalAgent, LocalAgent]:
    """Rebuild the networks saved by :meth:`ContinuousResult.save` (``weights_only``)."""
    sd = load_state(path)
    for key in ("global", "local_policy", "local_critic"):
        if key not in sd:
            raise ValueError(f"{path}: missing {key!r}; expected a file written by ContinuousResult.save")
    ga = GlobalAgent(env, k, hidden=config.hidden, use_s_g=config.use_s_g)
    la = LocalAgent(env, hidden=config.hidden, table_grid=config.table_grid)
    try:
        ga.load_state_dict(sd["global"])
        la.load_state_dict({"policy": sd["local_policy"], "critic": sd["local_critic"]})
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: networks do not match the configuration "
                         f"({type(exc).__name__}: {str(exc)[:300]})") from None
    return ga, la


class _Checkpoint:
    """``state.pt`` (state dicts, ``weights_only``) + ``state.json`` in one directory."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def save(self, meta: dict[str, Any], tensors: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tensors = dict(tensors, step=torch.tensor(int(meta["next_alternation"])))
        save_state(self.dir / "state.pt", tensors)
        atomic_write_bytes(self.dir / "state.json",
                           json_bytes(meta, indent=1, sort_keys=False, nonfinite="null"))

    def load(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        pj, pt = self.dir / "state.json", self.dir / "state.pt"
        if not (pj.exists() and pt.exists()):
            return None
        meta = read_json(pj, "checkpoint record")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{pj}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
        for key, kinds in (("next_alternation", int), ("stale", int), ("elapsed_s", int | float),
                           ("history", list)):
            if not isinstance(meta.get(key), kinds) or isinstance(meta.get(key), bool):
                raise ValueError(f"{pj}: {key}: missing or not a {kinds}")
        tensors = load_state(pt)
        for key in ("global", "global_cand", "local", "local_cand"):
            if not isinstance(tensors.get(key), dict):
                raise ValueError(f"{pt}: missing the state dict {key!r}")
        step = tensors.get("step")
        if not (isinstance(step, torch.Tensor) and step.numel() == 1
                and int(step) == meta["next_alternation"]):
            raise ValueError(f"{self.dir}: state.pt and state.json are from different sweeps")
        return meta, tensors


class ContinuousAdapter(GameAdapter[GlobalAgent, LocalAgent]):
    """The continuous warehouse's parts of the one ALTERNATING-MARL loop
    (:mod:`altmarl.alternating.loop`): anytime candidates ``cand_g`` / ``cand_l`` that keep
    training across sweeps, fresh common random numbers every sweep
    (``child(sweep, 0)``), proposal seeds ``child(sweep, 1..3)``, the per-sweep history
    entry and the checkpoint after every sweep."""

    crn_per_sweep = True

    def __init__(self, env: ContinuousWarehouse, k: int, cfg: ContinuousConfig,
                 root: np.random.SeedSequence, cand_g: GlobalAgent, cand_l: LocalAgent,
                 history: list[dict[str, Any]], ckpt: _Checkpoint | None, ident: dict[str, Any],
                 elapsed_before: float,
                 on_sweep: Callable[[int, dict[str, Any]], None] | None) -> None:
        self.env, self.k, self.cfg, self.root = env, k, cfg, root
        self.cand_g, self.cand_l = cand_g, cand_l
        self.history, self.ckpt, self.ident = history, ckpt, ident
        self.on_sweep = on_sweep
        self.greedy_l = cfg.local_eval == "greedy"
        self.horizon = update_horizon(cfg, env)
        self.eval_cost = cfg.update_rollouts * self.horizon * env.n
        self.elapsed_before = elapsed_before
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        self.cpu_before = float(history[-1].get("cpu_s_total", 0.0)) if history else 0.0
        self.ts = self.t0

    def child(self, *key: int) -> np.random.SeedSequence:
        """``SeedSequence([seed, k])`` child keyed by ``(sweep, purpose)``."""
        return rnd_child(self.root, *key)

    def proposal_seed(self, sweep: int, player: str) -> tuple[np.random.SeedSequence, ...]:
        """Global: ``child(sweep, 1)`` (CE samples / state harvest) and ``child(sweep, 2)``
        (rollout G-LEARN); local: ``child(sweep, 3)`` (TRPO)."""
        if player == GLOBAL:
            return self.child(sweep, 1), self.child(sweep, 2)
        return (self.child(sweep, 3),)

    def crn_seed(self, sweep: int) -> np.random.SeedSequence:
        """The sweep's common random numbers ``child(sweep, 0)``."""
        return self.child(sweep, 0)

    def _simulate(self, g: GlobalAgent, loc: LocalAgent, ss: np.random.SeedSequence,
                  record: bool = False) -> RolloutEstimate:
        cfg = self.cfg
        tr = simulate(self.env, g.actor(), loc.actor(self.greedy_l), self.k, cfg.update_rollouts,
                      self.horizon, ss, subsample=cfg.subsample, record_positions=record)
        return RolloutEstimate(tr.discounted_returns(self.env.gamma), tr)

    def evaluate_pair(self, pi_g: GlobalAgent, pi_l: LocalAgent,
                      crn_seed: Any) -> RolloutEstimate:
        """Discounted returns of ``update_rollouts`` x ``update_horizon`` rollouts."""
        return self._simulate(pi_g, pi_l, crn_seed)

    def evaluate_current(self, pi_g: GlobalAgent, pi_l: LocalAgent,
                         crn_seed: Any) -> RolloutEstimate:
        """As :meth:`evaluate_pair`, keeping the robots' positions for rollout G-LEARN."""
        return self._simulate(pi_g, pi_l, crn_seed, record=self.cfg.g_method == "rollout")

    def propose_global(self, state: LoopState[GlobalAgent, LocalAgent],
                       seed: Any) -> Proposal[GlobalAgent]:
        """G-LEARN continues training ``cand_g`` against the played ``pi_l``."""
        cfg = self.cfg
        ss_harvest, ss_learn = seed
        tg = time.perf_counter()
        if cfg.g_method == "ce":
            info_g = g_learn_ce(self.cand_g, np.random.default_rng(ss_harvest),
                                samples=cfg.ce_samples, epochs=cfg.ce_epochs, lr=cfg.lr,
                                grad_clip=cfg.grad_clip)
            g_steps = 0
        else:
            cur = state.current
            assert isinstance(cur, RolloutEstimate) and state.pi_g is not None
            tr_cur = cur.data
            assert tr_cur.positions is not None
            sg, sl = harvest_states(tr_cur.positions, tr_cur.s_g, cfg.rollout_states,
                                    self.env.gamma, np.random.default_rng(ss_harvest))
            info_g = g_learn_rollout(self.cand_g, state.pi_l.actor(self.greedy_l), sg, sl,
                                     ss_learn, rollout_len=cfg.rollout_len,
                                     hist_draws=cfg.rollout_hists, epochs=cfg.rollout_epochs,
                                     lr=cfg.lr, grad_clip=cfg.grad_clip,
                                     continuation=state.pi_g)
            g_steps = int(info_g["agent_steps"])
        info_g["wall_s"] = time.perf_counter() - tg
        return Proposal(self.cand_g, info_g, g_steps)

    def propose_local(self, state: LoopState[GlobalAgent, LocalAgent],
                      seed: Any) -> Proposal[LocalAgent]:
        """TRPO continues training ``cand_l`` against the played ``pi_g``."""
        cfg = self.cfg
        assert state.pi_g is not None
        tl = time.perf_counter()
        info_l = l_learn_trpo(self.cand_l, state.pi_g.actor(), self.k, seed[0],
                              iterations=cfg.trpo_iters, rollouts=cfg.trpo_rollouts,
                              horizon=cfg.trpo_horizon, tracked=cfg.trpo_tracked, cfg=cfg.trpo)
        info_l["wall_s"] = time.perf_counter() - tl
        return Proposal(self.cand_l, _compact_trpo(info_l), int(info_l["agent_steps"]))

    def accept(self, state: LoopState[GlobalAgent, LocalAgent], player: str,
               proposal: Proposal[Any]) -> Any:
        """The played policy becomes a copy of the candidate (which keeps training)."""
        return proposal.policy.clone()

    def reject(self, state: LoopState[GlobalAgent, LocalAgent], player: str,
               proposal: Proposal[Any], comparison: Comparison) -> None:
        """With ``reset_on_reject``, a rejected candidate restarts from the played policy."""
        if comparison.decision is Decision.REJECT and self.cfg.reset_on_reject:
            if player == GLOBAL:
                assert state.pi_g is not None
                self.cand_g = state.pi_g.clone()
            else:
                self.cand_l = state.pi_l.clone()

    def begin_sweep(self, state: LoopState[GlobalAgent, LocalAgent]) -> None:
        """Start the sweep's clock."""
        self.ts = time.perf_counter()

    def end_sweep(self, state: LoopState[GlobalAgent, LocalAgent],
                  steps: list[StepRecord]) -> None:
        """One history entry per sweep, the checkpoint, then ``on_sweep``."""
        rec_g, rec_l = steps
        assert state.current is not None and state.pi_g is not None
        entry: dict[str, Any] = {"sweep": state.sweep - 1, "v_start": rec_g.v_old}
        entry.update({
            "global": _side(rec_g), "local": _side(rec_l),
            "v_end": float(state.current.mean), "wall_s": time.perf_counter() - self.ts,
            "g_agent_steps": rec_g.samples, "l_agent_steps": rec_l.samples,
            "update_agent_steps": 3 * self.eval_cost,
            "cpu_s_total": self.cpu_before + time.process_time() - self.c0,
        })
        self.history.append(entry)
        if self.ckpt is not None:
            meta = dict(self.ident, next_alternation=state.sweep, stale=state.stale,
                        history=self.history,
                        elapsed_s=self.elapsed_before + time.perf_counter() - self.t0)
            self.ckpt.save(meta, {"global": state.pi_g.state_dict(),
                                  "global_cand": self.cand_g.state_dict(),
                                  "local": state.pi_l.state_dict(),
                                  "local_cand": self.cand_l.state_dict()})
        if self.on_sweep is not None:
            self.on_sweep(state.sweep - 1, entry)


def _side(rec: StepRecord) -> dict[str, Any]:
    """The history entry of one proposal: decision, the comparison's numbers, the learner's
    diagnostics."""
    c = rec.comparison
    assert c is not None
    return {"decision": c.decision.value, "v_new": c.v_new, "v_old": c.v_old, "diff": c.diff,
            "se_diff": c.se_diff, "eta": c.eta, "tail": c.tail, "learner": rec.info}


def run_continuous(
    k: int,
    seed: int = 0,
    config: ContinuousConfig | None = None,
    env: ContinuousWarehouse | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    on_sweep: Callable[[int, dict[str, Any]], None] | None = None,
    callbacks: Any = None,
) -> ContinuousResult:
    """One ALTERNATING-MARL run on the continuous warehouse (see the module docstring).

    Parameters
    ----------
    k
        Dispatcher's subsample size, ``1 <= k <= n``.
    seed
        Drives everything (with ``k``): ``SeedSequence([seed, k])``.
    config
        :class:`ContinuousConfig` (defaults: SPEC 8.2 where given).
    env
        The game (default ``ContinuousWarehouse(n=config.n)``).
    checkpoint_dir
        If given, the state is saved there after every sweep; with ``resume`` an existing
        checkpoint of the same run (same config, game, ``k``, ``seed``) is continued.
    on_sweep
        Called after every sweep with ``(sweep_index, history_entry)`` (progress bars).
    callbacks
        Experiment trackers (:class:`altmarl.tracking.Tracker`, one or a list; the caller
        closes them): the configuration, every UPDATE proposal of this call, the final
        value. They never change a number.
    """
    from altmarl.tracking.base import as_trackers, with_trackers

    trackers = as_trackers(callbacks)
    cfg = config or ContinuousConfig()
    env = env or ContinuousWarehouse(n=cfg.n)
    if env.n != cfg.n:
        raise ValueError(f"env.n = {env.n} but config.n = {cfg.n}: expected equal")
    k = env.check_k(k)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed = {seed!r}: expected an integer >= 0")
    seed = int(seed)
    set_torch_threads(cfg.torch_threads)
    root = np.random.SeedSequence([seed, k])
    greedy_l = cfg.local_eval == "greedy"
    ga = GlobalAgent(env, k, hidden=cfg.hidden, use_s_g=cfg.use_s_g,
                     init_seed=torch_seed(rnd_child(root, 0, 0)))
    la = LocalAgent(env, hidden=cfg.hidden, init_seed=torch_seed(rnd_child(root, 0, 1)),
                    table_grid=cfg.table_grid)
    cand_g, cand_l = ga.clone(), la.clone()
    history: list[dict[str, Any]] = []
    start, stale, elapsed_before = 0, 0, 0.0
    ident = {"format": CHECKPOINT_FORMAT, "config": cfg.to_json(), "env": env.to_json(),
             "k": k, "seed": seed}
    ckpt = _Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and resume:
        loaded = ckpt.load()
        if loaded is not None:
            meta, tensors = loaded
            for key in ("config", "env", "k", "seed"):
                if meta.get(key) != ident[key]:
                    raise ValueError(f"{ckpt.dir}: checkpoint {key} differs from this run; "
                                     "use another directory or resume=False")
            try:
                ga.load_state_dict(tensors["global"])
                cand_g.load_state_dict(tensors["global_cand"])
                la.load_state_dict(tensors["local"])
                cand_l.load_state_dict(tensors["local_cand"])
            except (RuntimeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{ckpt.dir}/state.pt: networks do not match the "
                                 f"configuration ({type(exc).__name__}: {str(exc)[:300]})"
                                 ) from None
            history = list(meta["history"])
            start, stale = int(meta["next_alternation"]), int(meta["stale"])
            elapsed_before = float(meta["elapsed_s"])
    adapter = ContinuousAdapter(env, k, cfg, root, cand_g, cand_l, history, ckpt, ident,
                                elapsed_before, on_sweep)
    state: LoopState[GlobalAgent, LocalAgent] = LoopState(pi_g=ga, pi_l=la, sweep=start,
                                                          stale=stale)
    trackers.log_params({"k": k, "seed": seed, "config": cfg.to_json(), "env": env.to_json()})
    out = run_alternating(adapter, state, sweeps=cfg.alternations, patience=cfg.patience,
                          rule=update_rule(cfg, env), accept_all=cfg.accept_all,
                          callback=with_trackers(None, trackers))
    assert out.state.pi_g is not None
    ga, la = out.state.pi_g, out.state.pi_l
    stopped = out.converged
    train_s = elapsed_before + time.perf_counter() - adapter.t0
    train_cpu_s = adapter.cpu_before + time.process_time() - adapter.c0
    samples = {"g_agent_steps": 0, "l_agent_steps": 0, "update_agent_steps": 0}
    for h in history:
        for key in samples:
            samples[key] += int(h.get(key, 0))
    # --- final evaluation: exact networks, seed independent of k --------------------
    te = time.perf_counter()
    ss_final = np.random.SeedSequence([seed, EVAL_TAG])
    tr = simulate(env, ga.actor(), la.actor(greedy_l, exact=True), k, cfg.eval_rollouts,
                  cfg.eval_horizon, ss_final, subsample=cfg.subsample)
    ev = summarize(env, tr)
    tr_tab = simulate(env, ga.actor(), la.actor(greedy_l), k, cfg.eval_rollouts,
                      cfg.eval_horizon, ss_final, subsample=cfg.subsample)
    table_value = float(tr_tab.discounted_returns(env.gamma).mean())
    extra = {
        "train_s": train_s, "train_cpu_s": train_cpu_s, "eval_s": time.perf_counter() - te, "sweeps": len(history),
        "stopped_early": bool(stopped and len(history) < cfg.alternations),
        "accepted_global": sum(h["global"]["decision"] == "accept" for h in history),
        "accepted_local": sum(h["local"]["decision"] == "accept" for h in history),
        "samples": samples,
        "mode_accuracy_reset": mode_accuracy_at_reset(ga, samples=1000, seed=seed),
        "table_value": table_value, "torch_threads": cfg.torch_threads,
    }
    res = ContinuousResult(k=k, seed=seed, config=cfg, env=env, global_agent=ga, local_agent=la,
                           history=history, evaluation=ev, extra=extra)
    if trackers:
        trackers.on_final(final_of_continuous(res.summary()))
    return res


def final_of_continuous(summary: dict[str, Any]) -> dict[str, Any]:
    """The final numbers of a continuous run's ``result.json`` for trackers: value and its
    standard error, the mode-match rate, sweeps, accepted proposals, training time."""
    ev = summary.get("evaluation") or {}
    return {"k": summary.get("k"), "value": ev.get("mean"), "value_stderr": ev.get("stderr"),
            "mode_match_rate": ev.get("mode_match_rate"), "sweeps": summary.get("sweeps"),
            "accepted_global": summary.get("accepted_global"),
            "accepted_local": summary.get("accepted_local"), "train_s": summary.get("train_s")}


def history_proposals(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The UPDATE proposals of a continuous run's history (one entry per sweep) as
    proposal rows for trackers (:func:`altmarl.tracking.proposal_metrics`)."""
    rows = []
    for entry in history:
        for player, steps in (("global", "g_agent_steps"), ("local", "l_agent_steps")):
            side = entry.get(player) or {}
            rows.append({"sweep": int(entry.get("sweep", 0)) + 1, "player": player,
                         "decision": side.get("decision"),
                         "accepted": side.get("decision") == "accept",
                         "v_new": side.get("v_new"), "v_old": side.get("v_old"),
                         "diff": side.get("diff"), "se_diff": side.get("se_diff"),
                         "eta": side.get("eta"), "samples": entry.get(steps)})
    return rows


def _compact_trpo(info: dict[str, Any]) -> dict[str, Any]:
    its = info["iterations"]
    return {"method": "trpo", "iterations": len(its),
            "accepted_steps": [i.get("accepted_step") for i in its],
            "kl": [i.get("kl") for i in its],
            "critic_loss": [i.get("critic_loss") for i in its],
            "mean_local_return": [i.get("mean_local_return") for i in its],
            "samples": sum(int(i.get("samples", 0)) for i in its),
            "agent_steps": int(info["agent_steps"]), "wall_s": info.get("wall_s")}
