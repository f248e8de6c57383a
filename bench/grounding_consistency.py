"""Do the check after generation and the training-target rules agree on real MedQuAD text?

    python bench/grounding_consistency.py --medquad ../shared/data/medquad --foci 400

For a seeded sample of foci with a treatment answer: the focus's own answers cut into passages (as the index cuts
them, with the approximate tokenizer), the extractive target built from them and cited by ``ground_target``
(what a perfectly trained model writes), then ``grounding.check_grounding`` over it. Every item the check removes
or field it nulls is a disagreement between the two rule sets. Also counts the target medications that a cited
passage names only in a sentence that forbids or warns (the rule that keeps them out of targets now).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medlora.clinical.drugs import resolve  # noqa: E402
from medlora.common.schemas import MAX_PASSAGES, SECTION_NAMES, PatientRecord, to_published  # noqa: E402
from medlora.data.medquad import ReadReport, deduplicate, focus_key, read_source  # noqa: E402
from medlora.data.passages import ApproxTokenizer, build_passages  # noqa: E402
from medlora.datasets.targets import extractive_target  # noqa: E402
from medlora.datasets.treatment import SECTION_QTYPES, treatment_target  # noqa: E402
from medlora.grounding.check import check_grounding  # noqa: E402
from medlora.grounding.support import giving, names_drug  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medquad", required=True, help="MedQuAD as download_model.py reads it")
    ap.add_argument("--foci", type=int, default=400, help="foci sampled (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pairs, _ = deduplicate(read_source(Path(args.medquad), ReadReport()))
    used = {qt for qts in SECTION_QTYPES.values() for qt in qts}
    by_focus = defaultdict(list)
    for p in pairs:
        if p.qtype in used:
            by_focus[focus_key(p.focus)].append(p)
    foci = sorted(k for k, ps in by_focus.items() if any(p.qtype == "treatment" for p in ps))
    sample = random.Random(args.seed).sample(foci, min(args.foci, len(foci)))
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for key in sample:
        passages = build_passages({"test": by_focus[key]}, ApproxTokenizer())[:MAX_PASSAGES]
        sections, cites = to_published(extractive_target(passages))
        counts["foci"] += 1
        counts["items"] += sum(len(getattr(sections, n)) for n in SECTION_NAMES)
        out = check_grounding(PatientRecord(conditions=[by_focus[key][0].focus]), sections, cites, passages)
        counts["removed"] += len(out.grounding.unsupported)
        counts["nulled"] += len(out.grounding.nulled)
        reasons.update(u.reason.split(" (")[0].split(":")[0][:60] for u in out.grounding.unsupported)
        # Target medications a passage names only where it forbids or warns: no longer cited for them.
        raw = treatment_target({qt: [p for p in by_focus[key] if p.qtype == qt] for qt in used})[0]
        for med in raw.medications:
            drug = resolve(med.name)
            named = [p for p in passages if drug is not None and names_drug(drug, p.shown)]
            counts["target_medications"] += 1
            counts["named_only_in_a_warning"] += bool(named) and not any(giving(drug, p.shown) for p in named)
    print(json.dumps({**counts, "removal_reasons": dict(reasons.most_common(10))}, indent=2))


if __name__ == "__main__":
    main()
