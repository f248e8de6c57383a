"""One sentence splitter for records, one for prose: dotted abbreviations never end a sentence."""

import pytest

from medlora.common.schemas import Medication, PatientRecord, Sections
from medlora.common.text import normalised, plain_words, record_sentences, split_sentences
from medlora.safety.rules import apply_safety


def cut(text: str) -> list[str]:
    return [text[a:b].strip() for a, b in record_sentences(text)]


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("Amoxicillin p.o. caused hives", ["Amoxicillin p.o. caused hives"]),
        ("Denies fever, chills, n.v.d. or chest pain.", ["Denies fever, chills, n.v.d. or chest pain"]),
        ("Keflex 500 mg q.i.d.; rash on day 3", ["Keflex 500 mg q.i.d.", "rash on day 3"]),
        (
            "lisinopril q.d. and metformin b.i.d. with meals",
            ["lisinopril q.d. and metformin b.i.d. with meals"],
        ),
        ("Given APAP p.o. Denies CP.", ["Given APAP p.o", "Denies CP"]),
        ("Seen by Dr. Lee. Chest pain now.", ["Seen by Dr. Lee", "Chest pain now"]),
        ("T 38.5. no cough", ["T 38.5", "no cough"]),
        ("Tylenol No. 3 - vomiting", ["Tylenol No. 3 - vomiting"]),
        (
            "NSAIDs, e.g. ibuprofen, i.e. Advil; U.S. resident",
            ["NSAIDs, e.g. ibuprofen, i.e. Advil", "U.S. resident"],
        ),
        ("lisinopril vs. losartan", ["lisinopril vs. losartan"]),
        ("no fever, amoxicillin 500 mg. cough worse", ["no fever, amoxicillin 500 mg", "cough worse"]),
        ("fever.Chest pain", ["fever", "Chest pain"]),
        ("took 2 tabs. Denies SOB\n• rash", ["took 2 tabs", "Denies SOB", "rash"]),
    ],
)
def test_record_sentences(text, parts):
    assert cut(text) == parts


def test_prose_sentences_keep_abbreviations_and_titles():
    text = "Take it b.i.d. with food. Dr. Lee agrees, e.g. in adults. Stop if rash! (Rare.) Done"
    assert split_sentences(text) == [
        "Take it b.i.d. with food.", "Dr. Lee agrees, e.g. in adults.", "Stop if rash!", "(Rare.) Done"
    ]  # fmt: skip


def test_words_and_normalised_text():
    assert plain_words("Chest-Pain x3, SpO2 88%") == ["chest", "pain", "x3", "spo2", "88"]
    assert normalised("  Chest  Pain! ") == "chest pain"


def _check(notes: str, drug: str = "amoxicillin"):
    return apply_safety(
        PatientRecord(age=40, symptoms=["cough"], notes=notes), Sections(medications=[Medication(name=drug)])
    )


@pytest.mark.parametrize(
    "notes",
    [
        "Amoxicillin p.o. caused hives",
        "Amoxicillin 500 mg p.o. t.i.d. x 10 d caused hives",
        "hives after amox p.o.",
    ],
)
def test_an_allergy_behind_a_dotted_abbreviation_is_found(notes):
    assert [c.medication for c in _check(notes).safety.allergy_conflicts] == ["amoxicillin"]


@pytest.mark.parametrize(
    "notes",
    [
        "Denies fever, chills, n.v.d. or chest pain.",
        "CP resolved 2 years ago",
        "hx of anaphylaxis to bee sting, none now",
        "Pt seen by Dr. Patel re: CP 2 yrs ago, resolved; no CP since.",
    ],
)
def test_negated_and_past_findings_behind_abbreviations_stay_quiet(notes):
    assert _check(notes).safety.red_flags == []


def test_an_abbreviation_does_not_swallow_a_new_sentence():
    assert [
        f.code
        for f in _check("Zofran p.o. given. Chest pain since 1 h, radiating to L arm.").safety.red_flags
    ] == ["chest_pain"]
