"""Event consumers: which email each event sends, to whom (docs/events.md, docs/notifier.md).

Every handler runs inside the consumer's transaction: the outgoing-message rows it
queues commit together with the processed-event row, so an event is acknowledged only
once its messages are stored, and a redelivered event queues nothing twice.
Sealed secrets are opened here, in memory, only to render.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.db import settings_of
from services.common.events import Envelope, HandlerRegistry, Sealer

from .messages import Addressee, BodyVault, queue_message
from .models import OutgoingMessage, Recipient
from .recipients import recipient, upsert_recipient
from .settings import NotifierSettings
from .templating import language_of

# The handlers of single events; the consumer calls ``registry`` (below) with a batch.
_per_event = HandlerRegistry()

# Which emails cannot be opted out of (docs/events.md "Which emails the notifier sends").
SECURITY_TEMPLATES = frozenset({
    "enrollment_submitted", "access_code_issued", "enrollment_locked",
    "password_reset_requested", "password_changed", "username_reminder",
    "contact_change_verification", "contact_change_notice", "user_deactivated",
    "inactivity_warning", "user_reactivated", "factor_added", "factor_removed",
    "recovery_code_used", "factors_reset",
})
INFORMATIONAL_TEMPLATES = frozenset({"status_changed"})

def _settings(session: Session) -> NotifierSettings:
    """The notifier's settings (keys, help desk, links), which its sessions carry."""
    return settings_of(session)


def _base_context(settings: NotifierSettings) -> dict[str, Any]:
    return {"portal_url": settings.public_base_url.rstrip("/"),
            "helpdesk_phone": settings.helpdesk_phone,
            "helpdesk_hours_en": settings.helpdesk_hours_en,
            "helpdesk_hours_es": settings.helpdesk_hours_es,
            "brand_name": settings.brand_name, "brand_logo_url": settings.brand_logo_url}


def _unseal(session: Session, envelope: Envelope) -> dict[str, Any]:
    if not envelope.sealed:
        return {}
    return Sealer(_settings(session).event_sealing_key).unseal(envelope.sealed)


def _queue(session: Session, envelope: Envelope, template: str, to: Addressee,
           context: dict[str, Any] | None = None, *, carries_secret: bool = False) -> None:
    settings = _settings(session)
    queue_message(session, envelope, template=template, to=to,
                  context={**_base_context(settings), **(context or {})},
                  vault=BodyVault(settings.event_sealing_key), carries_secret=carries_secret,
                  informational=template in INFORMATIONAL_TEMPLATES)


def _addressed(data: dict[str, Any], email_field: str = "email") -> Addressee:
    """The addressee named in the event's own data (enrollments and user notices)."""
    return Addressee(email=str(data[email_field]), language=language_of(data.get("preferred_language")),
                     given_name=str(data.get("given_name") or ""), user_id=data.get("user_id"))


def _user(session: Session, user_id: str | None) -> Addressee:
    """The addressee of a user from the read model (RecipientUnknown until it is built)."""
    found = recipient(session, user_id)
    return Addressee(email=found.email, language=language_of(found.preferred_language),
                     given_name=found.given_name, user_id=found.user_id,
                     wants_status_changes=found.status_changes)


def _name_of(session: Session, user_id: str | None) -> str:
    try:
        return recipient(session, user_id).given_name
    except LookupError:
        return ""


def _note_contact(session: Session, envelope: Envelope) -> None:
    user_id = envelope.data.get("user_id") or envelope.subject
    if user_id and envelope.data.get("email"):
        upsert_recipient(session, str(user_id), envelope.occurred, envelope.data)


# Fields of event data naming a user whose read-model row a handler may look up.
_USER_FIELDS = ("user_id", "principal_admin_id", "requester_id", "target_user_id",
                "new_principal_id", "old_principal_id")


def _load_recipients(session: Session, envelopes: list[Envelope]) -> None:
    """Load the batch's recipients in one query, so the handlers' look-ups by primary key
    are answered from the session instead of one SELECT each."""
    ids = {e.subject for e in envelopes if e.subject}
    ids.update(str(e.data[f]) for e in envelopes for f in _USER_FIELDS if e.data.get(f))
    if ids:
        # Held in session.info: the identity map only keeps weak references.
        session.info["notifier.recipients"] = session.scalars(
            select(Recipient).where(Recipient.user_id.in_(sorted(ids)))).all()


def _tidy_pending(session: Session, queued: dict[tuple[str, str, str], OutgoingMessage]) -> None:
    """What autoflush would have ensured, after each event of a batch handled without it:
    a recipient added to the read model is flushed (a later event may look it up), and
    a message queued twice for one (event, template, recipient) is dropped (the check in
    ``queue_message`` only sees flushed rows)."""
    new_recipient = False
    for obj in list(session.new):
        if isinstance(obj, Recipient):
            new_recipient = True
        elif (isinstance(obj, OutgoingMessage) and queued.setdefault(
                (obj.event_id, obj.template, obj.recipient), obj) is not obj):
            session.expunge(obj)
    if new_recipient:
        session.flush()


# -- read model -------------------------------------------------------------------------

@_per_event.on("identity.user.activated")
@_per_event.on("identity.contact.changed")
def contact_details(session: Session, envelope: Envelope) -> None:
    _note_contact(session, envelope)


# -- identity: security emails ----------------------------------------------------------

@_per_event.on("identity.enrollment.submitted")
def enrollment_submitted(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    _queue(session, envelope, "enrollment_submitted", _addressed(data), {
        "verification_url": _unseal(session, envelope)["verification_url"],
        "company_name": data.get("company_name") or "",
        "requires_review": bool(data.get("requires_review")),
    }, carries_secret=True)


@_per_event.on("identity.access_code.issued")
def access_code_issued(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    _queue(session, envelope, "access_code_issued", _addressed(data), {
        "access_code": _unseal(session, envelope)["access_code"], "expires_at": data.get("expires_at"),
        "reissued": bool(data.get("reissued")),
    }, carries_secret=True)


@_per_event.on("identity.enrollment.locked")
def enrollment_locked(session: Session, envelope: Envelope) -> None:
    _queue(session, envelope, "enrollment_locked", _addressed(envelope.data))


@_per_event.on("identity.password_reset.requested")
def password_reset_requested(session: Session, envelope: Envelope) -> None:
    _note_contact(session, envelope)
    _queue(session, envelope, "password_reset_requested", _addressed(envelope.data), {
        "reset_url": _unseal(session, envelope)["reset_url"], "expires_at": envelope.data.get("expires_at"),
    }, carries_secret=True)


@_per_event.on("identity.password.changed")
def password_changed(session: Session, envelope: Envelope) -> None:
    _note_contact(session, envelope)
    _queue(session, envelope, "password_changed", _addressed(envelope.data),
           {"via": envelope.data.get("via") or "profile"})


@_per_event.on("identity.factor.added")
@_per_event.on("identity.factor.removed")
def factor_changed(session: Session, envelope: Envelope) -> None:
    template = "factor_added" if envelope.type == "identity.factor.added" else "factor_removed"
    _queue(session, envelope, template, _addressed(envelope.data),
           {"factor": envelope.data.get("factor")})


@_per_event.on("identity.recovery_code.used")
def recovery_code_used(session: Session, envelope: Envelope) -> None:
    _queue(session, envelope, "recovery_code_used", _addressed(envelope.data),
           {"remaining": envelope.data.get("remaining")})


@_per_event.on("identity.factors.reset")
def factors_reset(session: Session, envelope: Envelope) -> None:
    _queue(session, envelope, "factors_reset", _addressed(envelope.data))


@_per_event.on("identity.username.reminder")
def username_reminder(session: Session, envelope: Envelope) -> None:
    _queue(session, envelope, "username_reminder", _addressed(envelope.data),
           {"username": _unseal(session, envelope)["username"]}, carries_secret=True)


@_per_event.on("identity.contact.change_requested")
def contact_change_requested(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    _queue(session, envelope, "contact_change_verification", _addressed(data, "new_email"),
           {"verification_url": _unseal(session, envelope)["verification_url"]}, carries_secret=True)
    if data.get("old_email"):
        _queue(session, envelope, "contact_change_notice", _addressed(data, "old_email"),
               {"new_email": data["new_email"]})


@_per_event.on("identity.user.deactivated")
def user_deactivated(session: Session, envelope: Envelope) -> None:
    _note_contact(session, envelope)
    _queue(session, envelope, "user_deactivated", _addressed(envelope.data),
           {"reason": envelope.data.get("reason") or "helpdesk"})


@_per_event.on("identity.user.inactivity_warning")
def inactivity_warning(session: Session, envelope: Envelope) -> None:
    _note_contact(session, envelope)
    _queue(session, envelope, "inactivity_warning", _addressed(envelope.data),
           {"days_left": envelope.data.get("days_left")})


@_per_event.on("identity.user.reactivated")
def user_reactivated(session: Session, envelope: Envelope) -> None:
    _note_contact(session, envelope)
    _queue(session, envelope, "user_reactivated", _addressed(envelope.data))


# -- permissions: access requests to the principal administrator, decisions ------------

def _request_context(session: Session, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": data.get("request_id"),
        "entitlements": list(data.get("entitlements") or []),
        "justification": data.get("justification") or "",
        "needs_cosign": bool(data.get("needs_cosign")),
        "expires_at": data.get("expires_at"),
        "requester_name": _name_of(session, data.get("requester_id")),
        "target_name": _name_of(session, data.get("target_user_id")),
        "comment": data.get("comment") or "",
    }


@_per_event.on("permissions.request.created")
def access_request_created(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    _queue(session, envelope, "access_request_created", _user(session, data.get("principal_admin_id")),
           _request_context(session, data))


@_per_event.on("permissions.request.reminder")
def access_request_reminder(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    _queue(session, envelope, "access_request_reminder", _user(session, data.get("principal_admin_id")),
           _request_context(session, data))


@_per_event.on("permissions.request.approved")
@_per_event.on("permissions.request.rejected")
@_per_event.on("permissions.request.expired")
def access_request_decided(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    outcome = envelope.type.rsplit(".", 1)[-1]
    context = {**_request_context(session, data), "outcome": outcome}
    for user_id in dict.fromkeys(u for u in (data.get("requester_id"), data.get("target_user_id")) if u):
        _queue(session, envelope, "access_request_decided", _user(session, user_id), context)


@_per_event.on("permissions.principal.changed")
def principal_changed(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    for role, user_id in (("new", data.get("new_principal_id")), ("old", data.get("old_principal_id"))):
        if user_id:
            _queue(session, envelope, "principal_changed", _user(session, user_id), {"role": role})


# -- permissions: membership of a company ---------------------------------------------

def _membership_context(data: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": data.get("request_id"), "company_name": data.get("company_name") or "",
            "newcomer_name": data.get("newcomer_name") or "",
            "accounts": list(data.get("accounts") or []), "expires_at": data.get("expires_at"),
            "comment": data.get("comment") or ""}


@_per_event.on("permissions.membership.requested")
def membership_requested(session: Session, envelope: Envelope) -> None:
    """To the principal administrator; none yet (the help desk designates one): nobody."""
    data = envelope.data
    if data.get("principal_admin_id"):
        _queue(session, envelope, "membership_requested",
               _user(session, data["principal_admin_id"]), _membership_context(data))


@_per_event.on("permissions.membership.approved")
@_per_event.on("permissions.membership.rejected")
@_per_event.on("permissions.membership.expired")
def membership_decided(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    context = {**_membership_context(data), "outcome": envelope.type.rsplit(".", 1)[-1]}
    if "accounts_attached" in data:  # an approval may accept only some of the named ones
        context["accounts"] = list(data["accounts_attached"] or [])
    _queue(session, envelope, "membership_decided", _user(session, data.get("user_id")),
           context)


# -- tracking: informational ------------------------------------------------------------

@_per_event.on("tracking.status.changed")
def status_changed(session: Session, envelope: Envelope) -> None:
    if not envelope.subject:
        return  # a transaction without an owning user yet (an enrollment): nobody to tell
    data = envelope.data
    _queue(session, envelope, "status_changed", _user(session, envelope.subject), {
        "transaction_type": data.get("transaction_type") or "",
        "old_status": data.get("old_status") or "", "new_status": data.get("new_status") or "",
        "title_en": data.get("title_en") or "", "title_es": data.get("title_es") or "",
        "comment": data.get("comment") or "",
    })


# -- the batch ----------------------------------------------------------------------------

registry = HandlerRegistry()


@registry.on_batch(*_per_event.types)
def handle_batch(session: Session, envelopes: list[Envelope]) -> None:
    """Every event of a consumer batch, in order, without a flush per event: the queued
    messages and read-model changes go to the database together at the commit."""
    if len(envelopes) > 1:
        _load_recipients(session, envelopes)
    queued: dict[tuple[str, str, str], OutgoingMessage] = {}
    with session.no_autoflush:
        for envelope in envelopes:
            _per_event(session, envelope)
            _tidy_pending(session, queued)
