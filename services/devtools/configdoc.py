"""Render ``docs/configuration.md`` from the settings classes, so the table cannot drift.

``python -m services.devtools.configdoc`` rewrites the file; a test checks that
every variable a settings class reads is documented there.
"""

from __future__ import annotations

import importlib
import sys

from services.common.config import CommonSettings, describe
from services.common.streams import SERVICES
from services.common.worker import WorkerSettings

from .settings import REPO_ROOT, DevSettings

DOC_PATH = REPO_ROOT / "docs" / "configuration.md"

INTRO = """# Configuration

Every Portico process is configured by environment variables (12-factor). Each
has a working local default; a bad or missing required value stops start-up with
one line naming the variable. `iamctl config <service>` prints a service's table
from the code; this file is generated from the same code by
`python -m services.devtools.configdoc`.
"""


PER_SERVICE_DATABASES = """Each service's `DATABASE_URL` defaults to `<SERVICE>_DATABASE_URL`
(`IDENTITY_DATABASE_URL`, `PERMISSIONS_DATABASE_URL`, `TRACKING_DATABASE_URL`,
`NOTIFIER_DATABASE_URL`), then to a SQLite file `$PORTICO_VAR_DIR/<service>.db`,
so one environment (as `make run` has) can give each service its own database.
"""


def settings_class(service: str) -> type:
    module = importlib.import_module(f"services.{service}.settings")
    return getattr(module, f"{service.capitalize()}Settings")


def table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| variable | default | what it does |", "|---|---|---|"]
    for env, default, help_text in rows:
        escaped = help_text.replace("|", r"\|")
        lines.append(f"| `{env}` | `{default}` | {escaped} |")
    return "\n".join(lines)


def common_rows() -> list[tuple[str, str, str]]:
    return describe(CommonSettings)


def service_rows(service: str) -> list[tuple[str, str, str]]:
    """The variables ``service`` reads beyond the common ones, or declares differently."""
    common = set(common_rows())
    return [row for row in describe(settings_class(service)) if row not in common]


def all_variables() -> set[str]:
    """Every variable any settings class reads (what the document must mention)."""
    names = {row[0] for row in common_rows()} | {row[0] for row in describe(DevSettings)}
    names |= {row[0] for row in describe(WorkerSettings)}
    for service in SERVICES:
        names |= {row[0] for row in describe(settings_class(service))}
    return names


def render() -> str:
    parts = [INTRO, "## Common to every service\n", table(common_rows()), "", PER_SERVICE_DATABASES]
    for service in SERVICES:
        parts += [f"## {service}\n", table(service_rows(service)), ""]
    parts += [
        "## Workers (`iamctl worker <service>`)\n",
        "Read by the outbox relay and event consumers of every service.\n",
        table(describe(WorkerSettings)),
        "",
    ]
    parts += [
        "## `make run` (the local runtime)\n",
        "Read by `python -m services.devtools.run` and `iamctl mail`, never by a service.\n",
        table(describe(DevSettings)),
        "",
    ]
    return "\n".join(parts)


def main() -> None:
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(render())
    print(f"wrote {DOC_PATH}", file=sys.stderr)


if __name__ == "__main__":
    main()
