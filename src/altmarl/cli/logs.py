"""``altmarl logs ...``: logged data and off-policy G-LEARN (paper Appendices E and F).

    altmarl logs record ENV --k K --out PATH [--set key=value ...] [--episodes R]
                        [--horizon H] [--behaviour uniform|epsilon-greedy] [--epsilon E]
                        [--policy PI_G.npz] [--local-policy PI_L.npz] [--local-actions]
                        [--noise none|uniform|bernoulli|truncnorm] [--noise-g X] [--noise-l X]
                        [--seed S]
    altmarl logs info PATH
    altmarl logs learn PATH [--out POLICY.npz] [--epochs E] [--mode sequential|synchronous]
                       [--schedule rescaled-linear|polynomial|constant] [--omega W]
                       [--alpha A] [--env ENV --set ... [--local-policy F] --compare]
    altmarl logs convergence ENV --k K [--set ...] [--sizes 1000,10000,100000]
                             [--horizon H] [--epochs E] [--mode M] [--seed S] [--json OUT]
    altmarl logs evaluate PATH --policy POLICY [--local-policy PI_L.npz]
                          [--method fqe|is|pdis|wis|all]
                          [--behaviour-policy PI_G.npz] [--env ENV --set ...] [--k K]
                          [--bootstrap B] [--seed S] [--json OUT]
    altmarl logs join DECISIONS --outcomes OUTCOMES.csv --out PATH [--behaviour logged|uniform]
                      [--n N]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from altmarl.cli.common import console, fail, no_progress_option, parse_sets
from altmarl.io import format_number


def _make_game(env: str, sets: list[str]) -> Any:
    from altmarl import envs

    return envs.make(env, **parse_sets(sets))


def _noise(family: str, value: float | None) -> Any:
    from altmarl.glearn import rewards as st

    if value is None or value == 0:
        return None
    if family == "uniform":
        return st.uniform(value)
    if family == "bernoulli":
        return st.bernoulli(value)
    if family == "truncnorm":
        return st.truncated_normal(value)
    raise ValueError(f"--noise = {family!r}: expected none, uniform, bernoulli or truncnorm")


def _reward_model(game: Any, family: str, noise_g: float | None, noise_l: float | None) -> Any:
    from altmarl.glearn.rewards import RewardModel

    if family == "none":
        if noise_g or noise_l:
            raise ValueError("--noise-g / --noise-l need --noise uniform|bernoulli|truncnorm")
        return None
    ng, nl = _noise(family, noise_g), _noise(family, noise_l)
    if ng is None and nl is None:
        raise ValueError(f"--noise {family}: give --noise-g and/or --noise-l (the width, sigma "
                         "or high of the family)")
    return RewardModel.from_game(game, ng, nl)


def _local_policy(game: Any, path: Path | None) -> Any:
    from altmarl.policies import LocalPolicy

    return LocalPolicy.uniform(game) if path is None else LocalPolicy.load(path, game=game)


def _target(spec: str, game: Any, k: int | None) -> tuple[Any, Any]:
    """The global policy of ``--policy`` and its game (when the source names one)."""
    from altmarl.experiments.assess import load_source

    p = Path(spec)
    if p.is_file() and p.suffix in (".npz", ".pt") and game is None:
        from altmarl.generative.files import load_policy

        return load_policy(p, "global"), None
    pair, g = load_source(spec, game, k=k)
    return pair.pi_g, g


def _estimate_lines(est: Any) -> list[str]:
    lo_hi = ("no interval" if est.ci95 is None
             else f"95% interval [{est.ci95[0]:.4f}, {est.ci95[1]:.4f}] (bootstrap over "
                  f"episodes, {est.bootstrap} resamples)")
    lines = [f"{est.method:>4}: {est.value:.4f}  {lo_hi}", f"      estimates {est.estimand}"]
    imp = est.diagnostics.get("importance")
    if imp is not None and est.method != "fqe":
        lines.append(f"      effective sample size {imp['ess']:.1f} of {imp['episodes']} "
                     f"episodes at step {imp['ess_step']} (last step {imp['ess_last_step']:.1f})"
                     + (f"; global ratio alone {imp['ess_global_only']:.1f}"
                        if imp.get("joint") else "")
                     + f"; weights carried to step {imp['support_steps']}"
                     + (f" (they miss up to {imp['unsupported_bound']:.3g} of discounted reward "
                        "after it)" if imp["unsupported_bound"] > 0 else ""))
    if est.flags:
        lines.append(f"      flags: {', '.join(est.flags)}")
    return lines


def register(app: typer.Typer) -> None:
    """Add the ``logs`` command group to the ``altmarl`` app."""
    logs = typer.Typer(help="Logged data: record logs, inspect them, learn a global policy "
                            "off-policy (G-LEARN eq. 38, paper Appendix E).",
                       no_args_is_help=True)
    app.add_typer(logs, name="logs")
    set_opt = typer.Option([], "--set", metavar="KEY=VALUE",
                           help="environment parameter, e.g. --set n=1000 (repeatable)")

    @logs.command("record")
    def record_cmd(
        env: str = typer.Argument(..., help="environment name (altmarl envs)"),
        k: int = typer.Option(..., "--k", help="subsample size the global agent observes"),
        out: Path = typer.Option(..., "--out", help="log path: writes OUT.csv (OUT.csv.gz if "
                                                    "it ends in .gz) and OUT.json"),
        sets: list[str] = set_opt,
        episodes: int = typer.Option(100, "--episodes", help="number of episodes"),
        horizon: int = typer.Option(100, "--horizon", help="steps per episode"),
        behaviour: str = typer.Option("uniform", "--behaviour",
                                      help="uniform or epsilon-greedy (needs --policy)"),
        epsilon: float = typer.Option(0.1, "--epsilon", help="exploration probability"),
        policy: Path | None = typer.Option(None, "--policy", help="global policy file "
                                                                  "(epsilon-greedy base)"),
        local_policy: Path | None = typer.Option(None, "--local-policy",
                                                 help="local policy file (default uniform)"),
        next_histogram: str = typer.Option("fresh", "--next-histogram",
                                           help="fresh (a new k-sample of the next population) "
                                                "or tracked (the same k agents after the step)"),
        local_actions: bool = typer.Option(False, "--local-actions",
                                           help="also log the population's local-action counts "
                                                "N_x_a and the local policy (what `logs "
                                                "evaluate --local-policy` needs)"),
        noise: str = typer.Option("none", "--noise", help="reward noise family: none, uniform, "
                                                          "bernoulli, truncnorm"),
        noise_g: float | None = typer.Option(None, "--noise-g", help="global reward noise "
                                             "(width / high / sigma)"),
        noise_l: float | None = typer.Option(None, "--noise-l", help="local reward noise "
                                             "(width / high / sigma)"),
        seed: int = typer.Option(0, "--seed", help="seed"),
        no_progress: bool = no_progress_option(),
    ) -> None:
        """Record logs of the n-agent system under a behaviour policy (count simulator)."""
        from altmarl.offpolicy import record_logs
        from altmarl.policies import GlobalPolicy

        try:
            game = _make_game(env, sets)
            pi_l = _local_policy(game, local_policy)
            pi_g = None if policy is None else GlobalPolicy.load(policy, game=game)
            model = _reward_model(game, noise, noise_g, noise_l)
            ds = record_logs(game, k, episodes, horizon, pi_l=pi_l, behaviour=behaviour,
                             pi_g=pi_g, epsilon=epsilon, reward_model=model,
                             next_histogram=next_histogram, local_actions=local_actions,
                             seed=seed, progress=not no_progress)
            path = ds.save(out)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        console().print(f"recorded {len(ds)} transitions ({episodes} episodes x {horizon} "
                         f"steps, k = {k}, n = {game.n}) -> [bold]{path}[/]", highlight=False,
                         soft_wrap=True)

    @logs.command("info")
    def info_cmd(path: Path = typer.Argument(..., help="a log (NAME.csv or NAME.json)")) -> None:
        """Validate a log and summarize it."""
        from altmarl.offpolicy import load_dataset

        try:
            ds = load_dataset(path)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        s = ds.summary()
        con = console()
        con.print(f"[green]valid[/] log: {s['rows']} transitions, {s['episodes']} episodes, "
                  f"k = {s['k']}, n = {s['n']}, gamma = {s['gamma']}, spaces {s['spaces']}",
                  highlight=False, soft_wrap=True)
        con.print(f"reward: min {s['reward_min']:.4g}, mean {s['reward_mean']:.4g}, max "
                  f"{s['reward_max']:.4g}; actions taken {s['action_counts']}", highlight=False)
        c = s["coverage"]
        con.print(f"coverage: {c['pairs_visited']}/{c['pairs']} (s_g, h, a_g) pairs, "
                  f"{c['states_visited']}/{c['states']} states; {c['states_with_untried_actions']} "
                  f"visited states with an untried action", highlight=False, soft_wrap=True)
        con.print(f"behaviour: {json.dumps(s['behaviour'])}", highlight=False, soft_wrap=True)
        if ds.local_counts is not None:
            con.print("local actions: the population's counts N_x_a per step; local behaviour "
                      + ("recorded" if ds.local_behaviour is not None else "not recorded"),
                      highlight=False, soft_wrap=True)

    @logs.command("learn")
    def learn_cmd(
        path: Path = typer.Argument(..., help="a log (NAME.csv or NAME.json)"),
        out: Path | None = typer.Option(None, "--out", help="write the policy (.npz)"),
        epochs: int | None = typer.Option(None, "--epochs", help="passes over the data"),
        mode: str = typer.Option("sequential", "--mode", help="sequential (eq. 38) or "
                                                              "synchronous"),
        schedule: str = typer.Option("rescaled-linear", "--schedule",
                                     help="rescaled-linear, polynomial or constant"),
        omega: float = typer.Option(0.8, "--omega", help="polynomial step exponent"),
        alpha: float = typer.Option(0.1, "--alpha", help="constant step size"),
        seed: int = typer.Option(0, "--seed", help="tie-breaking seed"),
        env: str | None = typer.Option(None, "--env", help="environment of the log (checks "
                                                           "the fingerprint; needed by "
                                                           "--compare)"),
        sets: list[str] = set_opt,
        local_policy: Path | None = typer.Option(None, "--local-policy",
                                                 help="local policy of the comparison"),
        compare: bool = typer.Option(False, "--compare", help="compare with generative G-LEARN "
                                                              "(m=None) on --env"),
        no_progress: bool = no_progress_option(),
    ) -> None:
        """Off-policy G-LEARN (eq. 38) on a log; optionally compare with generative G-LEARN."""
        from altmarl.offpolicy import compare_generative, g_learn_offpolicy, load_dataset

        try:
            game = None if env is None else _make_game(env, sets)
            if compare and game is None:
                raise ValueError("--compare needs --env (the game the log was recorded on)")
            ds = load_dataset(path, game=game)
            pol = g_learn_offpolicy(game if game is not None else ds.spaces, ds, epochs=epochs,
                                    mode=mode, schedule=schedule, omega=omega, alpha=alpha,
                                    seed=seed, progress=not no_progress)
            cmp = None
            if compare:
                assert game is not None
                cmp = compare_generative(game, _local_policy(game, local_policy), pol, ds)
            if out is not None:
                written = pol.save(out, game=game)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        con = console()
        inf = pol.info
        con.print(f"learned Q over {inf['coverage']['pairs_visited']}/{inf['coverage']['pairs']} "
                  f"visited (s_g, h, a_g) pairs from {inf['transitions']} transitions: "
                  f"{inf['epochs']} epoch(s), {inf['mode']}, step {inf['schedule']}, last epoch "
                  f"change {inf['last_epoch_change']:.3g}, {inf['wall_seconds']:.2f} s",
                  highlight=False, soft_wrap=True)
        if cmp is not None:
            pairs = ", ".join(f"{key} {format_number(v, digits=4)}" for key, v in cmp.items())
            con.print(f"vs generative G-LEARN (m=None): {pairs}", highlight=False,
                      soft_wrap=True)
        if out is not None:
            con.print(f"policy: [bold]{written}[/]", highlight=False, soft_wrap=True)

    @logs.command("convergence")
    def convergence_cmd(
        env: str = typer.Argument(..., help="environment name"),
        k: int = typer.Option(..., "--k", help="subsample size"),
        sets: list[str] = set_opt,
        sizes: str = typer.Option("1000,10000,100000", "--sizes",
                                  help="numbers of logged transitions (comma-separated)"),
        horizon: int = typer.Option(100, "--horizon", help="steps per episode"),
        epochs: int | None = typer.Option(None, "--epochs", help="passes over the data"),
        mode: str = typer.Option("sequential", "--mode", help="sequential or synchronous"),
        next_histogram: str = typer.Option("fresh", "--next-histogram",
                                           help="fresh or tracked (see `logs record`)"),
        seed: int = typer.Option(0, "--seed", help="seed of the logs"),
        rollouts: int = typer.Option(500, "--rollouts", help="Monte-Carlo rollouts when the "
                                                             "exact solver does not apply"),
        json_out: Path | None = typer.Option(None, "--json", help="write the table as JSON"),
    ) -> None:
        """Error of off-policy vs generative G-LEARN as the log grows (uniform behaviour)."""
        from altmarl.glearn import g_learn
        from altmarl.offpolicy import compare_generative, g_learn_offpolicy, record_logs
        from altmarl.policies import LocalPolicy

        try:
            game = _make_game(env, sets)
            ns = [int(x) for x in sizes.split(",") if x.strip()]
            if not ns or min(ns) < horizon:
                raise ValueError(f"--sizes = {sizes!r}: expected integers >= --horizon")
            pi_l = LocalPolicy.uniform(game)
            ref = g_learn(game, pi_l, k, m=None, tol=1e-10)
            rows = []
            for size in ns:
                ds = record_logs(game, k, size // horizon, horizon, pi_l=pi_l, seed=seed,
                                 next_histogram=next_histogram)
                pol = g_learn_offpolicy(game, ds, epochs=epochs, mode=mode, seed=seed)
                cmp = compare_generative(game, pi_l, pol, ds, reference=ref, rollouts=rollouts,
                                         seed=seed)
                rows.append({"transitions": len(ds), "epochs": pol.info["epochs"],
                             "learn_seconds": pol.info["wall_seconds"], **cmp})
        except ValueError as exc:
            fail(str(exc))
        con = console()
        keys = ["transitions", "epochs", "q_err_sup", "q_err_mean_data", "value",
                "value_reference", "value_gap"]
        keys += ["value_gap_stderr"] if "value_gap_stderr" in rows[0] else []
        keys += ["learn_seconds"]
        con.print("| " + " | ".join(keys) + " |", highlight=False, soft_wrap=True)
        con.print("|" + "---|" * len(keys), highlight=False)
        for row in rows:
            cells = [format_number(row.get(key), digits=4) for key in keys]
            con.print("| " + " | ".join(cells) + " |", highlight=False, soft_wrap=True)
        con.print(f"value: {rows[0]['value_method']}", highlight=False, soft_wrap=True)
        if json_out is not None:
            from altmarl.io import write_json

            write_json(json_out, rows, indent=1, sort_keys=False)
    _register_deployment(logs, set_opt)


def _register_deployment(logs: typer.Typer, set_opt: Any) -> None:
    """``logs evaluate`` and ``logs join`` (docs/deployment.md)."""
    @logs.command("evaluate")
    def evaluate_cmd(
        path: Path = typer.Argument(..., help="a log (NAME.csv or NAME.json)"),
        policy: str = typer.Option(..., "--policy", help="the policy to evaluate: a policy file "
                                   "(.npz, .pt), a run or unit directory, sample-mode, uniform "
                                   "or module:function (the last three need --env)"),
        method: str = typer.Option("all", "--method", help="fqe, is (= pdis), wis or all (IS "
                                   "/ WIS when the log records its behaviour)"),
        local_policy: Path | None = typer.Option(None, "--local-policy",
                                                 help="evaluate the joint policy with this "
                                                      "local policy file (needs a log recorded "
                                                      "with --local-actions; IS / WIS only)"),
        behaviour_policy: Path | None = typer.Option(None, "--behaviour-policy",
                                                     help="the policy an epsilon-greedy log "
                                                          "was greedy around"),
        env: str | None = typer.Option(None, "--env", help="environment of the log (checks "
                                                           "its fingerprint)"),
        sets: list[str] = set_opt,
        k: int | None = typer.Option(None, "--k", help="unit of a run directory to take"),
        bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap resamples"),
        seed: int = typer.Option(0, "--seed", help="seed of the bootstrap"),
        json_out: Path | None = typer.Option(None, "--json", help="write the estimates as JSON"),
    ) -> None:
        """Off-policy evaluation of a policy on logs (FQE, per-decision IS, weighted IS).

        Bootstrap intervals over episodes; coverage and effective-sample-size diagnostics."""
        _evaluate(path, policy, method, behaviour_policy, env, sets, k, bootstrap, seed,
                  json_out, local_policy)

    @logs.command("join")
    def join_cmd(
        decisions: Path = typer.Argument(..., help="a decision log of altmarl serve "
                                         "(NAME.csv or NAME.json)"),
        outcomes: Path = typer.Option(..., "--outcomes", help="CSV with columns id, r and "
                                      "optionally a_g (the action applied)"),
        out: Path = typer.Option(..., "--out", help="off-policy log to write (OUT.csv + "
                                 "OUT.json)"),
        behaviour: str = typer.Option("logged", "--behaviour", help="what chose the applied "
                                      "actions: logged (unknown: FQE only) or uniform"),
        n: int | None = typer.Option(None, "--n", help="population size (default: the "
                                     "served game's)"),
    ) -> None:
        """Join a decision log with observed outcomes into an off-policy log (docs/deployment.md)."""
        from altmarl.service.decisions import join_outcomes

        try:
            if behaviour not in ("logged", "uniform"):
                raise ValueError(f"--behaviour = {behaviour!r}: expected logged or uniform")
            ds = join_outcomes(decisions, outcomes, n=n,
                               behaviour={"kind": "uniform"} if behaviour == "uniform" else None)
            path = ds.save(out)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        console().print(f"joined {len(ds)} transitions in {ds.summary()['episodes']} episodes "
                        f"-> [bold]{path}[/]", highlight=False, soft_wrap=True)


def _evaluate(path: Path, policy: str, method: str, behaviour_policy: Path | None,
              env: str | None, sets: list[str], k: int | None, bootstrap: int, seed: int,
              json_out: Path | None, local_policy: Path | None = None) -> None:
    """``altmarl logs evaluate`` (the command's body)."""
    import warnings

    import numpy as np

    from altmarl.offpolicy import CoverageWarning, load_dataset, offpolicy_evaluate
    from altmarl.offpolicy.ope import METHOD_ALIASES, METHODS
    from altmarl.policies import GlobalPolicy, LocalPolicy

    try:
        game = None if env is None else _make_game(env, sets)
        pi_g, g = _target(policy, game, k)
        ds = load_dataset(path, game=g)
        beh = None if behaviour_policy is None else GlobalPolicy.load(behaviour_policy,
                                                                     game=g)
        pi_l = None if local_policy is None else LocalPolicy.load(local_policy, game=g)
        # a local policy other than the logged one: FQE cannot reweight local actions
        joint = (pi_l is not None and ds.local_behaviour is not None
                 and not np.array_equal(pi_l.table, ds.local_behaviour))
        kind = (ds.info.get("behaviour") or {}).get("kind")
        method = METHOD_ALIASES.get(method, method)
        if method == "all":
            methods = ([] if joint else ["fqe"]) + (
                ["is", "wis"] if kind == "uniform" or (kind == "epsilon-greedy"
                                                       and beh is not None) else [])
            if not methods:
                raise ValueError("--local-policy: the joint policy needs importance sampling, "
                                 "and the log's behaviour "
                                 f"({json.dumps(ds.info.get('behaviour'))}) does not give its "
                                 "weights (an epsilon-greedy log needs --behaviour-policy)")
        elif method in METHODS:
            methods = [method]
        else:
            raise ValueError(f"--method = {method!r}: expected fqe, is (pdis), wis or all")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CoverageWarning)
            ests = [offpolicy_evaluate(ds, pi_g, pi_l, method=m, seed=seed, bootstrap=bootstrap,
                                       behaviour_policy=beh) for m in methods]
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    con = console()
    con.print(f"log {path}: {len(ds)} transitions, {ds.summary()['episodes']} episodes, "
              f"k = {ds.k}, n = {ds.n}, behaviour {json.dumps(ds.info.get('behaviour'))}",
              highlight=False, soft_wrap=True)
    cov = ests[0].diagnostics["coverage"]
    con.print(f"coverage of the policy's actions: {cov['states_target_covered']} of "
              f"{cov['states']} visited states; imputed occupancy "
              f"{cov['imputed_occupancy']:.1%}", highlight=False, soft_wrap=True)
    if joint:
        con.print(f"joint policy: pi_g with the local policy {local_policy} (importance weights "
                  "over every agent's local action; FQE cannot evaluate it)", highlight=False,
                  soft_wrap=True)
    for est in ests:
        for line in _estimate_lines(est):
            con.print(line, highlight=False, soft_wrap=True)
    for w in {str(w.message) for w in caught if issubclass(w.category, CoverageWarning)}:
        con.print(f"[yellow]warning[/]: {w}", highlight=False, soft_wrap=True)
    if json_out is not None:
        from altmarl.io import write_json

        write_json(json_out, [e.summary() for e in ests], indent=1, sort_keys=False)
