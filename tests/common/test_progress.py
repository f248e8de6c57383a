"""Long steps are never silent: outside a terminal, a log line at least every ``every`` seconds."""

import logging
import time

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
