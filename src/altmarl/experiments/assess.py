"""Evaluate and compare saved policies (``altmarl evaluate`` / ``altmarl compare``; SPEC 3, 10).

A *policy source* names a pair ``(pi_g, pi_l)`` and, when it can, its game:

* a run directory of ``altmarl run / sweep / reproduce``: the unit with the best value (or
  the one of ``k``), on the run's game and with its evaluation protocol (so ``altmarl
  evaluate RUN_DIR`` reproduces the run's numbers);
* a unit directory (``RUN_DIR/units/k0010_t00``) or a global policy file (``pi_g.npz``,
  ``pi_g.pt``; the local policy is the ``pi_l`` file next to it, else uniform);
* ``uniform`` — uniform play: every agent draws a uniformly random action;
* ``sample-mode`` — the dispatcher that targets the most populated state of its sample
  (needs ``|A_g| = |S_l|``), with uniform local agents;
* ``module:function`` — your own: ``function(game)`` returns ``(pi_g, pi_l)`` or a global
  policy (uniform local agents), e.g. a hand-written dispatcher or a wrapper of a
  Stable-Baselines3 model; any object with the policy protocol of
  :mod:`altmarl.generative.policies` acts.

Every pair is evaluated with the same ``E`` evaluation seeds (``R`` rollouts x ``H`` steps
each): common random numbers, so differences between pairs are paired by seed.
:func:`evaluate_sources` reports each pair's mean over seeds, its standard error and a
Student-t 95% interval (``E - 1`` degrees of freedom); :func:`compare_sources` adds the
paired difference of each pair to the first one, with its Student-t interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the evaluation protocol when no run directory gives one (Table 3's)
DEFAULT_SEEDS, DEFAULT_ROLLOUTS, DEFAULT_HORIZON = 15, 50, 100


@dataclass
class Pair:
    """A policy pair ready to evaluate: where it came from (``label``) and what it is."""

    label: str
    pi_g: Any
    pi_l: Any
    description: str
    #: the run directory's configuration when the source was one (its game and protocol)
    run_config: dict[str, Any] | None = None

    @property
    def tabular(self) -> bool:
        from altmarl.policies import GlobalPolicy, LocalPolicy

        return isinstance(self.pi_g, GlobalPolicy) and isinstance(self.pi_l, LocalPolicy)


@dataclass
class Protocol:
    """How pairs are evaluated: the game, ``seeds`` (their values), rollouts, horizon, and
    optionally a sampling scheme (:mod:`altmarl.sampling`) for tabular pairs."""

    game: Any
    seeds: list[int]
    rollouts: int
    horizon: int
    sampling: Any = None
    notes: list[str] = field(default_factory=list)


def student_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation, standard error and Student-t 95% interval (``n - 1``
    degrees of freedom) of ``values`` (one per evaluation seed):
    :func:`altmarl.evaluation.seed_interval` as this module's dict (``std``, ``stderr``,
    ``ci95`` ``None`` for one value)."""
    from altmarl.evaluation import seed_interval

    iv = seed_interval(values)
    if iv.n < 2:
        return {"mean": iv.mean, "std": None, "stderr": None, "ci95": None, "n": iv.n}
    return {"mean": iv.mean, "std": iv.std, "stderr": iv.stderr,
            "ci95": None if iv.ci is None else list(iv.ci), "n": iv.n}


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------


def _game_of(cfg: dict[str, Any], n: int | None) -> Any:
    from altmarl import envs

    params = dict(cfg["env"].get("params", {}))
    if n is not None:
        params["n"] = n
    return envs.make(cfg["env"]["name"], **params)


def _policy_file(udir: Path, stem: str) -> Path | None:
    from altmarl.rundir import POLICY_SUFFIXES

    for suf in POLICY_SUFFIXES:
        if (udir / f"{stem}{suf}").is_file():
            return udir / f"{stem}{suf}"
    return None


def _load(path: Path, player: str, game: Any, strict: bool) -> Any:
    """A policy file of either family, checked against ``game`` (``strict``: its
    fingerprint too; ``--n`` changes the population, hence the fingerprint)."""
    from altmarl.generative.files import NEURAL_SUFFIX

    if path.suffix == NEURAL_SUFFIX:
        if player == "global":
            from altmarl.generative.neural import NeuralGlobalPolicy

            return NeuralGlobalPolicy.load(path, game, strict=strict)
        from altmarl.generative.neural_local import NeuralLocalPolicy

        return NeuralLocalPolicy.load(path, game, strict=strict)
    from altmarl.policies import GlobalPolicy, LocalPolicy

    cls = GlobalPolicy if player == "global" else LocalPolicy
    return cls.load(path, game, strict=strict)


def _uniform_local(game: Any) -> Any:
    from altmarl.game import TabularGame
    from altmarl.generative.policies import UniformLocalPolicy
    from altmarl.policies import LocalPolicy

    return LocalPolicy.uniform(game) if isinstance(game, TabularGame) else UniformLocalPolicy(game.n_al)


def _best_unit(run_dir: Path, k: int | None) -> Path:
    """The unit directory of ``k`` (training run 0), or of the ``k`` with the best mean."""
    from altmarl.rundir import read_summary, unit_name, units_dir

    summary = read_summary(run_dir)
    per_k = summary.get("per_k") or []
    if not per_k:
        raise ValueError(f"{run_dir}: no finished unit yet (run `altmarl plot {run_dir}` to "
                         "see its state)")
    if k is None:
        k = int(max(per_k, key=lambda p: p["mean"])["k"])
    elif k not in [p["k"] for p in per_k]:
        raise ValueError(f"--k {k}: {run_dir} has no finished unit for k = {k}; it has k = "
                         f"{', '.join(str(p['k']) for p in per_k)}")
    return units_dir(run_dir) / unit_name(k, 0)


def load_source(spec: str, game: Any = None, *, k: int | None = None, n: int | None = None
                ) -> tuple[Pair, Any]:
    """The pair named by ``spec`` (module docstring) and its game: the run's game for run
    and unit directories (with ``n`` agents when given), else ``game`` (``ValueError`` when
    neither is known)."""
    from altmarl.rundir import read_run_record, run_dir_kind

    p = Path(spec)
    if p.is_dir():
        try:
            kind: str | None = run_dir_kind(p)
        except ValueError:
            kind = None
        if kind == "tune":
            from altmarl.io import read_json

            best = (read_json(p / "tuning.json", "tuning.json").get("best") or {}) \
                if (p / "tuning.json").is_file() else {}
            trial = (f"its best trial: `altmarl evaluate {p}/trials/trial_"
                     f"{int(best['number']):04d}`" if "number" in best
                     else f"a trial of it: `altmarl evaluate {p}/trials/trial_NNNN`")
            raise ValueError(f"{p}: a tuning directory of `altmarl tune`; evaluate {trial}")
        if kind == "run":
            udir, run_dir = _best_unit(p, k), p
        elif (p / "result.json").is_file() and (p.parent.name == "units"):
            udir, run_dir = p, p.parent.parent
        elif kind is not None:
            from altmarl.rundir import RUN_DIR_KINDS

            raise ValueError(f"{p}: a run directory of `{RUN_DIR_KINDS[kind]}`; altmarl "
                             "evaluate reads run directories of `altmarl run / sweep / "
                             "reproduce` and their unit directories")
        else:
            raise ValueError(f"{p}: not a run directory or unit directory of altmarl")
        cfg = read_run_record(run_dir)["config"]
        g = _game_of(cfg, n)
        strict = n is None
        pg_file, pl_file = _policy_file(udir, "pi_g"), _policy_file(udir, "pi_l")
        if pg_file is None or pl_file is None:
            raise ValueError(f"{udir}: no pi_g / pi_l policy files")
        pair = Pair(spec, _load(pg_file, "global", g, strict), _load(pl_file, "local", g, strict),
                    f"learned policies of {udir}", cfg)
        return pair, g
    if p.suffix in (".npz", ".pt") and p.is_file():
        if game is None:
            raise ValueError(f"{spec}: a bare policy file does not say its game; pass --env "
                             "ENV_OR_CONFIG")
        pl_file = _policy_file(p.parent, "pi_l")
        pi_l = (_load(pl_file, "local", game, n is None) if pl_file is not None
                else _uniform_local(game))
        what = f"{p}" + (f" with {pl_file}" if pl_file else " with uniform local agents")
        return Pair(spec, _load(p, "global", game, n is None), pi_l, what), game
    if spec in ("uniform", "sample-mode") or ":" in spec:
        if game is None:
            raise ValueError(f"{spec}: needs a game; pass --env ENV_OR_CONFIG or put a run "
                             "directory first")
        return builtin_pair(spec, game, k), game
    raise ValueError(f"{spec!r}: not a run directory, unit directory, policy file (.npz, "
                     ".pt), 'uniform', 'sample-mode' or 'module:function'")


def builtin_pair(spec: str, game: Any, k: int | None) -> Pair:
    """``uniform``, ``sample-mode`` or a user's ``module:function`` on ``game``."""
    from altmarl._validate import resolve_callable
    from altmarl.generative.policies import UniformGlobalPolicy

    if spec == "uniform":
        return Pair(spec, UniformGlobalPolicy(game.n_ag, seed=0, k=k or 1), _uniform_local(game),
                    "uniform play (every agent acts uniformly at random)")
    if spec == "sample-mode":
        from altmarl.game import TabularGame
        from altmarl.policies import GlobalPolicy

        if not isinstance(game, TabularGame):
            raise ValueError("sample-mode: needs a tabular game")
        kk = k or 10
        return Pair(spec, GlobalPolicy.sample_mode(game, min(kk, game.n)), _uniform_local(game),
                    f"sample-mode dispatcher (k = {min(kk, game.n)}), uniform local agents")
    fn = resolve_callable("policy", spec)
    got = fn(game)
    if isinstance(got, tuple) and len(got) == 2:
        pi_g, pi_l = got
    else:
        pi_g, pi_l = got, _uniform_local(game)
    return Pair(spec, pi_g, pi_l, f"{spec}(game)")


def env_game(target: str, n: int | None = None) -> Any:
    """The game of ``--env``: an environment name, packaged configuration or TOML file
    (``n`` agents when given)."""
    from altmarl.experiments.config import resolve_target

    cfg = resolve_target(target).resolved()
    return _game_of(cfg, n)


#: the note of an evaluation under the run's own protocol (the numbers repeat its summary)
RUN_PROTOCOL = "the run's own evaluation protocol: the numbers repeat its summary"


def protocol_for(game: Any, pairs: Sequence[Pair], *, seeds: int | None, rollouts: int | None,
                 horizon: int | None, seed: int | None, sampling: Any = None,
                 n: int | None = None) -> Protocol:
    """The evaluation protocol: the first run directory's (seeds derived from its root
    seed, rollouts, horizon), each overridden by the options, else Table 3's 15 x 50 x 100
    from root seed 0. ``n``: the ``--n`` option (another population than the run's)."""
    from altmarl.experiments.runner import eval_seeds

    cfg = next((p.run_config for p in pairs if p.run_config is not None), None)
    ev = (cfg or {}).get("evaluation", {})
    root = seed if seed is not None else int((cfg or {}).get("seed", 0))
    E = seeds or int(ev.get("seeds", DEFAULT_SEEDS))
    proto = Protocol(game, eval_seeds(root, E), rollouts or int(ev.get("rollouts",
                                                                         DEFAULT_ROLLOUTS)),
                     horizon or int(ev.get("horizon", DEFAULT_HORIZON)), sampling)
    if cfg is not None and seeds is None and rollouts is None and horizon is None \
            and seed is None and sampling is None and n is None:
        proto.notes.append(RUN_PROTOCOL)
    return proto


def _per_seed(pair: Pair, proto: Protocol, generative: bool) -> list[float]:
    """Per-seed means of ``pair``; ``generative``: on the per-agent simulator (one thread,
    so policies with their own generators repeat)."""
    from altmarl.evaluation import evaluate, evaluate_generative
    from altmarl.generative.policies import UniformGlobalPolicy

    out = []
    for s in proto.seeds:
        pi_g = pair.pi_g
        if isinstance(pi_g, UniformGlobalPolicy):  # a fresh stream per seed, like the baseline
            from altmarl.experiments.report import UNIFORM_TAG

            pi_g = UniformGlobalPolicy(pi_g.n_ag, seed=[int(s), UNIFORM_TAG], k=pi_g.k)
        if generative:
            game = proto.game
            gen = game if not hasattr(game, "as_generative") else game.as_generative()
            ev = evaluate_generative(gen, pi_g, pair.pi_l, proto.rollouts, proto.horizon,
                                     int(s), workers=1)
        else:
            ev = evaluate(proto.game, pi_g, pair.pi_l, rollouts=proto.rollouts,
                          horizon=proto.horizon, seed=int(s), sampling=proto.sampling)
        out.append(float(ev.mean))
    return out


def evaluate_sources(pairs: Sequence[Pair], proto: Protocol) -> list[dict[str, Any]]:
    """Each pair under ``proto``: per-seed means and :func:`student_interval`. All pairs
    use the same seeds and, when any pair is not tabular, the same (per-agent) simulator,
    so their per-seed values are paired."""
    generative = not all(p.tabular for p in pairs)
    if generative and proto.sampling is not None:
        raise ValueError("--sampling: sampling schemes need tabular policies on a tabular game")
    if generative:
        note = "every policy on the per-agent simulator, since not all are tabular"
        if RUN_PROTOCOL in proto.notes:  # same protocol, another simulator: other numbers
            proto.notes.remove(RUN_PROTOCOL)
            note = ("the run's own evaluation protocol, but " + note + ": the values differ "
                    "from its summary by simulation noise")
        proto.notes.append(note)
    rows = []
    for pair in pairs:
        means = _per_seed(pair, proto, generative)
        rows.append({"label": pair.label, "description": pair.description, "means": means,
                     **student_interval(means)})
    return rows


def compare_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For every row after the first: the paired per-seed difference ``row - first`` and its
    Student-t interval (``diff`` entries); the first row gets ``diff = None``."""
    base = np.asarray(rows[0]["means"])
    out = [{**rows[0], "diff": None}]
    for r in rows[1:]:
        d = np.asarray(r["means"]) - base
        out.append({**r, "diff": student_interval(d.tolist())})
    return out


__all__ = ["DEFAULT_HORIZON", "DEFAULT_ROLLOUTS", "DEFAULT_SEEDS", "Pair", "Protocol", "RUN_PROTOCOL",
           "builtin_pair", "compare_rows", "env_game", "evaluate_sources", "load_source",
           "protocol_for", "student_interval"]
