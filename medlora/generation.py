"""Schema-constrained generation of ``Sections``: whatever the weights, the text parses.

Decoding is masked by xgrammar (its ``transformers`` logits processor) with a grammar derived from the
Sections JSON schema (``sections_grammar``), compact like the training targets (``sections_json``), so even a
random model writes JSON that ``parse_sections`` accepts. xgrammar's own schema conversion leaves two gaps
that the derived grammar closes: pydantic strips whitespace before checking ``min_length`` (so a string must
start with a visible character), and JSON forbids raw control characters inside strings. When ``max_new_tokens`` runs out before the object closes, the text is cut back to its last complete item and
closed (``finish="budget"``); if nothing survives, the result is an empty but valid ``Sections``.

Prompts are the training prompts (``treatment_messages`` + ``encode_prompt``); a batch is padded on the left
with an attention mask; decoding is greedy, so the same record and weights give the same output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from .prompts import encode_prompt, treatment_messages
from .schemas import (
    SECTION_NAMES,
    Citations,
    GroundedSections,
    PatientRecord,
    Sections,
    sections_schema,
    to_published,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 512

# Unicode White_Space (what pydantic's strip removes) beyond ASCII: a string may not start with any of it.
_UNICODE_SPACE = r"\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Quotes, backslashes and control characters are left out, so the raw text between quotes is the string.
_GRAMMAR_HEAD = rf"""
char ::= [^\0-\x1f\"\\]
first_char ::= [^\0-\x20\"\\{_UNICODE_SPACE}]
null ::= "null"
"""


def sections_grammar(n_passages: int | None = None) -> str:
    """An EBNF grammar (xgrammar's dialect) for ``sections_schema()``, stricter than the generic conversion.

    With ``n_passages`` the grammar is for ``GroundedSections``, and a citation can only be a number from 1 to
    ``n_passages`` (none at all with 0 passages): a model cannot cite a passage that is not in its prompt.

    Every property is written, in schema order, because training targets (``sections_json``) always write
    all of them; strings start with a visible character because pydantic strips whitespace before checking
    ``min_length``; raw control characters are excluded because JSON forbids them. xgrammar's own schema
    conversion allows both, and its regex ``pattern`` route is two orders of magnitude slower per token.
    Constructs the schema does not use raise, so a schema change cannot silently loosen the grammar.
    """
    schema = sections_schema() if n_passages is None else GroundedSections.model_json_schema()
    rules: dict[str, str] = {}

    def string(node: dict[str, Any]) -> str:
        lo, hi = node.get("minLength", 0), node.get("maxLength")
        if hi is None:
            raise ValueError(f"unbounded string in the Sections schema: {node}")
        name = f"str_{lo}_{hi}"
        body = f"char{{0, {hi}}}" if lo == 0 else f"first_char char{{{lo - 1}, {hi - 1}}}"
        rules[name] = f'"\\"" {body} "\\""'
        return name

    def value(node: dict[str, Any], name: str) -> str:
        if "$ref" in node:
            ref = node["$ref"].rsplit("/", 1)[-1]
            return value(schema["$defs"][ref], f"def_{ref}")
        if "anyOf" in node:
            rules[name] = " | ".join(value(n, f"{name}_{i}") for i, n in enumerate(node["anyOf"]))
            return name
        kind = node.get("type")
        if kind == "null":
            return "null"
        if kind == "integer" and n_passages is not None and node.get("minimum") == 1:
            if n_passages == 0:
                return None
            rules["cite"] = " | ".join(f'"{i}"' for i in range(1, min(n_passages, node["maximum"]) + 1))
            return "cite"
        if kind == "string" and set(node) <= {"type", "minLength", "maxLength", "title", "description"}:
            return string(node)
        if kind == "array" and "maxItems" in node:
            item = value(node["items"], f"{name}_item")
            if item is None:  # nothing can be an item (no passage to cite): only the empty list
                rules[name] = '"[" "]"'
                return name
            rules[name] = f'"[" "]" | "[" {item} ("," {item}){{0, {node["maxItems"] - 1}}} "]"'
            return name
        if kind == "object" and node.get("additionalProperties") is False:
            parts = [
                f'"{"{" if i == 0 else ","}\\"{key}\\":" {value(sub, f"{name}_{key}")}'
                for i, (key, sub) in enumerate(node["properties"].items())
            ]
            rules[name] = " ".join(parts) + ' "}"'
            return name
        raise ValueError(f"construct not supported by sections_grammar(): {node}")

    root = value(schema, "sections")
    return _GRAMMAR_HEAD + f"root ::= {root}\n" + "".join(f"{k} ::= {v}\n" for k, v in rules.items())


def close_partial(text: str, model: type = Sections):
    """The longest prefix of a cut-off constrained generation that closes into a valid ``model``.

    Candidates end before a comma or after a closing quote or bracket (a complete item or property), or just
    after an opening bracket; the open brackets are closed in order. Never inside an item object: an item cut
    mid-way (``{"name": "x", "dosage": "5 m``) is dropped whole, not published with its missing fields empty.
    Empty ``Sections`` when nothing parses.
    """
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                cuts.append((i + 1, "".join(reversed(stack))))
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
            cuts.append((i + 1, "".join(reversed(stack))))
        elif ch in "]}":
            if stack:
                stack.pop()
            cuts.append((i + 1, "".join(reversed(stack))))
        elif ch == ",":
            cuts.append((i, "".join(reversed(stack))))
    for end, closers in reversed(cuts):
        if closers.startswith("}") and len(closers) >= 2:  # inside an item object
            continue
        try:
            return model.model_validate_json(text[:end] + closers)
        except ValidationError:
            continue
    return model()


@dataclass
class Generated:
    sections: Sections
    text: str
    prompt_tokens: int
    generated_tokens: int
    finish: Literal["eos", "budget"]
    # Grounded generation: the passage numbers each item cites, and per section the mean probability of the
    # tokens the grammar left a choice for (None where it left none).
    citations: Citations = field(default_factory=dict)
    token_probs: dict[str, float | None] = field(default_factory=dict)


def tokenizer_info(tokenizer: Any, vocab_size: int, eos_id: int) -> Any:
    """xgrammar's view of the vocabulary: the tokenizer's, less its special tokens (``<|im_start|>``, ``<s>``,
    ``<file_sep>``...), which xgrammar's conversion takes for literal text a JSON string could hold; EOS is the
    only stop token. The llama.cpp path sees the same (its control tokens render as nothing)."""
    import xgrammar as xgr

    base = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=[eos_id])
    special = set(tokenizer.all_special_ids)
    special |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    pieces = [b"" if i in special else piece for i, piece in enumerate(base.decoded_vocab)]
    return bytes_tokenizer_info(pieces, vocab_size, eos_id, base.add_prefix_space)


def bytes_tokenizer_info(
    pieces: list[bytes], vocab_size: int, eos_id: int, add_prefix_space: bool = False
) -> Any:
    """xgrammar's tokenizer info from each token's bytes (empty: never allowed), EOS the only stop token; both
    backends build theirs here."""
    import xgrammar as xgr

    return xgr.TokenizerInfo(pieces, xgr.VocabType.RAW, vocab_size=vocab_size, stop_token_ids=[eos_id],
                             add_prefix_space=add_prefix_space)  # fmt: skip


class SectionsGenerator:
    """Compiles the grammar once for a model and tokenizer; ``generate`` runs batches of records."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        empty_bias: dict[str, float] | None = None,
    ):
        import xgrammar as xgr

        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        # Per-section bias against "[]" chosen on val and stored with the adapter (``medlora.decisions``);
        # ``modeling.load_model`` puts it on the model it loads.
        self.empty_bias = empty_bias if empty_bias is not None else getattr(model, "empty_bias", None)
        self._pieces: Any = None
        self.eos_id = tokenizer.eos_token_id
        # Left padding needs a pad id; the attention mask hides it, so EOS is acceptable when none is set.
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        # The mask must cover the model's output width, which can exceed the tokenizer's vocabulary.
        vocab = model.get_output_embeddings().weight.shape[0]
        self.compiler = xgr.GrammarCompiler(tokenizer_info(tokenizer, vocab, self.eos_id))
        # One grammar per passage count (citations range over 1..n), compiled on first use.
        self._grammars: dict[int, Any] = {}

    def grammar(self, n_passages: int) -> Any:
        if n_passages not in self._grammars:
            self._grammars[n_passages] = self.compiler.compile_grammar(sections_grammar(n_passages))
        return self._grammars[n_passages]

    def prompt_ids(self, record: PatientRecord, passages: Sequence[Any] = ()) -> list[int]:
        return encode_prompt(self.tokenizer, treatment_messages(record, passages=passages))

    def generate(
        self,
        records: Sequence[PatientRecord],
        batch_size: int = 8,
        do_sample: bool = False,
        passages: Sequence[Sequence[Any]] | None = None,
    ) -> list[Generated]:
        """Greedy by default; ``do_sample`` (seed torch yourself) explores other paths through the grammar.
        ``passages[i]`` are record i's numbered passages (``medlora.retrieval.Passage``); none by default."""
        passages = passages if passages is not None else [()] * len(records)
        out: list[Generated] = []
        for start in range(0, len(records), batch_size):
            chunk = slice(start, start + batch_size)
            prompts = [self.prompt_ids(r, ps) for r, ps in zip(records[chunk], passages[chunk], strict=True)]
            out.extend(self._batch(prompts, do_sample, [len(ps) for ps in passages[chunk]]))
        return out

    def _batch(self, prompts: list[list[int]], do_sample: bool, n_passages: list[int]) -> list[Generated]:
        import torch
        from transformers import LogitsProcessorList
        from xgrammar.contrib.hf import LogitsProcessor

        width = max(len(p) for p in prompts)
        probs = TokenProbs()
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        device = next(self.model.parameters()).device
        processors: list[Any] = [LogitsProcessor([self.grammar(n) for n in n_passages])]
        if self.empty_bias:
            from .decisions import EmptyBias, Pieces

            if self._pieces is None:
                self._pieces = Pieces(self.tokenizer, self.model.get_output_embeddings().weight.shape[0])
            processors.append(EmptyBias(self.tokenizer, self._pieces, self.empty_bias, width))
        with torch.inference_mode():
            seqs = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=self.max_new_tokens,
                do_sample=do_sample,
                # A grammar matcher holds per-call state: one processor per generate() call, one grammar per row.
                logits_processor=LogitsProcessorList([*processors, probs]),
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_id,
            )
        rows = seqs[:, width:].tolist()
        chosen = probs.finish(seqs[:, width:])
        out = [
            finish_row(self.tokenizer, r, len(p), self.eos_id, grounded=True, probs=c)
            for p, r, c in zip(prompts, rows, chosen, strict=True)
        ]
        if cut := sum(g.finish == "budget" for g in out):
            log.warning("%d of %d generations used all max_new_tokens=%d", cut, len(out), self.max_new_tokens)
        return out


def finish_row(
    tokenizer: Any,
    row: list[int],
    prompt_tokens: int,
    eos_id: int,
    grounded: bool = False,
    probs: list[tuple[float, bool]] | None = None,
) -> Generated:
    """Decode one generated row (padding after EOS included) into ``Sections`` (grounded: from
    ``GroundedSections``, with the citations and, given ``probs``, the per-section token probabilities)."""
    finish: Literal["eos", "budget"] = "eos" if eos_id in row else "budget"
    new = row[: row.index(eos_id) + 1] if finish == "eos" else row
    # No clean-up of spaces: the text must be exactly what the grammar accepted.
    text = tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    model = GroundedSections if grounded else Sections
    try:
        parsed = model.model_validate_json(text)
    except ValidationError:
        if finish == "eos":
            # The grammar only lets EOS through after a complete object: this is a defect, not bad luck.
            raise
        parsed = close_partial(text, model)
    if not grounded:
        return Generated(parsed, text, prompt_tokens, len(new), finish)
    sections, citations = to_published(parsed)
    token_probs = section_probs(tokenizer, new, probs[: len(new)]) if probs is not None else {}
    return Generated(sections, text, prompt_tokens, len(new), finish, citations, token_probs)


class TokenProbs:
    """A logits processor placed after the grammar's: it keeps the probability the constrained decoder gave
    each chosen token, and whether the grammar left a choice at that step (more than one allowed token).

    Only one step's distribution is held at a time (the token it chose is read from ``input_ids`` at the next
    call, or from the finished sequences): memory stays at batch x vocabulary, not x steps."""

    def __init__(self) -> None:
        self.last: Any = None  # the latest step's probabilities [batch, vocab]
        self.choice: Any = None
        self.steps: list[tuple[list[float], list[bool]]] = []

    def _record(self, chosen: Any) -> None:
        probs = self.last.gather(1, chosen.view(-1, 1).to(self.last.device)).squeeze(1)
        self.steps.append((probs.tolist(), self.choice.tolist()))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.last is not None:
            self._record(input_ids[:, -1])
        self.last = torch.softmax(scores.float(), dim=-1)
        self.choice = (scores > float("-inf")).sum(-1) > 1
        return scores

    def finish(self, new_tokens: Any) -> list[list[tuple[float, bool]]]:
        """Per row, (probability, had a choice) of each generated token."""
        if self.last is not None and len(self.steps) < new_tokens.shape[1]:
            self._record(new_tokens[:, len(self.steps)])
            self.last = None
        out: list[list[tuple[float, bool]]] = [[] for _ in range(new_tokens.shape[0])]
        for probs, choices in self.steps[: new_tokens.shape[1]]:
            for b, (prob, c) in enumerate(zip(probs, choices, strict=True)):
                out[b].append((prob, c))
        return out


def section_probs(
    tokenizer: Any, tokens: list[int], probs: list[tuple[float, bool]]
) -> dict[str, float | None]:
    """Mean probability per section of the tokens that had a choice, a token belonging to the section whose
    key precedes where the token starts (keys cannot occur inside strings: the grammar forbids quotes there)."""
    ends = [
        len(tokenizer.decode(tokens[: i + 1], skip_special_tokens=True, clean_up_tokenization_spaces=False))
        for i in range(len(tokens))
    ]
    text = tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    starts = [(text.find(f'"{name}":'), name) for name in SECTION_NAMES]
    starts = sorted((pos, name) for pos, name in starts if pos >= 0)
    acc: dict[str, list[float]] = {name: [] for name in SECTION_NAMES}
    for i, (p, choice) in enumerate(probs):
        begin = ends[i - 1] if i else 0
        owner = [name for pos, name in starts if pos <= begin]
        if choice and owner:
            acc[owner[-1]].append(p)
    return {name: (round(sum(v) / len(v), 4) if v else None) for name, v in acc.items()}
