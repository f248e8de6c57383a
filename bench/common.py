"""Helpers shared by the bench scripts: inputs and outputs, threads, model shapes, timers, memory, tables.

Not a script: ``bench/train_throughput.py`` and ``bench/inference_latency.py`` import it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TINYLLAMA_DIR = SHARED / "tinyllama"
RESULTS_DIR = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from medlora.common.cli import UsageError  # noqa: E402

log = logging.getLogger("bench")

# Shapes of a CPU-sized stand-in for TinyLlama: fewer layers, narrower, the same head size (64), the same
# query-to-KV-head ratio (8) and TinyLlama's real 32000-token vocabulary.
SMALL_SHAPE = {"num_hidden_layers": 4, "hidden_size": 512, "intermediate_size": 1408}
SMALL_SHAPE |= {"num_attention_heads": 8, "num_key_value_heads": 1}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def require(paths: Iterable[tuple[Path, str]]) -> None:
    """One line naming the first missing input (the caller's run_stage turns it into exit code 2)."""
    for path, what in paths:
        if not path.exists():
            raise UsageError(f"{what} not found: {path}")


def check_output(path: str | Path) -> Path:
    out = Path(path).resolve()
    if any(out.is_relative_to((ROOT / d).resolve()) for d in ("models", "data")):
        raise UsageError("--output must not be under models/ or data/ (bench results go to bench/results/)")
    return out


def resolve_bench_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but CUDA is not available")
    return device


def pin_threads(threads: int) -> int:
    """Pin torch's CPU threads: on a busy 2-core box, 2 threads ran ~10x slower than 1 for small models."""
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(threads)
    # Settable only before the first parallel op; the intra-op count is the one that matters here.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def model_config(config_file: Path, shape: str, layers: int = 0):
    """``(config, description)``: TinyLlama's config, full or the CPU-sized stand-in, optionally ``layers`` deep."""
    from transformers import AutoConfig

    arch = AutoConfig.from_pretrained(config_file)
    changed: dict[str, Any] = dict(SMALL_SHAPE) if shape == "small" else {}
    if layers:
        changed["num_hidden_layers"] = layers
    for key, value in changed.items():
        setattr(arch, key, value)
    desc = (
        "full TinyLlama shape"
        if not changed
        else "scaled down: " + ", ".join(f"{k}={v}" for k, v in changed.items())
    )
    desc += (
        f" (layers={arch.num_hidden_layers}, hidden={arch.hidden_size}, intermediate={arch.intermediate_size}, "
        f"heads={arch.num_attention_heads}/{arch.num_key_value_heads} kv, vocab={arch.vocab_size})"
    )
    return arch, desc


def load_bench_tokenizer(tokenizer_dir: Path):
    from medlora.model.loading import tinyllama_tokenizer
    from medlora.training.run import pad_token_id

    tok = tinyllama_tokenizer(tokenizer_dir)
    tok.pad_token_id = pad_token_id(tok)
    return tok


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class Timer:
    def __init__(self, device: str = "cpu"):
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self._start


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of the enclosed block: process RSS on Linux (VmHWM reset through /proc/self/clear_refs)
    and, on CUDA, peak allocated bytes. ``rise_mib`` is the peak above what was resident at the start, the
    block's own working memory, which stays meaningful when other models share the process."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.result: dict[str, float | None] = {}

    def __enter__(self) -> PeakMemory:
        import gc

        gc.collect()
        self._hwm_reset = False
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
            self._hwm_reset = True
        except OSError:
            pass
        self._rss0 = _status_kib("VmRSS")
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._cuda0 = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _status_kib("VmHWM") if self._hwm_reset else None
        if hwm is None:  # no per-block reset possible: fall back to the process-wide peak
            import resource

            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.result = {
            "rss_peak_mib": round(hwm / 1024, 1),
            "rss_rise_mib": round((hwm - (self._rss0 or 0)) / 1024, 1) if self._hwm_reset else None,
        }
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            self.result["cuda_peak_allocated_mib"] = round(peak / 2**20, 1)
            self.result["cuda_rise_mib"] = round((peak - self._cuda0) / 2**20, 1)
            self.result["cuda_peak_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)


def weights_mib(model: Any) -> float:
    tensors = [*model.parameters(), *model.buffers()]
    return round(sum(t.numel() * t.element_size() for t in tensors) / 2**20, 1)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """The contenders in another order each repeat, so none always runs first (or last) on a noisy box."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def environment(device: str, threads: int) -> dict[str, Any]:
    from medlora.training.run import library_versions

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {"device": device, "torch_threads": threads, "cpu": cpu, "cpu_count": os.cpu_count()}
    if device.startswith("cuda"):
        import torch

        env["gpu"] = torch.cuda.get_device_name()
    return env | {"versions": library_versions()}


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line, sep]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return "\n".join(out)


def write_results(path: Path, result: dict[str, Any]) -> None:
    from medlora.common.files import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    log.info("results written to %s", path)


def claim(name: str, claimed: float, measured: float | None, unit: str, slack: float = 0.10) -> dict:
    """A model-card claim against a measurement: consistent when within ``slack`` above the claim."""
    if measured is None:
        return {"claim": name, "claimed": claimed, "unit": unit, "measured": None, "verdict": "not measured"}
    verdict = "consistent" if measured <= claimed * (1 + slack) else "exceeds the claim"
    return {
        "claim": name,
        "claimed": claimed,
        "unit": unit,
        "measured": round(measured, 3),
        "verdict": verdict,
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
