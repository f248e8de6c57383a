"""bench/eval_flow.py at its smallest: it runs both checkouts and says whether their figures agree (here one
checkout against itself, so they must), and bad input is one line and exit 2. Not a timed test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "bench" / "eval_flow.py"


def test_eval_flow_smallest(tmp_path: Path, tiny_data: Path):
    out = tmp_path / "eval_flow.json"
    cmd = [sys.executable, str(SCRIPT), "--old-tree", str(ROOT), "--data-dir", str(tiny_data), "--items", "2",
           "--repeats", "1", "--bootstrap", "10", "--model-rows", "1", "--output", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["same_figures"] is True and report["same_item_scores_on_stress_outputs"] is True
    assert report["items"] == 2
    assert len(report["seconds"]["old"]) == len(report["seconds"]["new"]) == 1


def test_eval_flow_bad_input_is_one_line_and_exit_2(tmp_path: Path):
    cmd = [sys.executable, str(SCRIPT), "--old-tree", str(tmp_path), "--output", str(tmp_path / "x.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--old-tree" in proc.stderr
