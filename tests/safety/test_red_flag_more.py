"""Emergencies written off the usual pattern (round four), with negation and history respected."""

import pytest

from medlora.common.schemas import PatientRecord
from medlora.safety.red_flags import red_flags


def codes(**fields) -> set[str]:
    fields.setdefault("symptoms", ["not feeling well"])
    return {f.code for f in red_flags(PatientRecord(**fields))}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"age": 34, "symptoms": ["thunderclap headache at the gym"]}, "thunderclap_headache"),
        ({"age": 40, "symptoms": ["sudden worst headache while lifting weights"]}, "thunderclap_headache"),
        ({"age": 52, "notes": "HA came on suddenly during intercourse, maximal at onset"}, "thunderclap_headache"),
        ({"age": 35, "notes": "wants to go to sleep and not wake up"}, "suicidal_ideation"),
        ({"age": 17, "notes": "mom says she gave away her things last week"}, "suicidal_ideation"),
        ({"age": 44, "notes": "has been stockpiling his pills"}, "suicidal_ideation"),
        ({"age": 29, "notes": "texted goodbye to her sister last night"}, "suicidal_ideation"),
        ({"age": 60, "symptoms": ["depression"], "notes": "has access to firearms at home"}, "suicidal_ideation"),
        ({"age": 61, "symptoms": ["lip swelling"], "medications": ["lisinopril 20 mg"]}, "acei_angioedema"),
        ({"age": 15, "sex": "male", "symptoms": ["L testicle pain, vomiting"]}, "testicular_torsion_signs"),
        ({"age": 27, "sex": "female", "symptoms": ["abd pain", "spotting"], "notes": "LMP 7 weeks ago"},
         "ectopic_pregnancy_signs"),
        ({"age": 27, "sex": "female", "symptoms": ["RLQ pain", "PV bleeding"], "notes": "+UPT"},
         "pregnancy_bleeding_or_pain"),
        ({"age": 58, "symptoms": ["fever 38.4"], "notes": "breast ca on chemo, C2D10"}, "neutropenic_sepsis"),
        ({"age": 45, "symptoms": ["urinary retention"], "notes": "saddle anesthesia"}, "cauda_equina_signs"),
        ({"age": 70, "symptoms": ["eye pain, halos around lights and vomiting"]}, "acute_angle_closure"),
        ({"age": 72, "symptoms": ["cold pale pulseless leg since 2h"]}, "acute_limb_ischaemia"),
        ({"age": 25, "sex": "male", "symptoms": ["erection lasting 5 hours"]}, "priapism"),
        ({"age": 66, "symptoms": ["back pain", "bilateral leg weakness"], "notes": "prostate ca with mets"},
         "spinal_cord_compression"),
        ({"age": 19, "conditions": ["sickle cell disease"], "symptoms": ["fever 38.8"]}, "sickle_cell_crisis"),
    ],
)  # fmt: skip
def test_off_pattern_emergencies(fields, code):
    assert code in codes(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"age": 60, "notes": "CP resolved 2 years ago"},
        {"age": 60, "notes": "CP since 2019, resolved 2 yrs ago"},
        {"age": 30, "notes": "hx of anaphylaxis to bee sting, none now"},
        {"age": 40, "notes": "Denies fever, chills, n.v.d. or chest pain."},
        {
            "age": 40,
            "symptoms": ["headache"],
            "notes": "chronic tension headaches, not the worst headache, gradual",
        },
        {"age": 40, "symptoms": ["headache"], "notes": "hx of thunderclap headache 2019, negative workup"},
        {
            "age": 35,
            "symptoms": ["depression"],
            "notes": "denies SI, no plan, no intent, denies access to firearms",
        },
        {"age": 35, "symptoms": ["insomnia"], "notes": "has access to firearms at home (hunter), mood good"},
        {"age": 35, "notes": "gave away old clothes to charity when moving house"},
        {"age": 61, "symptoms": ["ankle swelling"], "medications": ["lisinopril 20 mg"]},
        {"age": 15, "sex": "male", "symptoms": ["groin rash, itchy"]},
        {"age": 58, "symptoms": ["fatigue"], "notes": "breast ca, finished chemo 2019, afebrile"},
        {"age": 29, "sex": "female", "symptoms": ["period cramps"], "notes": "UPT negative"},
        {"age": 50, "notes": "said goodbye to her husband at the airport, then developed cough"},
        {"age": 50, "notes": "I can't go on like this with my back pain"},
        {
            "age": 88,
            "notes": "hospice pt, daughter has put his affairs in order; plans for end of life care discussed",
        },
        {"age": 80, "notes": "doesn't want to be a burden to her family, considering assisted living"},
        {"age": 45, "notes": "bought a gun for hunting season, mood good"},
        {"age": 70, "notes": "saves her pills in a weekly organizer"},
        {"age": 30, "notes": "worked out at the gym, sore muscles, mild headache after workout"},
        {"age": 30, "notes": "eye pain with contact lenses, no halos, no vomiting"},
        {"age": 25, "notes": "sickle cell trait, fever with UTI"},
        {"age": 60, "notes": "cold feet at night, good pulses"},
        {
            "age": 40,
            "symptoms": ["sinusitis"],
            "conditions": ["seizure disorder"],
            "notes": "seizure free x 5 yrs",
        },
    ],
)
def test_negative_controls_stay_quiet(fields):
    assert codes(**fields) == set()
