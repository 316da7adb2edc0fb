"""The example notebook examples/quickstart.ipynb runs from top to bottom in a fresh
kernel (nbclient + ipykernel) and shows what it promises: HTML tables of the game, the
policies and the results, the comparison printed, and a figure."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "examples/quickstart.ipynb is stored with outputs; clear them")
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    titles = ("TabularGame", "AlternatingResult", "GlobalPolicy pi_g", "LocalPolicy pi_l",
              "Evaluation", "Nash-gap certificate")
    for title in titles:
        assert any(f"<strong>{title}</strong>" in h for h in html), title
    printed = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert "learned" in printed and "sample-mode dispatcher" in printed
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure"
    assert not list(tmp_path.iterdir()), "the notebook wrote files into its directory"
