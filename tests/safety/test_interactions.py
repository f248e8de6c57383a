"""Pairs that must never pass silently: each reported once with its code and a citation."""

import pytest

from medlora.clinical.drugs import resolve
from medlora.safety.interactions import PAIRS, interactions


def test_every_pair_has_a_unique_code_and_a_source():
    codes = [p.code for p in PAIRS]
    assert len(codes) == len(set(codes))
    assert all(p.source and p.a and p.b for p in PAIRS)


def test_dual_blockade_and_high_priority_pairs():
    r = resolve
    found = interactions([r("lisinopril 10 mg")], [r("losartan"), r("aliskiren")])
    assert {f.code for f in found} == {
        "dual_raas_acei_arb",
        "dual_raas_acei_aliskiren",
        "dual_raas_arb_aliskiren",
    }
    assert found[0].medication == "losartan" and found[0].where == "recommended with current"
    assert [f.code for f in interactions([r("Entresto")], [r("enalapril")])] == [
        "dual_raas_acei_arb",
        "acei_sacubitril",
    ]
    assert [f.code for f in interactions([r("simvastatin")], [r("clarithromycin")])] == ["ddi_statin_cyp3a4"]


def test_unrelated_drugs_and_the_same_drug_twice_are_quiet():
    r = resolve
    assert interactions([r("lisinopril"), r("amlodipine"), r("metformin")], [r("atorvastatin")]) == []
    assert interactions([r("losartan")], [r("losartan 50 mg")]) == []


def test_the_published_fifteen_keep_the_papers_numbers_and_only_they_cite_it():
    numbered = {p.number for p in PAIRS if p.number is not None}
    assert numbered == {3, 4, 6, 8, 11, 16, 20, 21, 22, 23, 25, 27, 28, 30, 31}
    for p in PAIRS:
        assert ("Phansalkar" in p.source) == (p.number is not None), p.code
        if p.number is not None:
            assert f"#{p.number}" in p.source
    label_based = {"ddi_bosentan_glyburide", "ddi_cisapride_cyp3a4", "ddi_methotrexate_trimethoprim", "ddi_pimozide",
                   "ddi_potassium_sparing", "ddi_pde5_nitrate", "ddi_thioridazine"}  # fmt: skip
    assert all("label" in p.source for p in PAIRS if p.code in label_based)
    kdigo = next(p for p in PAIRS if p.code == "dual_raas_acei_arb").source
    assert "Recommendation 3.3.1" in kdigo and "3.4.2" not in kdigo


@pytest.mark.parametrize(
    ("current", "new", "code"),
    [("Nardil", "Adderall", "ddi_maoi_sympathomimetic"), ("phenelzine", "pseudoephedrine", "ddi_maoi_sympathomimetic"),
     ("omeprazole", "atazanavir", "ddi_atazanavir_ppi"), ("azathioprine", "Uloric", "ddi_febuxostat_thiopurine"),
     ("selegiline", "sertraline", "ddi_maoi_ssri_snri"), ("irinotecan", "diltiazem", "ddi_irinotecan_cyp3a4"),
     ("Parnate", "tramadol", "ddi_maoi_narcotic"), ("isocarboxazid", "nortriptyline", "ddi_maoi_tca"),
     ("methadone 80 mg", "Zofran", "ddi_qt_qt"), ("Cipro", "Rozerem", "ddi_ramelteon_cyp1a2"),
     ("darunavir", "rifampin", "ddi_cyp3a4_inducer_protease_inhibitor"), ("simvastatin", "verapamil", "ddi_statin_cyp3a4"),
     ("Cafergot", "clarithromycin", "ddi_ergot_cyp3a4"), ("mexiletine", "Zanaflex", "ddi_tizanidine_cyp1a2"),
     ("tranylcypromine", "procarbazine", "ddi_tranylcypromine_procarbazine"), ("moclobemide", "sumatriptan", "ddi_maoi_triptan"),
     ("warfarin", "fluconazole", "warfarin_fluconazole"), ("Jantoven", "Flagyl", "warfarin_metronidazole"),
     ("warfarin", "aspirin 81 mg", "warfarin_aspirin"), ("lithium", "ibuprofen", "lithium_nsaid"),
     ("Lithobid", "HCTZ", "lithium_thiazide"), ("lithium", "lisinopril", "lithium_raas"),
     ("methotrexate", "Bactrim", "ddi_methotrexate_trimethoprim")],
)  # fmt: skip
def test_each_entry_fires_on_a_current_drug(current, new, code):
    assert code in {f.code for f in interactions([resolve(current)], [resolve(new)])}


def test_spironolactone_with_an_acei_needs_high_potassium_or_low_kidney_function():
    from medlora.common.schemas import PatientRecord
    from medlora.safety.patient_state import patient_state

    def on(notes):
        st = patient_state(PatientRecord(symptoms=["edema"], notes=notes))
        return {f.code for f in interactions([resolve("lisinopril")], [resolve("spironolactone")], st)}

    assert on("K 5.6") == {"mra_raas_hyperkalaemia"} and on("eGFR 25") == {"mra_raas_hyperkalaemia"}
    assert on("K 4.2, eGFR 75") == set() and on("HD MWF") == {"mra_raas_hyperkalaemia"}


def test_common_safe_pairs_stay_quiet():
    r = resolve
    for a, b in [("warfarin", "amoxicillin"), ("warfarin", "acetaminophen"), ("azithromycin", "atorvastatin"),
                 ("azithromycin", "Phenergan"), ("lithium", "amlodipine"), ("sertraline", "trazodone")]:  # fmt: skip
        assert interactions([r(a)], [r(b)]) == [], (a, b)
