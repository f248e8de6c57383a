"""medlora.evaluation.items: a test row read once into the item every row and scorer takes, with the same figures
as the row read again by each scorer; and the safety rules' first result reused for the published audit."""

from __future__ import annotations

import dataclasses
import json
import random

from medlora.common.schemas import MAX_ITEMS, Medication, PatientRecord, Sections, sections_json
from medlora.data.passages import Passage
from medlora.evaluation import grounding as grounding_eval
from medlora.evaluation import items as eval_items
from medlora.evaluation import treatment as treatment_eval
from medlora.safety.rules import SafetyFacts, apply_safety

TARGET = Sections(medications=[Medication(name="colchicine")], lifestyle=["Drink plenty of water."])
RECORD = {"age": 50, "conditions": ["Gout"], "medications": ["lisinopril 10 mg"], "allergies": ["PCN"]}
P = Passage(0, "Gout is treated with colchicine. Drink plenty of water.", "Gout",
            "What are the treatments for Gout ?", "treatment", "https://ex.org/g", "qa-g", "test", 20)  # fmt: skip


def _row(**extra) -> dict:
    return {"id": "t", "kind": "treatment", "focus": "Gout", "record": RECORD, "passages": [0],
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                         {"role": "assistant", "content": sections_json(TARGET)}], **extra}  # fmt: skip


def test_a_row_is_read_once_into_its_item():
    item = eval_items.read_item(_row(red_flags=["low_spo2"]), [P])
    assert item.record == PatientRecord.model_validate(RECORD)
    assert item.target == TARGET and item.passages == (P,)
    assert item.variant == "exact" and item.has_flag and not item.abstain and item.evidence
    assert item.prompt == _row()["messages"][:2]
    assert [a.written for a in item.facts.allergies] == ["PCN"] and item.facts.drugs.lines == (
        "lisinopril 10 mg",
    )
    silent = eval_items.read_item(_row(variant="no_evidence", abstain=True, messages=[
        {"role": "system", "content": "s"}, {"role": "user", "content": "u"},
        {"role": "assistant", "content": sections_json(Sections(immediate_actions=["Rest."]))}]))  # fmt: skip
    assert silent.variant == "no_evidence" and silent.abstain and not silent.evidence
    assert not eval_items.has_content(Sections(immediate_actions=["x"])) and eval_items.has_content(TARGET)
    # a grounding-only row (no record, no target): evidence is whether its passages are about its focus
    bare = eval_items.read_item({"passages": [0], "abstain": True})
    assert bare.record is None and bare.target is None and bare.facts is None and not bare.evidence


def test_as_items_keeps_items_and_reads_plain_rows():
    class Index:
        passages = [P]

    item = eval_items.read_item(_row(), [P])
    out = eval_items.as_items([item, _row()], Index())
    assert out[0] is item and out[1].passages == (P,) and out[1].target == TARGET
    assert eval_items.as_items([_row()])[0].passages == ()


def test_the_published_audit_is_what_running_the_rules_again_finds():
    """The rules remove every allergy conflict and only flag duplicates: running them on their own output finds
    no conflict and the same duplicates, except where their emergency action pushed an item out (then they run)."""
    rng = random.Random(7)
    drugs = [
        "amoxicillin",
        "ibuprofen",
        "lisinopril",
        "losartan",
        "naproxen",
        "cephalexin",
        "aspirin",
        "warfarin",
    ]
    seen = {"conflict": 0, "duplicate": 0, "full": 0}
    for n in range(150):
        record = PatientRecord(
            age=rng.choice([8, 40, 80]), symptoms=[rng.choice(["cough", "chest pain and sweating", "rash"])],
            medications=rng.sample(["lisinopril 10 mg", "ibuprofen 400 mg", "warfarin 5 mg"], rng.randint(0, 2)),
            allergies=rng.sample(["PCN", "NSAIDs (hives)", "sulfa"], rng.randint(0, 2)),
            vitals={"spo2": 85} if rng.random() < 0.4 else {},
        )  # fmt: skip
        out = Sections(
            immediate_actions=[f"Step {i}: take {rng.choice(drugs)}." for i in range(rng.choice([0, 2, 7, MAX_ITEMS]))],
            medications=[Medication(name=d) for d in rng.sample(drugs, rng.randint(0, 4))],
        )  # fmt: skip
        facts = SafetyFacts.of(record)
        first = apply_safety(record, out, facts)
        again = apply_safety(record, first.sections)
        expected = (bool(again.safety.allergy_conflicts), bool(again.duplicates))
        assert treatment_eval._published_audit(record, first, facts) == expected, n
        seen["conflict"] += bool(first.safety.allergy_conflicts)
        seen["duplicate"] += bool(first.duplicates)
        seen["full"] += bool(first.flag_codes) and len(out.immediate_actions) == MAX_ITEMS
    assert min(seen.values()) >= 5, seen


def test_item_scores_of_an_item_and_of_its_row_agree():
    row = _row(red_flags=["x"])
    output = (Sections(medications=[Medication(name="colchicine"), Medication(name="amoxicillin")],
                       lifestyle=["Drink plenty of water."]), {"medications": [[1], [1]], "lifestyle": [[1]]})  # fmt: skip
    item = eval_items.read_item(row, [P])
    for passages in (None, [P]):
        assert treatment_eval.item_scores(item, output, passages) == treatment_eval.item_scores(
            row, output, passages
        )
    scored = treatment_eval.item_scores(item, output, [P])
    assert scored["raw"]["allergy_violation"] and not scored["published"]["allergy_violation"]


def test_built_items_score_like_the_rows_and_carry_their_distractors(tiny_data):
    from medlora.retrieval.index import load_index

    index = load_index(tiny_data)
    test = [json.loads(x) for x in (tiny_data / "test.jsonl").read_text().splitlines()]
    rows = [r for r in test if r["kind"] == "treatment"][:6]
    items = eval_items.build_items(rows, index)
    assert [it.row["id"] for it in items] == [r["id"] for r in rows]
    old = grounding_eval.no_evidence_rows(rows, index)
    for it, r, d in zip(items, rows, old, strict=True):
        assert it.passages == tuple(eval_items.row_passages(r, index))
        assert it.distractors.abstain and it.distractors.target is it.target
        assert [p.pid for p in it.distractors.passages] == d["passages"]
        assert all(p.focus != r["focus"] for p in it.distractors.passages)
    assert eval_items.distractor_items(items, index) == [it.distractors for it in items]
    outputs = grounding_eval.extractive_outputs(rows, index)
    assert outputs == grounding_eval.extractive_outputs(items, index)
    passages = [eval_items.row_passages(r, index) for r in rows]
    by_row = treatment_eval.evaluate_rows(rows, outputs, 50, 0, passages)
    # A plain row is not judged for what its passages concern (that needs the record and the index together).
    unjudged = [dataclasses.replace(it, concerns=None) for it in items]
    by_item = treatment_eval.evaluate_rows(unjudged, outputs, 50, 0, [it.passages for it in items])
    assert by_row == by_item
    distract = eval_items.distractor_items(items, index)
    assert grounding_eval.grounded_report(old, outputs, index, 0, 50) == grounding_eval.grounded_report(
        distract, outputs, index, 0, 50
    )


def test_distractor_copies_are_judged_and_their_published_abstention_follows_the_check(tiny_data):
    """What the passages concern is judged for every item as inference judges it; the extractive rules write
    from distractors, and what is published of it is what the grounding check then lets through."""
    from medlora.retrieval.index import load_index
    from medlora.retrieval.subject import concerns

    index = load_index(tiny_data)
    test = [json.loads(x) for x in (tiny_data / "test.jsonl").read_text().splitlines()]
    items = eval_items.build_items([r for r in test if r["kind"] == "treatment"][:6], index, judge=concerns)
    assert all(
        it.concerns is not None and len(it.concerns) == len(it.passages) for it in items if it.passages
    )
    distract = eval_items.distractor_items(items, index)
    outputs = grounding_eval.extractive_outputs(distract, index)
    published = grounding_eval.published(distract, outputs)
    elsewhere = [i for i, it in enumerate(distract) if it.concerns is not None and not any(it.concerns)]
    assert any(eval_items.has_content(outputs[i][0]) for i in elsewhere)  # the rules did write from them
    assert not any(eval_items.has_content(published[i]) for i in elsewhere)
    report = grounding_eval.grounded_scores(distract, outputs, index, 0, 50)
    assert report["abstention_published"] > report["abstention"]
