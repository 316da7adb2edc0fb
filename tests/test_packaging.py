"""Packaging: one version (pyproject.toml, read back through the installed metadata), a
changelog entry for it, dependency ranges (no exact pins but the CPU constraints file),
package data that the wheel carries. The wheel and sdist themselves are built and checked
in .ci/run (``python -m build``, ``twine check``, a fresh virtual environment)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import altmarl

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_comes_from_the_package_metadata() -> None:
    assert altmarl.__version__ == PYPROJECT["project"]["version"], (
        "altmarl.__version__ differs from pyproject.toml: reinstall the package "
        "(pip install -e .) after changing the version")


def test_changelog_has_the_version_and_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    heads = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert heads[0] == "Unreleased"
    assert PYPROJECT["project"]["version"] in heads


def requirement_name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    assert m, req
    return m.group(1).lower()


def test_dependencies_are_ranges() -> None:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("altmarl[")]
    pinned = [r for r in reqs if "==" in r or "===" in r]
    assert not pinned, f"exact pins in pyproject.toml: {pinned}; state ranges"
    assert all(re.search(r">=|~=|<", r) for r in reqs), [r for r in reqs if not re.search(r">=|~=|<", r)]


def test_cpu_constraints_pin_torch_within_the_declared_range() -> None:
    lines = [ln.strip() for ln in (ROOT / "constraints-cpu.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines == ["torch==2.13.0"]
    torch_reqs = [r for extra in PYPROJECT["project"]["optional-dependencies"].values()
                  for r in extra if requirement_name(r) == "torch"]
    assert torch_reqs and all(r == "torch>=2.3" for r in torch_reqs)


def test_package_data_covers_configs_and_py_typed() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["altmarl"]
    pkg = ROOT / "src" / "altmarl"
    files = {p.relative_to(pkg).as_posix() for p in pkg.rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc")
             and "__pycache__" not in p.parts}  # generated caches (bytecode, Numba)
    covered = {f for f in files if any(Path(f).match(g) for g in data)}
    assert "py.typed" in covered and "configs/warehouse.toml" in covered
    assert files == covered, f"files in src/altmarl the wheel would not carry: {files - covered}"
