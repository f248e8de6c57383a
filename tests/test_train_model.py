"""train_model.py end to end on the tiny random model and the fixture data (CPU, offline, seconds)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import train_model
from medlora.common.cli import UsageError, parse_config, run_stage
from medlora.common.schemas import DISCLAIMER


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def make_config(tiny_model: Path, tiny_data: Path, out: Path, **overrides) -> train_model.TrainConfig:
    values = {
        "base_model": str(tiny_model),
        "data_dir": str(tiny_data),
        "output_dir": str(out),
        "cache_dir": str(out.parent / "cache"),  # keeps the shared fixture's directory untouched
        "max_steps": 4,
        "eval_steps": 2,
        "logging_steps": 1,
        **overrides,
    }
    cfg = train_model.TrainConfig(**values)
    cfg.validate()
    return cfg


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tiny_model, tiny_data, tmp_path_factory) -> Path:
    """One short run that all the output tests read: a few repeated examples at a high learning rate."""
    out = tmp_path_factory.mktemp("train") / "adapter"
    cfg = make_config(
        tiny_model, tiny_data, out,
        limit_examples=4, max_steps=8, eval_steps=4, learning_rate=1e-2, lora_dropout=0.0, warmup_ratio=0.0,
        merge=True,
    )  # fmt: skip
    train_model.main(cfg)
    return out


def test_writes_the_adapter_and_its_records(trained, tiny_model):
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json", "README.md"):
        assert (trained / name).is_file(), name
    assert not (trained / "checkpoints").exists(), "checkpoints of a finished run are removed with it"
    info = json.loads((trained / "model_info.json").read_text())
    assert info == json.loads((trained.parent / "model_info.json").read_text())
    assert info["base_model"]["model_id"] == "tiny-random" and info["base_model"]["path"] == str(tiny_model)
    assert len(info["data"]["hash"]) == 64 and [Path(f).name for f in info["data"]["files"]] == [
        "train.jsonl",
        "val.jsonl",
    ]
    assert info["lora"]["r"] == 16 and "down_proj" in info["lora"]["target_modules"]
    assert 0 < info["lora"]["trainable_share"] < 1
    assert info["training"]["global_step"] == 8 and info["training"]["precision"] == "float32"
    assert set(info["versions"]) == {"torch", "transformers", "peft", "accelerate", "python"}
    run_config = json.loads((trained / "run_config.json").read_text())
    assert run_config["learning_rate"] == 1e-2 and run_config["max_steps"] == 8


def test_training_log_holds_every_logged_step(trained):
    log = json.loads((trained.parent / "training_log.json").read_text())
    assert [r["step"] for r in log["steps"]] == list(range(1, 9))
    for rec in log["steps"]:
        assert set(rec) == {"step", "epoch", "loss", "learning_rate", "grad_norm", "eval_loss"}
        assert math.isfinite(rec["loss"]) and rec["grad_norm"] > 0
    assert [r["step"] for r in log["steps"] if r["eval_loss"] is not None] == [4, 8]
    ex = log["examples"]["train"]
    assert ex["total"] == ex["used"] + ex["dropped"] and "shortened" in ex
    assert log["tokens"] > 0 and log["tokens_per_second"] > 0 and log["wall_time_s"] > 0
    assert log["peak_memory"]["rss_mib"] > 0
    assert all(0 <= share < 1 for share in log["padding_share"].values())
    png = (trained.parent / "training_loss.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_model_card_front_matter_and_disclaimer(trained):
    card = (trained / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "tiny-random" and front["library_name"] == "peft"
    assert front["license"] and "lora" in front["tags"]
    # The fixture data came from MedQuAD's XML files, not the Hub dataset: the card says which (issue 30).
    assert "datasets" not in front and "the MedQuAD XML collection, a local copy" in card
    assert DISCLAIMER in card and "Not measured yet" in card


def test_adapter_loads_for_inference_and_merged_model_matches(trained, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    from medlora.model.loading import load_model

    model, _, info = load_model(tiny_model, trained, device="cpu", precision="fp32")
    assert info["adapter"] == str(trained)
    merged = AutoModelForCausalLM.from_pretrained(trained / "merged").eval()
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, merged(ids).logits, atol=1e-4, rtol=1e-4)
    assert json.loads((trained / "merged" / "model_source.json").read_text())["source"].startswith("merged")


def test_finished_adapter_is_not_overwritten(trained, tiny_model, tiny_data, capsys):
    before = digest(trained)
    argv = ["--base-model", str(tiny_model), "--data-dir", str(tiny_data), "--output-dir", str(trained)]
    assert run_stage(train_model.main, train_model.TrainConfig, argv) == 2
    (err,) = error_lines(capsys.readouterr().err)
    assert "--overwrite" in err
    assert digest(trained) == before


def test_loss_falls_on_a_few_repeated_examples(trained):
    log = json.loads((trained.parent / "training_log.json").read_text())
    losses = [r["loss"] for r in log["steps"]]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.2, losses


class Killed(Exception):
    pass


def kill_after_save(at_step: int):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= at_step:
                raise Killed(f"killed after the checkpoint of step {at_step}")

    return Kill()


def test_resume_after_a_kill_ends_at_the_uninterrupted_step_count(trained, tiny_model, tiny_data, tmp_path):
    out = tmp_path / "adapter"
    shutil.copytree(trained, out)  # a finished adapter that --overwrite will replace, but only at the end
    before = digest(out)
    cfg = make_config(
        tiny_model,
        tiny_data,
        out,
        limit_examples=8,
        max_steps=0,
        epochs=2,
        eval_steps=1,
        overwrite=True,
        batch_size=2,  # the seeded sample may hold long treatment rows the byte tokenizer drops: keep > 2 steps
    )
    with pytest.raises(Killed):
        train_model.main(cfg, callbacks=[kill_after_save(2)])
    checkpoints = out / "checkpoints"
    assert (checkpoints / "checkpoint-2" / "trainer_state.json").is_file()
    assert {k: v for k, v in digest(out).items() if not k.startswith("checkpoints")} == before

    log = train_model.main(cfg)
    steps = 2 * math.ceil(log["examples"]["train"]["used"] / cfg.batch_size)
    assert log["resumed_from"].endswith("checkpoint-2")
    assert log["results"]["global_step"] == steps > 2
    assert [r["step"] for r in log["steps"]] == list(range(1, steps + 1)), "steps before the kill stay logged"
    assert not checkpoints.exists() and digest(out) != before


def test_checkpoints_of_other_settings_are_not_resumed(tiny_model, tiny_data, tmp_path):
    out = tmp_path / "adapter"
    cfg = make_config(tiny_model, tiny_data, out, limit_examples=4, max_steps=2, eval_steps=1)
    with pytest.raises(Killed):
        train_model.main(cfg, callbacks=[kill_after_save(1)])
    changed = make_config(
        tiny_model, tiny_data, out, limit_examples=4, max_steps=2, eval_steps=1, learning_rate=1e-3
    )
    with pytest.raises(UsageError, match=r"other settings \(learning_rate\).*--no-resume"):
        train_model.main(changed)
    assert (out / "checkpoints" / "checkpoint-1").is_dir(), "refused checkpoints are kept"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--learning-rate", "0"], "--learning-rate must be > 0"),
        (["--batch-size", "0"], "--batch-size must be > 0"),
        (["--max-length", "4096"], "exceeds the model's context of 2048"),
        (["--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA GPU"),
        (["--load-in-4bit", "--device", "cpu"], "--load-in-4bit needs a CUDA GPU"),
        (["--lora-target-modules", "no_such_proj"], "--lora-target-modules"),
    ],
)
def test_bad_settings_exit_2_before_any_output(args, expected, tiny_model, tiny_data, tmp_path, capsys):
    out = tmp_path / "models" / "adapter"
    argv = ["--base-model", str(tiny_model), "--data-dir", str(tiny_data), "--output-dir", str(out), *args]
    assert run_stage(train_model.main, train_model.TrainConfig, argv) == 2
    (err,) = error_lines(capsys.readouterr().err)
    assert expected in err
    assert not (out / "adapter_config.json").exists() and not (out.parent / "training_log.json").exists()


def test_missing_inputs_name_the_command_to_run_first(tiny_model, tiny_data, tmp_path, capsys):
    out = ["--output-dir", str(tmp_path / "adapter")]
    no_model = ["--base-model", str(tmp_path / "nope"), "--data-dir", str(tiny_data), *out]
    no_data = ["--base-model", str(tiny_model), "--data-dir", str(tmp_path / "nope"), *out]
    for argv in (no_model, no_data):
        assert run_stage(train_model.main, train_model.TrainConfig, argv) == 2
        assert "python download_model.py" in capsys.readouterr().err
    assert not (tmp_path / "adapter").exists()


def test_config_file_is_overridden_by_flags(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(
        "learning_rate: 1.0e-3\nbatch_size: 2\nepochs: 5\nlora_target_modules: [q_proj, v_proj]\n"
    )
    cfg = parse_config(train_model.TrainConfig, ["--config", str(cfg_file), "--batch-size", "8"])
    assert (cfg.learning_rate, cfg.batch_size, cfg.epochs) == (1e-3, 8, 5.0)
    assert cfg.lora_target_modules == ["q_proj", "v_proj"] and cfg.max_length == 1280
    example = parse_config(
        train_model.TrainConfig, ["--config", str(ROOT / "examples" / "train_config.yaml")]
    )
    assert example.learning_rate > 0


def test_defaults_are_the_model_cards():
    cfg = train_model.TrainConfig()
    # The card's 512 tokens cannot hold a grounded treatment prompt; 1280 does (see TrainConfig.max_length).
    assert (cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.max_length) == (3.0, 4, 2e-4, 1280)
    assert cfg.output_dir == "models/tinyllama-medquad-treatment" and cfg.precision == "auto"


def test_two_process_accelerate_run(tiny_model, tiny_data, tmp_path):
    """DDP over two CPU processes (gloo). `accelerate launch --cpu` alone starts one process, so --multi_gpu."""
    out = tmp_path / "adapter"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "train_model.py"]
    cmd += ["--base-model", str(tiny_model), "--data-dir", str(tiny_data), "--output-dir", str(out)]
    cmd += [
        "--cache-dir",
        str(tmp_path / "cache"),
        "--max-steps",
        "2",
        "--eval-steps",
        "2",
        "--limit-examples",
        "8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "model_info.json").read_text())
    assert info["training"]["world_size"] == 2 and info["training"]["global_step"] == 2
    log = json.loads((tmp_path / "training_log.json").read_text())
    assert log["steps"][-1]["epoch"] == 2.0, "8 examples, 2 processes x batch 4: one step per epoch"


def test_evaluate_flag_runs_the_evaluation_stage_on_the_new_adapter(
    tiny_model, tiny_data, tmp_path, monkeypatch
):
    import evaluate_model

    real = evaluate_model.EvalConfig

    def small(**kw):  # the stage's own defaults are sized for a GPU; keep the run to seconds
        return real(
            **kw,
            limit_mc=4,
            limit_gen=2,
            limit_treatment=1,
            max_new_tokens=8,
            treatment_max_new_tokens=8,
            bootstrap=10,
        )

    monkeypatch.setattr(evaluate_model, "EvalConfig", small)
    out = tmp_path / "adapter"
    result = train_model.main(make_config(tiny_model, tiny_data, out, max_steps=2, evaluate=True))
    report = json.loads((tmp_path / "eval_results.json").read_text())
    assert result["evaluation"]["fine_tuned"] == report["fine_tuned"]
    assert set(report) >= {"base", "fine_tuned", "retrieval_baseline"}
    info = json.loads((out / "model_info.json").read_text())
    assert info["metrics"]["fine_tuned"]["n_mc"] == report["fine_tuned"]["n_mc"]
    assert "Not measured yet" not in (out / "README.md").read_text()


def test_a_slow_step_is_not_silent(tiny_model, tiny_data, tmp_path, monkeypatch, caplog):
    """Issue 30: a step of minutes on a loaded CPU said nothing. The heartbeat speaks from inside the step: which
    step of how many, its micro-batch, how long it has run, and (after the first) an estimate of the time left."""
    import logging
    import time

    from transformers import TrainerCallback

    from medlora.training import heartbeat

    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.2)

    class Slow(TrainerCallback):
        def on_substep_end(self, args, state, control, **kwargs):
            time.sleep(0.5)  # a micro-batch that takes long (the last one of a step ends in on_step_end)

        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(0.5)

    caplog.set_level(logging.INFO, logger="medlora.common.progress")
    cfg = make_config(tiny_model, tiny_data, tmp_path / "adapter", max_steps=2, eval_steps=0,
                      gradient_accumulation_steps=2, batch_size=1)  # fmt: skip
    train_model.main(cfg, callbacks=[Slow()])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training: step")]
    running = [line for line in lines if "running for" in line]
    assert any(
        line.startswith("training: step 1/2 running for") and "micro-batch" in line for line in running
    )
    assert any("step 2/2" in line and "left at" in line for line in running), lines
    assert any("loss" in line for line in lines), "the Trainer's loss lines are logged off the terminal"


def test_time_budget_stops_early_and_still_writes_a_whole_adapter(tiny_model, tiny_data, tmp_path):
    """Issue 26's CPU recipe: ``--max-minutes`` ends training after the step that spends it; the adapter, its
    records and the class-balanced decision weights are written as after a full run, and say where it stopped."""
    out = tmp_path / "adapter"
    cfg = make_config(tiny_model, tiny_data, out, max_steps=6, eval_steps=0, max_minutes=1e-6,
                      decision_weight=2.0, balance_decisions=True)  # fmt: skip
    train_model.main(cfg)
    info = json.loads((out / "model_info.json").read_text())
    results = info["training"]["results"]
    assert results["global_step"] == 1 and results["stopped_by_time_budget"] is True
    assert (out / "adapter_model.safetensors").is_file() and (out / "run_config.json").is_file()


def test_val_sample_is_mixed_as_the_training_sample(tiny_model, tiny_data, tmp_path):
    """The best checkpoint is chosen by eval loss: with ``--treatment-share 1`` (the CPU recipe) the val sample
    must hold treatment examples only, or a QA-heavy val sample picks the checkpoint for what is not trained."""
    out = tmp_path / "adapter"
    cfg = make_config(tiny_model, tiny_data, out, max_steps=1, eval_steps=0, limit_examples=4,
                      limit_val_examples=4, treatment_share=1.0, max_length=2048)  # fmt: skip
    train_model.main(cfg)
    examples = json.loads((out / "model_info.json").read_text())["data"]["examples"]
    assert examples["train"]["total"] == examples["train"]["treatment"] == 4
    assert examples["val"]["total"] == examples["val"]["treatment"] == 4
