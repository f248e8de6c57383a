"""The phrasing table (tests/fixtures/safety_cases.jsonl): one clinical case a line, written from the references
named in medlora/safety/red_flags.py and medlora/clinical/drug_tables.py, each with the flags, removals, cautions and duplicate
therapies a clinician expects; about half are negative controls that must stay quiet. Round four added cases
for contraindications by patient state ("code:action"), the published interaction list, off-pattern
emergencies and the sentence splitter, a third of them negative controls."""

import json
from pathlib import Path

import pytest

from medlora.common.schemas import PatientRecord, Sections
from medlora.safety.rules import apply_safety

CASES = [
    json.loads(line)
    for line in (Path(__file__).parents[1] / "fixtures" / "safety_cases.jsonl").open()
    if line.strip()
]
META = {"why", "expect", "recommend", "removed", "caution", "duplicates", "interactions", "contraindications"}


def run(case: dict):
    fields = {k: v for k, v in case.items() if k not in META}
    if not fields.get("conditions") and not fields.get("symptoms"):
        fields["symptoms"] = ["sore throat"]
    return apply_safety(PatientRecord(**fields), Sections(**case.get("recommend", {})))


def test_the_table_is_large_and_half_negative():
    negative = [
        c
        for c in CASES
        if not any(
            c.get(k)
            for k in ("expect", "removed", "caution", "duplicates", "interactions", "contraindications")
        )
    ]
    assert len(CASES) >= 450 and len(negative) >= len(CASES) / 3


@pytest.mark.parametrize("case", CASES, ids=[c["why"] for c in CASES])
def test_case(case):
    out = run(case)
    assert sorted(f.code for f in out.safety.red_flags) == sorted(case.get("expect", []))
    assert sorted({c.medication for c in out.safety.allergy_conflicts}) == sorted(case.get("removed", []))
    assert sorted({c.medication for c in out.safety.cautions}) == sorted(case.get("caution", []))
    assert sorted({d.medication for d in out.safety.duplicate_medications}) == sorted(
        case.get("duplicates", [])
    )
    assert sorted({i.code for i in out.safety.interactions}) == sorted(case.get("interactions", []))
    # "code:action", each once: what the state rules decided (removed, or kept with a caution)
    assert sorted({f"{c.code}:{c.action}" for c in out.safety.contraindications}) == sorted(
        case.get("contraindications", [])
    )
    removed = {c.medication for c in out.safety.contraindications if c.action == "removed"}
    kept = {m.name for m in out.sections.medications}
    assert not removed & kept
    if case.get("expect"):
        assert out.sections.immediate_actions[0].startswith("EMERGENCY")
