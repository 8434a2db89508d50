"""Card account numbers are kept only as last five digits + an HMAC fingerprint.

The fingerprint (HMAC-SHA256 keyed with ``ACCOUNT_FINGERPRINT_KEY``, hex) lets services
match an account across enrollments and read models without ever holding the number;
without the key, the 10^10 unknown digits of a known last-five cannot be searched.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class AccountRef:
    last5: str
    fingerprint: str


def account_fingerprint(key: bytes, account_number: str) -> str:
    digits = "".join(ch for ch in account_number if ch.isdigit())
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()


def account_ref(key: bytes, account_number: str) -> AccountRef:
    digits = "".join(ch for ch in account_number if ch.isdigit())
    return AccountRef(last5=digits[-5:], fingerprint=account_fingerprint(key, digits))
