"""Drug pairs that must never pass silently: each pair is data, with a stable code and its citation.

- Dual renin-angiotensin blockade (an ACE inhibitor, an angiotensin receptor blocker, aliskiren: any two; an ACE
  inhibitor with sacubitril): KDIGO 2021 Clinical Practice Guideline for the Management of Blood Pressure in
  CKD (Kidney Int 2021;99(3S):S1-S87), recommendation 3.4.2 and practice point; ONTARGET (Yusuf S et al., N Engl
  J Med 2008;358:1547-59), VA NEPHRON-D (Fried LF et al., N Engl J Med 2013;369:1892-903), ALTITUDE (Parving HH
  et al., N Engl J Med 2012;367:2204-13); Entresto US label (contraindicated with an ACE inhibitor, 36 hours).
- The high-priority drug-drug interactions for electronic health records: Phansalkar S, Desai AA, Bell D et al.,
  J Am Med Inform Assoc 2012;19(5):735-43 (15 pairs that warrant an interruptive alert in every EHR). Where the
  paper names a group ("strong CYP3A4 inhibitors", "QT-prolonging agents") the members listed here are those the
  products' US labels name; docs/safety.md lists what is left out.

``interactions(current, recommended)`` reports every pair among the current medications and the recommended
drugs, once per code and pair of drugs. Nothing is removed: the prescriber decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clinical.drugs import DrugMention

_KDIGO = (
    "KDIGO 2021 blood pressure in CKD guideline, rec. 3.4.2 (avoid combining ACEi, ARB and direct renin "
    "inhibitor); ONTARGET NEJM 2008;358:1547; VA NEPHRON-D NEJM 2013;369:1892; ALTITUDE NEJM 2012;367:2204"
)
_PHANSALKAR = (
    "Phansalkar S et al., High-priority drug-drug interactions for use in EHRs, JAMIA 2012;19:735-43"
)
_STRONG_3A4_NAMES = "clarithromycin telithromycin ketoconazole itraconazole voriconazole posaconazole ritonavir nelfinavir indinavir saquinavir lopinavir nefazodone"
_STRONG_3A4 = frozenset(_STRONG_3A4_NAMES.split())
_MAOI = frozenset(
    {
        "phenelzine",
        "tranylcypromine",
        "isocarboxazid",
        "selegiline",
        "rasagiline",
        "linezolid",
        "methylene blue",
    }
)


@dataclass(frozen=True)
class Pair:
    code: str  # stable: what a log or a test keys on
    a: frozenset[str]  # ingredients or class names (drug_tables.CLASSES) on one side
    b: frozenset[str]
    message: str
    source: str


def _set(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


PAIRS: tuple[Pair, ...] = (
    Pair("dual_raas_acei_arb", _set("ace_inhibitors"), _set("arbs"),
         "ACE inhibitor with an angiotensin receptor blocker (dual renin-angiotensin blockade: hyperkalaemia, "
         "acute kidney injury, hypotension)", _KDIGO),
    Pair("dual_raas_acei_aliskiren", _set("ace_inhibitors"), _set("renin_inhibitors"),
         "ACE inhibitor with aliskiren (dual renin-angiotensin blockade)", _KDIGO),
    Pair("dual_raas_arb_aliskiren", _set("arbs"), _set("renin_inhibitors"),
         "angiotensin receptor blocker with aliskiren (dual renin-angiotensin blockade)", _KDIGO),
    Pair("acei_sacubitril", _set("ace_inhibitors"), _set("sacubitril"),
         "ACE inhibitor with sacubitril/valsartan (angioedema; contraindicated within 36 hours)",
         "Entresto (sacubitril/valsartan) US prescribing information, contraindications; " + _KDIGO),
    Pair("ddi_atazanavir_ppi", _set("atazanavir"), _set("proton_pump_inhibitors"),
         "atazanavir with a proton pump inhibitor (loss of antiretroviral effect)", _PHANSALKAR),
    Pair("ddi_bosentan_glyburide", _set("bosentan"), _set("glyburide"),
         "bosentan with glyburide (liver injury)", _PHANSALKAR),
    Pair("ddi_cisapride_cyp3a4", _set("cisapride"), _STRONG_3A4,
         "cisapride with a strong CYP3A4 inhibitor (QT prolongation, torsades)", _PHANSALKAR),
    Pair("ddi_ergot_cyp3a4", _set("ergotamine, dihydroergotamine, methylergonovine, ergonovine, methysergide"),
         _STRONG_3A4, "ergot alkaloid with a strong CYP3A4 inhibitor (ergotism, ischaemia)", _PHANSALKAR),
    Pair("ddi_irinotecan_cyp3a4", _set("irinotecan"),
         _STRONG_3A4 | _set("rifampin, rifampicin, carbamazepine, phenytoin, phenobarbital, st. john's wort"),
         "irinotecan with a strong CYP3A4 inhibitor or inducer (toxicity or loss of effect)", _PHANSALKAR),
    Pair("ddi_statin_cyp3a4", _set("lovastatin, simvastatin"), _STRONG_3A4,
         "lovastatin or simvastatin with a strong CYP3A4 inhibitor (rhabdomyolysis)", _PHANSALKAR),
    Pair("ddi_maoi_serotonergic", _MAOI,
         _set("ssris, venlafaxine, desvenlafaxine, duloxetine, milnacipran, tramadol, meperidine, methadone, "
              "dextromethorphan, fentanyl, tapentadol, clomipramine, imipramine, amitriptyline, nortriptyline, "
              "buspirone, st. john's wort, sumatriptan, rizatriptan, zolmitriptan, mirtazapine, trazodone"),
         "MAO inhibitor with a serotonergic drug (serotonin syndrome)", _PHANSALKAR),
    Pair("ddi_maoi_sympathomimetic", _MAOI,
         _set("pseudoephedrine, phenylephrine, ephedrine, amphetamine, dextroamphetamine, lisdexamfetamine, "
              "methylphenidate, dexmethylphenidate, phentermine"),
         "MAO inhibitor with a sympathomimetic (hypertensive crisis)", _PHANSALKAR),
    Pair("ddi_methotrexate_trimethoprim", _set("methotrexate"), _set("trimethoprim"),
         "methotrexate with trimethoprim (marrow suppression)", _PHANSALKAR),
    Pair("ddi_pimozide", _set("pimozide"),
         _STRONG_3A4 | _set("sertraline, citalopram, escitalopram, paroxetine, fluoxetine, erythromycin"),
         "pimozide with a CYP3A4 or CYP2D6 inhibitor or an SSRI (QT prolongation)", _PHANSALKAR),
    Pair("ddi_potassium_sparing", _set("potassium chloride, potassium citrate, potassium bicarbonate, potassium"),
         _set("spironolactone, eplerenone, amiloride, triamterene, finerenone"),
         "potassium supplement with a potassium-sparing diuretic (hyperkalaemia)", _PHANSALKAR),
    Pair("ddi_pde5_nitrate", _set("sildenafil, tadalafil, vardenafil, avanafil"),
         _set("nitroglycerin, isosorbide mononitrate, isosorbide dinitrate, amyl nitrite, nitroprusside"),
         "PDE5 inhibitor with a nitrate (severe hypotension)", _PHANSALKAR),
    Pair("ddi_ramelteon_fluvoxamine", _set("ramelteon"), _set("fluvoxamine"),
         "ramelteon with fluvoxamine (ramelteon levels rise many-fold)", _PHANSALKAR),
    Pair("ddi_thioridazine", _set("thioridazine"),
         _set("fluoxetine, paroxetine, fluvoxamine, propranolol, pindolol"),
         "thioridazine with a CYP2D6 inhibitor (QT prolongation)", _PHANSALKAR),
    Pair("ddi_tizanidine_cyp1a2", _set("tizanidine"), _set("ciprofloxacin, fluvoxamine"),
         "tizanidine with ciprofloxacin or fluvoxamine (severe hypotension, sedation)", _PHANSALKAR),
)  # fmt: skip


def _hits(drug: DrugMention, side: frozenset[str]) -> bool:
    return bool(set(drug.ingredients) & side or drug.lineage & side)


@dataclass(frozen=True)
class Finding:
    code: str
    medication: str  # as written
    other: str  # as written
    where: str  # "recommended with current" | "both recommended" | "both current"
    message: str
    source: str


def interactions(current: list[DrugMention], recommended: list[DrugMention]) -> list[Finding]:
    """Every listed pair among current and recommended drugs, each code and pair of drugs once."""
    tagged = [(d, "current") for d in current] + [(d, "recommended") for d in recommended]
    out, seen = [], set()
    for i, (x, wx) in enumerate(tagged):
        for y, wy in tagged[i + 1 :]:
            if set(x.ingredients) & set(y.ingredients) and x.ingredients == y.ingredients:
                continue  # the same product written twice
            for p in PAIRS:
                if not ((_hits(x, p.a) and _hits(y, p.b)) or (_hits(x, p.b) and _hits(y, p.a))):
                    continue
                key = (p.code, frozenset({x.label, y.label}))
                if key in seen:
                    continue
                seen.add(key)
                # The recommended drug first: it is the one a prescriber can still change.
                med, other = (y, x) if wy == "recommended" and wx == "current" else (x, y)
                where = {
                    ("current", "current"): "both current",
                    ("recommended", "recommended"): "both recommended",
                }
                out.append(Finding(
                    p.code, med.text.strip(), other.text.strip(),
                    where.get((wx, wy), "recommended with current"), p.message, p.source,
                ))  # fmt: skip
    return out
