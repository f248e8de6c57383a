"""medlora/generation/llama_backend.py and inference.py --backend llama-cpp: the grammar compiled over the GGUF's vocabulary
accepts exactly what the transformers path's accepts; prompts are the transformers path's; recommendations are schema-valid, safety-checked
and logged like the other backend's; a missing, truncated or foreign GGUF is exit 2 naming it."""

from __future__ import annotations

import inspect
import json
import random
from pathlib import Path

import gguf
import pytest
import xgrammar as xgr
from conftest import ROOT, shared_path

import inference
from medlora.common.cli import UsageError, run_stage
from medlora.common.schemas import DISCLAIMER, PatientRecord, Recommendation
from medlora.data.prompts import encode_prompt, render, treatment_messages
from medlora.generation.base import sections_grammar
from medlora.generation.hf import tokenizer_info
from medlora.generation.llama_backend import (
    GGUFTokenizer,
    GrammarMask,
    check_gguf,
    grammar_compiler,
    load_gguf,
)
from medlora.model.loading import build_tiny_random, load_tokenizer
from medlora.serving import recommender as serving_recommender

EXAMPLES = sorted((ROOT / "examples" / "patients").glob("*.json"))
RECORDS = [PatientRecord.model_validate_json(p.read_text()) for p in EXAMPLES]
# The grammars generation.py writes: plain, and per passage count when it takes one (grounded generation).
GRAMMARS = [sections_grammar()] + (
    [sections_grammar(n) for n in (0, 3)] if inspect.signature(sections_grammar).parameters else []
)


@pytest.fixture(scope="module")
def tiny(tiny_gguf, tiny_model):
    """The tiny F16 GGUF in llama.cpp, its GGUFTokenizer and the tiny model's transformers tokenizer."""
    llm = load_gguf(tiny_gguf / "tiny-adapter-F16.gguf", threads=1)
    return llm, GGUFTokenizer(llm), load_tokenizer(tiny_model)


def xgrammar_accepts(compiled, ids: list[int], eos: int) -> bool:
    matcher = xgr.GrammarMatcher(compiled)
    return all(matcher.accept_token(t) for t in ids) and matcher.accept_token(eos)


def walk(compiled, pieces: list[str], eos: int, rng: random.Random) -> list[int]:
    """A random document the xgrammar grammar admits (biased towards closing quotes and brackets so it ends)."""
    import torch

    vocab, matcher, ids = len(pieces), xgr.GrammarMatcher(compiled), []
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    while True:
        matcher.fill_next_token_bitmask(bitmask, 0)
        logits = torch.zeros(1, vocab)
        xgr.apply_token_bitmask_inplace(logits, bitmask)
        allowed = torch.nonzero(logits[0] > float("-inf")).flatten().tolist()
        if eos in allowed:
            return ids
        closing = [t for t in allowed if pieces[t] in ('"', "]", "}", ",")]
        pool = closing if closing and rng.random() < 0.5 else allowed
        choice = rng.choice(pool)
        assert matcher.accept_token(choice)
        ids.append(choice)


def mutations(text: str, rng: random.Random) -> list[str]:
    """Near-misses of a valid document: each may or may not still be valid; both grammars must agree."""
    quote = [i for i, c in enumerate(text) if c == '"']
    i = rng.randrange(1, len(text))
    j = rng.choice(quote) + 1
    return [
        text[:i],  # cut off
        text + "}",  # trailing garbage
        text[:i] + text[i + 1 :],  # one character dropped
        text[:j] + " " + text[j:],  # a space after a quote: a string may not start with it
        text[:j] + "\x01" + text[j:],  # a raw control character
        text[:j] + "\\n" + text[j:],  # an escape sequence
        text[:j] + "\u00e9\u4e2d" + text[j:],  # non-ASCII
        text.replace("[]", "[null]", 1),
        text.replace('"]', '","x"]', 1),  # one more item (over the maximum at 8)
        text.replace("null", '""', 1),  # an empty string where null stood
    ]


@pytest.fixture(scope="module")
def tiny_spm(tmp_path_factory):
    """A tiny model with TinyLlama's SentencePiece tokenizer (../shared), exported to F16: the same triple."""
    import export_model

    model = tmp_path_factory.mktemp("spm") / "tiny-spm"
    build_tiny_random(model, tokenizer_source=shared_path("tinyllama", "tokenizer.model"))
    cfg = export_model.ExportConfig(base_model=str(model), base_only=True, quants=["F16"])
    cfg.validate()
    out = export_model.main(cfg)
    llm = load_gguf(out / "tiny-spm-F16.gguf", threads=1)
    return llm, GGUFTokenizer(llm), load_tokenizer(model)


@pytest.mark.parametrize("vocabulary", ["tiny", "tiny_spm"])  # byte-level BPE, and TinyLlama's SentencePiece
def test_the_grammar_over_the_gguf_vocabulary_accepts_exactly_what_the_transformers_paths_accepts(
    vocabulary, request
):
    """Random valid documents and near-misses of them, as the same token ids: the compilation over the bytes
    llama.cpp renders gives the verdict of the transformers path's compilation (its tokenizer's own view)."""
    llm, gtok, tokenizer = request.getfixturevalue(vocabulary)
    eos, n = tokenizer.eos_token_id, llm.n_vocab()
    pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    compiler = xgr.GrammarCompiler(tokenizer_info(tokenizer, n, eos))  # what SectionsGenerator compiles with
    gguf_compiler = grammar_compiler(gtok, n)
    rng, verdicts = random.Random(0), []
    for ebnf in GRAMMARS:
        compiled, on_gguf = compiler.compile_grammar(ebnf), gguf_compiler.compile_grammar(ebnf)
        for _ in range(6):
            walked = walk(compiled, pieces, eos, rng)
            assert xgrammar_accepts(on_gguf, walked, eos)
            valid = tokenizer.decode(walked, clean_up_tokenization_spaces=False)
            for text in [valid, *mutations(valid, rng)]:
                # Text, not markup: "<s>" written by the model is three characters.
                ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                verdict = xgrammar_accepts(compiled, ids, eos)
                assert xgrammar_accepts(on_gguf, ids, eos) == verdict, (ebnf[:30], text)
                verdicts.append(verdict)
    assert True in verdicts and verdicts.count(False) > len(verdicts) // 3  # both kinds were compared


def test_control_characters_leading_spaces_and_other_end_tokens_are_refused(tiny):
    llm, gtok, tokenizer = tiny
    compiled = grammar_compiler(gtok, llm.n_vocab()).compile_grammar(sections_grammar())
    head = '{"immediate_actions":["'
    for bad in ("\x07ok", " ok", "\u3000ok", 'a\\"b'):
        ids = gtok(head + bad + '"],', add_special_tokens=False)["input_ids"]
        mask, accepted = GrammarMask(compiled, llm.n_vocab()), 0
        while accepted < len(ids) and mask.allowed()[ids[accepted]]:
            mask.accept(ids[accepted])
            accepted += 1
        assert accepted < len(ids), bad
    assert not xgrammar_accepts(compiled, gtok('{"immediate_actions":[]}', add_special_tokens=False)["input_ids"],
                                gtok.eos_token_id)  # fmt: skip
    # Inside a string, where any text may follow, BOS and EOS (control tokens) are still refused.
    mask = GrammarMask(compiled, llm.n_vocab())
    for t in gtok(head + "ok", add_special_tokens=False)["input_ids"]:
        mask.accept(t)
    allowed = mask.allowed()
    assert allowed.sum() > 10 and not allowed[gtok.bos_token_id] and not allowed[gtok.eos_token_id]


def test_prompts_are_the_transformers_paths(tiny):
    _, gtok, tokenizer = tiny
    for record in RECORDS:
        messages = treatment_messages(record)
        assert gtok.apply_chat_template(messages, add_generation_prompt=True) == render(
            tokenizer, messages, True
        )
        assert encode_prompt(gtok, messages) == encode_prompt(tokenizer, messages)


@pytest.mark.integration
def test_prompts_are_the_transformers_paths_with_tinyllamas_tokenizer(tiny_spm):
    _, gtok, tokenizer = tiny_spm
    for record in RECORDS:
        messages = treatment_messages(record)
        assert encode_prompt(gtok, messages) == encode_prompt(tokenizer, messages)


def run(argv: list[str]) -> int:
    return run_stage(inference.main, inference.InferenceConfig, argv=argv)


def test_inference_with_llama_cpp_is_schema_valid_checked_and_logged_alike(tiny_gguf, tiny_model, tiny_adapter,
                                                                         tmp_path, capsys):  # fmt: skip
    chest = str(ROOT / "examples" / "patients" / "chest_pain_low_spo2.json")
    logs = {b: tmp_path / f"{b}.json" for b in ("llama", "hf")}
    common = ["--patient", chest, "--max-new-tokens", "48", "--k", "0"]
    gguf_file = str(tiny_gguf / "tiny-adapter-Q8_0.gguf")
    assert (
        run([*common, "--backend", "llama-cpp", "--gguf", gguf_file, "--log-file", str(logs["llama"])]) == 0
    )
    rec = Recommendation.model_validate_json(capsys.readouterr().out)
    assert rec.safety.disclaimer == DISCLAIMER and rec.immediate_actions[0].startswith("EMERGENCY")
    assert rec.model.adapter == str(tiny_adapter) and rec.model.base == "tiny-random"
    hf = ["--base-model", str(tiny_model), "--adapter", str(tiny_adapter), "--log-file", str(logs["hf"])]
    assert run([*common, *hf]) == 0
    capsys.readouterr()
    (llama_entry,), (hf_entry,) = (json.loads(p.read_text()) for p in logs.values())
    assert set(llama_entry) == set(hf_entry) and llama_entry["outcome"] == "ok"
    assert llama_entry["red_flags"] == hf_entry["red_flags"] and llama_entry["backend"] == "llama-cpp"
    # the GGUF's export record names what it was made from, so the log says which model answered
    assert (llama_entry["base_model"], llama_entry["adapter"]) == ("tiny-random", str(tiny_adapter))


def write_gguf(path: Path, arch: str, template: str | None) -> str:
    w = gguf.GGUFWriter(str(path), arch)
    if template:
        w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def test_a_missing_truncated_or_foreign_gguf_is_exit_2_naming_it(tiny_gguf, tmp_path, capsys):
    f16 = (tiny_gguf / "tiny-adapter-F16.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(f16[: len(f16) // 2])
    (tmp_path / "text.gguf").write_text("not a model")
    chatml = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    cases = {
        str(tmp_path / "none.gguf"): "file not found",
        str(tmp_path / "cut.gguf"): "truncated or corrupt",
        str(tmp_path / "text.gguf"): "not a GGUF file",
        write_gguf(tmp_path / "gpt2.gguf", "gpt2", None): "a gpt2 model",
        write_gguf(tmp_path / "chatml.gguf", "llama", chatml): "is neither TinyLlama",
    }
    patient = str(EXAMPLES[0])
    capsys.readouterr()  # gguf-py's log lines about the files written above
    for path, message in cases.items():
        with pytest.raises(UsageError, match=message):
            check_gguf(path)
        argv = [
            "--backend",
            "llama-cpp",
            "--gguf",
            path,
            "--patient",
            patient,
            "--log-file",
            str(tmp_path / "l"),
        ]
        assert run(argv) == 2
        err = capsys.readouterr().err.strip()
        assert path in err and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backend", "llama-cpp"], "--backend llama-cpp needs --gguf"),
        (["--gguf", "m.gguf"], "--gguf needs"),
    ],
)
def test_backend_flags_go_together(argv, message, capsys):
    assert run([*argv, "--patient", str(EXAMPLES[0])]) == 2
    assert message in capsys.readouterr().err


def test_the_http_endpoint_serves_the_llama_cpp_backend(tiny_gguf, tmp_path):
    from fastapi.testclient import TestClient

    from medlora.serving.server import ENDPOINT, create_app

    cfg = inference.InferenceConfig(
        serve=True, backend="llama-cpp", gguf=str(tiny_gguf / "tiny-adapter-Q4_K_M.gguf"),
        log_file=str(tmp_path / "log.json"), max_new_tokens=16, k=0,
    )  # fmt: skip
    cfg.validate()
    with TestClient(create_app(serving_recommender.Recommender(cfg))) as client:
        r = client.post(ENDPOINT, json={"age": 61, "symptoms": ["chest pain"], "vitals": {"spo2": 84}})
    assert r.status_code == 200, r.text
    rec = Recommendation.model_validate(r.json())
    assert rec.immediate_actions[0].startswith("EMERGENCY") and rec.safety.disclaimer == DISCLAIMER
    (entry,) = json.loads((tmp_path / "log.json").read_text())
    assert entry["source"] == "http" and entry["backend"] == "llama-cpp" and entry["outcome"] == "ok"


# --- every CPU: the AMX setting, the one-token check in a child, prompt lookup (issue 20) ---

AMX_INFO = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | REPACK = 1 |"


def test_extra_buffer_types_are_off_exactly_where_llama_cpp_reports_amx(monkeypatch):
    from medlora.generation import llama_cpu

    assert llama_cpu.extra_bufts_for(AMX_INFO) is False
    assert llama_cpu.extra_bufts_for(AMX_INFO.replace("AMX_INT8 = 1 | ", "")) is True
    assert llama_cpu.extra_bufts_for(AMX_INFO, "on") is True and llama_cpu.extra_bufts_for("", "off") is False
    with pytest.raises(UsageError, match="MEDLORA_LLAMA_EXTRA_BUFTS"):
        llama_cpu.extra_bufts_for("", "maybe")


def test_the_loaded_model_uses_the_setting_this_builds_report_calls_for(tiny_gguf, monkeypatch):
    """What this machine's llama.cpp reports decides the parameter the model was really loaded with: on an
    AMX build it must be off (the crash of issue 20), elsewhere on (repacking kept)."""
    import llama_cpp

    from medlora.generation import llama_cpu

    info = llama_cpp.llama_print_system_info().decode()
    monkeypatch.delenv(llama_cpu.ENV, raising=False)
    llm = load_gguf(tiny_gguf / "tiny-adapter-Q4_K_M.gguf", threads=1)
    assert llm.model_params.use_extra_bufts is (" AMX_INT8 = 1 " not in f" {info} ")
    # repacked weights are copies: the file is read, not mapped, so its pages do not stay resident beside them
    mapped = llm.model_params.load_mode == llama_cpp.LLAMA_LOAD_MODE_MMAP
    assert mapped is not llm.model_params.use_extra_bufts
    llm.close()
    monkeypatch.setenv(llama_cpu.ENV, "off")
    llm = load_gguf(tiny_gguf / "tiny-adapter-Q4_K_M.gguf", threads=1)
    assert llm.model_params.use_extra_bufts is False
    assert llm.model_params.load_mode == llama_cpp.LLAMA_LOAD_MODE_MMAP
    llm.eval([1, 2, 3])  # and it evaluates
    llm.close()
    # the patch that sets the field is gone again: Llama() elsewhere gets llama.cpp's defaults
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True


def test_a_crash_in_the_one_token_check_is_exit_2_with_its_signal_within_seconds(tiny_gguf, tmp_path,
                                                                                monkeypatch, capsys):  # fmt: skip
    import signal
    import sys
    import time

    from medlora.generation import llama_cpu

    # The child llama.cpp would be: killed by SIGSEGV, as on an AMX CPU with the AMX buffer type in use.
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    monkeypatch.setattr(llama_cpu, "probe_command", lambda *a: crash)
    gguf_file = str(tiny_gguf / "tiny-adapter-Q4_K_M.gguf")
    argv = ["--backend", "llama-cpp", "--gguf", gguf_file, "--patient", str(EXAMPLES[0]), "--k", "0",
            "--log-file", str(tmp_path / "log.json")]  # fmt: skip
    start = time.monotonic()
    assert run(argv) == 2
    assert time.monotonic() - start < 20
    # stderr also carries the resolved-config log line; the refusal itself is one line
    (err,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert f"signal {int(signal.SIGSEGV)} (SIGSEGV)" in err and gguf_file in err and "fix:" in err
    # a failure that is not a signal names the child's last line
    monkeypatch.setattr(
        llama_cpu, "probe_command", lambda *a: [sys.executable, "-c", "raise SystemExit('no')"]
    )
    with pytest.raises(UsageError, match=r"exit code 1: no\)"):
        llama_cpu.probe(gguf_file, 1, True)


def test_the_one_token_check_passes_on_a_good_file(tiny_gguf):
    from medlora.generation import llama_cpu

    llama_cpu.probe(
        tiny_gguf / "tiny-adapter-Q8_0.gguf", 1, llama_cpu.extra_bufts_for(llama_cpu.system_info())
    )


class _Passage:
    def __init__(self, shown: str):
        self.shown = shown


def lookup_cases(n: int) -> list[tuple[PatientRecord, list[_Passage]]]:
    rng = random.Random(7)
    conditions = ["hypertension", "type 2 diabetes", "asthma", "migraine", "gout", "COPD", "anemia"]
    drugs = ["lisinopril", "metformin", "albuterol", "ibuprofen", "allopurinol", "aspirin"]
    texts = [
        "Treatment of high blood pressure includes lifestyle changes such as a low-salt diet and exercise.",
        "Metformin is usually the first medicine for type 2 diabetes; check blood sugar regularly.",
        "Asthma is treated with inhaled corticosteroids and quick-relief inhalers such as albuterol.",
        "See a doctor right away if chest pain, shortness of breath or confusion occur.",
    ]
    cases = []
    for i in range(n):
        record = PatientRecord(age=rng.randint(18, 90), sex=rng.choice(["female", "male"]),
                               conditions=rng.sample(conditions, rng.randint(1, 2)),
                               medications=rng.sample(drugs, rng.randint(0, 2)))  # fmt: skip
        cases.append((record, [_Passage(t) for t in rng.sample(texts, i % 3)]))
    return cases


class CopyingModel:
    """Logits that depend only on the tokens so far, never on how forward passes group them (llama.cpp's CPU
    kernels do not promise that: bench/llama_pass_width.py): noise seeded by the last three tokens and, in
    about half the states, a pull towards what followed the latest earlier occurrence of the last two tokens,
    so prompt-lookup drafts are sometimes right and sometimes wrong."""

    def __init__(self, gen):
        self.gen, self.seq = gen, []

    def logits(self, seq: list[int]):
        import numpy as np

        key = hash(tuple(seq[-3:])) & 0xFFFFFFFF
        out = np.random.default_rng(key).standard_normal(self.gen.n_vocab).astype(np.float32)
        if key % 2:
            for j in range(len(seq) - 2, 0, -1):
                if seq[j - 1 : j + 1] == seq[-2:]:
                    out[seq[j + 1]] += 6.0
                    break
        return out

    def prefill(self, prompt: list[int]):
        self.seq, self.gen.llm.n_tokens = list(prompt), len(prompt)
        self.gen.stats["forward_passes"] += 1
        return self.logits(self.seq)

    def forward(self, tokens: list[int]):
        n_past = self.gen.llm.n_tokens  # the generator rolls back by lowering it, as with llama.cpp's cache
        self.seq = self.seq[:n_past] + list(tokens)
        self.gen.llm.n_tokens = len(self.seq)
        self.gen.stats["forward_passes"] += 1
        return [self.logits(self.seq[: n_past + i + 1]) for i in range(len(tokens))]


def test_prompt_lookup_keeps_exactly_the_tokens_one_per_pass_decoding_picks(tiny_gguf):
    """Over many records, drafting changes no byte of the text, citations or probabilities, keeps some drafts,
    rejects others (the rollback path runs) and saves forward passes, given a model whose logits do not depend
    on the pass width."""
    from medlora.generation.llama_backend import LlamaSectionsGenerator

    path = tiny_gguf / "tiny-adapter-Q8_0.gguf"
    gens = {on: LlamaSectionsGenerator(path, max_new_tokens=96, threads=1, prompt_lookup=on, probe=False)
            for on in (False, True)}  # fmt: skip
    for gen in gens.values():
        fake = CopyingModel(gen)
        gen._prefill, gen._forward = fake.prefill, fake.forward
    totals = {on: {"forward_passes": 0, "accepted": 0, "drafted": 0} for on in (False, True)}
    for record, passages in lookup_cases(24):
        outs = {}
        for on, gen in gens.items():
            outs[on] = gen.generate([record], passages=[passages])[0]
            for key in totals[on]:
                totals[on][key] += gen.stats[key]
        assert outs[True].text == outs[False].text
        assert outs[True].token_probs == outs[False].token_probs
        assert outs[True].citations == outs[False].citations
    on = totals[True]
    assert 0 < on["accepted"] < on["drafted"]  # drafts were kept and drafts were thrown away
    assert on["forward_passes"] < totals[False]["forward_passes"]


def test_the_instructions_kept_between_recommendations_change_no_output(tiny_gguf):
    """One generator serving records A, B, A, C gives each the output a fresh generator gives it, while every
    prompt after the first evaluates only what follows the fixed instructions."""
    from medlora.generation.llama_backend import LlamaSectionsGenerator

    path = tiny_gguf / "tiny-adapter-Q8_0.gguf"
    shared = LlamaSectionsGenerator(path, max_new_tokens=48, threads=1, probe=False)
    cases = lookup_cases(3)
    kept = len(shared._instructions)
    assert kept > 10
    for step, i in enumerate((0, 1, 0, 2)):
        record, passages = cases[i]
        prompt = shared.prompt_ids(record, passages)
        out = shared.generate([record], passages=[passages])[0]
        assert shared.stats["prompt_tokens_evaluated"] == len(prompt) - (kept if step else 0)
        fresh = LlamaSectionsGenerator(path, max_new_tokens=48, threads=1, probe=False)
        alone = fresh.generate([record], passages=[passages])[0]
        assert out.text == alone.text and out.token_probs == alone.token_probs, step


def test_generation_on_llama_cpp_says_tokens_so_far_while_it_runs(tiny_gguf, monkeypatch, caplog):
    """A slow CPU spends minutes in one recommendation: the heartbeat speaks during decoding, as on transformers."""
    import logging

    from medlora.common import progress
    from medlora.generation.llama_backend import LlamaSectionsGenerator

    real = progress.TokenProgress
    monkeypatch.setattr("medlora.generation.llama_backend.TokenProgress", lambda *a: real(*a, every=0.01))
    gen = LlamaSectionsGenerator(
        tiny_gguf / "tiny-adapter-Q8_0.gguf", max_new_tokens=48, threads=1, probe=False
    )
    caplog.set_level(logging.INFO, logger="medlora.common.progress")
    record, passages = lookup_cases(1)[0]
    out = gen.generate([record], passages=[passages])[0]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("generating (llama.cpp)")]
    assert lines and out.generated_tokens >= 1
    assert any("tokens of 1 sequence" in line or "reading the prompts" in line for line in lines)


# --- a real model with tied embeddings, a GPT-2-style tokenizer and ChatML: SmolLM2-135M-Instruct ---


@pytest.fixture(scope="module")
def smollm2_gguf(smollm2_dir, tmp_path_factory):
    """The real SmolLM2-135M folder (conftest's cached copy) exported by export_model.py to F16 and Q8_0."""
    import export_model

    folder = smollm2_dir
    out = tmp_path_factory.mktemp("smollm2") / "gguf"
    cfg = export_model.ExportConfig(base_model=str(folder), base_only=True, output_dir=str(out),
                                    name="smollm2", quants=["F16", "Q8_0"])  # fmt: skip
    cfg.validate()
    export_model.main(cfg)
    return folder, out


@pytest.mark.slow
@pytest.mark.real_model
def test_smollm2_exports_to_a_gguf_that_gives_the_transformers_models_greedy_tokens(smollm2_gguf):
    import llama_cpp
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    folder, out = smollm2_gguf
    reader = gguf.GGUFReader(out / "smollm2-F16.gguf")
    names = {t.name for t in reader.tensors}
    assert "output.weight" not in names and "token_embd.weight" in names  # tied: llama.cpp reuses the table
    assert reader.get_field("tokenizer.ggml.model").contents() == "gpt2"
    tokenizer = load_tokenizer(folder)
    prompt = encode_prompt(tokenizer, treatment_messages(RECORDS[0]))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    expected, ids = [], list(prompt)
    with torch.inference_mode():  # greedy without stopping at EOS, as the llama.cpp loop below
        for _ in range(24):
            expected.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
            ids.append(expected[-1])
    llm = load_gguf(out / "smollm2-F16.gguf", threads=1)
    llm.eval(prompt)
    got = []
    for _ in range(24):
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        got.append(int(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).argmax()))
        llm.eval(got[-1:])
    assert got == expected
    modelfile = (out / "Modelfile").read_text()
    assert "<|im_start|>assistant" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


@pytest.mark.slow
@pytest.mark.real_model
def test_smollm2_prompts_and_a_constrained_recommendation_on_llama_cpp(smollm2_gguf):
    from medlora.generation.llama_backend import LlamaSectionsGenerator

    folder, out = smollm2_gguf
    tokenizer = load_tokenizer(folder)
    gen = LlamaSectionsGenerator(out / "smollm2-Q8_0.gguf", max_new_tokens=160, threads=1)
    passages = [_Passage("High blood pressure is treated with a low-salt diet, exercise and medicines.")]
    for record in RECORDS:  # the GGUF's vocabulary and template write the transformers tokenizer's ids
        messages = treatment_messages(record, passages=passages)
        assert gen.prompt_ids(record, passages) == encode_prompt(tokenizer, messages)
        assert gtok_text(gen, messages) == render(tokenizer, messages, True)
    assert gen.eos_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    out = gen.generate(RECORDS[:1], passages=[passages])[0]
    # a document the grammar closed with <|im_end|>, or one the budget cut (the model loops at 135M)
    assert json.loads(out.text) if out.finish == "eos" else out.generated_tokens == 160


def gtok_text(gen, messages) -> str:
    return gen.tokenizer.apply_chat_template(messages, add_generation_prompt=True)


def test_the_pick_and_its_probability_are_the_transformers_paths(tiny):
    """GrammarMask.pick against what generation.py computes: xgrammar's mask applied to the logits, then the
    softmax TokenProbs keeps; the banned tokens are never picked; along a valid document."""
    import numpy as np
    import torch

    llm, gtok, tokenizer = tiny
    ebnf, n, eos = GRAMMARS[-1], llm.n_vocab(), tokenizer.eos_token_id
    info = tokenizer_info(tokenizer, len(tokenizer), eos)
    pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    ids = walk(xgr.GrammarCompiler(info).compile_grammar(ebnf), pieces, eos, random.Random(1))[:160]
    text = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    compiled = grammar_compiler(gtok, n).compile_grammar(ebnf)
    mask, matcher, rng = GrammarMask(compiled, n), xgr.GrammarMatcher(compiled), np.random.default_rng(0)
    bitmask, choices = xgr.allocate_token_bitmask(1, n), set()
    for token in gtok(text, add_special_tokens=False)["input_ids"]:
        logits = rng.standard_normal(n).astype(np.float32) * 4
        matcher.fill_next_token_bitmask(bitmask)
        scores = torch.from_numpy(logits.copy())[None]
        xgr.apply_token_bitmask_inplace(scores, bitmask)
        # Ban the token the mask alone would pick, where the grammar leaves a choice (banning a forced step's
        # only token leaves nothing to pick).
        free = bool((scores > float("-inf")).sum() > 1)
        banned = np.array([int(scores.argmax())] if free else [], dtype=np.int32)
        picked, prob, choice = mask.pick(logits.copy(), banned)
        scores[0, banned] = float("-inf")
        assert picked == int(scores.argmax()) and picked not in banned
        assert prob == pytest.approx(torch.softmax(scores, -1)[0, picked].item(), rel=1e-5)
        assert choice == bool((scores > float("-inf")).sum() > 1)
        choices.add(choice)
        mask.accept(token)
        assert matcher.accept_token(token)
    assert choices == {True, False}  # forced steps and free ones were both compared


def test_the_adapters_decoding_bias_reaches_llama_cpp_from_beside_the_gguf(tiny_gguf, tmp_path):
    """The bias chosen on val (decoding.json, copied beside the GGUF by export_model.py) lowers "]" after a
    section's "[" on llama.cpp as on the transformers path (here a large negative one: the sections the plain
    decoder fills close at once); without the file the decoder is unbiased."""
    import shutil

    from medlora.common.schemas import SECTION_NAMES
    from medlora.data.decisions import DECODING_FILE
    from medlora.generation.llama_backend import LlamaSectionsGenerator

    record = PatientRecord(age=50, conditions=["Gout"])
    passages = [_Passage("Gout. Colchicine treats gout.")]
    src = tiny_gguf / "tiny-adapter-Q8_0.gguf"
    plain = LlamaSectionsGenerator(src, max_new_tokens=60, threads=1, probe=False)
    assert not plain.empty_bias
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(src, folder / src.name)
    bias = dict.fromkeys(SECTION_NAMES, -50.0)
    (folder / DECODING_FILE).write_text(json.dumps({"empty_bias": bias}), encoding="utf-8")
    pushed_gen = LlamaSectionsGenerator(folder / src.name, max_new_tokens=60, threads=1, probe=False)
    assert pushed_gen.empty_bias == bias
    before = plain.generate([record], passages=[passages])[0].text
    pushed = pushed_gen.generate([record], passages=[passages])[0].text
    assert not before.startswith('{"immediate_actions":[]')  # the tiny random model writes an item first
    assert pushed.startswith('{"immediate_actions":[],"patient_education":[],')
