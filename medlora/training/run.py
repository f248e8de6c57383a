"""Training data and run records, shared by train_model.py and the benchmarks under bench/.

Tokenised splits are cached under ``<data>/cache/`` keyed by everything that decides their content (the split
file, the tokenizer, the window, the tokenisation code), so a second run starts training at once. Every example
goes through ``medlora.data.prompts.encode_example``: there is no second tokenisation path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import resource
import shutil
from pathlib import Path
from typing import Any

from ..common.files import atomic_path, make_temp_dir, read_jsonl, sha256_files, write_json
from ..data import prompts
from ..data.prompts import encode_example

log = logging.getLogger(__name__)

# 2: a limited split is a seeded sample over the whole file, not its first rows. 3: the decision tokens column
# and the treatment mixture.
CACHE_FORMAT = 3
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
)
# Below this many examples, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 2000


def tokenizer_fingerprint(model_dir: str | Path) -> str:
    files = [Path(model_dir) / name for name in TOKENIZER_FILES if (Path(model_dir) / name).is_file()]
    return sha256_files(files)


def pad_token_id(tokenizer: Any) -> int:
    """A padding id that is not EOS: padding with EOS would teach the model that EOS is noise."""
    pad = tokenizer.pad_token_id
    if pad is None or pad == tokenizer.eos_token_id:
        pad = tokenizer.unk_token_id
    if pad is None or pad == tokenizer.eos_token_id:
        raise ValueError("the tokenizer has neither a pad token nor an unk token distinct from EOS")
    return pad


def _encode_row(row: dict[str, Any], tokenizer: Any, max_length: int) -> dict[str, Any]:
    enc = encode_example(tokenizer, row["messages"], max_length, kind=row["kind"])
    if enc is None:
        return {
            "input_ids": [],
            "labels": [],
            "decisions": [],
            "length": 0,
            "shortened": False,
            "dropped": True,
        }
    return {
        "input_ids": enc.input_ids,
        "labels": enc.labels,
        "decisions": sorted((enc.decisions or {}).values()),
        "length": len(enc.input_ids),
        "shortened": enc.shortened,
        "dropped": False,
    }


def tokenise_rows(tokenizer: Any, rows: list[dict[str, Any]], max_length: int, num_proc: int | None = None):
    """``(dataset, stats)``: columns input_ids, labels, length; stats count examples shortened and dropped."""
    import datasets

    if num_proc is None:
        num_proc = min(os.cpu_count() or 1, 8) if len(rows) >= PARALLEL_THRESHOLD else 1
    table = datasets.Dataset.from_list([{"kind": r["kind"], "messages": r["messages"]} for r in rows])
    ints = datasets.Sequence(datasets.Value("int64"))
    # Explicit types: a first batch of QA rows alone would type "decisions" as a list of nulls.
    features = datasets.Features(
        {"input_ids": ints, "labels": ints, "decisions": ints, "length": datasets.Value("int64")}
        | {"shortened": datasets.Value("bool"), "dropped": datasets.Value("bool")}
    )
    encoded = table.map(
        _encode_row,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length},
        remove_columns=table.column_names,
        features=features,
        num_proc=num_proc if num_proc > 1 else None,
        desc="tokenising",
    )
    dropped = sum(encoded["dropped"])
    stats = {
        "total": len(rows),
        "treatment": sum(r["kind"] == "treatment" for r in rows),
        "used": len(rows) - dropped,
        "shortened": sum(encoded["shortened"]),
        "dropped": dropped,
        "tokens": sum(encoded["length"]),
    }
    keep = encoded.filter(lambda d: not d, input_columns="dropped")
    return keep.remove_columns(["shortened", "dropped"]), stats


def sample_rows(rows: list[dict[str, Any]], limit: int, seed: int = 0) -> list[dict[str, Any]]:
    """``limit`` rows drawn at random (seeded) and kept in file order; all rows for ``limit`` 0.

    The split files are sorted by id, so every QA example comes before every treatment example: the first N rows
    of a short run would hold no treatment example at all (the first SmolLM2 CPU run trained on QA only)."""
    if not limit or limit >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def prompt_code() -> bytes:
    """The bytes of the prompt format's module without its import lines: what shapes the tokens. Moving a module
    the prompt format imports from changes no prompt, so it must not throw the tokenised cache away."""
    lines = Path(prompts.__file__).read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith((b"from ", b"import ")))


def cache_key(
    split_file: Path, tokenizer_fp: str, max_length: int, limit: int, mix: dict[str, Any] | None = None
) -> str:
    code = hashlib.sha256(prompt_code()).hexdigest()
    parts = {
        "format": CACHE_FORMAT,
        "code": code,
        "data": sha256_files([split_file]),
        "tokenizer": tokenizer_fp,
        "max_length": max_length,
        "limit": limit,
        **({"mixture": mix} if mix else {}),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_split(
    split_file: Path,
    tokenizer: Any,
    tokenizer_fp: str,
    max_length: int,
    cache_dir: Path,
    limit: int = 0,
    mix: dict[str, Any] | None = None,
):
    """The tokenised split from the cache, or tokenised now and cached (written beside, then renamed). ``mix``
    (``treatment_share``, ``rare_boost``, ``seed``): ``limit`` rows drawn by ``learnable.mixture``."""
    import datasets

    dest = cache_dir / f"{split_file.stem}-{cache_key(split_file, tokenizer_fp, max_length, limit, mix)}"
    meta_file = dest / "medlora_stats.json"
    if meta_file.is_file():
        log.info("using cached tokenised %s from %s", split_file.name, dest)
        return datasets.load_from_disk(str(dest)), json.loads(meta_file.read_text(encoding="utf-8"))
    rows = read_jsonl(split_file)
    if mix and limit:
        from .mixture import mixture

        rows = mixture(rows, limit, mix["treatment_share"], mix["rare_boost"], mix.get("seed", 0))
    else:
        rows = sample_rows(rows, limit)
    ds, stats = tokenise_rows(tokenizer, rows, max_length)
    tmp = make_temp_dir(dest)
    try:
        ds.save_to_disk(str(tmp))
        write_json(tmp / "medlora_stats.json", stats)
        if dest.exists():  # another writer finished first; theirs is identical
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return datasets.load_from_disk(str(dest)), stats


def padding_share(lengths: list[int], batch_size: int, grouped: bool, seed: int = 0) -> float:
    """Share of the token slots in one epoch's batches that are padding, for random or length-grouped order."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    if not lengths:
        return 0.0
    if grouped:
        gen = torch.Generator().manual_seed(seed)
        order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=gen))
    else:
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
    slots = real = 0
    for i in range(0, len(order), batch_size):
        batch = [lengths[j] for j in order[i : i + batch_size]]
        slots += max(batch) * len(batch)
        real += sum(batch)
    return round(1 - real / slots, 4)


STEP_KEYS = ("loss", "learning_rate", "grad_norm", "eval_loss")


def step_records(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per logged step (train and eval entries of the same step merged), in step order."""
    steps: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if not any(k in entry for k in STEP_KEYS):
            continue
        rec = steps.setdefault(
            entry["step"], {"step": entry["step"], "epoch": None, **dict.fromkeys(STEP_KEYS)}
        )
        if entry.get("epoch") is not None:
            rec["epoch"] = round(float(entry["epoch"]), 4)
        for key in STEP_KEYS:
            if key in entry:
                rec[key] = float(entry[key])
    return [steps[k] for k in sorted(steps)]


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process and, on CUDA, peak allocated GPU memory, in MiB."""
    import torch

    # ru_maxrss is in KiB on Linux.
    out = {"rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["cuda_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return out


def plot_loss(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in (("loss", "train loss", "-"), ("eval_loss", "eval loss", "o-")):
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def load_adapter_weights(model: Any, adapter_dir: str | Path) -> None:
    """Set ``model``'s LoRA weights to those saved in ``adapter_dir``; a ValueError when they do not match its
    LoRA layout (rank, target modules, layers), so that no weight is silently left at its initial value."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    mine = {k for k in model.state_dict() if "lora_" in k}
    result = set_peft_model_state_dict(model, state)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or len(missing) or len(state) != len(mine):
        raise ValueError(
            f"the adapter in {adapter_dir} does not match this LoRA layout ({len(state)} tensors there, "
            f"{len(mine)} here): use the same --lora-r, --lora-target-modules and --lora-top-layers"
        )
    log.info("LoRA weights loaded from %s (%d tensors)", adapter_dir, len(state))


def build_lora_model(
    base_dir: str | Path,
    dtype: Any,
    r: int,
    alpha: float,
    dropout: float,
    target_modules: list[str],
    load_in_4bit: bool = False,
    gradient_checkpointing: bool = False,
    config: Any = None,
    top_layers: int = 0,
    init_adapter: str | Path | None = None,
):
    """``(peft_model, parameter_counts)``: the base (or a random model of ``config``'s shape) with LoRA on it.

    The LoRA weights stay in fp32 whatever the base's dtype: fp16 trainable weights fail with "Attempting to
    unscale FP16 gradients" under the AMP grad scaler, or drift to NaN.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if config is not None:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        kwargs: dict[str, Any] = {"dtype": dtype}
        if load_in_4bit:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=True,
            )
        model = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
    model.config.use_cache = False  # a KV cache is of no use in training and costs memory
    if load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    # ``top_layers``: LoRA on the last N decoder layers only; backpropagation then stops at the lowest of them,
    # which on a CPU saves most of the backward pass through the frozen layers below (0: every layer).
    n_layers = model.config.num_hidden_layers
    layers = list(range(max(n_layers - top_layers, 0), n_layers)) if top_layers else None
    lora = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM",
        layers_to_transform=layers,
    )  # fmt: skip
    model = get_peft_model(model, lora, autocast_adapter_dtype=True)
    if init_adapter:
        load_adapter_weights(model, init_adapter)
    if gradient_checkpointing:
        # Checkpointed blocks need an input that requires grad, and the frozen embeddings give none.
        model.enable_input_require_grads()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    counts = {
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_share": round(trainable / total, 6),
    }
    log.info("trainable parameters: %d of %d (%.3f%%)", trainable, total, 100 * trainable / total)
    return model, counts


def library_versions() -> dict[str, str]:
    import platform

    import accelerate
    import peft
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def find_checkpoint(ckpt_dir: Path, fingerprint: dict[str, Any]) -> str | None:
    """The last complete checkpoint in ``ckpt_dir`` of a run with the same settings, or None.

    Checkpoints of other settings are never resumed silently (nor deleted): that is a UsageError naming them.
    """
    from ..common.cli import UsageError

    # trainer_state.json is the last file the Trainer writes into a checkpoint: without it, it is partial.
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    if not done:
        return None
    saved_file = ckpt_dir / "run_fingerprint.json"
    saved = json.loads(saved_file.read_text(encoding="utf-8")) if saved_file.is_file() else {}
    changed = sorted(k for k, v in fingerprint.items() if saved.get(k) != v)
    if changed:
        raise UsageError(
            f"the checkpoints in {ckpt_dir} come from other settings ({', '.join(changed)}): rerun with the "
            "same settings to resume, or pass --no-resume to start afresh (this deletes them)"
        )
    return str(max(done, key=lambda p: int(p.name.rsplit("-", 1)[-1])))


def throughput_callback():
    """A Trainer callback that measures this session's training time without the evaluations in it."""
    import time

    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        def __init__(self) -> None:
            self.start = self.tokens_before = 0.0
            self.wall = self.eval_s = 0.0
            self.tokens = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.start, self.tokens_before = time.time(), state.num_input_tokens_seen

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self.eval_s += (metrics or {}).get("eval_runtime", 0.0)

        def on_train_end(self, args, state, control, **kwargs):
            self.wall = time.time() - self.start
            self.tokens = state.num_input_tokens_seen - self.tokens_before

        def summary(self) -> dict[str, Any]:
            train_s = max(self.wall - self.eval_s, 1e-9)
            return {
                "wall_time_s": round(self.wall, 2),
                "eval_time_s": round(self.eval_s, 2),
                "tokens": self.tokens,
                "tokens_per_second": round(self.tokens / train_s, 1),
            }

    return Throughput()


def training_dtype(precision: str, device: str, load_in_4bit: bool = False):
    """The base model's dtype for training: the card's fp16 on CUDA for ``auto``, fp32 on CPU.

    Everything that cannot work here is a UsageError before any work: half precision the device lacks, 4-bit
    loading without CUDA or bitsandbytes.
    """
    import torch

    from ..common.cli import UsageError
    from ..model.loading import resolve_dtype

    dtype = resolve_dtype("fp16" if precision == "auto" and device.startswith("cuda") else precision, device)
    if dtype is torch.bfloat16 and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise UsageError("this GPU does not support bf16: use --precision fp16")
    if load_in_4bit:
        if not device.startswith("cuda"):
            raise UsageError("--load-in-4bit needs a CUDA GPU (bitsandbytes); on CPU train without it")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise UsageError("--load-in-4bit needs bitsandbytes: pip install bitsandbytes") from None
    return dtype
