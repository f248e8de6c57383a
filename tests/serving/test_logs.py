"""medlora/serving/logs.py: the log read across rotated and moved-aside files, its summary, and the patient-id key."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os

import pytest

from medlora.common.cli import UsageError, run_stage
from medlora.common.files import append_json_log
from medlora.serving.logs import (
    IdHasher,
    LogsConfig,
    hash_id,
    id_key,
    key_path,
    log_files,
    main,
    percentile,
    read_log,
    summarize,
)


def entry(i: int, outcome: str = "ok", **fields) -> dict:
    return {
        "timestamp": f"2026-11-29T10:00:{i:02d}.000+00:00",
        "request_id": f"r{i}",
        "outcome": outcome,
        **fields,
    }


@pytest.fixture
def log(tmp_path):
    """A log over three files, rotated by size, plus a file moved aside as corrupt holding two complete lines."""
    path = tmp_path / "inference_log.json"
    (tmp_path / "inference_log.json.corrupt-20261129-000000-1").write_text(
        '[\n{"request_id":"old0","outcome":"ok","latency_s":9.0},\n{"request_id":"old1","outcome":"error"},\n{"requ'
    )
    for i in range(10):
        fields = {"latency_s": float(i + 1), "red_flags": ["low_spo2"] * (i % 3 == 0), "source": "http"}
        append_json_log(path, entry(i, **fields), max_bytes=400)
    append_json_log(path, entry(10, "invalid_input", invalid_fields=["age"], source="http"), max_bytes=400)
    append_json_log(path, entry(11, "timeout", source="http"), max_bytes=400)
    return path


def test_every_file_is_read_oldest_first_and_a_corrupt_one_yields_its_complete_lines(log):
    files = log_files(log)
    assert ".corrupt-" in files[0].name and files[1].name == "inference_log.1.json" and files[-1] == log
    ids = [e["request_id"] for e in read_log(log)]
    assert ids == ["old0", "old1"] + [f"r{i}" for i in range(12)]
    assert [e["request_id"] for e in read_log(log, include_aside=False)][0] == "r0"


def test_summary_counts_outcomes_latency_and_red_flags(log):
    s = summarize(log, include_aside=False)
    assert s["requests"] == 12 and s["unreadable_lines"] == 0
    assert s["outcomes"] == {"ok": 10, "invalid_input": 1, "timeout": 1}
    assert s["latency_s"]["n"] == 10 and s["latency_s"]["p50"] == pytest.approx(5.5)
    assert s["latency_s"]["p95"] == pytest.approx(9.55)
    assert s["red_flags"] == {"low_spo2": 4} and s["requests_with_red_flags"] == 4
    with_aside = summarize(log)
    assert with_aside["requests"] == 14 and with_aside["unreadable_lines"] == 1
    assert summarize(log, since="2026-11-29T10:00:10")["outcomes"] == {"invalid_input": 1, "timeout": 1}


def test_percentile_edges():
    assert percentile([], 50) is None and percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_the_command_line_prints_a_summary_and_refuses_a_missing_log(log, tmp_path, capsys):
    assert run_stage(main, LogsConfig, argv=["--log-file", str(log)]) == 0
    out = capsys.readouterr().out
    assert "requests: 14" in out and "low_spo2 4" in out and "timeout 1" in out
    assert run_stage(main, LogsConfig, argv=["--log-file", str(log), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcomes"]["timeout"] == 1
    assert run_stage(main, LogsConfig, argv=["--log-file", str(tmp_path / "none.json")]) == 2
    assert "no log at" in capsys.readouterr().err


def test_the_id_key_is_created_once_private_and_hashes_are_keyed(tmp_path):
    log = tmp_path / "logs" / "inference_log.json"
    key = id_key(log)
    assert key_path(log).stat().st_mode & 0o777 == 0o600 and len(key) == 64
    assert id_key(log) == key
    digest = hash_id("MRN-42", key)
    assert digest == IdHasher(log)("MRN-42") and digest != hashlib.sha256(b"MRN-42").hexdigest()
    assert hash_id("MRN-42", id_key(tmp_path / "other.json")) != digest  # another log, another key
    assert IdHasher(log)(None) is None and IdHasher(tmp_path / "lazy.json")("") is None
    assert not key_path(tmp_path / "lazy.json").exists()  # no id, no key file
    assert [p.name for p in key_path(log).parent.iterdir()] == ["inference_log.json.key"]  # no temp file left


def _key(path: str) -> bytes:
    return id_key(path)


def test_processes_creating_the_key_at_once_agree_on_it(tmp_path):
    log = str(tmp_path / "inference_log.json")
    with mp.get_context("spawn").Pool(4) as pool:
        keys = pool.map(_key, [log] * 8)
    assert len(set(keys)) == 1


def test_a_damaged_key_is_a_usage_error(tmp_path):
    log = tmp_path / "inference_log.json"
    key_path(log).write_text("short\n")
    os.chmod(key_path(log), 0o600)
    with pytest.raises(UsageError, match="too short"):
        id_key(log)
