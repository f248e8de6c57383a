"""The README's offline path through every stage, as a user runs it: four commands, each reading what the one
before wrote (fixture MedQuAD and the byte-level tiny model, so it needs nothing outside the repository)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import MEDQUAD_FIXTURE, ROOT

from medlora.common.schemas import DISCLAIMER, Recommendation

pytestmark = pytest.mark.slow


def run(script, *args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"{script} failed:\n{r.stderr[-3000:]}"
    return r


def test_offline_pipeline_end_to_end(tmp_path):
    run(
        "download_model.py",
        "--model",
        "tiny-random",
        "--medquad",
        str(MEDQUAD_FIXTURE),
        "--val-fraction",
        "0.2",
        "--test-fraction",
        "0.2",
        cwd=tmp_path,
    )
    assert json.loads((tmp_path / "data/medquad/stats.json").read_text())["leakage"] == {
        "foci_shared_between_splits": 0,
        "questions_shared_between_splits": 0,
        "answers_shared_between_splits": 0,
    }

    run(
        "train_model.py",
        "--base-model",
        "models/tiny-random",
        "--max-steps",
        "2",
        "--logging-steps",
        "1",
        "--output-dir",
        "models/tiny-adapter",
        cwd=tmp_path,
    )
    assert (tmp_path / "models/tiny-adapter/adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "models/training_log.json").read_text())["steps"]

    run(
        "evaluate_model.py",
        "--base-model",
        "models/tiny-random",
        "--adapter",
        "models/tiny-adapter",
        "--limit-mc",
        "4",
        "--limit-gen",
        "2",
        "--limit-treatment",
        "1",
        "--max-new-tokens",
        "8",
        "--treatment-max-new-tokens",
        "8",
        "--bootstrap",
        "20",
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "models/eval_results.json").read_text())
    assert report["fine_tuned"]["n_mc"] == report["base"]["n_mc"] > 0
    card = (tmp_path / "models/tiny-adapter/README.md").read_text()
    assert "accuracy" in card.lower()

    patient = ROOT / "examples/patients/chest_pain_low_spo2.json"
    r = run(
        "inference.py",
        "--base-model",
        "models/tiny-random",
        "--adapter",
        "models/tiny-adapter",
        "--max-new-tokens",
        "48",
        "--patient",
        str(patient),
        cwd=tmp_path,
    )
    rec = Recommendation.model_validate_json(r.stdout)
    assert rec.safety.disclaimer == DISCLAIMER and rec.safety.red_flags
    assert rec.immediate_actions[0].upper().startswith("EMERGENCY")
    entry = json.loads((tmp_path / "models/inference_log.json").read_text())[-1]
    assert entry["outcome"] == "ok" and "example" not in json.dumps(entry)  # no raw patient id in the log
