import json

import pytest
from conftest import shared_path

from medlora.common.cli import UsageError
from medlora.model import loading as modeling


def test_tiny_random_is_tinyllama_family(tiny_model):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model)
    assert (
        cfg.model_type == "llama" and cfg.num_key_value_heads < cfg.num_attention_heads
    )  # grouped-query attention
    tok = modeling.load_tokenizer(tiny_model)
    assert (tok.bos_token, tok.eos_token) == ("<s>", "</s>") and tok.pad_token != tok.eos_token
    assert cfg.vocab_size == len(tok) and cfg.eos_token_id == tok.eos_token_id
    assert "<|assistant|>" in tok.chat_template
    source = json.loads((tiny_model / modeling.SOURCE_FILE).read_text())
    assert source["model_id"] == "tiny-random" and source["tokenizer"] == "byte-level"


@pytest.mark.integration
def test_tiny_random_with_tinyllama_tokenizer(tmp_path):
    tok_file = shared_path("tinyllama", "tokenizer.model")
    modeling.build_tiny_random(tmp_path / "m", tokenizer_source=tok_file)
    tok = modeling.load_tokenizer(tmp_path / "m")
    assert len(tok) == 32000 and tok("Hello").input_ids[0] == 1  # BOS added, as TinyLlama's tokenizer does
    assert tok.convert_ids_to_tokens(tok("</s>", add_special_tokens=False).input_ids) == ["</s>"]


def test_rebuild_replaces_atomically(tmp_path):
    dest = tmp_path / "tiny"
    modeling.build_tiny_random(dest, seed=1)
    first = (dest / "model.safetensors").read_bytes()
    modeling.build_tiny_random(dest, seed=1)
    assert (dest / "model.safetensors").read_bytes() == first  # same seed, same weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no temp or .old directories left


def test_local_directory_is_copied_with_provenance(tiny_model, tmp_path):
    dest = tmp_path / "tinyllama"
    source = modeling.copy_local_model(tiny_model, dest)
    assert (dest / "config.json").is_file() and source["model_id"] == "tiny-random"
    with pytest.raises(UsageError, match="not a model directory"):
        modeling.copy_local_model(tmp_path, tmp_path / "x")


@pytest.fixture
def online(monkeypatch):
    """The Hub-mocking tests describe online behaviour: isolate them from an exported HF_HUB_OFFLINE=1
    (huggingface_hub reads it once, at import, into ``constants``)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


class FakeApi:
    def __init__(self, error=None):
        self.error = error

    def model_info(self, repo_id, revision=None):
        if self.error:
            raise self.error
        return type("Info", (), {"sha": "abc123"})()


def test_hub_download_records_resolved_commit(tmp_path, monkeypatch, online):
    import huggingface_hub

    calls = {}

    def fake_snapshot(repo_id, revision=None, local_dir=None, allow_patterns=None):
        calls.update(repo_id=repo_id, revision=revision, patterns=allow_patterns)
        local_dir.mkdir(parents=True, exist_ok=True)
        (local_dir / "config.json").write_text("{}")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    source = modeling.download_from_hub(
        "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "main", tmp_path / "m", api=FakeApi()
    )
    assert calls["revision"] == "abc123"  # the files fetched are exactly the commit recorded
    assert "*.safetensors" in calls["patterns"] and "*.bin" not in calls["patterns"]
    assert source["resolved_revision"] == "abc123" and source["requested_revision"] == "main"
    assert modeling.read_model_source(tmp_path / "m")["resolved_revision"] == "abc123"


def test_offline_mode_uses_the_cache_without_asking_the_hub(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def fake_snapshot(repo_id, revision=None, local_dir=None, allow_patterns=None):
        local_dir.mkdir(parents=True, exist_ok=True)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    failing = FakeApi(AssertionError("the Hub must not be asked when offline"))
    source = modeling.download_from_hub("a/b", "main", tmp_path / "m", api=failing)
    assert source["resolved_revision"] is None and source["requested_revision"] == "main"


def test_hub_errors_become_usage_errors(tmp_path, online):
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(UsageError, match="tiny-random"):
        modeling.download_from_hub("a/b", None, tmp_path, api=FakeApi(ConnectionError("refused")))
    err = RepositoryNotFoundError(
        "nope", response=type("R", (), {"headers": {}, "status_code": 404, "url": "u", "request": None})()
    )
    with pytest.raises(UsageError, match="not found on the Hub"):
        modeling.download_from_hub("a/b", None, tmp_path, api=FakeApi(err))


def test_adapter_on_another_base_is_refused(tiny_model, tiny_adapter, tmp_path):
    modeling.check_adapter_matches(tiny_model, tiny_adapter)
    other = tmp_path / "other"
    modeling.build_tiny_random(other, seed=5)
    with pytest.raises(UsageError, match="was trained on"):
        modeling.check_adapter_matches(other, tiny_adapter)


def test_load_model_merges_adapter(tiny_model, tiny_adapter):
    import torch

    base, tok, info = modeling.load_model(tiny_model)
    merged, _, info2 = modeling.load_model(tiny_model, tiny_adapter)
    ids = torch.tensor([tok("hello").input_ids])
    assert not torch.allclose(base(ids).logits, merged(ids).logits)  # the adapter changes the outputs
    assert not any("lora" in n for n, _ in merged.named_parameters())  # merged: no LoRA overhead per token
    assert info["adapter"] is None and info2["adapter"] == str(tiny_adapter)
    with pytest.raises(UsageError, match="train_model.py"):
        modeling.load_model(tiny_model, tiny_model)
    with pytest.raises(UsageError, match="fp16 needs a CUDA GPU"):
        modeling.load_model(tiny_model, precision="fp16", device="cpu")


def test_adapter_without_recorded_base_falls_back_to_adapter_config(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "some/base"}))
    (tmp_path / "model_info.json").write_text(json.dumps({"metrics": {}}))
    assert modeling.adapter_base(tmp_path) == {"model_id": "some/base", "resolved_revision": None}


@pytest.mark.parametrize(
    "path, command",
    [
        ("models/smollm2-135m", "python download_model.py --model smollm2-135m --skip-data"),
        ("models/tiny-random", "python download_model.py --model tiny-random"),
        ("models/tinyllama", "python download_model.py`"),
        ("/elsewhere/my-model", "python download_model.py --model HUB_ID_OR_DIRECTORY"),
    ],
)
def test_a_missing_model_names_the_command_for_that_model(path, command):
    from medlora.model.loading import missing_adapter_error, missing_model_error

    message = str(missing_model_error(path))
    assert message.startswith(f"base model not found at {path}: ") and command in message
    # Without the Hub, the embedded model is the way out; the SmolLM2 hint needs no Hub in the first place.
    assert "smollm2-135m" in message or "tiny-random" in path
    assert "examples/cpu_smollm2.yaml" in str(missing_adapter_error("models/smollm2-medquad-treatment"))
    assert "`python train_model.py` first" in str(missing_adapter_error("models/tinyllama-medquad-treatment"))
