"""The documentation site (mkdocs.yml): every page of docs/ is in the navigation, every
navigation entry exists, and every API page documents modules that exist.

`mkdocs build --strict` itself (broken links, missing references) runs in .ci/run: it
takes about half a minute, too long for the fast suite.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import yaml  # PyYAML: installed with mkdocs by the docs extra (part of the test extra)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def nav_pages(entry: Any) -> list[str]:
    """Every page path named in a mkdocs ``nav`` entry (strings, lists, one-key dicts)."""
    if isinstance(entry, str):
        return [] if entry.startswith(("http://", "https://")) else [entry]
    if isinstance(entry, list):
        return [p for item in entry for p in nav_pages(item)]
    if isinstance(entry, dict):
        return [p for value in entry.values() for p in nav_pages(value)]
    raise TypeError(f"unexpected nav entry {entry!r}")


def load_config() -> dict[str, Any]:
    with open(ROOT / "mkdocs.yml", encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    assert isinstance(cfg, dict)
    return cfg


def test_nav_helper_flattens_sections() -> None:
    nav = ["index.md", {"A": "a.md"}, {"B": [{"C": "b/c.md"}, "b/d.md", {"X": "https://x"}]}]
    assert nav_pages(nav) == ["index.md", "a.md", "b/c.md", "b/d.md"]


def test_every_docs_page_is_in_the_nav() -> None:
    cfg = load_config()
    assert cfg.get("docs_dir", "docs") == "docs"
    listed = nav_pages(cfg["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    missing = [p for p in pages if p not in listed]
    assert not missing, (
        f"docs pages missing from the navigation: {missing}; add each to `nav` in mkdocs.yml "
        "(under the section it belongs to) so the site shows it")
    absent = [p for p in listed if not (DOCS / p).is_file()]
    assert not absent, f"mkdocs.yml nav names pages that do not exist: {absent}"
    assert len(listed) == len(set(listed)), "a page is listed twice in the nav"


def test_api_pages_name_existing_modules() -> None:
    targets: list[str] = []
    for page in sorted((DOCS / "api").glob("*.md")):
        targets += re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M)
    assert len(targets) >= 20
    unknown = [t for t in targets if importlib.util.find_spec(t) is None]
    assert not unknown, f"API pages document modules that do not exist: {unknown}"
    assert len(targets) == len(set(targets)), "a module is documented on two API pages"


def test_public_subpackages_have_an_api_page() -> None:
    """Each public subpackage of altmarl is documented (at least one of its modules)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: altmarl\.(\w+)", text, re.M))
    src = ROOT / "src" / "altmarl"
    packages = {p.parent.name for p in src.glob("*/__init__.py")} - {"cli"}
    missing = sorted(p for p in packages if not p.startswith("_") and p not in documented)
    assert not missing, f"subpackages without an API page: {missing} (add them under docs/api/)"
