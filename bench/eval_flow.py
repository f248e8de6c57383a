"""The evaluation's scoring before and after each test row is read once (issue 27, "each thing read once").

    git worktree add ../eval-old efb3df2        # the commit before items (any checkout of it)
    python bench/eval_flow.py --old-tree ../eval-old --data-dir data/medquad --items 60 --repeats 3

Each repeat runs, in a fresh process per checkout (this one and ``--old-tree``, order alternating), the
scoring ``evaluate_model.py`` does on the same ``--items`` treatment items of the test split: the three
no-model rows (extractive, empty, constant emergency) and ``--model-rows`` model rows, each scored by every
treatment and grounding figure, overall, per variant and on its distractor-only copy (the BM25 distractor
search included). A model row is scored as a GGUF row is (``rows.constrained_part``: constrained outputs,
grounding, calibration, distractors), its generator replaced by the extractive rules: generation is not what
changed, and costs the same before and after. The new checkout also builds its items (``items.build_items``)
inside the timed part. Before the clock both processes load the drug dictionary, the ROUGE scorer and the
index and run what ``evaluate_model.py`` runs first (``grounding.baselines``, which warms the same caches).
It reports the median seconds of each, their ratio, and whether the two produce the same figures (they must:
the refactor changes no behaviour). Outside the clock, both also score outputs made to trip the safety rules
(each patient's allergens and current drugs prescribed, a full ``immediate_actions``) and compare every
per-item score. No model is loaded; results go to bench/results/eval_flow.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medlora.common.files import write_json  # noqa: E402

# Run inside a checkout: its own medlora, its own no_model_rows; items where the checkout has them.
SNIPPET = r"""
import importlib.util, json, sys, time
from pathlib import Path
sys.path.insert(0, ".")
args = json.loads(sys.argv[1])
from medlora.clinical.drugs import resolve
from medlora.common.files import read_jsonl
from medlora.evaluation import metrics
from medlora.evaluation import rows as eval_rows
from medlora.retrieval.index import load_index
data = Path(args["data_dir"])
test = read_jsonl(data / "test.jsonl")
treatment = [r for r in test if r["kind"] == "treatment"]
rows = metrics.seeded_order(treatment, args["seed"], "treatment")[: args["items"]]
index = load_index(data)
resolve("aspirin")  # the drug dictionary and the ROUGE scorer load once per process, outside the clock
metrics.rouge_l_scores(["warm up"], ["warm up the scorer"])
from medlora.evaluation import grounding as grounding_eval
grounding_eval.baselines(index, test, args["seed"])  # evaluate_model.py runs it first; it warms the caches
from types import SimpleNamespace
from medlora.common.schemas import SECTION_NAMES, to_published
from medlora.datasets.targets import extractive_target
class StandIn:  # a model row's generator replaced by the extractive rules (generation did not change)
    def generate(self, records, batch_size=1, passages=()):
        out = []
        for ps in passages:
            s, c = to_published(extractive_target(list(ps)))
            probs = dict.fromkeys(SECTION_NAMES, 0.5)
            out.append(SimpleNamespace(sections=s, citations=c, token_probs=probs))
        return out
new = importlib.util.find_spec("medlora.evaluation.items") is not None
start = time.perf_counter()
if new:
    from medlora.evaluation.items import build_items
    rows = build_items(rows, index)
out = eval_rows.no_model_rows(rows, index, args["bootstrap"], args["seed"])
for m in range(args["model_rows"]):  # scored as a GGUF row is: constrained outputs, grounding, distractors
    out[f"model {m}"] = eval_rows.constrained_part(
        StandIn(), None, rows, index, 96, 8, args["bootstrap"], args["seed"], f"model {m}"
    )
seconds = time.perf_counter() - start
# Outside the clock: outputs that name the patient's allergens and current drugs, with a full
# immediate_actions (the rules' emergency action then pushes one out), scored per item, checked and unchecked.
from medlora.common.schemas import Medication, Sections
from medlora.evaluation import treatment as treatment_eval
def stress(rec):
    names = [*rec.get("medications", [])[:3], *rec.get("allergies", [])[:3], "ibuprofen", "lisinopril"][:8]
    return (Sections(
        immediate_actions=[f"Step {i}: take {n[:40]} as directed." for i, n in enumerate((names * 8)[:8])],
        medications=[Medication(name=n[:60]) for n in names],
        lifestyle=[f"Keep taking {n[:40]} every day." for n in names[:4]],
    ), {"medications": [[1]] * len(names), "lifestyle": [[1]] * min(4, len(names))})
plain = [it.row for it in rows] if new else rows
outputs = [stress(r["record"]) for r in plain]
passages = [it.passages for it in rows] if new else [grounding_eval.row_passages(r, index) for r in rows]
per_item = {
    mode: treatment_eval.evaluate_rows(rows, outputs, args["bootstrap"], args["seed"], p)
    for mode, p in (("checked", passages), ("unchecked", None))
}
report = {"seconds": seconds, "items_module": new, "n": len(rows), "rows": eval_rows.without_items(out),
          "stress": per_item}
print(json.dumps(report))
"""


def die(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(2)


def run(tree: Path, args: argparse.Namespace) -> dict:
    spec = {"data_dir": str(Path(args.data_dir).resolve()), "items": args.items, "seed": args.seed,
            "bootstrap": args.bootstrap, "model_rows": args.model_rows}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", SNIPPET, json.dumps(spec)], cwd=tree, capture_output=True, text=True
    )
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
        sys.exit(f"{tree}: the scoring run failed (its error above)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old-tree", required=True, help="a checkout of the commit before items (efb3df2)")
    parser.add_argument("--new-tree", default=str(ROOT), help="the checkout with items (default: this one)")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "medquad"), help="test.jsonl and index/")
    parser.add_argument("--items", type=int, default=60, help="treatment items scored")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each checkout, order alternating")
    parser.add_argument(
        "--model-rows", type=int, default=2,
        help="model rows scored too (base and fine-tuned: 2), generated by the extractive rules instead",
    )  # fmt: skip
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples, as evaluate_model.py"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "eval_flow.json"))
    args = parser.parse_args()
    trees = {"old": Path(args.old_tree).resolve(), "new": Path(args.new_tree).resolve()}
    for name, tree in trees.items():
        if not (tree / "medlora" / "evaluation" / "rows.py").is_file():
            die(f"--{name}-tree {tree}: not a checkout with medlora/evaluation/rows.py")
    if args.items < 1 or args.repeats < 1 or args.bootstrap < 1 or args.model_rows < 0:
        die("--items, --repeats and --bootstrap must be at least 1, --model-rows at least 0")
    if not (Path(args.data_dir) / "test.jsonl").is_file():
        die(f"--data-dir {args.data_dir}: no test.jsonl and index/ (run download_model.py)")
    seconds: dict[str, list[float]] = {"old": [], "new": []}
    figures: dict[str, dict] = {}
    for r in range(args.repeats):
        for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
            out = run(trees[name], args)
            seconds[name].append(out["seconds"])
            figures[name] = {"rows": out["rows"], "stress": out["stress"]}
            print(f"repeat {r + 1} {name}: {out['seconds']:.1f} s on {out['n']} items", flush=True)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    report = {
        "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "items": args.items,
        "model_rows": args.model_rows,
        "seconds": seconds,
        "median_seconds": med,
        "old_over_new": round(med["old"] / med["new"], 2),
        "same_figures": figures["old"]["rows"] == figures["new"]["rows"],
        # every per-item score of outputs that trip the allergy and duplicate rules (checked and unchecked)
        "same_item_scores_on_stress_outputs": figures["old"]["stress"] == figures["new"]["stress"],
        "stress_counts": {
            k: {
                "allergy_violations_raw": sum(it["raw"]["allergy_violation"] for it in v["_items"]),
                "duplicates_raw": sum(it["raw"]["duplicate"] for it in v["_items"]),
                "duplicates_published": sum(it["published"]["duplicate"] for it in v["_items"]),
            }
            for k, v in figures["new"]["stress"].items()
        },
    }
    write_json(Path(args.output), report)
    print(f"old {med['old']:.1f} s, new {med['new']:.1f} s: {report['old_over_new']}x; "
          f"same figures: {report['same_figures']}; same per-item scores on stress outputs: "
          f"{report['same_item_scores_on_stress_outputs']} {report['stress_counts']}")  # fmt: skip


if __name__ == "__main__":
    main()
