"""Is bf16 worth it for LoRA training on this CPU? fp32 against bf16 autocast, on a real base model.

    # SmolLM2-135M (download_model.py --model smollm2-135m), 2 threads, 3 timed steps of batch 4 x 256 tokens
    python bench/cpu_bf16_train.py --base-model models/smollm2-135m --threads 2

    # the smallest run (what tests/test_bench.py could do): the tiny random model
    python bench/cpu_bf16_train.py --base-model models/tiny-random --steps 1 --length 32 --output /tmp/bf.json

Contenders, each a full LoRA training step (forward, backward, AdamW) on the same random token batch, LoRA on
every projection as train_model.py puts it, interleaved over ``--repeats`` rounds:

- ``fp32``: base and LoRA weights in fp32 (train_model.py --precision fp32, the CPU default);
- ``autocast``: fp32 weights, matrix products under ``torch.autocast("cpu", torch.bfloat16)``;
- ``bf16``: base weights stored in bf16 plus autocast, LoRA weights fp32 (train_model.py --precision bf16).

bf16 matrix products are fast only where the CPU has AVX512-BF16 or AMX (the flags are printed); elsewhere
PyTorch emulates them and they are slower than fp32. The figure is seconds per step (median) and the loss
of the first step in each mode (bf16 changes it in the third digit, no more).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medlora.common.cli import UsageError, run_stage  # noqa: E402
from medlora.common.files import write_json  # noqa: E402

MODES = ("fp32", "autocast", "bf16")


@dataclass
class BenchConfig:
    base_model: str = field(default="models/smollm2-135m", metadata={"help": "base model directory"})
    threads: int = field(default=2, metadata={"help": "torch threads"})
    batch_size: int = field(default=4, metadata={"help": "sequences per step"})
    length: int = field(default=256, metadata={"help": "tokens per sequence"})
    steps: int = field(default=3, metadata={"help": "timed steps per mode and repeat"})
    repeats: int = field(default=2, metadata={"help": "interleaved rounds over the modes"})
    output: str = field(default="bench/results/cpu_bf16_train.json", metadata={"help": "JSON results"})

    def validate(self) -> None:
        if not (Path(self.base_model) / "config.json").is_file():
            raise UsageError(
                f"no model at {self.base_model}: run `python download_model.py --model smollm2-135m`"
            )
        if min(self.threads, self.batch_size, self.length, self.steps, self.repeats) < 1:
            raise UsageError("--threads, --batch-size, --length, --steps and --repeats must be >= 1")


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return sorted({f for f in text.split() if f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f")})


def build(base: str, mode: str):
    import torch

    from medlora.training.config import LLAMA_PROJECTIONS
    from medlora.training.run import build_lora_model

    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    torch.manual_seed(0)
    model, _ = build_lora_model(base, dtype, 16, 32.0, 0.0, LLAMA_PROJECTIONS)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return model, opt


def step(model, opt, batch, mode: str) -> float:
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss)


def main(cfg: BenchConfig) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    models = {m: build(cfg.base_model, m) for m in MODES}
    vocab = models["fp32"][0].config.vocab_size
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(3, vocab, (cfg.batch_size, cfg.length), generator=g)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    first_loss = {m: step(*models[m], batch, m) for m in MODES}  # warm-up, not timed
    for r in range(cfg.repeats):
        for m in MODES[r % len(MODES) :] + MODES[: r % len(MODES)]:
            for _ in range(cfg.steps):
                t = time.perf_counter()
                step(*models[m], batch, m)
                times[m].append(time.perf_counter() - t)
    med = {m: statistics.median(v) for m, v in times.items()}
    result = {
        "config": vars(cfg),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "seconds_per_step_median": {m: round(v, 3) for m, v in med.items()},
        "speedup_vs_fp32": {m: round(med["fp32"] / v, 3) for m, v in med.items()},
        "first_step_loss": {m: round(v, 4) for m, v in first_loss.items()},
        "all_step_seconds": {m: [round(x, 3) for x in v] for m, v in times.items()},
    }
    write_json(cfg.output, result)
    for m in MODES:
        print(f"{m:9s} {med[m]:7.3f} s/step  x{result['speedup_vs_fp32'][m]:.2f}  loss {first_loss[m]:.4f}")
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, BenchConfig, description=__doc__))
