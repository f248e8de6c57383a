"""medlora.safety.rules.SafetyFacts: the record's safety facts read once give the safety rules' every answer unchanged, on the
phrasing table (tests/fixtures/safety_cases.jsonl) and on random records."""

from __future__ import annotations

import json
from pathlib import Path

from medlora.common.schemas import PatientRecord, Sections
from medlora.safety.allergies import record_allergies
from medlora.safety.red_flags import red_flags
from medlora.safety.rules import SafetyFacts, apply_safety, duplicate_therapy

CASES = [
    json.loads(line)
    for line in (Path(__file__).parents[1] / "fixtures" / "safety_cases.jsonl").open()
    if line.strip()
]
META = {"why", "expect", "recommend", "removed", "caution", "duplicates", "interactions", "contraindications"}


def _case(case: dict) -> tuple[PatientRecord, Sections]:
    fields = {k: v for k, v in case.items() if k not in META}
    if not fields.get("conditions") and not fields.get("symptoms"):
        fields["symptoms"] = ["sore throat"]
    return PatientRecord(**fields), Sections(**case.get("recommend", {}))


def test_the_facts_are_what_the_rules_read():
    record = PatientRecord(
        age=70, symptoms=["chest pain radiating to the left arm"], medications=["lisinopril 10 mg"],
        allergies=["PCN (hives)"], notes="allergic to sulfa",
    )  # fmt: skip
    facts = SafetyFacts.of(record)
    assert len(facts.allergies) == 2 and facts.flags
    assert list(facts.allergies) == record_allergies(record) and facts.allergies
    assert list(facts.flags) == red_flags(record)
    assert facts.drugs.lines == tuple(record.medications)


def test_every_case_of_the_table_gives_the_same_result_with_the_facts_read_once():
    fired = 0
    for case in CASES:
        record, sections = _case(case)
        facts = SafetyFacts.of(record)
        once, plain = apply_safety(record, sections, facts), apply_safety(record, sections)
        assert once.sections == plain.sections, case["why"]
        assert once.safety == plain.safety and once.flag_codes == plain.flag_codes, case["why"]
        assert duplicate_therapy(record, sections, facts.drugs) == duplicate_therapy(record, sections)
        # the same facts serve a second output about the same patient
        assert apply_safety(record, Sections(), facts).safety == apply_safety(record, Sections()).safety
        fired += bool(plain.safety.duplicate_medications or plain.safety.allergy_conflicts)
    assert fired >= 20, "the table exercises removals and duplicates, not only quiet cases"
