"""``inference.py --patient P --check R``: the rules over a given recommendation, no model, exit 2 on bad R."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference import InferenceConfig, main
from medlora.common.cli import UsageError

ROOT = Path(__file__).resolve().parents[2]
PATIENT = {"age": 34, "symptoms": ["sore throat", "fever"], "allergies": ["PCN"], "medications": ["Tylenol"]}
SECTIONS = {
    "immediate_actions": ["EMERGENCY: made up by the model"],
    "medications": [{"name": "Augmentin", "dosage": "875 mg", "frequency": "twice daily", "side_effects": []},
                    {"name": "acetaminophen", "dosage": None, "frequency": None, "side_effects": []}],
    "lifestyle": ["Rest and drink fluids"],
}  # fmt: skip


@pytest.fixture
def files(tmp_path):
    patient, rec = tmp_path / "p.json", tmp_path / "r.json"
    patient.write_text(json.dumps(PATIENT))
    rec.write_text(json.dumps(SECTIONS))
    return patient, rec, tmp_path


def check(patient, rec, tmp_path):
    cfg = InferenceConfig(patient=str(patient), check=str(rec), log_file=str(tmp_path / "log.json"))
    cfg.validate()
    return main(cfg)[0]


def test_check_applies_the_rules_without_a_model(files, monkeypatch):
    import inference

    monkeypatch.setattr(inference, "Recommender", None)  # any attempt to load a model fails loudly
    out = check(*files)
    assert [m.name for m in out.medications] == ["acetaminophen"]
    assert out.immediate_actions == [] and out.lifestyle == ["Rest and drink fluids"]
    assert out.safety.allergy_conflicts[0].medication == "Augmentin"
    assert out.safety.duplicate_medications[0].current == "Tylenol"
    assert out.model is None


def test_a_whole_recommendation_is_rechecked_not_trusted(files):
    patient, rec, tmp = files
    first = check(patient, rec, tmp)
    forged = json.loads(first.model_dump_json())
    forged["safety"] = {"red_flags": [], "allergy_conflicts": []}  # a tampered safety block is recomputed
    rec.write_text(json.dumps(forged))
    again = check(patient, rec, tmp)
    assert again.safety.duplicate_medications == first.safety.duplicate_medications
    assert again.medications == first.medications


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"foo": 1}', "holds none of the sections"),
        ('{"medications": "x"}', "medications"),
        ('{"medications": [{"dose": "1"}]}', "invalid recommendation"),
    ],
)
def test_a_bad_recommendation_is_one_clear_usage_error(files, content, message):
    patient, rec, tmp = files
    rec.write_text(content)
    with pytest.raises(UsageError, match=message):
        check(patient, rec, tmp)


def test_the_command_line_prints_the_recommendation_and_exits_2_on_bad_input(files):
    patient, rec, tmp = files
    cmd = [sys.executable, "inference.py", "--patient", str(patient), "--check", str(rec), "--log-file",
           str(tmp / "log.json")]  # fmt: skip
    ok = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["safety"]["allergy_conflicts"][0]["allergy"] == "PCN"
    rec.write_text("{")
    bad = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --check")


# --- the sections as people write them (issue 21) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "lifestyle", "meds"),
    [
        ({"lifestyle": ["Rest and drink fluids"], "patient_education": ["Strep is an infection."]},
         ["Rest and drink fluids"], []),
        ({"lifestyle": [{"text": "Rest and drink fluids"}, "Gargle salt water"], "medications": ["acetaminophen"]},
         ["Rest and drink fluids", "Gargle salt water"], ["acetaminophen"]),
        ([{"name": "Augmentin", "dosage": "875 mg"}, {"name": "acetaminophen"}], [], ["acetaminophen"]),
        (["Augmentin", "acetaminophen"], [], ["acetaminophen"]),  # a bare list of names
    ],
)  # fmt: skip
def test_plain_strings_cited_objects_and_bare_medication_lists_are_accepted(files, content, lifestyle, meds):
    patient, rec, tmp = files
    rec.write_text(json.dumps(content))
    out = check(patient, rec, tmp)
    assert out.lifestyle == lifestyle and [m.name for m in out.medications] == meds
    # Augmentin is read as a medication: the PCN allergy removes it.
    assert bool(out.safety.allergy_conflicts) == ("Augmentin" in json.dumps(content))


@pytest.mark.parametrize(
    "content",
    ['{"follow_up": ["see your doctor in two weeks"]}', "[1, 2]", '"lifestyle"', '{"lifestyle": "rest"}',
     '{"lifestyle": [], "dose": "1"}'],
)  # fmt: skip
def test_anything_else_is_refused_with_the_expected_shape(files, content):
    patient, rec, tmp = files
    rec.write_text(content)
    with pytest.raises(UsageError) as e:
        check(patient, rec, tmp)
    assert '{"text": "...", "citations": [1]}' in str(e.value) and '{"timing", "purpose"}' in str(e.value)


# --- issue 22: what the rules must not publish, through the command line --------------------------------------
def test_a_non_drug_medication_and_text_about_json_are_removed_with_reasons(files):
    patient, rec, tmp = files
    rec.write_text(json.dumps({
        "immediate_actions": ["This is a section of a JSON file. The JSON file contains the sections of the JSON "
                              "file. The JSON file contains the sections of the JSON file."],
        "medications": [{"name": "Family History", "dosage": "Family History", "frequency": "Family History"},
                        {"name": "acetaminophen", "dosage": "acetaminophen", "frequency": "every 6 hours"}],
    }))  # fmt: skip
    cmd = [sys.executable, "inference.py", "--patient", str(patient), "--check", str(rec), "--log-file",
           str(tmp / "log.json")]  # fmt: skip
    ok = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["immediate_actions"] == [] and [m["name"] for m in out["medications"]] == ["acetaminophen"]
    # without --passages nothing vouches for a frequency the patient's own list does not state
    assert out["medications"][0]["dosage"] is None and out["medications"][0]["frequency"] is None
    why = {u["section"]: u["reason"] for u in out["grounding"]["unsupported"]}
    assert "JSON" in why["immediate_actions"] and "not a drug" in why["medications"]
    text = subprocess.run([*cmd, "--format", "text"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "Removed (medications): Family History, " in text.stdout and "not a drug" in text.stdout
    assert "Emptied: acetaminophen dosage: acetaminophen (holds no dose)" in text.stdout
    assert "acetaminophen frequency: every 6 hours (no passage to vouch for it" in text.stdout


def test_check_with_passages_catches_what_issue_17_names(files):
    """A dose absent as whole tokens, a drug only in side_effects, a drug only a prohibition names, an uncited
    item of a cited section: each removed or nulled, and reported."""
    patient, rec, tmp = files
    passages = tmp / "passages.json"
    passages.write_text(json.dumps([
        {"text": "Strep throat is treated with antibiotics such as penicillin or amoxicillin, 500 mg twice daily."},
        {"text": "Aspirin should never be given to children or teenagers. Acetaminophen can ease the pain."},
        {"text": "Rest, drink plenty of fluids and gargle with warm salt water."},
    ]))  # fmt: skip
    rec.write_text(json.dumps({
        "medications": [
            {"name": "acetaminophen", "dosage": "50 mg", "citations": [2],
             "side_effects": ["switch to oxycodone if the pain persists", "nausea"]},
            {"name": "aspirin", "citations": [2]},
        ],
        "lifestyle": [{"text": "Rest and drink plenty of fluids.", "citations": [3]}, "Gargle with warm salt water."],
    }))  # fmt: skip
    cfg = InferenceConfig(patient=str(patient), check=str(rec), passages=str(passages),
                          log_file=str(tmp / "log.json"))  # fmt: skip
    cfg.validate()
    out = main(cfg)[0]
    (acetaminophen,) = out.medications
    assert acetaminophen.dosage is None and acetaminophen.side_effects == ["nausea"]
    assert out.lifestyle == ["Rest and drink plenty of fluids."] and out.citations["lifestyle"] == [[3]]
    why = {u.item: u.reason for u in out.grounding.unsupported}
    assert "prohibition" in why["aspirin"] and "cites no passage" in why["Gargle with warm salt water."]
    assert any("oxycodone" in n for n in out.grounding.nulled) and any(
        "50 mg" in n for n in out.grounding.nulled
    )
