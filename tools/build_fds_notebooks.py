"""Write the FDS notebooks (08 to 11) clean, without outputs, from the texts in tools/fds_notebooks/.

Each notebook's cells live in ``tools/fds_notebooks/NN_name.py`` as module-level strings
(INTRO, PARAMETERS, RUN, ...), so that they can be reviewed as diffs. After changing one,
rebuild it and refresh the smoke reference that nbval compares:

    python tools/build_fds_notebooks.py 08 && python tools/refresh_references.py 08_fds_hypergradient_noise
"""

import importlib.util
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
TEXTS = Path(__file__).resolve().parent / "fds_notebooks"

# (attribute, kind, nbval tag): the walking-skeleton layout every study notebook follows
LAYOUT = [
    ("INTRO", "markdown", None),
    ("PARAMETERS", "code", "parameters"),
    ("IMPORTS", "code", None),
    ("RUN_TEXT", "markdown", None),
    ("RUN", "code", "nbval-ignore-output"),
    ("SUMMARY_TEXT", "markdown", None),
    ("SUMMARY", "code", "nbval-check-output"),
    ("FIGURES_TEXT", "markdown", None),
    ("FIGURES", "code", "nbval-ignore-output"),
    ("LOOK", "markdown", None),
    ("PANEL_TEXT", "markdown", None),
    ("PANEL", "code", "nbval-ignore-output"),
    ("CLAIMS_TEXT", "markdown", None),
    ("CLAIMS", "code", "nbval-check-output"),
]


def load_texts(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(path: Path) -> nbformat.NotebookNode:
    texts = load_texts(path)
    cells = []
    for attribute, kind, tag in LAYOUT:
        text = getattr(texts, attribute, None)
        if text is None:
            continue
        metadata = {"tags": [tag]} if tag else {}
        cell = new_markdown_cell(text) if kind == "markdown" else new_code_cell(text, metadata=metadata)
        cell["id"] = f"{path.stem[:2]}-{attribute.lower().replace('_', '-')}"
        cells.append(cell)
    return new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })


if __name__ == "__main__":
    wanted = sys.argv[1:]
    for path in sorted(TEXTS.glob("[0-9][0-9]_*.py")):
        if wanted and not any(path.stem.startswith(w) for w in wanted):
            continue
        target = ROOT / "notebooks" / f"{path.stem}.ipynb"
        nbformat.write(build(path), target)
        print(f"wrote {target.relative_to(ROOT)}")
