"""bench/retrieval_quality.py: runs on a built data directory, reports both systems per variant, exits 2 on
a missing one."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_retrieval_quality_reports_rules_and_plain_bm25_per_variant(tiny_data, tmp_path):
    out = tmp_path / "q.json"
    proc = subprocess.run(
        [sys.executable, "bench/retrieval_quality.py", "--data-dir", str(tiny_data), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result) >= {"rules", "plain_bm25", "evidence_rule", "records"}
    assert result["records"] > 0 and "exact" in result["rules"] and "exact" in result["plain_bm25"]
    exact = result["rules"]["exact"]
    assert 0 <= exact["recall@4"] <= 1 and exact["count"] == round(exact["recall@4"] * exact["n"])


def test_retrieval_quality_exits_2_without_data(tmp_path):
    proc = subprocess.run(
        [sys.executable, "bench/retrieval_quality.py", "--data-dir", str(tmp_path / "none")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not found" in proc.stderr


def test_consumer_set_is_measured_on_bm25_alone_without_the_encoder(tiny_data, tmp_path):
    out = tmp_path / "q.json"
    proc = subprocess.run(
        [sys.executable, "bench/retrieval_quality.py", "--data-dir", str(tiny_data), "--consumer", "test",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["encoder"].startswith("absent") and isinstance(result["chest_pain_example"], list)
    consumer = result["consumer"]
    assert set(consumer) >= {"plain_bm25", "rules_bm25_alone"} and "hybrid" not in consumer
    plain, rules = consumer["plain_bm25"]["no_answer"], consumer["rules_bm25_alone"]["no_answer"]
    assert plain["n"] == rules["n"] == 24 and rules["false_grounding"] <= plain["false_grounding"]
    assert consumer["rules_bm25_alone"]["answerable"]["n"] == 62


def test_hybrid_speed_exits_2_without_encoder_or_vectors(tiny_data, tmp_path):
    proc = subprocess.run(
        [sys.executable, "bench/hybrid_speed.py", "--data-dir", str(tiny_data), "--encoder", str(tmp_path / "no")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "no encoder" in proc.stderr.strip().splitlines()[-1]
