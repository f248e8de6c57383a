"""The fill-or-empty decisions (issue 26): found in tokenised targets, weighted in the loss, measured
teacher-forced, and biased at decoding by a per-section bias chosen on val and stored with the adapter."""

from __future__ import annotations

import json

import pytest

from medlora.data import decisions, prompts
from medlora.data.prompts import encode_example, treatment_messages
from medlora.common.schemas import SECTION_NAMES, GroundedSections, PatientRecord
from medlora.training.objective import PadCollator

TARGET = GroundedSections.model_validate(
    {
        "medications": [{"citations": [1], "name": "aspirin"}],
        "lifestyle": [{"citations": [2], "text": "Walk daily."}],
    }
)
RECORD = PatientRecord(age=50, conditions=["Gout", "Asthma"])


@pytest.fixture(scope="module")
def tok(tiny_model):
    from medlora.model.loading import load_tokenizer

    return load_tokenizer(tiny_model)


def test_decision_tokens_are_the_characters_after_each_sections_bracket(tok):
    enc = encode_example(tok, treatment_messages(RECORD, TARGET), 4096, kind="treatment")
    assert set(enc.decisions) == set(SECTION_NAMES)
    shown = {name: tok.decode([enc.input_ids[t]]) for name, t in enc.decisions.items()}
    assert shown["medications"].startswith("{") and shown["lifestyle"].startswith("{")
    assert all(shown[n].startswith("]") for n in SECTION_NAMES if n not in ("medications", "lifestyle"))
    assert all(enc.labels[t] == enc.input_ids[t] for t in enc.decisions.values())  # supervised tokens
    assert (
        encode_example(
            tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], 99
        ).decisions
        is None
    )


def test_decision_tokens_when_the_bracket_and_the_decision_share_a_token():
    answer = '{"medications":[],"lifestyle":[{"x'
    # tokens: '{"medications":' '[]' ',"lifestyle":[' '{"x'
    offsets = [(10, 25), (25, 27), (27, 41), (41, 44)]
    got = prompts.decision_tokens(answer, offsets, 10)
    assert got == {"medications": 1, "lifestyle": 3}


def test_collator_weights_only_the_decision_tokens():
    feats = [
        {"input_ids": [1, 2, 3, 4], "labels": [-100, 2, 3, 4], "decisions": [2]},
        {"input_ids": [1, 2], "labels": [-100, 2], "decisions": []},
    ]
    batch = PadCollator(0, decision_weight=5.0)(feats)
    assert batch["weights"].tolist() == [[1, 1, 5, 1], [1, 1, 1, 1]]
    assert "weights" not in PadCollator(0)(feats)  # weight 1: the plain loss, no extra tensor


def test_weighted_loss_is_the_plain_loss_at_weight_one_and_weights_the_decisions(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, Trainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).train()
    ids = torch.randint(5, 200, (2, 12))
    labels = ids.clone()
    labels[:, :5] = -100
    labels[1, 10:] = -100
    mask = torch.ones_like(ids)
    cls = decisions.weighted_trainer(Trainer)
    trainer = object.__new__(cls)
    trainer.model_accepts_loss_kwargs = False
    plain = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    ones = torch.ones(2, 12)
    same = cls.compute_loss(
        trainer, model, {"input_ids": ids, "attention_mask": mask, "labels": labels, "weights": ones}
    )
    assert torch.allclose(plain, same, atol=1e-5)
    heavy = ones.clone()
    heavy[0, 7] = 4.0
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                           reduction="none", ignore_index=-100).view(2, 11)  # fmt: skip
    w = heavy[:, 1:] * (labels[:, 1:] != -100)
    expected = (ce * w).sum() / (labels[:, 1:] != -100).sum()
    got = cls.compute_loss(
        trainer, model, {"input_ids": ids, "attention_mask": mask, "labels": labels, "weights": heavy}
    )
    assert torch.allclose(expected, got, atol=1e-5) and got > same


def _item(margins: dict[str, float], filled: set[str], abstain: bool = False) -> dict:
    return {"id": "x", "abstain": abstain,
            "sections": {n: {"margin": m, "filled": n in filled} for n, m in margins.items()}}  # fmt: skip


def test_choose_bias_separates_on_val_and_keeps_abstaining_rows_silent():
    items = [_item({"medications": 0.5}, {"medications"}) for _ in range(10)]
    items += [_item({"medications": 3.0}, set()) for _ in range(10)]
    items += [_item({"medications": 2.0}, set(), abstain=True) for _ in range(10)]
    out = decisions.choose_bias(items, max_false_write=0.15)
    b = out["empty_bias"]["medications"]
    assert 0.5 < b <= 2.0 and out["abstention_on_val"] >= 0.85
    assert "immediate_actions" not in out["empty_bias"]
    summary = decisions.summarise(items)["medications"]
    assert summary["p_empty_where_filled"] < summary["p_empty_where_empty"] and summary["auc"] == 1.0


def test_abstaining_rows_the_grounding_check_silences_do_not_lower_the_bias():
    """An abstaining row whose passages concern nothing of its primary condition is silent whatever the model
    writes (the check removes it); one whose passages concern it is not held to silence. Only rows not judged
    lower the bias, as before."""
    items = [_item({"medications": 0.5}, {"medications"}) for _ in range(10)]
    items += [_item({"medications": 3.0}, set()) for _ in range(20)]
    unjudged = [_item({"medications": 0.5}, set(), abstain=True) for _ in range(5)]
    assert decisions.choose_bias(items + unjudged)["lowered_by"] > 0
    for concerned in (False, True):
        judged = [{**it, "concerned": concerned} for it in unjudged]
        out = decisions.choose_bias(items + judged)
        assert out["lowered_by"] == 0 and 0.5 < out["empty_bias"]["medications"] < 3.0
        assert out["abstention_on_val"] == 1.0


def test_bias_is_stored_with_the_adapter_and_loaded(tmp_path):
    assert decisions.load_bias(tmp_path) is None and decisions.load_bias(None) is None
    (tmp_path / decisions.DECODING_FILE).write_text(json.dumps({"empty_bias": {"medications": 1.5}}))
    assert decisions.load_bias(tmp_path) == {"medications": 1.5}


def test_empty_bias_lowers_only_the_closing_tokens_after_the_sections_bracket(tok):
    import torch

    pieces = decisions.Pieces(tok, 300)
    proc = decisions.EmptyBias(tok, pieces, {"medications": 2.0, "lifestyle": 0.0}, prompt_len=2)
    prompt = [5, 6]
    gen = tok('{"immediate_actions":[],"medications":[', add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + gen, prompt + gen[:-3] + gen[-3:]])
    scores = torch.zeros(2, 300)
    out = proc(ids, scores.clone())
    close = pieces.sets("")[0]
    assert close and bool((out[:, close] == -2.0).all())
    assert int((out != 0).sum()) == 2 * len(close)
    other = torch.tensor([prompt + tok('{"immediate_actions":[', add_special_tokens=False)["input_ids"]])
    assert bool((proc(other, torch.zeros(1, 300)) == 0).all())  # unbiased section: untouched


def test_generator_applies_the_adapters_bias(tiny_model, tok):
    """A large bias against empty makes the tiny random model fill a section the unbiased decoder leaves empty
    (or, at least, changes what it writes): the bias reaches the constrained generator."""
    import torch
    from transformers import AutoModelForCausalLM

    from medlora.generation.hf import SectionsGenerator

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    passages = [type("P", (), {"shown": "Gout. Colchicine treats gout."})()]
    plain = SectionsGenerator(model, tok, max_new_tokens=60).generate([RECORD], passages=[passages])[0]
    model.empty_bias = {n: 50.0 for n in SECTION_NAMES if n != "immediate_actions"}
    pushed = SectionsGenerator(model, tok, max_new_tokens=60).generate([RECORD], passages=[passages])[0]
    assert pushed.text.startswith('{"immediate_actions":')
    first_empty = [n for n in SECTION_NAMES[1:] if f'"{n}":[]' in plain.text]
    assert not any(f'"{n}":[]' in pushed.text for n in first_empty[:1])


def test_a_section_whose_margins_do_not_separate_on_val_is_not_biased():
    items = [_item({"medications": m, "lifestyle": 0.5}, {"medications", "lifestyle"}) for m in (1.0, 3.0) * 3]
    items += [_item({"medications": m, "lifestyle": 3.0}, set()) for m in (1.0, 3.0) * 3]
    out = decisions.choose_bias(items, max_false_write=1.0)
    assert out["per_section"]["medications"]["auc"] == 0.5 and out["empty_bias"]["medications"] == 0.0
    assert out["per_section"]["lifestyle"]["auc"] == 1.0 and 0.5 < out["empty_bias"]["lifestyle"] <= 3.0
    # Perfectly separated, but on too few filled targets to choose anything.
    few = decisions.choose_bias(items[:4] + items[6:], max_false_write=1.0)
    assert few["empty_bias"]["lifestyle"] == 0.0 and "fewer than" in few["per_section"]["lifestyle"]["not_biased"]


def test_margins_teacher_forced_on_the_target_or_on_a_silent_prefix(tiny_model, tok):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    row = {"id": "t", "passages": [1, 2], "messages": treatment_messages(RECORD, TARGET)}
    gold = decisions.decision_margins(model, tok, [row])[0]["sections"]
    silent = decisions.decision_margins(model, tok, [row], prefix="silent")[0]["sections"]
    assert {n: s["filled"] for n, s in gold.items()} == {n: s["filled"] for n, s in silent.items()}
    assert gold["medications"]["filled"] and not gold["follow_up"]["filled"]
    # The first decision sees the same prefix either way; later ones differ once the target has filled one.
    assert gold["immediate_actions"]["margin"] == silent["immediate_actions"]["margin"]
    assert gold["follow_up"]["margin"] != silent["follow_up"]["margin"]
    assert decisions.decision_margins(model, tok, [{**row, "passages": []}]) == []  # no passages: no decision
