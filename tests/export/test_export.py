"""export_model.py and medlora/export/gguf.py: the merged tiny model as GGUF gives the transformers model's greedy
tokens; files, hashes and the Modelfile are written atomically; what cannot be exported is exit 2 saying why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2Config, LlamaConfig

import export_model
from medlora.common.cli import UsageError, run_stage
from medlora.common.files import sha256_file
from medlora.common.schemas import PatientRecord
from medlora.data.prompts import TREATMENT_SYSTEM, encode_prompt, render, treatment_messages
from medlora.export import gguf as export
from medlora.model.loading import load_model

RECORD = PatientRecord(age=58, sex="male", conditions=["hypertension"], medications=["lisinopril"])


def run(argv: list[str]) -> int:
    return run_stage(export_model.main, export_model.ExportConfig, argv=argv)


def llama(path: Path):
    from llama_cpp import Llama

    return Llama(str(path), n_ctx=2048, n_threads=1, verbose=False)


def llama_greedy(llm, prompt: list[int], n: int) -> list[int]:
    import llama_cpp

    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        out.append(int(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).argmax()))
        llm.eval(out[-1:])
    return out


def torch_greedy(model, prompt: list[int], n: int) -> list[int]:
    out, cache, ids = [], None, torch.tensor([prompt])
    with torch.inference_mode():
        for _ in range(n):
            step = model(ids, cache=cache, use_cache=True)
            cache = step.cache
            out.append(int(step.logits[0, -1].argmax()))
            ids = torch.tensor([out[-1:]])
    return out


def test_rope_permutation_interleaves_each_heads_halves():
    w = np.arange(8).reshape(8, 1)  # two heads of four rows: halves (0,1 | 2,3) and (4,5 | 6,7)
    assert export.permute_rope(w, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize(
    "config, named",
    [
        (GPT2Config(), "GPT2LMHeadModel"),
        (LlamaConfig(architectures=["LlamaForCausalLM"], attention_bias=True), "bias"),
        (LlamaConfig(architectures=["LlamaForCausalLM"], rope_scaling={"rope_type": "linear", "factor": 2.0}), "linear"),
    ],
)  # fmt: skip
def test_what_llama_cpp_would_misread_is_refused_saying_what_is_supported(config, named):
    config.architectures = config.architectures or ["GPT2LMHeadModel"]
    with pytest.raises(UsageError, match=rf"{named}.*supports Llama-architecture"):
        export.check_llama(config)


def test_export_writes_each_file_with_its_hash_and_a_modelfile(tiny_gguf, tiny_adapter):
    info = json.loads((tiny_gguf / "model_info.json").read_text())
    files = {e["quantisation"]: e for e in info["files"]}
    assert set(files) == {"F16", "Q8_0", "Q4_K_M"}
    for e in files.values():
        path = tiny_gguf / e["file"]
        assert path.stat().st_size == e["bytes"] and sha256_file(path) == e["sha256"]
        assert e["source_adapter"] == str(tiny_adapter) and e["base_model"] == "tiny-random"
    assert files["Q8_0"]["bytes"] < files["F16"]["bytes"]
    modelfile = (tiny_gguf / "Modelfile").read_text()
    target = re.search(r"^FROM \./(\S+)$", modelfile, re.M).group(1)
    assert target == files["Q8_0"]["file"] == info["modelfile"]["from"], "Q8_0 is the default when written"
    assert TREATMENT_SYSTEM in modelfile and 'PARAMETER stop "</s>"' in modelfile


def test_the_adapters_decoding_bias_is_copied_beside_the_gguf(tiny_model, tiny_adapter, tiny_gguf, tmp_path):
    """The per-section bias chosen on val (decoding.json) goes with the export, where the llama.cpp backend reads
    it; an adapter without one exports none (tiny_gguf)."""
    import shutil

    from medlora.data.decisions import DECODING_FILE

    assert not (tiny_gguf / DECODING_FILE).exists()
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    (adapter / DECODING_FILE).write_text(json.dumps({"empty_bias": {"medications": 1.25}}), encoding="utf-8")
    cfg = export_model.ExportConfig(base_model=str(tiny_model), adapter=str(adapter),
                                    output_dir=str(tmp_path / "gguf"), quants=["F16"])  # fmt: skip
    cfg.validate()
    out = export_model.main(cfg)
    assert json.loads((out / DECODING_FILE).read_text())["empty_bias"] == {"medications": 1.25}


def test_the_f16_gguf_gives_the_merged_models_greedy_tokens(tiny_model, tiny_adapter, tiny_gguf):
    model, tokenizer, _ = load_model(tiny_model, tiny_adapter, "cpu", "fp32", merge=True)
    prompt = encode_prompt(tokenizer, treatment_messages(RECORD))
    expected = torch_greedy(model, prompt, 64)
    got = llama_greedy(llama(tiny_gguf / "tiny-adapter-F16.gguf"), prompt, 64)
    assert got == expected
    assert len(set(expected)) > 5  # a real sequence, not one token repeated


def test_the_modelfile_template_renders_the_training_prompt(tiny_model):
    _, tokenizer, _ = load_model(tiny_model, None, "cpu", "fp32")
    modelfile = export.modelfile("m.gguf", TREATMENT_SYSTEM, 2048)
    template = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S).group(1)
    user = '{"age":58,"conditions":["hypertension"]}'
    # Ollama's Go template for one system and one user turn, evaluated by hand.
    ollama = (
        template.replace("{{ if .System }}", "").replace("{{ end }}", "")
        .replace("{{ .System }}", TREATMENT_SYSTEM).replace("{{ .Prompt }}", user)
    )  # fmt: skip
    messages = [{"role": "system", "content": TREATMENT_SYSTEM}, {"role": "user", "content": user}]
    assert ollama == render(tokenizer, messages, add_generation_prompt=True)


def test_an_export_over_an_existing_one_is_atomic(tiny_model, tiny_adapter, tmp_path, monkeypatch):
    out = tmp_path / "gguf"
    flags = ["--base-model", str(tiny_model), "--adapter", str(tiny_adapter), "--output-dir", str(out)]
    assert run([*flags, "--quants", "F16"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "quantize", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run([*flags, "--quants", "F16", "Q8_0", "--name", "other"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["gguf"]  # no temporary directory left behind


def test_what_cannot_be_exported_is_exit_2_saying_what_is_supported(
    tiny_model, tiny_adapter, tmp_path, capsys
):
    gpt2 = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=8, n_head=2, architectures=["GPT2LMHeadModel"]).save_pretrained(gpt2)
    cases = [
        (["--base-model", str(tiny_adapter)], "is a LoRA adapter, not a model"),
        (["--base-model", str(gpt2), "--base-only"], "supports Llama-architecture"),
        (["--base-model", str(tiny_model), "--adapter", str(tmp_path / "none")], "no adapter at"),
        (["--base-model", str(tmp_path / "none"), "--base-only"], "base model not found"),
        (["--base-model", str(tiny_model), "--base-only", "--quants", "Q3_K"], "--quants: choose from"),
    ]
    for argv, message in cases:
        assert run([*argv, "--output-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_llama_cpp_per_tensor_quantisation_notes_are_debug_and_the_summary_a_warning(caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="medlora.export.gguf"):
        export._log_from_llama_cpp(
            3, b"tensor cols 64 x 64 are not divisible by 256, falling back to q5_0\n", None
        )
        export._log_from_llama_cpp(3, b"WARNING: 15 of 21 tensor(s) required fallback quantization\n", None)
    levels = [(r.levelno, "required fallback" in r.getMessage()) for r in caplog.records]
    assert levels == [(logging.DEBUG, False), (logging.WARNING, True)]
