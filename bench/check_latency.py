"""How long the safety audit takes: `inference.py --check` end to end, and the rules alone per record.

    python bench/check_latency.py                 # 5 runs of the command, 200 records through the rules
    python bench/check_latency.py --runs 10

The command's time includes starting Python and importing the stage (the issue's target: under 3 s); the rules'
time is apply_safety on the phrasing table's records (tests/fixtures/safety_cases.jsonl). Nothing is written outside
a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medlora.common.schemas import PatientRecord, Sections  # noqa: E402
from medlora.safety.rules import apply_safety  # noqa: E402

SECTIONS = {
    "immediate_actions": ["Give Zosyn 4.5 g IV now"],
    "medications": [{"name": "Augmentin", "dosage": "875 mg", "frequency": "twice daily", "side_effects": []},
                    {"name": "acetaminophen", "dosage": None, "frequency": None, "side_effects": ["nausea"]}],
    "lifestyle": ["Avoid NSAIDs such as ibuprofen", "Rest and drink fluids"],
}  # fmt: skip


def command_times(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "r.json"
        rec.write_text(json.dumps(SECTIONS))
        patient = ROOT / "examples" / "patients" / "strep_penicillin_allergy.json"
        cmd = [sys.executable, "inference.py", "--patient", str(patient), "--check", str(rec),
               "--log-file", str(Path(tmp) / "log.json")]  # fmt: skip
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return times


def rules_times(n: int) -> list[float]:
    meta = {"why", "expect", "recommend", "removed", "caution", "duplicates"}
    cases = [json.loads(line) for line in (ROOT / "tests" / "fixtures" / "safety_cases.jsonl").open()]
    times = []
    for case in (cases * (n // len(cases) + 1))[:n]:
        fields = {k: v for k, v in case.items() if k not in meta}
        fields.setdefault("symptoms", ["sore throat"])
        record, sections = PatientRecord(**fields), Sections(**case.get("recommend", SECTIONS))
        start = time.perf_counter()
        apply_safety(record, sections)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of the --check command")
    parser.add_argument("--records", type=int, default=200, help="records through apply_safety")
    args = parser.parse_args()
    cmd = command_times(args.runs)
    rules = rules_times(args.records)
    print("| what | median | max |\n| --- | --- | --- |")
    print(f"| `inference.py --check`, whole command ({args.runs} runs) | {statistics.median(cmd):.2f} s "
          f"| {max(cmd):.2f} s |")  # fmt: skip
    print(f"| apply_safety per record ({args.records} records) | {statistics.median(rules) * 1000:.1f} ms "
          f"| {max(rules) * 1000:.1f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
