"""Spelling: the edit distance (rapidfuzz's optimal string alignment), a fuzzy index of names, the edit rule
chosen on val, and typing slips for tests.

A misspelled condition ("antiphosoholipid", "alzhiemers") is matched to a known name within a few edits
(``FuzzyIndex`` under ``EditRule``); ``misspell`` makes such slips, seeded, for the reworded val/test patients.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

GENERIC = ("disease", "diseases", "disorder", "disorders", "syndrome", "syndromes")


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Optimal-string-alignment distance (insertions, deletions, substitutions, and a transposition of neighbours
    as one edit; no substring edited twice), the one distance of conditions, the vocabulary and drug names;
    ``limit + 1`` once it exceeds ``limit``. rapidfuzz's C++ OSA gives the same distances as the project's former
    pure-Python dynamic programme, a few hundred times faster (``bench/fuzzy_speed.py``)."""
    from rapidfuzz.distance import OSA

    return OSA.distance(a, b, score_cutoff=limit)


class FuzzyIndex:
    """Strings found within a few edits of a query: trigram overlap picks candidates, the edit distance decides."""

    def __init__(self, strings: Iterable[str]):
        self.strings = sorted(set(strings))
        self._known = frozenset(self.strings)
        self._grams: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.strings):
            for g in set(self._trigrams(s)):
                self._grams[g].append(i)

    @staticmethod
    def _trigrams(s: str) -> list[str]:
        s = f"  {s} "
        return [s[i : i + 3] for i in range(len(s) - 2)]

    def lookup(self, query: str, max_edits: int) -> list[tuple[int, str]]:
        """``(distance, string)`` for strings within ``max_edits`` of ``query``, nearest first; exact included."""
        if max_edits <= 0:
            return [(0, query)] if query in self._known else []
        # Sorted, not a set's order: the 200 candidates below are the first among equal counts in this order, and a
        # set's order changed with the hash seed (so did one rate the data step reports).
        grams = sorted(set(self._trigrams(query)))
        counts: Counter = Counter()
        for g in grams:
            counts.update(self._grams.get(g, ()))
        # Each edit destroys at most three trigrams (a transposition four): a string sharing fewer is out of reach.
        need = len(grams) - 4 * max_edits
        # Most shared first, ties in the order above (sorted() is stable): what Counter.most_common gave.
        reach = sorted(((i, n) for i, n in counts.items() if n >= need), key=lambda x: -x[1])
        out = []
        for i, _ in reach[:200]:
            s = self.strings[i]
            d = edit_distance(query, s, max_edits)
            if d <= max_edits:
                out.append((d, s))
        return sorted(out)


@dataclass(frozen=True)
class EditRule:
    """How many edits a name of a given length may differ by and still match: none below ``min_one`` letters
    (short names and abbreviations differ from other real names by one letter: "gout"/"gut", "MS"/"MD"), one
    below ``min_two``, two from there on. Chosen on val (``medlora.retrieval.rules.choose_edit_rule``)."""

    min_one: int = 6
    min_two: int = 11

    def max_edits(self, text: str) -> int:
        n = len(text.replace(" ", ""))
        return 0 if n < self.min_one else 1 if n < self.min_two else 2


_KEYS_NEAR = "qwertyuiop asdfghjkl zxcvbnm"


def misspell(text: str, rng: random.Random, edits: int = 1) -> str:
    """``text`` with ``edits`` typing slips in its longest word (a letter dropped, doubled, swapped with its
    neighbour, or replaced by a key beside it), as people misspell; the text itself when no word is long enough."""
    words = text.split(" ")
    # The hard word of the name, not "disease" or "syndrome", is the one people get wrong.
    i = max(range(len(words)), key=lambda j: (words[j].lower() not in GENERIC, len(words[j]), -j))
    w = words[i]
    if len(w) < 5:
        return text
    rows = _KEYS_NEAR.split()
    for _ in range(edits):
        pos = rng.randrange(1, len(w) - 1)  # the first letter is rarely the one people get wrong
        op = rng.choice(("drop", "double", "swap", "near"))
        c = w[pos].lower()
        if op == "drop":
            w = w[:pos] + w[pos + 1 :]
        elif op == "double":
            w = w[:pos] + w[pos] + w[pos:]
        elif op == "swap" and w[pos] != w[pos + 1 : pos + 2]:
            w = w[:pos] + w[pos + 1 : pos + 2] + w[pos] + w[pos + 2 :]
        else:
            row = next((r for r in rows if c in r), None)
            if row is None:
                w = w[:pos] + w[pos + 1 :]
                continue
            j = row.index(c)
            w = (
                w[:pos]
                + row[j - 1 if j > 0 and rng.random() < 0.5 or j == len(row) - 1 else j + 1]
                + w[pos + 1 :]
            )
    words[i] = w
    return " ".join(words)
