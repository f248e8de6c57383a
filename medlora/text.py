"""Text helpers shared by the whole package: one sentence splitter for clinical records, one for prose, and
the ``[a-z0-9]+`` word tokens.

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

``prose_sentences`` splits written prose (passages, answers) at ``. ! ?`` followed by space and a capital or
an opening parenthesis, with the same abbreviation guard. The training-data splitter
(``treatment_data.split_sentences``) is kept where it is: its cuts define the stored targets.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")

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


_PROSE_BREAK = re.compile(r"[.!?](?=\s+[A-Z(])")


def prose_sentences(text: str) -> list[str]:
    """The sentences of written prose, stripped; a dotted abbreviation or a title never ends one."""
    dotted = _abbreviation_spans(text) if "." in text else []
    out, start = [], 0
    for m in _PROSE_BREAK.finditer(text):
        if m.group() == "." and not _dot_ends_sentence(text, m.start(), dotted):
            continue
        out.append(text[start : m.end()])
        start = m.end()
    out.append(text[start:])
    return [s for part in out if (s := part.strip())]


def words(text: str) -> list[str]:
    """Lower-case ``[a-z0-9]+`` word tokens (metrics, the multiple-choice shortcut, retrieval)."""
    return _WORD.findall(text.lower())


def word_set(text: str) -> set[str]:
    return set(words(text))


def normalise(text: str) -> str:
    """Lower case, one space between word tokens: "Chest  Pain!" -> "chest pain"."""
    return " ".join(words(text))
