"""The theory experiment (SPEC 7, "Theory to exhibit"; Theorem 4.4, Theorem 4.8, Remark 4.9).

Three parts, one resumable run directory (``altmarl theory [--quick] [--out DIR]``):

(a) ``gap_vs_k.csv`` — Theorem 4.4's quantity, exactly. For a fixed local policy (uniform)
    and each ``k``, G-LEARN with the exact expectation (``m = None``, deterministic) gives
    ``pi_k``; on the ``n``-agent chain (:class:`altmarl.exact.ExactSolver`, ``n`` much larger
    than ``k``, e.g. ``n = 2000`` on 4 002 states) the experiment computes, against the
    full-information optimum ``V*``:

    * ``gap_sup = max_{s_g, N} V*(s_g, N) - V^{pi_k}(s_g, N)`` (the state-wise worst case the
      theorem bounds),
    * ``gap_init = E_{mu_0}[V* - V^{pi_k}]`` (the gap from the initial distribution),
    * ``one_step_sup = max_{s} sum_a P_k(a | s) (V*(s) - Q*(s, a))``, the largest one-step
      regret of ``pi_k`` (by the performance-difference lemma
      ``one_step_sup <= gap_sup <= one_step_sup / (1 - gamma)``),

    and the scaled curves ``sqrt(k) gap`` and ``k gap``. A gap is *exactly* zero when
    ``pi_k`` never takes, with positive probability, an action that is suboptimal for
    ``Q*`` (``zero_exact``). Log-log slopes are fitted over explicit ``k`` windows per game,
    with a 95% regression interval (ordinary least squares, Student-t with ``p - 2``
    degrees of freedom; the gaps are exact, so the interval says how well one power law
    describes the window, not sampling noise); over the seeds of a family of random games
    the per-game slopes get a Student-t interval (:func:`altmarl.evaluation.seed_interval`).
(b) ``table_size.csv`` — mean-field ``|H_k| = C(k + d - 1, d - 1)`` vs standard ``d^k``
    table sizes (Remark 4.9).
(c) ``cost_vs_n.csv`` — cost vs ``n`` at fixed ``k``: G-LEARN wall time and sample count
    (independent of ``n``) vs the exact solver's chain size and time (grows like
    ``n^{d-1}`` states).

Each game of part (a) is written to ``games/NN.json`` as soon as it is done; a second run
into the same directory reuses finished games (and part (c)), so an interrupted run
resumes; a directory holding another configuration is refused. ``summary.json`` holds
the fits and the headline numbers; :func:`altmarl.plots.theory.plot_theory` draws the
figures from the files.
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, ValidationError, field_validator

from altmarl import envs
from altmarl.evaluation import seed_interval, student_t_quantile
from altmarl.exact import ExactSolver
from altmarl.exact.values import evaluate_chain, q_values
from altmarl.glearn import g_learn
from altmarl.histogram import effective_k, num_histograms
from altmarl.io import atomic_write_bytes, dict_rows_csv_bytes, read_json, write_json
from altmarl.locking import DirectoryLock
from altmarl.plots.theory import plot_theory
from altmarl.policies import GlobalPolicy, LocalPolicy
from altmarl.progress import Progress
from altmarl.settings import LISTS_AS_TUPLES, StrictConfig, format_validation_errors
from altmarl.threads import limit_blas_threads

# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


#: G-LEARN stopping tolerance in part (a) (``||T_hat Q - Q||_inf``): tight, so that the
#: greedy policies are not decided by solver error
G_LEARN_TOL = 1e-9
#: an action whose regret ``V* - Q*`` is at most this times ``max(1, max |V*|)`` counts as
#: optimal, and gaps below it as round-off of the linear solves (left out of the fits)
ROUNDOFF = 1e-10
#: the quantities of part (a) that are fitted
FIT_QUANTITIES = ("gap_sup", "gap_init", "one_step_sup")

PositiveInts = Annotated[tuple[Annotated[int, Field(ge=1)], ...], LISTS_AS_TUPLES]
Window = Annotated[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]],
                   LISTS_AS_TUPLES]


class GapGame(StrictConfig):
    """One game of part (a): an environment of :mod:`altmarl.envs`, the ``k`` grid, the
    ``k`` windows ``(k_lo, k_hi)`` of the log-log fits, and a ``family`` name (games of
    one family, e.g. seeded random games, are also summarized together)."""

    label: str
    env: str
    params: dict[str, Any]
    ks: PositiveInts
    windows: Annotated[tuple[Window, ...], LISTS_AS_TUPLES] = ()
    family: str = ""

    def __init__(self, label: str, env: str, params: dict[str, Any], ks: Any,
                 windows: Any = (), family: str = "") -> None:
        """``GapGame(label, env, params, ks, windows=(), family="")``, positionally or by
        keyword."""
        fields: dict[str, Any] = {"label": label, "env": env, "params": params, "ks": ks,
                                  "windows": windows, "family": family}
        super().__init__(**fields)

    @field_validator("windows")
    @classmethod
    def _ordered(cls, windows: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        for lo, hi in windows:
            if lo >= hi:
                raise ValueError(f"a window (k_lo, k_hi) needs k_lo < k_hi, got ({lo}, {hi})")
        return windows


class TheoryConfig(StrictConfig):
    """Resolved configuration of the theory experiment (written to ``config.json``); a
    frozen, validated model like the experiment files (:mod:`altmarl.experiments.config`).
    Build one with :func:`quick_config` / :func:`full_config`, :func:`parse_theory_config`
    (a mapping, errors name the dotted key) or :meth:`replace`."""

    quick: bool
    seed: int = Field(ge=0)
    gap_games: Annotated[tuple[GapGame, ...], LISTS_AS_TUPLES]
    table_ds: PositiveInts
    table_kmax: int = Field(ge=1)
    cost_env: str
    cost_params: dict[str, Any]
    cost_k: int = Field(ge=1)
    cost_m: int = Field(ge=1)
    cost_glearn_ns: PositiveInts
    cost_exact_ns: PositiveInts
    cost_repeats: int = Field(ge=1)
    max_states: int = Field(default=6000, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)

    def replace(self, **changes: Any) -> TheoryConfig:
        """A copy with some fields replaced, validated again."""
        return parse_theory_config({**self.model_dump(), **changes}, source="replace")


def parse_theory_config(data: Any, source: str = "theory config") -> TheoryConfig:
    """Validate a mapping as a :class:`TheoryConfig`; a ``ValueError`` names each offending
    dotted key (the format of :func:`altmarl.settings.format_validation_errors`)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a table of settings, got {type(data).__name__}")
    data = {**data, "gap_games": [g.model_dump() if isinstance(g, GapGame) else g
                                  for g in data.get("gap_games", ())]}
    try:
        return TheoryConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(format_validation_errors(exc, source, "theory configuration",
                                                  TheoryConfig)) from None


#: the seeded random games of the full run: 2 states and 2 actions everywhere, spiky
#: Dirichlet(0.1) rows (so that the optimum can depend on the population at all)
RANDOM_PARAMS = {"n_sg": 2, "n_ag": 2, "n_sl": 2, "n_al": 2, "concentration": 0.1}


def _random_games(n: int, seeds: range, ks: tuple[int, ...],
                  windows: tuple[tuple[int, int], ...]) -> tuple[GapGame, ...]:
    return tuple(GapGame(f"random(seed={s}, n={n})", "random",
                         {**RANDOM_PARAMS, "n": n, "seed": s}, ks, windows, family="random")
                 for s in seeds)


def quick_config(seed: int = 0) -> TheoryConfig:
    """Small version (seconds): a 2-zone warehouse and two random games with ``n = 200``."""
    ks = (1, 2, 4, 8, 16, 32, 50)
    return parse_theory_config(dict(
        quick=True, seed=seed,
        gap_games=(GapGame("warehouse(zones=2, n=200)", "warehouse",
                           {"n": 200, "zones": 2, "gamma": 0.95}, ks, ((8, 50),)),
                   *_random_games(200, range(4, 6), ks, ((8, 50),))),
        table_ds=(2, 3, 5), table_kmax=20,
        cost_env="warehouse", cost_params={"zones": 3, "gamma": 0.95}, cost_k=2, cost_m=10,
        cost_glearn_ns=(10, 100, 1000, 100_000), cost_exact_ns=(4, 8, 12, 16),
        cost_repeats=3,
    ), source="theory config")


def full_config(seed: int = 0) -> TheoryConfig:
    """The full experiment (a few minutes on one core): the 2-zone warehouse with
    ``n = 2000`` at two discount factors and 16 seeded random games with ``n = 1000``."""
    wks = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 500)
    wwin = ((4, 32), (64, 192), (192, 500))
    rks = (1, 2, 4, 8, 16, 32, 64, 128, 250)
    return parse_theory_config(dict(
        quick=False, seed=seed,
        gap_games=(
            GapGame("warehouse(zones=2, n=2000)", "warehouse",
                    {"n": 2000, "zones": 2, "gamma": 0.95}, wks, wwin),
            GapGame("warehouse(zones=2, n=2000, gamma=0.8)", "warehouse",
                    {"n": 2000, "zones": 2, "gamma": 0.8}, wks, wwin),
            *_random_games(1000, range(16), rks, ((8, 64), (64, 250))),
        ),
        table_ds=(2, 3, 5), table_kmax=50,
        cost_env="warehouse", cost_params={"zones": 3, "gamma": 0.95}, cost_k=4, cost_m=30,
        cost_glearn_ns=(10, 100, 1000, 10_000, 1_000_000),
        cost_exact_ns=(5, 10, 20, 30, 40, 50, 60),
        cost_repeats=3,
    ), source="theory config")


# ---------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------


def fit_loglog(ks: Any, gaps: Any, k_lo: float = 1, k_hi: float = math.inf,
               confidence: float = 0.95) -> dict[str, Any]:
    """Least-squares fit of ``log gap = a + b log k`` on the points with
    ``k_lo <= k <= k_hi`` and ``gap > 0``, with the regression interval of the slope
    ``b +- t_{p-2} se(b)`` (``p`` points, Student-t quantile). Returns ``slope``,
    ``intercept``, ``slope_se``, ``slope_ci``, ``r2``, ``points``, ``k_used`` and ``zeros``
    (points of the window with ``gap <= 0``, left out); ``slope`` is ``None`` with fewer
    than 3 points and the interval with exactly 3 degenerate (``se = 0``) or 2 points."""
    k = np.asarray(ks, dtype=np.float64)
    g = np.asarray(gaps, dtype=np.float64)
    inwin = (k >= k_lo) & (k <= k_hi)
    sel = inwin & (g > 0) & np.isfinite(g)
    out: dict[str, Any] = {"k_lo": float(k_lo), "k_hi": float(k_hi), "points": int(sel.sum()),
                           "zeros": int((inwin & ~sel).sum()),
                           "k_used": [float(x) for x in k[sel]], "confidence": confidence,
                           "interval": "OLS regression, Student-t"}
    if sel.sum() < 3:
        out.update(slope=None, intercept=None, slope_se=None, slope_ci=None, r2=None)
        return out
    x, y = np.log(k[sel]), np.log(g[sel])
    p = x.size
    xc = x - x.mean()
    b = float((xc * (y - y.mean())).sum() / (xc ** 2).sum())
    a = float(y.mean() - b * x.mean())
    resid = y - (a + b * x)
    ss = float(((y - y.mean()) ** 2).sum())
    se = math.sqrt(float((resid ** 2).sum()) / (p - 2) / float((xc ** 2).sum()))
    q = student_t_quantile(0.5 + confidence / 2, p - 2)
    out.update(slope=b, intercept=a, slope_se=se, slope_ci=[b - q * se, b + q * se],
               r2=float(1 - (resid ** 2).sum() / ss) if ss > 0 else 1.0)
    return out


def fit_loglog_slope(ks: Any, gaps: Any, k_max: float) -> dict[str, Any]:
    """:func:`fit_loglog` over ``k <= k_max`` (``x_used``: the abscissae used)."""
    fit = fit_loglog(ks, gaps, 1, k_max)
    return {**fit, "k_max": float(k_max), "x_used": fit["k_used"]}


# ---------------------------------------------------------------------------
# part (a): exact gaps
# ---------------------------------------------------------------------------


def exact_gap_curve(game: Any, pi_l: LocalPolicy, ks: Any, *, seed: int = 0,
                    max_states: int = 6000, progress: Progress | None = None,
                    label: str = "") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Exact gaps of G-LEARN's policy (``m = None``) against the full-information optimum,
    for each ``k`` of ``ks`` (Theorem 4.4; see the module docstring for the quantities).
    Returns one row per ``k`` and the game's facts (chain size, whether the optimal action
    depends on ``N``, timings)."""
    t0 = time.perf_counter()
    ex = ExactSolver(game, 1, max_states=max_states)
    full = ex.full_info_best_response(pi_l)
    T = ex.count_transitions(pi_l)
    rloc = ex.local_reward(pi_l)
    v_star = full.values
    Q = q_values(ex, v_star, T, rloc)
    regret = Q.max(axis=-1, keepdims=True) - Q  # (S_g, M, A_g), >= 0
    tol = ROUNDOFF * max(1.0, float(np.abs(v_star).max()))
    optimal = regret <= tol
    # the optimum ignores N in s_g when one action is optimal at every N
    constant = [bool(optimal[g].all(axis=0).any()) for g in range(game.n_sg)]
    switches = [int((np.diff(Q[g].argmax(axis=-1)) != 0).sum()) for g in range(game.n_sg)]
    t_full = time.perf_counter() - t0
    opt_value = ex.initial_value(v_star)
    rows: list[dict[str, Any]] = []
    for k in ks:
        if k > game.n:
            continue
        t1 = time.perf_counter()
        pi = g_learn(game, pi_l, k=k, m=None, seed=seed, tol=G_LEARN_TOL)
        t_learn = time.perf_counter() - t1
        t2 = time.perf_counter()
        pa = ex.action_probs(pi)
        V = evaluate_chain(ex, pa, T, rloc)
        t_eval = time.perf_counter() - t2
        one_step = (pa * regret).sum(axis=-1)
        zero = bool((pa * ~optimal).sum(axis=-1).max() == 0.0)
        diff = v_star - V
        if zero:  # pi_k is greedy for Q*: V^{pi_k} = V* exactly (what is left is round-off)
            gap_sup = gap_init = osup = 0.0
            arg = None
        else:
            gap_sup = float(diff.max())
            gap_init = float(ex.initial_value(diff))
            osup = float(one_step.max())
            arg = np.unravel_index(int(diff.argmax()), diff.shape)
        sq, kk = math.sqrt(k), float(k)
        rows.append({
            "game": label, "n": game.n, "d": game.n_sl, "gamma": game.gamma, "k": k,
            "hist_size": num_histograms(k, game.n_sl), "value": ex.initial_value(V),
            "opt_value": opt_value, "gap_sup": gap_sup, "gap_init": gap_init,
            "one_step_sup": osup, "sqrtk_gap_sup": sq * gap_sup, "k_gap_sup": kk * gap_sup,
            "sqrtk_gap_init": sq * gap_init, "k_gap_init": kk * gap_init,
            "sqrtk_one_step_sup": sq * osup, "zero_exact": zero,
            "below_roundoff_init": (not zero) and gap_init <= tol,
            "argsup_sg": None if arg is None else int(arg[0]),
            "argsup_counts": None if arg is None else " ".join(
                str(int(c)) for c in ex.states[int(arg[1])]),
            "g_learn_seconds": t_learn, "eval_seconds": t_eval})
        if progress is not None:
            progress.advance(status=f"{label}: k={k} sup gap {gap_sup:.3g}")
    later_zero = [r["k"] for i, r in enumerate(rows) if all(q["zero_exact"] for q in rows[i:])]
    facts = {"n": game.n, "d": game.n_sl, "gamma": game.gamma, "opt_value": opt_value,
             "exact_solver_states": ex.n_states, "full_info_seconds": t_full,
             "optimum_depends_on_N": not all(constant), "action_switches": switches,
             "max_regret": float(regret.max()), "roundoff": tol,
             "zero_from_k": later_zero[0] if later_zero else None}
    return rows, facts


def game_fits(spec: GapGame, rows: list[dict[str, Any]], tol: float) -> dict[str, Any]:
    """The log-log fits of one game's curves over its windows (gaps at or below the
    round-off ``tol`` left out)."""
    ks = [r["k"] for r in rows]
    out: dict[str, Any] = {}
    for q in FIT_QUANTITIES:
        vals = [r[q] if r[q] > tol else 0.0 for r in rows]
        out[q] = [fit_loglog(ks, vals, lo, hi) for lo, hi in spec.windows]
    return out


def family_summary(cfg: TheoryConfig, games: dict[str, Any]) -> dict[str, Any]:
    """Per family of games (``GapGame.family``): how many games have an optimum that
    ignores ``N`` (their gap is exactly zero from some ``k``), and for the others the
    per-game slopes in each window with a Student-t interval over the games
    (:func:`altmarl.evaluation.seed_interval`)."""
    out: dict[str, Any] = {}
    for fam in dict.fromkeys(s.family for s in cfg.gap_games if s.family):
        specs = [s for s in cfg.gap_games if s.family == fam]
        entries = [games[s.label] for s in specs]
        moving = [s for s, e in zip(specs, entries, strict=True)
                  if e["facts"]["optimum_depends_on_N"]]
        still = [s for s, e in zip(specs, entries, strict=True)
                 if not e["facts"]["optimum_depends_on_N"]]
        fam_out: dict[str, Any] = {
            "games": len(specs),
            "optimum_ignores_N": [s.label for s in still],
            "zero_from_k": {s.label: games[s.label]["facts"]["zero_from_k"] for s in still},
            "optimum_depends_on_N": [s.label for s in moving],
            "slopes": {},
        }
        windows = dict.fromkeys(w for s in moving for w in s.windows)
        for q in FIT_QUANTITIES:
            per: dict[str, Any] = {}
            for w in windows:
                slopes = [f["slope"] for s in moving for f, ww in
                          zip(games[s.label]["fits"][q], s.windows, strict=True)
                          if ww == w and f["slope"] is not None]
                if slopes:
                    per[f"{w[0]}-{w[1]}"] = {"slopes": slopes,
                                             **seed_interval(slopes).summary(),
                                             "interval": "Student-t over the games"}
            fam_out["slopes"][q] = per
        out[fam] = fam_out
    return out


# ---------------------------------------------------------------------------
# parts (b) and (c)
# ---------------------------------------------------------------------------


def table_sizes(cfg: TheoryConfig) -> list[dict[str, Any]]:
    """Part (b): mean-field ``|H_k|`` vs standard ``d^k`` table sizes."""
    rows = []
    for d in cfg.table_ds:
        for k in range(1, cfg.table_kmax + 1):
            mf = num_histograms(k, d)
            std = d**k
            rows.append({"d": d, "k": k, "mean_field": mf, "standard": float(std),
                         "ratio": float(std) / mf})
    return rows


def cost_vs_n(cfg: TheoryConfig, progress: Progress) -> list[dict[str, Any]]:
    """Part (c): G-LEARN cost (flat in ``n``) vs exact-solver cost (grows with ``n``)."""
    rows: list[dict[str, Any]] = []
    # warm-up (imports, FFT plans, caches) so that the first timed n is not penalized
    warm = envs.make(cfg.cost_env, n=max(cfg.cost_k, 2), **cfg.cost_params)
    # one thread, as the exact solver (BLAS limited to 1): a like-for-like cost
    g_learn(warm, LocalPolicy.uniform(warm), k=cfg.cost_k, m=cfg.cost_m, seed=cfg.seed,
            threads=1)
    ExactSolver(warm, cfg.cost_k).full_info_best_response(LocalPolicy.uniform(warm))
    for n in cfg.cost_glearn_ns:
        game = envs.make(cfg.cost_env, n=n, **cfg.cost_params)
        pi_l = LocalPolicy.uniform(game)
        times = []
        pi = None
        for _ in range(cfg.cost_repeats):
            t0 = time.perf_counter()
            pi = g_learn(game, pi_l, k=cfg.cost_k, m=cfg.cost_m, seed=cfg.seed, threads=1)
            times.append(time.perf_counter() - t0)
        assert pi is not None
        samples = pi.info.get("samples")
        rows.append({"method": "g_learn", "n": n, "k": cfg.cost_k, "m": cfg.cost_m,
                     "seconds": min(times), "samples": samples, "states": None})
        progress.advance(status=f"cost: g_learn n={n}")
    for n in cfg.cost_exact_ns:
        game = envs.make(cfg.cost_env, n=n, **cfg.cost_params)
        pi_l = LocalPolicy.uniform(game)
        k = min(cfg.cost_k, n)
        pi = GlobalPolicy.constant(game, k, 0)
        times = []
        states = None
        for _ in range(cfg.cost_repeats):
            t0 = time.perf_counter()
            ex = ExactSolver(game, k, max_states=cfg.max_states)
            ex.value(pi, pi_l)
            ex.full_info_best_response(pi_l)
            times.append(time.perf_counter() - t0)
            states = ex.n_states
        rows.append({"method": "exact", "n": n, "k": k, "m": None, "seconds": min(times),
                     "samples": None, "states": states})
        progress.advance(status=f"cost: exact n={n}")
    return rows


# ---------------------------------------------------------------------------
# run directory
# ---------------------------------------------------------------------------

GAP_COLUMNS = ["game", "n", "d", "gamma", "k", "hist_size", "value", "opt_value", "gap_sup",
               "gap_init", "one_step_sup", "sqrtk_gap_sup", "k_gap_sup", "sqrtk_gap_init",
               "k_gap_init", "sqrtk_one_step_sup", "zero_exact", "below_roundoff_init",
               "argsup_sg", "argsup_counts", "g_learn_seconds", "eval_seconds"]
TABLE_COLUMNS = ["d", "k", "mean_field", "standard", "ratio"]
COST_COLUMNS = ["method", "n", "k", "m", "seconds", "samples", "states"]
#: the format tag of a game file ``games/NN.json``
GAME_FORMAT = "altmarl-theory-game/1"


def _game_path(out: Path, i: int) -> Path:
    return out / "games" / f"{i:02d}.json"


def _load_game(path: Path, spec: GapGame, seed: int) -> dict[str, Any] | None:
    """A finished game file for this ``spec`` and ``seed``, or ``None`` (missing, damaged
    or written for something else: it is then recomputed)."""
    if not path.is_file():
        return None
    try:
        obj = read_json(path, "theory game")
    except (ValueError, OSError):
        return None
    if (obj.get("format") != GAME_FORMAT or obj.get("seed") != seed
            or not isinstance(obj.get("rows"), list) or not isinstance(obj.get("facts"), dict)):
        return None
    try:
        same = GapGame.model_validate(obj.get("spec")) == spec
    except ValidationError:
        return None
    return obj if same else None


def run_theory(out: str | Path, quick: bool = False, seed: int = 0,
               progress: bool = True, config: TheoryConfig | None = None,
               plots: bool = True) -> dict[str, Any]:
    """Run the theory experiment into the run directory ``out`` (resuming a run of the same
    configuration; another configuration is refused): ``config.json``, ``games/NN.json``,
    ``gap_vs_k.csv``, ``table_size.csv``, ``cost_vs_n.csv``, ``summary.json`` and the PNG
    figures (``plots=False``: no figures; ``altmarl plot`` draws them later). Returns the
    summary."""
    cfg = config or (quick_config(seed) if quick else full_config(seed))
    out = Path(out)
    cpath = out / "config.json"
    if cpath.is_file():
        try:
            old = parse_theory_config(read_json(cpath, "theory config"), source=str(cpath))
        except ValueError:
            old = None
        if old is not None and old != cfg:
            raise ValueError(f"{out}: holds a theory run with another configuration; use "
                             "another --out directory (or delete this one)")
    out.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(out, "driver.lock", what="theory run directory"):
        return _run_locked(cfg, out, progress, plots)


def _run_locked(cfg: TheoryConfig, out: Path, progress: bool, plots: bool) -> dict[str, Any]:
    write_json(out / "config.json", cfg.model_dump())
    (out / "games").mkdir(exist_ok=True)
    done = {i: _load_game(_game_path(out, i), s, cfg.seed) for i, s in enumerate(cfg.gap_games)}
    cost_path = out / "cost_vs_n.csv"
    cost_done = cost_path.is_file() and (out / "cost.done").is_file()
    total = sum(len([k for k in s.ks if k <= s.params.get("n", 10**9)])
                for i, s in enumerate(cfg.gap_games) if done[i] is None)
    if not cost_done:
        total += len(cfg.cost_glearn_ns) + len(cfg.cost_exact_ns)
    t0 = time.perf_counter()
    bar = Progress(progress)
    bar.add_task("theory", total=total)
    games: dict[str, Any] = {}
    resumed = 0
    # one BLAS thread: multithreaded BLAS on busy cores would make part (c)'s timings erratic
    with limit_blas_threads(1) as blas_threads, bar:
        for i, spec in enumerate(cfg.gap_games):
            obj = done[i]
            if obj is None:
                game = envs.make(spec.env, **spec.params)
                rows, facts = exact_gap_curve(game, LocalPolicy.uniform(game), spec.ks,
                                              seed=cfg.seed, max_states=cfg.max_states,
                                              progress=bar, label=spec.label)
                obj = {"format": GAME_FORMAT, "spec": spec.model_dump(), "seed": cfg.seed,
                       "rows": rows, "facts": facts}
                write_json(_game_path(out, i), obj)
            else:
                resumed += 1
            games[spec.label] = {"rows": obj["rows"], "facts": obj["facts"],
                                 "fits": game_fits(spec, obj["rows"], obj["facts"]["roundoff"])}
        gap_rows = [r for e in games.values() for r in e["rows"]]
        atomic_write_bytes(out / "gap_vs_k.csv", dict_rows_csv_bytes(gap_rows, GAP_COLUMNS))
        size_rows = table_sizes(cfg)
        atomic_write_bytes(out / "table_size.csv", dict_rows_csv_bytes(size_rows, TABLE_COLUMNS))
        if cost_done:
            from altmarl.io import read_csv_rows

            cost_rows = read_csv_rows(cost_path)
        else:
            cost_rows = cost_vs_n(cfg, bar)
            atomic_write_bytes(cost_path, dict_rows_csv_bytes(cost_rows, COST_COLUMNS))
            atomic_write_bytes(out / "cost.done", b"")
    g_rows = [r for r in cost_rows if r["method"] == "g_learn"]
    e_rows = [r for r in cost_rows if r["method"] == "exact"]
    g_secs = [r["seconds"] for r in g_rows]
    summary: dict[str, Any] = {
        "experiment": "theory",
        "command": "altmarl theory" + (" --quick" if cfg.quick else "")
                   + (f" --seed {cfg.seed}" if cfg.seed else ""),
        "quick": cfg.quick,
        "seed": cfg.seed,
        "pi_l": "uniform (fixed)",
        "g_learn": "m = None (exact expectation), tol = 1e-9",
        "gap_vs_k": {label: {**e["facts"], "fits": e["fits"],
                             "gap_sup_by_k": {str(r["k"]): r["gap_sup"] for r in e["rows"]},
                             "gap_init_by_k": {str(r["k"]): r["gap_init"] for r in e["rows"]}}
                     for label, e in games.items()},
        "families": family_summary(cfg, games),
        "table_size": {
            f"d={d}": {f"k={k}": {"mean_field": r["mean_field"], "standard": r["standard"]}
                       for k in (1, 5, 10, 20, 50) for r in size_rows
                       if r["d"] == d and r["k"] == k}
            for d in cfg.table_ds},
        "cost_vs_n": {
            "k": cfg.cost_k, "m": cfg.cost_m,
            "g_learn_seconds_by_n": {str(r["n"]): r["seconds"] for r in g_rows},
            "g_learn_samples_by_n": {str(r["n"]): r["samples"] for r in g_rows},
            "g_learn_max_over_min_seconds": (max(g_secs) / min(g_secs)) if g_secs else None,
            "exact_seconds_by_n": {str(r["n"]): r["seconds"] for r in e_rows},
            "exact_states_by_n": {str(r["n"]): r["states"] for r in e_rows},
        },
        "games_resumed": resumed,
        "blas_threads": blas_threads,
        "wall_seconds": time.perf_counter() - t0,
        "python": platform.python_version(),
    }
    write_json(out / "summary.json", summary)
    summary["plots"] = [str(p) for p in plot_theory(out)] if plots else []
    return summary


def _slope_text(fit: dict[str, Any]) -> str:
    if fit["slope"] is None:
        return "n/a"
    lo, hi = fit["slope_ci"]
    return f"{fit['slope']:.2f} [{lo:.2f}, {hi:.2f}]"


def format_summary(summary: dict[str, Any], order: list[str] | None = None) -> str:
    """Short human-readable digest of ``summary.json`` (printed by the CLI): games in
    ``order`` (the configuration's; ``summary.json`` read back from disk has its keys
    sorted), then any others; ``k`` and ``n`` in increasing order."""
    lines = []
    fams = summary.get("families", {})
    in_family = {g for f in fams.values()
                 for g in f["optimum_ignores_N"] + f["optimum_depends_on_N"]}
    games = summary["gap_vs_k"]
    labels = [g for g in order or [] if g in games] + [g for g in games
                                                       if g not in (order or [])]
    for label in labels:
        e = games[label]
        if label in in_family and not e["optimum_depends_on_N"]:
            continue
        lines.append(f"{label}: V* = {e['opt_value']:.4f}, {e['exact_solver_states']} chain "
                     f"states; the optimal action "
                     f"{'depends on N' if e['optimum_depends_on_N'] else 'ignores N'}")
        for q, what in (("gap_sup", "sup-over-states gap"), ("gap_init", "initial-distribution gap")):
            gaps = e[f"{q}_by_k"]
            lines.append(f"  {what}(k): " + ", ".join(
                f"k={k}: {float(v):.3g}" for k, v in sorted(gaps.items(),
                                                            key=lambda kv: int(kv[0]))))
            fits = e["fits"][q]
            if fits:
                lines.append("    log-log slope (95% regression interval): " + "; ".join(
                    f"k in [{f['k_lo']:g}, {f['k_hi']:g}]: {_slope_text(f)}" for f in fits))
    for fam, f in fams.items():
        by_k: dict[Any, int] = {}
        for z in f["zero_from_k"].values():
            by_k[z] = by_k.get(z, 0) + 1
        zeros = ", ".join(f"{c} from k = {z}" if z is not None else f"{c} never"
                          for z, c in sorted(by_k.items(),
                                             key=lambda kv: (kv[0] is None, kv[0] or 0)))
        lines.append(f"family {fam}: {f['games']} games; the optimal action ignores N in "
                     f"{len(f['optimum_ignores_N'])} (gap exactly 0: {zeros or 'none'}), "
                     f"depends on N in {len(f['optimum_depends_on_N'])} "
                     f"({', '.join(f['optimum_depends_on_N'])})")
        for q, what in (("gap_sup", "sup-over-states gap"),
                        ("gap_init", "initial-distribution gap")):
            for w, s in sorted(f["slopes"].get(q, {}).items(),
                               key=lambda kv: int(kv[0].split("-")[0])):
                ci = "" if s["ci"] is None else f" [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}]"
                games_ = f"{s['n']} game" + ("" if s["n"] == 1 else "s")
                lines.append(f"  {what}: log-log slope over k in [{w.replace('-', ', ')}], "
                             f"mean of {games_}: {s['mean']:.2f}{ci}")
    c = summary["cost_vs_n"]
    if c.get("g_learn_max_over_min_seconds") is not None:
        ns = sorted(c["g_learn_seconds_by_n"], key=int)
        lines.append(f"G-LEARN time over n = {', '.join(ns)}: max/min = "
                     f"{c['g_learn_max_over_min_seconds']:.2f}")
    lines.append("exact solver seconds by n: " + ", ".join(
        f"{n}: {s:.3g}" for n, s in sorted(c["exact_seconds_by_n"].items(),
                                           key=lambda kv: int(kv[0]))))
    return "\n".join(lines)


__all__ = [
    "FIT_QUANTITIES",
    "GapGame",
    "TheoryConfig",
    "cost_vs_n",
    "effective_k",
    "exact_gap_curve",
    "family_summary",
    "fit_loglog",
    "fit_loglog_slope",
    "format_summary",
    "full_config",
    "game_fits",
    "parse_theory_config",
    "plot_theory",
    "quick_config",
    "run_theory",
    "table_sizes",
]
