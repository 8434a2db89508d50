"""Code comments say why; measured figures live in docs/benchmarks.md ("Why the code is
shaped so"), which ``make bench`` rewrites around that section without losing it."""

from __future__ import annotations

import re

from bench.harness import ROOT
from bench.run import KEPT_HEADING, kept_section

# A timing, or a share of some operation's cost: the forms measured figures took in comments.
MEASURED = re.compile(r"\d(\.\d+)?\s?(µs|ms)\b|\d\s?% of|\b(third|fifth|tenth) of (a|an|the)\b")


def test_no_measured_figures_in_the_services_code():
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "services").rglob("*.py"))
             if "migrations" not in path.parts
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if MEASURED.search(line)]
    assert found == []


def test_the_hand_written_section_survives_a_rewrite():
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    kept = kept_section(doc)
    assert kept is not None and kept.startswith(KEPT_HEADING + "\n")
    assert "`services/permissions/cache.py: untracked`" in kept
    # Carried over whole: the section runs to the end of the document.
    assert doc.rstrip("\n").endswith(kept.rstrip("\n"))


def test_a_document_without_the_section_keeps_nothing():
    assert kept_section("# Benchmarks\n\n## Tracking\n\nrows\n") is None


def test_each_place_named_in_the_section_exists():
    kept = kept_section((ROOT / "docs" / "benchmarks.md").read_text()) or ""
    places = re.findall(r"^\* `(services/[\w/]+\.py)(?:: ([\w.]+))?`", kept, re.MULTILINE)
    assert len(places) >= 15
    for path, name in places:
        source = (ROOT / path).read_text()
        if name:
            last = name.split(".")[-1]
            assert re.search(rf"^\s*(def |class )?{re.escape(last)}\b", source, re.MULTILINE), \
                f"{path}: {name}"
