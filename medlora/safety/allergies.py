"""Allergies as records state them, with the reaction that decides what they rule out.

``record_allergies(record)`` reads every field: the allergy list ("Bactrim - hives", "statin: myalgia",
"NKDA"), and free text in conditions, symptoms, medications and notes ("throat swelled up after Bactrim",
"allergic to PCN (anaphylaxis)", "codeine makes her vomit", "can't tolerate metformin"). A statement that is
negated ("no reaction to amoxicillin", "tolerated cefalexin", "not allergic to sulfa"), someone else's or
hypothetical is not an allergy; text can add allergies, never remove one from the list.

The stated reaction sets the kind (``REACTIONS``): ``severe`` (anaphylaxis, angioedema, airway, hypotension),
``severe_cutaneous`` (SJS/TEN, DRESS, AGEP, blistering), ``allergy`` (hives, rash, itch, swelling),
``intolerance`` (GI upset, myalgia, ACE-inhibitor cough, drowsiness: a side effect, not an immune reaction)
or ``unknown`` (none stated, treated as an allergy). Itching on an opioid is its known histamine release, an
intolerance. Reference: Khan DA et al., "Drug allergy: a 2022 practice parameter update", J Allergy Clin
Immunol 2022;150:1333-1393 (AAAAI/ACAAI), on history taking, intolerance vs allergy and severe reactions.

A reaction to a combination product is laid on the ingredient the record names ("Tylenol #3 (codeine) - N/V"),
else on the ingredient known for it (the beta-lactam of a beta-lactam/inhibitor pair, the sulfonamide of
TMP-SMX, the opioid of an opioid/acetaminophen product for opioid side effects), else on each ingredient as a
caution only. ``match`` turns an allergy and a recommended drug into removal or caution (``drugs.allergy_match``
plus the reaction and beta-lactam side chains).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..clinical.drug_tables import KNOWN_CULPRITS, SIDE_CHAIN_GROUPS
from ..clinical.drugs import AllergyMatch, DrugMention, allergy_match, find_drugs, resolve
from ..clinical.negation import scopes
from ..common.schemas import PatientRecord
from ..common.text import record_sentences


def _re(pattern: str, flags: int = re.I) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w])(?:{pattern})(?![\w])", flags)


# (kind, pattern): the words records use for a reaction. Order of severity is RANK.
REACTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "severe",
        _re(
            r"anaphyla\w*|angio-?o?edema|(?:throat|tongue|airway|larynx|laryngeal)(?: \w+)? (?:swell\w*|swollen|clos\w*|"
            r"tight\w*|edema)|(?:swelling|closing) (?:of|in) (?:the |his |her |my )?(?:throat|tongue|airway)|"
            r"(?:couldn'?t|could not|can'?t|cannot|unable to|trouble|difficulty|hard to) breath\w*|bronchospasm|wheez\w*|"
            r"shortness of breath|sob|stridor|asthma attack|asthma exacerbation|hypotension|(?:blood pressure|bp) (?:dropped|crashed|fell)|shock|"
            r"passed out|collapsed|intubat\w*|icu|epi-?pens?|(?:needed|required|used|given|gave) (?:an? |the )?(?:epi|"
            r"epinephrine|adrenaline)|airway compromise|"
            # serious adverse effects that rule the drug out as firmly as an allergy (not immune, same action)
            r"(?:gi|gastrointestinal|upper gi) bleed\w*|bleeding ulcer|perforat\w*|rhabdo\w*|tendon rupture|"
            r"tendon(?:itis| injury)|(?:acute )?(?:kidney|renal) (?:failure|injury)|aki|pancreatitis|qt prolongation|"
            r"torsades|arrhythmia|seizures?|serotonin syndrome|neuroleptic malignant|malignant hyperthermia"
        ),
    ),
    (
        "severe_cutaneous",
        _re(
            r"sjs|stevens[- ]johnson\w*|toxic epidermal necrolysis|sjs/ten|dress(?: syndrome)?|drug reaction with "
            r"eosinophilia\w*|agep|acute generalized exanthematous pustulosis|(?:skin|mucosal?) (?:peel\w*|slough\w*|"
            r"blister\w*)|blister\w*|(?:mouth|oral|mucosal) (?:sores|ulcers|blisters)|erythema multiforme|"
            r"serum sickness\w*|h[a]?emolytic an[a]?emia|agranulocytosis|interstitial nephritis|(?:drug[- ]induced )?"
            r"hepatitis|liver (?:injury|failure)"
        ),
    ),
    ("severe_cutaneous", _re(r"TEN", 0)),  # upper case only: "ten days" is not toxic epidermal necrolysis
    (
        "allergy",
        _re(
            r"hives|urticari\w*|welts|rash\w*|(?:broke|breaks|break|broken) out|itch\w*|prurit\w*|"
            r"(?<!ankle )(?<!leg )(?<!legs )(?<!feet )(?<!foot )(?<!pedal )(?<!ankles )(?:swell\w*|swollen|puffy)|"
            r"flush\w*|blotch\w*|red (?:spots|skin|bumps)|allergic reaction|hypersensitivity|eczema|fixed drug eruption|"
            r"drug fever|(?:contact )?dermatitis|(?:lip|lips|face|facial|eye|eyes|eyelid|eyelids) (?:swell\w*|swollen|puffy)"
        ),
    ),
    (
        "intolerance",
        _re(
            r"nausea\w*|nauseous|nauseated|vomit\w*|n/v|n&v|n\+v|n/v/d|emesis|throw(?:s|ing)? up|threw up|"
            r"gi (?:upset|intolerance|distress|side effects?|issues|problems)|(?:stomach|tummy|abdominal) "
            r"(?:upset|aches?|pain|cramps?|issues|problems|discomfort)|upset stomach|dyspepsia|heartburn|indigestion|"
            r"diarrh\w*|constipat\w*|myalgi\w*|muscle (?:aches?|pains?|cramps?|weakness|soreness)|muscle|body aches|"
            r"arthralgi\w*|joint pain|(?:dry |persistent |nagging )?cough\w*|headaches?|migraines?|dizz\w*|lightheaded\w*|"
            r"light[- ]headed\w*|vertigo|drows\w*|sedat\w*|sleepy|somnolen\w*|(?:felt|feels|feeling|made (?:him|her|me) "
            r"feel) (?:weird|funny|strange|off|loopy|spacey|groggy|foggy|sick|bad|awful|terrible)|jitter\w*|shaky|"
            r"palpitations?|racing heart|insomnia|(?:couldn'?t|can'?t|could not) sleep|hallucinat\w*|nightmares|"
            r"confus\w*|anxi\w*|agitat\w*|(?:ankle|ankles|leg|legs|feet|foot|pedal) (?:swelling|edema|oedema)|"
            r"yeast infection|thrush|tinnitus|fatigue|tired\w*|side[- ]effects?|intoleran\w*|not tolerated|"
            r"(?:did not|didn'?t|does not|doesn'?t|can'?t|cannot|could not|couldn'?t|unable to) tolerate|"
            r"made (?:him|her|me|them) (?:sick|ill|throw up|vomit)|sick to (?:his|her|my) stomach|hyperkal\w*|"
            r"bradycardi\w*|hair loss|weight gain|mood (?:changes|swings)|constipated|dry mouth|metallic taste"
        ),
    ),
    ("unknown", _re(r"unknown|unk|unsure|not sure|unknown reaction|reaction unknown|\?")),
)
RANK = {"intolerance": 0, "unknown": 1, "allergy": 2, "severe": 3, "severe_cutaneous": 4}
_IMMUNE = ("allergy", "severe", "severe_cutaneous", "unknown")
# Opioids release histamine: itching, flushing or a few hives on one are a side effect (Khan 2022).
_OPIOID_PSEUDO = _re(r"itch\w*|prurit\w*|flush\w*")

_CUE_BEFORE = re.compile(
    r"(?:allergic (?:reaction )?to|allerg(?:y|ies) to|allerg(?:y|ies)\s*[:\-]|allergic\s*[:\-]|(?:known )?"
    r"sensitivit(?:y|ies) to|sensitive to|intoleran(?:t|ce) (?:of|to)|(?:can'?t|cannot|doesn'?t|does not|did not|"
    r"didn'?t|unable to) tolerate|reactions? to|reacted (?:badly )?to|rxn to|anaphylaxis to|hives (?:to|with)|"
    r"rash (?:to|with)|adverse reactions?\s*[:\-]?)\s*(?:[\"'“]?\s*(?:all|any|most|many|several|some|multiple)\s*)?$",
    re.I,
)
_CUE_AFTER = re.compile(
    r"^\s*(?:allerg(?:y|ies|ic)|intoleran(?:t|ce)|sensitivity|hypersensitivity|reaction|rxn)\b", re.I
)
_LINK_BEFORE = re.compile(  # reaction ... after / with / from ... drug
    r"^\s*(?:[\w.]+\s+){0,3}?(?:after|with|w/|from|to|on|following|upon|due to|secondary to|2/2(?: to)?|d/t|caused by|"
    r"attributed to|because of|since (?:starting|taking|being on)?|when (?:taking|given|on|started|she took|he took)|"
    r"while (?:taking|on))\s+(?:[\w.]+\s+){0,4}?$",
    re.I,
)
# Dose, route and frequency between a drug and its reaction ("Amoxicillin 500 mg p.o. t.i.d. x 10 d caused hives").
_DOSE_WORDS = (
    r"(?:(?:\d[\d.,/]*|mg|mcg|g|ml|units?|tabs?|caps?|po|p\.o\.?|iv|im|sc|sq|pr|bid|tid|qid|qd|qhs|prn|"
    r"b\.i\.d\.?|t\.i\.d\.?|q\.i\.d\.?|q\.d\.?|q\.h\.s\.?|p\.r\.n\.?|q\d+h|daily|x|d|days?|wks?|weeks?)\s+)*"
)
# A dot left inside a sentence (``text.record_sentences``) is an abbreviation or a decimal: "Amoxicillin p.o.
# caused hives", "amoxicillin 0.5 g (hives)".
_LINK_AFTER = re.compile(  # drug - reaction / drug 25 mg (reaction) / drug caused reaction
    r"^[^()\[\]:=>→\-–—;]{0,25}?(?:[(\[:=>→\-–—]+|->)\s*(?:\w+\s+){0,2}?$|^\s*"
    + _DOSE_WORDS
    + r"(?:[\w.]+\s+){0,2}?(?:caused|causes|cause|gave|"
    r"gives|give|"
    r"made|makes|led to|leads to|resulted in|results in|triggered|triggers|induced|brought on|->|→)\s+"
    r"(?:\w+\s+){0,3}?$",
    re.I,
)
# Cues that say there is no reaction; NegEx's own triggers come from ``negation.scopes``.
_NO_REACTION = re.compile(
    r"\b(?:tolerat(?:ed|es|ing)|took|taken|takes|on) (?:\w+ ){0,4}?(?:without|w/o|with no) (?:any )?(?:problems?|"
    r"issues?|reactions?|side effects?|difficulty)|\btolerat(?:ed|es|ing)\b|\bno (?:reaction|rxn|problem|issue)s?\b|"
    r"\bnot allergic\b|\bnkda\b|\bnka\b|\bno known\b|\bdelabel\w*|\bde-label\w*|\bremoved from (?:the )?allerg",
    re.I,
)
_CAUSAL = re.compile(
    r"\b(?:caused|causes|cause|gave|gives|made|makes|led to|resulted in|triggered|induced|due to|secondary to|"
    r"2/2|d/t|because of|caused by|stopped|discontinued|d/c'?d|after starting|since starting|when started)\b|->|→",
    re.I,
)
# "Zofran - for nausea", "nausea controlled with Zofran": the drug treats the symptom, it did not cause it.
_PURPOSE = re.compile(
    r"\b(?:for|prn|as needed|to (?:treat|help|control|prevent|stop|relieve|ease)|helps?|helped|relie\w+|"
    r"controll?\w*|improv\w*|treated|managed|resolved|better|eased|settled)\b",
    re.I,
)
_SOMEONE_ELSE = re.compile(
    r"\b(?:mother|father|mom|mum|dad|brother|sister|son|daughter|wife|husband|partner|parents?|siblings?|"
    r"grand(?:mother|father|ma|pa)|aunt|uncle|cousin|family(?: history)?|fhx?)(?:'s)?\b(?! of (?:the )?patient)",
    re.I,
)


@dataclass(frozen=True)
class Allergy:
    written: str  # the allergen as the record writes it
    drug: DrugMention  # what the reaction is laid on (an ingredient of a combination where known)
    kind: str  # severe | severe_cutaneous | allergy | intolerance | unknown
    reaction: str | None = None  # as written
    caution_only: bool = False  # an ingredient of a combination product the reaction may not be due to
    note: str = ""  # how a combination's reaction was attributed
    whole_product: bool = False  # only the product itself (all its ingredients) is ruled out


def classify(text: str, drug: DrugMention | None = None) -> tuple[str, str | None]:
    """(kind, the reaction words as written) of a reaction phrase; ``unknown`` when none is stated."""
    found: list[tuple[int, str, str]] = []
    for kind, pattern in REACTIONS:
        for m in pattern.finditer(text):
            if (
                kind == "allergy"
                and drug is not None
                and "opioids" in drug.lineage
                and _OPIOID_PSEUDO.fullmatch(m.group())
            ):
                kind_here = "intolerance"
            else:
                kind_here = kind
            found.append((m.start(), m.end(), kind_here))
    if not found:
        return "unknown", None
    kind = max((k for _, _, k in found), key=RANK.__getitem__)
    words = ", ".join(dict.fromkeys(text[a:b] for a, b, _ in _outermost(found)))
    return kind, words


def _outermost(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Spans not inside another ("throat swelled" keeps, its "swelled" goes), left to right."""
    return sorted(
        (a, b, k) for a, b, k in spans
        if not any(c <= a and b <= d and (c, d) != (a, b) for c, d, _ in spans)
    )  # fmt: skip


def _split_combination(
    written: str, mentions: list[DrugMention], reaction_text: str, kind: str
) -> list[Allergy]:
    """One allergy line's mentions as allergies: a combination's reaction laid on the right ingredient."""
    combos = [m for m in mentions if len(m.ingredients) > 1 and not m.is_class]
    if not combos:
        return [
            Allergy(written if len(mentions) == 1 else m.text, m, kind, reaction_text or None)
            for m in mentions
        ]
    out = []
    for combo in combos:
        named = [m for m in mentions if m is not combo]
        culprit = [
            i for i in combo.ingredients for m in named
            if i in m.ingredients or (m.is_class and (r := resolve(i)) is not None and r.lineage & m.classes)
        ]  # fmt: skip
        note = "the ingredient the record names"
        if not culprit:
            for cls, kinds, why in KNOWN_CULPRITS:
                hit = [i for i in combo.ingredients if cls in (resolve(i).lineage if resolve(i) else ())]
                if hit and kind in kinds and len(hit) < len(combo.ingredients):
                    culprit, note = hit, why
                    break
        if not culprit:  # not known which: the product itself stays ruled out, each ingredient a caution
            out.append(Allergy(written, combo, kind, reaction_text or None, whole_product=True))
            for i in combo.ingredients:
                if (r := resolve(i)) is not None:
                    out.append(
                        Allergy(written, r, kind, reaction_text or None, True, "ingredient not stated")
                    )
            continue
        for i in dict.fromkeys(culprit):
            if (r := resolve(i)) is not None:
                out.append(Allergy(written, r, kind, reaction_text or None, False, note))
        others = [i for i in combo.ingredients if i not in culprit]
        for i in others if kind in _IMMUNE else ():
            if (r := resolve(i)) is not None:
                out.append(
                    Allergy(
                        written, r, kind, reaction_text or None, True, "another ingredient of the product"
                    )
                )
    # A drug on the same line that is not part of a combination is an allergy of its own ("Percocet, codeine").
    in_combos = {i for c in combos for i in c.ingredients}
    for m in mentions:
        if (
            m not in combos
            and not set(m.ingredients) & in_combos
            and not (m.is_class and _names_part(m, combos))
        ):
            out.append(Allergy(m.text, m, kind, reaction_text or None))
    return out


def _names_part(cls: DrugMention, combos: list[DrugMention]) -> bool:
    """Whether a class mention names part of a combination ("Bactrim (sulfa)")."""
    return any(
        r is not None and r.lineage & cls.classes for c in combos for i in c.ingredients if (r := resolve(i))
    )


def from_list_entry(entry: str) -> list[Allergy]:
    """One line of the allergy list ("Tylenol #3 - N/V", "PCN (anaphylaxis)", "NKDA") as allergies."""
    mentions = find_drugs(entry)
    if not mentions:
        whole = resolve(entry)
        mentions = [whole] if whole is not None else []
    if not mentions:
        return []
    rest = "".join(" " if any(m.start <= i < m.end for m in mentions) else ch for i, ch in enumerate(entry))
    kind, words = classify(rest, mentions[0])
    if len(mentions) > 1 and not any(len(m.ingredients) > 1 and not m.is_class for m in mentions):
        # "Amoxicillin (hives), Cipro (tendon rupture)": each drug its own reaction, else the line's
        out = []
        for i, m in enumerate(mentions):
            own = entry[m.end : mentions[i + 1].start if i + 1 < len(mentions) else len(entry)]
            k, w = classify(own, m)
            out.extend(_split_combination(m.text, [m], w or words or "", k if w else kind))
        return out
    return _split_combination(entry.strip(), mentions, words or "", kind)


def from_text(text: str, strict: bool = False) -> list[Allergy]:
    """Allergies that free text states: a drug tied to a reaction or an allergy cue, not negated. ``strict``
    (a medication list line, where "sumatriptan - migraines" names the indication): only an allergy cue or a
    causal word ("caused", "made him", "due to", "stopped because of") ties a drug to a reaction."""
    found = [s for s in scopes(text) if s.kind != "historical"]  # an allergy is always a history
    out: list[Allergy] = []
    for start, end in record_sentences(text):
        out.extend(_sentence_allergies(text, start, end, found, strict))
    return out


def _sentence_allergies(text: str, a: int, b: int, found, strict: bool = False) -> list[Allergy]:
    sentence = text[a:b]
    mentions = [m for m in find_drugs(sentence) if m.ingredients or m.is_class]
    if not mentions:
        return []
    reactions = [(m.start(), m.end(), k) for k, p in REACTIONS for m in p.finditer(sentence)]
    out = []
    for i, d in enumerate(mentions):
        if any(s.start <= a + d.start and a + d.end <= s.end for s in found):
            continue
        prev_end = mentions[i - 1].end if i else 0
        next_start = mentions[i + 1].start if i + 1 < len(mentions) else len(sentence)
        after = sentence[d.end : next_start]
        if _NO_REACTION.search(sentence[max(0, d.start - 60) : d.start]) or _NO_REACTION.search(after[:60]):
            continue
        if _SOMEONE_ELSE.search(sentence[: d.start]):
            continue
        lead = _strip_list(sentence[: d.start], mentions[:i])
        cued = bool(_CUE_BEFORE.search(lead)) or bool(_CUE_AFTER.match(after))
        linked = [
            r
            for r in reactions
            if prev_end <= r[1] <= d.start and _LINK_BEFORE.match(sentence[r[1] : d.start])
        ]
        linked += [
            r for r in reactions if d.end <= r[0] < next_start and _LINK_AFTER.match(sentence[d.end : r[0]])
        ]
        linked = [r for r in linked if not _PURPOSE.search(sentence[min(r[1], d.end) : max(r[0], d.start)])]
        if strict:
            linked = [r for r in linked if _CAUSAL.search(sentence[min(r[1], d.end) : max(r[0], d.start)])]
        if not cued and not linked:
            continue
        spans = linked or [r for r in reactions if d.end <= r[0] < next_start]
        phrase = ", ".join(dict.fromkeys(sentence[s:e] for s, e, _ in _outermost(spans)))
        kind, words = classify(phrase, d)
        out.extend(_split_combination(d.text, [d], words or "", kind))
    return out


def _strip_list(lead: str, earlier: list[DrugMention]) -> str:
    """The text before a drug with earlier drugs of the same list and their parentheses taken out, so
    "allergic to PCN (hives), sulfa" still reads "allergic to" before "sulfa"."""
    for m in reversed(earlier):
        lead = lead[: m.start] + lead[m.end :]
    lead = re.sub(r"\([^)]*\)", " ", lead)
    return (
        re.sub(r"(?:[\s,/&+]|\band\b|\bor\b|[-–—:]\s*\w+)*$", "", lead, flags=re.I) if lead.strip() else lead
    )


def record_allergies(record: PatientRecord) -> list[Allergy]:
    """Every allergy of the record: the list's lines, then statements in any free-text field."""
    out: list[Allergy] = []
    for entry in record.allergies:
        out.extend(from_list_entry(entry))
    for text in [*record.conditions, *record.symptoms, record.notes or ""]:
        out.extend(from_text(text))
    for text in record.medications:
        out.extend(from_text(text, strict=True))
    # A list line with no reaction ("penicillin") takes the one free text states for the same drug ("Had hives
    # after penicillin"), only when that rules out at least as much: never lowered to an intolerance.
    stated: dict[tuple, Allergy] = {}
    for a in out:
        key = (a.drug.ingredients, a.drug.classes)
        best = stated[key].kind if key in stated else "unknown"
        if a.reaction and not a.caution_only and RANK[a.kind] > RANK[best]:
            stated[key] = a  # the most severe stated reaction
    out = [
        replace(a, kind=told.kind, reaction=told.reaction)
        if a.kind == "unknown"
        and a.reaction is None
        and (told := stated.get((a.drug.ingredients, a.drug.classes)))
        else a
        for a in out
    ]
    seen, unique = set(), []
    for a in out:
        key = (a.drug.ingredients, a.drug.classes, a.kind, a.caution_only)
        if key not in seen:
            seen.add(key)
            unique.append(a)
    return unique


def _side_chain(drug: DrugMention, allergen: DrugMention) -> str | None:
    allergens = set(allergen.ingredients)
    if "penicillin" in allergens:  # "PCN" rarely says which penicillin: an aminopenicillin is not excluded
        allergens |= {"amoxicillin", "ampicillin"}
    for group, why in SIDE_CHAIN_GROUPS:
        if set(drug.ingredients) & group and allergens & group:
            return why + ("" if set(allergen.ingredients) & group else " (penicillin not specified)")
    return None


def match(drug: DrugMention, allergy: Allergy) -> AllergyMatch | None:
    """Removal or caution for a recommended drug against one allergy, decided by the reaction."""
    if allergy.whole_product and not set(allergy.drug.ingredients) <= set(drug.ingredients):
        return None
    base = allergy_match(drug, allergy.drug)
    if base is None:
        return None
    why = f"{base.detail}; reaction: {allergy.reaction or 'not stated'} ({allergy.kind.replace('_', ' ')})"
    if allergy.caution_only:
        return AllergyMatch("combination", "caution", f"{why}; {allergy.note}")
    if allergy.kind == "intolerance":
        if (
            base.rule == "cross_reactivity"
        ):  # a side effect does not cross-react: ACE-inhibitor cough, then an ARB
            return None
        return AllergyMatch(base.rule, "caution", f"{why}: a side effect, not an allergy")
    if base.rule == "cross_reactivity" and allergy.kind in ("severe", "severe_cutaneous"):
        if chain := _side_chain(drug, allergy.drug):
            return AllergyMatch("side_chain", "removed", f"{chain}; {why}")
        if allergy.kind == "severe_cutaneous":
            return AllergyMatch(
                "severe_cutaneous", "removed", f"{why}: no cross-reactive drug after SJS/TEN/DRESS"
            )
    return AllergyMatch(base.rule, base.action, why)


_LIST_REACTION = re.compile(r"\([^)]*\)|[-–—:=]\s*[^,;.()\n]{1,60}")
_ALLERGY_CONTEXT = re.compile(r"allerg\w*|\brxn\b|reactions?\b|\bnkda\b|intoleran\w*|sensitivit\w*", re.I)


def allergy_history_spans(text: str) -> list[tuple[int, int]]:
    """Spans where text lists a past reaction to an allergen ("Allergies: PCN (anaphylaxis)", "sulfa - hives"):
    a description of an allergy, not a reaction happening now. Red flags do not read anaphylaxis from them."""
    out = []
    for start, end in record_sentences(text):
        if _ALLERGY_CONTEXT.search(text[start:end]):
            out.extend((start + m.start(), start + m.end()) for m in _LIST_REACTION.finditer(text[start:end]))
    return out
