"""A simulated fleet for shadow mode (docs/deployment.md, step 5).

The fleet keeps its current dispatcher: at every step it samples ``k`` robots, asks the
current dispatcher for the global action *and* sends the same sample to the candidate
served by ``altmarl serve --shadow`` (with ``episode``, ``t`` and ``current_a_g``), applies
the current dispatcher's action, and writes what it observed to an outcomes file
(``id, r, a_g``: the sample's reward ``r_g + (1/k) sum r_l`` and the action applied) that
``altmarl logs join`` combines with the service's decision log.

    python examples/shadow_fleet.py URL --current current/pi_g.npz --local current/pi_l.npz
        --episodes 20 --horizon 100 --out shadow/outcomes.csv [--epsilon 0.3] [--batch]

The simulator is the exact count simulator (SPEC 3) on the warehouse (``n = 1000``); the
current dispatcher plays epsilon-greedy around its policy (exploration keeps the log useful
for off-policy evaluation). ``--batch`` sends each step's decisions of all episodes in one
``POST /act_batch``.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

import numpy as np

import altmarl as am
from altmarl.histogram import rank
from altmarl.simulate import count_step, step_tables, subsample_histograms


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--current", required=True, help="the current dispatcher's pi_g.npz")
    ap.add_argument("--local", required=True, help="the robots' pi_l.npz")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--horizon", type=int, default=100)
    ap.add_argument("--epsilon", type=float, default=0.3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    game = am.envs.make("warehouse")
    current = am.GlobalPolicy.load(args.current, game)
    pi_l = am.LocalPolicy.load(args.local, game)
    k, R = current.k, args.episodes
    rng = np.random.default_rng(args.seed)
    tables = step_tables(game, pi_l.table)
    s_g, N = game.sample_init(rng, R)
    rows, agree, t0 = [], 0, time.perf_counter()
    for t in range(args.horizon):
        h = subsample_histograms(N, k, rng)
        greedy = current.act_ranked(s_g, rank(h, k))
        a_g = np.where(rng.random(R) < args.epsilon, rng.integers(0, game.n_ag, R), greedy)
        reqs = [{"s_g": int(s_g[e]), "sample": np.repeat(np.arange(game.n_sl), h[e]).tolist(),
                 "episode": e, "t": t, "current_a_g": int(a_g[e])} for e in range(R)]
        if args.batch:
            answers = post(args.url + "/act_batch", {"requests": reqs})
            pairs = list(zip(answers["ids"], answers["actions"], strict=True))
        else:
            pairs = [(a["id"], a["a_g"]) for a in (post(args.url + "/act", q) for q in reqs)]
        cs = count_step(tables, s_g, N, a_g, rng, sample=h)  # the fleet applies a_g
        for e, (rid, cand) in enumerate(pairs):
            rows.append(f"{rid},{float(cs.reward[e])!r},{int(a_g[e])}\n")
            agree += int(cand == a_g[e])
        s_g, N = cs.s_g, cs.counts
    with open(args.out, "w") as f:
        f.write("id,r,a_g\n" + "".join(rows))
    secs = time.perf_counter() - t0
    print(f"{len(rows)} decisions in {secs:.1f} s; candidate agreed with the applied action "
          f"{agree / len(rows):.1%} of the time; outcomes -> {args.out}")


if __name__ == "__main__":
    main()
