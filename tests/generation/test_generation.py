"""Schema-constrained generation: the grammar only admits text ``parse_sections`` accepts, for the byte-level
tokenizer and TinyLlama's 32000-piece one; a spent budget still yields valid Sections; batches pad on the left."""

from __future__ import annotations

import random

import pytest
import torch
import xgrammar as xgr
from conftest import shared_path

from medlora.common.schemas import (
    SECTION_NAMES,
    FollowUp,
    Medication,
    PatientRecord,
    Sections,
    parse_sections,
    sections_json,
)
from medlora.data.prompts import encode_prompt, treatment_messages
from medlora.generation.base import close_partial, finish_row, sections_grammar
from medlora.generation.hf import SectionsGenerator, tokenizer_info
from medlora.model.loading import build_tiny_random, byte_level_tokenizer, load_model, tinyllama_tokenizer
from medlora.serving import recommender as serving_recommender

RECORDS = [
    PatientRecord(age=58, sex="male", conditions=["hypertension", "type 2 diabetes"], medications=["metformin"]),
    PatientRecord(age=7, symptoms=["wheezing"]),
    PatientRecord(age=29, sex="female", symptoms=["sore throat", "fever"], allergies=["penicillin"],
                  notes="Rapid strep test positive; hives after penicillin as a child."),
]  # fmt: skip


def compiled(tokenizer) -> tuple[xgr.CompiledGrammar, int]:
    vocab = len(tokenizer)
    info = tokenizer_info(tokenizer, vocab, tokenizer.eos_token_id)  # as SectionsGenerator compiles it
    return xgr.GrammarCompiler(info).compile_grammar(sections_grammar()), vocab


def allowed_mask(matcher: xgr.GrammarMatcher, vocab: int) -> torch.Tensor:
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    matcher.fill_next_token_bitmask(bitmask, 0)
    logits = torch.zeros(1, vocab)
    xgr.apply_token_bitmask_inplace(logits, bitmask)
    return logits[0] > float("-inf")


def random_walks(tokenizer, n: int, seed: int = 0) -> list[str]:
    """Texts the grammar admits, chosen at random among allowed tokens (biased towards closing, so walks end)."""
    grammar, vocab = compiled(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(vocab)))
    closers = torch.tensor([any(c in p for c in '"]},') for p in pieces])
    rng, texts = random.Random(seed), []
    for _ in range(n):
        matcher, ids = xgr.GrammarMatcher(grammar), []
        while not matcher.is_terminated():
            allowed = allowed_mask(matcher, vocab)
            if allowed[tokenizer.eos_token_id]:
                choice = tokenizer.eos_token_id
            else:
                closing = allowed & closers
                pool = closing if closing.any() and rng.random() < 0.6 else allowed
                choice = rng.choice(torch.nonzero(pool).flatten().tolist())
            assert matcher.accept_token(choice)
            ids.append(choice)
        texts.append(tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))
    return texts


def test_grammar_writes_every_section_in_schema_order():
    grammar = sections_grammar()
    xgr.Grammar.from_ebnf(grammar)  # compiles
    positions = [grammar.index(f'\\"{name}\\":') for name in SECTION_NAMES]
    assert positions == sorted(positions)


def test_random_walks_through_the_grammar_always_parse_byte_level():
    texts = random_walks(byte_level_tokenizer(), n=60)
    for text in texts:
        assert set(parse_sections(text).model_dump()) == set(SECTION_NAMES)
    assert sum(text.count('"name":') for text in texts) > 0  # the walks reach the nested objects too


@pytest.mark.integration
def test_random_walks_through_the_grammar_always_parse_tinyllama_tokenizer():
    tok = tinyllama_tokenizer(shared_path("tinyllama", "tokenizer.model"))
    for text in random_walks(tok, n=15, seed=1):
        parse_sections(text)


@pytest.mark.parametrize("start", [" ", "\u3000", "\u00a0", "\t", "\n", "\x01", "\\"])
def test_strings_cannot_start_with_what_pydantic_strips_or_json_forbids(start):
    grammar, _ = compiled(byte_level_tokenizer())
    matcher = xgr.GrammarMatcher(grammar)
    assert matcher.accept_string('{"immediate_actions":["')
    assert not matcher.accept_string(start)
    assert matcher.accept_string("Rest")


@pytest.mark.parametrize(
    "make", [byte_level_tokenizer, lambda: tinyllama_tokenizer(shared_path("tinyllama"))]
)
def test_a_string_never_holds_a_special_token(make):
    """xgrammar's own conversion takes <s>, <|im_start|> and the like for literal text; inside a JSON string,
    where any text may follow, the compiled grammar must refuse every special token (EOS included)."""
    tokenizer = make()
    grammar, vocab = compiled(tokenizer)
    matcher = xgr.GrammarMatcher(grammar)
    assert matcher.accept_string('{"immediate_actions":["Rest')
    allowed = allowed_mask(matcher, vocab)
    assert allowed.sum() > 50
    special = set(tokenizer.all_special_ids) | {
        i for i, t in tokenizer.added_tokens_decoder.items() if t.special
    }
    assert special and not any(allowed[i] for i in special)


def test_a_string_cannot_hold_control_characters_or_exceed_its_length():
    grammar, _ = compiled(byte_level_tokenizer())
    matcher = xgr.GrammarMatcher(grammar)
    assert matcher.accept_string('{"immediate_actions":["a b')
    assert not matcher.accept_string("\x07")
    assert matcher.accept_string("x" * 597)  # 600 characters in all
    assert not matcher.accept_string("y")
    assert matcher.accept_string('"')


SAMPLE = Sections(
    immediate_actions=["Check blood pressure", "Review, then adjust"],
    medications=[Medication(name="metformin", dosage="500 mg", side_effects=["nausea", "diarrhoea"])],
    follow_up=[FollowUp(timing="in 3 months", purpose="HbA1c")],
    patient_education=['Say "no" to sugary drinks'],
)


def test_a_cut_off_generation_keeps_its_complete_items_and_never_invents():
    full = sections_json(SAMPLE)
    strings = set(SAMPLE.immediate_actions + SAMPLE.patient_education)
    previous = 0
    for end in range(len(full) + 1):
        kept = close_partial(full[:end])
        dumped = kept.model_dump()
        count = sum(len(v) for v in dumped.values())
        assert count >= previous - 1  # items only disappear when the next one opens, one at a time
        previous = count
        for value in kept.immediate_actions + kept.patient_education:
            assert value in strings
    assert close_partial(full[:-1]) == SAMPLE
    assert close_partial("") == Sections()


def test_finish_row_eos_budget_and_padding():
    tok = byte_level_tokenizer()
    text = sections_json(SAMPLE)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    done = finish_row(tok, [*ids, tok.eos_token_id, tok.unk_token_id, tok.unk_token_id], 10, tok.eos_token_id)
    assert (done.finish, done.sections, done.generated_tokens, done.prompt_tokens) == (
        "eos",
        SAMPLE,
        len(ids) + 1,
        10,
    )
    cut = finish_row(tok, ids[:-30], 10, tok.eos_token_id)
    assert cut.finish == "budget" and cut.sections.immediate_actions == SAMPLE.immediate_actions
    with pytest.raises(ValueError):  # complete by EOS yet invalid: a defect that must not pass silently
        finish_row(tok, [*ids[:-1], tok.eos_token_id], 10, tok.eos_token_id)


@pytest.fixture(scope="module")
def loaded(tiny_model):
    model, tok, _ = load_model(tiny_model)
    return model, tok


def test_generator_on_the_tiny_model_yields_valid_sections(loaded):
    model, tok = loaded
    gen = SectionsGenerator(model, tok, max_new_tokens=24)
    out = gen.generate(RECORDS, batch_size=2)
    assert len(out) == len(RECORDS)
    for record, g in zip(RECORDS, out, strict=True):
        assert isinstance(g.sections, Sections)
        assert g.prompt_tokens == len(encode_prompt(tok, treatment_messages(record)))
        assert g.finish == "budget" and g.generated_tokens == 24
        assert g.text.startswith('{"immediate_actions":')
    again = gen.generate(RECORDS, batch_size=2)
    assert [g.text for g in again] == [g.text for g in out]  # greedy: deterministic


def test_batched_generation_pads_left_and_matches_one_by_one(loaded):
    model, tok = loaded
    gen = SectionsGenerator(model, tok, max_new_tokens=12)
    lengths = {len(gen.prompt_ids(r)) for r in RECORDS}
    assert len(lengths) == len(RECORDS)  # different prompt lengths, so the batch really is padded
    batched = [g.text for g in gen.generate(RECORDS, batch_size=len(RECORDS))]
    single = [gen.generate([r])[0].text for r in RECORDS]
    assert batched == single


def test_sampled_generations_are_valid_too(loaded):
    model, tok = loaded
    gen = SectionsGenerator(model, tok, max_new_tokens=40)
    torch.manual_seed(0)
    out = gen.generate(RECORDS * 4, batch_size=12, do_sample=True)
    assert len({g.text for g in out}) > 1
    assert all(isinstance(g.sections, Sections) for g in out)


@pytest.mark.integration
def test_generator_with_the_tinyllama_tokenizer(tmp_path):
    build_tiny_random(tmp_path / "m", tokenizer_source=shared_path("tinyllama", "tokenizer.model"))
    model, tok, _ = load_model(tmp_path / "m")
    assert len(tok) == 32000
    out = SectionsGenerator(model, tok, max_new_tokens=16).generate(RECORDS, batch_size=3)
    assert all(g.text.startswith('{"immediate_actions":') and isinstance(g.sections, Sections) for g in out)


def test_an_item_cut_mid_way_is_dropped_whole():
    cut = '{"immediate_actions":["Rest"],"medications":[{"name":"lisinopril","dosage":"10 mg"},{"name":"aspirin","dosage":"5 m'
    kept = close_partial(cut)
    assert kept.immediate_actions == ["Rest"]
    assert [(m.name, m.dosage) for m in kept.medications] == [("lisinopril", "10 mg")]
    half = '{"medications":[{"name":"lisinopril","dosage":"10 mg","frequency":"da'
    assert close_partial(half).medications == []


@pytest.fixture(scope="module")
def smollm2_recommender(smollm2_dir, tmp_path_factory):
    """inference.py's Recommender on the real SmolLM2-135M, no adapter, no retrieval, a short budget."""
    import inference

    cfg = inference.InferenceConfig(
        patient="-", base_model=str(smollm2_dir), base_only=True, k=0, max_new_tokens=32,
        log_file=str(tmp_path_factory.mktemp("log") / "inference_log.json"), device="cpu",
    )  # fmt: skip
    return serving_recommender.Recommender(cfg)


@pytest.mark.real_model
def test_a_constrained_recommendation_from_smollm2_is_valid_and_carries_the_safety_block(smollm2_recommender):
    from conftest import ROOT

    from medlora.common.schemas import DISCLAIMER, Recommendation, load_record

    path = ROOT / "examples" / "patients" / "strep_penicillin_allergy.json"
    record = load_record(path.read_bytes())
    rec = smollm2_recommender.recommend([record])[0]
    rec = Recommendation.model_validate_json(rec.model_dump_json())  # the published JSON round-trips
    assert rec.safety.disclaimer == DISCLAIMER
    assert rec.model.base == "HuggingFaceTB/SmolLM2-135M-Instruct" and rec.model.adapter is None
    # no drug named in the recommendation meets the penicillin allergy (the safety rules remove any that did)
    assert not any("penicillin" in m.name.lower() or "amoxicillin" in m.name.lower() for m in rec.medications)


@pytest.mark.real_model
def test_token_probabilities_and_the_end_of_turn_on_smollm2(smollm2_recommender):
    from medlora.common.schemas import PatientRecord

    gen = smollm2_recommender.generator
    assert gen.eos_id == gen.tokenizer.convert_tokens_to_ids("<|im_end|>") != gen.pad_id
    out = gen.generate([PatientRecord(age=40, conditions=["gout"])], passages=[[]])[0]
    assert out.text.startswith('{"immediate_actions":[')  # the grammar decides the shape whatever the weights
    probs = [p for p in out.token_probs.values() if p is not None]
    assert probs and all(0 < p <= 1 for p in probs)
    # a finished generation ends at <|im_end|>, which the grammar lets through only after a complete object
    if out.finish == "eos":
        Sections.model_validate_json(out.text)
