import json
import multiprocessing as mp
import os

import pytest

from medlora.common.files import (
    append_json_log,
    atomic_write,
    locked,
    read_jsonl,
    rotated_logs,
    sha256_files,
    update_json,
    write_jsonl,
)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = tmp_path / "out.json"
    atomic_write(p, "old")

    def rows():
        yield {"a": 1}
        raise KeyboardInterrupt  # a kill half-way through

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(p, rows())
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind


def test_written_files_have_normal_permissions(tmp_path):
    p = tmp_path / "x.jsonl"
    write_jsonl(p, [{"a": 1}])
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    assert read_jsonl(p) == [{"a": 1}]


def test_corrupt_log_is_moved_aside_not_lost(tmp_path):
    log = tmp_path / "inference_log.json"
    log.write_text('[{"id": 1}, {"id": ')
    append_json_log(log, {"id": 2})
    assert json.loads(log.read_text()) == [{"id": 2}]
    aside = [f for f in tmp_path.iterdir() if ".corrupt-" in f.name]
    assert len(aside) == 1 and aside[0].read_text() == '[{"id": 1}, {"id": '


def _append_many(args):
    path, worker = args
    for i in range(10):
        append_json_log(path, {"worker": worker, "i": i})


def test_concurrent_appends_keep_every_entry(tmp_path):
    log = tmp_path / "log.json"
    with mp.get_context("spawn").Pool(8) as pool:
        pool.map(_append_many, [(str(log), w) for w in range(8)])
    entries = json.loads(log.read_text())
    assert sorted((e["worker"], e["i"]) for e in entries) == [(w, i) for w in range(8) for i in range(10)]


def test_update_json_and_hash(tmp_path):
    p = tmp_path / "info.json"
    update_json(p, lambda d: {**d, "a": 1}, default={})
    update_json(p, lambda d: {**d, "b": 2}, default={})
    assert json.loads(p.read_text()) == {"a": 1, "b": 2}
    (tmp_path / "t.jsonl").write_text("x")
    h1 = sha256_files([tmp_path / "t.jsonl"])
    (tmp_path / "t.jsonl").write_text("y")
    assert sha256_files([tmp_path / "t.jsonl"]) != h1


def test_the_log_is_one_entry_per_line_inside_a_json_array(tmp_path):
    log = tmp_path / "log.json"
    append_json_log(log, {"i": 0})
    append_json_log(log, {"i": 1}, {"i": 2, "text": "two\nlines"})
    raw = log.read_text()
    assert json.loads(raw) == [{"i": 0}, {"i": 1}, {"i": 2, "text": "two\nlines"}]
    assert raw.splitlines() == ["[", '{"i":0},', '{"i":1},', '{"i":2,"text":"two\\nlines"}', "]"]


@pytest.mark.parametrize("old", ["[]\n", "[]", '[\n  {\n    "i": 0\n  }\n]\n', '[{"i": 0}]'])
def test_an_older_or_empty_log_is_kept_and_appended_to(tmp_path, old):
    log = tmp_path / "log.json"
    log.write_text(old)
    append_json_log(log, {"i": 1})
    append_json_log(log, {"i": 2})
    assert json.loads(log.read_text()) == [*json.loads(old), {"i": 1}, {"i": 2}]
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_rotation_by_size_loses_nothing_and_every_file_is_json(tmp_path):
    log = tmp_path / "inference_log.json"
    for i in range(40):
        append_json_log(log, {"i": i, "pad": "x" * 40}, max_bytes=300)
    files = [*rotated_logs(log), log]
    assert [f.name for f in files[:3]] == [
        "inference_log.1.json",
        "inference_log.2.json",
        "inference_log.3.json",
    ]
    assert all(f.stat().st_size <= 300 for f in files)
    entries = [e["i"] for f in files for e in json.loads(f.read_text())]
    assert entries == list(range(40))  # oldest file first, in order, none lost or repeated


def test_an_entry_larger_than_the_limit_gets_a_file_of_its_own(tmp_path):
    log = tmp_path / "log.json"
    append_json_log(log, {"i": 0}, max_bytes=100)
    append_json_log(log, {"i": 1, "pad": "x" * 200}, max_bytes=100)
    assert json.loads((tmp_path / "log.1.json").read_text()) == [{"i": 0}]
    assert json.loads(log.read_text())[0]["i"] == 1


def test_a_failed_append_leaves_the_log_as_it_was(tmp_path, monkeypatch):
    log = tmp_path / "log.json"
    append_json_log(log, {"i": 0})
    before = log.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        append_json_log(log, {"i": 1, "pad": "y" * 5000})
    monkeypatch.undo()
    assert log.read_bytes() == before
    append_json_log(log, {"i": 2})
    assert json.loads(log.read_text()) == [{"i": 0}, {"i": 2}]


def test_two_corrupt_logs_in_one_second_are_both_kept(tmp_path):
    log = tmp_path / "log.json"
    for text in ("[{", "[{{"):
        log.write_text(text)
        append_json_log(log, {"ok": 1})
    assert sorted(f.read_text() for f in tmp_path.glob("log.json.corrupt-*")) == ["[{", "[{{"]


def _append_rotating(args):
    path, worker = args
    for i in range(10):
        append_json_log(path, {"worker": worker, "i": i}, max_bytes=400)


def test_concurrent_appends_across_rotations_keep_every_entry_once(tmp_path):
    log = tmp_path / "log.json"
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_append_rotating, [(str(log), w) for w in range(4)])
    files = [*rotated_logs(log), log]
    assert len(files) > 2
    entries = [(e["worker"], e["i"]) for f in files for e in json.loads(f.read_text())]
    assert sorted(entries) == [(w, i) for w in range(4) for i in range(10)]


def _count_in_json(args):
    path, worker = args
    for _ in range(10):
        update_json(path, lambda d: {**d, "n": d.get("n", 0) + 1}, default={})
        append_json_log(os.path.join(os.path.dirname(path), "log.json"), {"worker": worker})


def test_writers_leave_no_lock_files_and_never_lose_an_update(tmp_path):
    counter = tmp_path / "info.json"
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_count_in_json, [(str(counter), w) for w in range(4)])
    assert json.loads(counter.read_text()) == {"n": 40}  # a lost read-modify-write would count fewer
    assert len(json.loads((tmp_path / "log.json").read_text())) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["info.json", "log.json"]  # no .lock, no temp file


def test_the_lock_excludes_another_process_and_times_out(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "out.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from medlora.common.files import locked\n"
         f"with locked({str(target)!r}):\n    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError, match="stayed locked"), locked(target, timeout=0.2):
            pass
    finally:
        holder.kill()
        holder.wait()
    with locked(target, timeout=5):  # the holder's death released it
        pass
