"""Pairs that must never pass silently: each reported once with its code and a citation."""

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
