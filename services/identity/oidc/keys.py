"""Signing keys: generated here, stored with the private part Fernet-encrypted, published
in the JWKS, rotated without breaking tokens already issued.

A key's state follows from its times:

* ``next``     published, not signing yet (``activates_at`` in the future);
* ``active``   the newest key of its algorithm whose ``activates_at`` has passed;
* ``retiring`` superseded by a newer active key, still published until ``retire_after``
  (the longest token lifetime after it stopped signing), so its tokens stay verifiable;
* ``retired``  past ``retire_after``: no longer published.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.errors import DEPENDENCY_ERRORS
from services.common.events import utcnow

from .models import SigningKey

log = logging.getLogger("portico.identity.keys")

ALGORITHMS = ("ES256", "RS256")
DEFAULT_ALG = "ES256"
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class SigningKeyUnavailable(Exception):
    """No usable signing key (the database has not been bootstrapped)."""


def key_state(key: SigningKey, now: datetime, newest_active: str | None) -> str:
    activates = key.activates_at
    retire_after = key.retire_after
    if activates is not None and activates > now:
        return "next"
    if key.kid == newest_active:
        return "active"
    if retire_after is not None and retire_after <= now:
        return "retired"
    return "retiring"


def generate_key(alg: str) -> ECKey | RSAKey:
    kid = f"{alg.lower()}-{uuid.uuid4().hex[:16]}"
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    raise ValueError(f"unsupported algorithm {alg}")


def public_members(jwk: dict) -> dict:
    return {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS}


def create_key(session: Session, fernet: Fernet, alg: str, activates_at: datetime) -> SigningKey:
    key = generate_key(alg)
    private = key.as_dict(private=True)
    row = SigningKey(
        kid=key.kid, alg=alg, public_jwk=public_members(key.as_dict(private=False)),
        private_encrypted=fernet.encrypt(json.dumps(private).encode()).decode(),
        activates_at=activates_at,
    )
    session.add(row)
    return row


def _newest_active(rows: list[SigningKey], now: datetime) -> dict[str, str]:
    newest: dict[str, SigningKey] = {}
    for row in rows:
        activates = row.activates_at
        if activates is None or activates > now:
            continue
        current = newest.get(row.alg)
        if current is None or activates > current.activates_at:  # type: ignore[operator]
            newest[row.alg] = row
    return {alg: row.kid for alg, row in newest.items()}


def ensure_keys(session: Session, fernet: Fernet) -> list[str]:
    """Create an immediately active key for each algorithm that has none. Returns new kids."""
    now = utcnow()
    rows = list(session.scalars(select(SigningKey)))
    have = {row.alg for row in rows}
    created = []
    for alg in ALGORITHMS:
        if alg not in have:
            created.append(create_key(session, fernet, alg, now).kid)
    return created


def rotate_keys(session: Session, fernet: Fernet, activation_delay: int,
                max_token_lifetime: int) -> list[dict]:
    """Publish a new key per algorithm that starts signing after ``activation_delay``;
    the current key stops signing then and stays published ``max_token_lifetime`` more."""
    now = utcnow()
    activates_at = now + timedelta(seconds=max(activation_delay, 0))
    rows = list(session.scalars(select(SigningKey)))
    active = _newest_active(rows, now)
    report = []
    for alg in ALGORITHMS:
        for row in rows:
            if row.alg == alg and row.retire_after is None:
                # Every key published before the new one stops signing when it activates.
                row.superseded_at = activates_at
                row.retire_after = activates_at + timedelta(seconds=max_token_lifetime)
        new = create_key(session, fernet, alg, activates_at)
        report.append({"alg": alg, "kid": new.kid, "activates_at": activates_at.isoformat(),
                       "previous_kid": active.get(alg)})
    return report


def purge_retired(session: Session) -> int:
    """Delete keys past ``retire_after`` (no token they signed can still be valid)."""
    now = utcnow()
    count = 0
    for row in session.scalars(select(SigningKey)):
        retire_after = row.retire_after
        if retire_after is not None and retire_after <= now:
            session.delete(row)
            count += 1
    return count


@dataclass(frozen=True)
class KeyMaterial:
    """The keys as loaded at one moment: what the JWKS publishes and what signs."""

    published: list[dict]
    signers: dict[str, ECKey | RSAKey]
    verify_set: KeySet
    published_json: bytes = b""  # the JWKS document, rendered once per load


class Keyring:
    """Loads keys from the database and keeps them in memory for ``ttl`` seconds, so that
    signing a token does not cost a query and a decryption.

    A reload is done by one thread while the others go on with the keys they have, and
    it decrypts and imports only keys it has not seen before: a key's material never
    changes under its ``kid``, and importing an RSA private key (its consistency check)
    takes milliseconds that every request of the process used to wait behind."""

    def __init__(self, db, fernet_key: str, ttl: float = 10.0) -> None:
        self.db = db
        self.fernet = Fernet(fernet_key)
        self.ttl = ttl
        self._material: KeyMaterial | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._imported: dict[tuple[str, bool], ECKey | RSAKey] = {}  # (kid, private) → key

    def invalidate(self) -> None:
        with self._lock:
            self._material = None

    def material(self) -> KeyMaterial:
        material = self._material
        if material is not None and time.monotonic() - self._loaded_at <= self.ttl:
            return material
        if material is not None and not self._lock.acquire(blocking=False):
            return material  # another thread is reloading; these keys are still good
        if material is None:
            self._lock.acquire()
        try:
            if self._material is None or time.monotonic() - self._loaded_at > self.ttl:
                self._reload()
            return self._material
        finally:
            self._lock.release()

    def _reload(self) -> None:
        """Load the keys; when that fails and keys are loaded already, keep signing with
        them and try again after ``ttl``: a database outage must not stop the token
        endpoint's grants that need nothing else from it (client_credentials)."""
        try:
            self._material = self._load()
        except (SigningKeyUnavailable, *DEPENDENCY_ERRORS) as exc:
            if self._material is None:
                raise
            log.warning("signing keys not reloaded; using those loaded before",
                        extra={"error_type": type(exc).__name__})
        self._loaded_at = time.monotonic()

    def _load(self) -> KeyMaterial:
        now = utcnow()
        with self.db.read() as session:
            rows = list(session.scalars(select(SigningKey).order_by(SigningKey.created_at)))
            session.expunge_all()
        active = _newest_active(rows, now)
        published: list[dict] = []
        signers: dict[str, ECKey | RSAKey] = {}
        verify_keys = []
        imported: dict[tuple[str, bool], ECKey | RSAKey] = {}
        for row in rows:
            state = key_state(row, now, active.get(row.alg))
            if state == "retired":
                continue
            published.append(public_members(dict(row.public_jwk)))
            if state == "active":
                signers[row.alg] = self._key(row, imported, private=True)
            if state in ("active", "retiring"):
                verify_keys.append(self._key(row, imported, private=False))
        self._imported = imported  # keys no longer in use are dropped
        return KeyMaterial(published=published, signers=signers, verify_set=KeySet(verify_keys),
                           published_json=json.dumps({"keys": published}).encode())

    def _key(self, row: SigningKey, imported: dict[tuple[str, bool], ECKey | RSAKey], *,
             private: bool) -> ECKey | RSAKey:
        """``row``'s private or public key as imported by the last load, else imported now;
        recorded in ``imported`` (this load's keys)."""
        key = self._imported.get((row.kid, private))
        if key is None:
            key = self._private(row) if private else \
                KeySet.import_key_set({"keys": [row.public_jwk]}).keys[0]
        imported[(row.kid, private)] = key
        return key

    def _private(self, row: SigningKey) -> ECKey | RSAKey:
        try:
            data = json.loads(self.fernet.decrypt(row.private_encrypted.encode()))
        except InvalidToken:
            raise SigningKeyUnavailable("a signing key cannot be decrypted with KEY_ENCRYPTION_KEY") from None
        if row.alg == "ES256":
            return ECKey.import_key(data)
        return RSAKey.import_key(data)

    def signer(self, alg: str | None = None) -> ECKey | RSAKey:
        signers = self.material().signers
        key = signers.get(alg or DEFAULT_ALG)
        if key is None:
            raise SigningKeyUnavailable(f"no active {alg or DEFAULT_ALG} signing key: run `iamctl bootstrap`")
        return key

    def jwks(self) -> dict:
        return {"keys": self.material().published}

    def jwks_json(self) -> bytes:
        """The JWKS document as bytes, rendered once per key load (for the /jwks view)."""
        return self.material().published_json
