"""Writing outputs so that a crash, a kill or a concurrent writer never leaves a half-written file.

Every output goes to a temporary file in the same directory and is renamed over the target (atomic on POSIX).
JSON logs (``append_json_log``) are appended in place at constant cost under a lock and rotated by size;
a log that is no longer valid JSON is moved aside, never truncated. Small JSON files that change as a whole
(``update_json``: model_info.json) are read, modified and replaced under the same lock. The lock is taken on
the file's directory (``flock``), so no empty ``.lock`` file is left beside the outputs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

try:
    import fcntl
except ImportError:  # Windows: a .lock file beside the output instead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 60.0

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


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of one file's bytes, read in chunks (GGUF files and wheels run to gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    stamp = f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    aside, n = path.with_name(stamp), 1
    while aside.exists():  # two in one second must not overwrite each other (the caller holds the lock)
        aside, n = path.with_name(f"{stamp}-{n}"), n + 1
    os.replace(path, aside)
    log.warning("%s was not valid JSON; moved it to %s and started a new log", path, aside)
    return aside


@contextlib.contextmanager
def locked(path: str | Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock, shared by every process, for writing ``path``.

    The lock is ``flock`` on the directory that holds ``path``: a directory is never renamed over the way an
    output is, and nothing is left behind (a lock file cannot be deleted safely while others may wait on it).
    Writers of different files in one directory wait for each other; they hold the lock for milliseconds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY) if fcntl is not None else None
    try:
        deadline = time.monotonic() + timeout
        while fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path.parent} stayed locked for {timeout:g} s") from None
                time.sleep(0.005)
            except OSError as e:  # a filesystem without flock on directories (some NFS set-ups)
                if e.errno not in (errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                os.close(fd)
                fd = None
        if fd is None:
            with FileLock(str(path) + ".lock", timeout=timeout):
                yield
        else:
            yield
    finally:
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def update_json(path: str | Path, update, default: Any) -> Any:
    """Read-modify-write a JSON file under a lock: ``update(current) -> new``. Corrupt files are moved aside."""
    path = Path(path)
    with locked(path):
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


DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
# A log file is a JSON array with one compact entry per line: "[\n{...},\n{...}\n]\n". Appending overwrites the
# closing "\n]\n" with ",\n<entries>\n]\n", so an append costs the same whatever the file's length, the file is
# valid JSON between appends, and a damaged file still yields its complete entries line by line.
_TAIL = b"\n]\n"


def rotated_logs(path: str | Path) -> list[Path]:
    """The rotated files of a log, oldest first: ``inference_log.1.json``, ``inference_log.2.json``, ..."""
    path = Path(path)
    pattern = re.compile(rf"^{re.escape(path.stem)}\.(\d+){re.escape(path.suffix)}$")
    found = [(int(m.group(1)), p) for p in path.parent.glob(f"{path.stem}.*") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def _rotate(path: Path) -> Path:
    """Rename the full log to the next number (never over an existing file); the caller holds the lock."""
    older = rotated_logs(path)
    number = int(older[-1].name[len(path.stem) + 1 :].split(".")[0]) + 1 if older else 1
    dest = path.with_name(f"{path.stem}.{number}{path.suffix}")
    os.replace(path, dest)
    log.info("rotated %s to %s", path, dest)
    return dest


def _ends_cleanly(path: Path, size: int) -> bool:
    # Only the first byte and the last four are read: the check costs the same at any size.
    with open(path, "rb") as fh:
        head = fh.read(1)
        fh.seek(max(0, size - 4))
        return head == b"[" and fh.read() == b"}" + _TAIL


def _repair(path: Path) -> int:
    """The slow path, for a file not ending as the writer leaves it: a valid JSON array of entries (an older
    pretty-printed log, ``[]``) is rewritten in the line format; anything else is moved aside. Returns the size."""
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        current = None
    if not isinstance(current, list) or not all(isinstance(e, dict) for e in current):
        _move_aside(path)
        return 0
    if not current:
        path.unlink()
        return 0
    atomic_write(path, b"[\n" + _lines(current) + _TAIL)
    return path.stat().st_size


def _lines(entries: Iterable[dict[str, Any]]) -> bytes:
    # Compact JSON never holds a raw newline, so every entry is exactly one line.
    return ",\n".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in entries).encode(
        "utf-8"
    )


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    # Threads of one process queue here, woken at once; the file lock alone makes a waiter poll (every 50 ms),
    # which under a server's concurrent log writes added up to a second per request.
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(str(path.resolve()), threading.Lock())


def append_json_log(
    path: str | Path, *entries: dict[str, Any], max_bytes: int = DEFAULT_LOG_MAX_BYTES
) -> None:
    """Append entries (one request's, or one batch's) to a JSON array log such as ``inference_log.json``.

    Constant cost: the new entries overwrite the closing bracket in place, under a lock shared by every
    process, then fsync. A failed write (disk full, interrupt) restores the file to what it was. When the
    file would pass ``max_bytes`` (0: never) it is first renamed to the next number (``inference_log.1.json``,
    ...) and a new file starts: nothing is deleted. A file that does not end as this writer leaves it and is
    not a JSON array of entries is moved aside (``.corrupt-*``), never truncated.
    """
    if not entries:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = _lines(entries)
    with _thread_lock(path), locked(path):
        size = path.stat().st_size if path.exists() else 0
        if size and not _ends_cleanly(path, size):
            size = _repair(path)
        if size and max_bytes and size + len(lines) + 2 > max_bytes:
            _rotate(path)
            size = 0
        if not size:
            atomic_write(path, b"[\n" + lines + _TAIL)
            return
        fd = os.open(path, os.O_RDWR)
        try:
            # One pwrite() call: a kill cannot stop a write to a regular file half-way, so only a power cut
            # can leave a torn tail (then the next append moves the file aside; its complete lines remain).
            data, at = b",\n" + lines + _TAIL, size - len(_TAIL)
            if os.pwrite(fd, data, at) != len(data):
                raise OSError(f"short write to {path}")
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                os.pwrite(fd, _TAIL, size - len(_TAIL))
            raise
        finally:
            os.close(fd)


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


def download_wheel(
    package: str, version: str, dest_dir: Path, wheel: str | Path | None, failure: str
) -> Path:
    """A package's wheel from the package index (``pip download --no-deps``, nothing installed), or ``wheel``
    when given. ``failure``: the error line when pip cannot fetch it, with ``{reason}`` for pip's last line."""
    import subprocess
    import sys

    from .cli import UsageError

    if wheel is not None:
        if not Path(wheel).is_file():
            raise UsageError(f"wheel not found: {wheel}")
        return Path(wheel)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(dest_dir), f"{package}=={version}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    wheels = sorted(dest_dir.glob(f"{package.replace('-', '_')}-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(failure.format(reason=last[:160]))
    return wheels[0]
