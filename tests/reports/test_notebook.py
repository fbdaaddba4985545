"""notebooks/analysis.ipynb runs top to bottom against a run store and is kept clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_does_not_copy_the_loading_logic() -> None:
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert "read_parquet" not in text and "read_json" not in text and "json.loads" not in text
    assert "from reports.load import" in text and "from experiments.analysis import" in text


@pytest.mark.slow
def test_notebook_executes_against_a_run(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_DIR", str(run_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"run {run_dir.name}: 5 scenarios" in text
    assert "VERDICT GO" in text
    assert "ws_drop: ws_drop 200.0-260.0 s" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # four run figures + the fault timeline
