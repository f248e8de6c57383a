"""Condition normalisation: synonyms, abbreviations the answers define, lay names, misspellings within the edit
rule, near misses that must not match, and the "no shared-word capture" rule of focus matching."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from medlora.clinical.conditions import Lexicon, defined_abbreviations
from medlora.clinical.spelling import EditRule
from medlora.data import medquad

CONDITIONS = FIXTURES / "medquad_conditions"


@pytest.fixture(scope="module")
def infos():
    return medquad.read_focus_annotations(CONDITIONS)


@pytest.fixture(scope="module")
def pairs():
    return medquad.read_source(CONDITIONS, medquad.ReadReport())


@pytest.fixture(scope="module")
def lexicon(infos, pairs):
    foci = sorted({p.focus for p in pairs})
    return Lexicon.build(foci, medquad.synonyms_by_focus(infos), [(p.focus, p.answer) for p in pairs])


def test_synonyms_and_answered_flags_are_read_from_the_xml(infos):
    by = {i.focus: i for i in infos}
    assert by["Deep vein thrombosis"].synonyms == ("DVT", "Blood clot in a deep vein")
    assert by["Deep vein thrombosis"].answered and not by["Abdominal wall surgery"].answered
    assert medquad.read_focus_annotations(FIXTURES / "medquad_conditions" / "0000001.xml") == []


def test_abbreviations_are_read_where_the_answer_defines_them():
    text = "Chronic obstructive pulmonary disease (COPD) is a lung disease. Levodopa (Sinemet) helps."
    assert defined_abbreviations(text) == [("COPD", "Chronic obstructive pulmonary disease")]


@pytest.mark.parametrize(
    "written, focus, how",
    [
        ("DVT", "deep vein thrombosis", "synonym"),
        ("dvt", "deep vein thrombosis", "synonym"),
        ("COPD", "chronic obstructive pulmonary", "abbreviation"),
        ("Wegener's granulomatosis", "granulomatosis with polyangiitis", "synonym"),
        ("wegeners granulomatosis", "granulomatosis with polyangiitis", "synonym"),
        ("granulomatosis with polyangitis", "granulomatosis with polyangiitis", "misspelling"),
        ("deep vien thrombossis", "deep vein thrombosis", "misspelling"),  # two slips in a long name
        ("acute deep vein thrombosis", "deep vein thrombosis", "focus"),
        ("blood clot in the leg", "deep vein thrombosis", "lay"),
    ],
)
def test_names_people_write_find_their_focus(lexicon, written, focus, how):
    m = lexicon.lookup(written)
    assert m.foci == (focus,) and m.how == how


@pytest.mark.parametrize(
    "written",
    [
        "giant cell vasculitis",  # shares "vasculitis": a different disease
        "white cells uprate",  # shares "cell" with I-cell disease
        "deep vein",  # part of a name
        "HIV neuropathy",  # shares "HIV"
        "vasculitus syndrome of the gut",
        "gpa score",
    ],
)
def test_a_shared_word_is_no_match(lexicon, written):
    assert lexicon.lookup(written).foci == ()


def test_near_misses_do_not_match_within_the_edit_rule():
    lex = Lexicon.build(["Gout", "Type 2 Diabetes", "Measles", "Mumps"], rule=EditRule(6, 11))
    for near in ("gut", "goat", "type 1 diabetes", "mumps 2", "measels xyz"):
        assert lex.lookup(near).foci == (), near
    assert lex.lookup("type 2 diabetis").foci == ("type 2 diabetes",)
    # Short names match only exactly: a one-letter slip of a four-letter name is often another word.
    assert lex.lookup("gowt").foci == ()


def test_ties_between_foci_sharing_a_name_are_kept_for_the_evidence_to_break(lexicon):
    lex = Lexicon.build(["Giant cell arteritis", "Temporal arteritis"], {"Temporal arteritis": ["GCA"]})
    lex.add("GCA", "Giant cell arteritis", "abbreviation")
    assert lex.lookup("GCA").foci == ("giant cell arteritis", "temporal arteritis")


def test_a_drug_written_as_a_condition_becomes_its_generic_names(lexicon):
    m = lexicon.lookup("Coumadin")
    assert m.how == "drug" and "warfarin" in m.names and m.foci == ()


def test_the_lexicon_survives_a_json_round_trip(lexicon):
    again = Lexicon.from_json(lexicon.to_json())
    assert again.lookup("DVT").foci == lexicon.lookup("DVT").foci and again.rule == lexicon.rule


def test_a_name_goes_to_the_focus_it_is_the_name_of_before_foci_that_list_it_as_a_synonym():
    lex = Lexicon.build(["Infantile Refsum disease", "Refsum disease, infantile form"],
                        {"Refsum disease, infantile form": ["Infantile Refsum disease"]})  # fmt: skip
    assert lex.lookup("Infantile Refsum Disease").foci == ("infantile refsum",)
    assert lex.lookup("Infantile Refsum Diseese").foci == ("infantile refsum",)


@pytest.mark.parametrize("near, known", [("cellulite", "Cellulitis"), ("asbestos", "Asbestosis"),
                                         ("lymphedema", "Lymphoma")])  # fmt: skip
def test_a_different_medical_ending_is_a_different_condition_not_a_misspelling(near, known):
    lex = Lexicon.build([known], rule=EditRule(4, 6))
    assert lex.lookup(near).foci == ()
    assert lex.lookup(known[:-1] + known[-1] * 2).foci != ()  # a doubled last letter still matches


def test_the_organism_class_qualifies_a_condition_without_naming_another_topic():
    """Clinicians write the organism ("streptococcal pharyngitis"); the topic that answers it is the site's
    (MedQuAD's "Sore Throat", whose synonym is pharyngitis). A name holding the word still matches as a whole."""
    lex = Lexicon.build(
        ["Sore Throat", "Gastroenteritis", "Hepatitis", "Viral Hepatitis"],
        {"Sore Throat": ["pharyngitis"]},
        [],
    )
    assert lex.lookup("streptococcal pharyngitis").foci == ("sore throat",)
    assert lex.lookup("Viral gastroenteritis").foci == ("gastroenteritis",)
    assert lex.lookup("viral hepatitis").foci == ("viral hepatitis",)
    assert lex.lookup("bacterial").foci == ()
