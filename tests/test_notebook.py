"""examples/quickstart.ipynb, run top to bottom in a real Jupyter kernel: what a new user runs first."""

import json
import re
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_the_quickstart_notebook_runs_and_shows_its_results(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it: no spinning threads beside other tests
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:  # what it computes now, not what was saved
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on an error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4  # the a_g grid, curves, CKA, by depth
    tables = [o["data"]["text/plain"] for o in outputs if o.output_type == "execute_result"]
    assert all(layer in tables[0] for layer in ("layer1", "layer2", "layer3")) and "m_g_over_m_s" in tables[0]
    accuracy = json.loads(tables[2].replace("'", '"'))
    assert sorted(accuracy) == ["layer1", "layer2", "layer3"] and all(0 <= a <= 1 for a in accuracy.values())
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert re.search(r"150/150 \[[^]]*step/s, m_g=[0-9.e+-]+, m_g/m_s=", printed)  # progress in steps, with values
    noise = ("GPU available", "TPU available", "Tip:", "LeafSpec", "treespec", "IProgress", "ipywidgets",
             "Trainer.fit` stopped")
    assert not [word for word in noise if word in printed], printed  # no banner, tip or deprecation of theirs
    ratios = [float(x) for x in re.search(r"Inversion \[([^]]*)\]", printed).group(1).split(",")]
    assert len(ratios) == 3 and all(r < 1 for r in ratios)  # read back: every layer below the shift's m_s


def test_the_readme_opens_its_python_section_with_the_notebooks_first_lines():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first = next(cell.source for cell in notebook.cells if cell.cell_type == "code" and "rp.invert" in cell.source)
    readme = (NOTEBOOK.parents[1] / "README.md").read_text()
    assert f"## Python\n```python\n{first}\n```" in readme
