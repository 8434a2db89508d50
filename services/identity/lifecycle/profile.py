"""The user's own profile: contact details, job title, language, email preferences, a
re-verified email change and a password change. No Flask here.

Every change gets a tracking number and publishes an event: ``identity.contact.changed``
(details; and the new email once verified), ``identity.contact.change_requested`` (the
link goes to the new address, the notice to the old), ``identity.password.changed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy.orm import Session

from services.common import single_use, tracking_numbers
from services.common.domain_errors import DomainError
from services.identity.enrollment.codes import new_token, token_digest
from services.identity.i18n import _
from services.identity.models import User
from services.identity.passwords import verify_password

from .config import LifecycleConfig
from .credentials import replace_password
from .domain import Actor, get_user, person, profile_of, publish, record
from .models import ContactChange
from .schemas import e164, normalized_email


class EmailLinkInvalid(DomainError):
    kind = "email-link-invalid"

    def __init__(self) -> None:
        super().__init__("The verification link is not valid, was already used or has expired.")


def view(session: Session, cfg: LifecycleConfig, user: User) -> dict[str, Any]:
    profile = profile_of(session, user)
    pending = single_use.latest_live(session, ContactChange, user.id, cfg.now())
    return {"id": user.id, "username": user.username, "given_name": user.given_name,
            "family_name": user.family_name, "email": user.email,
            "pending_email": pending.new_email if pending else None,
            "phone": user.phone_number, "job_title": profile.job_title,
            "preferred_language": user.preferred_language, "company_id": user.company_id,
            "notifications": {"status_changes": profile.notify_status_changes}}


def _contact_data(session: Session, cfg: LifecycleConfig, user: User) -> dict[str, Any]:
    current = view(session, cfg, user)
    return {"user_id": user.id, "email": user.email, "phone": user.phone_number,
            "job_title": current["job_title"], "given_name": user.given_name,
            "family_name": user.family_name, "preferred_language": user.preferred_language,
            "notifications": current["notifications"]}


@dataclass(frozen=True)
class ProfileChanged:
    tracking_number: str | None
    email_change_tracking_number: str | None


def update_profile(session: Session, cfg: LifecycleConfig, user_id: str,
                   changes: dict[str, Any], actor: Actor) -> ProfileChanged:
    """Apply ``changes`` (as loaded by ProfileUpdateSchema). A new email is only requested
    here: it replaces the old one when its link is followed."""
    user = get_user(session, user_id)
    profile = profile_of(session, user)
    changed: list[str] = []
    if "job_title" in changes and changes["job_title"].strip() != (profile.job_title or ""):
        profile.job_title = changes["job_title"].strip()
        changed.append("job_title")
    if "phone" in changes and e164(changes["phone"]) != user.phone_number:
        user.phone_number = e164(changes["phone"])
        changed.append("phone")
    if "preferred_language" in changes and changes["preferred_language"] != (
            user.preferred_language):
        user.preferred_language = changes["preferred_language"]
        changed.append("preferred_language")
    wanted = (changes.get("notifications") or {}).get("status_changes")
    if wanted is not None and wanted != profile.notify_status_changes:
        profile.notify_status_changes = wanted
        changed.append("notifications")
    tracking = None
    if changed:
        profile.updated_at = cfg.now()
        tracking = tracking_numbers.generate()
        session.flush()
        publish(session, cfg, "identity.contact.changed", user,
                _contact_data(session, cfg, user), tracking_number=tracking)
        record(session, cfg, "profile.updated", actor, user.id, tracking_number=tracking,
               fields=changed)
    email_tracking = None
    if "email" in changes and normalized_email(changes["email"]).lower() != user.email.lower():
        email_tracking = request_email_change(session, cfg, user,
                                              normalized_email(changes["email"]), actor)
    return ProfileChanged(tracking, email_tracking)


def request_email_change(session: Session, cfg: LifecycleConfig, user: User, new_email: str,
                         actor: Actor) -> str:
    now = cfg.now()
    token = new_token()
    change = single_use.issue(session, ContactChange(
        user_id=user.id, new_email=new_email, old_email=user.email,
        digest=token_digest(token), tracking_number=tracking_numbers.generate(),
        expires_at=now + timedelta(hours=cfg.email_change_ttl_hours)), now)
    publish(session, cfg, "identity.contact.change_requested", user,
            {"user_id": user.id, "new_email": new_email, "old_email": user.email,
             "given_name": user.given_name, "preferred_language": user.preferred_language},
            tracking_number=change.tracking_number,
            sealed={"verification_url": f"{cfg.public_base_url}/account/email/verify"
                                        f"?token={token}"})
    record(session, cfg, "email_change.requested", actor, user.id,
           tracking_number=change.tracking_number)
    return change.tracking_number


def confirm_email_change(session: Session, cfg: LifecycleConfig, token: str | None,
                         actor: Actor) -> User:
    """Follow the link sent to the new address: it becomes the user's email.

    The link is a single-use secret, claimed (services/common/single_use.py) before the
    email changes: of several requests carrying it at once, one changes the email, the
    others find it used."""
    now = cfg.now()
    change = single_use.live(session, ContactChange, token_digest(token),
                             now) if token else None
    if change is None:
        raise EmailLinkInvalid()
    user = get_user(session, change.user_id)
    if user.email.lower() != change.old_email.lower():
        raise EmailLinkInvalid()  # the address changed another way meanwhile
    if not single_use.claim(session, change, now):
        raise EmailLinkInvalid()  # confirmed or voided by a concurrent request
    user.email = change.new_email
    user.email_verified = True
    data = _contact_data(session, cfg, user)
    publish(session, cfg, "identity.contact.changed", user,
            {**data, "old_email": change.old_email}, tracking_number=change.tracking_number)
    record(session, cfg, "email_change.confirmed", actor, user.id,
           tracking_number=change.tracking_number)
    return user


class WrongCurrentPassword(DomainError):
    kind = "wrong-current-password"

    def __init__(self) -> None:
        super().__init__(_("The current password is not correct."))
        self.errors = {"current_password": [_("The current password is not correct.")]}


def change_password(session: Session, cfg: LifecycleConfig, client: redis.Redis,
                    namespace: str, user_id: str, current: str, new: str, actor: Actor,
                    keep_sid: str | None = None) -> str:
    """Needs the current password; ends the user's other sessions and refresh tokens.
    Returns the change's tracking number."""
    user = get_user(session, user_id)
    if not verify_password(user.password_hash, current):
        raise WrongCurrentPassword()
    ended = replace_password(session, cfg, client, namespace, user, new, keep_sid)
    tracking = tracking_numbers.generate()
    publish(session, cfg, "identity.password.changed", user, {**person(user), "via": "profile"},
            tracking_number=tracking)
    record(session, cfg, "password.changed", actor, user.id, tracking_number=tracking,
           via="profile", **ended)
    return tracking
