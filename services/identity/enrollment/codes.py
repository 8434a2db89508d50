"""The enrollment's secrets: access codes, single-use tokens, PIN, Word and answers.

Access codes are 16 symbols from an unambiguous 31-symbol alphabet (no I, L, O, U, Z),
grouped ``XXXX-XXXX-XXXX-XXXX``: 16 × log2(31) ≈ 79 bits. They are stored as an
HMAC-SHA256 digest (``ACCESS_CODE_KEY``), not argon2: activation finds the enrollment
*by* the code (the person types no username), which needs a deterministic digest to
index, and 79 random bits make an offline search of even a fast digest hopeless; the
key adds a second lock should the table leak. Link and ticket tokens (256 random bits)
are stored as plain SHA-256 for the same reason.

PIN, Word and security answers are low-entropy and chosen by people: argon2id only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata

from services.identity.passwords import HASHER, verify_password

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY"
CODE_LENGTH = 16
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_access_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def normalize_access_code(typed: str) -> str | None:
    """The compact code a person meant (spaces/dashes dropped, O read as 0, I/L as 1)."""
    compact = re.sub(r"[\s\-]", "", typed or "").upper().translate(_READ_AS)
    if len(compact) != CODE_LENGTH or any(ch not in ALPHABET for ch in compact):
        return None
    return compact


def code_target(typed: str | None) -> str | None:
    """The per-code rate limit's target: the code a person meant, however it was typed
    (so ``ABCD-EFGH-…`` and ``abcdefgh…`` share one budget); a malformed one as typed."""
    if typed is None:
        return None
    return normalize_access_code(typed) or typed


def access_code_digest(key: bytes, code: str) -> str:
    compact = normalize_access_code(code) or ""
    return hmac.new(key, compact.encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_word(word: str) -> str:
    """NFKC + casefold + trimmed, inner whitespace collapsed: what the Word compares by."""
    return " ".join(unicodedata.normalize("NFKC", word).casefold().split())


normalize_answer = normalize_word


def hash_secret(value: str) -> str:
    return HASHER.hash(value)


def verify_secret(stored_hash: str | None, value: str) -> bool:
    """One argon2id verification, also when there is no hash (constant work)."""
    return verify_password(stored_hash, value)


def pin_problems(pin: str) -> list[str]:
    """Message ids of the PIN rules ``pin`` breaks (translated by the caller)."""
    if not re.fullmatch(r"[0-9]{4,8}", pin or ""):
        return ["pin.format"]
    digits = [int(ch) for ch in pin]
    steps = {b - a for a, b in zip(digits, digits[1:], strict=False)}
    if steps == {0}:
        return ["pin.repeated"]
    if steps in ({1}, {-1}):
        return ["pin.sequential"]
    return []
