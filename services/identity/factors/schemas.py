"""Marshmallow schemas of the factor endpoints (the help desk's, passkey ceremonies):
nothing secret is a field."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.identity.i18n import N_
from services.identity.lifecycle.schemas import REQUIRED, WhySchema

from .policy import GRACE_DAYS_MAX, MfaPolicy


class TotpViewSchema(Schema):
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True, metadata={
        "description": "null while the enrolment waits for its first code"})
    last_used_at = fields.DateTime(allow_none=True, metadata={
        "description": "the 30-second step of the last code accepted"})


class RecoveryCodesViewSchema(Schema):
    remaining = fields.Integer(metadata={"description": "unused codes left"})
    created_at = fields.DateTime()


class PasskeyViewSchema(Schema):
    id = fields.String()
    name = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    backed_up = fields.Boolean()
    transports = fields.List(fields.String())
    aaguid = fields.String(allow_none=True, metadata={"description": "the authenticator's model"})


class UserFactorsSchema(Schema):
    user_id = fields.String(required=True)
    totp = fields.Nested(TotpViewSchema, allow_none=True, required=True)
    recovery_codes = fields.Nested(RecoveryCodesViewSchema, allow_none=True, required=True)
    passkeys = fields.List(fields.Nested(PasskeyViewSchema), required=True)


class RemovedFactorsSchema(Schema):
    totp = fields.Integer()
    recovery_codes = fields.Integer()
    passkeys = fields.Integer()


class FactorsResetSchema(Schema):
    tracking_number = fields.String(required=True)
    removed = fields.Nested(RemovedFactorsSchema, required=True,
                            metadata={"description": "how many of each kind were removed"})
    signed_out = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                             metadata={"description": "refresh-token families and login "
                                                      "sessions ended"})


class MfaPolicySchema(Schema):
    company_id = fields.String(required=True)
    policy = fields.String(required=True, metadata={
        "enum": [p.value for p in MfaPolicy],
        "description": "`optional`, `required` (an authenticator app or a passkey) or "
                       "`phishing_resistant` (a passkey)"})
    grace_days = fields.Integer(required=True, metadata={
        "description": "days users who existed when the policy was set have to comply"})
    set_at = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "when the policy last changed (null: never set)"})
    binds_existing_users_at = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "the grace period's end; users created since `set_at` are bound at once"})


class MfaPolicyChangedSchema(MfaPolicySchema):
    tracking_number = fields.String(required=True)


class MfaPolicyChangeSchema(WhySchema):
    policy = fields.String(required=True, validate=validate.OneOf(
        [p.value for p in MfaPolicy], error=N_("Choose optional, required or phishing_resistant.")),
        error_messages={"required": REQUIRED, "null": REQUIRED, "invalid": N_("Enter text.")})
    grace_days = fields.Integer(load_default=0, validate=validate.Range(
        min=0, max=GRACE_DAYS_MAX, error=N_("Use a number of days from 0 to 90.")),
        error_messages={"invalid": N_("Use a number of days from 0 to 90."),
                        "null": N_("Use a number of days from 0 to 90.")})


class CredentialOptionsSchema(Schema):
    """WebAuthn's ``PublicKeyCredentialCreationOptionsJSON`` or
    ``PublicKeyCredentialRequestOptionsJSON``: what ``navigator.credentials`` takes, binary
    members base64url. The challenge is single-use and bound to the login session."""

    challenge = fields.String(required=True)
    timeout = fields.Integer(metadata={"description": "milliseconds"})
    rpId = fields.String(metadata={"description": "request options"})
    rp = fields.Dict(metadata={"description": "creation options"})
    user = fields.Dict(metadata={"description": "creation options"})
    pubKeyCredParams = fields.List(fields.Dict(), metadata={"description": "creation options"})
    allowCredentials = fields.List(fields.Dict(), metadata={
        "description": "request options: the user's passkeys (second factor), or empty"})
    excludeCredentials = fields.List(fields.Dict(), metadata={
        "description": "creation options: the user's passkeys already registered"})
    authenticatorSelection = fields.Dict()
    userVerification = fields.String()
    attestation = fields.String()


class PasskeyAssertionSchema(Schema):
    """The browser's answer to a sign-in's options."""

    credential = fields.Dict(required=True, metadata={
        "description": "the `PublicKeyCredential` as its `toJSON()` gives it"})
    next = fields.String(load_default=None, metadata={
        "description": "where to go once signed in (a local path; else the account page)"})


class SignedInSchema(Schema):
    redirect = fields.String(required=True, metadata={"description": "where to go now"})
