"""Condition normalisation: what a record's condition, written as people write it, names among MedQuAD's foci.

A written condition ("DVT", "wegeners granulomatosis", "high blood pressure", "acute gout flare") is normalised
(``normal``: ``focus_key`` plus modifiers such as "acute" or "history of" dropped) and looked up among the names
of the answered foci: the focus names, MedQuAD's own ``<Synonyms>``, abbreviations that the answers define
("chronic obstructive pulmonary disease (COPD)"), and a short table of lay names. A name that is not found is
matched to a known name within a small edit distance (``EditRule``, chosen on val). A drug name (brand, generic,
class, through ``medlora.clinical.drugs``) is turned into its generic names, which then go to BM25 like any other text.

Only whole names match: a condition that shares a word with a focus ("white cells" and "I-cell disease") is no
match here; BM25 and the evidence rule (``medlora.retrieval.index``) decide whether any passage is about it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..data.medquad import focus_key
from .spelling import GENERIC, EditRule, FuzzyIndex, edit_distance

# Words that qualify a condition without changing which topic answers it ("chronic" is kept where it is part of
# a name: it is dropped only when what is left is a known name, see ``Lexicon.lookup``).
_MODIFIERS = frozenset(
    [
        "acute",
        "chronic",
        "severe",
        "mild",
        "moderate",
        "recurrent",
        "recurring",
        "intermittent",
        "suspected",
        "possible",
        "probable",
        "known",
        "history",
        "hx",
        "of",
        "h",
        "o",
        "new",
        "onset",
        "newly",
        "diagnosed",
        "flare",
        "flares",
        "flareup",
        "flare",
        "up",
        "exacerbation",
        "episode",
        "episodes",
        "attack",
        "my",
        "mild",
        "bilateral",
        "left",
        "right",
        "early",
        "late",
        "stage",
        "advanced",
        "uncontrolled",
        "controlled",
        "poorly",
        "well",
        "persistent",
        "ongoing",
        "long",
        "standing",
        "longstanding",
        # The organism class: "streptococcal pharyngitis" is answered by the sore-throat topic, "viral
        # gastroenteritis" by gastroenteritis (a name that holds the word, "viral hepatitis", matches first).
        "viral",
        "bacterial",
        "fungal",
        "streptococcal",
        "staphylococcal",
        "pneumococcal",
    ]
)

# Lay names of common conditions -> a name MedQuAD uses. Only used where the MedQuAD name is a known focus name
# or synonym; MedlinePlus foci already carry many lay names ("Heart Attack"), these are the ones they miss.
LAY_NAMES = {
    "high blood pressure": "hypertension",
    "hbp": "hypertension",
    "low blood pressure": "hypotension",
    "high cholesterol": "cholesterol",
    "sugar": "diabetes",
    "sugar diabetes": "diabetes",
    "water on the brain": "hydrocephalus",
    "pink eye": "conjunctivitis",
    "lazy eye": "amblyopia",
    "cross eyed": "strabismus",
    "shingles": "shingles",
    "mono": "infectious mononucleosis",
    "kissing disease": "infectious mononucleosis",
    "whooping cough": "pertussis",
    "german measles": "rubella",
    "lockjaw": "tetanus",
    "heartburn": "gastroesophageal reflux",
    "acid reflux": "gastroesophageal reflux",
    "reflux": "gastroesophageal reflux",
    "enlarged prostate": "benign prostatic hyperplasia",
    "thinning bones": "osteoporosis",
    "brittle bones": "osteogenesis imperfecta",
    "brittle bone": "osteogenesis imperfecta",
    "bladder infection": "urinary tract infections",
    "kidney stone": "kidney stones",
    "mini stroke": "transient ischemic attack",
    "ministroke": "transient ischemic attack",
    "blood clot in the leg": "deep vein thrombosis",
    "blood clot": "blood clots",
    "lou gehrig": "amyotrophic lateral sclerosis",
    "lou gehrigs": "amyotrophic lateral sclerosis",
    "manic depression": "bipolar",
    "underactive thyroid": "hypothyroidism",
    "overactive thyroid": "hyperthyroidism",
    "athletes foot": "athlete foot",
    "cold sores": "cold sores",
    "hay fever": "hay fever",
    "ringing in the ears": "tinnitus",
    "sleep apnoea": "sleep apnea",
    "anaemia": "anemia",
    "oesophageal cancer": "esophageal cancer",
    "leukaemia": "leukemia",
    "diarrhoea": "diarrhea",
    "haemophilia": "hemophilia",
}

_ENGLISH_WORDS = frozenset(
    [
        "a",
        "am",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "for",
        "go",
        "he",
        "her",
        "him",
        "his",
        "if",
        "in",
        "is",
        "it",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "the",
        "to",
        "up",
        "us",
        "was",
        "we",
        "who",
        "you",
        "all",
        "any",
        "may",
        "one",
        "two",
    ]
)
_DIGITS = re.compile(r"\d+")
_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _singular(w: str) -> str:
    return w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith(("ss", "us", "is")) else w


def _generic(w: str) -> bool:
    if len(w) < 6 or w[0] not in "ds" or w.startswith(GENERIC):  # "diseased" is a word of its own
        return w in GENERIC
    return any(edit_distance(w, g, 2) <= 2 for g in GENERIC if abs(len(g) - len(w)) <= 2)


def normal(text: str) -> str:
    """``focus_key`` (case, accents, possessives, and the words "disease", "disorder", "syndrome" dropped), with
    those words dropped even when misspelled ("Wilson Dusesae" -> "wilson")."""
    ws = [w for w in _WORDS.findall(text.lower()) if not _generic(w)]
    return focus_key(" ".join(ws)) if ws else focus_key(text)


def strip_modifiers(key: str) -> str:
    words = [w for w in key.split() if w not in _MODIFIERS]
    return " ".join(words)


# ------------------------------------------------------------------------------------------- abbreviations

_ABBR_DEF = re.compile(r"([A-Za-z][\w'\- ,]{2,120}?)\s*\(\s*([A-Z][A-Za-z0-9\-]{1,9})\s*\)")
# Its parenthesis alone: a text without one cannot match, and the lazy run above is slow to fail (two thirds of
# the answers hold none; the lexicon build spent 43 s in that regex).
_ABBR_PAREN = re.compile(r"\(\s*[A-Z][A-Za-z0-9\-]{1,9}\s*\)")


def _long_form(words_before: list[str], abbr: str) -> str | None:
    """Schwartz and Hearst (2003): the shortest run of words ending before the parenthesis whose letters, read
    from the end, hold the abbreviation's letters in order, the first one starting a word."""
    letters = [c.lower() for c in abbr if c.isalnum()]
    if len(letters) < 2 or not any(c.isalpha() for c in letters):
        return None
    text = " ".join(words_before[-(len(letters) + 5) :])
    s, li = len(text) - 1, len(letters) - 1
    while li >= 0:
        c = letters[li]
        while s >= 0 and (text[s].lower() != c or (li == 0 and s > 0 and text[s - 1].isalnum())):
            s -= 1
        if s < 0:
            return None
        s -= 1
        li -= 1
    start = text.rfind(" ", 0, s + 1) + 1
    long = text[start:].strip(" ,")
    return long if len(long) > len(abbr) else None


def defined_abbreviations(text: str) -> list[tuple[str, str]]:
    """``(abbreviation, long form)`` for each "long form (ABBR)" in ``text``."""
    out: list[tuple[str, str]] = []
    if not _ABBR_PAREN.search(text):
        return out
    for m in _ABBR_DEF.finditer(text):
        abbr = m.group(2)
        if not sum(c.isupper() for c in abbr) >= 2:  # "(Sinemet)" names a brand, not an abbreviation
            continue
        long = _long_form(m.group(1).split(), abbr)
        if long:
            out.append((abbr, long))
    return out


# ----------------------------------------------------------------------------------------------- lexicon


@dataclass
class Match:
    """What a written condition names: candidate foci (keys; empty when none), the names a passage about it may
    carry (the written form, the foci's names, a drug's generic names), and how it was found."""

    written: str
    foci: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    how: str = "none"  # focus | synonym | abbreviation | lay | misspelling | contained | drug | none
    distance: int = 0
    # Foci whose names hold every word of the condition when only a few do ("wegeners" -> granulomatosis with
    # polyangiitis, through its synonym "Wegener's granulomatosis"): not a match, but their passages count as
    # being about the condition for the evidence rule.
    named_by: tuple[str, ...] = ()


@dataclass
class Lexicon:
    """Normalised name -> the answered foci (keys) it names, with how each name was learned."""

    names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    kind: dict[str, str] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)  # focus key -> a display name
    rule: EditRule = field(default_factory=EditRule)
    _fuzzy: FuzzyIndex | None = None
    _word_foci: dict[str, set[str]] | None = None

    def add(self, name: str, focus: str, kind: str) -> None:
        key = normal(name)
        fkey = focus_key(focus)
        if len(key.replace(" ", "")) < 2 or key.isdigit():
            return
        self.names[key].add(fkey)
        self.kind.setdefault(key, kind)
        self.display.setdefault(fkey, focus)
        self._fuzzy = None

    @classmethod
    def build(
        cls,
        foci: Iterable[str],
        synonyms: dict[str, list[str]] | None = None,
        answers: Iterable[tuple[str, str]] = (),
        rule: EditRule | None = None,
    ) -> Lexicon:
        """From the answered foci, their ``<Synonyms>`` (focus -> names; entries of unanswered foci are
        ignored), and ``(focus, answer)`` texts whose defined abbreviations name a known focus."""
        lex = cls(rule=rule or EditRule())
        answered = {focus_key(f): f for f in foci}
        for key, f in answered.items():
            lex.add(f, f, "focus")
            lex.add(key, f, "focus")
        for f, syns in (synonyms or {}).items():
            if focus_key(f) in answered:
                for s in syns:
                    lex.add(s, answered[focus_key(f)], "synonym")
        for lay, name in LAY_NAMES.items():
            for fkey in lex.names.get(name, set()) | lex.names.get(normal(name), set()):
                lex.add(lay, lex.display[fkey], "lay")
        for f, text in answers:
            if focus_key(f) not in answered:
                continue
            for abbr, long in defined_abbreviations(text):
                if (
                    abbr.lower() in _ENGLISH_WORDS
                ):  # "(HE)", "(TO)": as a condition they would be ordinary words
                    continue
                targets = lex.names.get(normal(long)) or lex.names.get(strip_modifiers(normal(long)))
                if targets and lex.kind.get(normal(abbr)) in (None, "abbreviation"):
                    for fkey in targets:
                        lex.add(abbr, lex.display[fkey], "abbreviation")
        return lex

    def to_json(self) -> dict:
        return {
            "names": {k: sorted(v) for k, v in sorted(self.names.items())},
            "kind": self.kind,
            "display": self.display,
            "rule": [self.rule.min_one, self.rule.min_two],
        }

    @classmethod
    def from_json(cls, data: dict) -> Lexicon:
        lex = cls(rule=EditRule(*data.get("rule", (6, 11))))
        for k, v in data["names"].items():
            lex.names[k] = set(v)
        lex.kind, lex.display = dict(data["kind"]), dict(data["display"])
        return lex

    @property
    def fuzzy(self) -> FuzzyIndex:
        if self._fuzzy is None:
            self._fuzzy = FuzzyIndex(self.names)
        return self._fuzzy

    def lookup(self, condition: str, rule: EditRule | None = None) -> Match:
        rule = rule or self.rule
        key = normal(condition)
        bare = strip_modifiers(key)
        singular = " ".join(_singular(w) for w in bare.split())
        for k in dict.fromkeys((key, bare, singular)):
            if k and k in self.names:
                return self._match(condition, self._owners(k), self.kind[k], 0)
        if bare:
            # A different number is a different condition ("type 1" / "type 2"), never a misspelling.
            digits = _DIGITS.findall(bare)
            found = []
            # A possessive "s" people leave on ("wegeners", "alzheimers") is tried off as well.
            for q in dict.fromkeys((bare, " ".join(_singular(w) for w in bare.split()))):
                found += [
                    (d, s)
                    for d, s in self.fuzzy.lookup(q, rule.max_edits(q))
                    if _DIGITS.findall(s) == digits and not _suffix_clash(q, s)
                ]
            found.sort()
            if found:
                best = found[0][0]
                foci = sorted({f for d, s in found if d == best for f in self._owners(s)})
                return self._match(condition, foci, "misspelling", best)
            contained = self._contained(bare)
            if contained:
                return self._match(condition, self._owners(contained), "contained", 0)
        generics = _drug_generics(condition)
        if generics:
            for g in generics:
                if g in self.names:
                    return self._match(condition, sorted(self.names[g]), "drug", 0)
            return Match(condition, (), (bare, *generics), "drug")
        return Match(condition, (), (bare,) if bare else (), "none", named_by=self._named_by(bare))

    def _owners(self, name: str) -> list[str]:
        """The foci a name names; the focus whose own name it is, when there is one ("infantile refsum" is the
        name of one focus and a synonym of another: the name, not the synonym, decides)."""
        foci = self.names[name]
        return [name] if name in foci else sorted(foci)

    def _contained(self, bare: str) -> str | None:
        """The longest known name of two or more words inside the condition that covers at least two thirds of
        its words ("type 2 diabetes mellitus" -> "type 2 diabetes"; not "giant cell vasculitis" -> "vasculitis")."""
        ws = bare.split()
        for n in range(len(ws) - 1, 1, -1):
            if 3 * n < 2 * len(ws):
                break
            for i in range(len(ws) - n + 1):
                span = " ".join(ws[i : i + n])
                if span in self.names:
                    return span
        return None

    def _named_by(self, bare: str, most: int = 3) -> tuple[str, ...]:
        """Foci with one name holding every word of the condition, when at most ``most`` foci do."""
        if self._word_foci is None:
            self._word_foci = defaultdict(set)  # word -> the names holding it
            for name in self.names:
                for w in name.split():
                    self._word_foci[_singular(w)].add(name)
        ws = [_singular(w) for w in bare.split()]
        if not ws:
            return ()
        names = set.intersection(*(self._word_foci.get(w, set()) for w in ws))
        foci = {f for n in names for f in self.names[n]}
        return tuple(sorted(foci)) if 0 < len(foci) <= most else ()

    def _match(self, condition: str, foci: list[str], how: str, distance: int) -> Match:
        names = [strip_modifiers(normal(condition))]
        for f in foci:
            names += [f, strip_modifiers(focus_key(self.display.get(f, f)))]
        names = [n for n in dict.fromkeys(names) if n]
        return Match(condition, tuple(foci), tuple(names), how, distance)


# Endings that make a different condition of a similar word: "cellulite" is not "cellulitis", "asbestos" is not
# "asbestosis", "lymphoma" is not "lymphedema". A misspelling keeps the ending of the word it misspells.
_MEDICAL_SUFFIXES = (
    "itis",
    "osis",
    "oma",
    "emia",
    "aemia",
    "pathy",
    "plasia",
    "trophy",
    "algia",
    "ectomy",
    "uria",
)


def _suffix_clash(query: str, name: str) -> bool:
    """A word of the query is a word of the name with its medical ending dropped or changed (not misspelled)."""
    qs, ns = query.split(), name.split()
    if len(qs) != len(ns):
        return False
    for a, b in zip(qs, ns, strict=True):
        for x, y in ((a, b), (b, a)):
            for suf in _MEDICAL_SUFFIXES:
                stem = y[: -len(suf)]
                ending = x[len(stem) :]
                if (
                    y.endswith(suf)
                    and len(stem) >= 3
                    and x.startswith(stem)
                    and edit_distance(ending, suf, 2) >= 2
                ):
                    return True
    return False


def _drug_generics(condition: str) -> tuple[str, ...]:
    from . import drugs

    if not drugs.is_drug_name(condition):
        return ()
    m = drugs.resolve(condition)
    return tuple(m.ingredients) if m is not None else ()
