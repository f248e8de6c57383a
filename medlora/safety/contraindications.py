"""Contraindications by the patient's state: pregnancy, breastfeeding, age, kidney and liver function.

Each rule is data (``RULES``): the drugs it concerns (ingredients or ``drug_tables`` classes), the state that
triggers it, the action, and its source with the threshold as the source states it. ``removed`` where a US label
contraindicates the drug or a boxed warning rules it out in that state; ``caution`` where the source says to
avoid, reduce or review (AGS Beers Criteria 2023 in adults 65 and over, renal dose limits, weeks of pregnancy
not stated). A drug the patient already takes is never removed (the recommendation did not start it) but is
reported as a caution, so a pregnant patient on lisinopril does not pass silently.

Drugs are those ``drugs.resolve``/``find_drugs`` read (brands, abbreviations, misspellings, combination products:
"Tylenol PM" is acetaminophen with diphenhydramine); the state is ``patient_state``. Honey is not a drug: any
item of any section that gives honey to an infant is removed.

Safe counterparts are not listed and stay silent by construction: acetaminophen, amoxicillin, azithromycin,
labetalol, nifedipine, methyldopa and insulin in pregnancy; paracetamol and ibuprofen in children over 6 months.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..clinical.doses import daily_grams, low_dose_aspirin
from ..clinical.drugs import DrugMention
from .patient_state import PatientState


def _set(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


@dataclass(frozen=True)
class Finding:
    code: str
    medication: str  # as written
    state: str  # the state that triggered the rule, as read ("pregnant, 30 weeks", "eGFR 22")
    action: str  # removed | caution
    message: str
    source: str
    section: str = ""


# when(state, item_text) -> (state as read, action) or None
When = Callable[[PatientState, str], "tuple[str, str] | None"]


@dataclass(frozen=True)
class Rule:
    code: str
    drugs: frozenset[str]
    when: When
    message: str
    source: str


# ------------------------------------------------------------------------------------------------ states
def _pregnancy(s: PatientState) -> str | None:
    if s.pregnant:
        if s.weeks is not None:
            return f"pregnant, {s.weeks:g} weeks"
        return f"pregnant, trimester {s.trimester}" if s.trimester else "pregnant, weeks not stated"
    return "pregnancy not excluded" if s.possibly_pregnant else None


def _in_pregnancy(action: str = "removed") -> When:
    """The action in a stated pregnancy; a caution where pregnancy is only possible."""

    def when(s: PatientState, _text: str) -> tuple[str, str] | None:
        state = _pregnancy(s)
        if state is None:
            return None
        return state, action if s.pregnant else "caution"

    return when


def _warfarin_in_pregnancy(s: PatientState, text: str) -> tuple[str, str] | None:
    found = _in_pregnancy()(s, text)
    if found and s.mechanical_valve:  # the label's one exception: a mechanical valve, at high thrombotic risk
        return found[0] + ", mechanical heart valve", "caution"
    return found


def _tetracycline_in_pregnancy(s: PatientState, _text: str) -> tuple[str, str] | None:
    state = _pregnancy(s)
    if state is None:
        return None
    second_or_later = (s.weeks or 0) >= 14 or (s.trimester or 0) >= 2
    return state, "removed" if s.pregnant and second_or_later else "caution"


def _nsaid_in_pregnancy(s: PatientState, _text: str) -> tuple[str, str] | None:
    state = _pregnancy(s)
    if state is None:
        return None
    if s.pregnant and ((s.weeks or 0) >= 20 or s.trimester == 3):
        return state, "removed"
    if s.pregnant and s.weeks is not None:
        return None  # before 20 weeks the FDA limit does not yet apply
    return state, "caution"


def _age(s: PatientState) -> str:
    a = s.age or 0
    if a < 2:
        return f"age {round(a * 12)} months"
    return f"age {a:g}"


def _younger(limit: float, action: str = "removed", caution_below: float | None = None) -> When:
    """``action`` under ``limit`` years; a caution from ``limit`` up to ``caution_below``."""

    def when(s: PatientState, _text: str) -> tuple[str, str] | None:
        if s.age is None:
            return None
        if s.age < limit:
            return _age(s), action
        if caution_below is not None and s.age < caution_below:
            return _age(s), "caution"
        return None

    return when


def _codeine_child(s: PatientState, _text: str) -> tuple[str, str] | None:
    if s.age is None:
        return None
    if s.age < 12:
        return _age(s), "removed"
    if s.age < 18:
        return (_age(s) + ", after tonsillectomy", "removed") if s.tonsillectomy else (_age(s), "caution")
    return None


def _salicylate_young(s: PatientState, _text: str) -> tuple[str, str] | None:
    if s.age is None or s.age >= 19:
        return None
    return (_age(s) + ", viral illness", "removed") if s.viral_illness else (_age(s), "caution")


def _older(s: PatientState, _text: str) -> tuple[str, str] | None:
    return (f"age {s.age:g} (65 or older)", "caution") if s.age is not None and s.age >= 65 else None


def _kidney(s: PatientState) -> str:
    parts = []
    if s.egfr is not None:
        parts.append(f"eGFR {s.egfr:g}")
    if s.crcl is not None:
        parts.append(f"CrCl {s.crcl:g}")
    if s.dialysis:
        parts.append("dialysis")
    elif s.ckd_stage and not parts:
        parts.append(f"CKD stage {s.ckd_stage}")
    return ", ".join(parts) or "kidney function reduced"


def _renal(removed_below: float, caution_below: float | None) -> When:
    """Removed under ``removed_below`` mL/min (or CKD 4-5, dialysis); a caution under ``caution_below``."""

    def when(s: PatientState, _text: str) -> tuple[str, str] | None:
        value = s.kidney_function
        if s.dialysis or (value is not None and value < removed_below) or (value is None and s.severe_ckd):
            return _kidney(s), "removed"
        if caution_below is not None and (
            (value is not None and value < caution_below) or (value is None and s.ckd_stage == 3)
        ):
            return _kidney(s), "caution"
        return None

    return when


def _nsaid_kidney(s: PatientState, text: str) -> tuple[str, str] | None:
    found = _renal(30, 60)(s, text)
    if found is None and s.aki:
        return "acute kidney injury", "caution"
    return found


def _apap_cirrhosis(s: PatientState, text: str) -> tuple[str, str] | None:
    if not s.cirrhosis:
        return None
    state = "cirrhosis" + (f", Child-Pugh {s.child_pugh}" if s.child_pugh else "")
    grams = daily_grams(text)
    if grams is None:
        return state + ", daily dose not stated", "caution"
    return (state + f", {grams:g} g/day", "caution") if grams > 2 else None


def _nsaid_cirrhosis(s: PatientState, _text: str) -> tuple[str, str] | None:
    return (
        ("cirrhosis" + (f", Child-Pugh {s.child_pugh}" if s.child_pugh else ""), "caution")
        if s.cirrhosis
        else None
    )


def _breastfeeding(s: PatientState, _text: str) -> tuple[str, str] | None:
    return ("breastfeeding", "caution") if s.breastfeeding else None


# ------------------------------------------------------------------------------------------------- sources
_FDA_2017 = (
    "FDA Drug Safety Communication, 20 Apr 2017: codeine and tramadol contraindicated in children under 12 and "
    "(codeine; tramadol) after tonsillectomy or adenoidectomy under 18; avoid at 12-18 with obesity, sleep apnoea "
    "or lung disease; breastfeeding not recommended"
)
_BEERS_REF = "American Geriatrics Society 2023 Updated AGS Beers Criteria, J Am Geriatr Soc 2023;71:2052-81"
_BEERS = _BEERS_REF + ", Table 2 (potentially inappropriate in older adults)"
_BEERS_KIDNEY = _BEERS_REF + ", Table 6 (kidney function)"
_FIRST_GEN_AH = _set(
    "brompheniramine, carbinoxamine, chlorpheniramine, clemastine, cyproheptadine, dexbrompheniramine, "
    "dexchlorpheniramine, dimenhydrinate, diphenhydramine, doxylamine, hydroxyzine, meclizine, promethazine, "
    "pyrilamine, triprolidine"
)
_COUGH_COLD = _set(
    "dextromethorphan, pseudoephedrine, phenylephrine, guaifenesin, brompheniramine, chlorpheniramine, "
    "diphenhydramine, doxylamine, triprolidine, carbinoxamine, codeine, hydrocodone"
)
_SALICYLATES = _set(
    "aspirin, bismuth subsalicylate, salsalate, choline magnesium trisalicylate, magnesium salicylate, diflunisal"
)
_TERATOGENS = _set(
    "mycophenolate, mycophenolate mofetil, mycophenolic acid, leflunomide, teriflunomide, ribavirin, thalidomide, lenalidomide, "
    "pomalidomide, acitretin, bosentan, ambrisentan, macitentan, riociguat, finasteride, dutasteride"
)

RULES: tuple[Rule, ...] = (
    # --- pregnancy
    Rule("pregnancy_raas", _set("ace_inhibitors, arbs, renin_inhibitors, sacubitril"), _in_pregnancy(),
         "ACE inhibitors, ARBs and aliskiren injure and can kill the fetus (renal failure, oligohydramnios, skull "
         "hypoplasia); stop when pregnancy is detected",
         "US labels of ACE inhibitors, ARBs, aliskiren and sacubitril/valsartan, boxed warning: fetal toxicity"),
    Rule("pregnancy_warfarin", _set("warfarin"), _warfarin_in_pregnancy,
         "warfarin crosses the placenta (embryopathy, fetal bleeding); a heparin is used in pregnancy",
         "Coumadin (warfarin) US label, contraindications: pregnancy, except women with mechanical heart valves "
         "at high risk of thromboembolism"),
    Rule("pregnancy_isotretinoin", _set("isotretinoin"), _in_pregnancy(),
         "isotretinoin causes severe birth defects", "Isotretinoin US labels, boxed warning: contraindicated in "
         "pregnancy (iPLEDGE REMS)"),
    Rule("pregnancy_methotrexate", _set("methotrexate"), _in_pregnancy(),
         "methotrexate causes embryo-fetal death and malformations",
         "Methotrexate US labels, boxed warning and contraindications: pregnancy, in non-neoplastic diseases"),
    Rule("pregnancy_valproate", _set("valproic acid, valproate, divalproex"), _in_pregnancy(),
         "valproate causes neural tube defects and lower IQ; not for migraine in pregnancy, and for epilepsy only "
         "when nothing else works",
         "Depakote (divalproex) US label, boxed warning: fetal risk; contraindicated for migraine prophylaxis in "
         "pregnancy"),
    Rule("pregnancy_teratogen", _TERATOGENS, _in_pregnancy(),
         "contraindicated in pregnancy (embryo-fetal toxicity)",
         "US labels (CellCept, Arava, ribavirin, Thalomid/Revlimid, Soriatane, Tracleer, Propecia, Avodart): "
         "boxed warning or contraindication in pregnancy"),
    Rule("pregnancy_statin", _set("statins"), _in_pregnancy("caution"),
         "most pregnant patients should stop a statin (stop when pregnancy is recognised; continue only for very "
         "high risk, e.g. homozygous familial hypercholesterolaemia)",
         "FDA Drug Safety Communication, 20 Jul 2021: contraindication in pregnancy removed from statin labels; "
         "discontinue in most pregnant patients"),
    Rule("pregnancy_tetracycline", _set("tetracyclines"), _tetracycline_in_pregnancy,
         "tetracyclines stain fetal teeth and affect bone from the second trimester",
         "CDC STI Treatment Guidelines 2021: doxycycline contraindicated in the second and third trimesters; "
         "tetracycline-class US labels: tooth discoloration with use in the last half of pregnancy"),
    Rule("pregnancy_nsaid", _set("nsaids"), _nsaid_in_pregnancy,
         "NSAIDs from 20 weeks can cause fetal kidney dysfunction and oligohydramnios, and from 30 weeks premature "
         "closure of the ductus arteriosus (low-dose 81 mg aspirin excepted)",
         "FDA Drug Safety Communication, 15 Oct 2020: avoid NSAIDs at 20 weeks of pregnancy or later; NSAID US "
         "labels: avoid from 30 weeks"),
    Rule("breastfeeding_codeine_tramadol", _set("codeine, tramadol"), _breastfeeding,
         "ultra-rapid metabolisers pass morphine into breast milk (infant sedation, breathing problems)", _FDA_2017),
    Rule("angioedema_acei", _set("ace_inhibitors, sacubitril"),
         lambda s, _t: ("angioedema now", "removed") if s.angioedema else None,
         "an ACE inhibitor (or sacubitril) with angioedema: stop it and do not restart",
         "ACE inhibitor US labels (e.g. Zestril) and Entresto US label, contraindications: angioedema, history "
         "of ACE-inhibitor angioedema, hereditary or idiopathic angioedema"),
    # --- age
    Rule("child_codeine_tramadol", _set("codeine, tramadol"), _codeine_child,
         "codeine and tramadol: life-threatening respiratory depression in children (ultra-rapid metabolism)",
         _FDA_2017),
    Rule("reye_salicylate", _SALICYLATES, _salicylate_young,
         "aspirin and other salicylates (bismuth subsalicylate, Pepto-Bismol) in children and teenagers with or "
         "recovering from flu or chickenpox: Reye's syndrome",
         "OTC aspirin and bismuth subsalicylate labels, Reye's syndrome warning (21 CFR 201.314(h)); NIH NINDS: "
         "no aspirin under 19 years during a viral illness"),
    Rule("child_promethazine", _set("promethazine"), _younger(2, caution_below=18),
         "promethazine under 2 years: fatal respiratory depression (boxed warning); in older children use the "
         "lowest effective dose",
         "Phenergan (promethazine) US label, boxed warning: contraindicated in children under 2 years"),
    Rule("child_cough_cold", _COUGH_COLD - _set("codeine"), _younger(2, caution_below=4),
         "over-the-counter cough and cold medicines are not for children under 2 (deaths, overdose); labels say "
         "do not use under 4",
         "FDA Public Health Advisory, 17 Jan 2008 (under 2 years); OTC cough and cold labels since Oct 2008 (do not "
         "use under 4)"),
    Rule("child_benzocaine", _set("benzocaine"), _younger(2),
         "oral benzocaine in infants: methaemoglobinaemia; not for teething",
         "FDA Drug Safety Communication, 23 May 2018: no OTC oral benzocaine for teething or under 2 years"),
    Rule("child_loperamide", _set("loperamide"), _younger(2),
         "loperamide under 2 years: ileus, CNS depression", "Imodium (loperamide) US label: contraindicated in "
         "children under 2 years"),
    Rule("infant_ibuprofen", _set("ibuprofen"), _younger(0.5, action="caution"),
         "ibuprofen under 6 months: not on the OTC label without a doctor; weight-based dosing from 6 months",
         "Infants' ibuprofen OTC labels (Advil, Motrin): under 6 months ask a doctor"),
    Rule("child_fluoroquinolone", _set("fluoroquinolones"), _younger(18, action="caution"),
         "fluoroquinolones in children: arthropathy and tendon injury; not a first choice",
         "Fluoroquinolone US labels, pediatric use; AAP Clinical Report, Pediatrics 2016;138:e20162706"),
    Rule("child_tetracycline", _set("tetracyclines"), _younger(8, action="caution"),
         "tetracyclines under 8 years can stain permanent teeth (short doxycycline courses of 21 days or less are "
         "acceptable at any age)",
         "Tetracycline-class US labels (tooth development to 8 years); AAP Red Book 2021 (doxycycline up to 21 "
         "days at any age)"),
    Rule("older_first_gen_antihistamine", _FIRST_GEN_AH, _older,
         "first-generation antihistamines (also in 'PM' products): strongly anticholinergic, confusion, falls, "
         "constipation, urinary retention", _BEERS + ": avoid first-generation antihistamines"),
    Rule("older_benzodiazepine", _set("benzodiazepines"), _older,
         "benzodiazepines: cognitive impairment, delirium, falls, fractures, motor vehicle crashes",
         _BEERS + ": avoid benzodiazepines"),
    Rule("older_z_drug", _set("zolpidem, eszopiclone, zaleplon"), _older,
         "Z-drugs: delirium, falls, fractures, emergency visits, with little gain in sleep",
         _BEERS + ": avoid nonbenzodiazepine receptor agonist hypnotics"),
    Rule("older_muscle_relaxant",
         _set("carisoprodol, chlorzoxazone, cyclobenzaprine, metaxalone, methocarbamol, orphenadrine"), _older,
         "skeletal muscle relaxants: anticholinergic effects, sedation, fractures; poorly tolerated",
         _BEERS + ": avoid skeletal muscle relaxants"),
    Rule("older_anticholinergic_antidepressant",
         _set("amitriptyline, amoxapine, clomipramine, desipramine, doxepin, imipramine, nortriptyline, paroxetine, "
              "protriptyline, trimipramine"), _older,
         "strongly anticholinergic antidepressants: sedation, orthostatic hypotension, confusion, constipation",
         _BEERS + ": avoid (doxepin up to 6 mg/day excepted)"),
    # --- kidneys and liver
    Rule("renal_metformin", _set("metformin"), _renal(30, 45),
         "metformin at eGFR below 30 mL/min/1.73 m2: lactic acidosis (contraindicated); starting it at 30-45 is "
         "not recommended",
         "FDA Drug Safety Communication, 8 Apr 2016, and metformin US labels: contraindicated at eGFR < 30; "
         "initiation not recommended at eGFR 30-45"),
    Rule("renal_nitrofurantoin", _set("nitrofurantoin"), _renal(30, 60),
         "nitrofurantoin with poor kidney function: little drug reaches the urine, more toxicity (neuropathy, "
         "lung and liver injury)",
         _BEERS_KIDNEY + ": avoid at CrCl < 30 mL/min; Macrobid US label: contraindicated at CrCl under "
         "60 mL/min"),
    Rule("renal_nsaid", _set("nsaids"), _nsaid_kidney,
         "NSAIDs worsen kidney function (avoid at GFR < 30; no prolonged use at GFR < 60; low-dose aspirin "
         "excepted)",
         "KDIGO 2012 CKD guideline (Kidney Int Suppl 2013;3:1-150), 4.4 cautionary notes: avoid NSAIDs at GFR "
         "< 30 mL/min/1.73 m2, prolonged therapy not recommended at GFR < 60; " + _BEERS_KIDNEY + ": avoid "
         "NSAIDs at CrCl < 30 mL/min"),
    Rule("liver_acetaminophen", _set("acetaminophen"), _apap_cirrhosis,
         "acetaminophen in cirrhosis: keep to 2 g a day or less (it stays the preferred analgesic)",
         "Lewis JH, Stine JG, Prescribing medications in patients with cirrhosis, Aliment Pharmacol Ther "
         "2013;37:1132-56 (acetaminophen up to 2 g/day)"),
    Rule("liver_nsaid", _set("nsaids"), _nsaid_cirrhosis,
         "NSAIDs in cirrhosis: renal failure, hyponatraemia, diuretic-resistant ascites, GI bleeding",
         "AASLD 2021 practice guidance on ascites, hyponatremia and hepatorenal syndrome (Biggins SW et al., "
         "Hepatology 2021;74:1014-48): avoid NSAIDs in cirrhosis with ascites"),
)  # fmt: skip


# Rules that do not apply to a drug even though its class does (checked on the item's own text).
def _low_dose_doxepin(drug: DrugMention, text: str) -> bool:
    """Doxepin at 6 mg a day or less (the hypnotic dose) is outside Beers' anticholinergic list."""
    return drug.ingredients == ("doxepin",) and (grams := daily_grams(text)) is not None and grams <= 0.006


_EXEMPT: dict[str, Callable[[DrugMention, str], bool]] = {
    "older_anticholinergic_antidepressant": _low_dose_doxepin,
    "pregnancy_nsaid": low_dose_aspirin,
    "renal_nsaid": low_dose_aspirin,
    "liver_nsaid": low_dose_aspirin,
}


def _hits(drug: DrugMention, names: frozenset[str]) -> bool:
    return bool(set(drug.ingredients) & names or drug.lineage & names)


def contraindications(
    state: PatientState, drugs: list[DrugMention], text: str, section: str, current: bool = False
) -> list[Finding]:
    """The rules a recommended item (its drugs and its whole text, for doses) meets; for a current medication
    (``current``) every finding is a caution, since the recommendation cannot remove it."""
    out, seen = [], set()
    for drug in drugs:
        for rule in RULES:
            if not _hits(drug, rule.drugs) or (rule.code in _EXEMPT and _EXEMPT[rule.code](drug, text)):
                continue
            found = rule.when(state, text)
            if found is None or (rule.code, drug.label) in seen:
                continue
            seen.add((rule.code, drug.label))
            where, action = found
            if current:
                action = "caution"
            out.append(
                Finding(rule.code, drug.text.strip(), where, action, rule.message, rule.source, section)
            )
    return out


_HONEY = re.compile(r"\bhoney\b", re.I)
_NOT_GIVEN = re.compile(
    r"\b(?:no|not|never|avoid\w*|without|don'?t|do not|should not|must not|nor)\b[^.;:]{0,40}$", re.I
)
HONEY_SOURCE = (
    "AAP (HealthyChildren.org) and CDC infant botulism guidance: no honey, raw or cooked, before 12 months"
)


def honey_for_infant(state: PatientState, text: str, section: str) -> Finding | None:
    """An item that gives honey to a child under one year (infant botulism); "no honey before 1 year" is advice
    against it and stays."""
    if state.age is None or state.age >= 1:
        return None
    for m in _HONEY.finditer(text):
        if not _NOT_GIVEN.search(text[: m.start()]):
            return Finding(
                "infant_honey", m.group(), _age(state), "removed",
                "honey under 12 months can cause infant botulism", HONEY_SOURCE, section,
            )  # fmt: skip
    return None
