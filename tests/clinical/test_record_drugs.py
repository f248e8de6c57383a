"""medlora.clinical.record_drugs: the record's medication lines read once give the answers the rules read per
line, and the check after generation answers the same with them handed down as without."""

from __future__ import annotations

from medlora.clinical.drugs import find_drugs, resolve
from medlora.clinical.record_drugs import RecordDrugs, record_drugs
from medlora.common.schemas import Medication, PatientRecord, Sections
from medlora.common.text import normalised
from medlora.data.passages import Passage
from medlora.grounding.check import check_output
from medlora.grounding.publishable import own_medication

RECORD = PatientRecord(
    age=64,
    conditions=["hypertension", "gout"],
    medications=["Zestril 10 mg daily", "HCTZ 25 mg", "allopurinol 100 mg once daily", "fish oil"],
    allergies=["PCN"],
)


def test_each_line_is_read_as_the_rules_read_it():
    drugs = RecordDrugs.of(RECORD)
    assert drugs.lines == tuple(RECORD.medications)
    assert drugs.resolved == tuple(resolve(c) for c in RECORD.medications)
    assert drugs.resolved[0].ingredients == ("lisinopril",)
    assert drugs.mentions == tuple(tuple(find_drugs(c)) for c in RECORD.medications)
    assert drugs.normalised == tuple(normalised(c) for c in RECORD.medications)
    assert record_drugs(RECORD, drugs) is drugs
    assert record_drugs(PatientRecord(symptoms=["cough"]), None).lines == ()


def test_own_medication_answers_the_same_with_the_lines_read_once():
    drugs = RecordDrugs.of(RECORD)
    for name in ("lisinopril", "Prinivil", "hydrochlorothiazide", "allopurinol", "fish oil", "colchicine", "ACE inhibitors", "Family History"):  # fmt: skip
        assert own_medication(name, RECORD, drugs) == own_medication(name, RECORD), name
    assert own_medication("lisinopril", RECORD, drugs) and not own_medication("colchicine", RECORD, drugs)


def test_the_check_after_generation_publishes_the_same_with_the_lines_handed_down():
    p = Passage(0, "Gout attacks are treated with colchicine 0.5 mg or NSAIDs such as naproxen.", "Gout",
                "What are the treatments for Gout ?", "treatment", "https://ex.org/g", "qa-g", "test", 20)  # fmt: skip
    out = Sections(
        medications=[
            Medication(name="colchicine", dosage="0.5 mg"),
            Medication(name="allopurinol", dosage="100 mg", frequency="once daily"),
            Medication(name="lisinopril", dosage="20 mg"),
            Medication(name="metformin"),
        ],
        lifestyle=["Keep taking allopurinol 100 mg and switch to febuxostat."],
    )
    cites = {"medications": [[1], [], [], [1]], "lifestyle": [[1]]}
    for passages in ([p], None):
        once = check_output(RECORD, out, cites, passages, RecordDrugs.of(RECORD))
        plain = check_output(RECORD, out, cites, passages)
        assert once.sections == plain.sections and once.citations == plain.citations
        assert once.grounding == plain.grounding
    kept = [
        m.name for m in check_output(RECORD, out, cites, [p], RecordDrugs.of(RECORD)).sections.medications
    ]
    assert kept == ["colchicine", "allopurinol", "lisinopril"], (
        "own medications need no citation; metformin does"
    )
