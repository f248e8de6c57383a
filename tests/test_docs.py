"""The documentation cannot rot silently: every relative link in README.md and docs/ resolves (files, and
#anchors as GitHub renders headings), every example output shown in docs/ is what the code makes today
(docs/make_examples.py), and every ```json block in docs/ is JSON (a Recommendation-shaped one validates)."""

from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from pathlib import Path

import pytest
from conftest import ROOT

from medlora.common.schemas import Recommendation

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_GENERATED = re.compile(r"<!--\s*generated:\s*(\S+)\s*-->")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """Numbered lines outside fenced code blocks (a heading or a link in a code block is neither)."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            out.append((n, line))
    return out


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = "".join(c for c in text.strip().lower() if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(text):
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(1))
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")  # GitHub numbers repeated headings
        seen[slug] = seen.get(slug, 0) + 1
    out.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", text))
    return out


def links(text: str) -> list[tuple[int, str]]:
    found = []
    for n, line in prose_lines(text):
        line = re.sub(r"`+[^`]*`+", "``", line)  # nor is a link inside inline code
        found += [(n, m.group(1)) for m in _LINK.finditer(line)]
        if m := _REF_DEF.match(line):
            found.append((n, m.group(1)))
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for n, target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}:{n}: {target}"
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{where} points outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading with that anchor in {dest.name}")
    return problems


def test_github_anchors_are_computed_as_github_does():
    assert (
        github_slug("Stage 5: `export_model.py` (GGUF for llama.cpp, Ollama, LM Studio)")
        == "stage-5-export_modelpy-gguf-for-llamacpp-ollama-lm-studio"
    )
    assert github_slug("Metrics: honest status") == "metrics-honest-status"
    assert github_slug("TinyLlama × MedQuAD: LoRA") == "tinyllama--medquad-lora"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_the_link_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Real heading\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#real-heading) [ok](#here) [web](https://example.org/x)\n"
        "# Here\n[gone](missing.md) [bad anchor](other.md#nope) [up](../../etc/passwd)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n[ref]: also-missing.md\n"
    )
    problems = broken_links(page, tmp_path)
    assert len(problems) == 4, problems
    assert all(any(s in p for p in problems) for s in ("missing.md", "#nope", "outside", "also-missing.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def _make_examples():
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "docs" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_outputs_are_what_the_code_makes_now():
    made = _make_examples().generate()
    for name, text in made.items():
        committed = (ROOT / "docs" / "examples" / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/examples/{name} is stale: run `python docs/make_examples.py`"
    rec = Recommendation.model_validate_json(made["recommendation.json"])
    assert [c.medication for c in rec.safety.allergy_conflicts] == [
        "amoxicillin"
    ]  # the rule the example shows


def test_pages_show_the_generated_files_verbatim():
    shown = 0
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not (m := _GENERATED.search(line)):
                continue
            assert i + 1 < len(lines) and _FENCE.match(lines[i + 1]), f"{page.name}:{i + 1}: no block follows"
            end = next(j for j in range(i + 2, len(lines)) if _FENCE.match(lines[j]))
            block = "\n".join(lines[i + 2 : end]) + "\n"
            assert block == (ROOT / m.group(1)).read_text(encoding="utf-8"), f"{page.name}:{i + 1} differs"
            shown += 1
    assert shown >= 2  # docs/serving.md shows the JSON answer and the 422


def test_json_blocks_in_docs_are_json_and_recommendations_validate():
    """A sketch that is not JSON belongs in a ```text block; a JSON example must parse."""
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for block in re.findall(r"^```json\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S):
            data = json.loads(block)
            if isinstance(data, dict) and {"immediate_actions", "safety"} <= data.keys():
                Recommendation.model_validate(data)
