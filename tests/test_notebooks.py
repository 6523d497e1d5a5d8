"""The notebooks in ``notebooks/``: committed without outputs, and each one runs top to bottom on tiny data.

Each notebook reads its size from ``ASTROFM_NOTEBOOK_SIZE`` (set to ``tiny`` here), finds the simulated
universe under ``$ASTROFM_DATA/sim/<size>`` (here: the session's shared ``tiny`` universe) and writes
everything under ``$ASTROFM_NOTEBOOK_ROOT`` (here: the test's temporary folder). They run in a fresh
Jupyter kernel through nbclient, one test per notebook, so ``pytest -n 2`` spreads them over the workers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Seconds one cell may take before the notebook fails (tiny runs take well under a minute in all).
CELL_TIMEOUT = 300


def test_the_six_notebooks_are_there() -> None:
    assert [p.name[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-", "06-"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them before committing"
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    size_cells = [cell.source for cell in notebook.cells if 'os.environ.get("ASTROFM_NOTEBOOK_SIZE"' in cell.source]
    assert len(size_cells) == 1, f"{path.name}: the data size is read from ASTROFM_NOTEBOOK_SIZE in one place"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_tiny_data(path: Path, tiny_sim: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    data = tmp_path / "data"
    (data / "sim").mkdir(parents=True)
    (data / "sim" / "tiny").symlink_to(tiny_sim, target_is_directory=True)
    out = tmp_path / "out"
    # the kernel inherits this environment
    monkeypatch.setenv("ASTROFM_NOTEBOOK_SIZE", "tiny")
    monkeypatch.setenv("ASTROFM_NOTEBOOK_ROOT", str(out))
    monkeypatch.setenv("ASTROFM_DATA", str(data))
    monkeypatch.setenv("ASTROFM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one core per xdist worker
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    before = sorted(p.name for p in NOTEBOOK_DIR.iterdir())

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, startup_timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError with the failing cell and its traceback

    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written, "the notebook writes its results under ASTROFM_NOTEBOOK_ROOT"
    assert sorted(p.name for p in NOTEBOOK_DIR.iterdir()) == before, "the notebook wrote into the repository"
