"""Red-flag building blocks: no concept matches empty text, age bands, vitals read from text."""

import pytest

from medlora.safety.red_flags import AGE_BANDS, C, age_band, text_vitals


def test_no_concept_pattern_matches_ordinary_text():
    for name, pattern in C.items():
        assert not pattern.search(""), name
        assert not pattern.search("the patient came in for a routine visit today"), name


@pytest.mark.parametrize(
    ("age", "band"),
    [(0.01, "neonate"), (0.5, "infant"), (2, "toddler"), (4, "preschool"), (9, "school age"), (15, "adolescent"),
     (40, "adult"), (None, "adult")],
)  # fmt: skip
def test_age_bands(age, band):
    assert age_band(age)[0] == band


def test_bands_are_ordered_and_the_limits_narrow_with_age():
    uppers = [b[1] for b in AGE_BANDS]
    assert uppers == sorted(uppers)
    assert AGE_BANDS[1][3] > AGE_BANDS[-1][3] and AGE_BANDS[1][5] > AGE_BANDS[-1][5]


def test_vitals_written_in_text():
    found = text_vitals("SpO2 85% on room air, BP 190/120, HR 130, RR 28, temp 103 F")
    got = {k: v for r in found for k, v in vars(r).items() if v is not None}
    assert got == {"spo2": 85, "systolic_bp": 190, "diastolic_bp": 120, "heart_rate": 130,
                   "respiratory_rate": 28, "temperature_c": 39.4}  # fmt: skip
    assert text_vitals("on O2 2L, type 2 diabetes, 3 days of cough") == []


def test_every_concept_names_its_source():
    from medlora.safety.red_flag_concepts import SOURCES

    assert set(SOURCES) == set(C) and all(SOURCES.values())


@pytest.mark.parametrize(
    ("name", "text"),
    [("chest_pain", "substernal pressure radiating to the jaw"), ("back_pain", "LBP x2d"),
     ("cauda_equina", "perianal numbness"), ("postpartum_recent", "PPD #6 s/p SVD"),
     ("overdose", "took ~40 tabs"), ("overdose", "intentional OD on APAP")],
)  # fmt: skip
def test_shorthand_reaches_its_concept(name, text):
    assert C[name].search(text)


@pytest.mark.parametrize(
    ("name", "text"),
    [("overdose", "amlodipine 5 mg OD"), ("overdose", "took 2 tablets"), ("overdose", "took 20 mg tablets"),
     ("postpartum_recent", "PPD 10 mm induration"), ("cauda_equina", "fluid retention")],
)  # fmt: skip
def test_shorthand_that_means_something_else(name, text):
    assert not C[name].search(text)
