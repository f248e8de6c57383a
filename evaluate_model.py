"""Stage 3: measure the models against the baselines on the held-out test split, every figure on the same items.

    # the real run (defaults sized for about ten minutes on one GPU): base and base+adapter on the same items
    python evaluate_model.py

    # offline smoke run on CPU with the tiny random model and an adapter trained on it (--limit caps every set)
    python evaluate_model.py --base-model models/tiny-random --adapter /tmp/tiny-adapter --limit 8 \
        --output /tmp/eval_results.json

    # the no-model rows alone on the whole test split (extractive rules, empty output, constant emergency
    # action) and the retrieval baseline; no model is loaded (limits above the split are capped)
    python evaluate_model.py --retrieval-only --limit-gen 100000 --limit-treatment 100000 --output /tmp/rows.json

    # exported GGUFs get a row each beside them (the constrained figures, on llama.cpp)
    python evaluate_model.py --adapter-only --gguf models/tinyllama-medquad-treatment/gguf/tinyllama-medquad-treatment-Q8_0.gguf

    # interrupted (Ctrl-C, exit 130)? each finished part is already in the report; the same command again reuses
    # them and measures the rest (--no-resume measures everything again)
    python evaluate_model.py

    # one model only
    python evaluate_model.py --base-only
    python evaluate_model.py --adapter-only --batch-size 32

accuracy: 4-option multiple choice (true answer + 3 answers of the same question type from other foci, their
disease names replaced by the question's), the option with the highest log-likelihood per character wins
(acc_norm; chance 25%); the word-overlap shortcut is reported beside it. BLEU: sacrebleu corpus BLEU (0-100) of
greedy answers. ROUGE-L: rouge-score F1 with stemming. Treatment and grounding (medlora/evaluation/rows.py): five rows
on the same items (no-model extractive rules, empty output, constant emergency action, base, fine-tuned), each
with every figure of medlora/evaluation/treatment.py (medications, per-section ROUGE-L and filled-where-empty, red-flag
recall and emergency false alarms, allergy violations, duplicates, answered on evidence, target items recovered)
and medlora/evaluation/grounding.py (citations, abstention, answering), overall and per input variant, with bootstrap
95% intervals. The adapter is evaluated unmerged, in the precision it was trained in (docs/evaluation.md).
Writes <models-dir>/eval_results.json; with an adapter, adds the figures under "metrics" to
<models-dir>/model_info.json and the adapter's model_info.json, and re-renders the adapter's model card.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from medlora.common.cli import UsageError, fmt, run_stage
from medlora.common.files import read_jsonl, update_json, write_json
from medlora.common.progress import Progress, step
from medlora.evaluation import grounding as grounding_eval
from medlora.evaluation import items as eval_items
from medlora.evaluation import metrics, multiple_choice, stats
from medlora.evaluation import rows as eval_rows
from medlora.evaluation.config import EvalConfig
from medlora.evaluation.parts import Parts, build_report, model_parts, parts_path, resume_key
from medlora.model.loading import check_adapter_matches, load_model, missing_model_error, resolve_device
from medlora.retrieval import index as retrieval
from medlora.retrieval.subject import concerns

log = logging.getLogger("evaluate_model")


def load_split(data_dir: Path, name: str) -> list[dict[str, Any]]:
    path = data_dir / f"{name}.jsonl"
    if not path.is_file():
        raise UsageError(f"{path} not found: run `python download_model.py` first to build the data splits")
    try:
        return read_jsonl(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(
            f"{path} is not valid JSON lines ({e}): rebuild it with `python download_model.py`"
        ) from None


def capped(what: str, requested: int, available: int) -> dict[str, int]:
    used = min(requested, available)
    if requested > available:
        log.warning(
            "--limit-%s %d is more than the %d items the test split has: using %d",
            what,
            requested,
            available,
            used,
        )
    return {"requested": requested, "available": available, "used": used}


def trained_precision(adapter: str | Path) -> str | None:
    """The precision the adapter's base was trained in ("fp16", "bf16", "fp32"), from its model_info.json."""
    info = Path(adapter) / "model_info.json"
    try:
        name = json.loads(info.read_text(encoding="utf-8")).get("training", {}).get("precision")
    except (OSError, ValueError, AttributeError):
        return None
    return {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(str(name))


def eval_precision(cfg: EvalConfig, device: str) -> str:
    """One precision for both models: the training one where the device runs it (fp16 needs CUDA; the fp32 LoRA
    weights stay fp32 unmerged, as in training), else the device default. An explicit --precision wins."""
    if cfg.precision != "auto":
        return cfg.precision
    trained = None if cfg.base_only else trained_precision(cfg.adapter)
    if trained and not (trained == "fp16" and not device.startswith("cuda")):
        return trained
    if trained:
        log.warning("the adapter was trained in %s, which %s cannot run: evaluating in fp32", trained, device)
    return "fp32" if not device.startswith("cuda") else "auto"


def evaluate_one(
    cfg: EvalConfig, name: str, adapter: str | None, mc_items, gen_rows, treat_items, idx, index, precision: str,
    parts: Parts, saved: Any,
) -> dict[str, Any]:  # fmt: skip
    """One model's figures in three parts (multiple choice, answers, treatment rows), each written as it ends
    (``saved()`` rewrites the partial report) and reused from ``parts`` when an earlier run finished it."""
    label = name.replace("_", "-")
    todo = [p for p in ("mc", "gen", "treatment") if f"{name}:{p}" not in parts]
    todo = [p for p in todo if p != "treatment" or treat_items]
    res: dict[str, Any] = {"n_mc": len(mc_items), "n_gen": len(gen_rows)}
    for part in ("mc", "gen", "treatment"):
        if f"{name}:{part}" in parts:
            res.update(parts.get(f"{name}:{part}"))
    if not todo:
        log.info("%s: every part reused from %s", label, parts.path)
        res["seconds"] = round(sum(v for k, v in res.items() if k.startswith("seconds_")), 1)
        return res
    import torch

    model, tokenizer, info = load_model(cfg.base_model, adapter, cfg.device, precision, merge=cfg.merge)
    info.update(
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."), merged=bool(adapter) and cfg.merge
    )
    res["model"] = info
    per = len(mc_items[0].options) if mc_items else 1  # progress counts items, as --limit-mc does
    for part in todo:
        t0 = time.perf_counter()
        if part == "mc":
            with Progress(len(mc_items), f"{label}: multiple choice") as bar:
                options = lambda n: bar.update(n / per)  # noqa: E731
                picks = multiple_choice.choose_options(
                    model, tokenizer, mc_items, cfg.batch_size, cfg.mc_answer_tokens, options
                )
            correct = [int(p == it.answer_index) for p, it in zip(picks, mc_items, strict=True)]
            out = {"_correct": correct, "accuracy": float(np.mean(correct)) if correct else None}
            out["accuracy_ci"] = stats.mean_ci(correct, idx["mc"])
            shown = f"multiple choice accuracy {fmt(out['accuracy'])} {fmt(out['accuracy_ci'])}"
        elif part == "gen":
            prompts = [r["messages"][:-1] for r in gen_rows]
            answers, ended = metrics.greedy_generate(
                model, tokenizer, prompts, cfg.max_new_tokens, cfg.batch_size, f"{label}: answers"
            )
            refs = [r["messages"][-1]["content"] for r in gen_rows]
            out = metrics.text_scores(answers, refs, idx["gen"])
            out["eos_rate"] = float(np.mean(ended)) if ended else None
            out["examples"] = [
                {"id": r["id"], "answer": a} for r, a in zip(gen_rows[:3], answers, strict=False)
            ]
            shown = f"answers BLEU {fmt(out['bleu'])}, ROUGE-L {fmt(out['rouge_l'])} {fmt(out['rouge_l_ci'])}"
        else:
            row, texts = eval_rows.model_row(
                model, tokenizer, treat_items, index, cfg.treatment_max_new_tokens, cfg.batch_size,
                cfg.bootstrap, cfg.seed, label, cfg.free_treatment, cfg.distractors,
            )  # fmt: skip
            out = {"_row": row, **(metrics.treatment_scores(texts) if texts else {})}
            shown = "treatment rows:\n" + "\n".join(eval_rows.rows_table({name: row}))
        out["model"], out[f"seconds_{part}"] = info, round(time.perf_counter() - t0, 1)
        res.update(parts.put(f"{name}:{part}", out))
        saved()
        log.info("%s: %s (%s s; saved to %s)", label, shown, out[f"seconds_{part}"], cfg.output_path)
    res["seconds"] = round(sum(v for k, v in res.items() if k.startswith("seconds_")), 1)
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the second model loads into the memory the first one held
    return res


def public(res: dict[str, Any]) -> dict[str, Any]:
    """The figures without the per-item arrays kept for paired comparisons."""
    drop = ("_", "examples", "seconds")
    return {k: v for k, v in res.items() if not k.startswith(drop)}


def record_metrics(cfg: EvalConfig, summary: dict[str, Any]) -> None:
    """Add the figures to model_info.json files that exist and re-render the adapter's model card."""
    for path in (cfg.models_path / "model_info.json", Path(cfg.adapter) / "model_info.json"):
        # An adapter's model_info.json names its base; creating one without that would break the base check.
        if path.is_file():
            update_json(
                path, lambda cur: {**(cur if isinstance(cur, dict) else {}), "metrics": summary}, default={}
            )
            log.info("metrics added to %s", path)
        else:
            log.warning("%s does not exist; metrics not added there", path)
    try:
        from medlora.export.modelcard import write_model_card
    except ImportError:
        log.warning("medlora.export.modelcard is not available; the adapter's model card was not re-rendered")
        return
    write_model_card(Path(cfg.adapter))


def main(cfg: EvalConfig) -> dict[str, Any]:
    data_dir = Path(cfg.data_dir)
    test, train = load_split(data_dir, "test"), load_split(data_dir, "train")
    variants = {"base": None, "fine_tuned": cfg.adapter}
    if cfg.base_only:
        variants.pop("fine_tuned")
    if cfg.adapter_only:
        variants.pop("base")
    if cfg.retrieval_only:
        variants = {}
    if variants and not (Path(cfg.base_model) / "config.json").is_file():
        raise missing_model_error(cfg.base_model)
    if "fine_tuned" in variants:
        if not (Path(cfg.adapter) / "adapter_config.json").is_file():
            raise UsageError(
                f"no adapter at {cfg.adapter}: run `python train_model.py` first (or pass --base-only)"
            )
        check_adapter_matches(cfg.base_model, cfg.adapter)  # before minutes of base-model evaluation
    qa = [r for r in test if r["kind"] == "qa"]
    treatment = [r for r in test if r["kind"] == "treatment"]
    if not qa:
        raise UsageError(
            f"{data_dir / 'test.jsonl'} has no question-answer rows: rebuild it with `python download_model.py`"
        )
    limits = {"gen": capped("gen", cfg.limit_gen, len(qa))}
    gen_rows = metrics.seeded_order(qa, cfg.seed, "gen")[: limits["gen"]["used"]]
    limits["mc"] = capped("mc", cfg.limit_mc, len(qa))
    mc_items, skipped = multiple_choice.build_mc_items(test, train, limits["mc"]["used"], cfg.seed)
    plain_items, _ = multiple_choice.build_mc_items(
        test, train, limits["mc"]["used"], cfg.seed, rewrite_names=False
    )
    limits["mc"].update(used=len(mc_items), skipped_without_distractors=skipped)
    limits["treatment"] = capped("treatment", cfg.limit_treatment, len(treatment))
    treat_rows = metrics.seeded_order(treatment, cfg.seed, "treatment")[: limits["treatment"]["used"]]
    idx = {
        "mc": stats.bootstrap_indices(len(mc_items), cfg.bootstrap, cfg.seed),
        "gen": stats.bootstrap_indices(len(gen_rows), cfg.bootstrap, cfg.seed + 1),
    }
    started = time.time()
    index = retrieval.load_index(data_dir)  # exit 2 naming the rebuild when missing or stale
    # Each test row read once (record, passages, target, variant, distractors) for every row below.
    treat_items = eval_items.build_items(treat_rows, index, judge=concerns)  # judged as inference judges
    parts = Parts(parts_path(cfg.output_path), resume_key(cfg, data_dir), cfg.resume)
    results: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    precision = eval_precision(cfg, resolve_device(cfg.device)) if variants else None
    context = {"data_dir": data_dir, "limits": limits, "precision": precision, "started": started,
               "treatment_variants": eval_rows.variant_counts(treat_rows)}  # fmt: skip

    def saved() -> None:
        """The report as it stands, written after every part: an interruption keeps what was measured."""
        done = {**{n: p for n in variants if (p := model_parts(parts, n))}, **results}
        shown = eval_rows.without_items(rows)
        write_json(cfg.output_path, build_report(cfg, done, shown, context, complete=False, parts=parts))

    try:
        if "baselines" in parts:
            base = parts.get("baselines")
        else:
            with step("baselines (retrieval, word overlap, grounding, no-model rows)"):
                base = {"retrieval_baseline": eval_rows.retrieval_baseline(train, gen_rows, idx["gen"])}
                base["shortcut_baseline"] = multiple_choice.shortcut_baseline(
                    mc_items, plain_items, idx["mc"]
                )
                base["grounding_baselines"] = grounding_eval.baselines(index, test, cfg.seed)
                log.info("no-model rows on %d treatment items", len(treat_items))
                base["rows"] = (
                    eval_rows.no_model_rows(treat_items, index, cfg.bootstrap, cfg.seed)
                    if treat_items
                    else {}
                )
            parts.put("baselines", base)
        rows.update(base["rows"])
        results.update({k: v for k, v in base.items() if k != "rows"})
        saved()
        shown = fmt(
            [results["shortcut_baseline"].get("accuracy"), results["retrieval_baseline"].get("rouge_l")]
        )
        log.info("baselines: word-overlap shortcut accuracy %s, nearest-answer ROUGE-L %s (saved to %s)",
                 *shown, cfg.output_path)  # fmt: skip
        for name, adapter in variants.items():
            # The bars below are tqdm's, shown on a terminal only; step() logs every 30 s in a log file too.
            with step(f"evaluating the {name.replace('_', '-')} model"):
                results[name] = evaluate_one(
                    cfg, name, adapter, mc_items, gen_rows, treat_items, idx, index, precision, parts, saved
                )
            if "_row" in results[name]:
                rows[name] = results[name].pop("_row")
            saved()
        for path in cfg.gguf:
            key = f"gguf:{Path(path).name}"
            if key not in parts:
                with step(f"treatment rows of {path} on llama.cpp"):
                    parts.put(key, eval_rows.gguf_row(
                        path, treat_items, index, cfg.treatment_max_new_tokens, cfg.bootstrap, cfg.seed))  # fmt: skip
            rows[key] = parts.get(key)
            saved()
            log.info(
                "%s saved to %s:\n%s", key, cfg.output_path, "\n".join(eval_rows.rows_table({key: rows[key]}))
            )
    except KeyboardInterrupt:
        done = parts.names()
        log.warning(
            "interrupted: %s kept in %s (figures so far in %s); rerun the same command to resume from them",
            ", ".join(done) or "no finished part", parts.path, cfg.output_path,
        )  # fmt: skip
        raise
    difference = None
    if "base" in results and "fine_tuned" in results:
        difference = metrics.paired_difference(results["base"], results["fine_tuned"], idx["mc"], idx["gen"])
        difference.update(eval_rows.paired_differences(rows, cfg.bootstrap, cfg.seed))
    report = build_report(cfg, results, eval_rows.without_items(rows), context, True, difference=difference)
    summary: dict[str, Any] = {k: public(v) for k, v in results.items()}
    summary.update(command=report["command"], seed=cfg.seed, measured=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if "fine_tuned_minus_base" in report:
        summary["fine_tuned_minus_base"] = report["fine_tuned_minus_base"]
    write_json(cfg.output_path, report)
    parts.remove()  # the report holds everything now; a rerun measures afresh
    log.info("report written to %s", cfg.output_path)
    if rows:
        log.info("treatment and grounding rows, free generation (all variants):\n%s",
                 "\n".join(eval_rows.rows_table(rows)))  # fmt: skip
        log.info("the same rows, constrained generation as inference publishes it:\n%s",
                 "\n".join(eval_rows.rows_table(rows, constrained=True)))  # fmt: skip
    if "fine_tuned" in results:
        record_metrics(cfg, summary)
    return report


if __name__ == "__main__":
    sys.exit(run_stage(main, EvalConfig, description=__doc__))
