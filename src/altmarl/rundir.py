"""The layout of a tabular run directory (``altmarl run / sweep / reproduce``; SPEC 10),
its readers, and the checks that make it heal.

Written by :mod:`altmarl.experiments` (the sweep driver and the unit runner), read by
:mod:`altmarl.plots` and the command line. This module imports neither, so the figures
never import the code that runs experiments. The files of a run directory are listed in
:mod:`altmarl.experiments.sweep`.

Every unit directory holds a manifest (:data:`MANIFEST`) with the SHA-256 digest and size
of each of its files, recorded when the unit was written; :func:`check_unit` compares them,
so a missing, truncated or edited file is found and named. Every reader refuses FIFOs and
devices and bounds what it reads (:func:`altmarl.io.read_json`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from altmarl.io import read_json, sha256_bytes, sha256_file

#: ``format`` tag and version of ``summary.json``
SUMMARY_FORMAT = "altmarl.run_summary"
SUMMARY_VERSION = 1
#: ``format`` tag of ``config.json``
RUN_CONFIG_FORMAT = "altmarl.run_config"
#: ``format`` tag and version of a unit's ``result.json``
UNIT_FORMAT = "altmarl.unit_result"
UNIT_VERSION = 1

#: suffixes of a unit's policy files: ``.npz`` tabular policies, ``.pt`` neural policies
#: (generative games; ``torch.load(weights_only=True)`` files)
POLICY_SUFFIXES = (".npz", ".pt")


def unit_files(listed: Any = ()) -> tuple[str, ...]:
    """The files a finished unit holds (besides its manifest): ``result.json``, the two
    policies ``pi_g`` / ``pi_l`` each with the suffix of its kind (:data:`POLICY_SUFFIXES`:
    the one among ``listed``, e.g. the names a manifest records; ``.npz`` by default),
    ``history.csv``, ``steps.csv``, ``trajectory.csv``."""
    names = set(listed)
    out = ["result.json"]
    for stem in ("pi_g", "pi_l"):
        have = [stem + suf for suf in POLICY_SUFFIXES if stem + suf in names]
        out.append(have[0] if len(have) == 1 else stem + POLICY_SUFFIXES[0])
    return (*out, "history.csv", "steps.csv", "trajectory.csv")


#: files of a finished tabular unit directory (besides its manifest)
UNIT_FILES = unit_files()

#: the unit's manifest: SHA-256 digest and size of every file of :data:`UNIT_FILES`,
#: written last into the unit's temporary directory
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "altmarl.unit_manifest"
MANIFEST_VERSION = 1

#: the run directory's lock file (:class:`altmarl.locking.DirectoryLock`), held by the one
#: driver writing the directory; it names the holder (pid, host, start time)
LOCK_FILE = "driver.lock"

#: a unit directory name (:func:`unit_name`)
UNIT_NAME_RE = re.compile(r"k(\d{4,})_t(\d{2,})")


def unit_name(k: int, t: int) -> str:
    """Directory name of unit ``(k, t)``: ``k0005_t00``."""
    return f"k{k:04d}_t{t:02d}"


def units_dir(run_dir: str | os.PathLike[str]) -> Path:
    """``RUN_DIR/units``: one sub-directory per finished unit (:func:`unit_name`)."""
    return Path(run_dir) / "units"


def read_run_record(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` record of a run directory (``"config"`` holds the resolved
    configuration: every default filled in, ``sweep.k`` the sorted list of ``k``).

    A ``ValueError`` names the file when it is missing, not JSON, or not a run record.
    """
    p = Path(run_dir) / "config.json"
    if not p.is_file():
        raise ValueError(f"{run_dir}: not an altmarl run directory (no config.json)")
    rec = read_json(p, "run configuration record")
    if rec.get("format") != RUN_CONFIG_FORMAT or not isinstance(rec.get("config"), dict):
        raise ValueError(f"{p}: not an altmarl run configuration record (format "
                         f"{rec.get('format')!r})")
    return rec  # type: ignore[no-any-return]


def read_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``summary.json`` of a run directory (checks the format tag)."""
    p = Path(run_dir) / "summary.json"
    if not p.is_file():
        raise ValueError(f"{run_dir}: no summary.json (not a run directory, or no unit has "
                         "finished yet)")
    d = read_json(p, "run summary")
    if d.get("format") != SUMMARY_FORMAT:
        raise ValueError(f"{p}: not an altmarl run summary")
    return d  # type: ignore[no-any-return]


def check_unit_name(name: Any) -> str:
    """``name`` if it is a unit directory name (``k0005_t00``), else a ``ValueError``: unit
    names come from workers and become paths, so nothing else may pass."""
    if not isinstance(name, str) or UNIT_NAME_RE.fullmatch(name) is None:
        raise ValueError(f"unit name {name!r}: expected the form k0005_t00")
    return name


def unit_manifest(name: str, files: Mapping[str, bytes]) -> dict[str, Any]:
    """The manifest of a unit: for each file, its SHA-256 digest and size in bytes."""
    return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "name": name,
            "files": {fname: {"sha256": sha256_bytes(data), "bytes": len(data)}
                      for fname, data in sorted(files.items())}}


#: per unit directory and fingerprint: the file signatures (inode, size, mtime) at its last
#: successful check and the parsed result, so aggregating after every unit does not re-hash
#: every finished unit
_VERIFIED: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}


def _signature(udir: Path, names: list[str]) -> tuple[Any, ...] | None:
    sig: list[Any] = []
    for fname in names:
        try:
            st = os.stat(udir / fname)
        except OSError:
            return None
        sig.append((fname, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(sig)


def check_unit(run_dir: str | os.PathLike[str], name: str,
               fingerprint: str | None = None) -> str | None:
    """``None`` when unit ``name`` of the run directory is finished and intact, else what is
    wrong, naming the file (``"units/k0002_t00/pi_g.npz: truncated (812 of 1960 bytes)"``).

    Intact means: the manifest is readable; every file of :func:`unit_files` (the policies
    with the suffix the manifest records) is a regular
    file with the size and SHA-256 digest the manifest recorded when the unit was written;
    ``result.json`` is a unit result (:func:`read_unit`) of this unit and, when
    ``fingerprint`` is given, of that configuration.
    """
    return verify_unit(run_dir, name, fingerprint)[0]


def verify_unit(run_dir: str | os.PathLike[str], name: str, fingerprint: str | None = None
                ) -> tuple[str | None, dict[str, Any] | None]:
    """``(problem, result)``: :func:`check_unit`'s answer and, for an intact unit, its
    parsed ``result.json``."""
    udir = units_dir(run_dir) / name
    rel = f"units/{name}"
    if not udir.is_dir():
        return f"{rel}: missing", None
    try:
        present = unit_files(os.listdir(udir))
    except OSError:
        present = UNIT_FILES
    sig = _signature(udir, [*present, MANIFEST])
    key = f"{os.path.abspath(udir)}|{fingerprint}"
    cached = _VERIFIED.get(key)
    if sig is not None and cached is not None and cached[0] == sig:
        return None, cached[1]
    _VERIFIED.pop(key, None)
    try:
        man = read_json(udir / MANIFEST, "unit manifest", 2**20)
    except FileNotFoundError:
        return f"{rel}/{MANIFEST}: missing", None
    except ValueError as exc:
        return f"{rel}/{MANIFEST}: {_after_path(exc, udir / MANIFEST)}", None
    entries = man.get("files")
    if (man.get("format") != MANIFEST_FORMAT or man.get("version") != MANIFEST_VERSION
            or man.get("name") != name or not isinstance(entries, dict)):
        return f"{rel}/{MANIFEST}: not the manifest of unit {name}", None
    for fname in unit_files(entries):
        ent = entries.get(fname)
        if (not isinstance(ent, dict) or not isinstance(ent.get("sha256"), str)
                or not _is_size(ent.get("bytes"))):
            return f"{rel}/{MANIFEST}: no valid entry for {fname}", None
        try:
            digest, size = sha256_file(udir / fname, "unit file")
        except FileNotFoundError:
            return f"{rel}/{fname}: missing", None
        except (ValueError, OSError) as exc:
            return f"{rel}/{fname}: {_after_path(exc, udir / fname)}", None
        if size != ent["bytes"]:
            how = "truncated" if size < ent["bytes"] else "grown"
            return f"{rel}/{fname}: {how} ({size} of {ent['bytes']} bytes)", None
        if digest != ent["sha256"]:
            return f"{rel}/{fname}: content changed since it was written (SHA-256 mismatch)", None
    try:
        res = read_unit(udir)
    except (ValueError, OSError) as exc:
        return f"{rel}/result.json: {_after_path(exc, udir / 'result.json')}", None
    m = UNIT_NAME_RE.fullmatch(name)
    if m is None or res["name"] != name or res["k"] != int(m.group(1)) or (
            res["train_index"] != int(m.group(2))):
        return f"{rel}/result.json: holds unit {res['name']!r}, not {name}", None
    if fingerprint is not None and res["config_fingerprint"] != fingerprint:
        return (f"{rel}/result.json: computed for another configuration (fingerprint "
                f"{res['config_fingerprint']!r}, expected {fingerprint!r})"), None
    if sig is not None and present == unit_files(entries) and sig == _signature(
            udir, [*present, MANIFEST]):
        _VERIFIED[key] = (sig, res)
    return None, res


def _is_size(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63


def _after_path(exc: BaseException, path: Path) -> str:
    """An error message without its leading ``"<path>: "`` (the caller names the file)."""
    msg = str(exc)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def is_finished(run_dir: str | os.PathLike[str], name: str,
                fingerprint: str | None = None) -> bool:
    """A unit is finished when its directory is intact (:func:`check_unit`)."""
    return check_unit(run_dir, name, fingerprint) is None


@dataclass
class UnitScan:
    """The units of a run directory: intact ``results`` (parsed ``result.json``, sorted by
    ``(k, train_index)``), ``damaged`` units (name -> what is wrong) and ``unexpected``
    entries of ``units/`` that are not unit directories."""

    results: list[dict[str, Any]]
    damaged: dict[str, str]
    unexpected: list[str]


def scan_units(run_dir: str | os.PathLike[str], fingerprint: str | None = None) -> UnitScan:
    """Check every unit directory of a run (:func:`check_unit`); one damaged unit never
    hides the others."""
    udir = units_dir(run_dir)
    results: list[dict[str, Any]] = []
    damaged: dict[str, str] = {}
    unexpected: list[str] = []
    if udir.is_dir():
        for p in sorted(udir.iterdir()):
            if p.name.startswith("."):
                continue
            if UNIT_NAME_RE.fullmatch(p.name) is None or not p.is_dir():
                unexpected.append(p.name)
                continue
            problem, res = verify_unit(run_dir, p.name, fingerprint)
            if res is not None:
                results.append(res)
            else:
                damaged[p.name] = problem or f"units/{p.name}: damaged"
    results.sort(key=lambda r: (r["k"], r["train_index"]))
    return UnitScan(results, damaged, unexpected)


def read_unit(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and check a unit's ``result.json``: its format tag and every entry the
    aggregation reads (``ValueError`` naming the file and the entry)."""
    p = Path(path) / "result.json"
    d = read_json(p, "unit result")
    if d.get("format") != UNIT_FORMAT or d.get("version") != UNIT_VERSION:
        raise ValueError(f"{p}: not an altmarl unit result (format {d.get('format')!r}, "
                         f"version {d.get('version')!r})")
    _check_result(d, str(p))
    return d


def _check_result(d: dict[str, Any], where: str) -> None:
    def bad(key: str, expected: str) -> ValueError:
        return ValueError(f"{where}: {key}: expected {expected}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any, finite: bool = False) -> bool:
        return (isinstance(v, int | float) and not isinstance(v, bool)
                and (not finite or math.isfinite(v)))

    if not isinstance(d.get("name"), str):
        raise bad("name", "a unit name")
    for key, top in (("k", 2**63), ("train_index", 2**63), ("train_seed", 2**64)):
        if not is_int(d.get(key)) or not 0 <= d[key] < top:
            raise bad(key, f"an integer in [0, 2**{top.bit_length() - 1})")
    if not isinstance(d.get("config_fingerprint"), str):
        raise bad("config_fingerprint", "a string")
    train = d.get("train")
    if not isinstance(train, dict):
        raise bad("train", "an object")
    if train.get("value") is not None and not is_num(train["value"]):
        raise bad("train.value", "a number or null")
    timing = d.get("timing")
    if not isinstance(timing, dict):
        raise bad("timing", "an object")
    for key in ("train_wall_s", "train_cpu_s"):
        if not is_num(timing.get(key), finite=True):
            raise bad(f"timing.{key}", "a finite number")
    ev = d.get("eval")
    if not isinstance(ev, dict):
        raise bad("eval", "an object")
    lists: dict[str, list[Any]] = {}
    for key in ("seeds", "means", "stderrs", "mode_match_rates"):
        val = ev.get(key)
        if not isinstance(val, list) or not val:
            raise bad(f"eval.{key}", "a non-empty list")
        lists[key] = val
    if len({len(v) for v in lists.values()}) != 1:
        raise bad("eval", "seeds, means, stderrs and mode_match_rates of one length")
    if not all(is_int(x) and 0 <= x < 2**64 for x in lists["seeds"]):
        raise bad("eval.seeds", "integers in [0, 2**64)")
    if not all(is_num(x) for x in lists["means"] + lists["stderrs"]):
        raise bad("eval.means/stderrs", "numbers")
    if not all(x is None or is_num(x) for x in lists["mode_match_rates"]):
        raise bad("eval.mode_match_rates", "numbers or null")
    cert = d.get("nash_gap")
    if cert is not None:  # absent in units written before the certificate existed
        if not isinstance(cert, dict):
            raise bad("nash_gap", "an object or null")
        if not is_num(cert.get("nash_gap")) or not isinstance(cert.get("exact"), bool):
            raise bad("nash_gap", "an object with a number nash_gap and a boolean exact")


#: the kinds of run directory the command line writes, and the command that draws each one's
#: figures (``altmarl plot`` draws them all)
RUN_DIR_KINDS: dict[str, str] = {
    "run": "altmarl run / sweep / reproduce",
    "continuous-sweep": "altmarl continuous sweep",
    "continuous-run": "altmarl continuous run",
    "federated": "altmarl federated run",
    "theory": "altmarl theory",
    "tune": "altmarl tune",
    "unit": "altmarl run / sweep / reproduce (one unit of a run)",
}


def run_dir_kind(run_dir: str | os.PathLike[str]) -> str:
    """Which command wrote ``run_dir``: a key of :data:`RUN_DIR_KINDS`, read from its
    ``config.json`` / ``summary.json`` / ``result.json`` tags (nothing is parsed beyond
    the top level). A ``ValueError`` says what the directory is not."""
    rd = Path(run_dir)
    if not rd.is_dir():
        raise ValueError(f"{rd}: no such directory")

    def top(name: str) -> dict[str, Any]:
        p = rd / name
        if not p.is_file():
            return {}
        try:
            obj = read_json(p, name)
        except (ValueError, OSError):
            return {}
        return obj if isinstance(obj, dict) else {}

    cfg, summary = top("config.json"), top("summary.json")
    fmt = str(cfg.get("format") or summary.get("format") or "")
    if fmt == RUN_CONFIG_FORMAT or summary.get("format") == SUMMARY_FORMAT:
        return "run"
    if fmt.startswith("altmarl-continuous-sweep"):
        return "continuous-sweep"
    if ("methods" in summary and "estimation" in summary) \
            or summary.get("experiment") == "federated-drift":
        return "federated"
    if summary.get("experiment") == "theory" or ("gap_games" in cfg and "table_ds" in cfg):
        return "theory"
    result = str(top("result.json").get("format", ""))
    if result.startswith("altmarl-continuous"):
        return "continuous-run"
    if result == UNIT_FORMAT:
        return "unit"
    if str(top("tuning.json").get("format", "")).startswith("altmarl-tuning"):
        return "tune"
    if (rd / "config.toml").is_file():
        return "run"  # a tabular run whose config.json is damaged: the run code repairs it
    raise ValueError(f"{rd}: not an altmarl run directory (no config.json, summary.json, "
                     "result.json or tuning.json written by altmarl)")


__all__ = [
    "LOCK_FILE",
    "RUN_DIR_KINDS",
    "MANIFEST",
    "RUN_CONFIG_FORMAT",
    "SUMMARY_FORMAT",
    "SUMMARY_VERSION",
    "POLICY_SUFFIXES",
    "UNIT_FILES",
    "UNIT_FORMAT",
    "UNIT_VERSION",
    "UnitScan",
    "check_unit",
    "check_unit_name",
    "is_finished",
    "read_run_record",
    "read_summary",
    "read_unit",
    "run_dir_kind",
    "scan_units",
    "unit_manifest",
    "unit_files",
    "unit_name",
    "units_dir",
    "verify_unit",
]
