"""medlora.evaluation.treatment: every treatment metric on outputs whose right answer is known by construction."""

from __future__ import annotations

import json

import pytest

from medlora.common.files import read_jsonl
from medlora.common.schemas import Medication, Sections, sections_json
from medlora.evaluation import stats
from medlora.evaluation import treatment as treatment_eval


def _row(record: dict, target: Sections, red_flags=()) -> dict:
    return {
        "id": "t",
        "kind": "treatment",
        "focus": "Strep Throat",
        "record": record,
        "red_flags": list(red_flags),
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": sections_json(target)},
        ],
    }


TARGET = Sections(
    medications=[Medication(name="NSAIDs"), Medication(name="clindamycin")],
    lifestyle=["Rest and drink plenty of fluids."],
)


def _summary(rows, texts, n_boot=50):
    return treatment_eval.evaluate_outputs(rows, texts, stats.bootstrap_indices(len(rows), n_boot, 0))


def test_medication_matching_normalises_brands_and_classes():
    pred = Sections(medications=[Medication(name="Advil 200 mg"), Medication(name="metformin")])
    assert treatment_eval.medication_counts(pred, TARGET) == (
        1,
        2,
        1,
        2,
    )  # Advil is an NSAID; metformin is not
    same = Sections(medications=[Medication(name="Cleocin"), Medication(name="naproxen")])
    assert treatment_eval.medication_counts(same, TARGET) == (2, 2, 2, 2)
    twice = Sections(medications=[Medication(name="ibuprofen"), Medication(name="naproxen")])
    assert treatment_eval.medication_counts(twice, TARGET)[2] == 1, "one target name is matched once"


def test_raw_and_published_scores_of_a_known_output():
    record = {"age": 30, "sex": "female", "conditions": ["Strep Throat"], "allergies": ["PCN"],
              "medications": ["ibuprofen 400 mg as needed"], "vitals": {"spo2": 85}}  # fmt: skip
    row = _row(record, TARGET, red_flags=["low_spo2"])
    output = Sections(
        medications=[
            Medication(name="amoxicillin"),
            Medication(name="Motrin"),
            Medication(name="clindamycin"),
        ],
        lifestyle=["Rest and drink plenty of fluids."],
    )
    s = _summary([row], [sections_json(output)])
    raw, pub = s["raw"], s["published"]
    assert s["schema_valid"] == 1.0
    assert raw["allergy_violation_rate"] == 1.0 and pub["allergy_violation_rate"] == 0.0
    assert raw["red_flag_emergency_recall"] == 0.0 and pub["red_flag_emergency_recall"] == 1.0
    assert raw["duplicate_therapy_rate"] == 1.0  # Motrin repeats the current ibuprofen
    assert raw["medication_precision"] == pytest.approx(2 / 3) and raw["medication_recall"] == 1.0
    assert pub["medication_precision"] == 1.0 and pub["medication_counts"] == {"predicted": 2, "target": 2}
    assert raw["section_rouge_l"]["lifestyle"]["rouge_l"] == pytest.approx(1.0)
    assert raw["section_rouge_l"]["monitoring"]["items"] == 0


def test_invalid_output_counts_as_empty_and_invalid():
    row = _row({"age": 30, "conditions": ["Strep Throat"]}, TARGET)
    s = _summary([row, row], ['{"medications": [', '{"lifestyle": "not a list"}'])
    assert s["schema_valid"] == 0.0
    assert s["raw"]["medication_recall"] == 0.0 and s["raw"]["medication_precision"] is None
    assert s["raw"]["medication_f1"] == 0.0 and s["raw"]["medication_f1_ci"] == [0.0, 0.0]  # nothing said: 0
    assert s["raw"]["allergy_violation_rate"] is None and s["raw"]["allergy_violation_rate_items"] == 0


def test_the_targets_score_perfectly_on_the_fixture_test_split(tiny_data):
    """The scorer against the targets themselves: every figure at its best, with intervals."""
    rows = [r for r in read_jsonl(tiny_data / "test.jsonl") if r["kind"] == "treatment"]
    assert rows
    s = _summary(rows, treatment_eval.reference_outputs(rows))
    assert s["schema_valid"] == 1.0 and s["n_treatment"] == len(rows)
    for variant in ("raw", "published"):
        v = s[variant]
        if v["medication_counts"]["target"]:
            assert v["medication_f1"] == 1.0 and v["medication_f1_ci"] == [1.0, 1.0]
        assert v["allergy_violation_rate"] in (None, 0.0)
        assert v["duplicate_therapy_rate"] in (None, 0.0)
        assert v["red_flag_emergency_recall"] in (None, 1.0)
        assert v["emergency_false_alarm_rate"] in (None, 0.0)
        assert v["answered_on_evidence"] in (None, 1.0) and v["abstained_without_evidence"] in (None, 1.0)
        assert v["target_items"] > 0 and v["target_items_recovered"] == 1.0
        for section in v["section_rouge_l"].values():
            assert section["rouge_l"] in (None, pytest.approx(1.0))
            assert section["filled_where_target_empty"] in (None, 0.0)
    json.dumps(s)  # the report is plain JSON


# --------------------------------------------------------------------- figures that punish silence and alarms
GOUT = Sections(
    medications=[Medication(name="colchicine")],
    lifestyle=["Drink plenty of water and limit alcohol."],
)
ABSTAIN = Sections(
    immediate_actions=["EMERGENCY: call the local emergency number now (see safety.red_flags)."]
)


def _rows_for_silence_and_alarms():
    calm = {"age": 50, "sex": "male", "conditions": ["gout"]}
    flagged = {"age": 50, "sex": "male", "conditions": ["gout"], "vitals": {"spo2": 85}}
    return [
        _row(calm, GOUT),  # evidence, no flag
        {
            **_row(
                flagged,
                Sections(
                    immediate_actions=ABSTAIN.immediate_actions,
                    **GOUT.model_dump(exclude={"immediate_actions"}),
                ),
                red_flags=["low_spo2"],
            ),
            "variant": "reworded",
        },  # fmt: skip
        {**_row(calm, Sections()), "variant": "no_evidence"},  # the target abstains
    ]


def test_the_empty_output_is_punished_for_silence_not_rewarded():
    rows = _rows_for_silence_and_alarms()
    s = treatment_eval.evaluate_rows(rows, [Sections()] * 3, n_boot=50, seed=0)
    raw = s["raw"]
    assert (
        raw["allergy_violation_rate"] is None and raw["duplicate_therapy_rate"] is None
    )  # nothing to violate
    assert raw["answered_on_evidence"] == 0.0 and raw["answered_on_evidence_items"] == 2
    assert raw["abstained_without_evidence"] == 1.0 and raw["abstained_without_evidence_items"] == 1
    assert raw["target_items_recovered"] == 0.0 and raw["target_items"] == 4
    assert raw["medication_recall"] == 0.0 and raw["medication_f1"] == 0.0
    assert raw["red_flag_emergency_recall"] == 0.0 and raw["emergency_false_alarm_rate"] == 0.0
    # published: the safety rules add the emergency action for the flagged patient, and only for them
    assert s["published"]["red_flag_emergency_recall"] == 1.0
    assert s["published"]["emergency_false_alarm_rate"] == 0.0
    assert set(s["by_variant"]) == {"exact", "reworded", "no_evidence"}
    assert s["by_variant"]["no_evidence"]["n_treatment"] == 1
    assert s["by_variant"]["exact"]["raw"]["answered_on_evidence"] == 0.0


def test_a_constant_emergency_action_raises_false_alarms():
    rows = _rows_for_silence_and_alarms()
    alarm = Sections(immediate_actions=["Call 911 or go to the nearest emergency department now."])
    s = treatment_eval.evaluate_rows(rows, [alarm] * 3, n_boot=50, seed=0)
    assert s["raw"]["red_flag_emergency_recall"] == 1.0
    assert s["raw"]["emergency_false_alarm_rate"] == 1.0 and s["raw"]["emergency_false_alarm_rate_items"] == 2
    assert s["published"]["emergency_false_alarm_rate"] == 1.0  # the rules never remove an alarm
    assert s["raw"]["answered_on_evidence"] == 0.0, "an alarm is not an answer"


def test_writing_where_the_target_is_empty_is_counted_per_section():
    rows = _rows_for_silence_and_alarms()
    chatty = Sections(
        medications=[Medication(name="colchicine")],
        lifestyle=["Drink plenty of water and limit alcohol."],
        monitoring=[{"test": "uric acid level", "frequency": "every 6 months"}],
    )
    s = treatment_eval.evaluate_rows(rows, [chatty] * 3, n_boot=50, seed=0)["raw"]
    sec = s["section_rouge_l"]
    assert (
        sec["monitoring"]["filled_where_target_empty"] == 1.0 and sec["monitoring"]["target_empty_items"] == 3
    )
    assert (
        sec["lifestyle"]["filled_where_target_empty"] == 1.0 and sec["lifestyle"]["target_empty_items"] == 1
    )
    assert sec["lifestyle"]["rouge_l"] == pytest.approx(1.0) and sec["lifestyle"]["items"] == 2
    assert sec["follow_up"]["filled_where_target_empty"] == 0.0
    assert s["answered_on_evidence"] == 1.0 and s["abstained_without_evidence"] == 0.0
    assert s["target_items_recovered"] == 1.0


def test_target_items_recovered_counts_each_target_item():
    gold = Sections(
        medications=[Medication(name="colchicine"), Medication(name="allopurinol")],
        lifestyle=["Drink plenty of water and limit alcohol.", "Lose weight slowly if you are overweight."],
    )
    pred = Sections(
        medications=[Medication(name="Colcrys")],  # a colchicine brand
        lifestyle=["Limit alcohol and drink plenty of water every day."],
    )
    assert treatment_eval.items_recovered(pred, gold) == (2, 4)
    assert treatment_eval.items_recovered(Sections(), gold) == (0, 4)
    assert treatment_eval.items_recovered(gold, Sections()) == (0, 0)


def test_paired_difference_of_two_rows_on_the_same_items():
    rows = _rows_for_silence_and_alarms()
    empty = treatment_eval.evaluate_rows(rows, [Sections()] * 3, n_boot=50, seed=0)["_items"]
    reference = treatment_eval.evaluate_rows(rows, treatment_eval.reference_outputs(rows), 50, 0)["_items"]
    diff = treatment_eval.paired_difference(empty, reference, n_boot=50, seed=0)
    assert diff["raw"]["answered_on_evidence"] == 1.0 and diff["raw"]["answered_on_evidence_ci"] == [1.0, 1.0]
    assert diff["raw"]["target_items_recovered"] == 1.0
    assert (
        diff["raw"]["medication_precision"] is None
    )  # the empty row predicts no name: no precision to compare
    assert (
        diff["raw"]["red_flag_emergency_recall"] == 1.0
        and diff["published"]["red_flag_emergency_recall"] == 0.0
    )
    same = treatment_eval.paired_difference(reference, reference, n_boot=50, seed=0)
    assert same["raw"]["medication_recall"] == 0.0 and same["raw"]["medication_recall_ci"] == [0.0, 0.0]
    assert treatment_eval.paired_difference(empty, reference[:2], 50, 0) == {}


def test_published_is_what_the_grounding_check_lets_through():
    """Given the row's passages, a medication its cited passage does not name is counted raw but not published
    (what inference would publish), and one it names survives in both."""
    from medlora.data.passages import Passage

    p = Passage(0, "Strep throat is treated with antibiotics such as clindamycin or amoxicillin.", "Strep Throat",
                "What are the treatments for Strep Throat ?", "treatment", "https://ex.org/st", "qa-st", "test", 20)  # fmt: skip
    record = {"age": 30, "sex": "female", "conditions": ["Strep Throat"]}
    row = _row(record, TARGET)
    output = (
        Sections(medications=[Medication(name="clindamycin"), Medication(name="metformin")]),
        {"medications": [[1], [1]]},
    )
    plain = treatment_eval.item_scores(row, output)
    checked = treatment_eval.item_scores(row, output, passages=[p])
    assert plain["published"]["meds"][1] == 2, "without passages only the safety rules apply"
    assert checked["raw"]["meds"][1] == 2
    assert checked["published"]["meds"][:2] == (1, 1), (
        "metformin is unsupported by passage 1 and not published"
    )
