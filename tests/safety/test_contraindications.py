"""Contraindications by the patient's state, and every example of issue 28's "Why" as a clinician expects it."""

import pytest

from medlora.clinical.doses import daily_grams
from medlora.common.schemas import Medication, PatientRecord, Sections
from medlora.safety.contraindications import RULES
from medlora.safety.rules import apply_safety


def check(recommend=(), text=(), **fields):
    fields.setdefault("symptoms", ["cough"])
    sections = Sections(
        medications=[Medication(name=m) if isinstance(m, str) else Medication(**m) for m in recommend],
        patient_education=list(text),
    )
    return apply_safety(PatientRecord(**fields), sections)


def found(out):
    return {(c.code, c.medication, c.action) for c in out.safety.contraindications}


PREGNANT_32 = {"sex": "female", "age": 29, "notes": "G2P1 at 32 wks, here for URI"}


@pytest.mark.parametrize(
    ("drug", "code"),
    [("lisinopril", "pregnancy_raas"), ("losartan", "pregnancy_raas"), ("Coumadin", "pregnancy_warfarin"),
     ("warfarin", "pregnancy_warfarin"), ("valproate", "pregnancy_valproate"),
     ("isotretinoin", "pregnancy_isotretinoin"), ("methotrexate", "pregnancy_methotrexate"),
     ("Depakote", "pregnancy_valproate"), ("doxycycline", "pregnancy_tetracycline"),
     ("ibuprofen", "pregnancy_nsaid"), ("Aleve", "pregnancy_nsaid")],
)  # fmt: skip
def test_teratogens_and_nsaids_at_32_weeks_are_removed(drug, code):
    out = check([drug], **PREGNANT_32)
    assert found(out) == {(code, drug, "removed")} and out.sections.medications == []
    c = out.safety.contraindications[0]
    assert c.state == "pregnant, 32 weeks" and c.source and c.message


@pytest.mark.parametrize(
    "drug", ["acetaminophen", "amoxicillin", "azithromycin", "labetalol", "nifedipine", "methyldopa", "insulin",
             "aspirin 81 mg", "cephalexin"],
)  # fmt: skip
def test_safe_counterparts_in_pregnancy_stay_silent(drug):
    out = check([drug], **PREGNANT_32)
    assert out.safety.contraindications == [] and [m.name for m in out.sections.medications] == [drug]


def test_statins_caution_and_weeks_decide_tetracyclines_and_nsaids():
    assert found(check(["atorvastatin"], **PREGNANT_32)) == {("pregnancy_statin", "atorvastatin", "caution")}
    early = {"sex": "female", "age": 30, "notes": "IUP at 8 wks"}
    assert found(check(["doxycycline"], **early)) == {("pregnancy_tetracycline", "doxycycline", "caution")}
    assert found(check(["ibuprofen"], **early)) == set()  # the FDA 2020 limit starts at 20 weeks
    assert found(check(["ibuprofen"], sex="female", age=30, notes="bHCG +")) == {
        ("pregnancy_nsaid", "ibuprofen", "caution")
    }
    assert found(check(["ibuprofen"], sex="female", age=30, notes="28/40")) == {
        ("pregnancy_nsaid", "ibuprofen", "removed")
    }
    valve = {"sex": "female", "age": 30, "notes": "24 weeks pregnant, mechanical mitral valve"}
    assert found(check(["warfarin"], **valve)) == {("pregnancy_warfarin", "warfarin", "caution")}


def test_negated_or_past_pregnancy_is_silent():
    for notes in ("not pregnant, bHCG neg", "hx of preeclampsia 2019", "G3P3, UPT negative today"):
        assert (
            check(["lisinopril", "ibuprofen"], sex="female", age=34, notes=notes).safety.contraindications
            == []
        )


def test_children():
    reye = check(["bismuth subsalicylate"], age=15, conditions=["influenza"], symptoms=["diarrhea"])
    assert found(reye) == {("reye_salicylate", "bismuth subsalicylate", "removed")}
    assert found(check(["Pepto-Bismol"], notes="16 yo with traveler's diarrhea")) == {
        ("reye_salicylate", "Pepto-Bismol", "caution")
    }
    assert found(check(["codeine"], notes="8 y/o s/p fracture")) == {
        ("child_codeine_tramadol", "codeine", "removed")
    }
    assert found(check(["Tylenol #3"], age=15, notes="post tonsillectomy day 2")) == {
        ("child_codeine_tramadol", "Tylenol #3", "removed")
    }
    assert found(check(["Phenergan"], notes="20 mo with vomiting")) == {
        ("child_promethazine", "Phenergan", "removed")
    }
    assert found(check(["Cipro"], age=10)) == {("child_fluoroquinolone", "Cipro", "caution")}


def test_honey_under_one_year_is_removed_from_any_section():
    out = check(["amoxicillin"], ["Give a teaspoon of honey for the cough", "No honey before 12 months"],
                notes="6-month-old with cough")  # fmt: skip
    assert found(out) == {("infant_honey", "honey", "removed")}
    assert out.sections.patient_education == ["No honey before 12 months"]
    assert check([], ["A teaspoon of honey at night"], age=3).safety.contraindications == []


def test_weight_based_paracetamol_and_ibuprofen_after_six_months_are_silent():
    for age in (0.7, 3, 9):
        assert check(["paracetamol 15 mg/kg", "ibuprofen 10 mg/kg"], age=age).safety.contraindications == []
    assert found(check(["ibuprofen 5 mg/kg"], age=0.25)) == {
        ("infant_ibuprofen", "ibuprofen 5 mg/kg", "caution")
    }


def test_beers_in_older_adults_including_pm_products():
    out = check(
        ["diphenhydramine", "lorazepam", "Tylenol PM", "zolpidem", "acetaminophen"], notes="84F, insomnia"
    )
    assert found(out) == {
        ("older_first_gen_antihistamine", "diphenhydramine", "caution"),
        ("older_benzodiazepine", "lorazepam", "caution"),
        ("older_first_gen_antihistamine", "Tylenol PM", "caution"),
        ("older_z_drug", "zolpidem", "caution"),
    }
    assert len(out.sections.medications) == 5  # cautions keep the item
    assert check(["diphenhydramine"], age=50).safety.contraindications == []


def test_kidneys():
    assert found(check(["metformin", "naproxen"], notes="CKD 4")) == {
        ("renal_metformin", "metformin", "removed"), ("renal_nsaid", "naproxen", "removed")
    }  # fmt: skip
    assert found(check(["nitrofurantoin"], notes="CrCl 20")) == {
        ("renal_nitrofurantoin", "nitrofurantoin", "removed")
    }
    assert found(check(["Macrobid"], notes="CrCl 45")) == {("renal_nitrofurantoin", "Macrobid", "caution")}
    assert found(check(["metformin"], notes="eGFR 38")) == {("renal_metformin", "metformin", "caution")}
    assert found(check(["aspirin 81 mg", "metformin"], notes="eGFR 75, no CKD")) == set()
    assert found(check(["aspirin 81 mg"], notes="ESRD on HD MWF")) == set()


def test_liver_acetaminophen_by_daily_dose():
    cirrhosis = {"notes": "cirrhosis, Child-Pugh B"}
    assert found(check(["acetaminophen 1 g q6h"], **cirrhosis)) == {
        ("liver_acetaminophen", "acetaminophen 1 g q6h", "caution")
    }
    low = {"name": "acetaminophen", "dosage": "500 mg", "frequency": "every 8 hours"}
    assert found(check([low], **cirrhosis)) == set()
    assert check(["acetaminophen 1 g q6h"], notes="no liver disease").safety.contraindications == []


@pytest.mark.parametrize(
    ("text", "grams"),
    [("1 g q6h", 4), ("650 mg TID", 1.95), ("500 mg every 8 hours", 1.5), ("max 2 g/day", 2), ("1000 mg bid", 2),
     ("325 mg q4-6h prn", 1.95), ("500 mg", None)],
)  # fmt: skip
def test_daily_grams(text, grams):
    assert daily_grams(text) == (pytest.approx(grams) if grams is not None else None)


def test_a_current_medication_is_a_caution_never_a_removal():
    out = check(["amoxicillin"], medications=["lisinopril 10 mg daily"], **PREGNANT_32)
    assert found(out) == {("pregnancy_raas", "lisinopril 10 mg daily", "caution")}
    assert out.safety.contraindications[0].section == "current_medications"


def test_ace_inhibitor_angioedema_is_an_emergency_and_the_ace_inhibitor_goes():
    out = check(
        ["lisinopril 20 mg"], age=61, symptoms=["lip and tongue swelling"], medications=["lisinopril"]
    )
    assert "acei_angioedema" in {f.code for f in out.safety.red_flags}
    assert ("angioedema_acei", "lisinopril 20 mg", "removed") in found(out) and out.sections.medications == []


def test_every_rule_has_a_source_and_a_unique_code():
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes)) and all(r.source and r.message and r.drugs for r in RULES)


def test_the_warfarin_record_gets_its_interactions():
    out = check(["TMP-SMX DS 1 tab bid", "naproxen 500 mg bid"], age=72, medications=["warfarin 5 mg daily"])
    assert {i.code for i in out.safety.interactions} == {"warfarin_tmp_smx", "warfarin_nsaid"}
    assert all(i.where == "recommended with current" for i in out.safety.interactions)


@pytest.mark.parametrize(
    ("drug", "code", "fields"),
    [("lisinoprl", "pregnancy_raas", PREGNANT_32), ("isotretinion", "pregnancy_isotretinoin", PREGNANT_32),
     ("Depakot", "pregnancy_valproate", PREGNANT_32), ("Coumadine", "pregnancy_warfarin", PREGNANT_32),
     ("ibuprophen", "pregnancy_nsaid", PREGNANT_32), ("Phenergen", "child_promethazine", {"age": 1.5}),
     ("codiene", "child_codeine_tramadol", {"age": 8}), ("metfromin", "renal_metformin", {"notes": "eGFR 22"}),
     ("nitrofurantion", "renal_nitrofurantoin", {"notes": "CrCl 20"})],
)  # fmt: skip
def test_misspelt_and_brand_names_are_caught(drug, code, fields):
    out = check([drug], **fields)
    assert found(out) == {(code, drug, "removed")}


def test_misspelt_beers_drugs_are_cautioned():
    assert found(check(["Benadril", "lorazapam"], age=84)) == {
        ("older_first_gen_antihistamine", "Benadril", "caution"), ("older_benzodiazepine", "lorazapam", "caution")
    }  # fmt: skip


def test_hypnotic_dose_doxepin_is_not_an_anticholinergic_antidepressant():
    assert found(check(["doxepin 3 mg qhs"], age=80)) == set()
    assert found(check(["doxepin 50 mg qhs"], age=80)) == {
        ("older_anticholinergic_antidepressant", "doxepin 50 mg qhs", "caution")
    }


@pytest.mark.parametrize(
    ("current", "recommend", "where"),
    [(["Xarelto 20mg", "ibuprofen"], [], "both current"), (["Eliquis 5 mg bd"], ["naproxen 500 mg bid"],
     "recommended with current"), (["dabigatran 150 mg bd"], ["Advil"], "recommended with current")],
)  # fmt: skip
def test_a_direct_oral_anticoagulant_with_an_nsaid_is_an_interaction(current, recommend, where):
    out = check(recommend, age=72, medications=current)
    assert [(i.code, i.where) for i in out.safety.interactions] == [("doac_nsaid", where)]
