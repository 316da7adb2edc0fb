"""Griffe extension for the documentation site: the docstrings' Sphinx roles
(:class:`~altmarl.x.Y`, :func:`f`, :mod:`.sub`, ...) become cross-references.

A role whose target is documented on an API page (docs/api/*.md) becomes a link; any other
target (a private helper, a module without a page) becomes plain code, so a link in the
site never points nowhere and ``mkdocs build --strict`` fails only on real breakage.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|attr|data|exc|obj|const):`([^`]+)`")
API = Path(__file__).resolve().parents[1] / "api"


def documented_modules() -> set[str]:
    """The modules rendered by a ``::: module`` line of an API page."""
    found: set[str] = set()
    for page in API.glob("*.md"):
        found.update(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M))
    return found


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the package once it is loaded."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.modules = documented_modules()

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        self.loader = loader
        self.walk(pkg)

    def walk(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda m: self.rewrite(obj, m), obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self.walk(member)  # type: ignore[arg-type]

    def rewrite(self, scope: griffe.Object, m: re.Match[str]) -> str:
        text = m.group(2).strip()
        if "<" in text and text.endswith(">"):  # :func:`title <target>`
            title, target = text[:-1].split("<", 1)
            title, target = title.strip(), target.strip()
        else:
            short = text.startswith("~")
            target = text.lstrip("~")
            title = target.lstrip(".").rsplit(".", 1)[-1] if short else target.lstrip(".")
        if m.group(1) in ("func", "meth"):
            title = title if title.endswith(")") else title + "()"
        path = self.resolve(scope, target.rstrip("()"))
        return f"[`{title}`][{path}]" if path else f"`{title}`"

    def resolve(self, scope: griffe.Object, target: str) -> str | None:
        """The canonical path of ``target`` seen from ``scope`` if the site renders it."""
        module = scope if scope.is_module else scope.module
        candidates = []
        if target.startswith("."):
            base = module if module.is_package else module.parent
            candidates.append(f"{base.path}{target}" if base else target)
        else:
            candidates.append(target)
            head, _, rest = target.partition(".")
            for where in (scope, *(p for p in self.parents(scope))):
                try:
                    resolved = where.resolve(head)
                except Exception:  # noqa: BLE001 - griffe raises NameResolutionError and others
                    continue
                candidates.append(f"{resolved}.{rest}" if rest else resolved)
                break
            candidates.append(f"{module.path}.{target}")
        for cand in candidates:
            obj = self.lookup(cand)
            if obj is not None and self.rendered(obj):
                return obj.path
        return None

    @staticmethod
    def parents(obj: griffe.Object) -> list[griffe.Object]:
        out = []
        while obj.parent is not None:
            obj = obj.parent
            out.append(obj)
        return out

    def lookup(self, path: str) -> griffe.Object | None:
        try:
            obj = self.loader.modules_collection[path]
        except Exception:  # noqa: BLE001 - KeyError, AliasResolutionError, ...
            return None
        try:
            while obj.is_alias:
                obj = obj.final_target
        except Exception:  # noqa: BLE001
            return None
        return obj  # type: ignore[no-any-return]

    def rendered(self, obj: griffe.Object) -> bool:
        """Whether an API page shows ``obj`` (with a heading, hence an anchor)."""
        chain = [obj, *self.parents(obj)]
        for i, o in enumerate(chain):
            if o.is_module:
                if o.path not in self.modules:
                    return False
                # the objects between the module and ``obj`` are public and documented
                return all(not c.name.startswith("_") and c.docstring is not None
                           for c in chain[:i])
        return False
