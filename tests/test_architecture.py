"""The layout keeps its promises (issue 14): no private name imported across modules, no
import circles between altmarl modules, no module named like a public function, and one
importer of ``rich.progress``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import altmarl as am

SRC = Path(am.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        rel = p.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports executed at import time (module level, outside ``if TYPE_CHECKING``)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
    visit(tree.body)
    return found


def _resolve(mod: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")
    is_pkg = MODULES[mod].name == "__init__.py"
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _resolve(mod, node)
                # ``from pkg import submodule`` needs only the submodule; any other name
                # needs the module ``base`` itself
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
                targets = subs + ([base] if len(subs) < len(node.names) else [])
            for t in targets:
                if t in MODULES and t != mod:
                    edges[mod].add(t)
    return edges


def test_no_private_names_imported_across_modules() -> None:
    bad = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(mod, node)
                if not base.startswith("altmarl"):
                    continue
                for a in node.names:
                    if f"{base}.{a.name}" in MODULES:
                        continue  # a module (e.g. the foundation's altmarl._random)
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{mod}: from {base} import {a.name}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_no_import_circles() -> None:
    edges = _edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    assert not sccs, "import circles (module-level imports):\n" + "\n".join(map(str, sccs))


@pytest.mark.parametrize("pkg", ["altmarl", "altmarl.envs"])
def test_no_module_shadowed_by_a_public_function(pkg: str) -> None:
    import importlib

    package = importlib.import_module(pkg)
    for mod in MODULES:
        if mod.rsplit(".", 1)[0] == pkg and "." in mod:
            name = mod.rsplit(".", 1)[1]
            obj = getattr(package, name, None)
            assert obj is None or isinstance(obj, type(package)), (
                f"{pkg}.{name} is a {type(obj).__name__}, hiding the module {mod}")


def test_only_progress_imports_rich_progress() -> None:
    users = [m for m, p in MODULES.items() if "rich.progress" in p.read_text()
             and m != "altmarl.progress"]
    assert not users, f"rich.progress used outside altmarl.progress: {users}"
