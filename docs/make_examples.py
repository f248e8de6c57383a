"""Write the example outputs shown in docs/ with the code that produces them, so they cannot go stale.

    python docs/make_examples.py            # rewrite docs/examples/*
    python -m pytest tests/test_docs.py     # fails when a committed example differs from what the code makes

No model is needed: the recommendation examples come from the safety rules (``inference.py --check``) applied to
``docs/examples/check_input.json``, a recommendation written by hand the way a model might write it (it prescribes
amoxicillin to a patient allergic to penicillin); the HTTP example comes from the server with a stand-in model.
A page shows a generated file by putting ``<!-- generated: docs/examples/NAME -->`` on the line before a fenced
block holding the file's text; tests/test_docs.py checks that the block and the file agree.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXAMPLES = ROOT / "docs" / "examples"
PATIENT = ROOT / "examples" / "patients" / "strep_penicillin_allergy.json"
CHECK_INPUT = EXAMPLES / "check_input.json"


def checked(fmt: str) -> str:
    """What ``python inference.py --patient PATIENT --check CHECK_INPUT --format FMT`` prints."""
    import inference

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"out.{fmt}"
        cfg = inference.InferenceConfig(
            patient=str(PATIENT), check=str(CHECK_INPUT), format=fmt, output=str(out)
        )
        cfg.validate()
        inference.main(cfg)
        return out.read_text(encoding="utf-8")


def invalid_record_422() -> str:
    """The server's answer to a record with an out-of-range age, an unknown field and swapped blood pressures."""
    import json

    from fastapi.testclient import TestClient

    from medlora.common.schemas import ModelInfo
    from medlora.serving.server import ENDPOINT, create_app

    stand_in = SimpleNamespace(
        info=ModelInfo(base="stand-in", revision=None, adapter=None), log_outcome=lambda *a, **k: None
    )
    record = {
        "age": 130,
        "symptoms": ["cough"],
        "smoker": True,
        "vitals": {"systolic_bp": 70, "diastolic_bp": 130},
    }
    with TestClient(create_app(stand_in)) as client:
        r = client.post(ENDPOINT, json=record, headers={"X-Request-ID": "example-1"})
    return json.dumps({"status": r.status_code, "body": r.json()}, indent=2) + "\n"


GENERATORS = {
    "recommendation.json": lambda: checked("json"),
    "recommendation.txt": lambda: checked("text"),
    "invalid_record_422.json": invalid_record_422,
}


def generate() -> dict[str, str]:
    return {name: make() for name, make in GENERATORS.items()}


GENERATED = re.compile(r"<!--\s*generated:\s*(\S+)\s*-->")
FENCE = re.compile(r"^(```|~~~)")


def refresh_pages() -> None:
    """Rewrite every page block that follows ``<!-- generated: FILE -->`` with FILE's current text."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
        out, i = [], 0
        while i < len(lines):
            out.append(lines[i])
            m = GENERATED.search(lines[i])
            if m and i + 1 < len(lines) and FENCE.match(lines[i + 1]):
                end = next(j for j in range(i + 2, len(lines)) if FENCE.match(lines[j]))
                out += [lines[i + 1], (ROOT / m.group(1)).read_text(encoding="utf-8"), lines[end]]
                i = end
            i += 1
        if out != lines:
            page.write_text("".join(out), encoding="utf-8")
            print(f"refreshed {page.relative_to(ROOT)}")


def main() -> None:
    for name, text in generate().items():
        (EXAMPLES / name).write_text(text, encoding="utf-8")
        print(f"wrote docs/examples/{name}")
    refresh_pages()


if __name__ == "__main__":
    main()
