"""Check the built distributions in DIST (one wheel, one sdist): names and version from
pyproject.toml, the wheel carries py.typed, every packaged configuration and the `altmarl`
console script, and the sdist carries what a rebuild needs. Usage: python .ci/check_dist.py DIST"""

from __future__ import annotations

import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

root = Path(__file__).resolve().parents[1]
project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
version = project["version"]
dist = Path(sys.argv[1])
wheels = sorted(dist.glob("altmarl-*.whl"))
sdists = sorted(dist.glob("altmarl-*.tar.gz"))
assert len(wheels) == 1 and len(sdists) == 1, f"expected one wheel and one sdist in {dist}"
assert wheels[0].name.startswith(f"altmarl-{version}-py3-none-any"), wheels[0].name
assert sdists[0].name == f"altmarl-{version}.tar.gz", sdists[0].name

with zipfile.ZipFile(wheels[0]) as whl:
    names = set(whl.namelist())
    configs = {f"altmarl/configs/{p.name}" for p in (root / "src/altmarl/configs").glob("*.toml")}
    sources = {f"altmarl/{p.relative_to(root / 'src/altmarl').as_posix()}"
               for p in (root / "src/altmarl").rglob("*.py")}
    missing = sorted(({"altmarl/py.typed"} | configs | sources) - names)
    assert not missing, f"the wheel lacks {missing}"
    info = f"altmarl-{version}.dist-info"
    entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert "altmarl = altmarl.cli:app" in entry_points, entry_points
    meta = whl.read(f"{info}/METADATA").decode()
    assert f"Version: {version}\n" in meta
    pins = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:") and "==" in ln.split(";")[0]]
    assert not pins, f"exact pins in the wheel's requirements: {pins}"

with tarfile.open(sdists[0]) as sd:
    members = {m.name.split("/", 1)[1] for m in sd.getmembers() if "/" in m.name}
    need = {"pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "constraints-cpu.txt",
            "src/altmarl/py.typed", "src/altmarl/configs/warehouse.toml"}
    missing = sorted(need - members)
    assert not missing, f"the sdist lacks {missing}"

print(f"dist ok: {wheels[0].name} ({len(names)} files, {len(configs)} configurations), "
      f"{sdists[0].name} ({len(members)} files)")
