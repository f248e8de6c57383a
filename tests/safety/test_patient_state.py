"""The patient's state read once from every field, in clinicians' shorthand, with negation and history."""

import pytest

from medlora.common.schemas import PatientRecord
from medlora.safety.patient_state import patient_state


def state(notes: str = "", **fields):
    fields.setdefault("symptoms", ["cough"])
    return patient_state(PatientRecord(notes=notes, **fields))


@pytest.mark.parametrize(
    ("notes", "weeks", "trimester"),
    [
        ("G2P1 at 30 wks", 30, 3),
        ("28/40, BP 130/80", 28, 3),
        ("30+2/40 primip", 30, 3),
        ("pregnant 32 weeks", 32, 3),
        ("She is 24 weeks pregnant", 24, 2),
        ("IUP at 8 wks on US", 8, 1),
        ("EGA 20w3d", 20, 2),
        ("+UPT, 6 wks by LMP", 6, 1),
        ("G1P0 @ 36w", 36, 3),
        ("third trimester", None, 3),
        ("bHCG +", None, None),
        ("IUP seen on bedside US", None, None),
        ("G3P2", None, None),
    ],
)
def test_pregnancy_and_gestation_in_shorthand(notes, weeks, trimester):
    s = state(notes, sex="female", age=29)
    assert s.pregnant and s.weeks == weeks and s.trimester == trimester


@pytest.mark.parametrize(
    "notes",
    [
        "not pregnant", "bHCG neg", "UPT negative", "UPT (-)", "denies pregnancy", "Denies being pregnant",
        "Pregnant: no", "hx of preeclampsia 2019", "prior pregnancy with GDM", "G3P3, s/p C-section 2014",
        "G2P1011", "G2P1 (1 SAB)", "pregnancy test ordered", "trying to get pregnant", "on prenatal vitamins",
        "expecting improvement in a week", "follow up at 6 weeks", "VA 20/40 OU", "pregnancy category X",
    ],
)  # fmt: skip
def test_not_pregnant(notes):
    s = state(notes, sex="female", age=29)
    assert not s.pregnant and s.weeks is None


def test_pregnancy_field_text_only_adds_and_men_are_not_pregnant():
    assert state(sex="female", age=30, pregnant=True).pregnant
    assert state("32 weeks pregnant", sex="female", pregnant=False).pregnant  # text can only add
    assert not state("32 weeks pregnant", sex="male").pregnant


@pytest.mark.parametrize(
    "notes",
    ["possibly pregnant", "LMP 7 weeks ago", "missed period", "r/o pregnancy", "pregnancy test pending"],
)
def test_a_possible_pregnancy(notes):
    s = state(notes, sex="female", age=25)
    assert s.possibly_pregnant and not s.pregnant


@pytest.mark.parametrize(
    ("notes", "age", "band"),
    [
        ("8 y/o boy with sore throat", 8, "child"),
        ("20 mo with vomiting", 20 / 12, "child"),
        ("20 mo old with fever", 20 / 12, "child"),
        ("6-month-old with cough", 0.5, "infant"),
        ("84F with UTI", 84, "older adult"),
        ("T 101F, 45 yo M", 45, "adult"),
        ("84 yo F, lives with her 8 y/o grandson", 84, "older adult"),
        ("15yo F with flu", 15, "adolescent"),
    ],
)
def test_age_from_text(notes, age, band):
    s = state(notes)
    assert s.age == pytest.approx(age) and s.age_band == band


def test_the_age_field_wins_and_a_duration_is_not_an_age():
    assert state("8 y/o", age=40).age == 40
    assert state("cough for 20 mo, fever to 102 F").age is None
    assert state("breastfeeding her 4 mo old", sex="female").age is None


def test_breastfeeding_is_the_mothers_not_the_infants():
    assert state("breastfeeding her 4 mo old", sex="female", age=31).breastfeeding
    assert not state("exclusively breastfeeding, feeds well", age=0.2).breastfeeding
    assert not state("not breastfeeding", sex="female", age=31).breastfeeding


@pytest.mark.parametrize(
    ("notes", "egfr", "crcl", "stage", "dialysis"),
    [
        ("eGFR 22", 22, None, 4, False),
        ("CrCl 20 mL/min", None, 20, 4, False),
        ("CKD 4", None, None, 4, False),
        ("CKD stage IIIb, eGFR 38", 38, None, 3, False),
        ("CKD3a", None, None, 3, False),
        ("Creatinine clearance 45 mL/min", None, 45, 3, False),
        ("ESRD on HD MWF", None, None, 5, True),
        ("on PD, ESKD", None, None, 5, True),
    ],
)
def test_kidney_function(notes, egfr, crcl, stage, dialysis):
    s = state(notes)
    assert (s.egfr, s.crcl, s.ckd_stage, s.dialysis) == (egfr, crcl, stage, dialysis)


@pytest.mark.parametrize(
    "notes", ["no CKD", "eGFR >60", "diagnosed with CKD 5 years ago? no: normal renal fx"]
)
def test_kidneys_fine(notes):
    s = state(notes)
    assert not s.severe_ckd and s.kidney_function is None


def test_liver_potassium_and_viral_illness():
    s = state("NASH cirrhosis, Child-Pugh B; K 5.8; flu x2d")
    assert s.cirrhosis and s.child_pugh == "B" and s.potassium == 5.8 and s.hyperkalaemia and s.viral_illness
    quiet = state("no cirrhosis; gave the child a dose of Tylenol; apply a cold compress; flu shot given")
    assert not quiet.cirrhosis and quiet.child_pugh is None and not quiet.viral_illness


@pytest.mark.parametrize(
    ("notes", "what"),
    [("PMH: HTN, DM2, CKD 4, cirrhosis", "ckd4 cirrhosis"), ("h/o ESRD on HD", "dialysis"),
     ("PMH significant for cirrhosis (Child-Pugh B)", "cirrhosis"), ("PPD#2 s/p SVD, breastfeeding.", "breastfeeding"),
     ("s/p cerclage, 24 weeks pregnant", "pregnant"), ("status post IVF transfer, IUP at 7 wks", "pregnant")],
)  # fmt: skip
def test_a_chronic_state_written_as_history_is_still_the_state(notes, what):
    s = state(notes, sex="female", age=36)
    expected = {
        "ckd4 cirrhosis": s.ckd_stage == 4 and s.cirrhosis,
        "dialysis": s.dialysis and s.severe_ckd,
        "cirrhosis": s.cirrhosis and s.child_pugh == "B",
        "breastfeeding": s.breastfeeding,
        "pregnant": s.pregnant,
    }
    assert expected[what]
    assert not state("PMH: GDM, preeclampsia", sex="female", age=36).pregnant
