import json
from pathlib import Path

import pytest
from conftest import MEDQUAD_FIXTURE

from medlora.common.schemas import Medication, PatientRecord, Sections, Vitals
from medlora.data import medquad
from medlora.data.prompts import patient_text
from medlora.datasets import treatment as treatment_data

LABELLED = Path(__file__).parents[1] / "fixtures" / "medication_names_labelled.tsv"
TARGETS_LABELLED = Path(__file__).parents[1] / "fixtures" / "medication_targets_labelled.tsv"


def read_fixture():
    return medquad.read_source(MEDQUAD_FIXTURE, medquad.ReadReport())


def test_treatment_target_is_extracted_not_invented():
    pairs = read_fixture()
    by_type = {}
    for p in pairs:
        if p.focus == "Hypertension":
            by_type.setdefault(p.qtype, []).append(p)
    sections, sources = treatment_data.treatment_target(by_type)
    assert sources == ["https://example.org/hypertension"]
    assert [m.name for m in sections.medications] == [
        "thiazide diuretics",
        "ACE inhibitors",
        "calcium channel blockers",
    ]
    assert all(m.dosage is None for m in sections.medications)  # no source states a dose
    assert sections.specialist_referrals[0].specialty == "cardiologist"
    assert sections.follow_up[0].timing == "every 3 months"
    source_text = " ".join(p.answer for ps in by_type.values() for p in ps)
    for text in sections.lifestyle + sections.patient_education + [m.test for m in sections.monitoring]:
        assert text in source_text
    assert sections.immediate_actions == []


def test_examples_follow_the_data_contract():
    pairs = medquad.deduplicate(read_fixture())[0]
    rows = treatment_data.build_examples(pairs)
    assert rows == sorted(rows, key=lambda r: r["id"])
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) >= {"id", "kind", "focus", "qtype", "source", "url", "messages"}
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
    treatments = [r for r in rows if r["kind"] == "treatment"]
    assert len(treatments) == 36  # 12 foci with a treatment answer, 3 patients each
    for r in treatments:
        target = Sections.model_validate_json(r["messages"][2]["content"])
        assert any(getattr(target, s) for s in Sections.model_fields)
        record = PatientRecord.model_validate(r["record"])
        assert record.conditions[0] == r["focus"] and record.age is not None
        assert patient_text(record) in r["messages"][1]["content"]  # the prompt shows this record
    one = [r for r in treatment_data.build_examples(pairs, patients_per_focus=1) if r["kind"] == "treatment"]
    assert len(one) == 12
    assert treatment_data.build_examples(pairs) == rows, "same seed, same rows"
    other = treatment_data.build_examples(pairs, seed=7)
    assert [r["record"] for r in other if r["kind"] == "treatment"] != [r["record"] for r in treatments]


def test_medication_names_are_kept_only_when_they_name_a_drug():
    sentence = (
        "Doctors may prescribe medicines such as naproxen may be used, thymic carcinoma, swelling, "
        "or NSAIDs and anti-arrhythmic drugs."
    )
    candidates = treatment_data.medication_candidates(sentence)
    assert "thymic carcinoma" in candidates and "NSAIDs" in candidates  # edge words stripped
    kept = [n for c in candidates if (n := treatment_data.medication_name(c))]
    assert kept == ["naproxen", "NSAIDs", "anti-arrhythmic drugs"]


def _labelled():
    lines = [
        ln.rstrip("\n").split("\t") for ln in LABELLED.read_text().splitlines() if not ln.startswith("#")
    ]
    return [(name, int(label)) for name, label, *_ in lines[1:]]


def test_medication_cleaning_precision_on_hand_labelled_names():
    """150 names extracted from the full MedQuAD, labelled by hand (tests/fixtures/medication_names_labelled.tsv):
    of the names the cleaning keeps, at least 95% are drugs; the recall it costs is bounded and reported."""
    rows = _labelled()
    assert len(rows) == 150
    clean = treatment_data.clean_candidate  # the sample was drawn before edge words were stripped
    kept = [(name, label) for name, label in rows if treatment_data.medication_name(clean(name)) is not None]
    drugs_labelled = sum(label for _, label in rows)
    precision = sum(label for _, label in kept) / len(kept)
    recall_loss = 1 - sum(label for _, label in kept) / drugs_labelled
    print(f"kept {len(kept)} of 150; precision {precision:.3f}; recall loss {recall_loss:.3f}")
    assert precision >= 0.95
    assert recall_loss <= 0.15


def test_medications_in_targets_are_drugs_on_hand_labelled_names():
    """150 names as they land in targets (tests/fixtures/medication_targets_labelled.tsv, from the full MedQuAD),
    labelled by hand in their sentences: at least 95% of those still extracted are drugs."""
    lines = [ln.split("\t") for ln in TARGETS_LABELLED.read_text().splitlines() if not ln.startswith("#")][1:]
    assert len(lines) == 150
    kept = [int(label) for name, label, *_ in lines if treatment_data.medication_name(name) is not None]
    assert len(kept) >= 140, "the labelled names are what the extraction keeps"
    print(f"targets: {len(kept)} of 150 still kept; precision {sum(kept) / len(kept):.3f}")
    assert sum(kept) / len(kept) >= 0.95


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("A newer therapy is levodopa (Sinemet), a drug used to treat it.", ["levodopa", "Sinemet"]),
        ("Doctors may prescribe drugs such as NSAIDs to relieve pain.", ["NSAIDs", "NSAIDs"]),
        ("Avoid aspirin, which can make bleeding worse.", []),
        ("Antidepressants work on neurotransmitters such as serotonin and dopamine.", []),
        ("Patients should be given IPV rather than the oral polio vaccine.", []),
        ("The skin is often dry and itchy.", []),
    ],
)
def test_sentence_medications(sentence, expected):
    assert treatment_data.sentence_medications(sentence) == expected


def test_one_medication_per_therapy():
    assert treatment_data.drug_keys("levodopa") <= treatment_data.drug_keys("Sinemet")  # carbidopa/levodopa
    assert treatment_data.drug_keys("Advil") == treatment_data.drug_keys("ibuprofen 200 mg")
    assert not treatment_data.drug_keys("ibuprofen") & treatment_data.drug_keys("NSAIDs")
    answers = {
        "treatment": [
            medquad.QAPair(
                "q ?", "A newer therapy is levodopa (Sinemet), a drug used to treat it.", "treatment", "P"
            )
        ]
    }
    assert [m.name for m in treatment_data.treatment_target(answers)[0].medications] == ["levodopa"]


def _sections(*meds: str) -> Sections:
    return Sections(medications=[Medication(name=m) for m in meds], lifestyle=["Rest the joint."])


def test_target_is_the_sourced_sections_after_the_inference_rules():
    sections = _sections("amoxicillin", "ibuprofen", "colchicine")
    allergic = PatientRecord(conditions=["Gout"], allergies=["PCN"])
    target, result, removed = treatment_data.personalised_target(allergic, sections)
    assert [m.name for m in target.medications] == ["ibuprofen", "colchicine"]
    assert result.safety.allergy_conflicts and removed == 0
    on_advil = PatientRecord(conditions=["Gout"], medications=["Advil 200 mg as needed"])
    target, _, removed = treatment_data.personalised_target(on_advil, sections)
    assert [m.name for m in target.medications] == ["amoxicillin", "colchicine"] and removed == 1
    hypoxic = PatientRecord(age=40, conditions=["Gout"], vitals=Vitals(spo2=84))
    target, result, _ = treatment_data.personalised_target(hypoxic, sections)
    assert (
        result.flag_codes
        and target.immediate_actions
        and target.immediate_actions[0] not in sections.lifestyle
    )
    assert target.lifestyle == sections.lifestyle, "nothing is added that the sources do not say"


def test_patient_stats_and_the_ground_seam():
    pairs = medquad.deduplicate(read_fixture())[0]
    seen = []

    def ground(case, rng):
        seen.append((case.focus, case.index, isinstance(case.target, Sections), rng.random()))
        return {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
            ],
            "passages": [1],
        }

    rows = treatment_data.build_examples(pairs, ground=ground)
    treat = [r for r in rows if r["kind"] == "treatment"]
    assert len(seen) == len(treat) and all(
        r["passages"] == [1] and r["messages"][2]["content"] == "a" for r in treat
    )
    stats = treatment_data.patient_stats(treatment_data.build_examples(pairs))
    assert stats["treatment_examples"] == 36 and sum(stats["age"].values()) == 36
    plain = [r for r in treatment_data.build_examples(pairs) if r["kind"] == "treatment"]
    with_allergies = sum(bool(r["record"].get("allergies")) for r in plain)
    assert 0 < with_allergies < 36 and stats["share_with_allergies"] == round(with_allergies / 36, 4)
    with_flags = sum(bool(r["red_flags"]) for r in plain)
    assert stats["share_with_red_flags"] == round(with_flags / 36, 4)
    fills = stats["section_fill_rates"]
    assert set(fills) == set(Sections.model_fields)
    meds = sum(bool(json.loads(r["messages"][2]["content"])["medications"]) for r in plain)
    assert meds > 0 and fills["medications"] == round(meds / 36, 4)


def test_section_fill_rates_count_targets_with_an_item():
    def row(sections):
        return {
            "kind": "treatment",
            "messages": [{"role": "assistant", "content": sections.model_dump_json()}],
        }

    rows = [row(Sections(lifestyle=["Rest."])), row(Sections()), row(Sections(lifestyle=["Walk."], monitoring=[
        {"test": "blood pressure", "frequency": None}]))] + [{"kind": "qa"}]  # fmt: skip
    fills = treatment_data.section_fill_rates(rows)
    assert fills["lifestyle"] == round(2 / 3, 4) and fills["monitoring"] == round(1 / 3, 4)
    assert fills["follow_up"] == 0.0 and treatment_data.section_fill_rates([{"kind": "qa"}]) == {}


@pytest.mark.parametrize(
    "sentence, timing",
    [
        ("Regular follow-up exams are very important for long-term survivors.", "regular"),
        ("Lifelong follow-up is needed.", "lifelong"),
        ("Follow-up tests may be needed.", treatment_data.FOLLOW_UP_TIMING_UNSTATED),
        ("See your doctor every 3 months for a check of your blood pressure.", "every 3 months"),
        ("Have regular checkups as recommended by your doctor.", "regular"),
        ("The importance of these differences will be scrutinized in follow-up research.", None),
        ("It may be found during a regular dental check-up.", None),
        ("Gout is treated with colchicine.", None),
    ],
)
def test_follow_up_items_come_from_what_medquad_says(sentence, timing):
    item = treatment_data.follow_up_item(sentence)
    assert (item.timing if item else None) == timing
    if item:
        assert item.purpose == sentence, "the purpose is the source's sentence, never written"
