"""Training throughput on real MedQuAD examples: the project's path against two plain LoRA recipes.

    # CPU defaults (a scaled-down TinyLlama, 1 thread, 8 steps of batch 4, 3 interleaved repeats; ~5 min)
    python bench/train_throughput.py

    # the smallest run (what tests/test_bench.py does)
    python bench/train_throughput.py --limit 24 --steps 1 --repeats 1 --layers 1 --no-warmup --output /tmp/tt.json

    # GPU: TinyLlama's full shape in fp16, with gradient checkpointing (checks the card's 4 GB claim)
    python bench/train_throughput.py --device cuda --gradient-checkpointing --steps 20

Contenders, all through the HF Trainer, on the same model (same seed, same random weights), the same
``steps * batch_size`` examples drawn from data/medquad/train.jsonl, one epoch each, repeats interleaved
(order rotated every repeat):

- ``project``: train_model.py's own TrainingArguments, the cached tokenised split (medlora.training.run.load_split),
  PadCollator (dynamic padding, masked by length) and length-grouped batches: the sample is ``steps`` batches
  picked at random from the LengthGroupedSampler's order over the WHOLE split (on a sample of a few dozen
  examples the sampler's megabatches would be too small to group), fed in that order;
- ``plain``: (a) the plain Trainer + PEFT recipe: random batches, DataCollatorForSeq2Seq dynamic padding;
- ``pad512``: (b) the tutorial recipe: every example padded to --max-length (512).

Figures: real (non-padding) tokens per second of training (median over repeats), the padding share of the
batches actually fed, peak memory (RSS on CPU, allocated/reserved on CUDA), and the padding share one
whole epoch of the train split would have under random vs length-grouped batches. Speed depends on shapes,
not weights: the model has random weights built from ../shared/tinyllama/config.json (scaled down on CPU,
as printed). Tokenised splits are cached in bench/results/cache/; nothing is written to models/ or data/.
"""

from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, TINYLLAMA_DIR  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402

log = logging.getLogger("train_throughput")

CONTENDERS = ("project", "plain", "pad512")
TARGET_RATIO, TARGET_PADDING = 1.4, 0.05


@dataclass
class ThroughputConfig:
    data_dir: str = field(default=str(ROOT / "data" / "medquad"), metadata={"help": "holds train.jsonl"})
    tokenizer_dir: str = field(default=str(TINYLLAMA_DIR), metadata={"help": "TinyLlama's tokenizer.model"})
    model_config: str = field(
        default=str(TINYLLAMA_DIR / "config.json"),
        metadata={"help": "architecture to build (random weights)"},
    )
    shape: Literal["auto", "full", "small"] = field(
        default="auto", metadata={"help": "auto: full on CUDA, small (scaled down, printed) on CPU"}
    )
    layers: int = field(default=0, metadata={"help": "override the number of layers (0: the shape's)"})
    steps: int = field(default=8, metadata={"help": "optimizer steps per run (one epoch of steps*batch)"})
    batch_size: int = field(default=4, metadata={"help": "examples per step (the card's 4)"})
    max_length: int = field(default=512, metadata={"help": "training window; pad512 pads to it"})
    repeats: int = field(default=3, metadata={"help": "interleaved repeats per contender (median)"})
    limit: int = field(default=0, metadata={"help": "tokenise only the first N train rows (0: all)"})
    seed: int = field(default=0, metadata={"help": "seed of the example sample and of the weights"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    precision: Literal["auto", "fp16", "bf16", "fp32"] = field(
        default="auto", metadata={"help": "as train_model.py: fp16 on CUDA, fp32 on CPU"}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "for every contender"})
    warmup: bool = field(default=True, metadata={"help": "one untimed step first (allocator, lazy imports)"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (pinned, recorded)"})
    cache_dir: str = field(
        default=str(ROOT / "bench" / "results" / "cache"), metadata={"help": "cache of tokenised splits"}
    )
    output: str = field(
        default=str(ROOT / "bench" / "results" / "train_throughput.json"), metadata={"help": "JSON result"}
    )

    def validate(self) -> None:
        for name in ("steps", "batch_size", "repeats", "threads"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        if self.layers < 0 or self.limit < 0 or self.max_length < 32:
            raise UsageError("--layers and --limit must be >= 0, --max-length >= 32")
        common.check_output(self.output)
        common.check_output(Path(self.cache_dir) / "x")


class CountingCollator:
    """Wraps a collator and counts the token slots and the real tokens of every batch it builds."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.slots = self.real = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(features)
        self.slots += batch["input_ids"].numel()
        self.real += int(batch["attention_mask"].sum())
        return batch


def plain_args(cfg: ThroughputConfig, out_dir: str, device: str, dtype):
    """The plain recipe's TrainingArguments: the project's hyperparameters, default (random) sampling."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=out_dir,
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        optim="adamw_torch_fused" if device == "cuda" else "adamw_torch",
        fp16=dtype is torch.float16,
        bf16=dtype is torch.bfloat16,
        use_cpu=device == "cpu",
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_pin_memory=device == "cuda",
    )


def project_args(cfg: ThroughputConfig, out_dir: str, device: str, dtype):
    """train_model.py's own TrainingArguments, with saving and logging off (they are not training)."""
    import train_model

    tcfg = train_model.TrainConfig(
        output_dir=out_dir,
        max_steps=cfg.steps,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed,
    )
    args = train_model.training_args(tcfg, device, dtype, has_eval=False)
    # The sample already holds the project's length-grouped batches, in order (see project_batches).
    args.train_sampling_strategy = "sequential"
    args = args.set_save(strategy="no")
    args = args.set_logging(strategy="no")
    args.disable_tqdm = True
    return args


def project_batches(lengths: list[int], batch_size: int, steps: int, seed: int) -> list[int]:
    """``steps`` batches picked at random from the project's length-grouped order of one whole epoch.

    The HF LengthGroupedSampler sorts megabatches of min(50, n / (4 * batch)) batches: on a small sample it
    barely groups, on the real split it does. So the sample is made of batches exactly as the project's
    sampler forms them over the whole split; the other contenders get the same examples in random batches.
    """
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    gen = torch.Generator().manual_seed(seed)
    order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=gen))
    batches = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    picked = random.Random(seed).sample(range(len(batches)), steps)
    return [i for b in picked for i in batches[b]]


def run_once(name: str, cfg: ThroughputConfig, arch, sample, tokenizer, device: str, dtype) -> dict[str, Any]:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer

    from medlora.training import objective
    from medlora.training import run as training

    torch.manual_seed(cfg.seed)  # identical LoRA init and dropout stream for every contender
    model, _ = training.build_lora_model(
        None, dtype, 16, 32.0, 0.05, common.LORA_TARGETS, gradient_checkpointing=cfg.gradient_checkpointing,
        config=arch,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out_dir:
        if name == "project":
            args = project_args(cfg, out_dir, device, dtype)
            data = sample
            inner = objective.PadCollator(tokenizer.pad_token_id, 8 if device == "cuda" else None)
        else:
            args = plain_args(cfg, out_dir, device, dtype)
            data = sample.remove_columns(["length"])
            padding = "max_length" if name == "pad512" else True
            inner = DataCollatorForSeq2Seq(
                tokenizer, padding=padding, max_length=cfg.max_length if name == "pad512" else None,
                label_pad_token_id=-100, return_tensors="pt",
            )  # fmt: skip
        collator = CountingCollator(inner)
        clock = training.throughput_callback()
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[clock],
        )
        with common.PeakMemory(device) as mem:
            out = trainer.train()
        steps = trainer.state.global_step
    wall = clock.summary()["wall_time_s"]
    del trainer, model
    return {
        "contender": name,
        "steps": steps,
        "train_s": wall,
        "real_tokens": collator.real,
        "slots": collator.slots,
        "real_tokens_per_s": round(collator.real / max(wall, 1e-9), 1),
        "padding_share": round(1 - collator.real / collator.slots, 4) if collator.slots else 0.0,
        "train_loss": round(float(out.training_loss), 4),
        "memory": mem.result,
    }


def main(cfg: ThroughputConfig) -> dict[str, Any]:
    data_dir, tok_dir = Path(cfg.data_dir), Path(cfg.tokenizer_dir)
    common.require(
        [
            (tok_dir / "tokenizer.model", "TinyLlama tokenizer (../shared/tinyllama/tokenizer.model)"),
            (Path(cfg.model_config), "TinyLlama config (../shared/tinyllama/config.json)"),
            (data_dir / "train.jsonl", "train split (run `python download_model.py` first)"),
        ]
    )
    device = common.resolve_bench_device(cfg.device)
    threads = common.pin_threads(cfg.threads)
    import datasets

    from medlora.training import run as training

    datasets.disable_progress_bars()  # keep the printed table readable

    dtype = training.training_dtype(cfg.precision, device)
    shape = cfg.shape if cfg.shape != "auto" else ("full" if device == "cuda" else "small")
    arch, shape_desc = common.model_config(Path(cfg.model_config), shape, cfg.layers)
    log.info("model: %s; %s, %s, %d torch thread(s)", shape_desc, device, dtype, threads)
    tokenizer = common.load_bench_tokenizer(tok_dir)

    start = time.perf_counter()
    split, stats = training.load_split(
        data_dir / "train.jsonl", tokenizer, training.tokenizer_fingerprint(tok_dir), cfg.max_length,
        Path(cfg.cache_dir), cfg.limit,
    )  # fmt: skip
    load_s = time.perf_counter() - start
    need = cfg.steps * cfg.batch_size
    if len(split) < need:
        raise UsageError(f"--steps x --batch-size needs {need} examples, the split has {len(split)}")
    lengths = split["length"]
    idx = project_batches(lengths, cfg.batch_size, cfg.steps, cfg.seed)
    sample = split.select(idx)
    epoch_padding = {
        "random_batches": training.padding_share(lengths, cfg.batch_size, grouped=False, seed=cfg.seed),
        "length_grouped": training.padding_share(lengths, cfg.batch_size, grouped=True, seed=cfg.seed),
    }
    # The cost of the project's encode_example per example, cold (what a first run pays before the cache).
    from medlora.common.files import read_jsonl
    from medlora.data.prompts import encode_example

    rows = read_jsonl(data_dir / "train.jsonl")
    rows = rows[: cfg.limit] if cfg.limit else rows
    probe = random.Random(cfg.seed).sample(rows, min(len(rows), 200))
    with common.Timer() as t_tok:
        for r in probe:
            encode_example(tokenizer, r["messages"], cfg.max_length, kind=r["kind"])
    tok_ms = 1000 * t_tok.seconds / len(probe)

    if cfg.warmup:
        log.info("warm-up run (not timed)")
        warm = ThroughputConfig(**{**cfg.__dict__, "steps": 1})
        run_once("project", warm, arch, sample.select(range(cfg.batch_size)), tokenizer, device, dtype)

    runs: list[dict[str, Any]] = []
    for rep in range(cfg.repeats):
        for name in common.rotated(CONTENDERS, rep):
            r = run_once(name, cfg, arch, sample, tokenizer, device, dtype)
            r["repeat"] = rep
            runs.append(r)
            log.info("repeat %d %-8s %8.1f real tok/s, padding %.1f%%, %.1f s",
                     rep, name, r["real_tokens_per_s"], 100 * r["padding_share"], r["train_s"])  # fmt: skip

    mem_key = "cuda_peak_allocated_mib" if device == "cuda" else "rss_peak_mib"
    summary: dict[str, dict[str, Any]] = {}
    for name in CONTENDERS:
        mine = [r for r in runs if r["contender"] == name]
        summary[name] = {
            "real_tokens_per_s_median": round(common.median([r["real_tokens_per_s"] for r in mine]), 1),
            "real_tokens_per_s_runs": [r["real_tokens_per_s"] for r in mine],
            "padding_share": mine[0]["padding_share"],
            "real_tokens": mine[0]["real_tokens"],
            "slots": mine[0]["slots"],
            "peak_memory_mib_max": max(r["memory"].get(mem_key) or 0 for r in mine),
            "cuda_peak_reserved_mib_max": max(r["memory"].get("cuda_peak_reserved_mib") or 0 for r in mine)
            if device == "cuda"
            else None,
            "train_loss": [r["train_loss"] for r in mine],
        }
    proj = summary["project"]
    # Ratios per repeat (each repeat's contenders ran back to back), then the median of those ratios.
    per_rep = {
        other: [
            next(r for r in runs if r["repeat"] == k and r["contender"] == "project")["real_tokens_per_s"]
            / next(r for r in runs if r["repeat"] == k and r["contender"] == other)["real_tokens_per_s"]
            for k in range(cfg.repeats)
        ]
        for other in ("plain", "pad512")
    }
    ratios = {f"project_vs_{o}": round(common.median(v), 3) for o, v in per_rep.items()}
    targets = {
        "real_tokens_per_s_vs_plain": {
            "target": f">= {TARGET_RATIO}x",
            "measured": ratios["project_vs_plain"],
            "met": ratios["project_vs_plain"] >= TARGET_RATIO,
        },
        "padding_share": {
            "target": f"< {TARGET_PADDING:.0%}",
            "measured_sample": proj["padding_share"],
            "measured_epoch": epoch_padding["length_grouped"] if not cfg.limit else None,
            "met": proj["padding_share"] < TARGET_PADDING
            and (cfg.limit or epoch_padding["length_grouped"] < TARGET_PADDING),
        },
    }
    train_claim = None
    if device == "cuda" and cfg.gradient_checkpointing and shape == "full":
        train_claim = proj["cuda_peak_reserved_mib_max"] / 1024
    result = {
        "benchmark": "train_throughput",
        "config": dict(cfg.__dict__),
        "environment": common.environment(device, threads),
        "model": {"shape": shape, "description": shape_desc, "dtype": str(dtype).removeprefix("torch.")},
        "data": {
            "split": str(data_dir / "train.jsonl"),
            "examples_in_split": len(split),
            "tokenisation": stats,
            "split_load_s": round(load_s, 2),
            "sample_examples": need,
            "encode_example_ms_per_example": round(tok_ms, 2),
        },
        "epoch_padding_share": epoch_padding,
        "contenders": summary,
        "ratios": ratios,
        "ratios_per_repeat": {k: [round(x, 3) for x in v] for k, v in per_rep.items()},
        "targets": targets,
        "claims": [
            common.claim(
                "training within 4 GB (gradient checkpointing, full shape, CUDA)",
                4.0,
                train_claim,
                "GiB reserved",
            )
        ],  # fmt: skip
        "runs": runs,
    }
    common.write_results(common.check_output(cfg.output), result)

    mem_head = "peak GPU MiB" if device == "cuda" else "peak RSS MiB"
    rows_out = [
        [n, summary[n]["real_tokens_per_s_median"], f"{summary[n]['padding_share']:.1%}",
         summary[n]["peak_memory_mib_max"], round(summary["project"]["real_tokens_per_s_median"]
                                                   / summary[n]["real_tokens_per_s_median"], 3)]
        for n in CONTENDERS
    ]  # fmt: skip
    print(f"\nTraining throughput: {shape_desc}")
    print(f"{device}, {str(dtype).removeprefix('torch.')}, {threads} torch thread(s); "
          f"{cfg.steps} steps x batch {cfg.batch_size} = {need} MedQuAD train examples, "
          f"{cfg.repeats} interleaved repeats, medians")  # fmt: skip
    print(common.table(["contender", "real tok/s", "padding", mem_head, "project / this"], rows_out))
    print(
        f"project / plain per-repeat median: {ratios['project_vs_plain']}x (target >= {TARGET_RATIO}x: "
        f"{'met' if targets['real_tokens_per_s_vs_plain']['met'] else 'missed'}); "
        f"whole-epoch padding share: random {epoch_padding['random_batches']:.1%}, "
        f"length-grouped {epoch_padding['length_grouped']:.1%} (target < {TARGET_PADDING:.0%}); "
        f"encode_example {tok_ms:.2f} ms/example"
    )
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, ThroughputConfig, description=__doc__))
