import json
import multiprocessing as mp
import os

import pytest

from medlora.files import append_json_log, atomic_write, read_jsonl, sha256_files, update_json, write_jsonl


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
