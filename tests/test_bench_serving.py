"""Smoke tests of the serving benches at their smallest settings, so they cannot rot (no ../shared needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "bench" / script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_log_append_smallest(tmp_path):
    out = tmp_path / "la.json"
    args = ["--sizes", "10", "2000", "--appends", "5", "--baseline-sizes", "10", "--baseline-appends", "1"]
    proc = run("log_append.py", *args, "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["current"]) == {"10", "2000"} and result["ratio_largest_to_smallest"] > 0
    assert "median ms" in proc.stdout
    assert run("log_append.py", "--appends", "1").returncode == 2  # bad input: one line, exit 2


def test_server_load_smallest(tmp_path, tiny_model):
    out = tmp_path / "sl.json"
    args = ["--base-model", str(tiny_model), "--requests", "12", "--concurrency", "3", "--max-queue", "2"]
    proc = run("server_load.py", *args, "--max-new-tokens", "8", "--output", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    checks = result["checks"]
    assert checks["passed"] and checks["answered"] == 12 and checks["server_exit_code"] == 0
    assert result["log_entries"] == 12 and "p95" in result["latency_s"]["all"]
