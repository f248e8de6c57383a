"""What the passages concern: the primary condition and the presenting complaint, not the comorbidities."""

from __future__ import annotations

import pytest
from conftest import MEDQUAD_FIXTURE

from medlora.common.schemas import PatientRecord
from medlora.data import medquad
from medlora.data.passages import build_passages
from medlora.model.loading import byte_level_tokenizer
from medlora.retrieval.index import BM25Index, retrieve_for_record
from medlora.retrieval.subject import concerns


@pytest.fixture(scope="module")
def index():
    pairs = medquad.deduplicate(medquad.read_source(MEDQUAD_FIXTURE, medquad.ReadReport()))[0]
    passages = build_passages({"train": pairs, "val": [], "test": []}, byte_level_tokenizer(), max_tokens=128)
    return BM25Index.build(passages, data_hash="h1")


def test_passages_of_the_primary_condition_concern_it_and_a_comorbiditys_do_not(index):
    record = PatientRecord(conditions=["gout", "asthma"])
    hits = retrieve_for_record(record, index, k=4)
    foci = [medquad.focus_key(h.passage.focus) for h in hits]
    assert "gout" in foci and "asthma" in foci  # retrieval brings both, round-robin
    judged = concerns(index, record, [h.passage for h in hits])
    assert judged == [f == "gout" for f in foci]


def test_the_primary_condition_is_the_first_condition_else_the_first_symptom(index):
    gout = [p for p in index.passages if medquad.focus_key(p.focus) == "gout"][:1]
    asthma = [p for p in index.passages if medquad.focus_key(p.focus) == "asthma"][:1]
    assert PatientRecord(conditions=["asthma", "gout"]).primary == "asthma"
    assert PatientRecord(symptoms=["wheezing"]).primary == "wheezing"
    assert concerns(index, PatientRecord(conditions=["asthma", "gout"]), gout + asthma) == [False, True]


def test_nothing_is_judged_without_an_index(index):
    assert concerns(None, PatientRecord(conditions=["gout"]), index.passages[:2]) is None
    assert concerns(index, PatientRecord(conditions=["gout"]), []) is None


def test_an_unrecognised_condition_stands_for_what_the_notes_name_but_not_a_relatives_condition(index):
    anemia = [p for p in index.passages if medquad.focus_key(p.focus) == "iron deficiency anemia"][:2]
    gout = [p for p in index.passages if medquad.focus_key(p.focus) == "gout"][:1]
    assert anemia and gout
    plain = PatientRecord(conditions=["qzxv blorft"])
    assert concerns(index, plain, anemia + gout) == [False, False, False]
    known = PatientRecord(conditions=["qzxv blorft"], notes="Known iron deficiency anemia, on tablets.")
    assert concerns(index, known, anemia + gout) == [True, True, False]
    relative = PatientRecord(conditions=["qzxv blorft"], notes="Family history of iron deficiency anemia.")
    assert concerns(index, relative, anemia + gout) == [False, False, False]
    assert not retrieve_for_record(relative, index) or all(
        medquad.focus_key(h.passage.focus) != "iron deficiency anemia"
        for h in retrieve_for_record(relative, index)
    )
