"""Questions MedQuAD never answers, by what they ask for, whatever condition they name.

MedQuAD's answers say what a condition is, its causes, symptoms, tests and treatments in general terms (NIH,
MedlinePlus, GARD). It holds no prices or coverage decisions, no shopping advice, nothing on animals as patients,
and (the MedlinePlus drug pages' answers were removed from the public release) nothing on one drug's dose,
timing or mixing with another. A question asking for one of these is answered by no passage, however close its
words or meaning come to one ("how much ibuprofen can i give my 4 year old" reads like a fever passage), so free
text with such an intent abstains before any evidence is weighed (``medlora.retrieval.hybrid``).

Each rule is written for how people ask, not for one set of questions, and stays narrow where MedQuAD does answer
the topic: "what is medicare" and "can i catch something from my cat" are answered (the foci Medicare and Animal
Diseases and Your Health), "does medicare pay for hearing aids" and "my cat keeps sneezing" are not; "what is the
best treatment for gout" is a treatment question, "what is the best pillow for neck pain" a shopping one. Drug
names come from the project's drug dictionary (``medlora.clinical.drugs``, brand and generic names and classes).
"""

from __future__ import annotations

import re

from ..clinical import drugs

INTENTS = ("cost", "shopping", "animal", "drug_dose", "drug_use")

_COST = re.compile(
    r"\b(?:costs?|costly|price[sd]?|pricing|cheap(?:er|est)?|afford(?:able)?|expensive|out of pocket|copays?|"
    r"co-pays?|deductibles?|refunds?|reimburs\w*)\b"
    r"|\bhow much (?:is|are|does|do|will|would)\b[^?.]{0,40}\b(?:cost|charge|set (?:me|you|us) back)\b"
    r"|\b(?:does|do|will|would|is|are)\s+(?:my\s+|the\s+)?(?:insurance|medicare|medicaid|nhs|insurer|plan)\s+"
    r"(?:pay|cover|covered|reimburse)\b"
    r"|\b(?:covered|paid) (?:by|under) (?:my |the )?(?:insurance|medicare|medicaid|plan)\b"
    r"|\b(?:takes?|accepts?|in) my (?:insurance|plan|network)\b"
    r"|\binsurance (?:company |claim )?(?:denied|refused|rejected|won'?t|wont|will not|didn'?t|claim)\b",
    re.I,
)
_BUY = re.compile(
    r"\bwhere (?:can|do|should|could) (?:i|you|we) (?:buy|get|order|purchase)\b"
    r"|\b(?:buy|buying|bought|purchase|order(?:ing)? online|brands?|coupons?|discount codes?)\b",
    re.I,
)
# After "best": words that make it a question about care, which MedQuAD does answer ("best treatment for").
_CARE = frozenset(
    re.findall(
        r"[a-z]+",
        "way ways time times treatment treatments cure cures therapy therapies medicine medicines medication "
        "medications remedy remedies option options thing things exercise exercises diet diets food foods drink "
        "drinks test tests doctor doctors specialist care position positions age kind type sort cream creams "
        "ointment ointments lotion lotions",
    )
)
_FILLER = frozenset(
    re.findall(r"[a-z]+", "to for at in on of and or if when i you we it is are the a an my me")
)
_ANIMAL = (
    r"(?:dogs?|puppy|puppies|cats?|kittens?|pets?|horses?|rabbits?|hamsters?|guinea pigs?|parrots?|budgies?)"
)
_ANIMAL_PATIENT = re.compile(
    rf"\b(?:vets?|veterinar\w*)\b"
    rf"|\b(?:my|our|the|a|his|her|their)\s+{_ANIMAL}\s+(?:has|have|had|is|was|keeps|kept|ate|eats|won'?t|wont|"
    rf"will not|can'?t|cant|seems|got|gets|is|been|threw|vomited|vomits|started|stopped|catch|get|be)\b"
    rf"|\b(?:give|giving|gave|feed|feeding|for|treat|treating)\s+(?:my|our|the|a|his|her)\s+{_ANIMAL}\b"
    rf"|\b{_ANIMAL}'s\b"
    rf"|\bcan\s+(?:my|our|a|the)\s+{_ANIMAL}\s+(?:catch|get|have|eat)\b",
    re.I,
)
_BITE = re.compile(r"\b(?:bit|bite|bites|bitten|biting|scratch\w*|rabies|licked|attacked|mauled)\b", re.I)
_DOSE = re.compile(
    r"\b(?:doses?|dosage|dosing|overdose|mg|milligrams?|mcg|micrograms?|ml|millilit\w*|iu|tablets?|pills?|"
    r"capsules?|teaspoons?|spoonfuls?)\b|\bhow (?:much|many|often)\b|\b\d+\s*(?:mg|mcg|ml|g|iu)\b",
    re.I,
)
_DRUG_USE = re.compile(
    r"\b(?:with|while on|while taking|when taking|together|at the same time|on top of|mix\w*|combin\w*|"
    r"morning|at night|time of day|empty stomach)\b",
    re.I,
)
_WHILE_ON = re.compile(r"\b(?:while|when|whilst) (?:on|taking|using)\b", re.I)
_MEDS = re.compile(r"\b(?:pills?|tablets?|meds|medications?|medicines?|vitamins?|supplements?)\b", re.I)
_TAKE = re.compile(
    r"\b(?:take|taking|took|give|giving|use|using|drink|drinking|mix|mixing|combine|have)\b", re.I
)


def _shopping(text: str) -> bool:
    if _BUY.search(text):
        return True
    low = re.findall(r"[a-z']+", text.lower())
    for i, w in enumerate(low):
        if w != "best":
            continue
        nxt = next((x for x in low[i + 1 :] if x not in ("type", "kind", "sort", "of")), "")
        if nxt and nxt not in _CARE and nxt not in _FILLER:  # "best mattress", "best running shoes"
            return True
        # "which protein powder is best", "what sunglasses protect your eyes best": the thing asked for
        # comes right after which/what
        for j in range(i - 1, max(-1, i - 8), -1):
            if low[j] in ("which", "what"):
                between = low[j + 1 : i]
                if (
                    between
                    and between[0] not in _FILLER | {"can", "should", "do", "does", "would", "helps"}
                    and not (set(between) & _CARE)
                ):
                    return True
                break
    return False


def out_of_scope(text: str) -> str | None:
    """The intent MedQuAD never answers that ``text`` asks for (one of ``INTENTS``), or None."""
    if not text or not text.strip():
        return None
    if _COST.search(text):
        return "cost"
    if _ANIMAL_PATIENT.search(text) and not _BITE.search(text):  # a bite or scratch is the person's injury
        return "animal"
    found = drugs.find_drugs(text)
    if found and _DOSE.search(text):
        return "drug_dose"
    meds = found or _MEDS.search(text)
    if (
        (len(found) >= 2 and _TAKE.search(text))
        or (meds and _TAKE.search(text) and _DRUG_USE.search(text))
        or (meds and _WHILE_ON.search(text))  # "can i get a tattoo while on blood thinners"
    ):
        return "drug_use"
    if _shopping(text):
        return "shopping"
    return None
