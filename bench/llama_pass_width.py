"""Why prompt lookup stays off on llama.cpp's CPU path: does a position's logits depend on how many tokens its
forward pass holds, and what does a wider pass cost? Per GGUF and extra-buffer-type setting, one process.

    python bench/llama_pass_width.py --gguf /tmp/smol-gguf/smollm2-F16.gguf /tmp/smol-gguf/smollm2-Q8_0.gguf \\
        /tmp/smol-gguf/smollm2-Q4_K_M.gguf --hf-model models/smollm2-135m

Prompt lookup verifies drafted tokens in one pass of 1 + draft tokens; its output equals one-token-per-pass
decoding only if each position's logits are the same bit for bit at every pass width. The benchmark
evaluates the same continuation after the same prompt in passes of width W and compares the logits with
width 1 (plain decoding) and width 2 (the narrowest verifying pass), then times one pass of each width.
``--hf-model`` adds the same rows for the transformers path (fp32, its KV cache cropped between passes).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402


@dataclass
class PassWidthConfig:
    gguf: list[str] = field(default_factory=list, metadata={"help": "GGUF files to measure"})
    hf_model: str = field(default="", metadata={"help": "a transformers model folder measured the same way"})
    widths: list[int] = field(
        default_factory=lambda: [1, 2, 3, 4, 7, 8, 16], metadata={"help": "pass widths"}
    )
    prompt_tokens: int = field(default=256, metadata={"help": "prompt length before the continuation"})
    tokens: int = field(default=32, metadata={"help": "continuation tokens compared"})
    threads: int = field(default=1, metadata={"help": "llama.cpp threads"})
    repeats: int = field(default=10, metadata={"help": "timed passes per width (best kept)"})
    output: str = field(default=str(ROOT / "bench" / "results" / "llama_pass_width.json"))

    def validate(self) -> None:
        missing = [g for g in self.gguf if not Path(g).is_file()]
        if self.hf_model and not (Path(self.hf_model) / "config.json").is_file():
            missing.append(self.hf_model)
        if not (self.gguf or self.hf_model) or missing:
            raise UsageError(
                f"--gguf: give existing GGUF files (missing: {' '.join(missing) or 'none given'})"
            )
        if 1 not in self.widths or 2 not in self.widths or min(self.widths) < 1 or self.tokens < 2:
            raise UsageError("--widths must include 1 and 2 (the references), --tokens >= 2")
        common.check_output(self.output)


def continuation_logits(llm: Any, prompt: list[int], cont: list[int], width: int) -> Any:
    """The logits at each continuation position, the continuation evaluated ``width`` tokens per pass."""
    import llama_cpp
    import numpy as np

    n_vocab = llm.n_vocab()
    llm.reset()
    llm.eval(prompt)
    rows = []
    for i in range(0, len(cont), width):
        chunk = cont[i : i + width]
        llm._batch.set_batch(batch=chunk, n_past=llm.n_tokens, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.n_tokens += len(chunk)
        rows += [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, j), shape=(n_vocab,)).copy()
                 for j in range(len(chunk))]  # fmt: skip
    return np.array(rows)


def pass_ms(llm: Any, prompt: list[int], width: int, repeats: int) -> float:
    """Best time of one pass of ``width`` tokens after the prompt (the cache dropped after each)."""
    llm.reset()
    llm.eval(prompt)
    best = float("inf")
    for _ in range(repeats):
        llm._ctx.kv_cache_seq_rm(-1, len(prompt), -1)
        llm._batch.set_batch(batch=prompt[:width], n_past=len(prompt), logits_all=True)
        start = time.perf_counter()
        llm._ctx.decode(llm._batch)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def transformers_rows(cfg: PassWidthConfig) -> tuple[dict[int, Any], dict[int, float]]:
    """The same comparison and timing on the transformers path: fp32, the KV cache cropped back after each
    measured pass."""
    import torch
    from transformers import AutoModelForCausalLM

    common.pin_threads(cfg.threads)
    model = AutoModelForCausalLM.from_pretrained(cfg.hf_model, dtype=torch.float32).eval()
    n = min(model.config.vocab_size - 1, 1000)
    prompt = torch.tensor([[(i * 7919) % n + 1 for i in range(cfg.prompt_tokens)]])
    cont = [(i * 104729) % n + 1 for i in range(cfg.tokens)]
    logits, times = {}, {}

    def drop_continuation(cache: Any) -> None:  # crop() takes the count to remove, as a negative number
        if (extra := cache.get_seq_length() - cfg.prompt_tokens) > 0:
            cache.crop(-extra)

    with torch.inference_mode():
        cache = model(prompt, use_cache=True).past_key_values
        for w in cfg.widths:
            rows = []
            for i in range(0, len(cont), w):
                rows.append(model(torch.tensor([cont[i : i + w]]), past_key_values=cache).logits[0])
            drop_continuation(cache)
            logits[w] = torch.cat(rows).numpy()
            best = float("inf")
            for _ in range(cfg.repeats):
                start = time.perf_counter()
                model(torch.tensor([cont[:w]]), past_key_values=cache)
                best = min(best, time.perf_counter() - start)
                drop_continuation(cache)
            times[w] = best * 1000
    return logits, times


def main(cfg: PassWidthConfig) -> dict[str, Any]:
    from medlora.generation.llama_backend import load_gguf
    from medlora.generation.llama_cpu import system_info

    result: dict[str, Any] = {"benchmark": "llama_pass_width", "config": dict(cfg.__dict__)}
    result["llama_cpp_system_info"] = system_info()
    rows, heads = (
        [],
        ["file", "extra bufts", "width", "max |diff| vs 1", "max |diff| vs 2", "ms/pass", "x width 1"],
    )
    for path in cfg.gguf:
        for extra in (True, False):
            llm = load_gguf(path, cfg.threads, n_ctx=cfg.prompt_tokens + cfg.tokens + 32, extra_bufts=extra)
            n = min(llm.n_vocab() - 1, 1000)  # ordinary tokens of any vocabulary, the tiny test ones too
            prompt = [(i * 7919) % n + 1 for i in range(cfg.prompt_tokens)]
            cont = [(i * 104729) % n + 1 for i in range(cfg.tokens)]
            logits = {w: continuation_logits(llm, prompt, cont, w) for w in cfg.widths}
            times = {w: pass_ms(llm, prompt, w, cfg.repeats) for w in cfg.widths}
            llm.close()
            for w in cfg.widths:
                d1, d2 = (float(abs(logits[w] - logits[r]).max()) for r in (1, 2))
                result.setdefault(Path(path).name, {})[f"extra_bufts={extra} width={w}"] = {
                    "max_abs_diff_vs_width_1": d1, "max_abs_diff_vs_width_2": d2, "ms_per_pass": times[w]}  # fmt: skip
                rows.append([Path(path).name, "on" if extra else "off", w, f"{d1:.3g}", f"{d2:.3g}",
                             times[w], f"{times[w] / times[1]:.2f}"])  # fmt: skip
    if cfg.hf_model:
        name = Path(cfg.hf_model).name + " (transformers fp32)"
        logits, times = transformers_rows(cfg)
        for w in cfg.widths:
            d1, d2 = (float(abs(logits[w] - logits[r]).max()) for r in (1, 2))
            result.setdefault(name, {})[f"width={w}"] = {
                "max_abs_diff_vs_width_1": d1, "max_abs_diff_vs_width_2": d2, "ms_per_pass": times[w]}  # fmt: skip
            rows.append([name, "-", w, f"{d1:.3g}", f"{d2:.3g}", times[w], f"{times[w] / times[1]:.2f}"])
    common.write_results(common.check_output(cfg.output), result)
    print(f"\n{cfg.tokens} continuation tokens after {cfg.prompt_tokens}, {cfg.threads} thread(s); 0 means the "
          "logits are identical bit for bit")  # fmt: skip
    print(common.table(heads, rows))
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, PassWidthConfig, description=__doc__))
