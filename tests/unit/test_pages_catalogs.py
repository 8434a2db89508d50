"""Every text of identity's pages has its Spanish translation, compiled.

Two Babel domains: ``messages`` (the layout, sign-in, consent, logout, error and
enrollment pages; Jinja's ``_``/``pgettext``) and ``lifecycle`` (recovery, account and
inactivity pages; ``_l`` in their templates, ``_``/``N_`` in lifecycle's Python). A text
added to a page without its translation fails here, naming the text.
"""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po

IDENTITY = Path(__file__).resolve().parents[2] / "services" / "identity"
TEMPLATES = IDENTITY / "templates"

DOMAINS = {
    "messages": {
        "catalog": IDENTITY / "translations" / "es" / "LC_MESSAGES",
        "sources": [
            *[(p, "jinja2") for p in sorted(TEMPLATES.glob("*.html"))],
            *[(p, "jinja2") for p in sorted((IDENTITY / "enrollment").rglob("*.html"))],
            *[(p, "python") for p in sorted((IDENTITY / "enrollment").rglob("*.py"))],
            (IDENTITY / "pages.py", "python"),
        ],
        "keywords": {**DEFAULT_KEYWORDS, "N_": None},
    },
    "lifecycle": {
        "catalog": IDENTITY / "lifecycle" / "translations" / "es" / "LC_MESSAGES",
        "sources": [
            *[(p, "jinja2") for p in sorted((TEMPLATES / "lifecycle").glob("*.html"))],
            *[(p, "python") for p in sorted((IDENTITY / "lifecycle").rglob("*.py"))],
        ],
        "keywords": {"_": None, "N_": None, "_l": None},
    },
}


def _extracted(domain: dict) -> dict[tuple[str | None, str], str]:
    """(context, msgid) → where it was found."""
    found = {}
    for path, method in domain["sources"]:
        for line, message, _comments, context in extract_from_file(
                method, str(path), keywords=domain["keywords"]):
            msgid = message[0] if isinstance(message, tuple) else message
            found[(context, msgid)] = f"{path.relative_to(IDENTITY)}:{line}"
    return found


def _catalogs(domain_name: str):
    folder = DOMAINS[domain_name]["catalog"]
    with open(folder / f"{domain_name}.po", "rb") as handle:
        catalog = read_po(handle)
    with open(folder / f"{domain_name}.mo", "rb") as handle:
        compiled = gettext.GNUTranslations(handle)  # as the pages read it
    return catalog, compiled


@pytest.mark.parametrize("domain_name", sorted(DOMAINS))
def test_every_page_text_has_a_compiled_spanish_translation(domain_name):
    catalog, compiled = _catalogs(domain_name)
    extracted = _extracted(DOMAINS[domain_name])
    assert len(extracted) > 20, "nothing extracted: is the extraction broken?"
    missing = [f"{where}: {msgid!r}" for (context, msgid), where in sorted(extracted.items(),
                                                                         key=str)
               if not (catalog.get(msgid, context=context) or _Empty).string]
    assert not missing, (f"no Spanish translation in {domain_name}.po for:\n"
                         + "\n".join(missing))
    stale = [msgid for (context, msgid) in extracted
             if (compiled.pgettext(context, msgid) if context else compiled.gettext(msgid))
             != catalog.get(msgid, context=context).string]
    assert not stale, (f"{domain_name}.mo is stale (run pybabel compile -D {domain_name}) "
                       f"for {stale}")


@pytest.mark.parametrize("domain_name", sorted(DOMAINS))
def test_translations_keep_their_placeholders(domain_name):
    catalog, _compiled = _catalogs(domain_name)
    for message in catalog:
        if message.id and isinstance(message.id, str) and "%(" in message.id:
            names = sorted(set(re.findall(r"%\((\w+)\)s", message.id)))
            assert names == sorted(set(re.findall(r"%\((\w+)\)s", message.string))), message.id


def test_the_faq_wording_is_kept_in_spanish():
    catalog, _compiled = _catalogs("messages")
    assert catalog.get("Access Code").string == "Código de Acceso"
    assert catalog.get("Verification PIN").string == "Pin de Verificación"


class _Empty:
    string = ""
