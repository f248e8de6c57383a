"""Schema-constrained generation with llama.cpp from an exported GGUF: the prompts, grammar and results of
``generation.SectionsGenerator``, on the bytes-per-weight budget of a CPU, a laptop or an edge box.

The grammar is not a second copy: xgrammar compiles the transformers path's own grammar
(``generation.sections_grammar()``) over the GGUF's vocabulary, each token being the bytes llama.cpp renders
for it (``grammar_compiler``). (llama.cpp's JSON-schema conversion would let raw control characters and
leading spaces into strings, which the schema refuses; its GBNF sampler cost 4-5 ms a token over SmolLM2's
49,152 tokens where xgrammar's cached token masks cost about 0.4 ms.)

Prompts come from the same builder (``prompts.encode_prompt``) through ``GGUFTokenizer``, which renders the
chat template embedded in the GGUF and tokenises with the GGUF's vocabulary; results are decoded by the same
``generation.finish_row``. Decoding is greedy over the logits the grammar leaves, and each chosen token's
constrained probability feeds the per-section confidence as on the transformers path (``GrammarMask.pick``).
The model is loaded by ``load_gguf``: checked, with llama.cpp's extra buffer types chosen for this CPU and,
before serving, one token evaluated in a child process (``llama_cpu.py``).
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common.cli import UsageError
from ..common.progress import TokenProgress
from ..common.schemas import PatientRecord
from ..data.decisions import EmptyBias, Pieces, load_bias
from ..data.prompts import instructions_ids
from ..data.templates import render_template, template_family
from .base import DEFAULT_MAX_NEW_TOKENS, Generated, GrammarGenerator, bytes_tokenizer_info, finish_row
from .prompt_lookup import PromptLookup

log = logging.getLogger(__name__)

# Prompt-lookup drafting (prompt_lookup.py): off. The drafting is exact for a model whose logits do not depend
# on how passes group tokens (the test with such a model), but llama.cpp's CPU kernels round one-token passes
# differently from wider ones (bench/llama_pass_width.py: up to 0.8 logits on Q8_0/Q4_K_M), so verified drafts
# can flip near-ties, and a wider pass costs 1.7-8x a one-token pass here (docs/llama-cpp.md has the figures).
PROMPT_LOOKUP_DEFAULT = False


def check_gguf(path: str | Path) -> dict[str, Any]:
    """The metadata of a GGUF this backend can serve, or ``UsageError`` naming the file and what is wrong.

    Refused: a missing file, one that is not GGUF, a truncated or corrupt one (tensor data past the end of the
    file), a model that is not Llama, and one whose chat template is not a prompt format the project trains
    (TinyLlama's Zephyr style, or ChatML as SmolLM2-Instruct's).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--gguf {path}: file not found (export one with `python export_model.py`)")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise UsageError(f"--gguf {path}: not a GGUF file")
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path)
        size = path.stat().st_size
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
        if end > size:
            raise ValueError(f"tensor data ends at byte {end}, the file has {size}")
        meta = {}
        for key in ("general.architecture", "general.name", "tokenizer.chat_template"):
            field = reader.get_field(key)
            meta[key] = field.contents() if field is not None else None
    except Exception as e:  # GGUFReader raises several unrelated types on a cut-off file
        raise UsageError(f"--gguf {path}: truncated or corrupt GGUF ({type(e).__name__}: {e})") from None
    if meta["general.architecture"] != "llama":
        raise UsageError(
            f"--gguf {path}: a {meta['general.architecture']} model; this backend serves Llama GGUFs "
            "written by export_model.py"
        )
    if template_family(meta["tokenizer.chat_template"]) is None:
        raise UsageError(
            f"--gguf {path}: its chat template is neither TinyLlama's nor ChatML (SmolLM2's), so it is not a "
            "model this project exported (use export_model.py on a TinyLlama or SmolLM2 base and adapter)"
        )
    return meta


class GGUFTokenizer:
    """What ``prompts.encode_prompt`` and ``generation.finish_row`` use of a tokenizer, from the GGUF alone."""

    def __init__(self, llm: Any):
        import llama_cpp

        self.llm, self._vocab = llm, llm._model.vocab
        self.bos_token_id = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos_token_id = llama_cpp.llama_vocab_eos(self._vocab)
        self.pad_token_id = None
        self.bos_token = self.piece(self.bos_token_id, special=True).decode("utf-8")
        self.eos_token = self.piece(self.eos_token_id, special=True).decode("utf-8")
        self.chat_template = llm.metadata["tokenizer.chat_template"]
        self.add_bos = llama_cpp.llama_vocab_get_add_bos(self._vocab)
        # Exported SentencePiece vocabularies leave the word-start "▁" of the text to us (see export.py): it
        # goes before text that starts with neither a space nor a special token, as transformers does.
        self._prefix = llm.metadata.get("tokenizer.ggml.add_space_prefix") == "false" and (
            llama_cpp.llama_vocab_type(self._vocab) == llama_cpp.LLAMA_VOCAB_TYPE_SPM
        )
        n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._specials = tuple(
            self.piece(t, special=True).decode("utf-8", "replace")
            for t in range(n_vocab)
            if llama_cpp.llama_vocab_is_control(self._vocab, t)
        )

    def piece(self, token: int, special: bool = False) -> bytes:
        import llama_cpp

        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        if n < 0:
            raise ValueError(f"token {token} is longer than {len(buf)} bytes")
        return buf.raw[:n]

    def apply_chat_template(
        self, messages, tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        if tokenize:
            raise NotImplementedError("render, then call the tokenizer")
        return render_template(
            self.chat_template,
            messages,
            add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )

    def __call__(self, text: str, add_special_tokens: bool = True, **_: Any) -> dict[str, list[int]]:
        if self._prefix and text and not text.startswith((" ", *self._specials)):
            text = " " + text
        ids = self.llm.tokenize(
            text.encode("utf-8"), add_bos=add_special_tokens and self.add_bos, special=True
        )
        return {"input_ids": ids}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True, **_: Any) -> str:
        # The bytes of each piece, as the grammar saw them: control tokens (BOS, EOS) render as nothing.
        return b"".join(self.piece(t, special=not skip_special_tokens) for t in ids).decode(
            "utf-8", "replace"
        )


def grammar_compiler(tokenizer: GGUFTokenizer, n_vocab: int) -> Any:
    """xgrammar's compiler over the GGUF's vocabulary: each token is the bytes llama.cpp renders for it (control
    tokens render as nothing, which xgrammar never allows), EOS the only stop token."""
    import xgrammar as xgr

    pieces = [tokenizer.piece(t) for t in range(n_vocab)]
    return xgr.GrammarCompiler(bytes_tokenizer_info(pieces, n_vocab, tokenizer.eos_token_id))


class GrammarMask:
    """The compiled grammar's parse state for one generation (xgrammar's matcher over the GGUF's vocabulary)."""

    def __init__(self, compiled: Any, n_vocab: int):
        import xgrammar as xgr

        self.n_vocab = n_vocab
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, n_vocab)

    def allowed(self) -> Any:
        """The tokens the grammar allows next, as a boolean array over the vocabulary."""
        import numpy as np

        self._matcher.fill_next_token_bitmask(self._bitmask)
        bits = np.unpackbits(self._bitmask.numpy().view(np.uint8), bitorder="little")
        return bits[: self.n_vocab].astype(bool)

    def pick(self, logits: Any, banned: Any) -> tuple[int, float, bool]:
        """Greedy choice among the tokens the grammar allows (less ``banned``): the token, its probability
        among them, and whether there was more than one (as ``generation.TokenProbs`` records them)."""
        import numpy as np

        allowed = self.allowed()
        allowed[banned] = False
        masked = np.where(allowed, logits, -np.inf)
        token = int(masked.argmax())
        if not allowed[token]:
            raise RuntimeError("the grammar allows no token")
        finite = masked[allowed]
        return token, float(1.0 / np.exp(finite - masked[token]).sum()), finite.size > 1

    def accept(self, token: int) -> None:
        if not self._matcher.accept_token(token):
            raise RuntimeError(f"the grammar refuses token {token}")


def require_llama_cpp() -> Any:
    """The llama_cpp module, or ``UsageError`` naming the install command."""
    try:
        import llama_cpp
    except ImportError:
        raise UsageError(
            "the llama.cpp backend needs llama-cpp-python: pip install -r requirements-llama.txt"
        ) from None
    return llama_cpp


def load_gguf(
    path: str | Path, threads: int = 0, n_ctx: int = 0, extra_bufts: bool | None = None, probe: bool = False
) -> Any:
    """llama.cpp's model and context for a checked GGUF; ``threads`` 0 is llama-cpp-python's default.

    ``extra_bufts`` None: llama_cpu's choice for this build (off where llama.cpp reports AMX). ``probe``: first
    evaluate one token in a child process with the same settings, so a crash is exit 2, not a dead server.
    """
    import os

    from . import llama_cpu

    check_gguf(path)
    Llama = require_llama_cpp().Llama
    if extra_bufts is None:
        setting = os.environ.get(llama_cpu.ENV, "auto")
        extra_bufts = llama_cpu.extra_bufts_for(llama_cpu.system_info(), setting)
    if probe:
        llama_cpu.probe(path, threads, extra_bufts)
    try:
        # Repacking copies the weights out of the file mapping, whose pages then stay resident beside the copy
        # (TinyLlama's Q4_K_M: 1.45 GiB peak instead of 1.0): with it on, read the file instead of mapping it.
        with llama_cpu.model_params(use_extra_bufts=extra_bufts):
            llm = Llama(str(path), n_ctx=n_ctx, n_threads=threads or None, n_threads_batch=threads or None,
                        use_mmap=not extra_bufts, verbose=False)  # fmt: skip
    except ValueError as e:
        raise UsageError(f"--gguf {path}: llama.cpp cannot load it ({e})") from None
    # Freed by llama-cpp-python's __del__ at interpreter teardown, its ctypes functions are already gone and
    # it prints a traceback: close it while they exist.
    ref = weakref.ref(llm)
    atexit.register(lambda: (alive := ref()) is not None and alive.close())
    return llm


def gguf_model_info(path: str | Path, llm: Any) -> dict[str, Any]:
    """Provenance for ``ModelInfo``: the export's ``model_info.json`` entry for this file, or the GGUF's name."""
    path = Path(path)
    info = path.parent / "model_info.json"
    if info.is_file():
        for entry in json.loads(info.read_text(encoding="utf-8")).get("files", []):
            if entry.get("file") == path.name:
                return {"base": entry["base_model"], "revision": entry.get("base_revision"),
                        "adapter": entry.get("source_adapter")}  # fmt: skip
    return {"base": llm.metadata.get("general.name") or str(path), "revision": None, "adapter": None}


class LlamaSectionsGenerator(GrammarGenerator):
    """``SectionsGenerator``'s interface on llama.cpp: ``prompt_ids`` and ``generate`` with the same arguments,
    ``Generated`` results with the same citations and per-section token probabilities."""

    progress_desc = "generating (llama.cpp)"

    def __init__(
        self,
        gguf_path: str | Path,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        threads: int = 0,
        prompt_lookup: bool = PROMPT_LOOKUP_DEFAULT,
        probe: bool = True,
        extra_bufts: bool | None = None,
        empty_bias: dict[str, float] | None = None,
    ):
        import llama_cpp
        import numpy as np

        self.llm = load_gguf(gguf_path, threads, extra_bufts=extra_bufts, probe=probe)
        self.prompt_lookup = prompt_lookup
        self.stats: dict[str, Any] = {}
        self.tokenizer = GGUFTokenizer(self.llm)
        self.info = gguf_model_info(gguf_path, self.llm)
        self.context = self.llm.n_ctx()
        self.max_new_tokens = max_new_tokens
        self.eos_id = self.tokenizer.eos_token_id
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.tokenizer._vocab)
        # Other end-of-generation tokens (SmolLM2's <|endoftext|> beside <|im_end|>) never end a recommendation:
        # EOS is the only end of turn, as on the transformers path.
        self._other_eog = np.array([t for t in range(self.n_vocab) if t != self.eos_id
                                    and llama_cpp.llama_vocab_is_eog(self.tokenizer._vocab, t)], dtype=np.int32)  # fmt: skip
        super().__init__(grammar_compiler(self.tokenizer, self.n_vocab), self.tokenizer)
        self.grammar(0)  # fail now, not mid-request
        # The per-section bias against "[]" chosen on val for the adapter, copied beside the GGUF by the export.
        self.empty_bias = empty_bias if empty_bias is not None else load_bias(Path(gguf_path).parent)
        self._bias = None
        if self.empty_bias:
            self._bias = EmptyBias(self.tokenizer, Pieces(self.tokenizer, self.n_vocab), self.empty_bias, 0)
        self._instructions = instructions_ids(self.tokenizer)

    def generate(
        self,
        records: Sequence[PatientRecord],
        batch_size: int = 1,
        do_sample: bool = False,
        passages: Sequence[Sequence[Any]] | None = None,
    ) -> list[Generated]:
        """One record at a time (batch 1 decoding is what a CPU does at its bandwidth limit); greedy only."""
        if do_sample:
            raise ValueError("the llama.cpp backend decodes greedily")
        passages = passages if passages is not None else [()] * len(records)
        return [
            self.generate_ids(self.prompt_ids(r, ps), len(ps))
            for r, ps in zip(records, passages, strict=True)
        ]

    def _forward(self, tokens: list[int]) -> list[Any]:
        """Evaluate ``tokens`` after the cached ones in one pass: the logits at each position (views into
        llama.cpp's buffer, valid until the next pass). Rolling back is ``self.llm.n_tokens = n``: the next
        pass drops the cache beyond it, as ``Llama.eval`` does."""
        import llama_cpp
        import numpy as np

        llm, n_past = self.llm, self.llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n_past : n_past + len(tokens)] = tokens
        llm.n_tokens += len(tokens)
        self.stats["forward_passes"] += 1
        return [
            np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, i), shape=(self.n_vocab,))
            for i in range(len(tokens))
        ]

    def _prefill(self, prompt: list[int]) -> Any:
        """Evaluate the prompt, return the logits after it (a view, as ``_forward``'s): its fixed instructions in a pass of their own, kept in the cache for the next
        prompt that starts with them, then the rest. The instructions are always evaluated alone and from
        position 0, cached or not, so a recommendation does not depend on what was asked before it."""
        import llama_cpp
        import numpy as np

        split = len(self._instructions) if prompt[: len(self._instructions)] == self._instructions else 0
        llm, evaluated = self.llm, len(prompt)
        if split and llm.n_tokens >= split and llm.input_ids[:split].tolist() == prompt[:split]:
            llm.n_tokens = split  # the next pass drops the cache beyond the instructions
            evaluated -= split
        else:
            llm.reset()
            if split:
                llm.eval(prompt[:split])
                self.stats["forward_passes"] += 1
        llm.eval(prompt[split:])
        self.stats["forward_passes"] += 1
        self.stats["prompt_tokens_evaluated"] = evaluated
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(self.n_vocab,))

    def generate_ids(self, prompt: list[int], n_passages: int = 0) -> Generated:

        budget = min(self.max_new_tokens, self.context - len(prompt))
        if budget < 1:
            raise ValueError(f"the prompt has {len(prompt)} tokens, the context only {self.context}")
        mask = GrammarMask(self.grammar(n_passages), self.n_vocab)
        row: list[int] = []
        probs: list[tuple[float, bool]] = []
        lookup = PromptLookup(prompt) if self.prompt_lookup else None
        self.stats = {"forward_passes": 0, "drafted": 0, "accepted": 0}

        def choose(logits: Any) -> int:
            """Greedy over what the grammar allows (EOS the only end of turn, as on the transformers path)."""
            if self._bias is not None and row and (hit := self._bias.rule(self.tokenizer.decode(row[-32:]))):
                logits = logits.copy()  # a view into llama.cpp's buffer: never written
                logits[hit[0]] -= hit[1]
            # As generation.TokenProbs: the constrained probability, and whether the grammar left a choice.
            token, prob, choice = mask.pick(logits, self._other_eog)
            probs.append((prob, choice))
            mask.accept(token)
            row.append(token)
            beat(None, None)
            if lookup is not None:
                lookup.append(token)
            return token

        # A slow CPU takes minutes per recommendation: the heartbeat says tokens so far, rate and time left.
        beat = TokenProgress(self.progress_desc, 1, budget)
        with beat:
            start = time.perf_counter()
            logits = self._prefill(prompt)
            self.stats["prefill_s"] = time.perf_counter() - start
            self._decode(logits, choose, lookup, row, budget)
        out = finish_row(self.tokenizer, row, len(prompt), self.eos_id, grounded=True, probs=probs)
        if out.finish == "budget":
            log.warning("the generation used all max_new_tokens=%d", budget)
        return out

    def _decode(self, logits: Any, choose: Any, lookup: Any, row: list[int], budget: int) -> None:
        """Greedy decoding from the prompt's logits until EOS or the budget, drafts verified as they come."""
        done = False
        while not done:
            token = choose(logits)
            if token == self.eos_id or len(row) >= budget:
                break
            # Drafted tokens ride along with the chosen one; each is kept only while greedy decoding
            # under the grammar picks it, so the output is what one token per pass would give.
            draft = lookup.draft(budget - len(row) - 1) if lookup is not None else []
            n_past = self.llm.n_tokens
            views = self._forward([token, *draft])
            logits = views[0]
            self.stats["drafted"] += len(draft)
            for j, guess in enumerate(draft):
                picked = choose(logits)
                if picked == self.eos_id or len(row) >= budget:
                    done = True
                    break
                if picked != guess:
                    self.llm.n_tokens = n_past + 1 + j  # the cache keeps the token and the draft before j
                    logits = self._forward([picked])[0]
                    break
                self.stats["accepted"] += 1
                logits = views[j + 1]
