"""Drug normalisation: brand, abbreviation, combination product, misspelling -> ingredients and classes."""

import pytest

from medlora.clinical import drugs


@pytest.mark.parametrize(
    ("written", "ingredients"),
    [
        ("Zestril 10 mg daily", ("lisinopril",)),
        ("Celebrex", ("celecoxib",)),
        ("Toradol", ("ketorolac",)),
        ("Cipro", ("ciprofloxacin",)),
        ("Z-Pak", ("azithromycin",)),
        ("PCN", ("penicillin",)),
        ("ASA 81 mg", ("aspirin",)),
        ("TMP-SMX DS", ("trimethoprim", "sulfamethoxazole")),
        ("Bactrim", ("trimethoprim", "sulfamethoxazole")),
        ("Zosyn", ("piperacillin", "tazobactam")),
        ("Augmentin 875", ("amoxicillin", "clavulanate")),
        ("Percocet 5/325", ("oxycodone", "acetaminophen")),
        ("Tylenol #3", ("acetaminophen", "codeine")),
        ("paracetamol", ("acetaminophen",)),
        ("amoxicilin", ("amoxicillin",)),
        ("ibuprophen", ("ibuprofen",)),
    ],
)
def test_resolve_to_ingredients(written, ingredients):
    assert drugs.resolve(written).ingredients == ingredients


@pytest.mark.parametrize(
    ("written", "cls"),
    [
        ("nonsteroidal anti-inflammatory drugs", "nsaids"),
        ("NSAIDs", "nsaids"),
        ("sulfa drugs", "sulfonamide_antibiotics"),
        ("beta-lactams", "beta_lactams"),
        ("statins", "statins"),
        ("ACE inhibitors", "ace_inhibitors"),
    ],
)
def test_class_names_resolve_to_the_class(written, cls):
    found = drugs.resolve(written)
    assert found.is_class and cls in found.classes


@pytest.mark.parametrize(
    "text", ["latex", "peanuts", "swelling", "thymic carcinoma", "reduce inflammation", "April"]
)
def test_non_drugs_do_not_resolve(text):
    assert drugs.resolve(text) is None


def test_is_drug_name_wants_the_whole_text_to_be_a_drug():
    assert drugs.is_drug_name("naproxen") and drugs.is_drug_name("Zestril 10 mg daily")
    assert drugs.is_drug_name("corticosteroids") and drugs.is_drug_name("NSAIDs")
    assert not drugs.is_drug_name("naproxen may be used") and not drugs.is_drug_name(
        "and anti-arrhythmic drugs"
    )


def test_find_drugs_in_free_text_keeps_positions():
    text = "Start IV vancomycin now; give Tylenol with codeine, avoid NSAIDs."
    found = drugs.find_drugs(text)
    assert [text[m.start : m.end] for m in found] == ["vancomycin", "Tylenol with codeine", "NSAIDs"]


def test_allergy_rules_and_cross_reactivity_run_both_ways():
    r = drugs.resolve
    assert drugs.allergy_match(r("amoxicillin"), r("PCN")).rule == "same_class"
    assert drugs.allergy_match(r("cefdinir"), r("penicillin")).action == "caution"
    assert drugs.allergy_match(r("amoxicillin"), r("cephalosporins")).action == "caution"
    assert drugs.allergy_match(r("furosemide"), r("sulfa")) is None
    assert drugs.allergy_match(r("nitrofurantoin"), r("trimethoprim")) is None  # not every antibiotic
    assert drugs.allergy_match(r("nitrofurantoin"), r("antibiotics")).rule == "same_class"


def test_same_therapy():
    assert drugs.same_therapy("Tylenol", "acetaminophen 500 mg") == "same drug (acetaminophen)"
    assert drugs.same_therapy("Lipitor", "simvastatin") == "same class (statins)"
    assert drugs.same_therapy("Flonase", "prednisone") is None
    assert drugs.same_therapy("metformin", "lisinopril") is None


def test_dictionary_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLORA_CACHE", str(tmp_path))
    drugs.dictionary.cache_clear()
    try:
        first = drugs.dictionary()
        assert list(tmp_path.glob("drug_dictionary-*.json"))
        drugs.dictionary.cache_clear()
        assert drugs.dictionary() == first and first["zestril"] == ["lisinopril"]
    finally:
        drugs.dictionary.cache_clear()


def test_table_names_are_clean_and_no_everyday_word_is_a_drug():
    from medlora.clinical.drug_tables import CLASSES

    for name, c in CLASSES.items():
        for n in (*c.members, *c.aliases):
            assert n and n == n.strip().lower() and "," not in n, (name, n)
    text = "The patient takes several medications and other agents; an anti drug blocker for the heart."
    assert drugs.find_drugs(text) == []


@pytest.mark.parametrize(
    ("written", "ingredient"),
    [("Alleve", "naproxen"), ("Motrine", "ibuprofen"), ("codiene", "codeine"), ("Keflx", "cephalexin"),
     ("SMZ-TMP", "sulfamethoxazole"), ("TMP/SMZ", "trimethoprim"), ("zoccor", "simvastatin"), ("Tekturna", "aliskiren")],
)  # fmt: skip
def test_misspellings_and_abbreviation_variants(written, ingredient):
    assert ingredient in drugs.resolve(written).ingredients


def test_misspelling_distance_grows_with_length():
    assert [drugs.max_edits(n) for n in (3, 4, 5, 8, 9, 14)] == [0, 0, 1, 1, 2, 2]
    assert drugs.fuzzy_name("asa") is None and drugs.fuzzy_name("advi") is None  # short: exact only


# Words of an English word list that are themselves drug or drug-class words ("benzo", "biologic") or archaic
# spellings of them; everything else in the list must not be read as a drug.
_DRUGLIKE_WORDS = """
    aveloz bactris benzo biologic coneine coumalin narcotia nexum ophioid optate percoct preacid prevalid
    protonic quinin reladen silpha sulpho tetracid vadium vallum zokor
"""
DRUGLIKE = set(_DRUGLIKE_WORDS.split())


def test_no_everyday_word_is_read_as_a_misspelt_drug():
    english = pytest.importorskip(
        "english_words", reason="english-words (requirements-dev.txt) not installed"
    )
    words = sorted(english.get_english_words_set(["web2"], lower=True, alpha=True))
    short = [w for w in words if 5 <= len(w) <= 8]  # one edit allowed: where collisions would be
    caught = {
        w for w in short if drugs.fuzzy_name(w) and drugs.resolve(w) is not None and not drugs.find_drugs(w)
    }
    assert len(short) > 50_000 and caught <= DRUGLIKE, sorted(caught - DRUGLIKE)[:20]
    for w in ("action", "relief", "trial", "urine", "station", "parent", "panel", "print", "alive", "ultra"):
        assert drugs.resolve(w) is None, w
