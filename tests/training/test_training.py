"""medlora.training.run: tokenised splits (label mask, shortening, cache), padding, run records, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlora.common.cli import UsageError
from medlora.common.files import write_jsonl
from medlora.data.prompts import IGNORE_INDEX, qa_messages
from medlora.model.loading import load_tokenizer
from medlora.training import objective
from medlora.training import run as training

LONG_ANSWER = " ".join(f"Sentence number {i} says something about the condition." for i in range(40))


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(tiny_model)


def qa_row(question: str, answer: str) -> dict:
    return {"kind": "qa", "messages": qa_messages(question, answer)}


def test_labels_cover_only_the_answer_and_its_eos(tokenizer):
    ds, stats = training.tokenise_rows(tokenizer, [qa_row("What is gout?", "Gout is arthritis.")], 512)
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    first = next(i for i, t in enumerate(labels) if t != IGNORE_INDEX)
    assert all(t == IGNORE_INDEX for t in labels[:first])
    assert labels[first:] == ids[first:], "every token after the prompt is a target"
    assert labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(labels[first:]) == "Gout is arthritis." + tokenizer.eos_token
    assert "<|assistant|>" in tokenizer.decode(ids[:first])
    assert stats == {"total": 1, "treatment": 0, "used": 1, "shortened": 0, "dropped": 0, "tokens": len(ids)}
    assert ds[0]["length"] == len(ids)


def test_overlong_examples_are_shortened_with_eos_kept_or_dropped(tokenizer):
    rows = [qa_row("What is gout?", LONG_ANSWER), qa_row("Q" * 400, "A short answer.")]
    ds, stats = training.tokenise_rows(tokenizer, rows, 400)
    assert (stats["shortened"], stats["dropped"], stats["used"]) == (1, 1, 1)
    ex = ds[0]
    assert len(ex["input_ids"]) <= 400 and ex["labels"][-1] == tokenizer.eos_token_id
    text = tokenizer.decode([t for t in ex["labels"] if t != IGNORE_INDEX])
    assert text.endswith("condition." + tokenizer.eos_token), "cut at a sentence boundary"


def test_a_limited_split_samples_every_kind_not_the_first_rows():
    rows = [{"id": f"qa-{i:03d}", "kind": "qa"} for i in range(80)]
    rows += [{"id": f"treat-{i:03d}", "kind": "treatment"} for i in range(20)]
    picked = training.sample_rows(rows, 20)
    assert len(picked) == 20 and {r["kind"] for r in picked} == {"qa", "treatment"}
    assert picked == sorted(picked, key=rows.index)  # file order kept
    assert training.sample_rows(rows, 20) == picked  # seeded
    assert training.sample_rows(rows, 0) == rows == training.sample_rows(rows, 500)


def test_tokenised_split_is_cached_and_keyed(tokenizer, tiny_model, tmp_path, monkeypatch):
    split = tmp_path / "train.jsonl"
    write_jsonl(split, [qa_row(f"What is condition {i}?", f"It is number {i}.") for i in range(5)])
    fp = training.tokenizer_fingerprint(tiny_model)
    ds, stats = training.load_split(split, tokenizer, fp, 400, tmp_path / "cache")
    assert len(ds) == 5 and len(list((tmp_path / "cache").iterdir())) == 1

    def fail(*a, **k):
        raise AssertionError("tokenised again although cached")

    monkeypatch.setattr(training, "tokenise_rows", fail)
    again, stats_again = training.load_split(split, tokenizer, fp, 400, tmp_path / "cache")
    assert again["input_ids"] == ds["input_ids"] and stats_again == stats
    monkeypatch.undo()
    limited, _ = training.load_split(split, tokenizer, fp, 400, tmp_path / "cache", limit=2)
    assert len(limited) == 2
    training.load_split(split, tokenizer, fp, 300, tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 3, "limit and max length are part of the key"
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")], "no temp dir left"


def test_the_cache_key_follows_the_prompt_code_not_its_imports(tmp_path, monkeypatch):
    split = tmp_path / "train.jsonl"
    write_jsonl(split, [{"id": "a", "messages": qa_messages("q", "a")}])
    key = training.cache_key(split, "fp", 400, 0)
    src = Path(training.prompts.__file__).read_text()
    moved = tmp_path / "prompts.py"
    moved.write_text(src.replace("from ..common.schemas import", "from ..elsewhere.schemas import"))
    monkeypatch.setattr(training.prompts, "__file__", str(moved))
    assert training.cache_key(split, "fp", 400, 0) == key, "an import path is no prompt change"
    moved.write_text(
        src.replace("<|assistant|>", "<|helper|>", 1) if "<|assistant|>" in src else src + "X = 1\n"
    )
    assert training.cache_key(split, "fp", 400, 0) != key, "a change to the prompt code is"


def test_padding_never_uses_eos_and_is_masked(tokenizer):
    pad = training.pad_token_id(tokenizer)
    assert pad != tokenizer.eos_token_id
    collate = objective.PadCollator(pad, pad_to_multiple_of=8)
    eos = tokenizer.eos_token_id
    batch = collate(
        [{"input_ids": [1, 5, eos], "labels": [-100, 5, eos]}, {"input_ids": [1], "labels": [-100]}]
    )
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][1, 1:].tolist() == [pad] * 7
    assert batch["labels"][0].tolist() == [-100, 5, eos] + [-100] * 5
    assert batch["attention_mask"].sum(dim=1).tolist() == [3, 1]


class _Tok:
    def __init__(self, pad, eos, unk):
        self.pad_token_id, self.eos_token_id, self.unk_token_id = pad, eos, unk


def test_pad_token_falls_back_to_unk_when_pad_is_eos():
    assert training.pad_token_id(_Tok(2, 2, 0)) == 0
    assert training.pad_token_id(_Tok(None, 2, 0)) == 0
    assert training.pad_token_id(_Tok(7, 2, 0)) == 7
    with pytest.raises(ValueError):
        training.pad_token_id(_Tok(2, 2, None))


def test_length_grouping_cuts_padding():
    lengths = [20 + (i * 37) % 480 for i in range(400)]
    grouped = training.padding_share(lengths, 4, grouped=True)
    random_ = training.padding_share(lengths, 4, grouped=False)
    assert 0 <= grouped < random_ / 3
    assert training.padding_share([10, 10, 10, 10], 4, grouped=False) == 0


def test_step_records_merge_train_and_eval_entries():
    history = [
        {"loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": 0.5, "step": 1},
        {"loss": 1.5, "grad_norm": 0.9, "learning_rate": 5e-5, "epoch": 1.0, "step": 2},
        {"eval_loss": 1.7, "eval_runtime": 0.1, "epoch": 1.0, "step": 2},
        {"train_runtime": 3.0, "train_loss": 1.75, "epoch": 1.0, "step": 2},
    ]
    recs = training.step_records(history)
    assert [r["step"] for r in recs] == [1, 2]
    assert recs[1] == {
        "step": 2,
        "epoch": 1.0,
        "loss": 1.5,
        "learning_rate": 5e-5,
        "grad_norm": 0.9,
        "eval_loss": 1.7,
    }
    assert recs[0]["eval_loss"] is None


def test_find_checkpoint_skips_partial_ones_and_refuses_other_settings(tmp_path):
    ckpt = tmp_path / "checkpoints"
    assert training.find_checkpoint(tmp_path / "none", {"a": 1}) is None
    for step, complete in ((2, True), (4, True), (6, False)):
        (ckpt / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (ckpt / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (ckpt / "run_fingerprint.json").write_text(json.dumps({"a": 1, "b": "x"}))
    assert Path(training.find_checkpoint(ckpt, {"a": 1, "b": "x"})).name == "checkpoint-4"
    with pytest.raises(UsageError, match="b"):
        training.find_checkpoint(ckpt, {"a": 1, "b": "y"})


def test_training_dtype_rules():
    import torch

    assert training.training_dtype("auto", "cpu") is torch.float32
    assert training.training_dtype("bf16", "cpu") is torch.bfloat16
    with pytest.raises(UsageError, match="fp16"):
        training.training_dtype("fp16", "cpu")
    with pytest.raises(UsageError, match="4-bit|4bit"):
        training.training_dtype("auto", "cpu", load_in_4bit=True)


def test_lora_weights_stay_fp32_under_a_half_precision_base(tiny_model):
    import torch

    model, counts = training.build_lora_model(tiny_model, torch.bfloat16, 4, 8, 0.0, ["q_proj", "v_proj"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    assert counts["trainable_parameters"] == sum(p.numel() for p in trainable)
    assert any(p.dtype == torch.bfloat16 for p in model.parameters() if not p.requires_grad)


def test_lora_weights_start_from_an_earlier_adapter_of_the_same_layout_only(tiny_model, tmp_path):
    import torch

    first, _ = training.build_lora_model(tiny_model, torch.float32, 4, 8, 0.0, ["q_proj", "v_proj"])
    with torch.no_grad():
        for name, p in first.named_parameters():
            if "lora_B" in name:
                p.fill_(0.5)  # LoRA starts with B = 0: a value it would not have by chance
    first.save_pretrained(tmp_path / "a")
    again, _ = training.build_lora_model(
        tiny_model, torch.float32, 4, 8, 0.0, ["q_proj", "v_proj"], init_adapter=tmp_path / "a"
    )
    b = [p for n, p in again.named_parameters() if "lora_B" in n]
    assert b and all(bool((p == 0.5).all()) and p.requires_grad for p in b)
    with pytest.raises(ValueError, match="LoRA layout"):
        training.build_lora_model(
            tiny_model, torch.float32, 4, 8, 0.0, ["q_proj"], init_adapter=tmp_path / "a"
        )


def test_plot_loss_writes_a_png(tmp_path):
    recs = [{"step": 1, "loss": 2.0, "eval_loss": None}, {"step": 2, "loss": 1.0, "eval_loss": 1.5}]
    training.plot_loss(recs, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.real_model
def test_a_few_lora_steps_on_real_examples_lower_smollm2s_loss(smollm2_dir, smollm2_tokenizer, tiny_data):
    """The training path end to end on the real model: real MedQuAD examples tokenised by encode_example with
    SmolLM2's ChatML mask, padded by PadCollator (pad is not <|im_end|>), LoRA on every projection."""
    import torch

    from medlora.common.files import read_jsonl
    from medlora.training.config import LLAMA_PROJECTIONS

    tok = smollm2_tokenizer
    rows = [r for r in read_jsonl(tiny_data / "train.jsonl") if r["kind"] == "qa"][:2]
    ds, stats = training.tokenise_rows(tok, rows, max_length=128)
    assert stats["used"] == 2
    assert all(f["labels"][-1] == tok.convert_tokens_to_ids("<|im_end|>") for f in ds)
    batch = objective.PadCollator(training.pad_token_id(tok))([ds[0], ds[1]])
    assert tok.eos_token_id not in batch["input_ids"][batch["attention_mask"] == 0].tolist()
    torch.manual_seed(0)
    model, counts = training.build_lora_model(smollm2_dir, torch.float32, 8, 16.0, 0.0, LLAMA_PROJECTIONS)
    assert counts["trainable_parameters"] > 0
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(4):
        loss = model(**batch).loss
        losses.append(float(loss))
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        losses.append(float(model(**batch).loss))
    assert losses[-1] < losses[0] - 0.1, losses
