"""Passkeys (WebAuthn): a user registers several named passkeys, then signs in with one
without a password (a discoverable credential, user verification required) or uses one
as the second factor after a password. No Flask here.

Each ceremony has two steps:

* **Options**: a challenge is issued (a single-use secret, services/common/single_use.py:
  stored as a digest, live ``WEBAUTHN_TIMEOUT_SECONDS``, bound to a digest of the login
  session's id; a session has one live ceremony) and the options the browser's
  ``navigator.credentials`` API takes are returned as JSON.
* **Response**: the challenge the browser signed (its clientDataJSON names it) is found
  among the session's live ones and claimed, so it works once; then py_webauthn checks the
  signature, origin, RP id, challenge and user presence (and verification when required).

A sign-in's refusals are outcomes, not exceptions: the claimed challenge and the audit row
saying why commit with the caller's transaction. Whether the user may sign in at all
(locked, inactive, disabled) is the login flow's rule, applied to the returned user.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from services.common import single_use
from services.common.domain_errors import Conflict, Invalid, NotFound
from services.common.events import Envelope, record_event
from services.identity import audit
from services.identity.models import OutboxEvent, User

from . import held, recovery_codes
from .passkey_config import PasskeyConfig, config_from, usable_on, usable_origin
from .passkey_models import WebauthnChallenge, WebauthnCredential

__all__ = ["PasskeyConfig", "config_from", "usable_on", "usable_origin"]  # re-exported

REGISTER = "register"
AUTHENTICATE = "authenticate"
NAME_MAX = 100


class PasskeyRefused(Invalid):
    """A registration response that cannot be accepted (no live challenge of this
    session, or py_webauthn refused it)."""

    kind = "passkey-refused"

    def __init__(self, why: str) -> None:
        super().__init__({"credential": [why]}, "The passkey could not be registered.")


def _digest(value: bytes | str) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def _session_key(session_id: str) -> str:
    return _digest("portico-webauthn:" + session_id)


def _issue_challenge(session: Session, cfg: PasskeyConfig, session_id: str, purpose: str,
                     user: User | None) -> bytes:
    challenge = secrets.token_bytes(32)
    now = cfg.now()
    single_use.issue(session, WebauthnChallenge(
        session_key=_session_key(session_id), purpose=purpose,
        user_id=user.id if user else None, digest=_digest(challenge),
        expires_at=now + timedelta(seconds=cfg.timeout_seconds)), now)
    return challenge


def _claim_challenge(session: Session, cfg: PasskeyConfig, session_id: str, purpose: str,
                     client_data_json: bytes) -> tuple[WebauthnChallenge, bytes] | None:
    """The live challenge of this session and purpose that the browser signed, used up;
    None if there is none (unknown, another session's, used, voided, expired)."""
    try:
        challenge = parse_client_data_json(client_data_json).challenge
    except WebAuthnException:
        return None
    now = cfg.now()
    row = single_use.live(session, WebauthnChallenge, _digest(challenge), now)
    if (row is None or row.session_key != _session_key(session_id) or row.purpose != purpose
            or not single_use.claim(session, row, now)):
        return None
    return row, challenge


def _descriptors(session: Session, user: User) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(row.credential_id),
        transports=[AuthenticatorTransport(t) for t in row.transports.split(",") if t])
        for row in _credentials_of(session, user)]


def _credentials_of(session: Session, user: User) -> list[WebauthnCredential]:
    return list(session.scalars(select(WebauthnCredential).where(
        WebauthnCredential.user_id == user.id).order_by(WebauthnCredential.created_at,
                                                         WebauthnCredential.id)))


def _publish(session: Session, cfg: PasskeyConfig, type_: str, user: User,
             passkey: WebauthnCredential) -> None:
    record_event(session, OutboxEvent, Envelope.new(
        type_, "identity", {"user_id": user.id, "factor": "passkey", "factor_id": passkey.id,
                            "name": passkey.name, "email": user.email,
                            "given_name": user.given_name,
                            "preferred_language": user.preferred_language},
        subject=user.id, company_id=user.company_id, occurred_at=cfg.now()))


def _audit(session: Session, cfg: PasskeyConfig, action: str, actor: audit.Actor,
           user_id: str | None, **detail: Any) -> None:
    row = audit.record(session, action, actor, subject_type="user", subject_id=user_id,
                       detail=detail)
    row.occurred_at = cfg.now()


def _valid_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned or len(cleaned) > NAME_MAX:
        raise Invalid({"name": [f"Give the passkey a name of 1 to {NAME_MAX} characters."]})
    return cleaned


def registration_options(session: Session, cfg: PasskeyConfig, user: User,
                         session_id: str) -> str:
    """Options (JSON) for ``navigator.credentials.create`` adding a discoverable passkey
    to ``user``, signed in on login session ``session_id``; the user's passkeys are
    excluded, so an authenticator holding one says so instead of adding a second."""
    challenge = _issue_challenge(session, cfg, session_id, REGISTER, user)
    display = " ".join(part for part in (user.given_name, user.family_name) if part)
    return options_to_json(generate_registration_options(
        rp_id=cfg.rp_id, rp_name=cfg.rp_name, user_id=user.id.encode(),
        user_name=user.username, user_display_name=display or user.username,
        challenge=challenge, timeout=cfg.timeout_seconds * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(session, user)))


def register(session: Session, cfg: PasskeyConfig, user: User, session_id: str,
             response_json: str | dict[str, Any], name: str,
             actor: audit.Actor) -> WebauthnCredential:
    """Add the passkey the browser created for this session's registration challenge,
    named ``name``. Raises :class:`PasskeyRefused`, :class:`Invalid` (name) or
    :class:`Conflict` (the passkey is already registered)."""
    name = _valid_name(name)
    try:
        credential: RegistrationCredential = parse_registration_credential_json(response_json)
    except WebAuthnException:
        raise PasskeyRefused("The browser's answer is not a WebAuthn registration.") from None
    claimed = _claim_challenge(session, cfg, session_id, REGISTER,
                               credential.response.client_data_json)
    if claimed is None or claimed[0].user_id != user.id:
        raise PasskeyRefused("The registration has expired or was already used: try again.")
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=claimed[1], expected_rp_id=cfg.rp_id,
            expected_origin=list(cfg.origins), require_user_verification=True)
    except WebAuthnException:
        raise PasskeyRefused("The authenticator's answer could not be verified.") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.scalar(select(WebauthnCredential.id).where(
            WebauthnCredential.credential_id == credential_id)) is not None:
        raise Conflict("This passkey is already registered.")
    passkey = WebauthnCredential(
        user_id=user.id, credential_id=credential_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count,
        transports=",".join(t.value for t in credential.response.transports or []),
        name=name, aaguid=verified.aaguid, backed_up=verified.credential_backed_up,
        created_at=cfg.now())
    session.add(passkey)
    session.flush()
    _publish(session, cfg, "identity.factor.added", user, passkey)
    _audit(session, cfg, "passkey.registered", actor, user.id, passkey_id=passkey.id,
           name=name)
    return passkey


def authentication_options(session: Session, cfg: PasskeyConfig, session_id: str,
                           user: User | None = None) -> str:
    """Options (JSON) for ``navigator.credentials.get``. Without ``user``: a passwordless
    sign-in with any discoverable passkey, user verification required. With ``user`` (who
    gave their password): a second factor with one of their passkeys. Raises
    :class:`NotFound` when ``user`` has no passkey."""
    allowed = _descriptors(session, user) if user is not None else []
    if user is not None and not allowed:
        raise NotFound("The user has no passkey.")
    challenge = _issue_challenge(session, cfg, session_id, AUTHENTICATE, user)
    return options_to_json(generate_authentication_options(
        rp_id=cfg.rp_id, challenge=challenge, timeout=cfg.timeout_seconds * 1000,
        allow_credentials=allowed,
        user_verification=(UserVerificationRequirement.REQUIRED if user is None
                           else UserVerificationRequirement.PREFERRED)))


@dataclass(frozen=True)
class PasskeySignIn:
    """A sign-in's outcome: ``user`` and ``passkey`` when it succeeded, else ``refusal``
    (``malformed``, ``challenge``, ``unknown_passkey``, ``wrong_user``, ``invalid``,
    ``sign_count``). ``user_verified``: the authenticator verified the person (PIN,
    biometrics), as a passwordless sign-in requires."""

    user: User | None = None
    passkey: WebauthnCredential | None = None
    user_verified: bool = False
    refusal: str | None = None


def authenticate(session: Session, cfg: PasskeyConfig, session_id: str,
                 response_json: str | dict[str, Any], actor: audit.Actor) -> PasskeySignIn:
    """Check the browser's assertion against this session's sign-in challenge (see the
    module's docstring). A refusal is audited as ``passkey.refused`` with its reason."""
    try:
        credential: AuthenticationCredential = parse_authentication_credential_json(
            response_json)
    except WebAuthnException:
        return refuse(session, cfg, actor, None, "malformed")
    claimed = _claim_challenge(session, cfg, session_id, AUTHENTICATE,
                               credential.response.client_data_json)
    if claimed is None:
        return refuse(session, cfg, actor, None, "challenge")
    challenge, challenge_bytes = claimed
    passkey = session.scalar(select(WebauthnCredential).where(
        WebauthnCredential.credential_id == bytes_to_base64url(credential.raw_id)))
    if passkey is None:
        return refuse(session, cfg, actor, challenge.user_id, "unknown_passkey")
    handle = credential.response.user_handle
    if (challenge.user_id is not None and passkey.user_id != challenge.user_id) or (
            handle is not None and handle != passkey.user_id.encode()):
        return refuse(session, cfg, actor, challenge.user_id or passkey.user_id,
                       "wrong_user", passkey_id=passkey.id)
    try:
        # The counter is checked below, after the signature, in the UPDATE that stores it
        # (_advance_counter): a regression of a validly signed assertion means a cloned
        # authenticator, audited as such.
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge_bytes,
            expected_rp_id=cfg.rp_id, expected_origin=list(cfg.origins),
            credential_public_key=passkey.public_key, credential_current_sign_count=0,
            require_user_verification=challenge.user_id is None)
    except WebAuthnException:
        return refuse(session, cfg, actor, passkey.user_id, "invalid", passkey_id=passkey.id)
    if not _advance_counter(session, cfg, passkey, verified.new_sign_count,
                            verified.credential_backed_up):
        return refuse(session, cfg, actor, passkey.user_id, "sign_count",
                       passkey_id=passkey.id, stored=passkey.sign_count,
                       presented=verified.new_sign_count)
    _audit(session, cfg, "passkey.signed_in", actor, passkey.user_id, passkey_id=passkey.id,
           user_verified=verified.user_verified)
    return PasskeySignIn(user=session.get(User, passkey.user_id), passkey=passkey,
                         user_verified=verified.user_verified)


def _advance_counter(session: Session, cfg: PasskeyConfig, passkey: WebauthnCredential,
                     presented: int, backed_up: bool) -> bool:
    """Store ``presented`` as the passkey's counter if it advanced (:func:`counter_advanced`)
    over the stored one, in one conditional ``UPDATE``: of two requests racing with one
    counter value (a cloned authenticator, or a replay), one wins. Whether this call did."""
    table = WebauthnCredential
    advanced = table.sign_count < presented if presented > 0 else table.sign_count == 0
    values = {"sign_count": presented, "backed_up": backed_up, "last_used_at": cfg.now()}
    taken = session.execute(update(table).where(table.id == passkey.id, advanced)
                            .values(values).execution_options(synchronize_session=False)).rowcount
    if taken == 1:
        for name, value in values.items():
            set_committed_value(passkey, name, value)
    else:
        session.refresh(passkey, ["sign_count"])
    return bool(taken == 1)


def counter_advanced(stored: int, presented: int) -> bool:
    """WebAuthn §6.1.1: an authenticator that counts (either number non-zero) must present
    a number above the stored one; one that always says 0 does not count."""
    return (stored == 0 and presented == 0) or presented > stored


def refuse(session: Session, cfg: PasskeyConfig, actor: audit.Actor, user_id: str | None,
           reason: str, **detail: Any) -> PasskeySignIn:
    """A refused sign-in, audited as ``passkey.refused`` with its ``reason``."""
    _audit(session, cfg, "passkey.refused", actor, user_id, reason=reason, **detail)
    return PasskeySignIn(refusal=reason)


def _owned(session: Session, user: User, passkey_id: str) -> WebauthnCredential:
    passkey = session.get(WebauthnCredential, passkey_id) if passkey_id else None
    if passkey is None or passkey.user_id != user.id:
        raise NotFound("The user has no passkey with this id.")
    return passkey


def rename(session: Session, cfg: PasskeyConfig, user: User, passkey_id: str, name: str,
           actor: audit.Actor) -> WebauthnCredential:
    passkey = _owned(session, user, passkey_id)
    old, passkey.name = passkey.name, _valid_name(name)
    _audit(session, cfg, "passkey.renamed", actor, user.id, passkey_id=passkey.id,
           old_name=old, name=passkey.name)
    return passkey


def remove(session: Session, cfg: PasskeyConfig, user: User, passkey_id: str,
           actor: audit.Actor) -> None:
    """Remove one of the user's passkeys. Recovery codes stand in for the factors, so
    they go with the last one: they stay while another passkey or an authenticator app
    remains."""
    passkey = _owned(session, user, passkey_id)
    _publish(session, cfg, "identity.factor.removed", user, passkey)
    _audit(session, cfg, "passkey.removed", actor, user.id, passkey_id=passkey.id,
           name=passkey.name)
    session.delete(passkey)
    session.flush()
    if not held.any_factor(session, user.id):
        recovery_codes.discard(session, user.id)


def method(passkey: WebauthnCredential) -> str:
    """The RFC 8176 ``amr`` value of signing with ``passkey``: ``hwk`` for a key that
    never leaves its authenticator, ``swk`` for one backed up (a synced passkey, whose
    private key exists in software, e.g. a cloud keychain: WebAuthn's BS flag)."""
    return "swk" if passkey.backed_up else "hwk"


def discard(session: Session, user_id: str) -> int:
    """Delete every passkey of the user without an event: how many there were. The
    caller reports the change."""
    return int(session.execute(delete(WebauthnCredential).where(
        WebauthnCredential.user_id == user_id)).rowcount)


def view(passkey: WebauthnCredential) -> dict[str, Any]:
    """What a person or the help desk may see of a passkey: nothing secret, no key."""
    return {"id": passkey.id, "name": passkey.name, "created_at": passkey.created_at,
            "last_used_at": passkey.last_used_at, "backed_up": passkey.backed_up,
            "transports": [t for t in passkey.transports.split(",") if t],
            "aaguid": passkey.aaguid}


def list_for(session: Session, user: User) -> list[dict[str, Any]]:
    """The user's passkeys, oldest first, as :func:`view` shows them."""
    return [view(row) for row in _credentials_of(session, user)]
