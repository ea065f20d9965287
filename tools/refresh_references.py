"""Re-execute every notebook at smoke scale into tests/notebooks/, the outputs nbval compares.

Only the outputs of cells tagged ``nbval-check-output`` are kept: nbval runs with
``--nbval-lax`` and compares nothing else. Run after changing a notebook
(tests/test_notebooks.py fails until you do):

    python tools/refresh_references.py [NAME ...]
"""

import os
import sys
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]
# tests/conftest.py's REPRODUCIBLE_CPU (importing conftest would import torch before they apply)
REPRODUCIBLE_CPU = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                    "OMP_NUM_THREADS": "1"}


def refresh(names: list[str]) -> None:
    os.environ.update(REPRODUCIBLE_CPU)  # as tests/conftest.py runs the kernels: machine-independent sums
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for source in sources:
        if names and source.stem not in names:
            continue
        target = ROOT / "tests" / "notebooks" / source.name
        target.parent.mkdir(exist_ok=True)
        print(f"{source.name} -> {target.relative_to(ROOT)}")
        papermill.execute_notebook(str(source), str(target), parameters={"scale": "smoke"},
                                   kernel_name="python3", cwd=str(source.parent))
        keep_compared_outputs(target)


def keep_compared_outputs(path: Path) -> None:
    """Keep only what nbval compares (cells tagged nbval-check-output): small, diff-able."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "nbval-check-output" not in cell.metadata.get("tags", []):
            cell.outputs = []
    nbformat.write(notebook, path)


if __name__ == "__main__":
    refresh(sys.argv[1:])
