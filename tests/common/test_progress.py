"""Long steps are never silent: outside a terminal, a log line at least every ``every`` seconds."""

import logging
import time

from conftest import ROOT

from medlora.common import progress as progress_module
from medlora.common.progress import progress, step


def test_a_loop_logs_its_count_at_the_interval_and_its_time_at_the_end(caplog, monkeypatch):
    monkeypatch.setattr(progress_module, "_on_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="medlora.common.progress")

    def slow():
        for i in range(6):
            time.sleep(0.03)
            yield i

    assert list(progress(slow(), "reading", total=6, unit="files", every=0.05)) == list(range(6))
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("reading: ") and "/6 files" in line and "so far" in line for line in lines)
    assert lines[-1].startswith("reading: 6 files in ")


def test_a_step_logs_its_start_a_heartbeat_and_its_time(caplog):
    caplog.set_level(logging.INFO, logger="medlora.common.progress")
    with step("building the index", every=0.05):
        time.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "building the index ..."
    assert any("still running" in line for line in lines[1:-1])
    assert lines[-1].startswith("building the index: done in ")


def test_other_processes_of_a_distributed_run_stay_quiet(caplog, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    caplog.set_level(logging.INFO, logger="medlora.common.progress")
    assert list(progress([1, 2], "x")) == [1, 2]
    with step("y", every=0.01):
        time.sleep(0.05)
    assert caplog.records == []


def test_a_hand_advanced_bar_logs_when_stderr_is_not_a_terminal(caplog, monkeypatch):
    import logging

    clock = iter([0.0, 5.0, 25.0, 26.0, 30.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress_module, "_on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="medlora.common.progress"):
        bar = progress_module.Progress(3, "scoring", every=20)
        bar.update()  # 5 s: quiet
        bar.update()  # 25 s: a line
        bar.update()  # done: a line
    lines = [r.getMessage() for r in caplog.records]
    assert (
        lines[0] == "scoring: 0/3"
        and lines[1].startswith("scoring: 2/3")
        and lines[2].startswith("scoring: 3/3")
    )
    assert len(lines) == 3


def test_a_heartbeat_speaks_only_after_silence_and_says_the_status(caplog):
    caplog.set_level(logging.INFO, logger="medlora.common.progress")
    calls = []
    with progress_module.Heartbeat(lambda: calls.append(1) or f"working {len(calls)}", every=0.05, poll=0.01):
        time.sleep(0.3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all(line.startswith("working ") for line in lines)
    assert 2 <= len(lines) <= 8  # about one per 0.05 s of silence, not one per poll


def test_token_progress_reports_tokens_rate_and_time_left(caplog):
    """The generation heartbeat: a logits processor counting decoding steps while generate() runs."""
    caplog.set_level(logging.INFO, logger="medlora.common.progress")
    beat = progress_module.TokenProgress("generating", batch=2, max_new_tokens=100, every=0.05)
    assert beat.line().startswith("generating: reading the prompts of 2 sequences")
    with beat:
        for _ in range(10):
            assert beat(None, "scores") == "scores"  # scores pass through untouched
            time.sleep(0.02)
        time.sleep(0.1)
    line = [r.getMessage() for r in caplog.records][-1]
    assert line.startswith("generating: 10/100 tokens of 2 sequences, ") and " tokens/s, " in line
    assert "left" in line


def test_no_tqdm_bar_reaches_a_log_file(tmp_path):
    """A stage whose stderr is a file: tqdm bars (a library's, imported before or after) print nothing there."""
    import subprocess
    import sys

    code = (
        "import tqdm, sys\n"
        "from medlora.common.cli import setup_logging\n"
        "setup_logging()\n"
        "for _ in tqdm.tqdm(range(3), desc='bar'): pass\n"
        "from transformers.utils import logging as tl\n"
        "assert not tl.is_progress_bar_enabled()\n"
    )
    log = tmp_path / "stderr.log"
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-c", code], stderr=fh, check=True, cwd=str(ROOT))
    text = log.read_text()
    assert "\r" not in text and "bar" not in text and "\x1b[" not in text
