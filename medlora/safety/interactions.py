"""Drug pairs that must never pass silently: each pair is data, with a stable code and the source it comes from.

- Dual renin-angiotensin blockade (an ACE inhibitor, an angiotensin receptor blocker, aliskiren: any two; an ACE
  inhibitor with sacubitril): KDIGO 2021 Clinical Practice Guideline for the Management of Blood Pressure in
  CKD (Kidney Int 2021;99(3S):S1-S87), Recommendation 3.3.1 ("avoiding any combination of ACEi, ARB, and DRI
  therapy", 1B; round three cited it as 3.4.2); ONTARGET, VA NEPHRON-D, ALTITUDE; the Tekturna and Entresto
  US labels.
- The published high-priority list: Phansalkar S, Desai AA, Bell D et al., J Am Med Inform Assoc
  2012;19(5):735-43, Table 2 (15 entries, numbered as in the paper: 3, 4, 6, 8, 11, 16, 20, 21, 22, 23, 25,
  27, 28, 30, 31; the same list is Table 4 of AJHP 2022;79(13):1086-95). ``Pair.number`` keeps the number and
  the members are those the paper names; for #21 (QT + QT) the members are the CredibleMeds "Known Risk of TdP"
  drugs the project can name.
- US-label contraindications and warnings that are not in the paper (bosentan-glyburide, cisapride,
  methotrexate-trimethoprim, pimozide, potassium with potassium-sparing diuretics, PDE5 inhibitors with
  nitrates, thioridazine, linezolid or methylene blue with serotonergic drugs), bleeding on warfarin (NSAIDs,
  aspirin, TMP-SMX, azoles, metronidazole) and on a direct oral anticoagulant (NSAIDs), lithium (NSAIDs,
  thiazides, ACEi/ARB), and a mineralocorticoid antagonist with an ACEi/ARB where potassium is high or kidney
  function low (``patient_state``): each cites its label.

``interactions(current, recommended, state)`` reports every pair among the current medications and the
recommended drugs, once per code and pair of drugs; a drug the patient already takes counts like a recommended
one. Nothing is removed: the prescriber decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..clinical.drugs import DrugMention
from .patient_state import PatientState

_KDIGO = (
    "KDIGO 2021 Clinical Practice Guideline for the Management of Blood Pressure in CKD (Kidney Int 2021;99(3S):"
    "S1-S87), Recommendation 3.3.1: avoid any combination of ACEi, ARB and direct renin inhibitor therapy in CKD, "
    "with or without diabetes (1B); ONTARGET NEJM 2008;358:1547; VA NEPHRON-D NEJM 2013;369:1892; ALTITUDE NEJM "
    "2012;367:2204"
)
_ALISKIREN = "; Tekturna (aliskiren) US label: contraindicated with an ACE inhibitor or ARB in diabetes"
_PHANSALKAR = (
    "Phansalkar S et al., High-priority drug-drug interactions for use in electronic health records, J Am Med "
    "Inform Assoc 2012;19(5):735-43, Table 2 #{n} (same list: AJHP 2022;79(13):1086-95, Table 4)"
)


def _p(n: int) -> str:
    return _PHANSALKAR.format(n=n)


def _set(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


# Members as the paper lists them (docs/safety.md); the issue of round four names them entry by entry.
_MAOI = _set("tranylcypromine, phenelzine, isocarboxazid, procarbazine, selegiline, selegiline patch")
_AMPHETAMINES = _set(
    "amphetamine, dextroamphetamine, lisdexamfetamine, methamphetamine, phendimetrazine, benzphetamine, "
    "diethylpropion, phentermine, atomoxetine, pseudoephedrine"
)
_SSRI_SNRI = _set(
    "ssris, snris, nefazodone, desvenlafaxine, milnacipran, levomilnacipran, vilazodone, vortioxetine"
)
_NARCOTICS = _set("meperidine, methadone, tapentadol, fentanyl, tramadol, dextromethorphan")
_TCAS = _set(
    "amitriptyline, amoxapine, clomipramine, desipramine, doxepin, imipramine, nortriptyline, protriptyline, "
    "trimipramine"
)
_PROTEASE_INHIBITORS = _set(
    "atazanavir, darunavir, fosamprenavir, indinavir, lopinavir, nelfinavir, ritonavir, saquinavir, tipranavir"
)
_AZOLES = _set("ketoconazole, itraconazole, voriconazole, posaconazole, fluconazole")
# #11, #25 and #27: "CYP3A4 inhibitors", strong and moderate, as the paper groups them.
_CYP3A4_INHIBITORS = (
    _PROTEASE_INHIBITORS
    | _AZOLES
    | _set("clarithromycin, erythromycin, telithromycin, amiodarone, verapamil, diltiazem, nefazodone, aprepitant, "
           "cimetidine, cobicistat")
)  # fmt: skip
_STRONG_3A4 = _PROTEASE_INHIBITORS | _set(
    "clarithromycin, telithromycin, ketoconazole, itraconazole, voriconazole, posaconazole, nefazodone, cobicistat"
)
_STRONG_3A4_INDUCERS = _set(
    "rifampin, rifampicin, rifabutin, rifapentine, carbamazepine, st. john's wort, bosentan, phenytoin, "
    "phenobarbital"
)
_CYP1A2_RAMELTEON = _set("fluvoxamine, amiodarone, ticlopidine, ciprofloxacin")
_CYP1A2_TIZANIDINE = _set(
    "fluvoxamine, ciprofloxacin, amiodarone, mexiletine, propafenone, zileuton, ticlopidine"
)
_ERGOTS = _set("ergotamine, dihydroergotamine, methylergonovine, ergonovine, methysergide")
# CredibleMeds "Known Risk of TdP" (crediblemeds.org QTdrugs list) members the project can name.
QT_KNOWN_RISK = _set(
    "amiodarone, anagrelide, arsenic trioxide, azithromycin, chloroquine, chlorpromazine, cilostazol, "
    "ciprofloxacin, citalopram, clarithromycin, disopyramide, dofetilide, domperidone, donepezil, dronedarone, "
    "droperidol, erythromycin, escitalopram, flecainide, fluconazole, haloperidol, hydroxychloroquine, "
    "ibutilide, levofloxacin, levomethadyl, methadone, moxifloxacin, ondansetron, oxaliplatin, papaverine, "
    "pentamidine, pimozide, procainamide, propofol, quinidine, sevoflurane, sotalol, sulpiride, terlipressin, "
    "thioridazine, vandetanib"
)
_QT_SOURCE = (
    _p(21)
    + "; members: CredibleMeds QTdrugs list, Known Risk of TdP (Woosley RL et al., www.crediblemeds.org)"
)
_NSAIDS = _set("nsaids")
_WARFARIN_LABEL = "Coumadin (warfarin) US label, 7 Drug Interactions"
_LITHIUM_LABEL = "Lithium US label (Lithobid), 7 Drug Interactions: raised serum lithium, toxicity"
_LITHIUM = _set("lithium, lithium carbonate, lithium citrate")
_THIAZIDES = _set(
    "hydrochlorothiazide, chlorthalidone, chlorothiazide, indapamide, metolazone, bendroflumethiazide"
)


@dataclass(frozen=True)
class Pair:
    code: str  # stable: what a log or a test keys on
    a: frozenset[str]  # ingredients or class names (drug_tables.CLASSES) on one side
    b: frozenset[str]
    message: str
    source: str
    number: int | None = None  # Phansalkar 2012 Table 2 entry, where the pair is one of the published 15
    when: Callable[[PatientState], str | None] | None = None  # a state the pair needs (potassium, kidneys)
    exclude: frozenset[str] = (
        frozenset()
    )  # ingredients a class side does not cover (aspirin has its own pair)


def _high_k_or_low_kidney(s: PatientState) -> str | None:
    """Aldactone label: start only at K <= 5.0 mEq/L; Inspra label: contraindicated at K > 5.5 or CrCl <= 30."""
    value = s.kidney_function
    if s.hyperkalaemia:
        return f"potassium {s.potassium:g}" if s.potassium is not None else "hyperkalaemia"
    if s.dialysis or (value is not None and value <= 30) or (value is None and s.severe_ckd):
        return "eGFR/CrCl 30 or less" if value is not None else f"CKD stage {s.ckd_stage}"
    return None


PAIRS: tuple[Pair, ...] = (
    # --- dual renin-angiotensin blockade (KDIGO 2021)
    Pair("dual_raas_acei_arb", _set("ace_inhibitors"), _set("arbs"),
         "ACE inhibitor with an angiotensin receptor blocker (dual renin-angiotensin blockade: hyperkalaemia, "
         "acute kidney injury, hypotension)", _KDIGO),
    Pair("dual_raas_acei_aliskiren", _set("ace_inhibitors"), _set("renin_inhibitors"),
         "ACE inhibitor with aliskiren (dual renin-angiotensin blockade)", _KDIGO + _ALISKIREN),
    Pair("dual_raas_arb_aliskiren", _set("arbs"), _set("renin_inhibitors"),
         "angiotensin receptor blocker with aliskiren (dual renin-angiotensin blockade)", _KDIGO + _ALISKIREN),
    Pair("acei_sacubitril", _set("ace_inhibitors"), _set("sacubitril"),
         "ACE inhibitor with sacubitril/valsartan (angioedema; contraindicated within 36 hours)",
         "Entresto (sacubitril/valsartan) US label, contraindications: with an ACE inhibitor or within 36 hours"),
    # --- Phansalkar 2012, the published 15 (Table 2 numbering)
    Pair("ddi_maoi_sympathomimetic", _AMPHETAMINES, _MAOI,
         "amphetamine derivative or pseudoephedrine with an MAO inhibitor (hypertensive crisis)", _p(3), 3),
    Pair("ddi_atazanavir_ppi", _set("atazanavir"), _set("proton_pump_inhibitors"),
         "atazanavir with a proton pump inhibitor (loss of antiretroviral effect)", _p(4), 4),
    Pair("ddi_febuxostat_thiopurine", _set("febuxostat"), _set("azathioprine, mercaptopurine"),
         "febuxostat with azathioprine or mercaptopurine (thiopurine toxicity, marrow suppression)", _p(6), 6),
    Pair("ddi_maoi_ssri_snri", _SSRI_SNRI, _MAOI,
         "SSRI or SNRI with an MAO inhibitor (serotonin syndrome)", _p(8), 8),
    Pair("ddi_irinotecan_cyp3a4", _set("irinotecan"), _CYP3A4_INHIBITORS,
         "irinotecan with a CYP3A4 inhibitor (SN-38 toxicity: neutropenia, diarrhoea)", _p(11), 11),
    Pair("ddi_maoi_narcotic", _NARCOTICS, _MAOI,
         "meperidine, methadone, tapentadol, fentanyl, tramadol or dextromethorphan with an MAO inhibitor "
         "(serotonin syndrome, opioid toxicity)", _p(16), 16),
    Pair("ddi_maoi_tca", _TCAS, _MAOI,
         "tricyclic antidepressant with an MAO inhibitor (serotonin syndrome, hypertensive crisis)", _p(20), 20),
    Pair("ddi_qt_qt", QT_KNOWN_RISK, QT_KNOWN_RISK,
         "two drugs with a known risk of QT prolongation and torsades de pointes", _QT_SOURCE, 21),
    Pair("ddi_ramelteon_cyp1a2", _set("ramelteon"), _CYP1A2_RAMELTEON,
         "ramelteon with a CYP1A2 inhibitor (ramelteon exposure rises many-fold)", _p(22), 22),
    Pair("ddi_cyp3a4_inducer_protease_inhibitor", _STRONG_3A4_INDUCERS, _PROTEASE_INHIBITORS,
         "strong CYP3A4 inducer with an HIV protease inhibitor (loss of antiviral effect, resistance)", _p(23), 23),
    Pair("ddi_statin_cyp3a4", _set("simvastatin, lovastatin"), _CYP3A4_INHIBITORS,
         "simvastatin or lovastatin with a CYP3A4 inhibitor (myopathy, rhabdomyolysis)", _p(25), 25),
    Pair("ddi_ergot_cyp3a4", _ERGOTS, _CYP3A4_INHIBITORS,
         "ergot alkaloid with a CYP3A4 inhibitor (ergotism, ischaemia)", _p(27), 27),
    Pair("ddi_tizanidine_cyp1a2", _set("tizanidine"), _CYP1A2_TIZANIDINE,
         "tizanidine with a CYP1A2 inhibitor (severe hypotension, sedation)", _p(28), 28),
    Pair("ddi_tranylcypromine_procarbazine", _set("tranylcypromine"), _set("procarbazine"),
         "tranylcypromine with procarbazine (two MAO inhibitors: hypertensive crisis)", _p(30), 30),
    Pair("ddi_maoi_triptan", _set("triptans"), _MAOI | _set("moclobemide, methylene blue"),
         "triptan with an MAO inhibitor (serotonin syndrome; raised triptan levels)", _p(31), 31),
    # --- US-label contraindications (not in the published 15)
    Pair("ddi_bosentan_glyburide", _set("bosentan"), _set("glyburide"),
         "bosentan with glyburide (liver injury)", "Tracleer (bosentan) US label, contraindications: glyburide"),
    Pair("ddi_cisapride_cyp3a4", _set("cisapride"), _STRONG_3A4 | _set("erythromycin, fluconazole"),
         "cisapride with a CYP3A4 inhibitor (QT prolongation, torsades)",
         "Propulsid (cisapride) US label, contraindications: CYP3A4 inhibitors"),
    Pair("ddi_methotrexate_trimethoprim", _set("methotrexate"), _set("trimethoprim"),
         "methotrexate with trimethoprim or TMP-SMX (marrow suppression, pancytopenia)",
         "Methotrexate US labels, drug interactions: trimethoprim/sulfamethoxazole increases marrow suppression; "
         "Bactrim US label"),
    Pair("ddi_pimozide", _set("pimozide"),
         _STRONG_3A4 | _set("erythromycin, sertraline, paroxetine, citalopram, escitalopram, fluoxetine"),
         "pimozide with a CYP3A4 inhibitor or an SSRI (QT prolongation)",
         "Orap (pimozide) US label, contraindications: CYP3A4 inhibitors, sertraline, paroxetine, citalopram, "
         "escitalopram"),
    Pair("ddi_potassium_sparing", _set("potassium chloride, potassium citrate, potassium bicarbonate, potassium"),
         _set("spironolactone, eplerenone, amiloride, triamterene, finerenone"),
         "potassium supplement with a potassium-sparing diuretic (hyperkalaemia)",
         "Potassium chloride US labels (K-Tab, Klor-Con), contraindications: potassium-sparing diuretics; "
         "Aldactone and Inspra US labels"),
    Pair("ddi_pde5_nitrate", _set("sildenafil, tadalafil, vardenafil, avanafil"),
         _set("nitroglycerin, isosorbide mononitrate, isosorbide dinitrate, amyl nitrite, nitroprusside, riociguat"),
         "PDE5 inhibitor with a nitrate (severe hypotension)",
         "Viagra, Cialis and Levitra US labels, contraindications: nitrates in any form"),
    Pair("ddi_thioridazine", _set("thioridazine"),
         _set("fluoxetine, paroxetine, fluvoxamine, propranolol, pindolol"),
         "thioridazine with a CYP2D6 inhibitor, fluvoxamine, propranolol or pindolol (QT prolongation)",
         "Thioridazine US label, boxed warning and contraindications"),
    Pair("ddi_linezolid_serotonergic", _set("linezolid, methylene blue"), _SSRI_SNRI | _TCAS | _NARCOTICS,
         "linezolid or methylene blue with a serotonergic drug (serotonin syndrome)",
         "FDA Drug Safety Communications, 26 Jul 2011 (methylene blue) and 20 Oct 2011 (linezolid)"),
    Pair("ddi_irinotecan_inducer", _set("irinotecan"), _STRONG_3A4_INDUCERS,
         "irinotecan with a strong CYP3A4 inducer (loss of effect)",
         "Camptosar (irinotecan) US label, drug interactions: strong CYP3A4 inducers"),
    # --- bleeding on warfarin
    Pair("warfarin_nsaid", _set("warfarin"), _NSAIDS,
         "warfarin with an NSAID (major bleeding, GI bleeding)",
         _WARFARIN_LABEL + ": NSAIDs increase bleeding risk", exclude=_set("aspirin")),
    Pair("warfarin_aspirin", _set("warfarin"), _set("aspirin"),
         "warfarin with aspirin (major bleeding; only where a cardiologist intends both)",
         _WARFARIN_LABEL + ": antiplatelet agents increase bleeding risk"),
    Pair("warfarin_tmp_smx", _set("warfarin"), _set("sulfamethoxazole"),
         "warfarin with TMP-SMX (CYP2C9 inhibition: INR rise, bleeding)",
         _WARFARIN_LABEL + " (CYP2C9 inhibitors); Bactrim US label: increased prothrombin time with warfarin"),
    Pair("warfarin_fluconazole", _set("warfarin"), _set("fluconazole, miconazole, voriconazole"),
         "warfarin with an azole antifungal (CYP2C9 inhibition: INR rise, bleeding)",
         _WARFARIN_LABEL + " (CYP2C9 inhibitors); Diflucan US label: increased prothrombin time"),
    Pair("warfarin_metronidazole", _set("warfarin"), _set("metronidazole, tinidazole"),
         "warfarin with metronidazole (INR rise, bleeding)",
         _WARFARIN_LABEL + "; Flagyl US label: potentiates the anticoagulant effect of warfarin"),
    # --- bleeding on a direct oral anticoagulant (the same NSAID risk as warfarin's; it was missing: issue 26's
    # clinician-style check, "Xarelto 20mg" with ibuprofen, came back with no interaction)
    Pair("doac_nsaid", _set("apixaban, rivaroxaban, dabigatran, edoxaban"), _NSAIDS,
         "a direct oral anticoagulant with an NSAID (major bleeding, GI bleeding)",
         "Eliquis, Xarelto, Pradaxa and Savaysa US labels, 7 Drug Interactions: NSAIDs increase bleeding risk",
         exclude=_set("aspirin")),
    # --- lithium
    Pair("lithium_nsaid", _LITHIUM, _NSAIDS, "lithium with an NSAID (lithium toxicity)", _LITHIUM_LABEL,
         exclude=_set("aspirin")),
    Pair("lithium_thiazide", _LITHIUM, _THIAZIDES, "lithium with a thiazide diuretic (lithium toxicity)",
         _LITHIUM_LABEL),
    Pair("lithium_raas", _LITHIUM, _set("ace_inhibitors, arbs"),
         "lithium with an ACE inhibitor or ARB (lithium toxicity)", _LITHIUM_LABEL),
    # --- potassium
    Pair("mra_raas_hyperkalaemia", _set("spironolactone, eplerenone, finerenone"), _set("ace_inhibitors, arbs"),
         "mineralocorticoid receptor antagonist with an ACE inhibitor or ARB at high potassium or low kidney "
         "function (life-threatening hyperkalaemia)",
         "Aldactone (spironolactone) US label 5.1: hyperkalaemia with impaired renal function or ACEi/ARB; start "
         "only at K <= 5.0 mEq/L; Inspra (eplerenone) US label: contraindicated at K > 5.5 mEq/L or CrCl <= 30 "
         "mL/min", when=_high_k_or_low_kidney),
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


def interactions(
    current: list[DrugMention], recommended: list[DrugMention], state: PatientState | None = None
) -> list[Finding]:
    """Every listed pair among current and recommended drugs, each code and pair of drugs once; a pair that needs
    a state (``Pair.when``) only with the patient's state at hand and in it."""
    tagged = [(d, "current") for d in current] + [(d, "recommended") for d in recommended]
    out, seen = [], set()
    for i, (x, wx) in enumerate(tagged):
        for y, wy in tagged[i + 1 :]:
            if set(x.ingredients) & set(y.ingredients) and x.ingredients == y.ingredients:
                continue  # the same product written twice
            for p in PAIRS:
                if not ((_hits(x, p.a) and _hits(y, p.b)) or (_hits(x, p.b) and _hits(y, p.a))):
                    continue
                if set(x.ingredients) & p.exclude or set(y.ingredients) & p.exclude:
                    continue
                why = None
                if p.when is not None and (state is None or (why := p.when(state)) is None):
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
                    where.get((wx, wy), "recommended with current"), p.message + (f" ({why})" if why else ""),
                    p.source,
                ))  # fmt: skip
    return out
