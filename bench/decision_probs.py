"""P(empty) at each section's fill-or-empty decision, for filled and for empty targets (issue 26).

    # the pilot check: does the adapter put less on "empty" where the target fills the section?
    python bench/decision_probs.py --base-model models/smollm2-135m --adapter models/pilot --limit 48

    # the base model on the same rows
    python bench/decision_probs.py --base-model models/smollm2-135m --limit 48

    # choose the decoding bias again on val and store it with the adapter (what train_model.py --choose-bias does)
    python bench/decision_probs.py --base-model models/smollm2-135m --adapter models/smollm2-medquad-treatment \
        --limit 96 --write-bias

Teacher-forced on the treatment rows (with passages) of ``--split`` (val by default): for each section, the
probability of closing the array at the decision token, restricted to the continuations the grammar allows
there (``]`` against ``{``), averaged over rows whose target fills the section and rows whose target leaves it
empty, with the AUC of the separation (0.5: none). ``medlora.data.decisions`` holds the code. Writes JSON to
``--output`` (default: stdout only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="models/smollm2-135m", help="base model directory")
    ap.add_argument("--adapter", default=None, help="LoRA adapter directory (none: the base model)")
    ap.add_argument("--data-dir", default="data/medquad", help="holds the split files")
    ap.add_argument("--split", default="val", help="split file to read (val, test)")
    ap.add_argument("--limit", type=int, default=48, help="treatment rows (a seeded sample)")
    ap.add_argument("--seed", type=int, default=42, help="seed of the sample")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--precision", default="auto", help="auto (fp32 on CPU), fp32 or bf16")
    ap.add_argument(
        "--write-bias", action="store_true", help="choose the bias and write ADAPTER/decoding.json"
    )
    ap.add_argument(
        "--prefix", choices=("gold", "silent"), default="gold",
        help="sections before each decision: the target's (gold) or all empty (silent, the decoder's state "
        "when it has written nothing yet)",
    )  # fmt: skip
    ap.add_argument("--output", default=None, help="write the report here too")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    split_file = Path(args.data_dir) / f"{args.split}.jsonl"
    if not split_file.is_file() or not (Path(args.base_model) / "config.json").is_file():
        print(
            f"error: need {split_file} and {args.base_model}/config.json (run download_model.py)",
            file=sys.stderr,
        )
        return 2
    if args.write_bias and not args.adapter:
        print("error: --write-bias needs --adapter", file=sys.stderr)
        return 2
    if args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from medlora.common.files import read_jsonl, update_json, write_json
    from medlora.data import decisions
    from medlora.model.loading import load_model
    from medlora.training.run import sample_rows

    rows = [r for r in read_jsonl(split_file) if r["kind"] == "treatment" and r.get("passages")]
    rows = sample_rows(rows, args.limit, args.seed)
    model, tokenizer, _ = load_model(args.base_model, args.adapter, "cpu", args.precision, merge=False)
    t0 = time.time()
    items = decisions.decision_margins(model, tokenizer, rows, prefix=args.prefix)
    report = {
        "base_model": args.base_model,
        "adapter": args.adapter,
        "split": args.split,
        "prefix": args.prefix,
        "rows": len(items),
        "p_empty": decisions.summarise(items),
        "seconds": round(time.time() - t0, 1),
        "command": "python "
        + " ".join(["bench/decision_probs.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    if args.write_bias:
        from medlora.retrieval.index import load_index
        from medlora.retrieval.subject import mark_concerns

        mark_concerns(items, rows, load_index(args.data_dir))
        chosen = decisions.choose_bias(items)
        report["chosen"] = chosen
        write_json(
            Path(args.adapter) / decisions.DECODING_FILE,
            {
                **chosen,
                "val_rows": len(items),
                "prefix": args.prefix,
                "p_empty_before_bias": report["p_empty"],
            },
        )
        info = Path(args.adapter) / "model_info.json"
        if info.is_file():  # the folder describes itself: its model_info says which bias decodes it
            summary = {k: chosen[k] for k in ("empty_bias", "abstention_on_val")}
            update_json(info, lambda d: {**d, "decoding": {**summary, "val_rows": len(items)}}, {})
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        write_json(Path(args.output), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
