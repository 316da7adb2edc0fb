"""``altmarl evaluate`` and ``altmarl compare``: saved policies against each other and
against uniform play (SPEC 3, 10; :mod:`altmarl.experiments.assess`).

    altmarl evaluate RUN_DIR_OR_POLICY [--k K] [--seeds E] [--rollouts R] [--horizon H] [--n N]
                     [--sampling JSON] [--env ENV_OR_CONFIG] [--seed S]
    altmarl compare A B [C ...] [same options]
"""

from __future__ import annotations

import json
from typing import Any

import typer

from altmarl.cli.common import echo, fail


def _ci(stats: dict[str, Any]) -> str:
    if stats.get("ci95") is None:
        return "(one seed: no interval)"
    lo, hi = stats["ci95"]
    return f"± {stats['stderr']:.2f} (standard error), 95% interval [{lo:.2f}, {hi:.2f}]"


def _setup(sources: list[str], k: int | None, n: int | None, env: str | None,
           seeds: int | None, rollouts: int | None, horizon: int | None, seed: int | None,
           sampling: str | None) -> tuple[list[Any], Any]:
    """Load every source and the shared protocol (``ValueError`` naming what is wrong)."""
    from altmarl.experiments.assess import env_game, load_source, protocol_for

    game = env_game(env, n) if env is not None else None
    pairs = []
    for spec in sources:
        pair, g = load_source(spec, game, k=k, n=n)
        if game is None:
            game = g
        elif g is not game and getattr(g, "fingerprint", lambda: None)() != game.fingerprint():
            raise ValueError(f"{spec}: was learned on another game than {sources[0]} "
                             f"({getattr(g, 'name', '?')} vs {getattr(game, 'name', '?')}); "
                             "compare policies of one game")
        pairs.append(pair)
    scheme = None
    if sampling is not None:
        from altmarl.sampling import from_json

        try:
            scheme = from_json(json.loads(sampling), "--sampling")
        except json.JSONDecodeError:
            raise ValueError(f"--sampling = {sampling!r}: expected JSON, e.g. "
                             "'{\"scheme\": \"weighted\", \"w\": [1, 2, 1, 1, 1], \"k\": 10}'"
                             ) from None
    proto = protocol_for(game, pairs, seeds=seeds, rollouts=rollouts, horizon=horizon,
                         seed=seed, sampling=scheme, n=n)
    return pairs, proto


def _protocol_line(proto: Any) -> str:
    g = proto.game
    line = (f"game {getattr(g, 'name', '?')} (n = {g.n}); {len(proto.seeds)} evaluation seeds x "
            f"{proto.rollouts} rollouts x horizon {proto.horizon}, discounted "
            f"(gamma = {g.gamma})")
    if proto.sampling is not None:
        line += f"; sampling {proto.sampling.describe()}"
    return line


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and ``compare`` to the ``altmarl`` app."""
    k_opt = typer.Option(None, "--k", min=1, help="which k of a run directory (default: the "
                         "best); the sample size of sample-mode")
    seeds_opt = typer.Option(None, "--seeds", min=2, help="evaluation seeds (default: the "
                             "run's, else 15)")
    rollouts_opt = typer.Option(None, "--rollouts", min=1, help="rollouts per seed (default: "
                                "the run's, else 50)")
    horizon_opt = typer.Option(None, "--horizon", min=1, help="steps per rollout (default: "
                               "the run's, else 100)")
    n_opt = typer.Option(None, "--n", min=1, help="number of local agents (default: the "
                         "run's); the policies act on k-samples, so they transfer to any n")
    sampling_opt = typer.Option(None, "--sampling", help="the global agent's sampling "
                                "scheme as JSON, e.g. '{\"scheme\": \"weighted\", \"w\": "
                                "[1, 2, 1, 1, 1], \"k\": 10}' (default: uniform k-subsets)")
    env_opt = typer.Option(None, "--env", help="the game for sources without a run "
                           "directory (an environment, packaged configuration or TOML file)")
    seed_opt = typer.Option(None, "--seed", min=0, help="root seed of the evaluation seeds "
                            "(default: the run's, else 0)")

    @app.command("evaluate")
    def evaluate_cmd(
        source: str = typer.Argument(..., metavar="RUN_DIR_OR_POLICY",
                                     help="a run directory, a unit directory, a pi_g policy "
                                          "file, uniform, sample-mode or module:function"),
        k: int | None = k_opt, seeds: int | None = seeds_opt,
        rollouts: int | None = rollouts_opt, horizon: int | None = horizon_opt,
        n: int | None = n_opt, sampling: str | None = sampling_opt,
        env: str | None = env_opt, seed: int | None = seed_opt,
    ) -> None:
        """Evaluate saved policies: value, standard error, interval, and uniform play.

        The value is the discounted return, mean over evaluation seeds; the interval is
        Student-t over the seeds. Uniform play is evaluated with the same seeds."""
        from altmarl.experiments.assess import evaluate_sources, student_interval
        from altmarl.experiments.report import uniform_play

        try:
            pairs, proto = _setup([source], k, n, env, seeds, rollouts, horizon, seed, sampling)
            row = evaluate_sources(pairs, proto)[0]
            base = student_interval(uniform_play(proto.game, proto.seeds, proto.rollouts,
                                                 proto.horizon)["means"])
        except ValueError as exc:
            fail(str(exc))
        echo(f"{pairs[0].description}")
        echo(f"evaluation: {_protocol_line(proto)}")
        for note in proto.notes:
            echo(f"  ({note})")
        echo(f"value: {row['mean']:.2f} {_ci(row)}")
        gain = row["mean"] - base["mean"]
        echo(f"uniform play, same seeds: {base['mean']:.2f} {_ci(base)}; the policies gain "
             f"{gain:+.2f}")

    @app.command("compare")
    def compare_cmd(
        sources: list[str] = typer.Argument(..., metavar="A B [C ...]",
                                            help="two or more policy sources (as for "
                                                 "evaluate); differences are against A"),
        k: int | None = k_opt, seeds: int | None = seeds_opt,
        rollouts: int | None = rollouts_opt, horizon: int | None = horizon_opt,
        n: int | None = n_opt, sampling: str | None = sampling_opt,
        env: str | None = env_opt, seed: int | None = seed_opt,
    ) -> None:
        """Compare policies with common random numbers and paired Student-t intervals.

        Every policy is evaluated with the same seeds; each seed's difference to A is
        paired, and the interval of the mean difference is Student-t over the seeds."""
        from altmarl.experiments.assess import compare_rows, evaluate_sources

        if len(sources) < 2:
            fail("compare: expected at least two policy sources (A B ...); use `altmarl "
                 "evaluate` for one")
        try:
            pairs, proto = _setup(sources, k, n, env, seeds, rollouts, horizon, seed, sampling)
            rows = compare_rows(evaluate_sources(pairs, proto))
        except ValueError as exc:
            fail(str(exc))
        echo(f"evaluation: {_protocol_line(proto)}")
        for note in proto.notes:
            echo(f"  ({note})")
        width = max(len(r["label"]) for r in rows)
        for i, (r, pair) in enumerate(zip(rows, pairs, strict=True)):
            name = chr(ord("A") + i) if i < 26 else str(i)
            echo(f"{name}  {r['label']:<{width}}  value {r['mean']:.2f} {_ci(r)}")
            echo(f"   {'':<{width}}  ({pair.description})")
        for i, r in enumerate(rows[1:], start=1):
            d = r["diff"]
            name = chr(ord("A") + i) if i < 26 else str(i)
            lo, hi = d["ci95"]
            verdict = ("better" if lo > 0 else "worse" if hi < 0
                       else "no significant difference")
            echo(f"{name} - A: {d['mean']:+.2f} ± {d['stderr']:.2f} (paired standard error), "
                 f"95% interval [{lo:+.2f}, {hi:+.2f}]: {verdict} at the 95% level")


__all__ = ["register"]
