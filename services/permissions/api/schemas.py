"""marshmallow schemas of every request and response body (and the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

KEY = validate.Length(min=1, max=80)
ID = validate.Length(min=1, max=64)
WHY = validate.Length(min=1, max=2000)


class AccessRequestCreate(Schema):
    target_user_id = fields.Str(validate=ID, metadata={"description": "default: the caller"})
    entitlements = fields.List(fields.Str(validate=KEY), required=True,
                               validate=validate.Length(min=1, max=20))
    accounts = fields.List(fields.Str(validate=validate.Length(min=1, max=128)),
                           load_default=None, allow_none=True, validate=validate.Length(max=50),
                           metadata={"description": "last five digits or fingerprints of the "
                                                    "company's accounts to limit the grants to"})
    justification = fields.Str(required=True, validate=WHY)


class Comment(Schema):
    comment = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class AccessRequestOut(Schema):
    id = fields.Str()
    tracking_number = fields.Str()
    company_id = fields.Str()
    requester_id = fields.Str()
    target_user_id = fields.Str()
    entitlements = fields.List(fields.Str())
    accounts = fields.Method("_last5s", metadata={"description": "last five digits, or null"})
    justification = fields.Str()
    status = fields.Str()
    needs_cosign = fields.Bool()
    cosigned_by = fields.Str(allow_none=True)
    decided_by = fields.Str(allow_none=True)
    comment = fields.Str(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)

    def _last5s(self, obj: Any) -> list[str] | None:
        return None if obj.accounts is None else [a["last5"] for a in obj.accounts]


class AccessRequestList(Schema):
    items = fields.List(fields.Nested(AccessRequestOut))


class ListQuery(Schema):
    view = fields.Str(load_default="mine",
                      validate=validate.OneOf(["mine", "to_decide", "to_cosign"]))


class CheckResource(Schema):
    company_id = fields.Str(validate=ID)
    account_last5 = fields.Str(validate=validate.Regexp(r"^\d{5}$"))
    account_fingerprint = fields.Str(validate=validate.Length(min=1, max=128))


SUBJECT_TOKEN_MAX = 8192


class Check(Schema):
    subject = fields.Str(required=True, validate=ID)
    action = fields.Str(required=True, validate=KEY)
    resource = fields.Nested(CheckResource, load_default=None, allow_none=True)
    subject_token = fields.Str(validate=validate.Length(min=1, max=SUBJECT_TOKEN_MAX), metadata={
        "description": "The subject's own access token (audience permissions), forwarded by a "
                       "service that asks about a user: its acr claim is the authentication "
                       "level the check counts, once it verifies (identity's signature, not "
                       "expired, not revoked, sub = subject). A user asking about themself "
                       "needs none: their bearer token's acr counts. Without either, or with "
                       "a token that does not verify, no level counts, and an entitlement "
                       "that requires one is answered step_up_required. A client's word "
                       "(a level in the body) is never taken."})


class CheckResult(Schema):
    allowed = fields.Bool()
    reason = fields.Str(metadata={"description": "granted, unknown_subject, subject_inactive, "
                                                 "membership_pending, other_company, "
                                                 "unknown_account, not_granted, "
                                                 "account_not_granted or step_up_required"})
    acr = fields.Str(metadata={
        "description": "Only with step_up_required: the authentication level (acr) the "
                       "entitlement requires. Send the user to identity's /authorize with "
                       "acr_values=<acr>, then check again with the token that comes back."})


class CheckBatch(Schema):
    checks = fields.List(fields.Nested(Check), required=True,
                         validate=validate.Length(min=1, max=100))


class CheckBatchResult(Schema):
    results = fields.List(fields.Nested(CheckResult))


class GrantOut(Schema):
    id = fields.Str()
    entitlement = fields.Str()
    accounts = fields.List(fields.Str(), allow_none=True)
    source = fields.Str()
    expires_at = fields.DateTime(allow_none=True)


class EntitlementsOut(Schema):
    user_id = fields.Str()
    company_id = fields.Str()
    status = fields.Str()
    entitlements = fields.List(fields.Str())
    grants = fields.List(fields.Nested(GrantOut))


class Section(Schema):
    key = fields.Str()
    title = fields.Str()
    url = fields.Str()
    entitlement = fields.Str()


class HomeOut(Schema):
    user_id = fields.Str()
    language = fields.Str()
    sections = fields.List(fields.Nested(Section))


class HomeQuery(Schema):
    lang = fields.Str(validate=validate.OneOf(["en", "es"]))


class CatalogEntry(Schema):
    key = fields.Str()
    description_en = fields.Str()
    description_es = fields.Str()
    category = fields.Str()
    account_scopable = fields.Bool()
    required_acr = fields.Str(allow_none=True, metadata={
        "description": "the authentication level (acr) a holder's token must show for a "
                       "check to allow it, e.g. urn:portico:acr:mfa; null: any"})


class CatalogOut(Schema):
    items = fields.List(fields.Nested(CatalogEntry))


class PrincipalIn(Schema):
    user_id = fields.Str(required=True, validate=ID)
    why = fields.Str(required=True, validate=WHY)


class Why(Schema):
    why = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class ProgramIn(Schema):
    allowed_entitlements = fields.List(fields.Str(validate=KEY), required=True, allow_none=True)
    why = fields.Str(required=True, validate=WHY)


class CompanyAccountOut(Schema):
    last5 = fields.Str()


class CompanyOut(Schema):
    id = fields.Str()
    name = fields.Str()
    principal_user_id = fields.Str(allow_none=True)
    secondary_administrators = fields.List(fields.Str())
    allowed_entitlements = fields.List(fields.Str(), allow_none=True)
    accounts = fields.List(fields.Nested(CompanyAccountOut), metadata={
        "description": "the company's accounts (cards), by their last five digits only"})


class Reason(Schema):
    why = fields.Str(required=True, validate=WHY)


class PlatformRoleQuery(Schema):
    user_id = fields.Str(validate=ID)


class PlatformRoleOut(Schema):
    user_id = fields.Str()
    role = fields.Str()
    granted_by = fields.Str()
    why = fields.Str()
    granted_at = fields.DateTime()


class PlatformRoleList(Schema):
    items = fields.List(fields.Nested(PlatformRoleOut))


class MembershipApprove(Schema):
    comment = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    accounts = fields.List(fields.Str(validate=validate.Length(min=1, max=128)),
                           load_default=None, allow_none=True, validate=validate.Length(max=50),
                           metadata={"description": "last five digits or fingerprints of the "
                                                    "accounts the newcomer named that are "
                                                    "approved too (default: all of them)"})


class MembershipRequestOut(Schema):
    id = fields.Str()
    tracking_number = fields.Str()
    company_id = fields.Str()
    user_id = fields.Str()
    accounts = fields.Method("_last5s", metadata={"description": "last five digits of the "
                                                                 "accounts the newcomer named"})
    status = fields.Str()
    decided_by = fields.Str(allow_none=True)
    comment = fields.Str(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)

    def _last5s(self, obj: Any) -> list[str]:
        return [a["last5"] for a in obj.accounts or []]


class MembershipRequestList(Schema):
    items = fields.List(fields.Nested(MembershipRequestOut))


class MembershipListQuery(Schema):
    view = fields.Str(load_default="mine", validate=validate.OneOf(["mine", "to_decide"]))
