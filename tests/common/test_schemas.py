import pytest
from pydantic import ValidationError

from medlora.common.schemas import (
    DISCLAIMER,
    SECTION_NAMES,
    PatientRecord,
    Recommendation,
    Sections,
    parse_sections,
    sections_json,
)


def test_seven_sections_in_order():
    assert SECTION_NAMES == (
        "immediate_actions",
        "medications",
        "lifestyle",
        "follow_up",
        "specialist_referrals",
        "monitoring",
        "patient_education",
    )


def test_round_trip_and_disclaimer():
    s = Sections(lifestyle=["Walk daily."], medications=[{"name": "metformin"}])
    assert parse_sections(sections_json(s)) == s
    rec = Recommendation(**s.model_dump())
    assert rec.safety.disclaimer == DISCLAIMER
    with pytest.raises(ValidationError):
        Recommendation(safety={"disclaimer": "whatever"})


@pytest.mark.parametrize(
    "record, field",
    [
        ({"age": 130, "conditions": ["x"]}, "age"),
        ({"conditions": ["x"], "vitals": {"spo2": 120}}, "vitals.spo2"),
        ({"conditions": ["x"], "height": 3}, "height"),
        ({"age": 40}, "a record needs at least one condition"),
        ({"conditions": ["x\x00y"]}, "control characters"),
        ({"conditions": ["x"], "notes": "n" * 2001}, "notes"),
        ({"conditions": "asthma"}, "conditions"),
        ({"conditions": ["x"], "sex": "f"}, "sex"),
        ({"conditions": ["x"], "vitals": {"systolic_bp": 70, "diastolic_bp": 130}}, "were they swapped"),
        ({"conditions": ["x"], "vitals": {"systolic_bp": 90, "diastolic_bp": 90}}, "must be below systolic"),
    ],
)
def test_invalid_records_name_the_field(record, field):
    with pytest.raises(ValidationError) as e:
        PatientRecord.model_validate(record)
    text = str(e.value)
    assert field.split(".")[0] in text or field in text


def test_diastolic_below_systolic_is_accepted_and_either_alone_too():
    for vitals in ({"systolic_bp": 130, "diastolic_bp": 70}, {"diastolic_bp": 130}, {"systolic_bp": 70}):
        assert PatientRecord.model_validate({"conditions": ["x"], "vitals": vitals}).vitals


def test_valid_record():
    r = PatientRecord.model_validate(
        {
            "patient_id": "p1",
            "age": 54,
            "sex": "female",
            "conditions": ["Hypertension"],
            "allergies": ["penicillin"],
            "vitals": {"systolic_bp": 150, "spo2": 97},
            "notes": "line one\nline two",
        }
    )
    assert r.vitals.systolic_bp == 150 and r.notes == "line one\nline two"


def test_a_blank_recommendation_is_unsupported_never_an_answer():
    """DESIGN.md's three states, derived from the record itself (whoever builds it)."""
    blank = Recommendation()
    assert blank.status == "unsupported" and blank.unsupported_reason == "model_wrote_nothing"
    assert "could be supported" in blank.status_message
    assert Recommendation(evidence="none").unsupported_reason == "no_evidence"
    removed = Recommendation(
        grounding={"unsupported": [{"section": "medications", "item": "x", "reason": "r"}]}
    )
    assert removed.status == "unsupported" and removed.unsupported_reason == "all_removed"
    answer = Recommendation(lifestyle=["Walk daily."])
    assert answer.status == "recommendation" and answer.unsupported_reason is None
    assert answer.status_message is None
    # An emergency line alone is an emergency, still saying that nothing else could be supported.
    flags = {"red_flags": [{"code": "spo2_low", "message": "SpO2 below 90%"}]}
    emergency = Recommendation(immediate_actions=["EMERGENCY: call"], safety=flags)
    assert emergency.status == "emergency" and emergency.unsupported_reason == "model_wrote_nothing"
    full = Recommendation(immediate_actions=["EMERGENCY: call"], lifestyle=["Rest."], safety=flags)
    assert full.status == "emergency" and full.unsupported_reason is None
    # An immediate action other than the rules' emergency line is advice, not a blank.
    assert Recommendation(immediate_actions=["Use the reliever inhaler now."]).status == "recommendation"
    # A client's copy cannot claim another state: the fields are recomputed.
    forged = Recommendation.model_validate({**blank.model_dump(), "status": "recommendation"})
    assert forged.status == "unsupported"


def test_a_typo_d_field_gets_a_did_you_mean_and_a_stranger_does_not():
    from medlora.common.schemas import error_line, load_record

    with pytest.raises(ValidationError) as e:
        load_record('{"conditions": ["x"], "allergys": ["a"], "vitals": {"sp02": 90}, "smoker": true}')
    line = error_line(e.value)
    assert "allergys: Extra inputs are not permitted (did you mean 'allergies'?)" in line
    assert "vitals.sp02: Extra inputs are not permitted (did you mean 'spo2'?)" in line
    assert "smoker: Extra inputs are not permitted;" in line + ";" and "did you mean 'sex'" not in line


def test_the_model_writes_its_sections_in_write_order_and_clients_read_them_in_theirs():
    """Training targets, the grammar and the silent prefix follow WRITE_ORDER (patient_education, the section
    most targets fill, right after the rules' section); what clients get keeps the reading order."""
    from medlora.common.schemas import SECTION_NAMES, WRITE_ORDER, GroundedSections, to_published
    from medlora.generation.base import sections_grammar

    assert tuple(GroundedSections.model_fields) == WRITE_ORDER != SECTION_NAMES
    assert WRITE_ORDER[:2] == ("immediate_actions", "patient_education")
    grammar = sections_grammar(3)
    root = next(line for line in grammar.splitlines() if line.startswith("sections ::="))
    assert [root.index(f'\\"{n}\\":') for n in WRITE_ORDER] == sorted(
        root.index(f'\\"{n}\\":') for n in WRITE_ORDER
    )
    target = GroundedSections.model_validate(
        {
            "medications": [{"citations": [1], "name": "colchicine"}],
            "patient_education": [{"citations": [1], "text": "Rest."}],
        }
    ).model_dump_json()
    assert target.index('"patient_education"') < target.index('"medications"')
    published, cites = to_published(GroundedSections.model_validate_json(target))
    assert tuple(published.model_dump()) == SECTION_NAMES and cites["medications"] == [[1]]
