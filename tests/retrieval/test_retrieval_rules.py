"""The rules chosen on val: the no-evidence topics, the edit rule, the evidence thresholds and their rates;
and the reworded and no-evidence treatment rows that carry them to evaluation."""

from __future__ import annotations

import random

import pytest
from conftest import FIXTURES

from medlora.clinical.conditions import Lexicon
from medlora.data import medquad
from medlora.data.passages import build_passages
from medlora.datasets import patients
from medlora.datasets import treatment as treatment_data
from medlora.model.loading import byte_level_tokenizer
from medlora.retrieval.index import BM25Index
from medlora.retrieval.rules import (
    RULE_KEYS,
    choose_edit_rule,
    choose_evidence_rule,
    evidence_cases,
    no_evidence_topics,
    rates,
)

SRC = FIXTURES / "medquad_conditions"


@pytest.fixture(scope="module")
def infos():
    return medquad.read_focus_annotations(SRC)


@pytest.fixture(scope="module")
def pairs():
    return medquad.read_source(SRC, medquad.ReadReport())


@pytest.fixture(scope="module")
def index(infos, pairs):
    lex = Lexicon.build(sorted({p.focus for p in pairs}), medquad.synonyms_by_focus(infos),
                        [(p.focus, p.answer) for p in pairs])  # fmt: skip
    return BM25Index.build(build_passages({"train": pairs}, byte_level_tokenizer()), lexicon=lex)


def test_no_evidence_topics_are_answerless_foci_that_nothing_answered_covers(infos, index):
    topics = no_evidence_topics(infos, index)
    every = topics["val"] + topics["test"]
    # "Deep vein thrombosis - discharge" is answerless but its synonym DVT names an answered focus.
    assert sorted(every) == ["Abdominal wall surgery", "Pomegranate"]
    assert not set(topics["val"]) & set(topics["test"])
    assert no_evidence_topics(infos, index) == topics  # a hash, not a random draw


def test_the_edit_rule_is_chosen_on_typos_against_near_misses(index):
    chosen = choose_edit_rule(index.lexicon, ["Granulomatosis with polyangiitis", "Deep vein thrombosis"],
                              ["Abdominal wall surgery", "Pomegranate", "granuloma", "vasculature"], seed=0)  # fmt: skip
    # One of the two seeded typos is three edits away ("throomsis"): found by no rule, rightly.
    assert chosen["positives"] == 2 and chosen["tpr"] == 0.5 and chosen["fpr"] == 0.0
    assert 4 <= chosen["min_one"] < chosen["min_two"]


def test_the_evidence_rule_keeps_fpr_within_its_bound_and_reports_rates_per_length(index):
    pos = [("DVT", "deep vein thrombosis"), ("COPD", "chronic obstructive pulmonary"), ("HIV", "hiv aids"),
           ("Granulomatosis with polyangiitis", "granulomatosis with polyangiitis")]  # fmt: skip
    neg = [("Abdominal wall surgery", None), ("Pomegranate", None), ("otitis media", None)]
    p, n = evidence_cases(index, pos, neg)
    chosen = choose_evidence_rule(p, n)
    assert set(chosen["thresholds"]) == set(RULE_KEYS)
    r = chosen["val_rates"]
    assert r["all"]["tpr"] == 1.0 and r["all"]["fpr"] == 0.0
    # The exact name counts twice: through its focus, and by BM25 alone as if no focus were named after it.
    assert r["1"]["positives"] == 3 and r["3+"]["positives"] == 2
    # Thresholds above every score find nothing: the rates are computed, not assumed.
    assert rates(p, n, dict.fromkeys(RULE_KEYS, 5.0))["all"]["tpr"] == 0.0


def test_a_reworded_condition_is_an_alias_or_a_misspelling_of_the_focus(index):
    kinds = set()
    for seed in range(30):
        text, kind = patients.reworded_condition("Deep vein thrombosis", index.lexicon, random.Random(seed))
        kinds.add(kind)
        assert medquad.focus_key(text) != "deep vein thrombosis"
        assert index.match_focus(text) == "deep vein thrombosis", text
    assert {"synonym", "misspelling", "lay"} <= kinds


def test_treatment_rows_say_their_variant_and_no_evidence_rows_abstain(pairs, index):
    rows = treatment_data.treatment_examples(
        pairs, seed=1, patients_per_focus=3, lexicon=index.lexicon, no_evidence=["Pomegranate"]
    )
    variants = {r["variant"] for r in rows}
    assert variants == {"exact", "reworded", "no_evidence"}
    reworded = [r for r in rows if r["variant"] == "reworded"]
    assert all(r["record"]["conditions"][0] != r["focus"] and r["reworded_kind"] for r in reworded)
    none = [r for r in rows if r["variant"] == "no_evidence"]
    assert [r["focus"] for r in none] == ["Pomegranate"] and none[0]["sources"] == []
    # Without a lexicon (training) every condition stays the exact focus name.
    plain = treatment_data.treatment_examples(pairs, seed=1, patients_per_focus=3)
    assert {r["variant"] for r in plain} == {"exact"}
