"""medlora.datasets.patients: seeded, plausible synthetic patients consistent with what the condition's text says."""

from __future__ import annotations

import random
import re

import pytest

from medlora.clinical import drugs
from medlora.data.medquad import QAPair
from medlora.datasets import patient_context, patients


def _answers(text: str, qtype: str = "information") -> dict:
    return {qtype: [QAPair("q ?", text, qtype, "F")]}


def _many(focus: str, text: str = "", n: int = 200, seed: int = 0):
    return [patients.make_patient(focus, _answers(text), random.Random(f"{seed}-{i}")) for i in range(n)]


def test_same_seed_same_patient_and_seeds_differ():
    a = patients.make_patient("Gout", {}, random.Random(1))
    assert a == patients.make_patient("Gout", {}, random.Random(1))
    assert (
        len({patients.make_patient("Gout", {}, random.Random(s)).model_dump_json() for s in range(20)}) == 20
    )
    assert a.conditions[0] == "Gout"


@pytest.mark.parametrize(
    "focus, text, low, high",
    [
        ("Neonatal Jaundice", "", 0, 0.2),
        ("Childhood Asthma", "", 2, 12),
        ("Tay-Sachs", "The signs appear in infants. Infants lose skills. Infancy is when it starts.", 0.1, 2),
        ("Macular Degeneration", "It is most common in adults over 50.", 50, 75),
        ("Gout", "", 20, 85),  # no cue: an adult
    ],
)
def test_age_follows_the_focus_name_or_its_text(focus, text, low, high):
    ages = [p.age for p in _many(focus, text, n=60)]
    assert all(low <= a <= high for a in ages), (focus, min(ages), max(ages))


def test_inheritance_answers_do_not_make_a_condition_paediatric():
    answers = {
        "inheritance": [
            QAPair("q ?", "Each child of an affected parent has a 50% chance.", "inheritance", "F")
        ]
    }
    assert patients.age_bands("Gout", patients.descriptive_text(answers)) == [("adult", patients.ADULT, 1)]


@pytest.mark.parametrize(
    "focus, text, sex",
    [
        ("Prostate Cancer", "", "male"),
        ("Ovarian Cancer", "", "female"),
        ("Duchenne muscular dystrophy", "The condition occurs almost exclusively in males.", "male"),
        ("Rett syndrome", "It affects only girls.", "female"),
    ],
)
def test_sex_specific_conditions(focus, text, sex):
    assert {p.sex for p in _many(focus, text, n=40)} == {sex}


def test_pregnancy_conditions_and_pregnancy_only_in_women_of_child_bearing_age():
    for p in _many("Preeclampsia", n=30):
        assert p.sex == "female" and p.pregnant is True and 18 <= p.age <= 42
    people = _many("Gout", n=600)
    for p in people:
        if p.pregnant is not None:
            assert p.sex == "female" and 15 <= p.age <= 45
    pregnant = sum(bool(p.pregnant) for p in people)
    assert 0 < pregnant < 0.1 * len(people)


def test_comorbidities_fit_the_age_and_bring_their_medications():
    table = {c.condition: c for c in patients.COMORBIDITIES}
    for p in _many("Childhood Asthma", n=200) + _many("Gout", n=200):
        for condition in p.conditions[1:]:
            c = table[condition]
            assert c.ages[0] <= p.age <= c.ages[1] and c.sex in (None, p.sex)
        assert len(p.medications) == len(p.conditions) - 1
    kids = _many("Childhood Asthma", n=200)
    assert not any("asthma" in c for p in kids for c in p.conditions[1:]), (
        "the focus is not its own comorbidity"
    )


def test_shares_are_plausible():
    people = _many("Gout", n=1000)
    allergies = sum(bool(p.allergies) for p in people) / 1000
    abnormal = sum(patients.abnormal(p) for p in people) / 1000
    comorbid = sum(len(p.conditions) > 1 for p in people) / 1000
    assert 0.22 < allergies < 0.38
    assert 0.07 < abnormal < 0.18  # 80% have vitals, 15% of them abnormal
    assert 0.45 < comorbid < 0.8
    normal = [p for p in people if p.vitals.heart_rate is not None and not patients.abnormal(p)]
    assert len(normal) > 600


def test_every_drug_the_generator_writes_is_understood_by_the_drug_normalisation():
    """Allergies and current medications must resolve, or the safety rules could never act on them."""
    for labels, _ in patients.ALLERGY_LABELS:
        for label in labels:
            if label not in ("latex", "peanuts", "shellfish", "bee stings"):
                assert drugs.resolve(label) is not None, label
    for c in patients.COMORBIDITIES:
        for med in c.medications:
            assert drugs.resolve(med) is not None, med


def test_extra_allergy_and_medication_are_on_the_record():
    p = patients.make_patient("Gout", {}, random.Random(3), ["colchicine"], ["allopurinol"])
    assert "colchicine" in p.allergies and "allopurinol" in p.medications


def test_abnormal_vitals_leave_the_normal_range_for_the_age():
    rng = random.Random(0)
    for age in (0.1, 0.5, 1.5, 3, 8, 15, 30, 70):
        for _ in range(30):
            record = patients.PatientRecord(
                age=age,
                conditions=["x"],
                vitals=patients.Vitals(
                    **patients.abnormal_vitals(age, patients.normal_vitals(age, rng), rng)
                ),
            )
            assert patients.abnormal(record)
            normal = patients.PatientRecord(
                age=age, conditions=["x"], vitals=patients.Vitals(**patients.normal_vitals(age, rng))
            )
            assert not patients.abnormal(normal)


HPO = (
    "What are the signs and symptoms of X? The Human Phenotype Ontology provides the following list of signs and "
    "symptoms for X. Signs and Symptoms Approximate number of patients (when available) Malabsorption 90% "
    "Abnormality of movement 50% Incoordination 7.5% Muscular hypotonia 90% Autosomal recessive inheritance - "
)


def test_symptoms_are_the_focus_common_findings_and_notes_state_nothing_clinical_about_it():
    assert patient_context.symptom_terms(_answers(HPO, "symptoms")) == [
        "abnormality of movement", "malabsorption", "muscular hypotonia",
    ]  # fmt: skip
    assert patient_context.symptom_terms(_answers("Symptoms include pain and swelling.", "symptoms")) == []
    people = [patients.make_patient("X", _answers(HPO, "symptoms"), random.Random(i)) for i in range(400)]
    with_symptoms = [p for p in people if p.symptoms]
    assert 0.4 < len(with_symptoms) / 400 < 0.6 and 0.4 < sum(bool(p.notes) for p in people) / 400 < 0.6
    assert all(
        set(p.symptoms) <= {"abnormality of movement", "malabsorption", "muscular hypotonia"} for p in people
    )
    assert {len(p.symptoms) for p in with_symptoms} == {1, 2, 3}
    lines = set(patient_context.NOTE_LINES) | set(patient_context.INSTRUCTION_NOTES)
    for p in people:
        said = p.notes or ""
        assert "X" not in said.split() and all(s in lines for s in re.split(r"(?<=\.) ", said) if s)
    assert any(any(i in (p.notes or "") for i in patient_context.INSTRUCTION_NOTES) for p in people)
