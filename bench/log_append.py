"""What one inference-log append costs as the log grows: the in-place append against the old rewrite.

    python bench/log_append.py                                   # 100 vs 100,000 entries, ~1 min
    python bench/log_append.py --sizes 100 1000 100000 --appends 300
    python bench/log_append.py --appends 20 --sizes 100 1000 --baseline-sizes 100 --output /tmp/la.json  # smoke

For each size a log is filled with that many realistic entries (one batch append), then ``--appends`` single
entries are appended to each log in turn (interleaved, order rotated, so the box's noise falls on every size
alike), each timed alone. Rotation is off (``max_bytes=0``) so the file really holds that many entries. The
target: the median append at the largest size within 2x of the smallest. The same is timed for the previous
design (read, parse, rewrite the whole file under the lock: ``update_json``) at ``--baseline-sizes``.
Results: ``bench/results/log_append.json``.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, check_output, rotated, table, write_results  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402
from medlora.common.files import append_json_log, update_json  # noqa: E402

log = logging.getLogger("log_append")

TARGET_RATIO = 2.0


@dataclass
class LogAppendConfig:
    sizes: list[int] = field(
        default_factory=lambda: [100, 100_000], metadata={"help": "entries already in the log"}
    )
    appends: int = field(default=200, metadata={"help": "timed single-entry appends per size"})
    baseline_sizes: list[int] = field(
        default_factory=lambda: [100, 10_000],
        metadata={"help": "sizes for the old rewrite (slow: keep small)"},
    )
    baseline_appends: int = field(default=10, metadata={"help": "timed appends per baseline size"})
    output: str = field(
        default=str(ROOT / "bench/results/log_append.json"), metadata={"help": "results JSON"}
    )

    def validate(self) -> None:
        if not self.sizes or min(self.sizes) < 1 or self.appends < 5 or self.baseline_appends < 1:
            raise UsageError("--sizes must be >= 1, --appends >= 5, --baseline-appends >= 1")
        check_output(self.output)


def entry(i: int) -> dict[str, Any]:
    """An entry shaped like inference.py's (about 480 bytes)."""
    return {
        "timestamp": "2026-11-29T10:00:00.000+00:00", "request_id": f"{i:032x}",
        "base_model": "models/tinyllama", "adapter": "models/tinyllama-medquad-treatment", "outcome": "ok",
        "source": "http", "latency_s": 3.1416, "batch_size": 1, "prompt_tokens": 213, "generated_tokens": 356,
        "finish": "eos", "red_flags": ["low_spo2"], "allergy_conflicts": 0,
        "model": {"base": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "revision": "fe8a4ea", "adapter": "a"},
        "patient_id_hmac": "9f" * 32,
    }  # fmt: skip


def summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def measure(sizes: list[int], appends: int, append) -> dict[int, list[float]]:
    with tempfile.TemporaryDirectory(prefix="log-append-") as tmp:
        paths = {n: Path(tmp) / f"log-{n}.json" for n in sizes}
        for n, path in paths.items():
            append_json_log(path, *(entry(i) for i in range(n)), max_bytes=0)
            log.info("filled %s: %d entries, %.1f MB", path.name, n, path.stat().st_size / 1e6)
        times: dict[int, list[float]] = {n: [] for n in sizes}
        for k in range(appends):
            for n in rotated(sizes, k):
                start = time.perf_counter()
                append(paths[n], entry(n + k))
                times[n].append(time.perf_counter() - start)
    return times


def rewrite(path: Path, e: dict[str, Any]) -> None:
    """The previous append: the whole array read, parsed and written back under the lock."""
    update_json(path, lambda current: [*current, e], default=[])


def main(cfg: LogAppendConfig) -> dict[str, Any]:
    sizes = sorted(set(cfg.sizes))
    current = measure(sizes, cfg.appends, lambda p, e: append_json_log(p, e, max_bytes=0))
    baseline = (
        measure(sorted(set(cfg.baseline_sizes)), cfg.baseline_appends, rewrite) if cfg.baseline_sizes else {}
    )
    rows, result = (
        [],
        {"appends": cfg.appends, "baseline_appends": cfg.baseline_appends, "current": {}, "baseline": {}},
    )
    for name, times in (("current", current), ("baseline", baseline)):
        for n, ts in times.items():
            result[name][n] = summary(ts)
            rows.append([name, n, *result[name][n].values()])
    small, large = result["current"][sizes[0]], result["current"][sizes[-1]]
    ratio = large["median_ms"] / small["median_ms"]
    result["ratio_largest_to_smallest"] = round(ratio, 3)
    result["target"] = f"median append at {sizes[-1]} entries within {TARGET_RATIO}x of {sizes[0]}"
    result["verdict"] = "met" if ratio <= TARGET_RATIO else "missed"
    print(table(["design", "entries", "median ms", "p95 ms", "mean ms"], rows))
    print(
        f"\ncurrent: {sizes[-1]} vs {sizes[0]} entries: {ratio:.2f}x ({result['verdict']}, target <= {TARGET_RATIO}x)"
    )
    write_results(Path(cfg.output), result)
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, LogAppendConfig, description=__doc__))
