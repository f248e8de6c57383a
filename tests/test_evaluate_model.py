"""evaluate_model.py end to end on the tiny model, adapter and fixture data: the report's fields, limits,
model_info updates, the retrieval-only mode, and every bad-input case ending in exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import evaluate_model
from medlora.common.cli import build_parser, run_stage

FIELDS = ("accuracy", "accuracy_ci", "bleu", "bleu_ci", "rouge_l", "rouge_l_ci", "eos_rate", "n_mc", "n_gen")
TINY = [
    "--max-new-tokens",
    "8",
    "--treatment-max-new-tokens",
    "12",
    "--mc-answer-tokens",
    "48",
    "--bootstrap",
    "50",
    "--batch-size",
    "8",
    "--device",
    "cpu",
]


@pytest.fixture
def adapter_copy(tiny_adapter, tmp_path) -> Path:
    """A private copy of the session adapter inside a models dir that has a model_info.json from training."""
    models = tmp_path / "models"
    dest = models / "adapter"
    shutil.copytree(tiny_adapter, dest)
    (models / "model_info.json").write_text(json.dumps({"base_model": {"model_id": "x"}, "lora": {"r": 4}}))
    return dest


def run(argv: list[str]) -> int:
    return run_stage(evaluate_model.main, evaluate_model.EvalConfig, argv=argv)


def test_help_documents_every_flag():
    text = build_parser(evaluate_model.EvalConfig).format_help()
    for flag in (
        "--limit-mc",
        "--limit-gen",
        "--limit-treatment",
        "--batch-size",
        "--max-new-tokens",
        "--seed",
    ):
        assert flag in text
    for flag in ("--device", "--precision", "--output", "--models-dir", "--base-only", "--retrieval-only",
                 "--limit ", "--merge"):  # fmt: skip
        assert flag in text
    assert "95%" in text


def test_base_and_fine_tuned_report(tiny_model, tiny_data, adapter_copy, capsys):
    models = adapter_copy.parent
    argv = ["--base-model", str(tiny_model), "--adapter", str(adapter_copy), "--data-dir", str(tiny_data)]
    argv += ["--limit-mc", "1000", "--limit-gen", "3", "--limit-treatment", "2", *TINY]
    # enough tokens for the constrained decoder to open sections (12 would leave calibration with nothing)
    argv += ["--treatment-max-new-tokens", "64"]
    assert run(argv) == 0
    report = json.loads((models / "eval_results.json").read_text())
    n_qa = sum(
        json.loads(line)["kind"] == "qa" for line in (tiny_data / "test.jsonl").read_text().splitlines()
    )
    # a limit above the split is capped and reported, not an error
    assert report["limits"]["mc"]["requested"] == 1000 and report["limits"]["mc"]["available"] == n_qa
    assert report["limits"]["mc"]["used"] + report["limits"]["mc"]["skipped_without_distractors"] == n_qa
    assert "--limit-mc 1000 is more than" in capsys.readouterr().err
    for name in ("base", "fine_tuned"):
        res = report[name]
        for key in FIELDS:
            assert res[key] is not None, (name, key)
        assert res["n_mc"] == report["limits"]["mc"]["used"] and res["n_gen"] == 3
        assert 0 <= res["accuracy"] <= 1 and res["accuracy_ci"][0] <= res["accuracy"] <= res["accuracy_ci"][1]
        assert 0 <= res["bleu"] <= 100 and 0 <= res["rouge_l"] <= 1
        assert res["n_treatment"] == 2 and 0 <= res["schema_valid"] <= 1
        assert set(res["section_non_empty"]) == {"immediate_actions", "medications", "lifestyle", "follow_up",
                                                 "specialist_referrals", "monitoring", "patient_education"}  # fmt: skip
        assert res["model"]["base"] == "tiny-random" and res["model"]["revision"] == "seed-0"
        treat = report["rows"][name]["treatment"]
        assert treat["n_treatment"] == 2 and treat["schema_valid_ci"] is not None
        for variant in ("raw", "published"):
            for key in ("medication_precision", "medication_recall", "medication_f1", "allergy_violation_rate",
                        "duplicate_therapy_rate", "red_flag_emergency_recall", "emergency_false_alarm_rate",
                        "answered_on_evidence", "target_items_recovered", "section_rouge_l"):  # fmt: skip
                assert key in treat[variant], (name, variant, key)
            assert "filled_where_target_empty" in treat[variant]["section_rouge_l"]["follow_up"]
        assert set(treat["by_variant"]) == set(report["treatment_variants"])
        ground = report["rows"][name]["grounding"]
        assert ground["n"] == 2 and "distractors_only" in ground and "calibration" in ground
        assert ground["calibration"]["n_sections"] > 0, (
            "the constrained decoder reports every section it wrote"
        )
        assert report["rows"][name]["treatment_constrained"]["schema_valid"] == 1.0
    assert set(report["rows"]) == {"extractive", "empty", "emergency_constant", "base", "fine_tuned"}
    # the rows that need no model behave as they must on every item
    empty, alarm = (
        report["rows"]["empty"]["treatment"]["raw"],
        report["rows"]["emergency_constant"]["treatment"]["raw"],
    )
    assert empty["answered_on_evidence"] in (None, 0.0) and empty["target_items_recovered"] in (None, 0.0)
    assert alarm["emergency_false_alarm_rate"] in (None, 1.0) and alarm["red_flag_emergency_recall"] in (
        None,
        1.0,
    )
    assert report["base"]["model"]["dtype"] == "float32" and report["fine_tuned"]["model"]["merged"] is False
    assert report["base"]["model"]["adapter"] is None and report["fine_tuned"]["model"]["adapter"]
    for key in ("bleu", "bleu_ci", "rouge_l", "rouge_l_ci", "n_gen"):
        assert report["retrieval_baseline"][key] is not None
    shortcut = report["shortcut_baseline"]
    assert shortcut["n_mc"] == report["limits"]["mc"]["used"] and 0 <= shortcut["accuracy"] <= 1
    assert "not a measure of knowledge" in shortcut["old_construction_for_contrast_only"]["note"]
    assert set(report["fine_tuned_minus_base"]) >= {"accuracy", "accuracy_ci", "bleu", "rouge_l", "treatment",
                                                    "treatment_constrained"}  # fmt: skip
    assert "medication_recall_ci" in report["fine_tuned_minus_base"]["treatment"]["published"]
    assert '"_items"' not in (models / "eval_results.json").read_text()
    assert report["seed"] == 42 and report["command"].startswith("python ")
    assert len(report["data"]["sha256_train_test"]) == 64
    # the figures land in both model_info.json files, beside what training wrote there
    for info_path in (models / "model_info.json", adapter_copy / "model_info.json"):
        info = json.loads(info_path.read_text())
        assert (
            "base_model" in info
            and info["metrics"]["fine_tuned"]["accuracy"] == report["fine_tuned"]["accuracy"]
        )
        assert info["metrics"]["seed"] == 42 and "_correct" not in info["metrics"]["base"]
    assert json.loads((models / "model_info.json").read_text())["lora"] == {"r": 4}


def test_same_seed_same_report(tiny_model, tiny_data, tmp_path):
    reports = []
    for k in range(2):
        out = tmp_path / f"r{k}.json"
        argv = [
            "--base-model",
            str(tiny_model),
            "--data-dir",
            str(tiny_data),
            "--base-only",
            "--output",
            str(out),
        ]
        assert run([*argv, "--limit-mc", "4", "--limit-gen", "2", "--limit-treatment", "1", *TINY]) == 0
        reports.append(json.loads(out.read_text()))
    assert reports[0]["base"]["accuracy"] == reports[1]["base"]["accuracy"]
    assert reports[0]["base"]["accuracy_ci"] == reports[1]["base"]["accuracy_ci"]
    assert reports[0]["base"]["examples"] == reports[1]["base"]["examples"]
    assert "fine_tuned" not in reports[0]


def test_retrieval_only_needs_no_model(tiny_data, tmp_path):
    out = tmp_path / "retrieval.json"
    argv = ["--retrieval-only", "--base-model", str(tmp_path / "absent"), "--data-dir", str(tiny_data)]
    assert run([*argv, "--limit-gen", "100000", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report) & {"base", "fine_tuned"} == set()
    assert report["limits"]["gen"]["used"] == report["retrieval_baseline"]["n_gen"] < 100000
    assert 0 <= report["retrieval_baseline"]["rouge_l"] <= 1
    # the no-model rows over every treatment item of the split (the default --limit-treatment covers it)
    n_treat = report["limits"]["treatment"]["available"]
    assert set(report["rows"]) == {"extractive", "empty", "emergency_constant"}
    assert report["rows"]["extractive"]["treatment"]["n_treatment"] == min(n_treat, 96)
    assert report["rows"]["empty"]["grounding"]["abstention"] in (None, 1.0)


def test_an_exported_gguf_gets_a_row_on_the_same_items(tiny_data, tiny_gguf, tmp_path):
    from medlora.evaluation.rows import rows_table

    out, gguf = tmp_path / "rows.json", tiny_gguf / "tiny-adapter-Q8_0.gguf"
    argv = ["--retrieval-only", "--base-model", str(tmp_path / "absent"), "--data-dir", str(tiny_data)]
    argv += [
        "--limit-gen",
        "2",
        "--limit-treatment",
        "3",
        "--treatment-max-new-tokens",
        "24",
        "--gguf",
        str(gguf),
    ]
    assert run([*argv, "--bootstrap", "20", "--output", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    row = rows["gguf:tiny-adapter-Q8_0.gguf"]
    assert set(row) == {"treatment_constrained", "grounding"}  # llama.cpp decodes under the grammar only
    n = rows["extractive"]["treatment"]["n_treatment"]
    assert row["treatment_constrained"]["n_treatment"] == n == 3
    assert "distractors_only" in row["grounding"] and "calibration" in row["grounding"]
    assert "gguf:" not in rows_table(rows)[0]  # the free-generation table has no column for it
    table = rows_table(rows, constrained=True)
    assert table[0].endswith("| gguf:tiny-adapter-Q8_0.gguf |")  # a column of the constrained table
    published = next(line for line in table if line.startswith("| medication F1 (published) |"))
    assert not published.endswith("| - |")  # its constrained output fills the treatment figures


def test_a_missing_or_corrupt_gguf_is_exit_2_before_any_work(tmp_path, capsys):
    assert run(["--retrieval-only", "--gguf", str(tmp_path / "none.gguf")]) == 2
    assert "none.gguf" in _one_error_line(capsys)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    assert run(["--retrieval-only", "--data-dir", str(tmp_path / "no-data"), "--gguf", str(bad)]) == 2
    assert "bad.gguf: not a GGUF file" in _one_error_line(capsys)  # refused before the data is even read


def _one_error_line(capsys) -> str:
    """The error line (logging also writes to stderr, so it is the last line), and no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err and err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--base-only", "--adapter-only"], "exclude each other"),
        (["--limit-mc", "-1"], "--limit-mc must be 0 or more"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--retrieval-only", "--limit-gen", "0"], "--limit-gen above 0"),
    ],
)
def test_bad_flags_exit_2(extra, message, capsys):
    assert run(extra) == 2
    assert message in _one_error_line(capsys)


def test_missing_inputs_exit_2_naming_the_command(tiny_model, tiny_data, adapter_copy, tmp_path, capsys):
    out = tmp_path / "eval_results.json"
    out.write_text('{"earlier": "report"}')
    common = ["--output", str(out), *TINY]
    # missing data split
    assert run(["--data-dir", str(tmp_path / "nodata"), "--base-model", str(tiny_model), *common]) == 2
    assert "python download_model.py" in _one_error_line(capsys)
    # corrupt data split
    bad = tmp_path / "bad"
    shutil.copytree(tiny_data, bad)
    (bad / "test.jsonl").write_text("{not json\n")
    assert run(["--data-dir", str(bad), "--base-model", str(tiny_model), *common]) == 2
    assert "python download_model.py" in _one_error_line(capsys)
    # missing base model
    assert run(["--data-dir", str(tiny_data), "--base-model", str(tmp_path / "nobase"), *common]) == 2
    assert "python download_model.py" in _one_error_line(capsys)
    # missing adapter
    argv = [
        "--data-dir",
        str(tiny_data),
        "--base-model",
        str(tiny_model),
        "--adapter",
        str(tmp_path / "none"),
    ]
    assert run([*argv, *common]) == 2
    assert "python train_model.py" in _one_error_line(capsys)
    # adapter trained on another base model
    info = adapter_copy / "model_info.json"
    info.write_text(json.dumps({"base_model": {"model_id": "other/model", "resolved_revision": "abc"}}))
    argv = ["--data-dir", str(tiny_data), "--base-model", str(tiny_model), "--adapter", str(adapter_copy)]
    assert run([*argv, *common]) == 2
    assert "trained on other/model" in _one_error_line(capsys)
    # nothing already written was touched
    assert json.loads(out.read_text()) == {"earlier": "report"}
    assert "metrics" not in json.loads((adapter_copy.parent / "model_info.json").read_text())


# ------------------------------------------------------------------------- the evaluated model is the trained one
def _adapter_trained_in(tiny_adapter, tmp_path, precision: str) -> Path:
    dest = tmp_path / f"adapter-{precision}"
    shutil.copytree(tiny_adapter, dest)
    info = json.loads((dest / "model_info.json").read_text())
    (dest / "model_info.json").write_text(json.dumps({**info, "training": {"precision": precision}}))
    return dest


def test_precision_follows_training_where_the_device_runs_it(tiny_model, tiny_adapter, tmp_path, caplog):
    cfg = lambda adapter, **kw: evaluate_model.EvalConfig(  # noqa: E731
        base_model=str(tiny_model), adapter=str(adapter), **kw
    )
    bf16, fp16 = (
        _adapter_trained_in(tiny_adapter, tmp_path, "bfloat16"),
        _adapter_trained_in(tiny_adapter, tmp_path, "float16"),
    )
    assert (
        evaluate_model.trained_precision(bf16) == "bf16" and evaluate_model.trained_precision(fp16) == "fp16"
    )
    assert evaluate_model.trained_precision(tiny_adapter) is None  # no training record: the device default
    assert evaluate_model.eval_precision(cfg(bf16), "cpu") == "bf16"
    assert evaluate_model.eval_precision(cfg(fp16), "cuda") == "fp16"
    assert evaluate_model.eval_precision(cfg(fp16), "cpu") == "fp32" and "cannot run" in caplog.text
    assert evaluate_model.eval_precision(cfg(tiny_adapter), "cpu") == "fp32"
    assert (
        evaluate_model.eval_precision(cfg(bf16, precision="fp32"), "cpu") == "fp32"
    )  # an explicit flag wins
    assert evaluate_model.EvalConfig().merge is False


def test_the_evaluated_model_computes_what_the_trained_one_does(tiny_model, tiny_adapter, tmp_path):
    """Training holds a bf16 (or fp16) base and fp32 LoRA weights; evaluation loads exactly those, unmerged.
    Merging would round the LoRA update into the half-precision base weights and change the outputs."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from medlora.model.loading import load_model
    from medlora.training.run import build_lora_model

    adapter = _adapter_trained_in(tiny_adapter, tmp_path, "bfloat16")
    trained, _ = build_lora_model(tiny_model, torch.bfloat16, 4, 8, 0.0, ["q_proj", "v_proj"])
    set_peft_model_state_dict(trained, load_file(adapter / "adapter_model.safetensors"))
    trained.eval()
    assert {p.dtype for n, p in trained.named_parameters() if "lora_" in n} == {torch.float32}
    ids = torch.tensor([[1, 5, 6, 7, 8, 9, 10, 11]])
    with torch.no_grad():
        want = trained(input_ids=ids).logits
    cfg = evaluate_model.EvalConfig(base_model=str(tiny_model), adapter=str(adapter), device="cpu")
    precision = evaluate_model.eval_precision(cfg, "cpu")
    model, _, _ = load_model(tiny_model, adapter, "cpu", precision, merge=cfg.merge)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, want)
        merged, _, _ = load_model(tiny_model, adapter, "cpu", "bf16", merge=True)
        assert not torch.equal(merged(input_ids=ids).logits, want)


def test_an_interrupted_evaluation_keeps_its_finished_parts_and_resumes(tiny_model, tiny_data, tmp_path, monkeypatch,
                                                                        capsys):  # fmt: skip
    """Ctrl-C during the answers: multiple choice is on disk, readable and printed; exit 130; the rerun measures
    only what was missing and gives the report an uninterrupted run gives."""
    out = tmp_path / "r.json"
    argv = [
        "--base-model",
        str(tiny_model),
        "--data-dir",
        str(tiny_data),
        "--base-only",
        "--output",
        str(out),
    ]
    argv += ["--limit-mc", "4", "--limit-gen", "2", "--limit-treatment", "1", *TINY]
    real = evaluate_model.metrics.greedy_generate

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_model.metrics, "greedy_generate", interrupted)
    assert run(argv) == 130
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and partial["finished_parts"] == ["baselines", "base:mc"]
    assert 0 <= partial["base"]["accuracy"] <= 1 and "bleu" not in partial["base"]
    assert partial["shortcut_baseline"]["n_mc"] == 4 and "_correct" not in out.read_text()
    err = capsys.readouterr().err  # printed as it finished, and the interruption says what is kept
    assert f"multiple choice accuracy {partial['base']['accuracy']:.3g}" in err
    assert "interrupted: baselines, base:mc kept in" in err and "stopped after" in err

    # The rerun reuses both parts (a multiple-choice pass would fail here) and finishes the rest.
    monkeypatch.setattr(evaluate_model.metrics, "greedy_generate", real)
    monkeypatch.setattr(evaluate_model.multiple_choice, "choose_options", interrupted)
    assert run(argv) == 0
    resumed = json.loads(out.read_text())
    assert "resuming: baselines, base:mc already measured" in capsys.readouterr().err
    assert resumed["complete"] is True and resumed["base"]["accuracy"] == partial["base"]["accuracy"]
    assert resumed["base"]["bleu"] is not None and not (tmp_path / "r.parts.json").exists()
    monkeypatch.undo()
    assert run([*argv, "--output", str(tmp_path / "fresh.json")]) == 0
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    for key in ("accuracy", "accuracy_ci", "bleu", "rouge_l", "examples"):
        assert resumed["base"][key] == fresh["base"][key], key
    assert resumed["rows"]["base"] == fresh["rows"]["base"]


def test_a_rerun_with_other_settings_starts_afresh(tiny_model, tiny_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    argv = [
        "--base-model",
        str(tiny_model),
        "--data-dir",
        str(tiny_data),
        "--base-only",
        "--output",
        str(out),
    ]
    argv += ["--limit-gen", "2", "--limit-treatment", "0", *TINY]

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_model.metrics, "greedy_generate", interrupted)
    assert run([*argv, "--limit-mc", "4"]) == 130
    monkeypatch.undo()
    assert run([*argv, "--limit-mc", "3"]) == 0
    assert "other settings or data: starting afresh" in capsys.readouterr().err
    assert json.loads(out.read_text())["base"]["n_mc"] == 3


def test_a_cpu_sized_run_can_leave_out_free_generation_and_the_distractor_pass(
    tiny_model, tiny_data, tmp_path
):
    out = tmp_path / "r.json"
    argv = [
        "--base-model",
        str(tiny_model),
        "--data-dir",
        str(tiny_data),
        "--base-only",
        "--output",
        str(out),
    ]
    argv += ["--limit-mc", "2", "--limit-gen", "1", "--limit-treatment", "2", "--no-free-treatment"]
    assert run([*argv, "--no-distractors", *TINY]) == 0
    row = json.loads(out.read_text())["rows"]["base"]
    assert "treatment" not in row and "treatment_constrained" in row  # no free generation
    assert "distractors_only" not in row["grounding"] and "calibration" in row["grounding"]
    # The no-model rows keep every part: they cost no generation.
    assert "distractors_only" in json.loads(out.read_text())["rows"]["extractive"]["grounding"]
