"""``inference.py --patient P --check R``: the rules over a given recommendation, no model, exit 2 on bad R."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference import InferenceConfig, main
from medlora.cli import UsageError

ROOT = Path(__file__).resolve().parents[1]
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
