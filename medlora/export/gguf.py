"""GGUF export for llama.cpp, Ollama and LM Studio: a Llama-architecture model (adapter merged) as F16 GGUF,
quantised by llama.cpp to Q8_0 and Q4_K_M, with an Ollama ``Modelfile``.

``write_f16_gguf`` writes what llama.cpp's own ``convert_hf_to_gguf.py`` writes for a ``LlamaForCausalLM``:
the same metadata keys, tensor names (gguf-py's name map) and Q/K row order (the rotary halves interleaved the
way llama.cpp's RoPE reads them), F16 matrices and F32 norms, with the tokenizer and chat template embedded so
the file alone is enough to serve. The converter is not reused because it is not in any wheel (only in
llama.cpp's source tree) and it refuses byte-level BPE tokenizers it holds no hash for, such as the project's
offline test tokenizer. Only Llama is written: anything else is refused with what is supported.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from ..common.cli import UsageError

log = logging.getLogger(__name__)

SUPPORTED = (
    "Llama-architecture models (LlamaForCausalLM, such as TinyLlama or SmolLM2) with plain RoPE and no biases"
)
QUANTS = ("F16", "Q8_0", "Q4_K_M")
# llama.cpp's llama_ftype values (include/llama.h) for the quantisations this stage writes.
LLAMA_FTYPE = {"F16": 1, "Q8_0": 7, "Q4_K_M": 15}


def check_llama(config: Any) -> None:
    """Refuse what llama.cpp's ``llama`` architecture would load wrongly or not at all, saying what works."""
    arch = (getattr(config, "architectures", None) or ["?"])[0]
    problems = []
    if getattr(config, "model_type", None) != "llama" or arch != "LlamaForCausalLM":
        problems.append(f"architecture {arch} (model_type {getattr(config, 'model_type', None)})")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") != "default":
        problems.append(f"RoPE scaling {rope.get('rope_type')}")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        problems.append("bias terms")
    head_dim = getattr(config, "head_dim", None)
    if head_dim and head_dim * config.num_attention_heads != config.hidden_size:
        problems.append(f"head_dim {head_dim} != hidden_size / heads")
    if problems:
        raise UsageError(f"cannot export {', '.join(problems)}: the GGUF export supports {SUPPORTED}")


def rope_theta(config: Any) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    return float(rope.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def permute_rope(w, n_head: int):
    """HF stores each head's rotary dimensions as two halves; llama.cpp's RoPE pairs neighbours."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _vocab(tokenizer: Any, tok_dir: Path, n_vocab: int) -> dict[str, Any]:
    """Tokens, scores, types and merges in llama.cpp's layout, from a SentencePiece or byte-level BPE tokenizer."""
    import gguf

    if (tok_dir / "tokenizer.model").is_file():
        spm = gguf.SentencePieceVocab(tok_dir)
        tokens, scores, types = zip(*spm.all_tokens(), strict=True)
        out = {"model": "llama", "tokens": list(tokens), "scores": list(scores), "types": list(types)}
    elif (tok_dir / "tokenizer.json").is_file():
        spec = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
        model = spec.get("model", {})
        if model.get("type") == "BPE" and model.get("byte_fallback"):
            out = _spm_from_bpe(spec, tokenizer)
        elif model.get("type") == "BPE" and (spec.get("decoder") or {}).get("type") == "ByteLevel":
            vocab = dict(model["vocab"])
            special = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
            vocab.update({t["content"]: t["id"] for t in spec.get("added_tokens", [])})
            by_id = sorted(vocab.items(), key=lambda kv: kv[1])
            if [i for _, i in by_id] != list(range(len(by_id))):
                raise UsageError(f"{tok_dir}/tokenizer.json: token ids are not contiguous")
            merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
            # llama.cpp requires the merges key and gguf-py refuses an empty array: a vocabulary without
            # merges gets one between two special tokens, which no text ever forms, so it never applies.
            merges = merges or [f"{tokenizer.bos_token} {tokenizer.eos_token}"]
            out = {
                "model": "gpt2",
                "tokens": [t for t, _ in by_id],
                "scores": None,
                "types": [
                    gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t, _ in by_id
                ],
                "merges": merges,
            }
        else:
            raise UsageError(f"{tok_dir}/tokenizer.json: unsupported tokenizer model {model.get('type')}")
    else:
        raise UsageError(f"no tokenizer.model or tokenizer.json in {tok_dir}")
    if len(out["tokens"]) > n_vocab:
        raise UsageError(f"the tokenizer has {len(out['tokens'])} tokens, the model only {n_vocab}")
    for i in range(len(out["tokens"]), n_vocab):  # rows the model has and the tokenizer never emits
        out["tokens"].append(f"[PAD{i}]")
        out["types"].append(gguf.TokenType.UNUSED)
        if out["scores"] is not None:
            out["scores"].append(-1000.0)
    return out


def _spm_from_bpe(spec: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """A SentencePiece vocabulary saved as tokenizer.json (what transformers 5 writes for TinyLlama) in
    llama.cpp's ``llama`` layout. llama.cpp merges the pair whose result scores highest, so each token scores
    minus the rank of the merge that makes it: the merge order of tokenizer.json, hence the same tokens."""
    import gguf

    model = spec["model"]
    vocab = dict(model["vocab"])
    vocab.update({t["content"]: t["id"] for t in spec.get("added_tokens", [])})
    rank: dict[str, int] = {}
    for i, merge in enumerate(model.get("merges", [])):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(left + right, i)
    special = set(tokenizer.all_special_ids)
    tokens, scores, types = [], [], []
    for piece, tid in sorted(vocab.items(), key=lambda kv: kv[1]):
        if tid != len(tokens):
            raise UsageError(f"tokenizer.json: token ids are not contiguous at {tid}")
        tokens.append(piece)
        scores.append(-float(rank.get(piece, 0 if len(piece) == 1 else len(rank))))
        if tid in special:
            types.append(gguf.TokenType.CONTROL)
        elif piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.UNKNOWN if piece == tokenizer.unk_token else gguf.TokenType.NORMAL)
    return {"model": "llama", "tokens": tokens, "scores": scores, "types": types}


# llama.cpp's names for pre-tokenizer regexes of byte-level BPE vocabularies (src/llama-vocab.cpp), tried in
# this order: its own converter picks one from a hash of the tokens of a test text and refuses tokenizers it
# holds no hash for; here each is tried on the probe text and kept when llama.cpp then gives transformers'
# tokens ("default" for the offline test tokenizer, "smollm" for SmolLM2's, splitting digits one by one).
PRE_TOKENIZERS = ("default", "gpt-2", "smollm", "llama-bpe", "qwen2", "starcoder", "olmo")
PRE_PROBE = (
    "Take 1250 mg twice-daily; it's 3.5% (don't stop) \n\n  BP 180/120 mmHg\t- naïve café, 中文 ﬁ?! "
    'I\'ll you\'ve THEY\'RE x  y   z\n 2024-01-05 [1, 12] {"a":"b"} ...\u00a0end'
)


def _writer(cfg: Any, tokenizer: Any, vocab: dict[str, Any], path: Path, name: str, pre: str):
    """A GGUFWriter holding every key of the model (hyperparameters, vocabulary, template), no tensors yet."""
    import gguf

    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(rope_theta(cfg))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(vocab["model"])
    w.add_tokenizer_pre(pre)
    if vocab["model"] == "llama":
        # llama.cpp would put "▁" at the start of every text between special tokens (after each </s> of the
        # chat template); the project's tokenizer only at the start of the text, which GGUFTokenizer adds.
        w.add_add_space_prefix(False)
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    if vocab["scores"] is not None:
        w.add_token_scores(vocab["scores"])
    if vocab.get("merges"):
        w.add_token_merges(vocab["merges"])
    for kind in ("bos", "eos", "unk", "pad"):
        if (tid := getattr(tokenizer, f"{kind}_token_id", None)) is not None:
            getattr(w, f"add_{kind}_token_id")(tid)
    adds_bos = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    w.add_add_bos_token(adds_bos)
    w.add_add_eos_token(False)
    w.add_chat_template(tokenizer.chat_template)
    return w


def pre_tokenizer(cfg: Any, tokenizer: Any, vocab: dict[str, Any], work: Path) -> str:
    """The first of ``PRE_TOKENIZERS`` with which llama.cpp tokenises ``PRE_PROBE`` as ``tokenizer`` does
    (SentencePiece vocabularies have no pre-tokenizer: "default"); ``UsageError`` when none does."""
    if vocab["model"] != "gpt2":
        return "default"
    from llama_cpp import Llama

    want = tokenizer(PRE_PROBE, add_special_tokens=False)["input_ids"]
    got = {}
    for pre in PRE_TOKENIZERS:
        path = work / f"vocab-{pre}.gguf"
        w = _writer(cfg, tokenizer, vocab, path, "probe", pre)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        llm = Llama(str(path), vocab_only=True, verbose=False)
        got[pre] = llm.tokenize(PRE_PROBE.encode("utf-8"), add_bos=False, special=False)
        llm.close()
        path.unlink()
        if got[pre] == want:
            return pre
    raise UsageError(
        f"llama.cpp tokenises text differently from this tokenizer with every pre-tokenizer tried "
        f"({', '.join(PRE_TOKENIZERS)}): the export supports {SUPPORTED}"
    )


def write_f16_gguf(model: Any, tokenizer: Any, tok_dir: Path, path: Path, name: str) -> None:
    """The merged model as an F16 GGUF at ``path`` (the caller makes it atomic)."""
    import gguf
    import numpy as np
    import torch

    cfg = model.config
    check_llama(cfg)
    if not tokenizer.chat_template:
        raise UsageError(f"the tokenizer in {tok_dir} has no chat template to embed")
    vocab = _vocab(tokenizer, tok_dir, cfg.vocab_size)
    pre = pre_tokenizer(cfg, tokenizer, vocab, path.parent)
    w = _writer(cfg, tokenizer, vocab, path, name, pre)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for key, tensor in model.state_dict().items():
        if key.startswith("lm_head") and cfg.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd when there is no output tensor
        new = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise UsageError(f"tensor {key} has no llama.cpp counterpart: the export supports {SUPPORTED}")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if key.endswith("q_proj.weight"):
            data = permute_rope(data, cfg.num_attention_heads)
        elif key.endswith("k_proj.weight"):
            data = permute_rope(data, cfg.num_key_value_heads)
        # Norm vectors stay F32 as llama.cpp's converter keeps them; matrices are F16.
        w.add_tensor(new, data.astype(np.float16) if data.ndim == 2 else np.ascontiguousarray(data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src: Path, dst: Path, quant: str, threads: int = 0) -> None:
    """llama.cpp's own quantiser (``llama_model_quantize``) from the F16 file; ``dst`` is written in place."""
    import llama_cpp
    from llama_cpp import _logger

    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:  # ctypes must keep the callback alive while llama.cpp holds it
        _LOG_CALLBACK = llama_cpp.llama_log_callback(_log_from_llama_cpp)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPE[quant]
    params.nthread = threads
    # llama.cpp prints a line per tensor: to the debug log, its warnings and errors to the log as such.
    llama_cpp.llama_log_set(_LOG_CALLBACK, None)
    try:
        failed = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) != 0
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, None)
    if failed:
        raise RuntimeError(f"llama.cpp could not quantise {src} to {quant} (MEDLORA_VERBOSE=1 shows its log)")


_LOG_CALLBACK = None


def _log_from_llama_cpp(level: int, text: bytes, user_data: Any) -> None:
    # ggml_log_level: 1 debug, 2 info, 3 warning, 4 error, 5 continuation (kept at debug).
    message = text.decode("utf-8", "replace").rstrip()
    if not message:
        return
    level = {3: logging.WARNING, 4: logging.ERROR}.get(level, logging.DEBUG)
    if level == logging.WARNING and _PER_TENSOR.search(message):
        level = (
            logging.DEBUG
        )  # one line per tensor says nothing new; the "N tensors required fallback" summary stays
    log.log(level, "llama.cpp: %s", message)


# llama.cpp's per-tensor quantisation notes (a width not divisible by the block size, the type used instead).
_PER_TENSOR = re.compile(r"not divisible by|falling back to|ncols \d+", re.I)


_OLLAMA = {
    "zephyr": (
        'TEMPLATE """{{ if .System }}<|system|>\n{{ .System }}</s>\n{{ end }}<|user|>\n{{ .Prompt }}</s>\n'
        '<|assistant|>\n"""\n',
        ("</s>", "<|user|>", "<|system|>"),
    ),
    "chatml": (
        'TEMPLATE """{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}<|im_start|>user\n'
        '{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"""\n',
        ("<|im_end|>", "<|im_start|>"),
    ),
}


def modelfile(gguf_name: str, system: str, num_ctx: int, family: str = "zephyr") -> str:
    """An Ollama Modelfile for the model's prompt format (``template_family``: TinyLlama's Zephyr style or
    ChatML), the treatment system prompt and greedy decoding.

    The template writes exactly what the project's chat template renders for one system and one user turn.
    """
    template, stops = _OLLAMA[family]
    return (
        "# Research software, not medical advice: outputs served by Ollama skip this project's schema grammar\n"
        "# and safety rules (red flags, allergy conflicts, disclaimer); inference.py --backend llama-cpp applies them.\n"
        f"FROM ./{gguf_name}\n"
        + template
        + f'SYSTEM """{system}"""\n'
        + "".join(f'PARAMETER stop "{s}"\n' for s in stops)
        + "PARAMETER temperature 0\n"
        + f"PARAMETER num_ctx {num_ctx}\n"
    )
