"""A company's MFA policy over JSON: the help desk's (``/admin/v1/companies/<id>/mfa-policy``)
and the company's principal administrator's (``/v1/companies/<id>/mfa-policy``).

Identity owns the policy, so identity authorises: the help desk as every help-desk API
does (:func:`require_helpdesk`); a person by asking permissions, on each request, who
the company's principal is now (:mod:`.principals`), never from a token's claim. Anyone
else, the principal of another company included, hears the same 404 as for a company
that does not exist: they learn nothing about it.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from services.common.app import context, request_id
from services.common.auth import require_auth
from services.common.domain_errors import NotFound
from services.common.errors import Problem
from services.identity.api.common import BEARER, LIFECYCLE, NO_STORE, Blueprint
from services.identity.i18n import _
from services.identity.lifecycle.domain import Actor
from services.identity.lifecycle.helpdesk_api import agent, require_helpdesk
from services.identity.lifecycle.profile_api import own_token
from services.identity.lifecycle.web import client_ip
from services.identity.models import User

from . import company_policy
from .config import FactorsConfig
from .policy import MfaPolicy
from .principals import Principals, PrincipalsUnavailable
from .schemas import MfaPolicyChangedSchema, MfaPolicyChangeSchema, MfaPolicySchema

blp = Blueprint("mfa_policy", __name__, tag=LIFECYCLE, gettext=_)
EXTENSION = "factors.principals"
HELPDESK_RULE = "/admin/v1/companies/<company_id>/mfa-policy"
PRINCIPAL_RULE = "/v1/companies/<company_id>/mfa-policy"
NO_SUCH_COMPANY = "No such company."


def init_principals(app: Any) -> None:
    """Ask permissions with the service token identity mints for it (after init_oidc)."""
    settings = context(app).settings
    provider = app.extensions["portico.oidc"].provider
    app.extensions[EXTENSION] = Principals(settings.permissions_url,
                                           provider.entitlements.service_token,
                                           timeout=settings.entitlements_timeout)


def _cfg() -> FactorsConfig:
    return current_app.extensions["factors"]


def _view(company_id: str) -> dict[str, Any]:
    with context().db.read() as session:
        return company_policy.view(session, company_id)


def _change(company_id: str, body: dict[str, Any], actor: Actor, via: str) -> dict[str, Any]:
    with context().db.transaction() as session:
        return company_policy.set_policy(session, _cfg(), company_id, MfaPolicy(body["policy"]),
                                         body["grace_days"], actor, body["why"].strip(),
                                         via=via)


@blp.get(HELPDESK_RULE)
@require_helpdesk
@blp.response(200, MfaPolicySchema)
@blp.problems(401, 403, 404)
@blp.doc(security=BEARER)
def helpdesk_read(company_id: str) -> Any:
    """A company's MFA policy (help desk)."""
    return _view(company_id), NO_STORE


@blp.put(HELPDESK_RULE)
@require_helpdesk
@blp.arguments(MfaPolicyChangeSchema)
@blp.response(200, MfaPolicyChangedSchema)
@blp.problems(400, 401, 403, 404)
@blp.doc(security=BEARER, description="`why` required, audited and published.")
def helpdesk_change(body: dict[str, Any], company_id: str) -> Any:
    """Set a company's MFA policy and grace period (help desk; tracking number returned)."""
    return _change(company_id, body, agent(), "helpdesk"), NO_STORE


def _require_principal(user_id: str, company_id: str) -> None:
    """The caller is the company's principal now (asked of permissions) and a user of it
    here; else NotFound, as for a company that does not exist."""
    try:
        principal = current_app.extensions[EXTENSION].of(company_id)
    except PrincipalsUnavailable:
        raise Problem(503, "permissions-unavailable",
                      _("Who administers the company could not be asked of the permissions "
                        "service; try again shortly."), headers={"Retry-After": "5"}) from None
    with context().db.read() as session:
        user = session.get(User, user_id)
        member = user is not None and user.company_id == company_id
    if principal != user_id or not member:
        raise NotFound(NO_SUCH_COMPANY)


@blp.get(PRINCIPAL_RULE)
@require_auth()
@own_token
@blp.response(200, MfaPolicySchema)
@blp.problems(401, 403, 404, 503)
@blp.doc(security=BEARER)
def principal_read(company_id: str, user_id: str) -> Any:
    """The MFA policy of the caller's company (its principal administrator only)."""
    _require_principal(user_id, company_id)
    return _view(company_id), NO_STORE


@blp.put(PRINCIPAL_RULE)
@require_auth()
@own_token
@blp.arguments(MfaPolicyChangeSchema)
@blp.response(200, MfaPolicyChangedSchema)
@blp.problems(400, 401, 403, 404, 503)
@blp.doc(security=BEARER, description="`why` required, audited and published.")
def principal_change(body: dict[str, Any], company_id: str, user_id: str) -> Any:
    """Set the MFA policy of the caller's company (its principal administrator only;
    tracking number returned)."""
    _require_principal(user_id, company_id)
    actor = Actor("user", user_id, client_ip(), request_id())
    return _change(company_id, body, actor, "principal"), NO_STORE
