"""Email templates: ``templates/<message>/<lang>/{subject.txt, body.txt, body.html}``.

Two Jinja environments share the folder: HTML bodies are autoescaped, the subject and
plain-text body are not. Undefined variables raise, so a template that names a field
an event does not carry fails in the handler (and the event is retried or
dead-lettered) instead of sending a half-empty email.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def language_of(value: Any) -> str:
    """A supported language for ``value`` (``es-MX`` → ``es``), English otherwise."""
    code = str(value or "").strip().lower()[:2]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def format_when(value: Any, language: str = DEFAULT_LANGUAGE) -> str:
    """An RFC 3339 time as ``2025-01-31 14:05 UTC`` (day/month order per language)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if language == "es":
        return moment.strftime("%d/%m/%Y %H:%M") + " UTC"
    return moment.strftime("%Y-%m-%d %H:%M") + " UTC"


@functools.cache
def _environments() -> tuple[Environment, Environment]:
    loader = FileSystemLoader(str(TEMPLATE_DIR))
    # Plain text is not HTML: escaping would show "&amp;" in a subject or text body.
    plain = Environment(loader=loader, autoescape=False, undefined=StrictUndefined,  # noqa: S701
                        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    html = Environment(loader=loader, autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)
    for env in (plain, html):
        env.filters["when"] = format_when
    return plain, html


def available_templates() -> list[str]:
    return sorted(p.name for p in TEMPLATE_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))


def render(template: str, language: str, context: dict[str, Any]) -> Rendered:
    """Render one message in ``language``; the context may hold unsealed secrets, so the
    result lives only in memory until the caller stores it (encrypted when secret)."""
    plain, html = _environments()
    lang = language_of(language)
    values = {**context, "lang": lang}
    subject = plain.get_template(f"{template}/{lang}/subject.txt").render(values)
    return Rendered(
        subject=" ".join(subject.split())[:255],
        text=plain.get_template(f"{template}/{lang}/body.txt").render(values),
        html=html.get_template(f"{template}/{lang}/body.html").render(values),
    )
