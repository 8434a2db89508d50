"""``make bench``: run every benchmark module (``bench/*_bench.py``) and rewrite
docs/benchmarks.md with their tables, the machine and the exact commands.

A module exposes ``TITLE`` and ``run() -> str`` (a Markdown section body). Each is
bounded in time by itself; the whole run stays under ten minutes. A partial run
(``make bench BENCH=oidc``) rewrites only its own sections, each saying when it was
measured, and leaves the others as they were.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from datetime import UTC, datetime

from bench.harness import ROOT, machine_line

ORDER = ["oidc", "permissions", "tracking", "notifier"]
# Written by hand (the measurements behind code shaped for speed), not by a benchmark.
KEPT_HEADING = "## Why the code is shaped so"


def modules(selected: list[str]) -> list[str]:
    found = sorted(p.stem for p in (ROOT / "bench").glob("*_bench.py"))
    ordered = [f"{n}_bench" for n in ORDER if f"{n}_bench" in found]
    ordered += [m for m in found if m not in ordered]
    if selected:
        ordered = [m for m in ordered if m.removesuffix("_bench") in selected]
    return ordered


def kept_section(previous: str) -> str | None:
    """The hand-written section of the previous docs/benchmarks.md, to carry over as is."""
    start = previous.find("\n" + KEPT_HEADING + "\n")
    return previous[start + 1:].rstrip("\n") + "\n" if start >= 0 else None


def with_sections(previous: str, sections: list[str]) -> str:
    """``previous`` (docs/benchmarks.md) with each of ``sections`` ("## <title>\n..." as
    :func:`main` makes them) in place of the section of the same heading; one not there
    goes before the hand-written section (else at the end)."""
    parts = previous.rstrip("\n").split("\n## ")
    head, old = parts[0], ["## " + part.rstrip("\n") + "\n" for part in parts[1:]]
    for section in sections:
        heading = section.split("\n", 1)[0]
        at = next((i for i, part in enumerate(old) if part.split("\n", 1)[0] == heading), None)
        if at is not None:
            old[at] = section
        else:
            kept = next((i for i, part in enumerate(old)
                         if part.startswith(KEPT_HEADING + "\n")), len(old))
            old.insert(kept, section)
    return "\n".join([head.rstrip("\n") + "\n", *old])


def main(argv: list[str]) -> int:
    sections, failures = [], 0
    partial = bool(argv)
    for name in modules(argv):
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            body = module.run()
        except Exception:
            failures += 1
            body = "The benchmark failed:\n\n```\n" + traceback.format_exc(limit=5) + "```\n"
        took = time.monotonic() - started
        # A partial run's section is from another hour than the heading's date above.
        when = (f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_line()} by a "
                "run of this section alone; " if partial else "")
        sections.append(f"## {module.TITLE}\n\n{body}\n\n_{when}took {took:.0f} s; "
                        f"command: `make bench BENCH={name.removesuffix('_bench')}`_\n")
        print(body, flush=True)
    doc = ["# Benchmarks", "",
           f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_line()}, everything on "
           "loopback, load from wrk (Debian package) sharing the same machine. "
           "\"req per server-CPU-s\" divides requests by the CPU seconds the server processes "
           "used (read from /proc): the figure that compares across machines and load generators.",
           "", "This 2-core machine's speed drifts: the same row has measured a third apart within "
           "an hour, so compare a row with the yardstick measured in the same run (the bare Flask "
           "rows of the OIDC and permissions tables) rather than with an older table. The target "
           "column's verdicts are absolute; machines differ too (the issues' figures come from "
           "one where bare Flask ran ~1,800 per CPU-second), so each of those two tables ends "
           "with its rows scaled to that machine by the two yardsticks' ratio, verdicts again.",
           "", "Reproduce all: `make bench`.", "", *sections]
    target = ROOT / "docs" / "benchmarks.md"
    if partial and target.exists():
        target.write_text(with_sections(target.read_text(), sections))
        print("(a partial run: only its sections of docs/benchmarks.md rewritten)")
    else:
        kept = kept_section(target.read_text()) if target.exists() else None
        target.write_text("\n".join(doc + ([kept] if kept else [])))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
