"""Stage 2: LoRA fine-tuning of the base model on data/medquad/ with the HF Trainer (the model card's settings).

    # the real run (GPU, card defaults: 3 epochs, batch 4, lr 2e-4, max length 512, AdamW, cosine, fp16)
    python train_model.py

    # offline smoke run on CPU with the tiny random model
    python train_model.py --base-model models/tiny-random --max-steps 30

    # several GPUs (DDP); FSDP or DeepSpeed through an accelerate config file
    accelerate launch --multi_gpu --num_processes 4 train_model.py
    accelerate launch --config_file fsdp.yaml train_model.py --config examples/train_config.yaml
    # two CPU processes (gloo), as the tests run it; `accelerate launch --cpu` alone starts only one
    accelerate launch --multi_gpu --num_processes 2 train_model.py --base-model models/tiny-random --max-steps 4

    # a small GPU: 4-bit base (QLoRA) and gradient checkpointing
    python train_model.py --load-in-4bit --gradient-checkpointing --batch-size 2

Outputs: OUTPUT_DIR (default models/tinyllama-medquad-treatment/) with the adapter, tokenizer, run_config.json,
model_info.json and the model card README.md; beside it training_log.json, model_info.json and
training_loss.png. Checkpoints go to OUTPUT_DIR/checkpoints/ and a rerun resumes from the last one.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

from medlora.common.cli import UsageError, config_dict, run_stage
from medlora.common.files import make_temp_dir, replace_dir, sha256_files, write_json
from medlora.common.progress import on_terminal, step
from medlora.export.modelcard import write_model_card
from medlora.model.loading import (
    load_tokenizer,
    missing_model_error,
    read_model_source,
    resolve_device,
)
from medlora.training import objective
from medlora.training import run as training
from medlora.training.config import TrainConfig, fingerprint, training_args
from medlora.training.heartbeat import heartbeat_callback

log = logging.getLogger("train_model")


def preflight(cfg: TrainConfig) -> dict:
    """Every check that can fail on input, before anything is loaded or written."""
    base, data = Path(cfg.base_model), Path(cfg.data_dir)
    if not (base / "config.json").is_file():
        raise missing_model_error(base)
    for split in ("train", "val"):
        if not (data / f"{split}.jsonl").is_file():
            raise UsageError(f"no {split} data in {data}: run `python download_model.py` first")
    context = json.loads((base / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    if context and cfg.max_length > context:
        raise UsageError(f"--max-length {cfg.max_length} exceeds the model's context of {context} tokens")
    if (Path(cfg.output_dir) / "adapter_config.json").is_file() and not cfg.overwrite:
        raise UsageError(
            f"{cfg.output_dir} holds a finished adapter: pass --overwrite or another --output-dir"
        )
    device = resolve_device(cfg.device)
    dtype = training.training_dtype(cfg.precision, device, cfg.load_in_4bit)
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError("--tensorboard needs tensorboard: pip install tensorboard") from None
    files = [data / "train.jsonl", data / "val.jsonl"]
    data_info = {"hash": sha256_files(files), "files": [str(f) for f in files], "source": data_source(data)}
    ckpt = cfg.checkpoint_dir
    resume_from = training.find_checkpoint(ckpt, fingerprint(cfg, data_info["hash"])) if cfg.resume else None
    return {"device": device, "dtype": dtype, "data": data_info, "resume_from": resume_from}


def data_source(data: Path) -> str | None:
    """Where download_model.py read MedQuAD from (github, hf, or a local path), as its stats.json says: the
    model card names the dataset it actually came from."""
    try:
        return json.loads((data / "stats.json").read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None


def main(cfg: TrainConfig, callbacks: list | None = None) -> dict:
    """Train, then write the adapter and the logs; ``callbacks`` are extra Trainer callbacks (tests use one)."""
    plan = preflight(cfg)
    from transformers import EarlyStoppingCallback, Trainer, set_seed
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback

    device, dtype = plan["device"], plan["dtype"]
    out, ckpt, data = Path(cfg.output_dir), cfg.checkpoint_dir, Path(cfg.data_dir)
    set_seed(cfg.seed)
    args = training_args(cfg, device, dtype, has_eval=True)
    try:
        with step("loading the base model and adding LoRA"):
            model, counts = training.build_lora_model(
                cfg.base_model, dtype, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules,
                cfg.load_in_4bit, cfg.gradient_checkpointing, top_layers=cfg.lora_top_layers,
                init_adapter=cfg.init_adapter,
            )  # fmt: skip
    except ValueError as e:  # PEFT names the target modules it cannot find; a mismatched --init-adapter
        what = "--init-adapter" if "LoRA layout" in str(e) else "--lora-target-modules"
        raise UsageError(f"{what}: {str(e).splitlines()[0]}") from None
    if args.should_save:
        if ckpt.exists() and plan["resume_from"] is None:
            log.info("starting afresh: removing %s", ckpt)
            shutil.rmtree(ckpt)
        write_json(ckpt / "run_fingerprint.json", fingerprint(cfg, plan["data"]["hash"]))
    tokenizer = load_tokenizer(cfg.base_model)
    tokenizer.pad_token_id = training.pad_token_id(tokenizer)
    tok_fp = training.tokenizer_fingerprint(cfg.base_model)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else data / "cache"
    splits, stats = {}, {}
    with args.main_process_first(desc="tokenising"):  # one process tokenises, the others read its cache
        for name in ("train", "val"):
            limit = (cfg.limit_val_examples or cfg.limit_examples) if name == "val" else cfg.limit_examples
            mix = None
            if cfg.treatment_share:  # val as mixed as train: the best checkpoint is chosen by what is trained
                rare = cfg.rare_boost and name == "train"
                mix = {"treatment_share": cfg.treatment_share, "rare_boost": rare, "seed": cfg.seed}
            with step(f"tokenising the {name} split"):  # datasets' own bar is off outside a terminal
                splits[name], stats[name] = training.load_split(
                    data / f"{name}.jsonl", tokenizer, tok_fp, cfg.max_length, cache, limit, mix
                )
            log.info("%s examples: %s", name, stats[name])
    # Evaluation order does not matter, so batch the val split by length: random batches of 4 are a third padding.
    # Longest first, so a batch too large for memory fails at the first evaluation step, not at the last.
    splits["val"] = splits["val"].sort("length", reverse=True)
    if len(splits["train"]) == 0:
        raise UsageError(f"no training example fits in --max-length {cfg.max_length}")
    has_eval = len(splits["val"]) > 0
    if not has_eval:
        log.warning("no validation example: no evaluation and no best-checkpoint selection")
        args = training_args(cfg, device, dtype, has_eval=False)
    throughput = training.throughput_callback()
    heartbeat = heartbeat_callback()
    callbacks = [throughput, heartbeat, *(callbacks or [])]
    if cfg.early_stopping_patience and has_eval:
        callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience))
    if cfg.tensorboard:
        callbacks.append(TensorBoardCallback())
        callbacks[-1].logging_dir = str(out.parent / "runs" / out.name / time.strftime("%Y%m%d-%H%M%S"))
    if cfg.max_minutes:
        callbacks.append(budget := objective.time_budget_callback(cfg.max_minutes))
    balanced = None
    if cfg.balance_decisions:
        empty = objective.empty_token_ids(tokenizer)
        rates = objective.fill_rates(splits["train"], empty)
        balanced = (empty, objective.balanced_weights(rates, cfg.decision_weight))
        log.info(
            "decision weights (empty, filled) by section: %s", dict(zip(rates, balanced[1], strict=True))
        )
    trainer_cls = Trainer
    if cfg.decision_weight != 1.0 or balanced:
        from medlora.data.decisions import weighted_trainer

        trainer_cls = weighted_trainer(Trainer)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["val"] if has_eval else None,
        data_collator=objective.PadCollator(
            tokenizer.pad_token_id, 8 if device.startswith("cuda") else None, cfg.decision_weight, balanced
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if not on_terminal():
        trainer.remove_callback(PrinterCallback)  # it prints raw dicts to stdout; the heartbeat logs them
    if plan["resume_from"]:
        log.info("resuming from %s", plan["resume_from"])
    try:
        trainer.train(resume_from_checkpoint=plan["resume_from"])
    finally:
        heartbeat.beat.__exit__()  # on_train_end is skipped when training raises or is interrupted
    trainer.accelerator.wait_for_everyone()
    if not args.should_save:
        return {}
    state = trainer.state
    records = training.step_records(state.log_history)
    evals = [r["eval_loss"] for r in records if r["eval_loss"] is not None]
    results = {
        "global_step": state.global_step,
        "epochs_done": round(state.epoch or 0, 4),
        "train_loss_last": next((r["loss"] for r in reversed(records) if r["loss"] is not None), None),
        "best_eval_loss": min(evals) if evals else None,
        "best_checkpoint_step": state.best_global_step,
        "stopped_by_time_budget": cfg.max_minutes > 0 and budget.stopped_at is not None,
    }
    hyper = ("epochs", "max_steps", "batch_size", "gradient_accumulation_steps", "learning_rate")
    hyper += ("warmup_ratio", "weight_decay", "max_length", "load_in_4bit", "gradient_checkpointing", "seed")
    info = {
        "base_model": {**read_model_source(cfg.base_model), "path": cfg.base_model},
        "data": {**plan["data"], "examples": stats},
        "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout}
        | {"top_layers": cfg.lora_top_layers}
        | {"target_modules": cfg.lora_target_modules, **counts},
        "training": {k: getattr(cfg, k) for k in hyper}
        | {
            "optimizer": str(getattr(args.optim, "value", args.optim)),
            "lr_scheduler": "cosine",
            "precision": str(dtype).removeprefix("torch."),
            "device": device,
            "world_size": args.world_size,
            "global_step": state.global_step,
            "results": results,
        },
        "versions": training.library_versions(),
    }
    tmp = make_temp_dir(out)
    try:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "run_config.json", config_dict(cfg))
        write_json(tmp / "model_info.json", info)
        # Minutes on a CPU (one forward pass per val row): step() says every 25 s that it is still running.
        if cfg.choose_bias:
            with step(f"choosing the decoding bias on up to {cfg.bias_val_rows} val rows"):
                info["decoding"] = write_decoding(cfg, trainer.model, tokenizer, tmp)
            write_json(tmp / "model_info.json", info)
        write_model_card(tmp)
        if cfg.merge:
            with step("merging the adapter into a standalone model"):
                write_merged(cfg, dtype, tmp, info)
        replace_dir(tmp, out)  # the checkpoints of this run go with the old directory
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json(out.parent / "model_info.json", info)
    train_log = {
        "config": config_dict(cfg),
        "steps": records,
        "examples": stats,
        "padding_share": {
            grouping: training.padding_share(
                splits["train"]["length"], cfg.batch_size, grouping == "length_grouped"
            )
            for grouping in ("random_batches", "length_grouped")
        },
        "resumed_from": plan["resume_from"],
        **throughput.summary(),
        "peak_memory": training.peak_memory(),
        "results": results,
    }
    write_json(out.parent / "training_log.json", train_log)
    training.plot_loss(records, out.parent / "training_loss.png", title=f"{out.name} on {cfg.base_model}")
    log.info("adapter in %s after %d steps: %s", out, state.global_step, throughput.summary())
    if cfg.evaluate:
        import evaluate_model  # the evaluation stage, with its defaults, on the adapter just written

        eval_cfg = evaluate_model.EvalConfig(
            base_model=cfg.base_model, adapter=str(out), data_dir=cfg.data_dir, device=cfg.device
        )
        eval_cfg.validate()
        train_log["evaluation"] = evaluate_model.main(eval_cfg)
    return train_log


def write_decoding(cfg: TrainConfig, model, tokenizer, adapter_dir: Path) -> dict:
    """Choose the per-section bias against empty sections on val (teacher-forced decision margins of the model
    just trained) and write it, with P(empty) for filled and empty targets, to ADAPTER/decoding.json."""
    import time as _time

    from medlora.common.files import read_jsonl
    from medlora.data import decisions
    from medlora.retrieval.index import load_index
    from medlora.retrieval.subject import mark_concerns
    from medlora.training.run import sample_rows

    t0 = _time.time()
    rows = [
        r
        for r in read_jsonl(Path(cfg.data_dir) / "val.jsonl")
        if r["kind"] == "treatment" and r.get("passages")
    ]
    rows = sample_rows(rows, cfg.bias_val_rows, cfg.seed)
    model.eval()
    length = max(cfg.max_length, 1536)
    items = decisions.decision_margins(model, tokenizer, rows, max_length=length)
    # Chosen where the decoder is when it has written nothing yet (every earlier section empty): the state
    # generation starts from; the gold-prefix figures say whether the decisions were learned at all.
    silent = decisions.decision_margins(model, tokenizer, rows, max_length=length, prefix="silent")
    mark_concerns(silent, rows, load_index(cfg.data_dir))
    chosen = decisions.choose_bias(silent)
    out = {
        **chosen,
        "val_rows": len(items),
        "prefix": "silent",
        "p_empty_before_bias": decisions.summarise(items),
        "p_empty_silent_prefix": decisions.summarise(silent),
        "seconds": round(_time.time() - t0, 1),
    }
    write_json(adapter_dir / decisions.DECODING_FILE, out)
    log.info("decoding bias chosen on %d val rows: %s", len(items), chosen["empty_bias"])
    return {k: out[k] for k in ("empty_bias", "val_rows", "abstention_on_val")}


def write_merged(cfg: TrainConfig, dtype, adapter_dir: Path, info: dict) -> None:
    """The base reloaded unquantised with the adapter merged in: a standalone model for tools without PEFT."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=dtype)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(adapter_dir / "merged")
    load_tokenizer(adapter_dir).save_pretrained(adapter_dir / "merged")
    source = info["base_model"]
    write_json(
        adapter_dir / "merged" / "model_source.json",
        {
            "model_id": f"{source.get('model_id')}+{Path(cfg.output_dir).name}",
            "resolved_revision": source.get("resolved_revision"),
            "source": "merged by train_model.py",
            "base_model": source,
            "data_hash": info["data"]["hash"],
        },
    )


if __name__ == "__main__":
    sys.exit(run_stage(main, TrainConfig, description=__doc__))
