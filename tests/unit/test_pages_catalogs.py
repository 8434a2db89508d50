"""Every text of identity's pages has its Spanish translation, compiled.

Identity has one catalog (``messages``) for every page and message: Jinja's
``_``/``pgettext`` and ``_l`` (the lifecycle pages' name for the same gettext) in the
templates, ``_``/``N_`` in the Python. The sample portal and the help-desk console have their own catalogs. A text added to a page without its translation fails
here, naming the text.
"""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po

REPO = Path(__file__).resolve().parents[2]
IDENTITY = REPO / "services" / "identity"
TEMPLATES = IDENTITY / "templates"
PORTAL = REPO / "examples" / "portal"
CONSOLE = REPO / "console"

DOMAINS = {
    "messages": {
        "catalog": IDENTITY / "translations" / "es" / "LC_MESSAGES" / "messages",
        "sources": [
            *[(p, "jinja2") for p in sorted(TEMPLATES.rglob("*.html"))],
            *[(p, "jinja2") for p in sorted((IDENTITY / "enrollment").rglob("*.html"))],
            *[(p, "python") for p in sorted(IDENTITY.glob("*.py"))],
            *[(p, "python") for p in sorted((IDENTITY / "enrollment").rglob("*.py"))],
            *[(p, "python") for p in sorted((IDENTITY / "lifecycle").rglob("*.py"))],
            *[(p, "python") for p in sorted((IDENTITY / "factors").rglob("*.py"))],
        ],
        "keywords": {**DEFAULT_KEYWORDS, "N_": None, "_l": None},
    },
    "portal": {
        "catalog": PORTAL / "translations" / "es" / "LC_MESSAGES" / "messages",
        "sources": [
            *[(p, "jinja2") for p in sorted((PORTAL / "templates").glob("*.html"))],
            *[(p, "python") for p in sorted(PORTAL.glob("*.py"))],
        ],
        "keywords": DEFAULT_KEYWORDS,
    },
    "console": {
        "catalog": CONSOLE / "translations" / "es" / "LC_MESSAGES" / "messages",
        "sources": [
            *[(p, "jinja2") for p in sorted((CONSOLE / "templates").glob("*.html"))],
            *[(p, "python") for p in sorted(CONSOLE.glob("*.py"))],
            (PORTAL / "auth.py", "python"),  # the console signs in with the portal's code
        ],
        "keywords": DEFAULT_KEYWORDS,
    },
}


def _extracted(domain: dict) -> dict[tuple[str | None, str], str]:
    """(context, msgid) → where it was found."""
    found = {}
    for path, method in domain["sources"]:
        for line, message, _comments, context in extract_from_file(
                method, str(path), keywords=domain["keywords"]):
            msgid = message[0] if isinstance(message, tuple) else message
            found[(context, msgid)] = f"{path.relative_to(REPO)}:{line}"
    return found


def _catalogs(domain_name: str):
    catalog_path = DOMAINS[domain_name]["catalog"]
    with open(catalog_path.with_suffix(".po"), "rb") as handle:
        catalog = read_po(handle)
    with open(catalog_path.with_suffix(".mo"), "rb") as handle:
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
    assert not stale, (f"{domain_name}: the .mo is stale (run pybabel compile) for {stale}")


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
    assert catalog.get("Forgot password?").string == "¿Olvidó su Contraseña?"
    portal, _compiled = _catalogs("portal")
    assert portal.get("Status Tracking Overview").string == (
        "Panorama General de Seguimiento de Estatus")


class _Empty:
    string = ""
