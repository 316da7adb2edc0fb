"""Every size budget of altmarl in one place (``docs/reliability.md``, "Limits").

A small input must never make altmarl allocate gigabytes or compute for minutes before it
fails: each loader checks the sizes a file *declares* (zip members' uncompressed sizes,
array shapes, histogram counts by logarithms, rows x columns) and each configuration or
API size the memory and time it *implies*, against these budgets, before it allocates or
computes. A refused input is a ``ValueError`` naming the field, the size and the limit.

The budgets are generous for every experiment in the paper and the docs (the largest
tables there have about 10^6 entries); raise them here if a real workload needs more.
"""

from __future__ import annotations

import math

#: largest signed 64-bit integer: every count, size and index altmarl stores is an int64
INT64_MAX = 2**63 - 1

# --- files ------------------------------------------------------------------------------

#: largest JSON file read (unit results, summaries, run records, log sidecars)
MAX_JSON_BYTES = 64 * 2**20
#: ``.npz`` archives (policies, games, checkpoints): most members ...
MAX_NPZ_MEMBERS = 256
#: ... and most bytes, summed over the members' declared uncompressed sizes (and the
#: archive's own size)
MAX_NPZ_BYTES = 2**30
#: off-policy logs: most bytes of decompressed CSV read from one log (streamed; a
#: ``.csv.gz`` that expands beyond this is refused while it is read)
MAX_LOG_BYTES = 2**31
#: off-policy logs: most cells (rows x columns) held in memory
MAX_LOG_CELLS = 2 * 10**8
#: the longest error message fragment that quotes an input value
MAX_QUOTE = 200

# --- tables and simulations -------------------------------------------------------------

#: most entries of a table indexed by histograms or states (policy action tables
#: ``|S_g| x |H_k|``, Q tables, enumerated histograms ``|H_k| x |S_l|``): 400 MB as int64
MAX_TABLE_ENTRIES = 5 * 10**7
#: most entries of an enumerated histogram array ``|H_k| x |S_l|`` (1.6 GB as int64)
MAX_HISTOGRAM_ENTRIES = 2 * 10**8
#: most sizes of one state or action space (``|S_g|``, ``|A_g|``, ``|S_l|``, ``|A_l|``)
MAX_SPACE = 10**6
#: most simulated agent-steps of one evaluation or log recording (rollouts x horizon x
#: agents simulated, k per step for the mean-field simulator): about an hour of CPU
MAX_SIMULATED_STEPS = 10**11
#: most cells of trajectory arrays held in memory by one evaluation or recording (rollouts x
#: horizon x (|S_l| + 3) for an evaluation; rows x columns for a log): 1.6 GB of 8-byte cells
MAX_ROLLOUT_CELLS = 2 * 10**8
#: largest absolute reward: values stay finite (``|r| / (1 - gamma)`` for any
#: ``gamma < 1`` representable in float64)
MAX_ABS_REWARD = 1e100

# --- experiment configurations ----------------------------------------------------------

#: most units (values of k x training seeds) of one sweep
MAX_UNITS = 100_000
#: most evaluation seeds, rollouts or time steps of one evaluation entry
MAX_EVAL_SEEDS = 10_000


def log_binomial(n: int, r: int) -> float:
    """``log C(n, r)`` without big integers, ``-inf`` when ``C(n, r) = 0``: a sum of
    ``min(r, n - r)`` logarithms when that is small (``lgamma`` differences would cancel
    catastrophically for huge ``n``), else ``math.lgamma``."""
    if r < 0 or n < r:
        return -math.inf
    r = min(r, n - r)
    if r <= 10_000:
        return math.fsum(math.log((n - r + i) / i) for i in range(1, r + 1))
    return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)


def within(log_size: float, limit: int | float) -> bool:
    """Whether a size known by its logarithm is at most ``limit`` (with a tolerance of
    1e-9 relative for the rounding of ``lgamma``; exact checks follow where it matters)."""
    return log_size <= math.log(limit) + 1e-9


def check_simulation(name: str, rollouts: int, horizon: int, cells_per_step: int,
                     work_per_step: int) -> None:
    """Bound a simulation before it starts: ``rollouts x horizon x cells_per_step`` stored
    cells (:data:`MAX_ROLLOUT_CELLS`) and ``rollouts x horizon x work_per_step`` simulated
    agent-steps (:data:`MAX_SIMULATED_STEPS`); a ``ValueError`` naming ``name`` otherwise."""
    steps = rollouts * horizon
    check_budget(f"{name}: rollouts x horizon = {rollouts} x {horizon}",
                 steps * cells_per_step, MAX_ROLLOUT_CELLS, "trajectory cells",
                 "use fewer rollouts or a shorter horizon")
    check_budget(f"{name}: rollouts x horizon = {rollouts} x {horizon}",
                 steps * work_per_step, MAX_SIMULATED_STEPS, "simulated agent-steps",
                 "use fewer rollouts or a shorter horizon")


def check_game_size(name: str, n_sg: int, n_ag: int, n_sl: int, n_al: int) -> None:
    """Bound the tables of a tabular game before they are built: ``P_g`` has
    ``|S_g|^2 |A_g|`` entries and ``P_l`` ``|S_l|^2 |S_g| |A_l|``, each at most
    :data:`MAX_TABLE_ENTRIES`."""
    check_budget(f"{name}: P_g (|S_g|^2 x |A_g| = {n_sg}^2 x {n_ag})", n_sg * n_sg * n_ag,
                 MAX_TABLE_ENTRIES, "entries", "use smaller spaces")
    check_budget(f"{name}: P_l (|S_l|^2 x |S_g| x |A_l| = {n_sl}^2 x {n_sg} x {n_al})",
                 n_sl * n_sl * n_sg * n_al, MAX_TABLE_ENTRIES, "entries", "use smaller spaces")


def check_budget(name: str, size: int | float, limit: int | float, what: str,
                 hint: str = "") -> None:
    """``ValueError`` naming ``name`` when ``size > limit`` (``what`` describes ``size``, e.g.
    ``"table entries"``; ``hint`` says how to get under the limit)."""
    if size > limit:
        raise ValueError(f"{name}: {size:.4g} {what} exceed the limit of {limit:.4g}"
                         f" (altmarl.limits){'; ' + hint if hint else ''}")


__all__ = [
    "INT64_MAX",
    "MAX_ABS_REWARD",
    "MAX_EVAL_SEEDS",
    "MAX_HISTOGRAM_ENTRIES",
    "MAX_JSON_BYTES",
    "MAX_LOG_BYTES",
    "MAX_LOG_CELLS",
    "MAX_NPZ_BYTES",
    "MAX_NPZ_MEMBERS",
    "MAX_QUOTE",
    "MAX_ROLLOUT_CELLS",
    "MAX_SIMULATED_STEPS",
    "MAX_SPACE",
    "MAX_TABLE_ENTRIES",
    "MAX_UNITS",
    "check_budget",
    "check_game_size",
    "check_simulation",
    "log_binomial",
    "within",
]
