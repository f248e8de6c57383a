"""Drug normalisation: any drug mention (brand, generic, abbreviation, misspelling, combination product) to its
ingredients and classes. Every rule that compares drugs (allergies, duplicate therapy, grounding, clean training
targets) goes through here, so they cannot disagree about what "Zestril" or "PCN" means.

The name-to-ingredient dictionary is drug-named-entity-recognition's (MIT; DrugBank, MeSH, MedlinePlus and NHS
names, brand names included), read once from its wheel and cached as a small JSON file; the project adds only
what it lacks (``drug_tables``): abbreviations, combination products and the class table.

    >>> resolve("Zestril 10 mg daily").ingredients
    ('lisinopril',)
    >>> sorted(resolve("Augmentin").classes)
    ['penicillins']
"""

from __future__ import annotations

import bz2
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pickle
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from .drug_tables import (
    ABBREVIATIONS,
    CLASSES,
    COMBINATIONS,
    CROSS_REACTIVITY,
    DUPLICATE_ONLY_CLASSES,
    FUZZY_STOP,
    INGREDIENT_CROSS_REACTIVITY,
    NO_DUPLICATE_CLASSES,
)
from .spelling import edit_distance

log = logging.getLogger(__name__)

# Classes too broad to rule out from one member: a trimethoprim allergy is not an allergy to every antibiotic.
# Only an allergy that names the class itself ("antibiotics", "beta-lactams") rules them out.
UMBRELLA = frozenset({"antibacterials", "beta_lactams"})
MAX_WORDS = 6
# Dictionary names that are also everyday or clinical words; the project's own tables are not filtered.
_NOT_DRUG_WORDS = (
    "water oxygen air salt sugar sodium potassium calcium magnesium iron zinc copper gold silver lead light heat "
    "cold glucose protein fat fiber fibre alcohol ethanol nicotine caffeine tobacco vitamin vitamins diet "
    "exercise surgery therapy blood plasma serum milk honey urea acid base bile fluid fluids saline "
    "contrast dye iodine latex hormone hormones resistance steroid steroids medicine medicines "
    "drug drugs medication medications supplement supplements antibodies antibody vaccine vaccines "
    "toxin toxins enzyme enzymes growth factor collagen keratin gelatin starch cellulose lactose fructose "
    "sucrose cholesterol triglycerides serotonin "
    "histamine acetylcholine cortisol thyroid glycine "
    "arginine glutamine lysine cysteine tyrosine tryptophan carnitine creatine choline inositol "
    "chlorine fluoride phosphate phosphorus sulfur carbon nitrogen hydrogen helium ozone radon mercury "
    "arsenic cadmium asbestos benzene uranium radium plutonium cesium strontium barium"
)
_NOT_DRUGS = frozenset(_NOT_DRUG_WORDS.split())
_KEEP_SHORT = (
    5  # dictionary names shorter than this are mostly codes ("caps", "vals"); our tables list the real ones
)


@dataclass(frozen=True)
class DrugMention:
    text: str  # as written
    start: int
    end: int
    ingredients: tuple[str, ...]  # generic names, lower case
    classes: frozenset[str]  # the most specific classes (keys of drug_tables.CLASSES)
    is_class: bool = False  # names a class ("NSAIDs"), not one product

    @property
    def lineage(self) -> frozenset[str]:
        return frozenset(a for c in self.classes for a in ancestors(c))

    @property
    def label(self) -> str:
        return ", ".join(self.ingredients) if self.ingredients else ", ".join(sorted(self.classes))


def norm(text: str) -> str:
    return " ".join(_tokens_of(text.lower()))


def _tokens_of(text: str) -> list[str]:
    return [m.group().replace("β", "beta") for m in re.finditer(r"[^\W_]+", text)]


@cache
def ancestors(cls: str) -> tuple[str, ...]:
    out = [cls]
    while (parent := CLASSES[out[-1]].parent) is not None:
        out.append(parent)
    return tuple(out)


@cache
def _member_index() -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for name, c in CLASSES.items():
        for m in c.members:
            index.setdefault(m, set()).add(name)
    return {k: frozenset(v) for k, v in index.items()}


@lru_cache(maxsize=65536)
def ingredient_classes(ingredient: str) -> frozenset[str]:
    """Classes of one generic name: the table's members first, then USAN name stems."""
    if found := _member_index().get(ingredient):
        return found
    word = ingredient.split()[-1] if ingredient else ""
    out = set()
    for name, c in CLASSES.items():
        for stem in c.stems:
            prefix = name == "cephalosporins"
            if len(word) >= 6 and (word.startswith(stem) if prefix else word.endswith(stem)):
                out.add(name)
    return frozenset(out)


# ----------------------------------------------------------------------------------------------- dictionary
def _cache_path(version: str) -> Path:
    root = Path(os.environ.get("MEDLORA_CACHE") or Path.home() / ".cache" / "medlora")
    # The cache holds ingredients mapped through our abbreviations: a change to them is a new file.
    tables = hashlib.sha256(json.dumps(ABBREVIATIONS, sort_keys=True).encode()).hexdigest()[:12]
    return root / f"drug_dictionary-{version}-{tables}.json"


def _split_ingredients(canonical: str) -> list[str]:
    return [p.strip() for p in re.split(r"\s*/\s*|,\s*and\s+|\s+and\s+|,\s*", canonical) if p.strip()]


def _build_from_wheel() -> dict[str, list[str]]:
    spec = importlib.util.find_spec("drug_named_entity_recognition")
    if spec is None or spec.origin is None:
        raise RuntimeError("drug-named-entity-recognition is not installed: pip install -r requirements.txt")
    with bz2.open(Path(spec.origin).parent / "drug_ner_dictionary.pkl.bz2", "rb") as fh:
        data = pickle.load(fh)  # the wheel's own file, shipped by its authors
    canon = data["drug_canonical_to_data"]
    # Keep names of medicines (a DrugBank or MedlinePlus entry), not the genes, proteins and foods MeSH also lists.
    drugs = {c for c, d in canon.items() if d.get("drugbank_id") or d.get("medline_plus_id")}
    raw: dict[str, list[str]] = {}
    for variant, canonicals in data["drug_variant_to_canonical"].items():
        key = norm(variant)
        kept = [c for c in canonicals if c in drugs]
        if kept and len(key) >= _KEEP_SHORT and key not in _NOT_DRUGS and len(key.split()) <= MAX_WORDS:
            raw[key] = kept
    out = {}
    for key, canonicals in raw.items():
        ings = []
        for c in canonicals:
            for part in _split_ingredients(c):
                # "paracetamol" inside a combination is still acetaminophen.
                mapped = ABBREVIATIONS.get(norm(part)) or tuple(raw.get(norm(part), [part]))
                ings.extend(i for i in mapped if "/" not in i and " and " not in i)
        out[key] = list(dict.fromkeys(ings))
    return out


@cache
def dictionary() -> dict[str, list[str]]:
    """Normalised name -> ingredients, from the offline dictionary (cached as JSON in the user's cache)."""
    version = importlib.metadata.version("drug-named-entity-recognition")
    path = _cache_path(version)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    out = _build_from_wheel()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:  # a read-only home only costs the rebuild next time
        log.debug("could not cache the drug dictionary: %s", e)
    return out


@dataclass(frozen=True)
class _Entry:
    ingredients: tuple[str, ...]
    classes: frozenset[str]
    is_class: bool


@cache
def _own_table() -> dict[str, _Entry]:
    table: dict[str, _Entry] = {}
    for name, c in CLASSES.items():
        for alias in c.aliases:
            table[norm(alias)] = _Entry((), frozenset({name}), True)
        for m in c.members:
            table[norm(m)] = _entry_for((m,))
    for src in (ABBREVIATIONS, COMBINATIONS):
        for name, ings in src.items():
            table[norm(name)] = _entry_for(ings)
    return table


def _entry_for(ingredients: tuple[str, ...]) -> _Entry:
    classes = frozenset(c for i in ingredients for c in ingredient_classes(i))
    return _Entry(tuple(ingredients), classes, False)


@lru_cache(maxsize=65536)
def _lookup(key: str) -> _Entry | None:
    own = _own_table()
    if key in own:
        return own[key]
    if key.endswith("s") and len(key) > 4 and key[:-1] in own:  # plurals of our own names: "statins"
        return own[key[:-1]]
    ings = tuple(dictionary().get(key, ()))
    if ings:
        # A dictionary name that is one of our class names ("penicillins", "analgesics opioid") is that class.
        for i in ings:
            if (hit := own.get(norm(i))) is not None and hit.is_class:
                return hit
        return _entry_for(ings)
    return None


def find_drugs(text: str) -> list[DrugMention]:
    """Every drug or drug-class mention in free text, longest match first, left to right."""
    matches = list(re.finditer(r"[^\W_]+", text))
    words = [m.group().lower().replace("β", "beta") for m in matches]
    out, i = [], 0
    while i < len(words):
        for n in range(min(MAX_WORDS, len(words) - i), 0, -1):
            entry = _lookup(" ".join(words[i : i + n]))
            if entry is not None:
                start, end = matches[i].start(), matches[i + n - 1].end()
                out.append(DrugMention(text[start:end], start, end, *_as_fields(entry)))
                i += n
                break
        else:
            i += 1
    return out


def _as_fields(entry: _Entry) -> tuple[tuple[str, ...], frozenset[str], bool]:
    return entry.ingredients, entry.classes, entry.is_class


@cache
def _fuzzy_vocabulary() -> tuple[str, ...]:
    own = [k for k in _own_table() if " " not in k]
    return tuple(sorted(set(own)))


def max_edits(length: int) -> int:
    """Misspellings allowed by word length: short names are too close to everyday words and to each other
    ("motrin"/"motion" is two edits, "xanax"/"zantac" three), so a name under five letters must be exact."""
    return 0 if length < 5 else 1 if length < 9 else 2


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


@cache
def _fuzzy_index() -> dict[str, tuple[str, ...]]:
    """Every single-word name of five letters or more, and each with one letter deleted, to the names: a name one
    edit away from a word shares a key with it (symmetric delete, as in SymSpell)."""
    # Brand and generic names of drugs in the class table only: the whole dictionary (21,000 single words) puts
    # one English word in a hundred within an edit of some drug ("action"/"actron", "agent"/"agene").
    known = {i for i, classes in _member_index().items() if classes - DUPLICATE_ONLY_CLASSES}
    names = set(_fuzzy_vocabulary()) | {
        k for k, ings in dictionary().items() if k.isalpha() and " " not in k and ings and set(ings) <= known
    }
    index: dict[str, list[str]] = {}
    for name in names:
        if len(name) >= 5 and name not in FUZZY_STOP:
            for key in _deletes(name) | {name}:
                index.setdefault(key, []).append(name)
    return {k: tuple(v) for k, v in index.items()}


@lru_cache(maxsize=1 << 14)
def fuzzy_name(word: str) -> str | None:
    """The drug name a misspelt word stands for ("alleve" -> "aleve", "amoxicilin" -> "amoxicillin"), or None.

    One edit for words of five to eight letters, two from nine (``max_edits``), the first letter kept (and the
    last, up to six letters); a word
    that is itself an everyday word (``drug_tables.FUZZY_STOP``) or within reach of two different drugs is not
    guessed at."""
    word = word.lower()
    limit = max_edits(len(word))
    stem = re.sub(r"(?:es|s|ed|ing)$", "", word)
    if limit == 0 or not word.isalpha() or {word, stem} & (_NOT_DRUGS | FUZZY_STOP):
        return None
    near = {n for key in _deletes(word) | {word} for n in _fuzzy_index().get(key, ())}
    if limit >= 2:  # two edits ("ibuprophen"): against the project's own names only
        near |= {n for n in _fuzzy_vocabulary() if len(n) >= 5 and abs(len(n) - len(word)) <= 2}
    # Short words keep both ends: "mites" is not "miten", a plural is not a brand name.
    ends = (
        (lambda n: n[0] == word[0] and n[-1] == word[-1]) if len(word) <= 6 else (lambda n: n[0] == word[0])
    )
    scored = [(d, n) for n in near if ends(n) and 0 < (d := edit_distance(word, n, limit)) <= limit]
    if not scored:
        return None
    best = min(d for d, _ in scored)
    names = sorted({n for d, n in scored if d == best})
    products = {
        tuple(e.ingredients) + tuple(sorted(e.classes)) for n in names if (e := _lookup(n)) is not None
    }
    return names[0] if len(products) == 1 else None


@lru_cache(maxsize=1 << 16)  # safety, grounding and target building ask about the same names again and again
def resolve(name: str) -> DrugMention | None:
    """One medication or allergy line ("Zestril 10 mg daily", "PCN", "sulfa drugs", "amoxicilin") as one mention.

    Every mention in the line is merged (a combination written out is one product); an unknown word is matched
    as a misspelling (``fuzzy_name``: one edit from five letters, two from nine), then by USAN stem.
    """
    found = find_drugs(name)
    if not found:
        for word in _tokens_of(name.lower()):
            if len(word) < 5 or word.isdigit():
                continue
            close = fuzzy_name(word)
            entry = _lookup(close) if close else None
            if entry is None and (classes := ingredient_classes(word)):
                entry = _Entry((word,), classes, False)
            if entry is not None:
                found.append(DrugMention(name, 0, len(name), *_as_fields(entry)))
                break
    if not found:
        return None
    ings = tuple(dict.fromkeys(i for m in found for i in m.ingredients))
    classes = frozenset(c for m in found for c in m.classes)
    return DrugMention(name, 0, len(name), ings, classes, all(m.is_class for m in found))


_DOSE_WORDS = re.compile(
    r"^(\d+(\.\d+)?|mg|mcg|g|ml|units?|iu|tabs?|tablets?|caps?|capsules?|oral|po|iv|im|sc|daily|bid|tid|qid|"
    r"prn|once|twice|a|day|inhaled|topical|cream|ointment|drops|injection|injections|nasal|spray|every|hours?|h|q\d+h|extended|release|er|xr|sr|cr|dr|ds|hcl|sodium|potassium)$"
)


def is_drug_name(name: str) -> bool:
    """True when the whole text is a drug or class name (dose words allowed): "naproxen" but not
    "naproxen may be used" or "and anti-arrhythmic drugs". For cleaning extracted names."""
    mentions = find_drugs(name)
    if not mentions:
        return False
    covered = "".join(" " if any(m.start <= i < m.end for m in mentions) else ch for i, ch in enumerate(name))
    return all(_DOSE_WORDS.match(w) for w in _tokens_of(covered.lower()))


def same_therapy(a: DrugMention | str, b: DrugMention | str) -> str | None:
    """Why two mentions are the same therapy ("same drug (acetaminophen)", "same class (nsaids)"), or None."""
    a = resolve(a) if isinstance(a, str) else a
    b = resolve(b) if isinstance(b, str) else b
    if a is None or b is None:
        return None
    if shared := [i for i in a.ingredients if i in b.ingredients]:
        return f"same drug ({shared[0]})"
    if shared_cls := sorted((a.classes & b.classes) - UMBRELLA - NO_DUPLICATE_CLASSES):
        return f"same class ({shared_cls[0]})"
    return None


@dataclass(frozen=True)
class AllergyMatch:
    rule: str  # same_drug | same_class | cross_reactivity | side_chain | severe_cutaneous | combination
    action: str  # removed | caution
    detail: str


def allergy_match(drug: DrugMention, allergy: DrugMention) -> AllergyMatch | None:
    """How a recommended drug meets an allergy: same drug or class (removed), low-risk cross-reactivity (caution)."""
    if shared := [i for i in drug.ingredients if i in allergy.ingredients]:
        return AllergyMatch("same_drug", "removed", shared[0])
    # A class named in the allergy list covers its sub-classes; a single drug's allergy covers its own class.
    ruled_out = allergy.classes if allergy.is_class else allergy.classes - UMBRELLA - DUPLICATE_ONLY_CLASSES
    if hit := sorted(drug.lineage & ruled_out):
        return AllergyMatch("same_class", "removed", hit[0])
    for a_cls, d_cls, why in CROSS_REACTIVITY:
        if a_cls in allergy.lineage and d_cls in drug.classes:
            return AllergyMatch("cross_reactivity", "caution", why)
    for a_ing, d_ing, why in INGREDIENT_CROSS_REACTIVITY:
        if a_ing in allergy.ingredients and d_ing in drug.ingredients:
            return AllergyMatch("cross_reactivity", "caution", why)
    return None
