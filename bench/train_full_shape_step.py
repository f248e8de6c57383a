"""One LoRA optimizer step on a random-weight model of TinyLlama-1.1B's full shape: does it run, how much memory.

    # CPU, fp32, batch 2 x 256 tokens, the training stage's LoRA settings
    python bench/train_full_shape_step.py

    # with gradient checkpointing, or on a GPU in the card's fp16
    python bench/train_full_shape_step.py --gradient-checkpointing
    python bench/train_full_shape_step.py --device cuda --precision fp16 --batch-size 4 --seq-len 512

The shapes come from ../shared/tinyllama/config.json (22 layers, hidden 2048, 32 heads, 4 KV heads, vocab
32000): speed and memory depend on shapes, not on weight values. Nothing is written to models/ or data/; the
result is printed as JSON and written to bench/results/train_full_shape_step.json.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medlora.common.cli import UsageError, run_stage  # noqa: E402
from medlora.common.files import write_json  # noqa: E402
from medlora.model.loading import resolve_device  # noqa: E402
from medlora.training import run as training  # noqa: E402

log = logging.getLogger("train_full_shape_step")


@dataclass
class StepConfig:
    model_config: str = field(
        default=str(ROOT.parent / "shared" / "tinyllama" / "config.json"),
        metadata={"help": "config.json of the architecture to build with random weights"},
    )
    batch_size: int = field(default=2, metadata={"help": "examples in the step"})
    seq_len: int = field(default=256, metadata={"help": "tokens per example"})
    precision: Literal["auto", "fp16", "bf16", "fp32"] = field(
        default="auto", metadata={"help": "as in train_model.py: fp16 on CUDA, fp32 on CPU"}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    output: str = field(
        default=str(ROOT / "bench" / "results" / "train_full_shape_step.json"),
        metadata={"help": "where the JSON result goes"},
    )

    def validate(self) -> None:
        if not Path(self.model_config).is_file():
            raise UsageError(f"model config not found: {self.model_config} (../shared/tinyllama/config.json)")
        if self.batch_size < 1 or self.seq_len < 2 or self.lora_r < 1:
            raise UsageError("--batch-size, --lora-r must be >= 1 and --seq-len >= 2")
        out = Path(self.output).resolve()
        if any(out.is_relative_to((ROOT / d).resolve()) for d in ("models", "data")):
            raise UsageError("--output must not be under models/ or data/")


def main(cfg: StepConfig) -> dict:
    import torch
    from transformers import AutoConfig

    device = resolve_device(cfg.device)
    dtype = training.training_dtype(cfg.precision, device)
    arch = AutoConfig.from_pretrained(cfg.model_config)
    if cfg.seq_len > arch.max_position_embeddings:
        raise UsageError(f"--seq-len exceeds the model's context of {arch.max_position_embeddings}")
    torch.manual_seed(0)
    start = time.time()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model, counts = training.build_lora_model(
        None, dtype, cfg.lora_r, 2 * cfg.lora_r, 0.05, targets, gradient_checkpointing=cfg.gradient_checkpointing,
        config=arch,
    )  # fmt: skip
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device).train()
    build_s = time.time() - start
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype is torch.float16)
    ids = torch.randint(3, arch.vocab_size, (cfg.batch_size, cfg.seq_len), device=device)
    labels = ids.clone()
    labels[:, : cfg.seq_len // 2] = -100  # a prompt half, masked like the training data
    lora_b = next(p for n, p in model.named_parameters() if "lora_B" in n)
    start = time.time()
    with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not torch.float32):
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    step_s = time.time() - start
    result = {
        "model_config": cfg.model_config,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        **counts,
        "loss": float(loss),
        "loss_is_finite": math.isfinite(float(loss)),
        "lora_b_updated": bool(lora_b.detach().abs().sum() > 0),
        "lora_dtype": str(lora_b.dtype).removeprefix("torch."),
        "build_s": round(build_s, 1),
        "step_s": round(step_s, 1),
        "tokens_per_second": round(cfg.batch_size * cfg.seq_len / step_s, 1),
        "peak_memory": training.peak_memory(),
        "versions": training.library_versions(),
    }
    write_json(cfg.output, result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, StepConfig, description=__doc__))
