"""Writing outputs so that a crash, a kill or a concurrent writer never leaves a half-written file.

Every output goes to a temporary file in the same directory and is renamed over the target (atomic on POSIX).
JSON logs are appended under a file lock; a log that is no longer valid JSON is moved aside, never truncated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)


def make_temp_dir(dest: Path) -> Path:
    """A temporary directory beside ``dest``, with the permissions a plain mkdir would have given it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    return tmp


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; a finished output gets the permissions a plain open() would have given it.
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> None:
    with atomic_path(path) as tmp:
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(
            tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8", "newline": "\n"})
        ) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, dumps(obj))


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sha256_files(paths: Iterable[str | Path]) -> str:
    """One hash over several files (name and content), so a model can name the exact data it saw."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    log.warning("%s was not valid JSON; moved it to %s and started a new log", path, aside)
    return aside


def update_json(path: str | Path, update, default: Any) -> Any:
    """Read-modify-write a JSON file under a lock: ``update(current) -> new``. Corrupt files are moved aside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=60):
        current = default
        if path.exists():
            try:
                current = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                _move_aside(path)
                current = default
        new = update(current)
        write_json(path, new)
        return new


def append_json_log(path: str | Path, *entries: dict[str, Any]) -> None:
    """Append entries (one request's, or one batch's) to a JSON array file such as ``inference_log.json``,
    in a single read-modify-write under the lock; a file that is not a JSON array is moved aside."""

    def add(current: Any) -> list[Any]:
        if not isinstance(current, list):
            _move_aside(Path(path))
            current = []
        return [*current, *entries]

    update_json(path, add, default=[])


def replace_dir(tmp: str | Path, dest: str | Path) -> None:
    """Swap a finished directory into place: ``dest`` is never half-written, the old one is removed after."""
    tmp, dest = Path(tmp), Path(dest)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)
