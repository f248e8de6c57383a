"""The project's text helpers, written once: word tokens, normalised text, one sentence splitter for clinical
records (``record_sentences``) and one for prose (``split_sentences``).

Every module that cuts text into words or sentences uses these, so a fix here reaches retrieval, the grounding
check, the training targets, the safety rules and the metrics alike.

Clinical records are written in shorthand whose dots are not sentence ends: "Amoxicillin p.o. caused hives",
"Denies fever, chills, n.v.d. or chest pain.", "seen by Dr. Lee", "lisinopril vs. losartan", "Tylenol No. 3".
Cutting there loses an allergy (the drug and its reaction land in different sentences) or lets a negation
stop short (the finding after the abbreviation reads as affirmed). ``record_sentences`` cuts at ``. ! ? ;``,
a newline or a bullet, except:

- inside a number ("38.5") or between letters with no space ("h/o", "fever.Chest" is still cut: the word
  before the dot is a word, not a letter);
- inside a dotted abbreviation (two or more single letters each followed by a dot: p.o., b.i.d., t.i.d.,
  q.i.d., q.d., n.v.d., e.g., i.e., U.S.); its last dot ends a sentence only when a capital letter follows
  and the abbreviation is not one that never ends one (e.g., i.e., U.S.);
- after a title (Dr., Mr., Mrs., Ms., Prof., St.), "vs.", "approx.", "cf." and "No." before a number;
  "etc." and unit abbreviations ("wk.", "yrs.", "mo.", "tab.") end a sentence only before a capital letter.

``split_sentences`` cuts prose (MedQuAD answers, passages, model output) at ``. ! ?`` before a capital or an
opening bracket, and at " - " list items, with the same guard: a dotted abbreviation or a title never ends one.
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
    """Every sentence and list item of prose, unfiltered; a dotted abbreviation or a title ends none."""
    dotted = _abbreviation_spans(text) if "." in text else []
    parts, start = [], 0
    for m in _SENT.finditer(text):
        dot = m.start() - 1
        if (
            "-" not in m.group()
            and dot >= 0
            and text[dot] == "."
            and not _dot_ends_sentence(text, dot, dotted)
        ):
            continue
        parts.append(text[start : m.start()])
        start = m.end()
    parts.append(text[start:])
    return [s for part in parts if (s := part.strip(" -"))]


# Abbreviations that never end a sentence (the next word belongs to them).
_NEVER_END = frozenset(
    {"dr", "mr", "mrs", "ms", "prof", "st", "vs", "v", "approx", "cf", "viz", "eg", "ie", "us"}
)
# Abbreviations that end a sentence only when a capital letter follows ("Tylenol 2 tabs. Denies ...").
# Units and dosing shorthand are left out on purpose: "no fever, amoxicillin 500 mg. cough worse" must be cut,
# or the negation of the first sentence would reach the cough.
_MAYBE_END = frozenset(
    {"etc", "tab", "tabs", "cap", "caps", "inc", "ext", "sol", "susp", "inj", "oint", "gtt", "gtts"}
)
_RECORD_BREAK = re.compile(r"[.!?;\n•]")
_DOTTED = re.compile(r"(?<![A-Za-z.])(?:[A-Za-z]\.){2,}", re.I)
_TOKEN_BEFORE = re.compile(r"([A-Za-z]+)$")


def _abbreviation_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, letters) of every dotted abbreviation ("p.o.", "n.v.d."), end after its last dot."""
    return [(m.start(), m.end(), m.group().replace(".", "").lower()) for m in _DOTTED.finditer(text)]


def _next_char(text: str, i: int) -> str:
    """The first non-space character at or after ``i`` ("" at the end)."""
    j = i
    while j < len(text) and text[j] in " \t\"'“”)":
        j += 1
    return text[j] if j < len(text) else ""


def _dot_ends_sentence(text: str, i: int, dotted: list[tuple[int, int, str]]) -> bool:
    """Whether the dot at ``text[i]`` ends a sentence."""
    before = text[i - 1] if i else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if before.isdigit() and after.isdigit():
        return False  # 38.5
    for a, b, letters in dotted:
        if a <= i < b:
            if i < b - 1:
                return False  # a dot inside p.o.
            return letters not in _NEVER_END and _next_char(text, i + 1).isupper()
    word = _TOKEN_BEFORE.search(text[max(0, i - 12) : i])
    token = word.group(1).lower() if word else ""
    if after.isalpha() and len(token) <= 1:
        return False  # "h.o", a letter and a dot and a letter: not a sentence end
    nxt = _next_char(text, i + 1)
    if token in _NEVER_END:
        return False
    if token == "no" and nxt.isdigit():
        return False  # "Tylenol No. 3"
    if token in _MAYBE_END:
        return nxt.isupper() or nxt == ""
    return True


def record_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of a clinical record's text (empty spans dropped), in order."""
    dotted = _abbreviation_spans(text) if "." in text else []
    spans, start = [], 0
    for m in _RECORD_BREAK.finditer(text):
        if m.group() == "." and not _dot_ends_sentence(text, m.start(), dotted):
            continue
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if b > a]
