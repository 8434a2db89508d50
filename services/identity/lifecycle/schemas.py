"""Marshmallow schemas of the lifecycle APIs and pages.

Validation messages are English msgids (``N_``); the HTTP layer translates them.
"""

from __future__ import annotations

import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from marshmallow import RAISE, Schema, ValidationError, fields, validates, validates_schema

from services.identity.i18n import LANGUAGES, N_
from services.identity.models import UserStatus

REQUIRED = N_("This field is required.")
_ERRORS = {"required": REQUIRED, "null": REQUIRED, "invalid": N_("Enter text.")}


def _clean_text(value: str, max_length: int) -> None:
    if not value.strip():
        raise ValidationError(REQUIRED)
    if len(value) > max_length:
        raise ValidationError(N_("This is too long."))
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError(N_("Remove the control characters."))


def text(max_length: int, **kwargs) -> fields.String:
    return fields.String(validate=lambda v: _clean_text(v, max_length), error_messages=_ERRORS,
                         **kwargs)


def normalized_email(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValidationError(N_("Enter a valid email address.")) from None


def e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None if value.strip().startswith("+") else "US")
    except phonenumbers.NumberParseException:
        raise ValidationError(N_("Enter a valid phone number with its country code.")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(N_("Enter a valid phone number with its country code."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _status(value: str) -> None:
    if value not in {s.value for s in UserStatus}:
        raise ValidationError(N_("Unknown status."))


def _limit(value: int) -> None:
    if not 1 <= value <= 200:
        raise ValidationError(N_("Use a number from 1 to 200."))


def _password_length(value: str) -> None:
    if len(value) > 1024:
        raise ValidationError(N_("This is too long."))


def _language(value: str) -> None:
    if value not in LANGUAGES:
        raise ValidationError(N_("Choose English or Spanish."))


def _phone(value: str) -> None:
    e164(value)


def _email(value: str) -> None:
    normalized_email(value)


class Strict(Schema):
    class Meta:
        unknown = RAISE


class WhySchema(Strict):
    why = text(500, required=True)


class UserQuerySchema(Schema):
    q = fields.String(load_default=None, validate=lambda v: _clean_text(v, 200))
    email = fields.String(load_default=None, validate=lambda v: _clean_text(v, 320))
    company_id = fields.String(load_default=None, validate=lambda v: _clean_text(v, 64))
    company = fields.String(load_default=None, validate=lambda v: _clean_text(v, 200))
    status = fields.String(load_default=None, validate=_status)
    limit = fields.Integer(load_default=50, validate=_limit)


class HelpdeskUserSchema(Schema):
    id = fields.String()
    username = fields.String()
    given_name = fields.String()
    family_name = fields.String()
    email = fields.String()
    company_id = fields.String(allow_none=True)
    company_name = fields.String(allow_none=True)
    status = fields.String()
    locked_until = fields.DateTime(allow_none=True)
    failed_logins = fields.Integer()
    second_factor_codes_blocked = fields.Boolean(metadata={
        "description": "too many wrong second-factor codes in a row (SECOND_FACTOR_MAX_FAILURES): "
                       "codes are refused until an unlock or a reset of the factors"})
    last_login_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(allow_none=True)


class ResetRequestSchema(Strict):
    username_or_email = text(320, required=True)


class UsernameReminderSchema(Strict):
    email = text(320, required=True)

    @validates("email")
    def _valid(self, value: str, **_kw) -> None:
        normalized_email(value)


class ResetTokenSchema(Strict):
    token = text(100, required=True)


class NewPasswordFields(Strict):
    password = fields.String(required=True, error_messages=_ERRORS, validate=_password_length)
    password_confirm = fields.String(required=True, error_messages=_ERRORS)

    @validates_schema
    def _confirm(self, data: dict, **_kw) -> None:
        if data.get("password") != data.get("password_confirm"):
            raise ValidationError(N_("The two passwords are not the same."), "password_confirm")


class ResetCompleteSchema(NewPasswordFields):
    token = text(100, required=True)
    answer = text(200, required=True)


class PasswordChangeSchema(NewPasswordFields):
    current_password = fields.String(required=True, error_messages=_ERRORS)


class NotificationsSchema(Strict):
    status_changes = fields.Boolean(required=True)


class ProfileUpdateSchema(Strict):
    job_title = text(120)
    phone = fields.String(validate=_phone, error_messages=_ERRORS)
    preferred_language = fields.String(validate=_language, error_messages=_ERRORS)
    notifications = fields.Nested(NotificationsSchema)
    email = fields.String(validate=_email, error_messages=_ERRORS)


class ProfileSchema(Schema):
    id = fields.String()
    username = fields.String()
    given_name = fields.String()
    family_name = fields.String()
    email = fields.String()
    pending_email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    job_title = fields.String(allow_none=True)
    preferred_language = fields.String()
    company_id = fields.String(allow_none=True)
    notifications = fields.Nested(NotificationsSchema)


class ProfileChangedSchema(Schema):
    profile = fields.Nested(ProfileSchema)
    tracking_number = fields.String(allow_none=True)
    email_change_tracking_number = fields.String(allow_none=True)


class EmailVerifySchema(Strict):
    token = text(100, required=True)


class DetailSchema(Schema):
    """A request accepted, in a sentence (the same whether or not an account matched)."""

    detail = fields.String(required=True)


class ResetQuestionSchema(Schema):
    question = fields.String(required=True)
    text = fields.String(required=True)
    expires_at = fields.String(required=True)


class TrackingNumberSchema(Schema):
    tracking_number = fields.String(required=True)


class EmailChangedSchema(Schema):
    email = fields.String(required=True, metadata={"description": "the address now in use"})


class HelpdeskUserListSchema(Schema):
    items = fields.List(fields.Nested(HelpdeskUserSchema), required=True)


class HelpdeskActionSchema(Schema):
    user = fields.Nested(HelpdeskUserSchema, required=True)
    tracking_number = fields.String(metadata={"description": "reactivation only"})


class SentSchema(Schema):
    sent = fields.Boolean(required=True)
