"""Experiment configuration files (SPEC 8.1, 9, 10): validated TOML.

An experiment is: an environment, the ALTERNATING-MARL settings, the evaluation protocol
and the sweep grid (the values of ``k`` and the number of independent training runs).
Every section is a pydantic model with ``extra="forbid"``, so a misspelled key or a
value of the wrong type raises a :class:`ValueError` naming the key, e.g.
``config.toml: algorithm.sweps: unknown key``.

Example (``altmarl/configs/warehouse.toml``)::

    name = "warehouse"
    seed = 0

    [env]
    name = "warehouse"
    params = { n = 1000, gamma = 0.95 }

    [algorithm]          # ALTERNATING-MARL (paper Algorithm 14, SPEC 6)
    sweeps = 10
    m = 30               # or "exact"
    local_solver = "induced-vi"

    [evaluation]         # SPEC 3: E seeds x R rollouts x horizon H per trained policy pair
    seeds = 15
    rollouts = 50
    horizon = 100

    [sweep]
    k = [10]             # or k = { start = 1, stop = 50, step = 1 } (stop inclusive)
    train_seeds = 1

    [sampling]           # optional (SPEC 12); absent = uniform k-subsets
    scheme = "weighted"  # "uniform" | "stratified" | "weighted"
    weights = [1, 1, 4, 1, 1]   # weighted: one per local state
    # allocation = "proportional"  # stratified: k split over types ("equal" or shares)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from altmarl._validate import show
from altmarl.limits import (
    INT64_MAX,
    MAX_EVAL_SEEDS,
    MAX_JSON_BYTES,
    MAX_ROLLOUT_CELLS,
    MAX_UNITS,
    check_simulation,
)
from altmarl.settings import StrictConfig, format_validation_errors

#: a configuration name: it names the run directory ``runs/NAME``, so no path separators,
#: no leading dot
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"

#: bump when the meaning of a configuration changes
CONFIG_VERSION = 1

#: keys of ``alternating_marl`` the ``[algorithm]`` section sets through named fields
_NAMED_ALGO_KEYS = ("sweeps", "m", "eta", "local_solver", "eval_rollouts", "eval_horizon")
#: keys of ``alternating_marl`` the runner sets itself (not configurable)
_RESERVED_ALGO_KEYS = ("game", "k", "seed", "progress", "callback", "workers", "sampling")

Scalar = int | float | str | bool


class EnvConfig(StrictConfig):
    """``[env]``: a registered game (``am.envs.make(name, **params)``)."""

    name: str = "warehouse"
    params: dict[str, Scalar] = Field(default_factory=dict)


class AlgorithmConfig(StrictConfig):
    """``[algorithm]``: arguments of ``am.alternating_marl`` (SPEC 6).

    ``None`` (key absent) means "the library default" (e.g. ``local_solver``: the default
    of ``alternating_marl``; the packaged warehouse configurations choose
    ``"induced-vi"``, the practice of the paper's experiments). ``m = "exact"`` asks G-LEARN for
    the exact expectation (small ``k`` only). ``options`` passes further keyword
    arguments to ``alternating_marl``; they are checked against its signature.
    """

    sweeps: int = Field(default=10, ge=1, le=10**6)
    m: int | Literal["exact"] = 30
    eta: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    local_solver: str | None = None
    eval_rollouts: int | None = Field(default=None, ge=1, le=MAX_ROLLOUT_CELLS)
    eval_horizon: int | None = Field(default=None, ge=1, le=MAX_ROLLOUT_CELLS)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("m")
    @classmethod
    def _m_positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= INT64_MAX:
            raise ValueError("expected an integer in [1, 2**63 - 1] or \"exact\"")
        return v

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``alternating_marl`` (library defaults left out)."""
        out: dict[str, Any] = {"sweeps": self.sweeps, "m": None if self.m == "exact" else self.m}
        for key in ("local_solver", "eta", "eval_rollouts", "eval_horizon"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        out.update(self.options)
        return out


class EvaluationConfig(StrictConfig):
    """``[evaluation]``: each trained policy pair is evaluated with ``seeds`` independent
    evaluation seeds of ``rollouts`` rollouts of ``horizon`` steps (Table 3: 15 x 50 x 100).

    ``nash_gap``: the Nash-gap certificate of each final pair
    (:func:`altmarl.exact.nash_gap_certificate`): ``"auto"`` (key absent: exact when the
    chain is small, else the estimated lower bound), ``"exact"``, ``"estimate"`` or
    ``"off"``.
    """

    seeds: int = Field(default=15, ge=1, le=MAX_EVAL_SEEDS)
    rollouts: int = Field(default=50, ge=2, le=MAX_ROLLOUT_CELLS)
    horizon: int = Field(default=100, ge=1, le=MAX_ROLLOUT_CELLS)
    nash_gap: Literal["auto", "exact", "estimate", "off"] | None = None

    @model_validator(mode="after")
    def _size(self) -> EvaluationConfig:
        # every evaluation stores rollouts x horizon x (at least 4) cells (limits)
        if self.rollouts * self.horizon * 4 > MAX_ROLLOUT_CELLS:
            raise ValueError(f"rollouts x horizon = {self.rollouts} x {self.horizon}: above "
                             f"{MAX_ROLLOUT_CELLS // 4} (altmarl.limits.MAX_ROLLOUT_CELLS / 4)")
        return self


class KRange(StrictConfig):
    """``k = { start = 1, stop = 50, step = 1 }``; ``stop`` is inclusive."""

    start: int = Field(ge=1, le=INT64_MAX)
    stop: int = Field(ge=1, le=INT64_MAX)
    step: int = Field(default=1, ge=1, le=INT64_MAX)

    @model_validator(mode="after")
    def _count(self) -> KRange:
        count = (self.stop - self.start) // self.step + 1
        if count > MAX_UNITS:
            raise ValueError(f"{count} values of k: above {MAX_UNITS} "
                             "(altmarl.limits.MAX_UNITS)")
        return self

    def values(self) -> list[int]:
        if self.stop < self.start:
            raise ValueError(f"stop = {self.stop} is below start = {self.start}")
        return list(range(self.start, self.stop + 1, self.step))


class SweepConfig(StrictConfig):
    """``[sweep]``: the grid of units. One unit = one ``k`` x one training seed."""

    k: list[int] | KRange | int = Field(default_factory=lambda: [10])
    train_seeds: int = Field(default=1, ge=1, le=MAX_UNITS)

    @model_validator(mode="after")
    def _units(self) -> SweepConfig:
        units = len(self.ks()) * self.train_seeds
        if units > MAX_UNITS:
            raise ValueError(f"{len(self.ks())} values of k x {self.train_seeds} training seeds "
                             f"= {units} units: above {MAX_UNITS} (altmarl.limits.MAX_UNITS)")
        return self

    @field_validator("k")
    @classmethod
    def _k_valid(cls, v: list[int] | KRange | int) -> list[int] | KRange | int:
        vals = ks_of(v)
        if not vals:
            raise ValueError("expected at least one value of k")
        if min(vals) < 1 or max(vals) > INT64_MAX:
            raise ValueError(f"expected integers in [1, 2**63 - 1], got {min(vals)}")
        if isinstance(v, list) and len(v) > MAX_UNITS:
            raise ValueError(f"{len(v)} values of k: above {MAX_UNITS} "
                             "(altmarl.limits.MAX_UNITS)")
        return sorted(set(v)) if isinstance(v, list) else v

    def ks(self) -> list[int]:
        """The sorted, de-duplicated values of ``k``."""
        return ks_of(self.k)


def ks_of(v: list[int] | KRange | int) -> list[int]:
    if isinstance(v, KRange):
        return sorted(set(v.values()))
    if isinstance(v, int):
        return [v]
    return sorted(set(v))


class SamplingConfig(StrictConfig):
    """``[sampling]``: the global agent's sampling scheme (SPEC 12, :mod:`altmarl.sampling`)
    for every ``k`` of the sweep. ``"uniform"`` (the default when the section is absent);
    ``"weighted"`` with ``weights`` (one per local state, ``>= 0``, not all zero);
    ``"stratified"`` on a typed game, ``k`` split over the types by ``allocation``:
    ``"proportional"`` to the type counts, ``"equal"``, or a list of positive shares
    (largest remainder, at least one per type; :func:`altmarl.sampling.allocate`)."""

    scheme: Literal["uniform", "stratified", "weighted"] = "uniform"
    weights: list[float] | None = None
    allocation: Literal["proportional", "equal"] | list[float] = "proportional"

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            from altmarl.sampling import Weighted

            Weighted(tuple(v), 1)  # the scheme's own checks (negative, NaN, all zero)
        return v

    @field_validator("allocation")
    @classmethod
    def _allocation(cls, v: str | list[float]) -> str | list[float]:
        if isinstance(v, list) and (not v or any(not (x > 0 and x < float("inf")) for x in v)):
            raise ValueError("expected \"proportional\", \"equal\" or a list of positive shares")
        return v

    @model_validator(mode="after")
    def _weights_for_scheme(self) -> SamplingConfig:
        if self.scheme == "weighted" and self.weights is None:
            raise ValueError("sampling.weights: scheme = \"weighted\" needs one weight per "
                             "local state")
        if self.scheme != "weighted" and self.weights is not None:
            raise ValueError(f"sampling.weights: only for scheme = \"weighted\" (got scheme = "
                             f"{self.scheme!r})")
        return self

    def scheme_for(self, k: int, game: Any) -> Any:
        """The scheme of total size ``k`` for ``game`` (bound, validated)."""
        from altmarl.sampling import Stratified, Uniform, Weighted, allocate

        if self.scheme == "uniform":
            return Uniform(k).bind(game)
        if self.scheme == "weighted":
            assert self.weights is not None
            return Weighted(tuple(self.weights), k).bind(game)
        counts = list(game.type_counts)
        if len(counts) < 2:
            raise ValueError("sampling.scheme = \"stratified\": the game has one type (pass "
                             "types / type_counts to the environment)")
        if self.allocation == "proportional":
            shares: list[float] = [float(c) for c in counts]
        elif self.allocation == "equal":
            shares = [1.0] * len(counts)
        else:
            shares = list(self.allocation)
            if len(shares) != len(counts):
                raise ValueError(f"sampling.allocation: {len(shares)} shares for "
                                 f"{len(counts)} types")
        return Stratified(allocate(k, shares, counts)).bind(game)


class PlotConfig(StrictConfig):
    """``[plots]``: which ``k`` get an occupancy panel (default: up to 3 spread over the
    grid)."""

    occupancy_k: list[int] | None = None


class ExperimentConfig(StrictConfig):
    """A whole experiment (one TOML file)."""

    version: int = CONFIG_VERSION
    name: str = Field(default="experiment", pattern=NAME_PATTERN)
    seed: int = Field(default=0, ge=0, le=INT64_MAX)
    env: EnvConfig = Field(default_factory=EnvConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    plots: PlotConfig = Field(default_factory=PlotConfig)
    #: ``None`` (section absent): uniform sampling; left out of the resolved configuration
    #: so that the fingerprints of configurations without it do not change
    sampling: SamplingConfig | None = None

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != CONFIG_VERSION:
            raise ValueError(f"configuration version {v} is not supported (expected {CONFIG_VERSION})")
        return v

    # --- derived ---------------------------------------------------------------
    def ks(self) -> list[int]:
        return self.sweep.ks()

    def resolved(self) -> dict[str, Any]:
        """The configuration with every default filled in (JSON/TOML friendly)."""
        d = self.model_dump(mode="json", exclude_none=True)
        d["sweep"]["k"] = self.ks()
        return d

    def fingerprint(self) -> str:
        """Hash of the resolved configuration: units of two runs with equal fingerprints
        are interchangeable (used by ``--resume``)."""
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_toml(self) -> str:
        """The resolved configuration as TOML (re-loadable with :func:`load_config`)."""
        import tomli_w

        return tomli_w.dumps(self.resolved())

    def with_overrides(self, *, k: list[int] | None = None, seed: int | None = None,
                       train_seeds: int | None = None, name: str | None = None,
                       source: str = "overrides") -> ExperimentConfig:
        """A copy with some fields replaced (validated again; errors name ``source``)."""
        d = self.resolved()
        if k is not None:
            d["sweep"]["k"] = list(k)
        if seed is not None:
            d["seed"] = seed
        if train_seeds is not None:
            d["sweep"]["train_seeds"] = train_seeds
        if name is not None:
            d["name"] = name
        return parse_config(d, source=source)


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def parse_config(data: dict[str, Any], source: str = "config", check_env: bool = True) -> ExperimentConfig:
    """Validate a configuration mapping.

    With ``check_env`` the environment is built once (``am.envs.make``) so unknown env
    parameters and ``k > n`` are reported now rather than in a worker; ``algorithm.options``
    are checked against the signature of ``alternating_marl``.

    Raises
    ------
    ValueError
        Naming the offending key and what was expected.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a table of settings, got {type(data).__name__}")
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(format_validation_errors(exc, source, model=ExperimentConfig)) from None
    if check_env:
        check_against_env(cfg, source)
    _check_options(cfg, source)
    return cfg


def check_against_env(cfg: ExperimentConfig, source: str = "config") -> None:
    """Everything that can be checked before a run starts: build the environment (unknown
    names and parameters), check ``k <= n`` and, on tabular games, the ALTERNATING-MARL
    settings for every ``k`` (:meth:`~altmarl.alternating.AlternatingOptions.check`:
    ``local_solver``, G-LEARN and L-LEARN options, table sizes). The ``ValueError`` names the
    configuration key (``algorithm.local_solver``, ``sweep.k``, ``env.params.n``, ...)."""
    from altmarl import envs
    from altmarl.game import TabularGame

    if cfg.env.name not in envs.names():
        try:
            envs.info(cfg.env.name)
        except ValueError as exc:
            raise ValueError(f"{source}: env.name: {exc}") from None
    try:
        game = envs.make(cfg.env.name, **cfg.env.params)
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(f"{source}: env.{msg}" if msg.startswith("params.")
                         else f"{source}: env.params: {msg}") from None
    big = [k for k in cfg.ks() if k > game.n]
    if big:
        raise ValueError(f"{source}: sweep.k: values {show(big)} exceed the population "
                         f"n = {game.n} (expected 1 <= k <= n; set a smaller k or a larger "
                         "env.params.n)")
    # what the evaluations will need, checked before any training (limits)
    ev, d, kmax = cfg.evaluation, getattr(game, "n_sl", None) or 0, max(cfg.ks())
    # the count simulator simulates the k sampled agents, the per-agent one (generative
    # games) all n
    work = kmax + d if isinstance(game, TabularGame) else game.n
    try:
        check_simulation("evaluation", ev.rollouts, ev.horizon, d + 3, work)
        algo = cfg.algorithm
        if algo.eval_rollouts is not None or algo.eval_horizon is not None:
            check_simulation("algorithm.eval_rollouts x eval_horizon", algo.eval_rollouts or 1,
                             algo.eval_horizon or 1, d + 3, work)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    if isinstance(game, TabularGame):
        _check_algorithm(cfg, game, source)
    if cfg.sampling is not None:
        for k in cfg.ks():
            try:
                cfg.sampling.scheme_for(k, game)
            except ValueError as exc:
                raise ValueError(f"{source}: sampling (k = {k}): {exc}") from None


#: where each field of ``AlternatingOptions`` lives in a configuration file
_OPTION_KEYS = {"sweeps": "algorithm.sweeps", "eta": "algorithm.eta", "m": "algorithm.m",
                "local_solver": "algorithm.local_solver",
                "eval_rollouts": "algorithm.eval_rollouts",
                "eval_horizon": "algorithm.eval_horizon", "k": "sweep.k"}


def _check_algorithm(cfg: ExperimentConfig, game: Any, source: str) -> None:
    """The ``[algorithm]`` settings against the tabular ``game``, for every ``k``."""
    from dataclasses import fields

    from altmarl.alternating import AlternatingOptions

    names = {f.name for f in fields(AlternatingOptions)}
    kwargs = {key: v for key, v in cfg.algorithm.kwargs().items() if key in names}
    try:
        opts = AlternatingOptions(**kwargs)
        for k in cfg.ks():
            opts.check(game, k)
    except ValueError as exc:
        msg = str(exc)
        field = msg.split(" ", 1)[0].split(".", 1)[0].rstrip(":")
        where = _OPTION_KEYS.get(field, f"algorithm.options.{field}")
        rest = msg[len(field):]
        raise ValueError(f"{source}: {where}{rest}") from None


def _check_options(cfg: ExperimentConfig, source: str) -> None:
    opts = cfg.algorithm.options
    bad = [key for key in opts if key in _NAMED_ALGO_KEYS or key in _RESERVED_ALGO_KEYS]
    if bad:
        raise ValueError(f"{source}: algorithm.options: keys {bad} are set elsewhere "
                         f"(named [algorithm] fields or by the runner)")
    fn = _alternating_or_none()
    if fn is None or not opts:
        return
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [key for key in opts if key not in params]
    if unknown:
        allowed = sorted(set(params) - set(_NAMED_ALGO_KEYS) - set(_RESERVED_ALGO_KEYS))
        raise ValueError(f"{source}: algorithm.options: unknown keys {unknown}; "
                         f"alternating_marl accepts {allowed}")


def _alternating_or_none() -> Any:
    try:
        from altmarl.alternating import alternating_marl
    except ImportError:
        return None
    return alternating_marl


def load_config(path: str | os.PathLike[str], check_env: bool = True) -> ExperimentConfig:
    """Read and validate a TOML experiment file (see module docstring)."""
    from altmarl.io import read_bytes_bounded

    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such configuration file")
    try:
        data = tomllib.loads(read_bytes_bounded(p, MAX_JSON_BYTES, "configuration file")
                             .decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{p}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ValueError(f"{p}: not valid TOML (nested too deeply)") from None
    return parse_config(data, source=str(p), check_env=check_env)


def packaged_configs() -> list[str]:
    """Names of the example configurations shipped in ``altmarl/configs``."""
    root = resources.files("altmarl") / "configs"
    return sorted(f.name[:-5] for f in root.iterdir() if f.name.endswith(".toml"))


def packaged_config(name: str) -> ExperimentConfig:
    """A configuration shipped with the package (e.g. ``"warehouse"``)."""
    root = resources.files("altmarl") / "configs"
    f = root / f"{name}.toml"
    if not f.is_file():
        raise ValueError(f"config {name!r}: no packaged configuration; expected one of "
                         f"{', '.join(packaged_configs())}")
    data = tomllib.loads(f.read_text(encoding="utf-8"))
    return parse_config(data, source=f"altmarl/configs/{name}.toml")


def resolve_config(target: str) -> ExperimentConfig:
    """``CONFIG`` of ``altmarl sweep``: a TOML path or a packaged configuration name."""
    p = Path(target)
    if p.suffix == ".toml" or p.is_file():
        return load_config(p)
    if target in packaged_configs():
        return packaged_config(target)
    import difflib

    close = difflib.get_close_matches(target, packaged_configs(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{target!r}: not a configuration file or packaged configuration"
                     f"{hint}; packaged: {', '.join(packaged_configs())}")


def resolve_target(target: str) -> ExperimentConfig:
    """``ENV_OR_CONFIG`` of ``altmarl run``: a TOML path, a packaged configuration name, a
    registered environment name, or a user's game factory ``"module:function"`` returning a
    ``GenerativeGame`` (defaults for everything else)."""
    from altmarl import envs
    from altmarl._validate import is_callable_spec

    p = Path(target)
    if p.suffix == ".toml" or p.is_file():
        return load_config(p)
    if target in packaged_configs():
        return packaged_config(target)
    if target in envs.names() or is_callable_spec(target):
        n = envs.make(target).n
        default_k = SweepConfig().ks()[0]
        return parse_config({"name": target.replace(":", "."), "env": {"name": target},
                             "sweep": {"k": [min(default_k, n)]}}, source=target)
    import difflib

    close = difflib.get_close_matches(target, packaged_configs() + envs.names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{target!r}: not a configuration file, packaged configuration, "
                     f"environment or game factory 'module:function'{hint}; packaged "
                     f"configurations: {', '.join(packaged_configs())}; environments: "
                     f"{', '.join(envs.names())} (altmarl envs)")
