"""Tracking numbers: ``PTC-7K3M-9QX2-H``.

Eight random symbols from an unambiguous 31-symbol alphabet (no I, L, O, U, Z)
and a check symbol. The check is a weighted sum modulo the prime 31 with weights
1..9, so every single-symbol substitution (weight × difference ≠ 0 mod 31) and
every adjacent transposition (consecutive weights differ) is detected.
Hand-written because no well-kept library offers a check scheme over this
alphabet; python-stdnum's ISO 7064 MOD 37,36 needs the ambiguous letters.
"""

from __future__ import annotations

import secrets

PREFIX = "PTC"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY"
MODULUS = len(ALPHABET)  # 31, a prime
BODY_LENGTH = 8
_VALUE = {symbol: index for index, symbol in enumerate(ALPHABET)}
# What people type for the symbols we left out (Crockford's reading).
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def _check_symbol(body: str) -> str:
    total = sum((weight + 1) * _VALUE[symbol] for weight, symbol in enumerate(body))
    # Choose c so that total + 9c ≡ 0 (mod 31); 9 × 7 = 63 ≡ 1, so 9⁻¹ ≡ 7.
    check = (-total * 7) % MODULUS
    return ALPHABET[check]


def generate() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return format_number(body + _check_symbol(body))


def format_number(compact: str) -> str:
    return f"{PREFIX}-{compact[0:4]}-{compact[4:8]}-{compact[8]}"


def compact(value: str) -> str:
    """Upper-case, drop spaces and dashes, read O as 0 and I/L as 1, drop the prefix."""
    cleaned = "".join(value.split()).replace("-", "").upper()
    if not cleaned.startswith(PREFIX):
        return ""
    return cleaned[len(PREFIX):].translate(_READ_AS)


def is_valid(value: str) -> bool:
    """True when ``value`` is a well-formed tracking number whose check symbol matches."""
    if not isinstance(value, str) or len(value) > 40:
        return False
    body = compact(value)
    if len(body) != BODY_LENGTH + 1 or any(symbol not in _VALUE for symbol in body):
        return False
    return _check_symbol(body[:BODY_LENGTH]) == body[BODY_LENGTH]


def normalize(value: str) -> str:
    """The canonical form ``PTC-XXXX-XXXX-C``; raises ValueError when not valid."""
    if not is_valid(value):
        raise ValueError("not a valid tracking number")
    return format_number(compact(value))
