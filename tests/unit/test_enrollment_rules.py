"""Pure rules of enrollment: PIN, Word, access codes, fingerprints, password policy,
the state machine and the Spanish catalog."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from services.identity import passwords
from services.identity.enrollment import codes, policy
from services.identity.enrollment.fingerprint import account_fingerprint, account_ref
from services.identity.enrollment.models import ENROLLMENT_TRANSITIONS, EnrollmentStatus

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "identity" / "enrollment"
CATALOG = PACKAGE.parent / "translations" / "es" / "LC_MESSAGES"


@pytest.mark.parametrize(("pin", "problems"), [
    ("4071", []), ("12345679", []), ("1357", []), ("0000", ["pin.repeated"]),
    ("1234", ["pin.sequential"]), ("98765", ["pin.sequential"]), ("123", ["pin.format"]),
    ("123456789", ["pin.format"]), ("12a4", ["pin.format"]), ("١٢٣٤", ["pin.format"]),
    ("", ["pin.format"]),
])
def test_pin_rules(pin, problems):
    assert codes.pin_problems(pin) == problems


def test_access_codes_are_grouped_unambiguous_and_forgiving_to_type():
    code = codes.new_access_code()
    assert len(code) == 19 and [len(g) for g in code.split("-")] == [4, 4, 4, 4]
    assert set(code.replace("-", "")) <= set(codes.ALPHABET)
    assert codes.normalize_access_code(code.lower().replace("-", " ")) == code.replace("-", "")
    assert codes.normalize_access_code("0000-1111-OOOO-IIII") == "0000111100001111"
    assert codes.normalize_access_code("ABCD") is None
    assert codes.normalize_access_code("ABCD-EFGH-JKMN-PQRU") is None  # U is not a symbol
    key = b"k"
    assert codes.access_code_digest(key, code) == codes.access_code_digest(key, code.lower())
    assert codes.access_code_digest(key, code) != codes.access_code_digest(b"other", code)
    assert len({codes.new_access_code() for _ in range(1000)}) == 1000


def test_word_normalisation():
    assert codes.normalize_word("  Straße  ") == codes.normalize_word("STRASSE")
    assert codes.normalize_word("Ｒｉｏ") == "rio"  # full-width letters (NFKC)
    assert codes.normalize_word("e\u0301") == codes.normalize_word("é")
    assert codes.normalize_word("a   b") == "a b"


def test_fingerprint_is_keyed_and_keeps_only_last_five():
    ref = account_ref(b"key", "3782 822463 10005")
    assert ref.last5 == "10005" and "378282246310005" not in ref.fingerprint
    assert ref.fingerprint == account_fingerprint(b"key", "378282246310005")
    assert ref.fingerprint != account_fingerprint(b"other", "378282246310005")


def test_common_password_list_has_100000_entries_and_is_used():
    with gzip.open(passwords.COMMON_PASSWORDS, "rt", encoding="utf-8", errors="replace") as handle:
        assert sum(1 for line in handle if line.strip()) == 100_000
    assert len(passwords.common_passwords()) > 95_000  # lower-casing merges a few
    assert policy.check_new_password("password1234", "ana", "ana@example.com")
    assert any("common" in p for p in policy.check_new_password("PASSWORD1234", "x", None))
    assert policy.check_new_password("Lantern-Orchid-Meadow-77", "lucia", "l@example.mx") == []
    problems = policy.check_new_password("k3#Vq-9", "lucia", None)
    assert problems == ["Use at least 12 characters."]
    assert policy.check_new_password("xx-lucia-rocks-99", "Lucia", None)


def test_state_machine_is_explicit():
    assert set(ENROLLMENT_TRANSITIONS) == set(EnrollmentStatus)
    assert ENROLLMENT_TRANSITIONS[EnrollmentStatus.ACTIVATED] == frozenset()
    assert EnrollmentStatus.ACTIVATED not in ENROLLMENT_TRANSITIONS[EnrollmentStatus.LOCKED]
    assert EnrollmentStatus.CODE_ISSUED not in ENROLLMENT_TRANSITIONS[EnrollmentStatus.SUBMITTED]


def test_every_message_has_a_spanish_translation_and_the_mo_is_compiled():
    with open(CATALOG / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    with open(CATALOG / "messages.mo", "rb") as handle:
        compiled = read_mo(handle)
    extracted = {msg for _f, _l, msg, _c, _ctx in extract_from_dir(
        str(PACKAGE), method_map=[("**.py", "python"), ("**/templates/**.html", "jinja2")],
        keywords={"_": None, "N_": None})}
    assert extracted, "nothing extracted"
    for msgid in extracted:
        assert catalog.get(msgid) is not None, f"no Spanish entry for {msgid!r}"
        assert catalog[msgid].string, f"empty Spanish translation for {msgid!r}"
        assert compiled.get(msgid) is not None and compiled[msgid].string == catalog[msgid].string, (
            f"messages.mo is stale for {msgid!r}: run pybabel compile")
    for message in catalog:
        if message.id and "%(" in message.id:
            names = sorted(set(re.findall(r"%\((\w+)\)s", message.id)))
            assert names == sorted(set(re.findall(r"%\((\w+)\)s", message.string)))
