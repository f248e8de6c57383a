"""train_model.py's settings (defaults, help text, checks) and what they become: the Trainer's arguments and the
fingerprint under which a checkpoint may be resumed. Here, beside the training code, so the script stays a page of
steps and a test or another tool builds the same configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..common.cli import UsageError, config_dict
from ..common.progress import on_terminal

DEFAULT_OUTPUT = "models/tinyllama-medquad-treatment"
LLAMA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Settings that change what is optimised: a checkpoint is resumed only under the same ones.
RESUME_KEYS = (
    "base_model", "data_dir", "max_length", "limit_examples", "limit_val_examples", "epochs", "max_steps",
    "batch_size", "gradient_accumulation_steps", "learning_rate", "warmup_ratio", "weight_decay", "lora_r", "lora_alpha",
    "lora_dropout", "lora_target_modules", "precision", "load_in_4bit", "seed", "eval_steps",
    "decision_weight", "treatment_share", "rare_boost", "lora_top_layers", "balance_decisions", "init_adapter",
)  # fmt: skip


@dataclass
class TrainConfig:
    base_model: str = field(default="models/tinyllama", metadata={"help": "base model directory"})
    data_dir: str = field(default="data/medquad", metadata={"help": "holds train.jsonl and val.jsonl"})
    output_dir: str = field(default=DEFAULT_OUTPUT, metadata={"help": "where the finished adapter goes"})
    cache_dir: str | None = field(
        default=None, metadata={"help": "cache of tokenised splits; none: DATA_DIR/cache"}
    )
    epochs: float = field(default=3.0, metadata={"help": "training epochs"})
    max_steps: int = field(default=0, metadata={"help": "stop after N optimizer steps (0: all epochs)"})
    batch_size: int = field(default=4, metadata={"help": "examples per device per step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches per optimizer step"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (AdamW)"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of steps with linear warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    # 1280: grounded treatment prompts (record + 4 passages of <= 128 tokens) with their targets reach p99 1150
    # tokens on the MedQuAD train split; 1 treatment and 2.3% of QA examples are shortened (README).
    max_length: int = field(default=1280, metadata={"help": "training window in tokens"})
    limit_examples: int = field(
        default=0, metadata={"help": "use N train and val examples (a seeded sample)"}
    )
    limit_val_examples: int = field(
        default=0, metadata={"help": "use N val examples, a seeded sample (0: as --limit-examples)"}
    )
    treatment_share: float = field(
        default=0.0,
        metadata={
            "help": "with --limit-examples: this share of the sample are treatment examples (0: as the split)"
        },
    )
    rare_boost: bool = field(
        default=False,
        metadata={
            "help": "with --treatment-share: draw treatment examples that fill rarely filled sections more often"
        },
    )
    decision_weight: float = field(
        default=1.0,
        metadata={
            "help": "loss weight of the token after each section's '[' (filled or empty); 1: plain loss; "
            "0: left out of the loss (the base model decides, calibrated by --choose-bias)"
        },
    )
    balance_decisions: bool = field(
        default=False,
        metadata={"help": "weigh each section's filled and empty decisions equally over the training sample "
                  "(class-balanced, times --decision-weight; medlora/training/objective.py)"},
    )  # fmt: skip
    max_minutes: float = field(
        default=0.0,
        metadata={"help": "stop after the optimizer step that passes N minutes of wall time, saving the "
                  "adapter as at the end (0: no limit)"},
    )  # fmt: skip
    choose_bias: bool = field(
        default=False,
        metadata={"help": "after training, choose the per-section decoding bias against '[]' on val "
                  "(decoding.json in the adapter; medlora/data/decisions.py)"},
    )  # fmt: skip
    bias_val_rows: int = field(default=96, metadata={"help": "val treatment rows --choose-bias uses"})
    lora_top_layers: int = field(
        default=0, metadata={"help": "LoRA on the last N decoder layers only (0: all); faster steps on a CPU"}
    )
    init_adapter: str | None = field(
        default=None,
        metadata={"help": "start the LoRA weights from this adapter (same rank, modules and layers), e.g. to "
                  "train an earlier run on more of the split; the optimizer and schedule start afresh"},
    )  # fmt: skip
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: float = field(default=32.0, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(LLAMA_PROJECTIONS), metadata={"help": "modules that get LoRA weights"}
    )
    precision: Literal["auto", "fp16", "bf16", "fp32"] = field(
        default="auto", metadata={"help": "auto: fp16 on CUDA (LoRA weights in fp32), fp32 on CPU"}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    load_in_4bit: bool = field(default=False, metadata={"help": "QLoRA: 4-bit NF4 base (CUDA, bitsandbytes)"})
    eval_steps: int = field(
        default=0, metadata={"help": "evaluate and checkpoint every N steps (0: per epoch)"}
    )
    logging_steps: int = field(default=10, metadata={"help": "log loss, lr and grad norm every N steps"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (plus the best one)"})
    early_stopping_patience: int = field(default=0, metadata={"help": "stop after N worse evals (0: off)"})
    seed: int = field(default=42, metadata={"help": "seed for LoRA init, sampling and dropout"})
    resume: bool = field(default=True, metadata={"help": "resume from OUTPUT_DIR/checkpoints if present"})
    tensorboard: bool = field(default=False, metadata={"help": "also log to TensorBoard (models/runs/)"})
    merge: bool = field(
        default=False, metadata={"help": "also write a merged full model to OUTPUT_DIR/merged"}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace a finished adapter in OUTPUT_DIR"})
    evaluate: bool = field(
        default=False, metadata={"help": "run evaluate_model.py on the test split when training ends"}
    )

    def validate(self) -> None:
        positive = ("epochs", "batch_size", "gradient_accumulation_steps", "learning_rate", "lora_r")
        for name in positive:
            if not getattr(self, name) > 0:
                raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        nonneg = (
            "max_steps",
            "limit_examples",
            "limit_val_examples",
            "eval_steps",
            "early_stopping_patience",
            "lora_top_layers",
            "max_minutes",
        )
        for name in (*nonneg, "weight_decay"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
        if self.logging_steps < 1 or self.save_total_limit < 1 or self.lora_alpha <= 0:
            raise UsageError("--logging-steps, --save-total-limit and --lora-alpha must be positive")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise UsageError("--lora-dropout and --warmup-ratio must be in [0, 1)")
        if not 0 <= self.treatment_share <= 1 or self.decision_weight < 0 or self.bias_val_rows < 1:
            raise UsageError(
                "--treatment-share must be in [0, 1], --decision-weight >= 0, --bias-val-rows > 0"
            )
        if self.max_length < 32:
            raise UsageError("--max-length must be at least 32 tokens")
        if self.init_adapter and not (Path(self.init_adapter) / "adapter_model.safetensors").is_file():
            raise UsageError(f"--init-adapter {self.init_adapter}: no adapter_model.safetensors there")

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.output_dir) / "checkpoints"


def fingerprint(cfg: TrainConfig, data_hash: str) -> dict:
    values = config_dict(cfg)
    return {**{k: values[k] for k in RESUME_KEYS}, "data_hash": data_hash}


def training_args(cfg: TrainConfig, device: str, dtype, has_eval: bool):
    import torch
    from transformers import TrainingArguments

    strategy = "steps" if cfg.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(cfg.checkpoint_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of the total steps
        weight_decay=cfg.weight_decay,
        optim="adamw_torch_fused" if device.startswith("cuda") else "adamw_torch",
        fp16=dtype is torch.float16,
        bf16=dtype is torch.bfloat16,
        use_cpu=device == "cpu",
        activation_checkpointing=cfg.gradient_checkpointing,
        # Non-reentrant checkpointing works with frozen inputs (LoRA) and under DDP.
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        eval_strategy=strategy if has_eval else "no",
        save_strategy=strategy,
        eval_steps=cfg.eval_steps or None,
        save_steps=cfg.eval_steps or 500,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        report_to="none",
        # tqdm's carriage returns do not belong in a log file: off the terminal, the heartbeat logs lines instead.
        disable_tqdm=not on_terminal(),
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        remove_unused_columns=False,
        label_names=["labels"],
        include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=device.startswith("cuda"),
        ddp_find_unused_parameters=False,
    )
