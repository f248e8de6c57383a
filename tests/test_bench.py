"""Smoke tests of the bench scripts at their smallest settings, so they cannot rot.

Each runs the script as a subprocess (as a user would), on TinyLlama's tokenizer and config from ../shared
(skipped with the reason when absent), and checks its table, its JSON and its refusal of missing inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, shared_path

BENCH = ROOT / "bench"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(script: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_train_throughput_smallest(tmp_path: Path, tiny_data: Path):
    shared_path("tinyllama", "config.json")
    shared_path("tinyllama", "tokenizer.model")
    out = tmp_path / "tt.json"
    args = [
        "--limit",
        "24",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--layers",
        "1",
        "--no-warmup",
        "--device",
        "cpu",
    ]
    # the fixture splits (built by the data stage in this session) stand in for data/medquad
    args += ["--data-dir", str(tiny_data), "--cache-dir", str(tmp_path / "cache")]
    proc = run("train_throughput.py", *args, "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| contender" in proc.stdout and "pad512" in proc.stdout
    result = json.loads(out.read_text())
    assert set(result["contenders"]) == {"project", "plain", "pad512"}
    runs = result["runs"]
    assert all(r["steps"] == 1 for r in runs)
    # Same examples for every contender: the same real tokens, only the padding differs.
    assert len({r["real_tokens"] for r in runs}) == 1
    assert result["contenders"]["pad512"]["slots"] == 1 * 4 * 512
    assert result["environment"]["torch_threads"] == 1


def test_inference_latency_smallest(tmp_path: Path):
    shared_path("tinyllama", "config.json")
    shared_path("tinyllama", "tokenizer.model")
    out = tmp_path / "il.json"
    args = ["--shape", "small", "--layers", "1", "--repeats", "1", "--decode-tokens", "3"]
    args += ["--constrained-tokens", "4", "--batch-records", "2", "--batch-tokens", "2", "--e2e-tokens", "8"]
    proc = run("inference_latency.py", *args, "--device", "cpu", "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "merged LoRA" in proc.stdout and "One recommendation end to end" in proc.stdout
    result = json.loads(out.read_text())
    assert {"adapters", "constrained_decoding", "batching", "precision", "end_to_end"} <= set(result)
    assert result["constrained_decoding"]["constrained"]["runs"][0]["new_tokens"] == 4
    assert result["end_to_end"]["generated_tokens"] <= 8
    assert [c["verdict"] for c in result["claims"]] == ["not measured", "not measured"]


def test_gguf_latency_smallest(tmp_path: Path):
    shared_path("tinyllama", "config.json")
    shared_path("tinyllama", "tokenizer.model")
    out = tmp_path / "gguf.json"
    args = ["--shape", "small", "--layers", "1", "--e2e-tokens", "4", "--agreement-tokens", "4"]
    proc = run("gguf_latency.py", *args, "--threads", "1", "--output", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "llama.cpp Q4_K_M, 1 thread(s)" in proc.stdout and "top-1 agreement" in proc.stdout
    result = json.loads(out.read_text())
    paths = ["transformers fp32"] + [f"llama.cpp {q}{v}" for q in ("F16", "Q8_0", "Q4_K_M")
                                     for v in ("", " + prompt lookup")]  # fmt: skip
    assert set(result["runs"]) == {f"{p}, 1 thread(s)" for p in paths}
    # each prompt-lookup row says whether its outputs are the plain row's (llama.cpp's CPU kernels differ
    # between one-token and wider passes, so this is measured, not assumed: bench/llama_pass_width.py)
    assert all(
        isinstance(r["same_output_as_plain"], bool) for k, r in result["runs"].items() if "lookup" in k
    )
    assert "forward passes" in proc.stdout
    sizes = result["model"]["sizes"]
    assert sizes["Q4_K_M"] < sizes["Q8_0"] < sizes["F16"]
    assert all(
        0 <= r["top1_agreement"] <= 1 for k, r in result["runs"].items() if "llama" in k and "lookup" not in k
    )
    assert result["memory_bandwidth_gbs"] > 0


def test_llama_pass_width_smallest(tmp_path: Path, tiny_gguf: Path):
    out = tmp_path / "width.json"
    args = ["--gguf", str(tiny_gguf / "tiny-adapter-Q8_0.gguf"), "--widths", "1", "2", "4", "--tokens", "4"]
    proc = run("llama_pass_width.py", *args, "--prompt-tokens", "8", "--repeats", "1", "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "max |diff| vs 1" in proc.stdout and "tiny-adapter-Q8_0.gguf" in proc.stdout
    rows = json.loads(out.read_text())["tiny-adapter-Q8_0.gguf"]
    assert len(rows) == 6 and rows["extra_bufts=True width=1"]["max_abs_diff_vs_width_1"] == 0
    assert all(r["ms_per_pass"] > 0 for r in rows.values())
    proc = run("llama_pass_width.py", "--gguf", str(tmp_path / "none.gguf"))
    assert proc.returncode == 2 and "none.gguf" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("script", ["train_throughput.py", "inference_latency.py", "gguf_latency.py"])
def test_missing_inputs_are_one_line_and_exit_2(script, tmp_path: Path):
    proc = run(script, "--tokenizer-dir", str(tmp_path / "nowhere"), timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # stderr also carries the resolved-config log line; the refusal itself is one line.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not found" in errors[0] and "nowhere" in errors[0]


@pytest.mark.parametrize("script", ["train_throughput.py", "inference_latency.py", "gguf_latency.py"])
def test_output_under_models_or_data_is_refused(script):
    proc = run(script, "--output", str(ROOT / "models" / "x.json"), timeout=60)
    assert proc.returncode == 2 and "must not be under models/ or data/" in proc.stderr


def _die_by_signal(job):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)  # as llama.cpp does on an AMX CPU


def _sleep(job):
    import time

    time.sleep(600)


def _answer(job):
    return {"twice": job["x"] * 2}


def test_a_dying_child_is_reported_with_its_signal_within_seconds():
    """The parent closes its copy of the pipe's write end, so the child's death is EOF at once (it used to
    wait forever); a child past its timeout is killed and reported."""
    import time

    sys.path.insert(0, str(BENCH))
    from gguf_latency import in_fresh_process

    assert in_fresh_process(_answer, {"x": 21, "name": "ok"}) == {"twice": 42}
    start = time.monotonic()
    with pytest.raises(
        RuntimeError, match=r"llama\.cpp Q4_K_M: the child process died \(signal 11 \(SIGSEGV\)\)"
    ):
        in_fresh_process(_die_by_signal, {"name": "llama.cpp Q4_K_M"}, timeout=120)
    assert time.monotonic() - start < 30
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"slow: no result within 3 s"):
        in_fresh_process(_sleep, {"name": "slow"}, timeout=3)
    assert time.monotonic() - start < 30
