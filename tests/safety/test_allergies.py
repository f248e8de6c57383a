"""Allergies as records state them: reaction kinds, free-text statements, negation, combinations, side chains."""

import pytest

from medlora.clinical import drugs
from medlora.safety.allergies import classify, from_list_entry, from_text, match


@pytest.mark.parametrize(
    ("text", "kind"),
    [("anaphylaxis", "severe"), ("throat swelled up", "severe"), ("SJS", "severe_cutaneous"),
     ("TEN", "severe_cutaneous"), ("hives", "allergy"), ("rash", "allergy"), ("N/V", "intolerance"),
     ("myalgias", "intolerance"), ("dry cough", "intolerance"), ("GI upset", "intolerance"), ("", "unknown"),
     ("ten days of rash", "allergy")],
)  # fmt: skip
def test_reaction_kinds(text, kind):
    assert classify(text)[0] == kind


def test_opioid_itching_is_an_intolerance():
    assert classify("itching", drugs.resolve("morphine"))[0] == "intolerance"
    assert classify("itching", drugs.resolve("amoxicillin"))[0] == "allergy"


@pytest.mark.parametrize(
    ("text", "allergen"),
    [("throat swelled up after Bactrim", "trimethoprim"), ("Allergic to PCN (hives), sulfa", "sulfamethoxazole"),
     ("codeine makes her vomit", "codeine"), ("can't tolerate metformin", "metformin"),
     ("rash since starting lamotrigine", "lamotrigine")],
)  # fmt: skip
def test_free_text_states_allergies(text, allergen):
    found = from_text(text)
    assert any(allergen in a.drug.ingredients or allergen in str(a.drug.classes) for a in found) or any(
        "sulfonamide_antibiotics" in a.drug.classes for a in found
    )


@pytest.mark.parametrize(
    "text",
    ["no reaction to amoxicillin", "tolerated cephalexin well", "not allergic to sulfa", "NKDA",
     "mother allergic to penicillin", "takes metformin, has a cough", "ondansetron for nausea",
     "if allergic to penicillin use azithromycin"],
)  # fmt: skip
def test_statements_that_are_not_allergies(text):
    assert from_text(text) == []


def test_combination_reaction_goes_to_the_named_or_known_ingredient():
    named = from_list_entry("Tylenol #3 (codeine) - N/V")
    assert {a.drug.ingredients for a in named if not a.caution_only} == {("codeine",)}
    known = from_list_entry("Augmentin - hives")
    assert {a.drug.ingredients for a in known if not a.caution_only} == {("amoxicillin",)}
    unknown = from_list_entry("Percocet - hives")
    assert [a.whole_product for a in unknown].count(True) == 1 and sum(a.caution_only for a in unknown) == 2


def test_severe_reaction_removes_same_side_chain_only():
    [amox] = from_list_entry("amoxicillin - anaphylaxis")
    assert match(drugs.resolve("cefprozil"), amox).action == "removed"
    assert match(drugs.resolve("cefprozil"), amox).rule == "side_chain"
    assert match(drugs.resolve("ceftriaxone"), amox).action == "caution"
    [rash] = from_list_entry("amoxicillin - rash")
    assert match(drugs.resolve("cefprozil"), rash).action == "caution"


def test_intolerance_is_never_a_removal():
    [statin] = from_list_entry("statin - myalgia")
    assert match(drugs.resolve("atorvastatin"), statin).action == "caution"
    assert match(drugs.resolve("metformin"), statin) is None


def test_the_reaction_is_reported_as_written_once():
    [culprit, other] = from_text("Throat swelled up after Bactrim in 2019.")
    assert (culprit.reaction, culprit.kind, culprit.drug.ingredients) == (
        "Throat swelled",
        "severe",
        ("sulfamethoxazole",),
    )
    assert other.caution_only and other.drug.ingredients == ("trimethoprim",)
    assert [a.reaction for a in from_list_entry("PCN - hives, lip swelling, SOB")] == [
        "hives, lip swelling, SOB"
    ]


def test_a_listed_allergy_takes_the_reaction_the_notes_state_but_is_never_lowered():
    """Issue 30: the strep example's "Had hives after penicillin" was published as "not stated (unknown)"."""
    from medlora.common.schemas import PatientRecord
    from medlora.safety.allergies import record_allergies

    note = "Rapid strep test positive. Had hives after penicillin as a child; asks whether amoxicillin would be fine."
    found = record_allergies(PatientRecord(conditions=["strep throat"], allergies=["penicillin"], notes=note))
    assert [(a.kind, a.reaction) for a in found] == [("allergy", "hives")]
    # A stated intolerance does not turn the listed allergy into a caution: both stay, the removal wins.
    milder = record_allergies(
        PatientRecord(conditions=["x"], allergies=["penicillin"], notes="Nausea after penicillin.")
    )
    assert sorted((a.kind, a.reaction) for a in milder) == [("intolerance", "Nausea"), ("unknown", None)]
    # Another drug's reaction is not borrowed.
    other = record_allergies(
        PatientRecord(conditions=["x"], allergies=["penicillin"], notes="Hives after sulfa.")
    )
    assert ("unknown", None) in [(a.kind, a.reaction) for a in other if "penicillin" in a.drug.ingredients]
