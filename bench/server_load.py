"""The HTTP endpoint under load: a real server on 127.0.0.1, mixed valid, invalid and oversized requests.

    python bench/server_load.py                  # 200 requests, 16 concurrent, tiny random model, ~1-2 min on CPU
    python bench/server_load.py --requests 400 --concurrency 32 --max-queue 16 --time-cap 300
    python bench/server_load.py --requests 24 --concurrency 4 --output /tmp/sl.json   # smoke

``inference.py --serve`` runs as a subprocess with the tiny random model (``--base-model``; built in a temporary
directory when absent, as ``download_model.py --model tiny-random`` would), an API key from the environment,
a small ``--log-max-bytes`` so the log rotates during the run, and ``--max-queue`` below ``--concurrency`` so
the queue fills. Requests carry their own ``X-Request-ID``; no new request starts after ``--time-cap`` seconds.
Then the server gets SIGTERM and must exit 0.

Reported: p50/p95 latency (per status and overall), throughput, status and log-outcome counts, log files.
Checked: every answer has a documented status (200, 413, 422, 503); every request that was answered appears
in the log (read across rotated files) exactly once, with the outcome its status implies; exit code 0.
A failed check ends the script with exit code 1. Results: ``bench/results/server_load.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, check_output, table, write_results  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402
from medlora.serving.logs import format_summary, log_files, percentile, read_log, summarize  # noqa: E402

log = logging.getLogger("server_load")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the report

ENDPOINT = "/api/treatment-recommendations"
DOCUMENTED = {200: {"ok"}, 413: {"invalid_input"}, 422: {"invalid_input"}, 503: {"overloaded", "timeout"}}


@dataclass
class LoadConfig:
    base_model: str = field(default=str(ROOT / "models/tiny-random"), metadata={"help": "model to serve"})
    requests: int = field(default=200, metadata={"help": "requests to send"})
    concurrency: int = field(default=16, metadata={"help": "requests in flight at once"})
    time_cap: float = field(default=240.0, metadata={"help": "no new request after this many seconds"})
    invalid_share: float = field(default=0.2, metadata={"help": "share of invalid records (422)"})
    oversized_share: float = field(default=0.1, metadata={"help": "share of oversized bodies (413)"})
    max_new_tokens: int = field(default=32, metadata={"help": "the server's generation budget"})
    max_queue: int = field(default=8, metadata={"help": "the server's --max-queue"})
    request_timeout: float = field(default=30.0, metadata={"help": "the server's --request-timeout"})
    log_max_bytes: int = field(default=32 * 1024, metadata={"help": "the server's --log-max-bytes (rotates)"})
    seed: int = field(default=0, metadata={"help": "seed of the request mix"})
    output: str = field(
        default=str(ROOT / "bench/results/server_load.json"), metadata={"help": "results JSON"}
    )

    def validate(self) -> None:
        if self.requests < 1 or self.concurrency < 1 or self.time_cap <= 0:
            raise UsageError("--requests, --concurrency and --time-cap must be positive")
        if not 0 <= self.invalid_share + self.oversized_share <= 1:
            raise UsageError("--invalid-share + --oversized-share must be between 0 and 1")
        check_output(self.output)


def bodies(cfg: LoadConfig) -> list[tuple[str, bytes]]:
    """``(kind, body)`` per request, seeded: example records, invalid records, bodies over 16 KiB."""
    rng = random.Random(cfg.seed)
    examples = [p.read_bytes() for p in sorted((ROOT / "examples/patients").glob("*.json"))]
    invalid = [
        b'{"age": 500, "symptoms": ["cough"]}',
        b'{"age": 40}',
        b'{"symptoms": ["cough"], "x": 1}',
        b"{",
    ]
    oversized = json.dumps({"symptoms": ["cough"], "conditions": ["hypertension"] * 2000}).encode()
    out = []
    for _ in range(cfg.requests):
        u = rng.random()
        if u < cfg.oversized_share:
            out.append(("oversized", oversized))
        elif u < cfg.oversized_share + cfg.invalid_share:
            out.append(("invalid", rng.choice(invalid)))
        else:
            out.append(("valid", rng.choice(examples)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(base: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UsageError(f"the server exited with {proc.returncode} before it was up")
            try:
                if (await client.get(base + "/health", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise UsageError(f"the server was not up after {seconds:.0f} s")


async def load(cfg: LoadConfig, base: str, key: str) -> tuple[list[dict[str, Any]], float]:
    import httpx

    work = bodies(cfg)
    gate = asyncio.Semaphore(cfg.concurrency)
    results: list[dict[str, Any]] = []
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)

    async def one(i: int, kind: str, body: bytes, client: httpx.AsyncClient) -> None:
        async with gate:
            if time.monotonic() - start > cfg.time_cap:
                return
            rid = f"load-{i:05d}"
            t0 = time.monotonic()
            try:
                r = await client.post(base + ENDPOINT, content=body, headers={**headers, "X-Request-ID": rid})
                status, echoed = r.status_code, r.headers.get("X-Request-ID")
            except httpx.HTTPError as e:
                status, echoed = f"client_error:{type(e).__name__}", None
            results.append({"rid": rid, "kind": kind, "status": status, "echoed": echoed,
                            "latency_s": time.monotonic() - t0})  # fmt: skip

    async with httpx.AsyncClient(limits=limits, timeout=cfg.request_timeout + 30) as client:
        await asyncio.gather(*(one(i, kind, body, client) for i, (kind, body) in enumerate(work)))
    return results, time.monotonic() - start


def tiny_model(cfg: LoadConfig, tmp: Path) -> str:
    if Path(cfg.base_model).is_dir():
        return cfg.base_model
    if Path(cfg.base_model).name != "tiny-random":
        raise UsageError(f"--base-model not found: {cfg.base_model}")
    from medlora.model.loading import build_tiny_random

    dest = tmp / "tiny-random"
    build_tiny_random(dest, seed=0)
    log.info("%s is absent: built the tiny random model in %s", cfg.base_model, dest)
    return str(dest)


def retrieval_off() -> list[str]:
    """The tiny model has no passage index: ``--k 0`` where inference.py has retrieval (issue 10)."""
    import dataclasses

    from inference import InferenceConfig

    return ["--k", "0"] if "k" in {f.name for f in dataclasses.fields(InferenceConfig)} else []


def check(results: list[dict[str, Any]], entries: list[dict[str, Any]]) -> dict[str, Any]:
    seen = Counter(e.get("request_id") for e in entries)
    outcome = {e.get("request_id"): e.get("outcome") for e in entries}
    answered = [r for r in results if isinstance(r["status"], int)]
    undocumented = [r for r in answered if r["status"] not in DOCUMENTED]
    missing = [r["rid"] for r in answered if seen[r["rid"]] == 0]
    twice = [rid for rid, n in seen.items() if n > 1]
    mismatched = [
        (r["rid"], r["status"], outcome[r["rid"]])
        for r in answered
        if seen[r["rid"]] == 1 and outcome[r["rid"]] not in DOCUMENTED.get(r["status"], set())
    ]
    ids_echoed = all(r["echoed"] == r["rid"] for r in answered)
    return {
        "answered": len(answered),
        "not_answered": len(results) - len(answered),
        "undocumented_status": len(undocumented),
        "missing_from_log": missing[:20],
        "logged_more_than_once": twice[:20],
        "status_outcome_mismatch": mismatched[:20],
        "request_ids_echoed": ids_echoed,
        "passed": not undocumented and not missing and not twice and not mismatched and ids_echoed
        and len(answered) == len(results),
    }  # fmt: skip


def main(cfg: LoadConfig) -> dict[str, Any]:
    port, key = free_port(), secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="server-load-") as tmp:
        log_file = Path(tmp) / "inference_log.json"
        model = tiny_model(cfg, Path(tmp))
        argv = [sys.executable, str(ROOT / "inference.py"), "--serve", "--base-model", model, "--base-only",
                "--port", str(port), "--log-file", str(log_file), "--max-new-tokens", str(cfg.max_new_tokens),
                "--max-queue", str(cfg.max_queue), "--request-timeout", str(cfg.request_timeout),
                "--log-max-bytes", str(cfg.log_max_bytes), "--device", "cpu"]  # fmt: skip
        argv += retrieval_off()
        env = {**os.environ, "MEDLORA_API_KEY": key, "OMP_NUM_THREADS": "1"}
        server_log = open(Path(tmp) / "server.log", "w+")  # noqa: SIM115  (closed below)
        proc = subprocess.Popen(argv, env=env, stdout=server_log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            asyncio.run(wait_up(base, proc))
            results, wall = asyncio.run(load(cfg, base, key))
            proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(timeout=cfg.request_timeout + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
            server_log.seek(0)
            tail = server_log.read()[-2000:]
            server_log.close()
        files = log_files(log_file)
        entries = list(read_log(log_file))
        print("python -m medlora.serving.logs on the server's log:\n" + format_summary(summarize(log_file)))
    lat = {"all": [r["latency_s"] for r in results]}
    for r in results:
        lat.setdefault(str(r["status"]), []).append(r["latency_s"])
    rows = [[k, len(v), percentile(v, 50), percentile(v, 95), max(v)] for k, v in sorted(lat.items())]
    checks = check(results, entries) | {"server_exit_code": exit_code}
    checks["passed"] = checks["passed"] and exit_code == 0
    result = {
        "config": {k: v for k, v in vars(cfg).items() if k != "output"},
        "sent": len(results),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(results) / wall, 2),
        "ok_per_s": round(sum(r["status"] == 200 for r in results) / wall, 2),
        "by_kind_and_status": dict(Counter(f"{r['kind']} -> {r['status']}" for r in results).most_common()),
        "log_outcomes": dict(Counter(str(e.get("outcome")) for e in entries).most_common()),
        "log_files": len(files),
        "log_entries": len(entries),
        "latency_s": {
            k: {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95)} for k, v in lat.items()
        },
        "checks": checks,
    }
    print(table(["status", "n", "p50 s", "p95 s", "max s"], rows))
    print(
        f"\n{len(results)} requests in {wall:.1f} s: {result['throughput_rps']} req/s, {result['ok_per_s']} ok/s"
    )
    print("by kind -> status:", result["by_kind_and_status"])
    print("log outcomes:", result["log_outcomes"], f"over {len(files)} files")
    print("checks:", json.dumps(checks))
    write_results(Path(cfg.output), result)
    if not checks["passed"]:
        print("server output (tail):\n" + tail, file=sys.stderr)
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, LoadConfig, description=__doc__))
