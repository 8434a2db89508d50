"""Marshmallow schemas of the enrollment API and pages.

Error messages are English msgids marked with ``N_``; the HTTP layer translates them
(:func:`translated_errors`) into the request's language.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validates,
    validates_schema,
)
from stdnum import luhn
from stdnum.es import cif as es_cif
from stdnum.es import nif as es_nif
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.mx import rfc as mx_rfc
from stdnum.us import ein as us_ein

from services.common.errors import flatten_errors
from services.common.fields import whole_number
from services.identity.i18n import N_, _
from services.identity.security_answers import QUESTIONS

from .codes import normalize_word, pin_problems

REQUIRED = N_("This field is required.")
NOT_TEXT = N_("Enter text.")
COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)
MAX_ACCOUNTS = 20

PIN_MESSAGES = {
    "pin.format": N_("The PIN must be 4 to 8 digits."),
    "pin.repeated": N_("The PIN must not be one digit repeated."),
    "pin.sequential": N_("The PIN must not be a run of consecutive digits."),
}


def _text(max_length: int, *, required: bool = True, min_length: int = 1) -> fields.String:
    def check(value: str) -> None:
        stripped = value.strip()
        if len(stripped) < min_length:
            raise ValidationError(REQUIRED)
        if len(stripped) > max_length:
            raise ValidationError(N_("This is too long."))
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise ValidationError(N_("Remove the control characters."))

    kwargs: dict[str, Any] = {"required": required, "validate": check,
              "error_messages": {"required": REQUIRED, "invalid": NOT_TEXT, "null": REQUIRED}}
    if not required:
        kwargs.update(load_default=None, allow_none=True)
    return fields.String(**kwargs)


def compact_tax_id(value: str) -> str:
    return re.sub(r"[\s\-./]", "", value).upper()


def validate_tax_id(country: str, value: str) -> str:
    """The compact tax id, or ValidationError with the country's rule."""
    try:
        if country == "US":
            return us_ein.validate(value)
        if country == "MX":
            return mx_rfc.validate(value)
        if country == "ES":
            try:
                return es_nif.validate(value)
            except StdnumError:
                return es_cif.validate(value)
    except StdnumError:
        raise ValidationError({
            "US": N_("Enter a valid US EIN (9 digits, e.g. 12-3456789)."),
            "MX": N_("Enter a valid RFC."),
            "ES": N_("Enter a valid NIF or CIF."),
        }[country]) from None
    compact = compact_tax_id(value)
    if not re.fullmatch(r"[A-Z0-9]{4,20}", compact):
        raise ValidationError(N_("Enter a valid tax ID (4 to 20 letters and digits)."))
    return compact


class AddressSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    line1 = _text(200)
    line2 = _text(200, required=False)
    city = _text(120)
    region = _text(120, required=False)
    postal_code = _text(20)
    country = fields.String(required=True, error_messages={"required": REQUIRED,
                                                           "invalid": NOT_TEXT})

    @validates("postal_code")
    def _postal(self, value: str, **_kw) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 \-]{1,11}", value.strip()):
            raise ValidationError(N_("Enter a valid postal code."))

    @validates("country")
    def _country(self, value: str, **_kw) -> None:
        if value.strip().upper() not in COUNTRIES:
            raise ValidationError(N_("Choose a country (two-letter ISO code)."))

    @post_load
    def _clean(self, data: dict, **_kw) -> dict:
        data = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
        data["country"] = data["country"].upper()
        return data


class CompanySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = _text(200)
    tax_id = _text(40)
    address = fields.Nested(AddressSchema, required=True,
                            error_messages={"required": REQUIRED, "type": REQUIRED})

    @validates_schema
    def _tax_id(self, data: dict, **_kw) -> None:
        country = data["address"]["country"].upper()
        try:
            data["tax_id"] = validate_tax_id(country, data["tax_id"])
        except ValidationError as exc:
            raise ValidationError(exc.messages, field_name="tax_id") from None


def _account_number(value: str) -> None:
    digits = re.sub(r"[\s\-]", "", value)
    if not re.fullmatch(r"[0-9]{15}", digits):
        raise ValidationError(N_("An account number has 15 digits."))
    if not luhn.is_valid(digits):
        raise ValidationError(N_("This account number is not valid: check the digits."))


def _pin(value: str) -> None:
    problems = pin_problems(value)
    if problems:
        raise ValidationError([PIN_MESSAGES[p] for p in problems])


def _word(value: str) -> None:
    if not 4 <= len(normalize_word(value)) <= 64:
        raise ValidationError(N_("The Verification Word must be 4 to 64 characters."))


class EnrollmentSchema(Schema):
    """The JSON contract of ``POST /v1/enrollments`` (and the enrollment form)."""

    class Meta:
        unknown = RAISE

    given_name = _text(120)
    family_name = _text(120)
    email = fields.String(required=True, error_messages={"required": REQUIRED,
                                                         "invalid": NOT_TEXT})
    phone = fields.String(required=True, error_messages={"required": REQUIRED,
                                                         "invalid": NOT_TEXT})
    job_title = _text(120)
    preferred_language = fields.String(load_default="en", error_messages={"invalid": NOT_TEXT})
    company = fields.Nested(CompanySchema, required=True,
                            error_messages={"required": REQUIRED, "type": REQUIRED})
    account_numbers = fields.List(
        fields.String(validate=_account_number, error_messages={"invalid": NOT_TEXT}),
        required=True, error_messages={"required": REQUIRED, "invalid": REQUIRED})
    pin = fields.String(required=True, validate=_pin,
                        error_messages={"required": REQUIRED, "invalid": NOT_TEXT})
    verification_word = fields.String(required=True, validate=_word,
                                      error_messages={"required": REQUIRED, "invalid": NOT_TEXT})

    @validates("email")
    def _email(self, value: str, **_kw) -> None:
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError:
            raise ValidationError(N_("Enter a valid email address.")) from None

    @validates("preferred_language")
    def _language(self, value: str, **_kw) -> None:
        if value not in ("en", "es"):
            raise ValidationError(N_("Choose English (en) or Spanish (es)."))

    @validates("account_numbers")
    def _accounts(self, value: list, **_kw) -> None:
        if not value:
            raise ValidationError(N_("Enter at least one account number."))
        if len(value) > MAX_ACCOUNTS:
            raise ValidationError(N_("Enter at most 20 account numbers."))
        seen: set[str] = set()
        for index, number in enumerate(value):
            digits = re.sub(r"[\s\-]", "", number)
            if digits in seen:
                raise ValidationError({index: [N_("This account number is listed twice.")]})
            seen.add(digits)

    @validates_schema(skip_on_field_errors=False)
    def _phone(self, data: dict, **_kw) -> None:
        raw = data.get("phone")
        if raw is None:
            return
        country = ((data.get("company") or {}).get("address") or {}).get("country")
        try:
            number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else country)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValidationError(N_("Enter a valid phone number, e.g. +1 202 555 0143."),
                                  field_name="phone")

    @post_load
    def _normalise(self, data: dict, **_kw) -> dict:
        email = validate_email(data["email"], check_deliverability=False)
        data["email"] = email.normalized
        country = data["company"]["address"]["country"]
        raw = data["phone"]
        number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else country)
        data["phone"] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        data["account_numbers"] = [re.sub(r"[\s\-]", "", n) for n in data["account_numbers"]]
        for name in ("given_name", "family_name", "job_title"):
            data[name] = data[name].strip()
        data["company"]["name"] = data["company"]["name"].strip()
        return data


class EnrollmentCreatedSchema(Schema):
    enrollment_id = fields.String(required=True)
    tracking_number = fields.String(required=True)
    status = fields.String(required=True)


class VerifySchema(Schema):
    token = fields.String(required=True, validate=lambda v: 0 < len(v) <= 100,
                          error_messages={"required": REQUIRED, "invalid": NOT_TEXT})


class ActivationSchema(Schema):
    """Access Code + PIN + Word: no format hints, the answer never says which is wrong."""

    class Meta:
        unknown = EXCLUDE

    access_code = fields.String(required=True, validate=lambda v: 0 < len(v) <= 64,
                                error_messages={"required": REQUIRED, "invalid": NOT_TEXT})
    pin = fields.String(required=True, validate=lambda v: 0 < len(v) <= 64,
                        error_messages={"required": REQUIRED, "invalid": NOT_TEXT})
    verification_word = fields.String(required=True, validate=lambda v: 0 < len(v) <= 200,
                                      error_messages={"required": REQUIRED, "invalid": NOT_TEXT})


class SecurityQuestionSchema(Schema):
    question = fields.String(required=True, error_messages={"required": REQUIRED,
                                                            "invalid": NOT_TEXT})
    answer = fields.String(required=True, error_messages={"required": REQUIRED,
                                                          "invalid": NOT_TEXT})

    @validates("question")
    def _question(self, value: str, **_kw) -> None:
        if value not in QUESTIONS:
            raise ValidationError(N_("Choose a question from the list."))

    @validates("answer")
    def _answer(self, value: str, **_kw) -> None:
        if not 2 <= len(normalize_word(value)) <= 100:
            raise ValidationError(N_("Answers must be 2 to 100 characters."))


class CredentialsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    activation_token = fields.String(load_default=None)
    username = fields.String(required=True, error_messages={"required": REQUIRED,
                                                            "invalid": NOT_TEXT})
    password = fields.String(required=True, validate=lambda v: len(v) <= 1024,
                             error_messages={"required": REQUIRED, "invalid": NOT_TEXT})
    password_confirm = fields.String(required=True, error_messages={"required": REQUIRED,
                                                                    "invalid": NOT_TEXT})
    security_questions = fields.List(fields.Nested(SecurityQuestionSchema), required=True,
                                     error_messages={"required": REQUIRED})

    @validates("username")
    def _username(self, value: str, **_kw) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]{3,64}", value.strip()):
            raise ValidationError(N_("Use 3 to 64 letters, digits, dots, dashes or underscores."))

    @validates("security_questions")
    def _three(self, value: list, **_kw) -> None:
        if len(value) != 3:
            raise ValidationError(N_("Choose three questions and answer each."))
        chosen = [item.get("question") for item in value if isinstance(item, dict)]
        if len(set(chosen)) != 3:
            raise ValidationError(N_("Choose three different questions."))

    @validates_schema
    def _confirm(self, data: dict, **_kw) -> None:
        if data["password"] != data["password_confirm"]:
            raise ValidationError(N_("The passwords do not match."), field_name="password_confirm")


class ActivatedSchema(Schema):
    user_id = fields.String(required=True)
    username = fields.String(required=True)
    tracking_number = fields.String(required=True)


class EnrollmentViewSchema(Schema):
    """What the help desk sees of an enrollment (no secret, no full account number)."""

    id = fields.String()
    tracking_number = fields.String()
    status = fields.Function(lambda e: str(e.status.value))
    given_name = fields.String()
    family_name = fields.String()
    email = fields.String()
    company_id = fields.String()
    company_name = fields.String()
    preferred_language = fields.String()
    failed_attempts = fields.Integer()
    accounts = fields.Function(lambda e: [a.last5 for a in e.accounts])
    created_at = fields.DateTime()
    verified_at = fields.DateTime(allow_none=True)
    activated_at = fields.DateTime(allow_none=True)
    user_id = fields.String(allow_none=True)


def translated_errors(messages) -> dict[str, list[str]]:
    """marshmallow messages → ``{"company.tax_id": [translated, ...]}``."""
    return {name: [_(m) for m in msgs] for name, msgs in flatten_errors(messages).items()}


class ActivationTicketSchema(Schema):
    activation_token = fields.String(required=True)
    expires_in = fields.Integer(required=True)


class QuestionTextSchema(Schema):
    key = fields.String(required=True)
    text = fields.String(required=True)


class SecurityQuestionsSchema(Schema):
    items = fields.List(fields.Nested(QuestionTextSchema), required=True,
                        metadata={"description": "key and localised text"})


class IsoDateTime(fields.Field):
    """An ISO 8601 date-time (``datetime.fromisoformat``); empty reads as none."""

    default_error_messages = {"invalid": "Use an ISO 8601 date-time."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime | None:
        if not value:
            return None
        try:
            return datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise self.make_error("invalid") from None


class WholeNumber(fields.Field):
    """A non-negative integer written in ASCII digits (:func:`whole_number`)."""

    default_error_messages = {"invalid": "Use a whole number."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        number = whole_number(value) if isinstance(value, str) else None
        if number is None:
            raise self.make_error("invalid")
        return number


class AuditQuerySchema(Schema):
    """The audit log's filters; newest first, ``before_id`` pages on."""

    subject_id = fields.String(load_default=None)
    tracking_number = fields.String(load_default=None)
    action = fields.String(load_default=None)
    actor_id = fields.String(load_default=None)
    since = IsoDateTime(load_default=None, metadata={"type": "string"})
    until = IsoDateTime(load_default=None, metadata={"type": "string"})
    before_id = WholeNumber(load_default=None, metadata={"type": "integer"})
    limit = WholeNumber(load_default=50, metadata={"type": "integer"})


class AuditPageSchema(Schema):
    items = fields.List(fields.Dict(), required=True)
    next_before_id = fields.Integer(allow_none=True)
