"""The inference log: reading it across rotated files, summarising it, and the key that hides patient ids.

    # requests, outcomes, latency percentiles and red-flag counts over every file of the log
    python -m medlora.serving.logs --log-file models/inference_log.json
    python -m medlora.serving.logs --log-file models/inference_log.json --format json --since 2026-11-29T00:00

``append_json_log`` (medlora/common/files.py) writes the log: ``inference_log.json`` is the current file, and
``inference_log.1.json``, ``inference_log.2.json``, ... the rotated ones, numbered in the order they were
filled (1 is the oldest). Each is a JSON array with one entry per line. A file that was moved aside as corrupt
(``inference_log.json.corrupt-*``) is read line by line, so its complete entries still count.

Patient ids are logged as ``HMAC-SHA256(key, id)``: the key is a random secret in ``<log file>.key``, created
with 0600 permissions on first use, so the log cannot be joined to ids by hashing guessed ids (a plain hash
could be). Every rotated file of one log shares the key; deleting the key breaks the join with older entries.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..common.cli import UsageError, run_stage
from ..common.files import rotated_logs

log = logging.getLogger(__name__)

KEY_BYTES = 32


def log_files(path: str | Path, include_aside: bool = True) -> list[Path]:
    """Every file of a log, oldest first: files moved aside as corrupt, the rotated ones, the current one."""
    path = Path(path)
    aside = sorted(path.parent.glob(f"{path.name}.corrupt-*"), key=lambda p: p.stat().st_mtime)
    current = [path] if path.exists() else []
    return (aside if include_aside else []) + rotated_logs(path) + current


def read_log_file(path: Path) -> tuple[list[dict[str, Any]], int]:
    """``(entries, unreadable lines)``: the whole file as JSON, or else each line that holds a complete entry."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
        if isinstance(data, list):
            return [e for e in data if isinstance(e, dict)], sum(not isinstance(e, dict) for e in data)
    except json.JSONDecodeError:
        pass
    entries, bad = [], 0
    for line in text.splitlines():
        line = line.strip().removeprefix("[").removesuffix("]").strip().removesuffix(",")
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            bad += 1
    return entries, bad


def read_log(path: str | Path, include_aside: bool = True) -> Iterator[dict[str, Any]]:
    """Every entry of a log across its files, oldest file first."""
    for p in log_files(path, include_aside):
        yield from read_log_file(p)[0]


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0-100); None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q) - 1))]


def summarize(path: str | Path, since: str | None = None, include_aside: bool = True) -> dict[str, Any]:
    """Requests, outcomes, sources, latency percentiles, tokens and red-flag codes over every file."""
    files, entries, unreadable = log_files(path, include_aside), [], 0
    for p in files:
        got, bad = read_log_file(p)
        entries.extend(got)
        unreadable += bad
    if since:
        entries = [e for e in entries if str(e.get("timestamp", "")) >= since]
    ok = [e for e in entries if e.get("outcome") == "ok"]
    latency = [float(e["latency_s"]) for e in ok if isinstance(e.get("latency_s"), (int, float))]
    flags = Counter(code for e in entries for code in e.get("red_flags") or [] if isinstance(code, str))
    stamps = sorted(str(e["timestamp"]) for e in entries if e.get("timestamp"))

    def mean(key: str) -> float | None:
        values = [e[key] for e in ok if isinstance(e.get(key), (int, float))]
        return round(statistics.fmean(values), 1) if values else None

    return {
        "files": [str(p) for p in files],
        "unreadable_lines": unreadable,
        "requests": len(entries),
        "first": stamps[0] if stamps else None,
        "last": stamps[-1] if stamps else None,
        "outcomes": dict(Counter(str(e.get("outcome")) for e in entries).most_common()),
        "sources": dict(Counter(str(e.get("source")) for e in entries).most_common()),
        "latency_s": {f"p{q}": percentile(latency, q) for q in (50, 95, 99)} | {"n": len(latency)},
        "mean_prompt_tokens": mean("prompt_tokens"),
        "mean_generated_tokens": mean("generated_tokens"),
        "finish": dict(Counter(str(e.get("finish")) for e in ok).most_common()),
        "red_flags": dict(flags.most_common()),
        "requests_with_red_flags": sum(bool(e.get("red_flags")) for e in entries),
    }


def format_summary(s: dict[str, Any]) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"

    lat = s["latency_s"]
    lines = [
        f"files: {len(s['files'])} ({s['unreadable_lines']} unreadable lines)",
        f"requests: {s['requests']} ({s['first'] or '-'} .. {s['last'] or '-'})",
        f"outcomes: {counts(s['outcomes'])}",
        f"sources: {counts(s['sources'])}",
        f"latency (ok, s): p50 {fmt(lat['p50'])}, p95 {fmt(lat['p95'])}, p99 {fmt(lat['p99'])} (n={lat['n']})",
        f"tokens (ok, mean): prompt {s['mean_prompt_tokens'] or '-'}, generated {s['mean_generated_tokens'] or '-'}",
        f"finish (ok): {counts(s['finish'])}",
        f"red flags: {s['requests_with_red_flags']} requests; {counts(s['red_flags'])}",
    ]
    return "\n".join(lines) + "\n"


# --- the patient-id key ---------------------------------------------------------------------------------------


def key_path(log_file: str | Path) -> Path:
    return Path(str(log_file) + ".key")


def id_key(log_file: str | Path) -> bytes:
    """The log's HMAC key, created (0600, complete or not at all) on first use; a bad key file is a UsageError."""
    path = key_path(log_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(KEY_BYTES) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            # link() fails when another process created the key first: then its key is the one used.
            os.link(tmp, path)
            log.info("created the patient-id key %s (keep it with the log; 0600)", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the patient-id key {path}: {e}") from None
    if len(key) < 2 * KEY_BYTES:
        raise UsageError(f"the patient-id key {path} is too short; remove it to make a new one")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; chmod 600 it", path)
    return key.encode("ascii")


def hash_id(patient_id: str | None, key: bytes) -> str | None:
    return hmac.new(key, patient_id.encode("utf-8"), "sha256").hexdigest() if patient_id else None


class IdHasher:
    """``hasher(patient_id)``: the keyed hash for one log, loading (or creating) the key on first use."""

    def __init__(self, log_file: str | Path):
        self.log_file, self._key, self._lock = log_file, None, threading.Lock()

    def __call__(self, patient_id: str | None) -> str | None:
        if not patient_id:
            return None
        with self._lock:
            if self._key is None:
                self._key = id_key(self.log_file)
        return hash_id(patient_id, self._key)


# --- command line ---------------------------------------------------------------------------------------------


@dataclass
class LogsConfig:
    log_file: str = field(
        default="models/inference_log.json", metadata={"help": "the current log file; rotated ones are found"}
    )
    format: Literal["text", "json"] = field(default="text", metadata={"help": "text, or one JSON object"})
    since: str | None = field(
        default=None, metadata={"help": "only entries at or after this ISO time (e.g. 2026-11-29T08:00)"}
    )
    include_aside: bool = field(
        default=True, metadata={"help": "also read files moved aside as corrupt (their complete lines)"}
    )

    def validate(self) -> None:
        if not log_files(self.log_file):
            raise UsageError(f"no log at {self.log_file} (nor rotated or moved-aside files beside it)")


def main(cfg: LogsConfig) -> dict[str, Any]:
    summary = summarize(cfg.log_file, cfg.since, cfg.include_aside)
    text = json.dumps(summary, indent=2) + "\n" if cfg.format == "json" else format_summary(summary)
    sys.stdout.write(text)
    return summary


if __name__ == "__main__":
    sys.exit(run_stage(main, LogsConfig, description=__doc__))
