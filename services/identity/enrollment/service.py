"""Use cases of enrollment and email verification, and the help desk's actions on them.

No Flask here. Each function runs inside the caller's ``db.transaction()``: state
changes, outbox events and audit rows commit together. Activation lives in
:mod:`.activation`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.common import domain_errors, single_use, tracking_numbers
from services.common.events import Envelope, Sealer, record_event
from services.identity import audit
from services.identity.companies import company_for
from services.identity.models import OutboxEvent

from .codes import (
    access_code_digest,
    hash_secret,
    new_access_code,
    new_token,
    normalize_word,
    token_digest,
)
from .config import EnrollmentConfig
from .fingerprint import account_ref
from .models import (
    ENROLLMENT_TRANSITIONS,
    PENDING,
    AccessCode,
    Enrollment,
    EnrollmentAccount,
    EnrollmentStatus,
)

S = EnrollmentStatus
SOURCE = "identity"


class IllegalTransition(domain_errors.IllegalTransition):
    def __init__(self, current: EnrollmentStatus, wanted: EnrollmentStatus) -> None:
        super().__init__(f"The enrollment is {current.value}; it cannot become {wanted.value}.",
                         status_now=current.value)


class LinkInvalid(domain_errors.DomainError):
    kind = "verification-link-invalid"

    def __init__(self) -> None:
        super().__init__("The verification link is not valid, was already used or has expired.")


def transition(enrollment: Enrollment, wanted: EnrollmentStatus) -> None:
    if wanted not in ENROLLMENT_TRANSITIONS[enrollment.status]:
        raise IllegalTransition(enrollment.status, wanted)
    enrollment.status = wanted


def publish(session: Session, cfg: EnrollmentConfig, type_: str, enrollment: Enrollment,
            data: dict[str, Any], *, sealed: dict[str, Any] | None = None,
            subject: str | None = None) -> Envelope:
    envelope = Envelope.new(
        type_, SOURCE, data, subject=subject, company_id=enrollment.company_id,
        tracking_number=enrollment.tracking_number, occurred_at=cfg.now(),
        sealed=Sealer(cfg.sealing_key).seal(sealed) if sealed else None)
    return record_event(session, OutboxEvent, envelope)


def _person(enrollment: Enrollment) -> dict[str, Any]:
    return {"enrollment_id": enrollment.id, "email": enrollment.email,
            "given_name": enrollment.given_name,
            "preferred_language": enrollment.preferred_language}


def _audit(session: Session, action: str, actor: audit.Actor, enrollment: Enrollment,
           **detail: Any) -> None:
    audit.record(session, action, actor, subject_type="enrollment", subject_id=enrollment.id,
                 tracking_number=enrollment.tracking_number, detail=detail)


@dataclass(frozen=True)
class Submitted:
    enrollment_id: str
    tracking_number: str
    status: str


def _pending_with_email(session: Session, cfg: EnrollmentConfig,
                        email_key: str) -> Enrollment | None:
    for enrollment in session.scalars(select(Enrollment).where(
            Enrollment.email_key == email_key, Enrollment.status.in_(PENDING))):
        expires = enrollment.verification_expires_at
        if enrollment.status == S.SUBMITTED and expires and expires <= cfg.now():
            transition(enrollment, S.EXPIRED)
            enrollment.verification_digest = None
            continue
        return enrollment
    return None


def submit_enrollment(session: Session, cfg: EnrollmentConfig, data: dict[str, Any],
                      actor: audit.Actor) -> Submitted:
    """Register an enrollment (``data`` as loaded by EnrollmentSchema).

    With a pending enrollment for the same email, nothing is stored and the answer has
    the same shape as a real one (a fresh, unrecorded id and tracking number), so the
    caller cannot learn that the address is known; the audit log records the attempt.
    """
    # Hash first: a duplicate costs the same time as a new enrollment.
    pin_hash = hash_secret(data["pin"])
    word_hash = hash_secret(normalize_word(data["verification_word"]))
    email_key = data["email"].lower()
    existing = _pending_with_email(session, cfg, email_key)
    if existing is not None:
        _audit(session, "enrollment.duplicate_suppressed", actor, existing)
        return Submitted(str(uuid.uuid4()), tracking_numbers.generate(), S.SUBMITTED.value)

    company_data, address = data["company"], data["company"]["address"]
    country, tax_id = address["country"], company_data["tax_id"]
    company = company_for(session, company_data["name"], country, tax_id,
                          requires_review=f"{country}:{tax_id}" in cfg.review_companies)
    token = new_token()
    enrollment = Enrollment(
        tracking_number=tracking_numbers.generate(), status=S.SUBMITTED,
        given_name=data["given_name"], family_name=data["family_name"], email=data["email"],
        email_key=email_key, phone=data["phone"], job_title=data["job_title"],
        preferred_language=data["preferred_language"], company_id=company.id,
        company_name=company_data["name"], address_line1=address["line1"],
        address_line2=address.get("line2"), city=address["city"], region=address.get("region"),
        postal_code=address["postal_code"], country=address["country"],
        tax_id=company_data["tax_id"], pin_hash=pin_hash, word_hash=word_hash,
        verification_digest=token_digest(token),
        verification_expires_at=cfg.now() + timedelta(hours=cfg.verification_link_ttl_hours),
        failed_attempts=0, created_at=cfg.now())
    for position, number in enumerate(data["account_numbers"]):
        ref = account_ref(cfg.fingerprint_key, number)
        enrollment.accounts.append(EnrollmentAccount(position=position, last5=ref.last5,
                                                     fingerprint=ref.fingerprint))
    session.add(enrollment)
    session.flush()
    requires_review = cfg.review_all or company.requires_review
    publish(session, cfg, "identity.enrollment.submitted", enrollment, {
        **_person(enrollment), "family_name": enrollment.family_name,
        "company_name": enrollment.company_name, "requires_review": requires_review,
    }, sealed={"verification_url": f"{cfg.public_base_url}/enroll/verify?token={token}"})
    _audit(session, "enrollment.submitted", actor, enrollment,
           accounts=[a.last5 for a in enrollment.accounts], company_id=company.id)
    return Submitted(enrollment.id, enrollment.tracking_number, enrollment.status.value)


def verify_email(session: Session, cfg: EnrollmentConfig, token: str,
                 actor: audit.Actor) -> Enrollment:
    """Follow the single-use verification link: email verified, then an access code is
    issued, or the enrollment waits for the help desk when its company needs review.

    The link is claimed by a conditional update (``SET verification_digest = NULL WHERE
    verification_digest = :digest AND status = 'submitted'``) before anything else is
    written: of several requests following it at once, one issues the access code and
    the others find the link used."""
    digest = token_digest(token)
    enrollment = session.scalar(select(Enrollment).where(
        Enrollment.verification_digest == digest))
    if enrollment is None or enrollment.status != S.SUBMITTED:
        raise LinkInvalid()
    claimed = session.execute(
        update(Enrollment).where(Enrollment.id == enrollment.id,
                                 Enrollment.verification_digest == digest,
                                 Enrollment.status == S.SUBMITTED)
        .values(verification_digest=None)
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if claimed != 1:
        raise LinkInvalid()  # followed by a concurrent request
    set_committed_value(enrollment, "verification_digest", None)
    expires = enrollment.verification_expires_at
    if expires is None or expires <= cfg.now():
        transition(enrollment, S.EXPIRED)
        _audit(session, "enrollment.link_expired", actor, enrollment)
        return enrollment
    transition(enrollment, S.EMAIL_VERIFIED)
    enrollment.verified_at = cfg.now()
    publish(session, cfg, "identity.enrollment.verified", enrollment, _person(enrollment))
    _audit(session, "enrollment.email_verified", actor, enrollment)
    if cfg.review_all or enrollment.company.requires_review:
        transition(enrollment, S.IN_REVIEW)
        _audit(session, "enrollment.review_requested", actor, enrollment)
    else:
        issue_access_code(session, cfg, enrollment, actor)
    return enrollment


def issue_access_code(session: Session, cfg: EnrollmentConfig, enrollment: Enrollment,
                      actor: audit.Actor, *, reissued: bool = False) -> datetime:
    """Void any active code and issue a new one (sent sealed in the welcome email)."""
    transition(enrollment, S.CODE_ISSUED)
    now = cfg.now()
    code = new_access_code()
    expires_at = now + timedelta(days=cfg.access_code_ttl_days)
    single_use.issue(session, AccessCode(
        enrollment_id=enrollment.id, digest=access_code_digest(cfg.access_code_key, code),
        expires_at=expires_at, issued_by=actor.id if actor.type == "helpdesk" else None), now)
    enrollment.activation_ticket_digest = None
    publish(session, cfg, "identity.access_code.issued", enrollment, {
        **_person(enrollment), "expires_at": expires_at.isoformat(), "reissued": reissued,
    }, sealed={"access_code": code})
    _audit(session, "access_code.reissued" if reissued else "access_code.issued", actor,
           enrollment, expires_at=expires_at.isoformat())
    return expires_at


def get_enrollment(session: Session, enrollment_id: str) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id) if enrollment_id else None
    if enrollment is None:
        raise domain_errors.NotFound("No enrollment has this id.")
    return enrollment


def approve_review(session: Session, cfg: EnrollmentConfig, enrollment_id: str,
                   actor: audit.Actor) -> Enrollment:
    """Help desk: the reviewed enrollment gets its access code."""
    enrollment = get_enrollment(session, enrollment_id)
    if enrollment.status != S.IN_REVIEW:
        raise IllegalTransition(enrollment.status, S.CODE_ISSUED)
    _audit(session, "enrollment.review_approved", actor, enrollment)
    issue_access_code(session, cfg, enrollment, actor)
    return enrollment


def reissue_access_code(session: Session, cfg: EnrollmentConfig, enrollment_id: str,
                        actor: audit.Actor) -> Enrollment:
    """Help desk: a new access code; the old one stops working. Also clears a lock."""
    enrollment = get_enrollment(session, enrollment_id)
    if enrollment.status not in (S.CODE_ISSUED, S.EXPIRED, S.LOCKED) or (
            enrollment.verified_at is None):
        raise IllegalTransition(enrollment.status, S.CODE_ISSUED)
    enrollment.failed_attempts = 0
    issue_access_code(session, cfg, enrollment, actor, reissued=True)
    return enrollment


def unlock_enrollment(session: Session, cfg: EnrollmentConfig, enrollment_id: str,
                      actor: audit.Actor) -> Enrollment:
    """Help desk: a locked enrollment may try again with its current access code."""
    enrollment = get_enrollment(session, enrollment_id)
    if enrollment.status != S.LOCKED:
        raise IllegalTransition(enrollment.status, S.CODE_ISSUED)
    transition(enrollment, S.CODE_ISSUED)
    enrollment.failed_attempts = 0
    enrollment.locked_at = None
    _audit(session, "enrollment.unlocked", actor, enrollment)
    return enrollment
