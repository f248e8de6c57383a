"""The project's text helpers, written once: word tokens, normalised text and the sentence splitter for prose.

Every module that cuts text into words or sentences uses these, so a fix here reaches retrieval, the grounding
check, the training targets and the metrics alike.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9]+")
# Numbers (with a decimal part) and letters: "100mg" and "100 mg" both give ["100", "mg"].
TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]+")

# A short English stop list: BM25 weighs common words down anyway, this only keeps queries and indexes small.
_STOP_WORDS = (
    "a an and are as at be by can do does for from has have how i in is it its may of on or that the their "
    "there these they this to was what when which who will with you your"
)
STOP = frozenset(_STOP_WORDS.split())

# Prose (MedQuAD answers): a sentence ends at . ! ? before a capital or a bracket; " - " starts a list item.
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])|\s+-\s+")


def plain_words(text: str) -> list[str]:
    """Lower-case ``[a-z0-9]+`` runs, nothing dropped."""
    return WORD.findall(text.lower())


def words(text: str) -> list[str]:
    """Lower-case word tokens without stop words; a plural ``s`` is dropped so "treatments" finds "treatment"."""
    out = []
    for w in WORD.findall(text.lower()):
        if w in STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        out.append(w)
    return out


def tokens(text: str) -> list[str]:
    """Numbers and words, lower case: "100mg" and "100 mg" are both ["100", "mg"]."""
    return TOKEN.findall(text.lower())


def normalised(text: str) -> str:
    """``tokens`` joined by single spaces: case, punctuation and spacing no longer matter."""
    return " ".join(tokens(text))


def split_sentences(text: str) -> list[str]:
    """Every sentence and list item of prose, unfiltered."""
    return [s for part in _SENT.split(text) if (s := part.strip(" -"))]
