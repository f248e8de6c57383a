"""The adapter's model card (README.md in the Hub's format), rendered only from the files beside it.

``write_model_card(adapter_dir)`` reads ``model_info.json`` (and ``run_config.json``) and nothing else, so the
training stage and the evaluation stage (after it adds ``metrics`` to ``model_info.json``) produce the same card
from the same facts. Metrics are shown only when measured; nothing here is a claim the files do not hold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from ..common.files import atomic_write
from ..common.schemas import DISCLAIMER, SECTION_NAMES

HUB_DATASET = "lavita/MedQuAD"
LICENSE = "apache-2.0"


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: Any) -> str:
    num = _number(value)
    if num is None:
        return "" if value is None else str(value)
    return str(int(num)) if num.is_integer() and abs(num) >= 1 else f"{num:.4g}"


def _metric_cell(value: Any) -> str | None:
    """A number, or a dict holding one (value/mean/score) with an optional 95% interval."""
    if _number(value) is not None:
        return _fmt(value)
    if isinstance(value, dict):
        for key in ("value", "mean", "score", "point"):
            if _number(value.get(key)) is not None:
                ci = value.get("ci") or value.get("ci95") or [value.get("low"), value.get("high")]
                if isinstance(ci, list | tuple) and len(ci) == 2 and all(_number(c) is not None for c in ci):
                    return f"{_fmt(value[key])} [{_fmt(ci[0])}, {_fmt(ci[1])}]"
                return _fmt(value[key])
    return None


def _with_interval(values: dict[str, Any], name: str) -> str:
    """The evaluation stage writes ``<name>_ci`` beside each figure; a figure is shown with its interval."""
    cell = _metric_cell(values.get(name)) or ""
    ci = values.get(f"{name}_ci")
    if cell and isinstance(ci, list | tuple) and len(ci) == 2 and all(_number(c) is not None for c in ci):
        cell += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return cell


def metrics_section(metrics: Any) -> list[str]:
    if not isinstance(metrics, dict) or not metrics:
        return ["Not measured yet: run `python evaluate_model.py` to measure accuracy, BLEU and ROUGE-L."]
    models = [k for k, v in metrics.items() if isinstance(v, dict)]
    names: list[str] = []
    for m in models:
        names += [k for k, v in metrics[m].items() if _metric_cell(v) is not None and k not in names]
    lines: list[str] = []
    if models and names:
        lines += ["| metric | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
        for name in names:
            cells = [_with_interval(metrics[m], name) for m in models]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for key, value in metrics.items():
        if key not in models and value is not None:
            lines.append(f"- {key}: `{value}`" if key == "command" else f"- {key}: {_fmt(value)}")
    if not lines:
        return ["Not measured yet: run `python evaluate_model.py` to measure accuracy, BLEU and ROUGE-L."]
    return lines


# Tags naming the base model's family, for the Hub's filters; a Llama-architecture model otherwise.
FAMILY_TAGS = {"tinyllama": "tinyllama", "smollm2": "smollm2"}


def family_tag(base_id: str) -> str:
    return next((tag for key, tag in FAMILY_TAGS.items() if key in base_id.lower()), "llama")


def base_model_lines(base: dict[str, Any], base_id: str) -> list[str]:
    """Where the base weights came from: an adapter only means something on the exact weights it was trained on
    (the embedded SmolLM2 is dequantised from a Q4_1 GGUF, not the Hub's full-precision checkpoint)."""
    lines = [f"- id: `{base_id}`, revision: `{base.get('resolved_revision')}`"]
    for key, label in (("source", "source"), ("precision", "weights"), ("license", "licence")):
        if base.get(key):
            lines.append(f"- {label}: {base[key]}")
    if base.get("precision"):
        lines.append(
            "- these exact weights come from `python download_model.py --model "
            f"{base.get('name') or base_id}`; the adapter was not trained on any other copy"
        )
    return lines


def dataset_source(source: str | None) -> str:
    """The copy of MedQuAD the data came from, as download_model.py's ``--medquad`` recorded it."""
    if source == "hf":
        return f"the Hugging Face dataset `{HUB_DATASET}`"
    if source == "github":
        return "the MedQuAD XML collection (github.com/abachaa/MedQuAD, its zip)"
    if source and source.lower().endswith((".csv", ".jsonl", ".json")):
        return f"a CSV/JSONL export of MedQuAD (`{source}`)"
    if source:
        return f"the MedQuAD XML collection, a local copy (`{source}`)"
    return "source not recorded"


def render_model_card(info: dict[str, Any], run_config: dict[str, Any]) -> str:
    base = info.get("base_model", {})
    base_id = str(base.get("model_id") or "unknown")
    lora, training = info.get("lora", {}), info.get("training", {})
    data, versions = info.get("data", {}), info.get("versions", {})
    front = {
        "base_model": base_id,
        **({"datasets": [HUB_DATASET]} if data.get("source") == "hf" else {}),
        "language": ["en"],
        "license": LICENSE,
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": ["lora", "peft", "medical", "medquad", family_tag(base_id), "not-for-clinical-use"],
    }
    hyper = {
        k: training.get(k)
        for k in (
            "epochs",
            "max_steps",
            "global_step",
            "batch_size",
            "gradient_accumulation_steps",
            "world_size",
            "learning_rate",
            "optimizer",
            "lr_scheduler",
            "warmup_ratio",
            "weight_decay",
            "max_length",
            "precision",
            "load_in_4bit",
            "seed",
        )
        if training.get(k) is not None
    }
    lora_keys = ("r", "alpha", "dropout", "target_modules", "trainable_parameters", "trainable_share")
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# LoRA adapter for {base_id}: MedQuAD answers and structured treatment recommendations",
        "",
        f"> **{DISCLAIMER}**",
        "",
        "A LoRA adapter trained with `train_model.py` on the MedQuAD question-answer pairs (`kind: qa`) and on "
        "treatment examples built from them (`kind: treatment`): a patient record in JSON in, one JSON object "
        f"with the sections {', '.join(SECTION_NAMES)} out. The data are split by focus (no condition appears in "
        "two splits).",
        "",
        "## Intended use and limits",
        "",
        "Research on small language models for medical question answering. Not for diagnosis, treatment or any "
        "clinical decision. The outputs can be wrong, incomplete or out of date; a qualified professional must "
        "review anything derived from them. Safety rules (red flags, allergy conflicts, the disclaimer) are "
        "applied by `inference.py` after generation, not by this adapter.",
        "",
        "## Base model",
        "",
        *base_model_lines(base, base_id),
        "",
        "## Training data",
        "",
        "- MedQuAD (Ben Abacha & Demner-Fushman, BMC Bioinformatics 2019), CC BY 4.0: "
        + dataset_source(data.get("source")),
        f"- files: {', '.join(f'`{f}`' for f in data.get('files', []))}",
        f"- sha256 of the files: `{data.get('hash')}`",
    ]
    for split, stats in (data.get("examples") or {}).items():
        if isinstance(stats, dict):
            lines.append(
                f"- {split}: {_fmt(stats.get('used'))} examples used of {_fmt(stats.get('total'))}, "
                f"{_fmt(stats.get('shortened'))} shortened to fit, {_fmt(stats.get('dropped'))} dropped"
            )
    lines += ["", "## Training procedure", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v) if _number(v) is not None else v} |" for k, v in hyper.items()]
    lines += [
        f"| lora_{k} | {_fmt(lora[k]) if _number(lora[k]) is not None else lora[k]} |"
        for k in lora_keys
        if lora.get(k) is not None
    ]
    results = training.get("results") or {}
    if results:
        lines += ["", "Results of the run:", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in results.items() if v is not None]
    if run_config:
        lines += ["", "Resolved run configuration (`run_config.json`):", "", "```yaml"]
        lines += [yaml.safe_dump(run_config, sort_keys=True).rstrip(), "```"]
    lines += ["", "## Evaluation", "", *metrics_section(info.get("metrics"))]
    if versions:
        lines += ["", "## Framework versions", ""]
        lines += [f"- {k}: {v}" for k, v in versions.items()]
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f"base = AutoModelForCausalLM.from_pretrained({base_id!r})",
        'model = PeftModel.from_pretrained(base, "ADAPTER_DIR")',
        'tokenizer = AutoTokenizer.from_pretrained("ADAPTER_DIR")',
        "```",
        "",
        "`inference.py` in this project adds schema-constrained decoding and the safety rules.",
        "",
        f"_{DISCLAIMER}_",
        "",
    ]
    return "\n".join(lines)


def write_model_card(adapter_dir: Path) -> None:
    adapter_dir = Path(adapter_dir)
    info = _read(adapter_dir / "model_info.json")
    if not info:
        raise FileNotFoundError(f"{adapter_dir / 'model_info.json'} is missing: the card is rendered from it")
    atomic_write(adapter_dir / "README.md", render_model_card(info, _read(adapter_dir / "run_config.json")))
