"""marshmallow schemas of every input and output of the tracking API."""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate

from services.common import tracking_numbers

from ..domain import STATUS_VALUES

LANGUAGES = ("en", "es")
NOT_A_TRACKING_NUMBER = "not a valid tracking number"


def _valid_tracking_number(value: str) -> None:
    if not tracking_numbers.is_valid(value):
        raise ValidationError(NOT_A_TRACKING_NUMBER)


class TransactionCreateSchema(Schema):
    type = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z][a-z0-9_.-]{1,63}$", error="Use 2-64 lower-case letters, digits, _ . or -."))
    owner_user_id = fields.String(required=True, validate=validate.Length(1, 64))
    company_id = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(1, 64))
    title_en = fields.String(required=True, validate=validate.Length(1, 200))
    title_es = fields.String(required=True, validate=validate.Length(1, 200))
    status = fields.String(load_default="submitted", validate=validate.OneOf(STATUS_VALUES))
    tracking_number = fields.String(load_default=None, allow_none=True,
                                    validate=_valid_tracking_number)
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=1000))


class StatusChangeSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUS_VALUES))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=1000))


class LanguageArgsSchema(Schema):
    lang = fields.String(load_default=None, validate=validate.OneOf(LANGUAGES))


class OverviewArgsSchema(LanguageArgsSchema):
    scope = fields.String(load_default="mine", validate=validate.OneOf(("mine", "company")))
    status = fields.List(fields.String(validate=validate.OneOf(STATUS_VALUES)), load_default=list)
    type = fields.List(fields.String(validate=validate.Length(1, 64)), load_default=list)
    created_from = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    created_to = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    q = fields.String(load_default=None, validate=validate.Length(1, 100))
    sort = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))
    cursor = fields.String(load_default=None, validate=validate.Length(1, 400))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class HistoryEntrySchema(Schema):
    status = fields.String()
    at = fields.DateTime()
    actor = fields.String(allow_none=True)
    comment = fields.String(allow_none=True)
    applied = fields.Boolean(metadata={
        "description": "false: kept in the history but did not move the status "
                       "(arrived out of order or not allowed from the status then)"})


class TransactionSummarySchema(Schema):
    tracking_number = fields.String()
    type = fields.String()
    status = fields.String(metadata={"enum": list(STATUS_VALUES)})
    title = fields.String(metadata={"description": "in the caller's language"})
    owner_user_id = fields.String(allow_none=True)
    company_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class TransactionSchema(TransactionSummarySchema):
    title_en = fields.String()
    title_es = fields.String()
    correlation_id = fields.String(allow_none=True)
    source = fields.String()
    last_event_at = fields.DateTime()
    history = fields.List(fields.Nested(HistoryEntrySchema))


class OverviewSchema(Schema):
    items = fields.List(fields.Nested(TransactionSummarySchema))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "pass as ?cursor= for the next page; null on the last page"})
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "rows per status under every filter except status"})
