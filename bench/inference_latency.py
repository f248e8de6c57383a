"""Inference latency and memory at TinyLlama's full shape: adapter variants, constrained decoding, batching,
precision, and one whole recommendation.

    # CPU defaults: full shape (22 layers, hidden 2048), random weights, fp32, 1 thread; ~5-7 min
    python bench/inference_latency.py

    # the smallest run (what tests/test_bench.py does)
    python bench/inference_latency.py --shape small --layers 1 --repeats 1 --decode-tokens 3 \\
        --constrained-tokens 4 --batch-records 2 --batch-tokens 2 --e2e-tokens 8 --output /tmp/il.json

    # GPU: the same measurements on CUDA (bf16, or fp16 where bf16 is missing), checks the card's claims
    python bench/inference_latency.py --device cuda

What is measured, each pair side by side in one process, repeats interleaved (order rotated), medians:

- prefill time and per-token decode time (greedy, batch 1, a real treatment prompt from examples/patients/)
  for the base model, base + unmerged LoRA adapter (r=16 on all seven projections, non-zero weights) and the
  adapter merged into the weights (what medlora.model.loading.load_model serves by default). Base vs unmerged and
  base vs merged are two interleaved phases (the merged model is the unmerged one after merge_and_unload, so
  only two 4.4 GB copies are in memory at once);
- schema-constrained (medlora.generation.hf.SectionsGenerator, xgrammar) vs the same generate() call without the
  grammar: decode time per token;
- --batch-records records generated as one batch vs one at a time (SectionsGenerator.generate batch_size 8
  vs 1), records per second, at --batch-tokens new tokens each;
- fp32 vs bf16 (the merged model, cast);
- one recommendation end to end (SectionsGenerator + safety rules + Recommendation), --e2e-tokens budget.

Per-token times come from a streamer that stamps every token inside one generate() call: prefill is the time
to the first new token, decode the mean interval over the rest. Memory: each variant's weight bytes plus the
peak rise of RSS (CPU) or allocated memory (CUDA) while it runs, since several models share the process.
Few repeats and short decodes keep the CPU run under 10 minutes: read ratios, not absolute times.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, TINYLLAMA_DIR  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402

log = logging.getLogger("inference_latency")

TARGET_MERGED, TARGET_CONSTRAINED = 0.03, 0.10


@dataclass
class LatencyConfig:
    tokenizer_dir: str = field(default=str(TINYLLAMA_DIR), metadata={"help": "TinyLlama's tokenizer.model"})
    model_config: str = field(
        default=str(TINYLLAMA_DIR / "config.json"),
        metadata={"help": "architecture to build (random weights)"},
    )
    records_dir: str = field(
        default=str(ROOT / "examples" / "patients"), metadata={"help": "patient records (*.json) for prompts"}
    )
    shape: Literal["full", "small"] = field(
        default="full", metadata={"help": "full TinyLlama shape, or the scaled-down one (smoke tests)"}
    )
    layers: int = field(default=0, metadata={"help": "override the number of layers (0: the shape's)"})
    repeats: int = field(default=3, metadata={"help": "interleaved repeats of each pairwise comparison"})
    decode_tokens: int = field(default=8, metadata={"help": "new tokens per latency measurement"})
    constrained_tokens: int = field(default=16, metadata={"help": "new tokens, constrained vs not"})
    batch_records: int = field(default=8, metadata={"help": "records in the batch comparison"})
    batch_tokens: int = field(default=8, metadata={"help": "new tokens per record, batch comparison"})
    batch_repeats: int = field(default=1, metadata={"help": "repeats of the (slow) batch comparison"})
    e2e_tokens: int = field(default=256, metadata={"help": "budget of the end-to-end recommendation"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of the adapter (the card's 16)"})
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (pinned, recorded)"})
    seed: int = field(default=0, metadata={"help": "seed of the random weights"})
    output: str = field(
        default=str(ROOT / "bench" / "results" / "inference_latency.json"), metadata={"help": "JSON result"}
    )

    def validate(self) -> None:
        for name in ("repeats", "batch_records", "batch_repeats", "threads", "lora_r"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("decode_tokens", "constrained_tokens", "batch_tokens", "e2e_tokens"):
            if getattr(self, name) < 2:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 2 (prefill + at least one decode)")
        if self.layers < 0:
            raise UsageError("--layers must be >= 0")
        common.check_output(self.output)


class TokenClock:
    """A generate() streamer that stamps each new token (the first put() is the prompt itself)."""

    def __init__(self, device: str):
        self.device = device
        self.start = 0.0
        self.stamps: list[float] = []
        self._prompt_seen = False

    def begin(self) -> None:
        common.sync(self.device)
        self.start, self.stamps, self._prompt_seen = time.perf_counter(), [], False

    def put(self, value: Any) -> None:
        # generate() hands over tokens already moved to the CPU, so the stamp follows the GPU work too.
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass

    def timing(self) -> dict[str, float]:
        prefill = self.stamps[0] - self.start
        n = len(self.stamps)
        decode = (self.stamps[-1] - self.stamps[0]) / (n - 1) if n > 1 else float("nan")
        return {"prefill_s": prefill, "decode_s_per_token": decode, "new_tokens": n}


class Instrumented:
    """The model as SectionsGenerator sees it, with generate() instrumented: a clock, an exact token count,
    and optionally the grammar removed, so both modes run the project's own generation code."""

    def __init__(self, model: Any, clock: TokenClock):
        self._model, self.clock = model, clock
        self.constrained = True
        self.exact_tokens: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, **kwargs: Any) -> Any:
        if not self.constrained:
            kwargs.pop("logits_processor", None)
        if self.exact_tokens:
            kwargs["min_new_tokens"] = kwargs["max_new_tokens"] = self.exact_tokens
        if kwargs["input_ids"].shape[0] > 1:  # generate() streams batch 1 only; batches are timed whole
            return self._model.generate(**kwargs)
        self.clock.begin()
        return self._model.generate(streamer=self.clock, **kwargs)


def timed_generate(
    model: Any, prompt: list[int], tokens: int, device: str, clock: TokenClock, pad: int
) -> dict:
    import torch

    ids = torch.tensor([prompt], device=device)
    with torch.inference_mode():
        clock.begin()
        model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
            do_sample=False, streamer=clock, pad_token_id=pad,
        )  # fmt: skip
    return clock.timing()


def compare(
    variants: dict[str, Any], run, repeats: int, device: str, models: bool = True
) -> dict[str, dict[str, Any]]:
    """Interleaved repeats of ``run(variant)``; medians of its timings, its memory (and weights: ``models``)."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    memory: dict[str, dict] = {}
    for rep in range(repeats):
        for name in common.rotated(list(variants), rep):
            with common.PeakMemory(device) as mem:
                runs[name].append(run(variants[name]))
            prev = memory.get(name, {})
            memory[name] = {
                k: max(v, prev.get(k) or 0) if v is not None else None for k, v in mem.result.items()
            }
    out = {}
    for name, rs in runs.items():
        out[name] = {
            key: common.median([r[key] for r in rs]) for key in rs[0] if isinstance(rs[0][key], float)
        }
        out[name] |= {"runs": rs, "memory": memory[name]}
        if models:
            out[name]["weights_mib"] = common.weights_mib(variants[name])
    return out


def paired(results: dict[str, dict[str, Any]], a: str, b: str, key: str) -> float:
    """Median over repeats of a's figure over b's from the same repeat (run back to back): steadier on a
    shared machine than the ratio of the two medians, since load drifts between repeats more than within."""
    pairs = zip(results[a]["runs"], results[b]["runs"], strict=True)
    return common.median([ra[key] / rb[key] for ra, rb in pairs])


def rise_key(device: str) -> str:
    return "cuda_rise_mib" if device == "cuda" else "rss_rise_mib"


def main(cfg: LatencyConfig) -> dict[str, Any]:
    tok_dir, records_dir = Path(cfg.tokenizer_dir), Path(cfg.records_dir)
    common.require(
        [
            (tok_dir / "tokenizer.model", "TinyLlama tokenizer (../shared/tinyllama/tokenizer.model)"),
            (Path(cfg.model_config), "TinyLlama config (../shared/tinyllama/config.json)"),
            (records_dir, "patient records directory (examples/patients)"),
        ]
    )
    record_files = sorted(records_dir.glob("*.json"))
    if not record_files:
        raise UsageError(f"no patient records (*.json) in {records_dir}")
    device = common.resolve_bench_device(cfg.device)
    threads = common.pin_threads(cfg.threads)
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from medlora.common.schemas import ModelInfo, Recommendation, load_record
    from medlora.data.prompts import encode_prompt, treatment_messages
    from medlora.generation.hf import SectionsGenerator
    from medlora.model.loading import resolve_dtype
    from medlora.safety.rules import apply_safety

    # The generator warns on every cut-off generation; here every generation is cut off on purpose.
    logging.getLogger("medlora.generation.hf").setLevel(logging.ERROR)
    dtype = resolve_dtype("auto", device)  # what inference.py serves: fp32 on CPU, bf16/fp16 on CUDA
    arch, shape_desc = common.model_config(Path(cfg.model_config), cfg.shape, cfg.layers)
    log.info("model: %s; %s, %s, %d torch thread(s)", shape_desc, device, dtype, threads)
    tokenizer = common.load_bench_tokenizer(tok_dir)
    records = [load_record(f.read_bytes()) for f in record_files]
    batch = [records[i % len(records)] for i in range(cfg.batch_records)]
    clock = TokenClock(device)
    result: dict[str, Any] = {
        "benchmark": "inference_latency",
        "config": dict(cfg.__dict__),
        "environment": common.environment(device, threads),
        "model": {"description": shape_desc, "dtype": str(dtype).removeprefix("torch."), "weights": "random"},
    }

    torch.manual_seed(cfg.seed)
    with common.Timer(device) as t_build, torch.device(device):
        base = AutoModelForCausalLM.from_config(arch, dtype=dtype).eval()
    base.generation_config.pad_token_id = tokenizer.pad_token_id
    with common.Timer(device) as t_peft:
        lora = get_peft_model(
            copy.deepcopy(base), LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, lora_dropout=0.05,
                                            target_modules=common.LORA_TARGETS, task_type="CAUSAL_LM"),
        )  # fmt: skip
        with torch.no_grad():
            for name, p in lora.named_parameters():
                if "lora_B" in name:  # a fresh adapter's B is zero; a trained one is not
                    p.normal_(0, 0.02)
        lora.eval()
    prompt = encode_prompt(tokenizer, treatment_messages(records[0]))  # what SectionsGenerator feeds
    result["setup"] = {
        "build_s": round(t_build.seconds, 2),
        "adapter_copy_s": round(t_peft.seconds, 2),
        "prompt_tokens": len(prompt),
    }
    log.info("built in %.1f s; prompt of %d tokens", t_build.seconds, len(prompt))

    def plain_run(model: Any) -> dict:
        return timed_generate(model, prompt, cfg.decode_tokens, device, clock, tokenizer.pad_token_id)

    log.info("phase 1: base vs base + unmerged adapter")
    phase1 = compare({"base": base, "unmerged": lora}, plain_run, cfg.repeats, device)
    with common.Timer(device) as t_merge:
        merged = lora.merge_and_unload().eval()
    del lora
    log.info("phase 2: base vs merged adapter (merged in %.1f s)", t_merge.seconds)
    phase2 = compare({"base": base, "merged": merged}, plain_run, cfg.repeats, device)
    del base
    adapters = {"phase1": phase1, "phase2": phase2, "merge_s": round(t_merge.seconds, 2)}
    unmerged_ratio = paired(phase1, "unmerged", "base", "decode_s_per_token")
    merged_ratio = paired(phase2, "merged", "base", "decode_s_per_token")
    merged_prefill_ratio = paired(phase2, "merged", "base", "prefill_s")
    adapters["ratios"] = {
        "unmerged_vs_base_decode": round(unmerged_ratio, 4),
        "unmerged_vs_base_prefill": round(paired(phase1, "unmerged", "base", "prefill_s"), 4),
        "merged_vs_base_decode": round(merged_ratio, 4),
        "merged_vs_base_prefill": round(merged_prefill_ratio, 4),
    }
    result["adapters"] = adapters

    log.info("constrained vs unconstrained decoding")
    with common.Timer() as t_compile:
        gen = SectionsGenerator(Instrumented(merged, clock), tokenizer, max_new_tokens=cfg.constrained_tokens)
    result["setup"]["grammar_compile_s"] = round(t_compile.seconds, 2)
    gen.model.exact_tokens = cfg.constrained_tokens

    def sections_run(constrained: bool) -> dict:
        gen.model.constrained = constrained
        gen.generate([records[0]], batch_size=1)
        return clock.timing()

    grammar = compare(
        {"unconstrained": False, "constrained": True}, sections_run, cfg.repeats, device, models=False
    )
    overhead = paired(grammar, "constrained", "unconstrained", "decode_s_per_token") - 1
    result["constrained_decoding"] = grammar | {"overhead_per_token": round(overhead, 4)}

    log.info("%d records: one batch vs one at a time", cfg.batch_records)
    gen.max_new_tokens = cfg.batch_tokens
    gen.model.exact_tokens, gen.model.constrained = cfg.batch_tokens, True

    def batch_run(batch_size: int) -> dict:
        with common.Timer(device) as t:
            gen.generate(batch, batch_size=batch_size)
        return {"wall_s": t.seconds, "records_per_s": len(batch) / t.seconds}

    batching = compare(
        {"one_at_a_time": 1, f"batch_of_{cfg.batch_records}": cfg.batch_records}, batch_run,
        cfg.batch_repeats, device, models=False,
    )  # fmt: skip
    batch_speedup = 1 / paired(batching, f"batch_of_{cfg.batch_records}", "one_at_a_time", "wall_s")
    result["batching"] = batching | {"speedup": round(batch_speedup, 3), "new_tokens": cfg.batch_tokens}

    log.info("fp32 vs half precision")
    # On CPU: fp32 (served) vs a bf16 cast; on CUDA: the served half precision vs an fp32 cast.
    half = torch.bfloat16 if dtype is torch.float32 else dtype
    half_name = str(half).removeprefix("torch.")
    cast = copy.deepcopy(merged).to(half if dtype is torch.float32 else torch.float32)
    by_dtype = {
        str(p.dtype).removeprefix("torch."): m for m in (merged, cast) for p in [next(m.parameters())]
    }
    precision = compare(by_dtype, plain_run, cfg.repeats, device)
    del cast, by_dtype
    result["precision"] = precision | {
        f"{half_name}_vs_fp32_decode": round(
            paired(precision, half_name, "float32", "decode_s_per_token"), 4
        ),
        f"{half_name}_vs_fp32_prefill": round(paired(precision, half_name, "float32", "prefill_s"), 4),
    }

    log.info("one recommendation end to end (budget %d new tokens)", cfg.e2e_tokens)
    gen.max_new_tokens = cfg.e2e_tokens
    gen.model.exact_tokens, gen.model.constrained = None, True
    info = ModelInfo(base="random weights, " + shape_desc, revision=None, adapter="random LoRA, merged")
    with common.PeakMemory(device) as mem, common.Timer(device) as t_e2e:
        out = gen.generate([records[0]], batch_size=1)[0]
        checked = apply_safety(records[0], out.sections)
        Recommendation(**checked.sections.model_dump(), safety=checked.safety, model=info)
    e2e = {
        "seconds": round(t_e2e.seconds, 3),
        "generated_tokens": out.generated_tokens,
        "finish": out.finish,
        **{k: round(v, 4) for k, v in clock.timing().items()},
        "weights_mib": common.weights_mib(merged),
        "memory": mem.result,
    }
    result["end_to_end"] = e2e

    peak_gb = (mem.result["cuda_peak_allocated_mib"] * 2**20 / 1e9) if device == "cuda" else None
    result["targets"] = {
        "merged_within_3pct_of_base": {
            "measured_decode": round(merged_ratio - 1, 4),
            "measured_prefill": round(merged_prefill_ratio - 1, 4),
            "met": merged_ratio - 1 <= TARGET_MERGED,
        },
        "constrained_overhead_under_10pct": {
            "measured": round(overhead, 4),
            "met": overhead < TARGET_CONSTRAINED,
        },
    }
    result["claims"] = [
        common.claim(
            "0.5 s per recommendation (GPU)", 0.5, e2e["seconds"] if device == "cuda" else None, "s"
        ),
        common.claim("2.2 GB GPU memory at inference", 2.2, peak_gb, "GB allocated"),
    ]
    common.write_results(common.check_output(cfg.output), result)
    print_tables(result, cfg, device, threads, shape_desc)
    return result


def print_tables(r: dict[str, Any], cfg: LatencyConfig, device: str, threads: int, shape_desc: str) -> None:
    rk = rise_key(device)
    ms = 1000.0
    p1, p2 = r["adapters"]["phase1"], r["adapters"]["phase2"]
    print(f"\nInference latency: {shape_desc}, random weights")
    print(f"{device}, {r['model']['dtype']}, {threads} torch thread(s); prompt {r['setup']['prompt_tokens']} tokens; "
          f"medians of {cfg.repeats} interleaved repeats")  # fmt: skip
    rows = [
        ["base (phase 1)", p1["base"]["prefill_s"], p1["base"]["decode_s_per_token"] * ms, 1.0,
         p1["base"]["weights_mib"], p1["base"]["memory"].get(rk)],
        ["base + unmerged LoRA", p1["unmerged"]["prefill_s"], p1["unmerged"]["decode_s_per_token"] * ms,
         r["adapters"]["ratios"]["unmerged_vs_base_decode"], p1["unmerged"]["weights_mib"],
         p1["unmerged"]["memory"].get(rk)],
        ["base (phase 2)", p2["base"]["prefill_s"], p2["base"]["decode_s_per_token"] * ms, 1.0,
         p2["base"]["weights_mib"], p2["base"]["memory"].get(rk)],
        ["merged LoRA", p2["merged"]["prefill_s"], p2["merged"]["decode_s_per_token"] * ms,
         r["adapters"]["ratios"]["merged_vs_base_decode"], p2["merged"]["weights_mib"],
         p2["merged"]["memory"].get(rk)],
    ]  # fmt: skip
    heads = ["model", "prefill s", "decode ms/token", "decode vs base*", "weights MiB", "run peak rise MiB"]
    print(common.table(heads, rows))
    print("* median over repeats of the per-repeat ratio to the base run beside it")
    g = r["constrained_decoding"]
    print(
        f"\nSchema-constrained decoding ({cfg.constrained_tokens} new tokens, SectionsGenerator, merged model)"
    )
    print(common.table(
        ["decoding", "prefill s", "decode ms/token"],
        [[k, g[k]["prefill_s"], g[k]["decode_s_per_token"] * ms] for k in ("unconstrained", "constrained")],
    ))  # fmt: skip
    print(f"overhead per token: {g['overhead_per_token']:+.1%} (target < {TARGET_CONSTRAINED:.0%})")
    b = r["batching"]
    print(f"\n{cfg.batch_records} records, {cfg.batch_tokens} new tokens each, constrained "
          f"({cfg.batch_repeats} repeat(s))")  # fmt: skip
    print(common.table(
        ["mode", "wall s", "records/s"],
        [[k, v["wall_s"], v["records_per_s"]] for k, v in b.items() if isinstance(v, dict)],
    ))  # fmt: skip
    print(f"batch speedup: {b['speedup']:.2f}x")
    pr = r["precision"]
    print("\nPrecision (merged model)")
    print(common.table(
        ["dtype", "prefill s", "decode ms/token", "weights MiB", "run peak rise MiB"],
        [[k, v["prefill_s"], v["decode_s_per_token"] * ms, v["weights_mib"], v["memory"].get(rk)]
         for k, v in pr.items() if isinstance(v, dict)],
    ))  # fmt: skip
    e = r["end_to_end"]
    print(f"\nOne recommendation end to end: {e['seconds']:.1f} s for {e['generated_tokens']} new tokens "
          f"(finish: {e['finish']}; prefill {e['prefill_s']:.2f} s, {e['decode_s_per_token'] * ms:.0f} ms/token)")  # fmt: skip
    t = r["targets"]
    print(f"\nTargets: merged vs base decode {t['merged_within_3pct_of_base']['measured_decode']:+.1%}, "
          f"prefill {t['merged_within_3pct_of_base']['measured_prefill']:+.1%} "
          f"(within 3%: {'met' if t['merged_within_3pct_of_base']['met'] else 'missed'}); constrained overhead "
          f"{t['constrained_overhead_under_10pct']['measured']:+.1%} "
          f"(< 10%: {'met' if t['constrained_overhead_under_10pct']['met'] else 'missed'})")  # fmt: skip
    for c in r["claims"]:
        print(
            f"claim {c['claim']}: {c['verdict']}"
            + (f" ({c['measured']} {c['unit']})" if c["measured"] else "")
        )


if __name__ == "__main__":
    sys.exit(run_stage(main, LatencyConfig, description=__doc__))
