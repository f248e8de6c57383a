import json
import os
import subprocess
import sys

import pytest
from conftest import MEDQUAD_FIXTURE, ROOT, shared_path

import download_model
from medlora.common.cli import UsageError


def run_cli(*args, env=None, cwd=None):
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "download_model.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=300,
    )


def config(tmp_path, **kw):
    cfg = download_model.DownloadConfig(
        skip_model=True,
        encoder="none",
        medquad=str(MEDQUAD_FIXTURE),
        data_dir=str(tmp_path / "data"),
        models_dir=str(tmp_path / "models"),
        val_fraction=0.2,
        test_fraction=0.2,
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    cfg.validate()
    return cfg


def test_stats_have_every_field_and_no_leakage(tiny_data):
    stats = json.loads((tiny_data / "stats.json").read_text())
    assert stats["records_read"] == 53 and stats["answered_pairs"] == 41
    assert stats["skipped_without_answer"] == 12 and stats["duplicates_dropped"] == 1
    assert stats["malformed_files"] == {"count": 0, "files": []}
    assert stats["leakage"] == {
        "foci_shared_between_splits": 0,
        "questions_shared_between_splits": 0,
        "answers_shared_between_splits": 0,
    }
    for split in ("train", "val", "test"):
        s = stats["splits"][split]
        assert s["examples"] == s["qa"] + s["treatment"] > 0 and s["foci"] > 0 and s["qtypes"]
    assert sum(s["qa"] for s in stats["splits"].values()) == 40
    assert stats["token_lengths"].startswith("not computed")  # no TinyLlama tokenizer at hand here


def test_same_inputs_and_seed_give_identical_files_and_rerun_is_safe(tmp_path, tiny_data):
    cfg = config(tmp_path)
    download_model.main(cfg)
    out = tmp_path / "data" / "medquad"
    for split in ("train", "val", "test"):
        assert (out / f"{split}.jsonl").read_bytes() == (tiny_data / f"{split}.jsonl").read_bytes()
    download_model.main(cfg)  # over existing outputs
    assert (out / "train.jsonl").read_bytes() == (tiny_data / "train.jsonl").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [
        "index",
        "stats.json",
        "test.jsonl",
        "train.jsonl",
        "val.jsonl",
    ]


def test_interrupted_run_leaves_no_half_written_split(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    download_model.main(cfg)
    out = tmp_path / "data" / "medquad"
    before = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = download_model.write_jsonl

    def dies_midway(path, rows):
        def some():
            for i, row in enumerate(rows):
                if i == 2:
                    raise KeyboardInterrupt
                yield row

        return real(path, some())

    monkeypatch.setattr(download_model, "write_jsonl", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        download_model.main(config(tmp_path, seed=7))
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_malformed_xml_is_counted_and_the_run_goes_on(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in (MEDQUAD_FIXTURE / "1_Test_QA").glob("*.xml"):
        (src / f.name).write_bytes(f.read_bytes())
    (src / "9999999.xml").write_text("<Document><QAPairs><QAPair>")
    stats = download_model.main(config(tmp_path, medquad=str(src)))["data"]
    assert stats["malformed_files"] == {"count": 1, "files": ["9999999.xml"]}


@pytest.mark.parametrize(
    "medquad, message", [("nope/", "MedQuAD source not found: nope"), ("bad.csv", "lacks the column")]
)
def test_bad_sources_exit_2_naming_them(tmp_path, medquad, message):
    (tmp_path / "bad.csv").write_text("q,a\n1,2\n")
    r = run_cli("--skip-model", "--medquad", medquad, "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d" / "medquad" / "train.jsonl").exists()


def test_invalid_settings_exit_2():
    r = run_cli("--val-fraction", "0.6", "--test-fraction", "0.5", "--skip-model")
    assert r.returncode == 2 and "leave something to train on" in r.stderr


def test_hub_unreachable_exits_2_naming_the_fixes(tmp_path):
    # a closed local port stands in for an unreachable Hub: the real client, the real network error
    r = run_cli("--skip-data", "--models-dir", str(tmp_path), env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "--model PATH" in last and "--model tiny-random" in last and "HF_HUB_OFFLINE" in last
    assert "Traceback" not in r.stderr and not (tmp_path / "tinyllama").exists()


def test_github_unreachable_exits_2(tmp_path, monkeypatch):
    monkeypatch.setattr("medlora.data.sources.GITHUB_ZIP", "http://127.0.0.1:9/MedQuAD.zip")
    with pytest.raises(UsageError, match="--medquad PATH"):
        download_model.main(config(tmp_path, medquad="github"))


def test_help_documents_all_flags():
    r = run_cli("--help")
    for flag in (
        "--model",
        "--revision",
        "--tokenizer",
        "--medquad",
        "--models-dir",
        "--data-dir",
        "--skip-model",
        "--skip-data",
        "--seed",
        "--val-fraction",
        "--test-fraction",
        "--max-length",
    ):
        assert flag in r.stdout


@pytest.mark.integration
def test_offline_smoke_path_with_full_medquad(tmp_path):
    """The README's offline path: tiny model with TinyLlama's tokenizer and the full MedQuAD."""
    medquad_dir = shared_path("data", "medquad")
    tok = shared_path("tinyllama", "tokenizer.model")
    r = run_cli(
        "--model",
        "tiny-random",
        "--tokenizer",
        str(tok),
        "--medquad",
        str(medquad_dir),
        "--models-dir",
        str(tmp_path / "models"),
        "--data-dir",
        str(tmp_path / "data"),
        "--encoder",
        "none",  # offline: no package index, and encoding every answer is the hybrid bench's business
    )
    assert r.returncode == 0, r.stderr
    stats = json.loads((tmp_path / "data" / "medquad" / "stats.json").read_text())
    assert stats["answered_pairs"] == 16423  # with the four NINDS <doc> files
    assert stats["leakage"] == {
        "foci_shared_between_splits": 0,
        "questions_shared_between_splits": 0,
        "answers_shared_between_splits": 0,
    }
    lengths = stats["token_lengths"]["qa"]
    assert lengths["p50"] < 512 < lengths["p99"] and 0.01 < lengths["share_over_max_length"] < 0.05  # of 1280
    treatment = stats["token_lengths"]["treatment"]
    assert treatment["p50"] > 512 and treatment["p99"] < 1280 and stats["token_lengths"]["max_length"] == 1280
    assert stats["index"]["training_prompts"]["prompts_with_val_or_test_passages"] == 0
    assert (tmp_path / "models" / "tiny-random" / "model.safetensors").is_file()


def test_hub_dataset_unreachable_exits_2(tmp_path):
    r = run_cli(
        "--skip-model",
        "--medquad",
        "hf",
        "--data-dir",
        str(tmp_path),
        env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert r.returncode == 2 and "--medquad PATH" in r.stderr.strip().splitlines()[-1]
