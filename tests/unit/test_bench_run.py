"""A partial ``make bench`` (``BENCH=oidc``) rewrites only its own sections of
docs/benchmarks.md."""

from __future__ import annotations

from bench.harness import ROOT
from bench.run import KEPT_HEADING, with_sections

DOC = ("# Benchmarks\n\nMeasured then.\n\n## OIDC provider (identity)\n\nold rows\n\n_took 1 s_\n"
       "\n## Tracking\n\ntracking rows\n\n_took 2 s_\n\n" + KEPT_HEADING + "\n\nby hand\n")


def test_a_section_is_replaced_and_the_others_kept_as_they_were():
    new = "## OIDC provider (identity)\n\nnew rows\n\n_measured now; took 3 s_\n"
    doc = with_sections(DOC, [new])
    assert doc == DOC.replace("old rows\n\n_took 1 s_", "new rows\n\n_measured now; took 3 s_")


def test_a_section_not_there_goes_before_the_hand_written_one():
    doc = with_sections(DOC, ["## Notifier\n\nrows\n"])
    assert doc.index("## Tracking") < doc.index("## Notifier") < doc.index(KEPT_HEADING)
    assert with_sections(doc, []) == doc


def test_the_real_document_comes_back_unchanged_without_sections():
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    assert with_sections(doc, []) == doc
