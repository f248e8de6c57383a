"""What a model writes is published only where a rule vouches for it: hand-written degenerate outputs of each
kind are removed and reported, non-drug "medications" go, empty dose fields are nulled, and (property) whatever
the model writes, every published medication is a drug and every published urgent action a rule's or grounded."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st
from pydantic import ValidationError

from medlora.clinical.drugs import resolve
from medlora.common.schemas import EMERGENCY_HEAD, Medication, PatientRecord, Sections
from medlora.data.passages import Passage
from medlora.grounding.check import check_output
from medlora.grounding.publishable import degenerate, own_medication, publishable, repetition_loop
from medlora.grounding.support import supports
from medlora.safety.rules import apply_safety

ASTHMA = PatientRecord(age=9, conditions=["asthma"], medications=["my blue inhaler"])
JSON_ACTION = (
    "This is a section of a JSON file. The JSON file contains the sections of the JSON file. "
    "The JSON file contains the sections of the JSON file."
)
FAMILY_HISTORY = Medication(name="Family History", dosage="Family History", frequency="Family History")


def reasons(out) -> dict[str, str]:
    return {u.item: u.reason for u in out.removed}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (JSON_ACTION, "JSON"),
        ('Use the "citations" field to list passage numbers.', "JSON"),
        ("As an AI language model I cannot give medical advice.", "prompt"),
        ("Based on the provided passages, rest is advised.", "prompt"),
        ("Use your inhaler use your inhaler use your inhaler use your inhaler", "repetition"),
        ("rest rest rest rest", "repetition"),
        ("Avoid smoke. Avoid smoke.", "same sentence"),
    ],
)
def test_each_kind_of_degenerate_text_is_named(text, why):
    assert why in degenerate(text)


@pytest.mark.parametrize(
    "text",
    [
        "Seek prompt medical attention if breathing gets worse.",
        "Air moves through the nasal passages during breathing.",
        "Inhaled corticosteroids are taken every day, even when you feel well.",
        "Use a quick-relief inhaler such as albuterol when symptoms start; it works within minutes.",
    ],
)
def test_ordinary_advice_is_not_degenerate(text):
    assert degenerate(text) is None


def test_the_two_items_of_issue_22_are_removed_and_reported():
    sections = Sections(
        immediate_actions=[JSON_ACTION], medications=[FAMILY_HISTORY, Medication(name="albuterol")]
    )
    out = publishable(ASTHMA, sections, {}, checked=True)
    assert out.sections.immediate_actions == [] and [m.name for m in out.sections.medications] == [
        "albuterol"
    ]
    why = reasons(out)
    assert "JSON" in why[JSON_ACTION] and "not a drug" in why["Family History"]
    assert out.edited == {"immediate_actions", "medications"}


def test_a_two_word_fragment_is_no_patient_education_and_a_short_lifestyle_line_stays():
    strep = PatientRecord(conditions=["strep throat"])
    sections = Sections(
        patient_education=[
            "Strep throat.",
            "Mononucleosis smoking.",
            "Strep throat is treated with antibiotics.",
        ],
        lifestyle=["Be physically active."],
    )
    out = publishable(
        strep, sections, {"patient_education": [[1], [1], [1]], "lifestyle": [[1]]}, checked=True
    )
    assert out.sections.patient_education == ["Strep throat is treated with antibiotics."]
    assert out.citations["patient_education"] == [[1]]
    assert out.sections.lifestyle == ["Be physically active."]
    assert all("too short" in why for why in reasons(out).values()) and len(out.removed) == 2


def test_dose_fields_that_repeat_the_name_or_hold_no_dose_are_nulled():
    meds = [
        Medication(name="albuterol", dosage="albuterol", frequency="every 4 hours as needed"),
        Medication(name="fluticasone", dosage="as directed", frequency="fluticasone"),
        Medication(name="montelukast", dosage="5 mg", frequency="once daily", side_effects=["headache"]),
    ]
    out = publishable(ASTHMA, Sections(medications=meds), {"medications": [[1], [2], [3]]}, checked=True)
    albuterol, fluticasone, montelukast = out.sections.medications
    assert (albuterol.dosage, albuterol.frequency) == (None, "every 4 hours as needed")
    assert (fluticasone.dosage, fluticasone.frequency) == (None, None)
    assert montelukast == meds[2] and len(out.nulled) == 3
    assert out.citations["medications"] == [[1], [2], [3]]  # citations follow their items


def test_the_patients_own_medication_stays_even_unresolved_and_repeats_go():
    assert own_medication("Continue my blue inhaler", ASTHMA) and not own_medication("red inhaler", ASTHMA)
    sections = Sections(
        medications=[Medication(name="Continue my blue inhaler"), Medication(name="Red Inhaler")],
        lifestyle=["Avoid tobacco smoke.", "avoid tobacco smoke"],
    )
    out = publishable(ASTHMA, sections, {"lifestyle": [[1], [2]]}, checked=True)
    assert [m.name for m in out.sections.medications] == ["Continue my blue inhaler"]
    assert out.sections.lifestyle == ["Avoid tobacco smoke."] and out.citations["lifestyle"] == [[1]]
    assert "repeats an earlier item" in reasons(out)["avoid tobacco smoke"]


def test_without_passages_only_the_safety_rules_urgent_actions_are_published():
    record = PatientRecord(conditions=["asthma"], vitals={"spo2": 85})
    sections = Sections(immediate_actions=["Give two puffs of albuterol now.", "EMERGENCY: model's own line"])
    out = publishable(record, sections, {}, checked=False)
    assert out.sections.immediate_actions == ["EMERGENCY: model's own line"]  # the safety rules decide it
    assert "needs a cited passage" in reasons(out)["Give two puffs of albuterol now."]
    published = apply_safety(record, out.sections).sections.immediate_actions
    assert len(published) == 1 and published[0].startswith(EMERGENCY_HEAD)
    # With passages to check them, the model's actions stay for the grounding check to judge.
    assert (
        publishable(record, sections, {}, checked=True).sections.immediate_actions
        == sections.immediate_actions
    )


def test_without_passages_a_dose_only_the_patients_own_list_states_is_kept_and_side_effects_once():
    record = PatientRecord(
        age=7, sex="female", conditions=["asthma"], medications=["albuterol 2 puffs as needed"]
    )
    meds = [
        Medication(name="Albuterol", dosage="1mg", frequency="as needed",
                   side_effects=["Shortness of Breath", "shortness of breath", "tremor"]),
    ]  # fmt: skip
    out = publishable(record, Sections(medications=meds), {}, checked=False)
    (med,) = out.sections.medications
    assert med.dosage is None, "a dose the model wrote with nothing to vouch for it is not published"
    assert med.frequency == "as needed", "the patient's own list states it"
    assert med.side_effects == ["Shortness of Breath", "tremor"]
    checked = publishable(record, Sections(medications=meds), {"medications": [[1]]}, checked=True)
    assert checked.sections.medications[0].dosage == "1mg", "with passages the grounding check decides"


def test_a_loop_at_the_token_budget_is_told_from_an_ordinary_cut():
    loop = '{"immediate_actions":[{"citations":[],"text":"' + "The JSON file contains the sections. " * 10
    assert repetition_loop(loop)
    items = ",".join(
        f'{{"citations":[{i}],"name":"{n}","dosage":null,"frequency":null,"side_effects":[]}}'
        for i, n in enumerate(["albuterol", "fluticasone", "montelukast", "budesonide", "salmeterol"], 1)
    )  # fmt: skip
    assert not repetition_loop('{"medications":[' + items + ',{"citations":[1],"name":"predn')


# --- the property: whatever the model writes ------------------------------------------------------------------

PASSAGES = [
    Passage(0, "Quick-relief medicines such as albuterol are used during attacks, two puffs every 4 hours.",
            "Asthma", "What are the treatments for Asthma ?", "treatment", "https://ex.org/a/0", "qa-a-0", "test", 30),
    Passage(1, "Avoid tobacco smoke and other triggers. Aspirin should never be given to children.",
            "Asthma", "How to prevent Asthma ?", "prevention", "https://ex.org/a/1", "qa-a-1", "test", 30),
]  # fmt: skip
WORDS = [
    "albuterol", "Family History", "aspirin", "Asthma", "oxycodone", "my blue inhaler", "Ventolin", "two puffs",
    "every 4 hours", "Avoid tobacco smoke and other triggers.", JSON_ACTION, "EMERGENCY: call now",
    "Quick-relief medicines such as albuterol are used during attacks.", "Give albuterol now.", "rest rest rest rest",
    "Call your doctor.", "5 mg", "daily", "prompt", "the provided passages", "NSAIDs", "Seek care.",
]  # fmt: skip
text = st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=60))
cites = st.lists(st.integers(min_value=1, max_value=3), max_size=3)
medication = st.builds(
    lambda n, d, f, s, c: ({"name": n, "dosage": d, "frequency": f, "side_effects": s}, c),
    text, st.none() | text, st.none() | text, st.lists(text, max_size=2), cites,
)  # fmt: skip


@hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
@hypothesis.given(
    actions=st.lists(st.tuples(text, cites), max_size=4),
    meds=st.lists(medication, max_size=4),
    lifestyle=st.lists(st.tuples(text, cites), max_size=3),
    with_passages=st.booleans(),
    red_flag=st.booleans(),
)
def test_every_published_medication_is_a_drug_and_every_urgent_action_a_rule_or_grounded(
    actions, meds, lifestyle, with_passages, red_flag
):
    try:
        sections = Sections(
            immediate_actions=[a for a, _ in actions], medications=[m for m, _ in meds],
            lifestyle=[t for t, _ in lifestyle],
        )  # fmt: skip
    except ValidationError:  # not a valid Sections: the constrained decoder can never produce it
        hypothesis.assume(False)
    citations = {"immediate_actions": [c for _, c in actions], "medications": [c for _, c in meds],
                 "lifestyle": [c for _, c in lifestyle]}  # fmt: skip
    record = PatientRecord(conditions=["asthma"], medications=["my blue inhaler"],
                           vitals={"spo2": 85 if red_flag else 97})  # fmt: skip
    passages = PASSAGES if with_passages else None
    g = check_output(record, sections, citations, passages)
    published = apply_safety(record, g.sections).sections
    for m in published.medications:
        assert resolve(m.name) is not None or own_medication(m.name, record)
    for i, action in enumerate(published.immediate_actions):
        if action.startswith(EMERGENCY_HEAD):
            assert i == 0 and red_flag
            continue
        assert with_passages
        j = g.sections.immediate_actions.index(action)
        cited = [PASSAGES[n - 1].shown for n in g.citations["immediate_actions"][j]]
        assert cited and supports(action, " ".join(cited), "immediate_actions")
    for item in [*published.immediate_actions[1 if red_flag else 0 :], *published.lifestyle]:
        assert degenerate(item) is None
