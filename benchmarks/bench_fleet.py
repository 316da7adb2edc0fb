"""The fleet benchmark (issue 15, point 5): neural ALTERNATING-MARL against hand-written
dispatchers and Stable-Baselines3 PPO on ``am.envs.make("fleet")`` (n = 10^4 vehicles,
|S_l| = 100, |S_g| = 30; docs/generative.md).

    python benchmarks/bench_fleet.py                   # k = 5, 20, 50 (about 13 minutes on 2 cores)
    python benchmarks/bench_fleet.py --quick           # n = 2000, k = 5, short budgets (minutes)
    python benchmarks/bench_fleet.py --ks 20 --out fleet.json

For every ``k``:

1. **Hand-written pairs.** Local rule "charge and chase" (``low``): charge on an empty
   battery or at ``b <= low`` away from the campaign, serve at the campaign zone, otherwise
   drive towards it by the shorter way round the ring. Dispatchers blind to the population
   (they read only the campaign's zone ``c`` and age): *keep* (the campaign stays),
   *round robin* (the next zone), *home depot* (always zone 0, a depot), *cycle when worn*
   (the next zone once the campaign is worn out, else stay); dispatchers reading the
   ``k``-sample too: *charged mode* (the zone with the most sampled vehicles with ``b >=
   2``), *follow the charge* (stay while the campaign zone holds at least half the
   sampled charged vehicles of the best zone, else move to the best zone; once worn out,
   move to the best other zone, nearest on ties). Each dispatcher gets its best ``low in
   {1, 3}`` on separate selection seeds; the reference (a) is the best dispatcher on the
   evaluation seeds themselves (optimistic for the baseline). The best blind dispatcher
   against the best informed one measures what observing the population is worth.
2. **ALTERNATING-MARL** (a subprocess, so its peak memory is its own):
   ``altmarl.alternating.generative.run_generative`` with neural G-LEARN and neural
   L-LEARN (TRPO, the anytime candidate), UPDATE on 32 rollouts of the truncation-aware
   horizon, ``--sweeps`` alternations (default 1). Neural G-LEARN's targets (``--targets``):
   ``rollout`` (default) Monte-Carlo returns of the played dispatcher in the ``k``-agent
   surrogate, ``--m`` (default 24) rollouts of 59 steps per surrogate state and global
   action with common random numbers across the actions, the network regressed on the
   advantage over the dispatcher's action; ``pi_g`` fitted evaluation of the played
   dispatcher and its greedy policy (one policy-improvement step, ``--m`` draws per
   target, early stopping after a warm-up of ``--min-iterations`` rounds); ``max`` fitted
   Q-iteration. ``--improve cautious --margin M``: the step changes a decision of the
   played dispatcher only where the fitted advantage exceeds ``M``. ``--states`` (default
   3000) surrogate states, half from the reset law, half visited by rollouts whose global
   actions are uniform with probability ``--explore`` (default 0.2), else the played
   dispatcher's. ``--start heuristic``
   (default) starts from the best hand-written pair: ``pi_g^0`` the best dispatcher,
   ``pi_l^0`` its local rule cloned into the policy network (``NeuralLocalPolicy.imitate``:
   greedy actions are the rule's, ``--confidence`` (default 0.5) of the probability on the
   rule's action and the rest uniform, so TRPO's sampled actions explore), so UPDATE keeps
   the hand-written pair unless a learner finds a better response; ``--start uniform`` is
   SPEC 6's uniform start (``pi_l^0`` uniform, ``pi_g^0`` the first G-LEARN policy).
3. **PPO** (a subprocess): SB3 PPO (defaults, ``gamma`` of the game) on the global agent's
   Gymnasium view ``GlobalAgentEnv(fleet_tabular(), pi_l, k, obs="box")`` with ``pi_l`` the
   best hand-written local rule, trained until its CPU time reaches ALTERNATING-MARL's CPU
   time (the same computation: on an idle core CPU and wall time coincide, on a shared
   machine the wall time depends on the other jobs), then acting greedily on
   ``[one_hot(s_g), h/k]``.
4. **Evaluation**: every pair on the same ``--seeds`` evaluation seeds (``--rollouts`` x
   ``--horizon`` on the per-agent simulator, common random numbers), the paired differences
   and Student-t intervals of ``altmarl.experiments.assess`` (the machinery of ``altmarl
   compare``).

Reported per ``k``: value +- standard error over seeds, paired difference to
ALTERNATING-MARL with its 95% interval, wall and CPU time and peak memory (``ru_maxrss``)
of each learner's process. Timings are on a shared machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _common import limit_blas, machine, print_table  # noqa: E402

import altmarl as am  # noqa: E402
from altmarl.envs.generative_fleet import AGES, fleet_tabular, ring_distance  # noqa: E402
from altmarl.generative import FunctionGlobalPolicy  # noqa: E402
from altmarl.generative.neural import NeuralGlobalPolicy  # noqa: E402

LOWS = (1, 3)
SELECTION_ROOT = 1000


# ---------------------------------------------------------------------------------------
# hand-written rules
# ---------------------------------------------------------------------------------------


def charge_and_chase(zones: int, battery: int, low: int) -> np.ndarray:
    """The local rule's action table ``[s_l, s_g]`` (module docstring)."""
    Z, B, E = zones, battery, len(AGES)
    s = np.arange(Z * B)
    z, b = s // B, s % B
    c = np.arange(E * Z) // E
    d = ring_distance(z[:, None], c[None, :], Z)
    fwd = (c[None, :] - z[:, None]) % Z
    chase = np.where(fwd <= Z - fwd, 1, 2)
    act = np.where(d == 0, 0, np.where(b[:, None] <= low, 3, chase))
    return np.where(b[:, None] == 0, 3, act).astype(np.int64)


#: dispatchers that read only the global state (the campaign's zone and age)
BLIND = ("keep", "round robin", "home depot", "cycle when worn")


def dispatchers(zones: int, battery: int) -> dict[str, Any]:
    """``name -> fn(s_g, h)`` for the six dispatchers (module docstring)."""
    Z, B, E = zones, battery, len(AGES)

    def charged(h: Any) -> Any:  # sampled vehicles with b >= 2 per zone
        return np.asarray(h).reshape(len(h), Z, B)[:, :, 2:].sum(axis=2)

    def keep(s_g: Any, h: Any) -> Any:
        return np.asarray(s_g) // E

    def round_robin(s_g: Any, h: Any) -> Any:
        return (np.asarray(s_g) // E + 1) % Z

    def home_depot(s_g: Any, h: Any) -> Any:
        return np.zeros(len(np.asarray(s_g)), dtype=np.int64)

    def cycle_when_worn(s_g: Any, h: Any) -> Any:
        c, e = np.divmod(np.asarray(s_g), E)
        return np.where(e == E - 1, (c + 1) % Z, c)

    def charged_mode(s_g: Any, h: Any) -> Any:
        return charged(h).argmax(axis=1)

    def follow_the_charge(s_g: Any, h: Any) -> Any:
        c, e = np.divmod(np.asarray(s_g), E)
        m = charged(h).astype(np.float64)
        r = np.arange(len(m))
        top = m.argmax(axis=1)
        other = m.copy()
        other[r, c] = -1.0  # worn out: the best other zone, ties to the nearest
        other -= 1e-3 * ring_distance(np.arange(Z)[None, :], c[:, None], Z)
        stay = m[r, c] >= 0.5 * m[r, top]
        return np.where(e == E - 1, other.argmax(axis=1), np.where(stay, c, top))

    return {"keep": keep, "round robin": round_robin, "home depot": home_depot,
            "cycle when worn": cycle_when_worn, "charged mode": charged_mode,
            "follow the charge": follow_the_charge}


def per_seed(game: Any, pi_g: Any, pi_l: Any, seeds: list[int], rollouts: int,
             horizon: int) -> list[float]:
    """Per-seed means on the per-agent simulator (one thread)."""
    from altmarl.evaluation import evaluate_generative

    return [float(evaluate_generative(game, pi_g, pi_l, rollouts, horizon, s, workers=1).mean)
            for s in seeds]


def played_global(d: Path, game: Any, disp: Any, cautious: bool) -> Any:
    """The global policy ALTERNATING-MARL played at the end of the run in ``d``: the
    starting dispatcher ``disp`` when UPDATE accepted no global proposal, else the learned
    network (``cautious``: its steps from ``disp``, the base not written in the file)."""
    from altmarl.generative.files import load_policy

    alt = json.loads((d / "alternating.json").read_text())
    if alt["pi_g"] != "pi_g.pt":
        return disp
    if cautious:
        return NeuralGlobalPolicy.load(d / "pi_g.pt", game, base=disp)
    return load_policy(d / "pi_g.pt", "global", game)


def ppo_global(d: Path, tab: Any, k: int) -> Any:
    """The PPO model trained in ``d`` as a greedy global policy on ``(s_g, h)``."""
    import stable_baselines3 as sb3

    from altmarl.interfaces import GlobalObsCodec

    model = sb3.PPO.load(str(d / "ppo"), device="cpu")
    codec = GlobalObsCodec(tab.n_sg, tab.n_sl, k, "box")
    return FunctionGlobalPolicy(
        k, lambda s_g, h, m=model, c=codec: m.predict(c.encode(s_g, h),
                                                     deterministic=True)[0], "ppo")


def peak_mb() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------
# workers (subprocesses)
# ---------------------------------------------------------------------------------------


def worker_alternating(a: argparse.Namespace) -> None:
    from altmarl.alternating.generative import GenerativeOptions, run_generative
    from altmarl.generative.neural_local import NeuralLocalPolicy

    t0, c0 = time.perf_counter(), time.process_time()
    tab = fleet_tabular(n=a.n)
    game = tab.as_generative(check="first")
    pi_l0 = pi_g0 = None
    if a.start == "heuristic":
        rule = am.LocalPolicy.deterministic(tab, charge_and_chase(10, 10, a.low))
        pi_l0 = NeuralLocalPolicy.imitate(game, rule, confidence=a.confidence, seed=a.seed)
        pi_g0 = FunctionGlobalPolicy(a.k, dispatchers(10, 10)[a.dispatcher], a.dispatcher)
    g_options: dict[str, Any] = {"states": a.states, "iterations": a.iterations,
                                 "min_iterations": (None if a.targets == "rollout"
                                                    else a.min_iterations),
                                 "hidden": a.hidden, "common_draws": True,
                                 "targets": a.targets, "explore": a.explore}
    if a.improve == "cautious":
        g_options.update(improve="cautious", margin=a.margin)
    opts = GenerativeOptions(
        sweeps=a.sweeps, m=a.m, eval_rollouts=32, patience=a.patience,
        g_options=g_options,
        l_options={"iterations": a.trpo_iterations, "rollouts": 4})
    res = run_generative(game, a.k, opts, seed=a.seed, pi_l0=pi_l0, pi_g0=pi_g0,
                         progress=False)
    out = Path(a.dir)
    # the played pair: learned networks, or the starting dispatcher when no global
    # proposal was accepted
    played_g = a.dispatcher if isinstance(res.pi_g, FunctionGlobalPolicy) else "pi_g.pt"
    if played_g == "pi_g.pt":  # a cautious policy's dispatcher base is code: not written
        res.pi_g.save(out / "pi_g.pt", game, external_base=True)
    res.pi_l.save(out / "pi_l.pt", game)
    hist = [{"sweep": h.sweep, "player": h.player, "decision": h.decision,
             "v_new": h.v_new, "v_old": h.v_old, "learn_s": h.learn_time}
            for h in res.history]
    (out / "alternating.json").write_text(json.dumps({
        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
        "peak_mb": peak_mb(), "history": hist, "value": res.value.mean, "pi_g": played_g,
        "imitation": None if pi_l0 is None else pi_l0.info}))


def worker_ppo(a: argparse.Namespace) -> None:
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from altmarl.interfaces import GlobalAgentEnv

    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    tab = fleet_tabular(n=a.n)
    rule = am.LocalPolicy.deterministic(tab, charge_and_chase(10, 10, a.low))
    env = GlobalAgentEnv(tab, rule, a.k, horizon=100, obs="box")
    model = sb3.PPO("MlpPolicy", env, gamma=tab.gamma, seed=a.seed, device="cpu", verbose=0)

    class Budget(BaseCallback):
        def _on_step(self) -> bool:
            return time.process_time() - c0 < a.budget

    model.learn(total_timesteps=10**9, callback=Budget())
    model.save(str(Path(a.dir) / "ppo"))
    (Path(a.dir) / "ppo.json").write_text(json.dumps({
        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
        "peak_mb": peak_mb(), "steps": int(model.num_timesteps)}))


def spawn(kind: str, a: argparse.Namespace, k: int, low: int, dispatcher: str, d: Path,
          budget: float = 0.0) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "--worker", kind, "--ks", str(k), "--dir", str(d),
            "--low", str(low), "--dispatcher", dispatcher, "--budget", str(budget)]
    for name in ("n", "seed", "sweeps", "states", "iterations", "min_iterations",
                 "trpo_iterations", "patience", "start", "hidden", "targets", "confidence",
                 "improve", "margin", "m", "explore"):
        args += [f"--{name.replace('_', '-')}", str(getattr(a, name))]
    return subprocess.Popen(args)


# ---------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 2000, k = 5, short budgets")
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 20, 50])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweeps", type=int, default=1)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--states", type=int, default=3000)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--min-iterations", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=64, help="neural G-LEARN's hidden width")
    ap.add_argument("--confidence", type=float, default=0.5,
                    help="the cloned local rule's probability mass on the rule's action "
                         "(NeuralLocalPolicy.imitate; lower: TRPO flips actions sooner)")
    ap.add_argument("--m", type=int, default=24,
                    help="neural G-LEARN's draws per target (rollouts per state and action "
                         "with --targets rollout)")
    ap.add_argument("--explore", type=float, default=0.2,
                    help="share of uniform global actions in the state-visiting rollouts")
    ap.add_argument("--targets", choices=["max", "pi_g", "rollout"], default="rollout",
                    help="neural G-LEARN's targets: fitted Q-iteration (max), fitted "
                         "evaluation of the played dispatcher and its greedy step (pi_g), or "
                         "Monte-Carlo returns of the dispatcher in the surrogate (rollout)")
    ap.add_argument("--improve", choices=["greedy", "cautious"], default="greedy",
                    help="neural G-LEARN's improvement step (cautious: only where the fitted "
                    "advantage over the played dispatcher exceeds --margin)")
    ap.add_argument("--margin", type=float, default=0.0,
                    help="the cautious step's margin, in units of Q (discounted return)")
    ap.add_argument("--trpo-iterations", type=int, default=10)
    ap.add_argument("--start", choices=["heuristic", "uniform"], default="heuristic")
    ap.add_argument("--seeds", type=int, default=6, help="evaluation seeds")
    ap.add_argument("--rollouts", type=int, default=32)
    ap.add_argument("--horizon", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=2, help="k values trained at once")
    ap.add_argument("--out", default=None, help="write the results as JSON")
    ap.add_argument("--work", default="/tmp/altmarl-bench-fleet")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the selection and the learners already finished in --work")
    ap.add_argument("--worker", choices=["alternating", "ppo"], default=None,
                    help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--low", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--dispatcher", default="keep", help=argparse.SUPPRESS)
    a = ap.parse_args()
    limit_blas(1)
    if a.quick:
        a.n = a.n or 2000
        if a.ks == [5, 20, 50]:
            a.ks = [5]
        a.sweeps, a.states, a.iterations, a.min_iterations = 1, 1000, 80, 40
        a.trpo_iterations, a.seeds, a.m = 4, 4, min(a.m, 8)
    a.n = a.n or 10_000
    if a.worker is not None:
        a.k = a.ks[0]
        (worker_alternating if a.worker == "alternating" else worker_ppo)(a)
        return
    run(a)


def run(a: argparse.Namespace) -> None:
    from altmarl.experiments.assess import compare_rows, student_interval
    from altmarl.experiments.runner import eval_seeds
    from altmarl.generative.files import load_policy

    print(machine(), flush=True)
    tab = fleet_tabular(n=a.n)
    game = tab.as_generative(check="first")
    rules = {low: am.LocalPolicy.deterministic(tab, charge_and_chase(10, 10, low))
             for low in LOWS}
    seeds = eval_seeds(a.seed, a.seeds)
    sel = eval_seeds(SELECTION_ROOT + a.seed, 2)
    work = Path(a.work)
    results: dict[str, Any] = {"config": {k: v for k, v in vars(a).items()
                                          if k not in ("worker", "dir", "budget")},
                               "machine": machine(), "per_k": {}}
    # 1. hand-written pairs, per k (the k-sample matters to the mode dispatchers)
    hand: dict[int, dict[str, Any]] = {}
    work.mkdir(parents=True, exist_ok=True)
    sel_file = work / "selection.json"
    if a.reuse and sel_file.is_file():
        hand = {int(k): v for k, v in json.loads(sel_file.read_text()).items()}
    for k in a.ks:
        if k in hand:
            continue
        t = time.perf_counter()
        best: dict[str, tuple[float, int]] = {}
        for name, fn in dispatchers(10, 10).items():
            for low in LOWS:
                v = float(np.mean(per_seed(game, FunctionGlobalPolicy(k, fn, name),
                                           rules[low], sel, a.rollouts, a.horizon)))
                if name not in best or v > best[name][0]:
                    best[name] = (v, low)
        top = max(best, key=lambda nm: best[nm][0])
        hand[k] = {"lows": {nm: lw for nm, (_, lw) in best.items()}, "low": best[top][1],
                   "dispatcher": top}
        print(f"k = {k}: selection ({time.perf_counter() - t:.0f} s): "
              + ", ".join(f"{nm} low={lw} {v:.1f}" for nm, (v, lw) in best.items()),
              flush=True)
        sel_file.write_text(json.dumps({str(kk): v for kk, v in hand.items()}))
    # 2. ALTERNATING-MARL, then 3. PPO with its CPU budget, --parallel k values at once
    dirs = {k: work / f"k{k:03d}" for k in a.ks}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for lo in range(0, len(a.ks), a.parallel):
        group = a.ks[lo:lo + a.parallel]
        procs = [spawn("alternating", a, k, hand[k]["low"], hand[k]["dispatcher"], dirs[k])
                 for k in group if not (a.reuse and (dirs[k] / "alternating.json").is_file())]
        for p in procs:
            if p.wait() != 0:
                raise SystemExit("ALTERNATING-MARL worker failed")
        procs = []
        for k in group:
            if a.reuse and (dirs[k] / "ppo.json").is_file():
                continue
            alt = json.loads((dirs[k] / "alternating.json").read_text())
            procs.append(spawn("ppo", a, k, hand[k]["low"], hand[k]["dispatcher"], dirs[k],
                               alt["cpu_s"]))
        for p in procs:
            if p.wait() != 0:
                raise SystemExit("PPO worker failed")
    # 4. evaluation on common seeds
    for k in a.ks:
        d = dirs[k]
        alt = json.loads((d / "alternating.json").read_text())
        ppo = json.loads((d / "ppo.json").read_text())
        t = time.perf_counter()
        rows = []
        disp = FunctionGlobalPolicy(k, dispatchers(10, 10)[hand[k]["dispatcher"]],
                                    hand[k]["dispatcher"])
        pi_g = played_global(d, game, disp, a.improve == "cautious" and a.start == "heuristic")
        pi_l = load_policy(d / "pi_l.pt", "local", game)
        rows.append({"label": "ALTERNATING-MARL", "means": per_seed(game, pi_g, pi_l, seeds,
                                                                     a.rollouts, a.horizon)})
        ppo_g = ppo_global(d, tab, k)
        rule = rules[hand[k]["low"]]
        rows.append({"label": "SB3 PPO", "means": per_seed(game, ppo_g, rule, seeds,
                                                            a.rollouts, a.horizon)})
        for name, fn in dispatchers(10, 10).items():
            low = hand[k]["lows"][name]
            rows.append({"label": f"{name} (low={low})",
                         "means": per_seed(game, FunctionGlobalPolicy(k, fn, name), rules[low],
                                           seeds, a.rollouts, a.horizon)})
        rows = [{**r, **student_interval(r["means"])} for r in rows]
        cmp = compare_rows(rows)
        best_hand = max(cmp[2:], key=lambda r: r["mean"])
        blind = [r for r in cmp[2:] if r["label"].split(" (")[0] in BLIND]
        best_blind = max(blind, key=lambda r: r["mean"])
        print(f"k = {k}: information: best dispatcher {best_hand['label']} "
              f"{best_hand['mean']:.2f}, best dispatcher blind to the population "
              f"{best_blind['label']} {best_blind['mean']:.2f}", flush=True)
        table = []
        for r in cmp:
            dd = r["diff"]
            table.append([r["label"], f"{r['mean']:.2f} +- {r['stderr']:.2f}",
                          "" if dd is None else f"{dd['mean']:+.2f} [{dd['ci95'][0]:+.2f}, "
                                                f"{dd['ci95'][1]:+.2f}]"])
        print_table(f"fleet n = {a.n}, k = {k}: {a.seeds} seeds x {a.rollouts} rollouts x "
                    f"{a.horizon} steps (evaluation {time.perf_counter() - t:.0f} s); "
                    f"ALTERNATING-MARL {alt['wall_s']:.0f} s wall, {alt['cpu_s']:.0f} s CPU, "
                    f"{alt['peak_mb']:.0f} MB; PPO {ppo['steps']} steps, {ppo['wall_s']:.0f} s "
                    f"wall, {ppo['cpu_s']:.0f} s CPU, {ppo['peak_mb']:.0f} MB",
                    ["pair", "value +- s.e.", "difference - ALTERNATING-MARL [95% CI]"], table)
        print("history: " + "; ".join(f"{h['sweep']}/{h['player']}: {h['decision']} "
                                       f"{h['v_new']:.2f}" for h in alt["history"]), flush=True)
        results["per_k"][str(k)] = {"rows": cmp, "alternating": alt, "ppo": ppo,
                                    "best_hand": best_hand["label"],
                                    "best_blind": best_blind["label"],
                                    "beats_hand": bool(best_hand["diff"]["ci95"][1] < 0),
                                    "beats_ppo": bool(cmp[1]["diff"]["ci95"][1] < 0)}
    print(machine())
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
