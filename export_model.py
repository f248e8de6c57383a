"""Stage 5: export the fine-tuned model to GGUF (F16, Q8_0, Q4_K_M) for llama.cpp, Ollama and LM Studio.

    # the adapter merged into TinyLlama -> models/tinyllama-medquad-treatment/gguf/
    python export_model.py

    # then serve it on a CPU with the same grammar and safety rules as the transformers path
    python inference.py --backend llama-cpp \\
        --gguf models/tinyllama-medquad-treatment/gguf/tinyllama-medquad-treatment-Q4_K_M.gguf \\
        --patient examples/patients/hypertension_diabetes.json

    # or with Ollama (not installable here; the Modelfile points at the Q8_0 file)
    cd models/tinyllama-medquad-treatment/gguf && ollama create medlora-treatment -f Modelfile
    ollama run medlora-treatment

    # offline smoke run: the tiny random model and an adapter trained on it, F16 and Q8_0 only
    python export_model.py --base-model models/tiny-random --adapter /tmp/tiny-adapter \\
        --output-dir /tmp/tiny-gguf --quants F16 Q8_0

Writes into --output-dir (default: the adapter's gguf/ folder, or the base model's with --base-only), as one
directory swapped into place when everything is written: NAME-QUANT.gguf per quantisation (tokenizer and chat
template embedded), model_info.json (per file: quantisation, bytes, sha256, source adapter and base) and an
Ollama Modelfile. Needs llama-cpp-python and gguf (pip install -r requirements-llama.txt). Only
Llama-architecture models are exported; conversion runs offline, from local files.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from medlora.common.cli import UsageError, run_stage
from medlora.common.files import make_temp_dir, replace_dir, sha256_file, sha256_files, write_json
from medlora.data.decisions import DECODING_FILE
from medlora.data.prompts import TREATMENT_SYSTEM
from medlora.data.templates import template_family
from medlora.export import gguf as export
from medlora.model.loading import load_model, missing_model_error

log = logging.getLogger("export_model")


@dataclass
class ExportConfig:
    base_model: str = field(default="models/tinyllama", metadata={"help": "base model directory"})
    adapter: str = field(
        default="models/tinyllama-medquad-treatment", metadata={"help": "LoRA adapter to merge"}
    )
    base_only: bool = field(default=False, metadata={"help": "export the base model without an adapter"})
    output_dir: str = field(
        default="",
        metadata={"help": "where the files go (default: ADAPTER/gguf, or BASE/gguf with --base-only)"},
    )
    name: str = field(default="", metadata={"help": "file name stem (default: the adapter's folder name)"})
    quants: list[str] = field(
        default_factory=lambda: list(export.QUANTS),
        metadata={"help": f"quantisations to write, of {' '.join(export.QUANTS)}"},
    )
    modelfile_quant: str = field(
        default="",
        metadata={"help": "the file the Modelfile points at (default: Q8_0 when written, else the smallest)"},
    )
    num_ctx: int = field(default=2048, metadata={"help": "context length in the Modelfile"})
    threads: int = field(default=0, metadata={"help": "quantisation threads (0: all cores)"})

    def validate(self) -> None:
        unknown = sorted(set(self.quants) - set(export.QUANTS))
        if unknown or not self.quants:
            raise UsageError(f"--quants: choose from {' '.join(export.QUANTS)}, got {' '.join(self.quants)}")
        if self.modelfile_quant and self.modelfile_quant not in self.quants:
            raise UsageError(f"--modelfile-quant {self.modelfile_quant} is not among --quants")
        base = Path(self.base_model)
        if (base / "adapter_config.json").is_file() and not (base / "config.json").is_file():
            raise UsageError(
                f"--base-model {base} is a LoRA adapter, not a model: pass it as --adapter with the model it "
                f"was trained on as --base-model ({export.SUPPORTED} are exported)"
            )
        if not (base / "config.json").is_file():
            raise missing_model_error(base)
        from transformers import AutoConfig

        export.check_llama(AutoConfig.from_pretrained(base))
        if not self.base_only and not (Path(self.adapter) / "adapter_config.json").is_file():
            raise UsageError(
                f"no adapter at {self.adapter}: run `python train_model.py` first, or pass --base-only"
            )
        if not 1 <= self.num_ctx <= 1 << 20:
            raise UsageError(f"--num-ctx must be positive, got {self.num_ctx}")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def main(cfg: ExportConfig) -> Path:
    try:
        import gguf  # noqa: F401
        import llama_cpp  # noqa: F401
    except ImportError as e:
        raise UsageError(f"the export needs {e.name}: pip install -r requirements-llama.txt") from None
    adapter = None if cfg.base_only else Path(cfg.adapter)
    source_dir = Path(cfg.base_model) if adapter is None else adapter
    out_dir = Path(cfg.output_dir) if cfg.output_dir else source_dir / "gguf"
    name = cfg.name or source_dir.resolve().name
    model, tokenizer, info = load_model(cfg.base_model, adapter, device="cpu", precision="fp32", merge=True)
    tok_dir = (
        adapter
        if adapter is not None and (adapter / "tokenizer_config.json").is_file()
        else Path(cfg.base_model)
    )

    family = template_family(tokenizer.chat_template)
    if family is None:
        raise UsageError(
            f"the chat template in {tok_dir} is neither TinyLlama's nor ChatML: llama.cpp serving and the "
            "Modelfile need one of them"
        )
    tmp = make_temp_dir(out_dir)
    try:
        f16 = tmp / f"{name}-F16.gguf"
        log.info("writing %s", f16.name)
        export.write_f16_gguf(model, tokenizer, tok_dir, f16, name)
        del model
        files = {"F16": f16}
        for quant in (q for q in export.QUANTS if q in cfg.quants and q != "F16"):
            files[quant] = tmp / f"{name}-{quant}.gguf"
            log.info("quantising to %s", files[quant].name)
            export.quantize(f16, files[quant], quant, cfg.threads)
        if "F16" not in cfg.quants:
            f16.unlink()
            del files["F16"]
        adapter_hash = sha256_files(sorted(adapter.glob("adapter_*"))) if adapter is not None else None
        entries = [
            {
                "file": path.name,
                "quantisation": quant,
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
                "source_adapter": info["adapter"],
                "source_adapter_sha256": adapter_hash,
                "base_model": info["base"],
                "base_revision": info["revision"],
            }
            for quant, path in files.items()
        ]
        # Q8_0 by default: on real SmolLM2 weights it kept F16's greedy tokens (100%) where Q4_K_M kept 84%
        # and cut an output short (docs/llama-cpp.md); Q4_K_M stays the faster choice on request.
        smallest = min(files, key=lambda q: files[q].stat().st_size)
        target = cfg.modelfile_quant or ("Q8_0" if "Q8_0" in files else smallest)
        (tmp / "Modelfile").write_text(
            export.modelfile(files[target].name, TREATMENT_SYSTEM, cfg.num_ctx, family), encoding="utf-8"
        )
        write_json(tmp / "model_info.json", {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": entries,
            "modelfile": {"file": "Modelfile", "from": files[target].name},
            "versions": {p: _version(p) for p in ("llama_cpp_python", "gguf", "transformers", "torch")},
        })  # fmt: skip
        if adapter is not None and (adapter / DECODING_FILE).is_file():
            # The per-section decoding bias chosen on val travels with the files the llama.cpp backend reads.
            (tmp / DECODING_FILE).write_bytes((adapter / DECODING_FILE).read_bytes())
        replace_dir(tmp, out_dir)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for e in entries:
        log.info("%s: %s, %.1f MB", out_dir / e["file"], e["quantisation"], e["bytes"] / 1e6)
    return out_dir


if __name__ == "__main__":
    sys.exit(run_stage(main, ExportConfig, description=__doc__))
