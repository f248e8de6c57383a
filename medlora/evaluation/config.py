"""evaluate_model.py's settings: defaults, help text and the checks that run before any work, and where the
report goes. Here, beside the evaluation code, so the script stays a page of steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..common.cli import UsageError


@dataclass
class EvalConfig:
    base_model: str = field(default="models/tinyllama", metadata={"help": "base model directory"})
    adapter: str = field(
        default="models/tinyllama-medquad-treatment",
        metadata={"help": "LoRA adapter directory from train_model.py"},
    )
    data_dir: str = field(
        default="data/medquad", metadata={"help": "directory with train.jsonl and test.jsonl"}
    )
    base_only: bool = field(default=False, metadata={"help": "evaluate the base model only"})
    adapter_only: bool = field(default=False, metadata={"help": "evaluate base+adapter only"})
    retrieval_only: bool = field(
        default=False,
        metadata={"help": "only what needs no model: the no-model rows and the retrieval baseline"},
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "caps --limit-mc, --limit-gen and --limit-treatment (a small CPU run)"},
    )
    limit_mc: int = field(
        default=1000, metadata={"help": "multiple-choice items (0 skips; capped at the split)"}
    )
    limit_gen: int = field(
        default=160, metadata={"help": "questions answered greedily for BLEU/ROUGE-L (0 skips)"}
    )
    limit_treatment: int = field(
        default=96,
        metadata={"help": "treatment examples (synthetic patients) generated and scored (0 skips)"},
    )
    free_treatment: bool = field(
        default=True,
        metadata={"help": "also score free (unconstrained) treatment generation; off halves a CPU run's treatment "
                  "time and keeps the published, constrained figures"},
    )  # fmt: skip
    distractors: bool = field(
        default=True,
        metadata={"help": "also generate with distractor passages only (the abstention figure); off halves a "
                  "model row's constrained generation"},
    )  # fmt: skip
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass / generate call"})
    max_new_tokens: int = field(default=512, metadata={"help": "token budget of a generated answer"})
    treatment_max_new_tokens: int = field(default=512, metadata={"help": "token budget of a treatment JSON"})
    mc_answer_tokens: int = field(default=256, metadata={"help": "options are cut to this many tokens"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95%% intervals"})
    seed: int = field(default=42, metadata={"help": "seeds item selection, distractors and the bootstrap"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    precision: Literal["auto", "fp32", "fp16", "bf16"] = field(
        default="auto",
        metadata={
            "help": "auto: the adapter's training precision (model_info.json) where the device has it, else "
            "bf16/fp16 on GPU and fp32 on CPU; base and fine-tuned always share one"
        },
    )
    merge: bool = field(
        default=False,
        metadata={
            "help": "merge the adapter into the base weights (rounds it to their dtype; off: as trained)"
        },
    )
    gguf: list[str] = field(
        default_factory=list,
        metadata={"help": "exported GGUF files (export_model.py) given a row each on the same treatment items: "
                  "constrained, grounded generation on llama.cpp as inference.py --backend llama-cpp serves it"},
    )  # fmt: skip
    models_dir: str | None = field(
        default=None, metadata={"help": "where model_info.json is updated; default: the adapter's parent"}
    )
    output: str | None = field(
        default=None, metadata={"help": "report path; default: <models-dir>/eval_results.json"}
    )
    resume: bool = field(
        default=True,
        metadata={"help": "reuse the parts an interrupted run with the same settings and data finished "
                  "(<report>.parts.json); --no-resume measures everything afresh"},
    )  # fmt: skip

    def unused(self) -> set[str]:
        """Settings this run does not read: left out of the settings line (medlora/common/cli.py)."""
        if self.retrieval_only:
            return {"base_model", "adapter", "precision", "merge", "device", "batch_size", "max_new_tokens",
                    "mc_answer_tokens"}  # fmt: skip
        return {"adapter", "merge"} if self.base_only else set()

    def validate(self) -> None:
        if self.limit is not None:
            if self.limit < 0:
                raise UsageError("--limit must be 0 or more")
            self.limit_mc = min(self.limit_mc, self.limit)
            self.limit_gen = min(self.limit_gen, self.limit)
            self.limit_treatment = min(self.limit_treatment, self.limit)
        if sum([self.base_only, self.adapter_only, self.retrieval_only]) > 1:
            raise UsageError("--base-only, --adapter-only and --retrieval-only exclude each other")
        for name in ("limit_mc", "limit_gen", "limit_treatment"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more")
        for name in (
            "batch_size",
            "max_new_tokens",
            "treatment_max_new_tokens",
            "mc_answer_tokens",
            "bootstrap",
        ):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if missing := [g for g in self.gguf if not Path(g).is_file()]:
            raise UsageError(f"--gguf: no such file: {' '.join(missing)} (export one with export_model.py)")
        if self.gguf:
            from medlora.generation.llama_backend import check_gguf, require_llama_cpp

            require_llama_cpp()  # before minutes of model evaluation, not after them
            for path in self.gguf:
                check_gguf(path)
        if self.gguf and self.limit_treatment == 0:
            raise UsageError("--gguf rows score treatment items: give --limit-treatment above 0")
        if self.retrieval_only and self.limit_gen == 0:
            raise UsageError("--retrieval-only scores generated-answer items: give --limit-gen above 0")

    @property
    def models_path(self) -> Path:
        if self.models_dir:
            return Path(self.models_dir)
        return Path(self.adapter).parent if not (self.base_only or self.retrieval_only) else Path("models")

    @property
    def output_path(self) -> Path:
        return Path(self.output) if self.output else self.models_path / "eval_results.json"
