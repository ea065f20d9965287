"""Every row of docs/errors.md holds: the input prints exactly the line shown, with the exit
status shown (the CLI) or raises (the library)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hpolab
import hpolab.data

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "errors.md"
ROW = re.compile(r"^\| `(?P<input>[^`]+)` \| `(?P<prints>[^`]+)` \| (?P<status>[^|]+) \|$")


def rows(section: str) -> list[tuple[str, str, str]]:
    text = PAGE.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = [ROW.match(line) for line in text.splitlines()]
    return [(m["input"], m["prints"], m["status"].strip()) for m in found if m]


def same_line(printed: str, shown: str) -> bool:
    return printed.startswith(shown[:-1]) if shown.endswith("…") else printed == shown


def test_the_page_has_a_row_per_kind_of_bad_input():
    inputs = " ".join(i for i, _, _ in rows("The command line") + rows("The library"))
    for kind in ("seeds", "p_values", "device", "q ", "mu", "W ", "methods", "HPOLAB_DATA", "run 99"):
        assert kind in inputs


CLI = rows("The command line")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the device row is written for a machine without a GPU")
@pytest.mark.parametrize("line, shown, status", CLI, ids=[i for i, _, _ in CLI])
def test_the_command_line_prints_the_line_shown(line, shown, status, tmp_path):
    words = shlex.split(line)
    env = {**os.environ, "HPOLAB_PROGRESS": ""}
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    assert words[0] == "hpolab"
    script = Path(sys.executable).with_name("hpolab")  # the installed command, as a user types it
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hpolab.cli"]
    done = subprocess.run(command + words[1:], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    printed = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == int(status)
    assert len(printed) == 1, printed
    assert same_line(printed[0], shown)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ipynb"))


LIBRARY = rows("The library")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the device row is written for a machine without a GPU")
@pytest.mark.parametrize("expression, shown, status", LIBRARY, ids=[e for e, _, _ in LIBRARY])
def test_the_library_raises_the_line_shown(expression, shown, status):
    assert status == "raises"
    with pytest.raises(Exception) as error:
        eval(expression, {"hpolab": hpolab})
    assert isinstance(error.value, (ValueError, FileNotFoundError))
    assert same_line(f"{type(error.value).__name__}: {str(error.value).splitlines()[0]}", shown)
