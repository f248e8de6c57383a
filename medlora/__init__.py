"""medlora: LoRA fine-tuning of TinyLlama on MedQuAD and structured treatment recommendations."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path


def _read_version() -> str:
    # pyproject.toml is the one place the version is written. A checkout (how the stage scripts run) reads it
    # directly, so an older installed copy's metadata cannot disagree; an installed package reads its metadata.
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = pyproject.read_text(encoding="utf-8").split("[project]", 1)[-1].split("\n[", 1)[0]
        if m := re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE):
            return m.group(1)
    try:
        return importlib.metadata.version("medlora")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _read_version()
