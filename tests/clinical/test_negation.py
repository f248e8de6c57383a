"""NegEx/ConText-style scope: negated, historical, other people's and hypothetical findings are not affirmed."""

import re

import pytest

from medlora.clinical.negation import affirmed_matches

CHEST = re.compile(r"chest pain|stroke|fever", re.I)


@pytest.mark.parametrize(
    "text",
    [
        "Denies chest pain.",
        "no chest pain or fever",
        "history of stroke five years ago",
        "stroke in 2016",
        "stroke was ruled out",
        "mother had a stroke",
        "family history of stroke",
        "return if chest pain develops",
        "at risk of stroke",
        "negative for fever",
        "without fever",
    ],
)
def test_not_affirmed(text):
    assert affirmed_matches(text, CHEST) == []


@pytest.mark.parametrize(
    "text",
    [
        "chest pain since this morning",
        "denies fever but has chest pain",
        "history of asthma, now with chest pain",
        "3-year-old with fever",
        "no cough. Fever since yesterday",
        "r/o stroke",
        "chest pain not going away",
    ],
)
def test_affirmed(text):
    assert affirmed_matches(text, CHEST)
