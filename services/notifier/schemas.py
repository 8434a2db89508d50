"""Marshmallow schemas of the admin API (inputs and outputs)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_dump, validate

from .models import MessageStatus


class MessageQuerySchema(Schema):
    status = fields.Enum(MessageStatus, by_value=True, load_default=None,
                         metadata={"description": "only messages in this status"})
    template = fields.Str(load_default=None, validate=validate.Length(max=60))
    recipient = fields.Str(load_default=None, validate=validate.Length(max=320))
    tracking_number = fields.Str(load_default=None, validate=validate.Length(max=32))
    event_id = fields.Str(load_default=None, validate=validate.Length(max=36))
    cursor = fields.Str(load_default=None, validate=validate.Regexp(r"^[1-9][0-9]{0,17}$"),
                        metadata={"description": "next_cursor of the previous page"})
    limit = fields.Int(load_default=50, validate=validate.Range(min=1, max=200))


class AttemptSchema(Schema):
    number = fields.Int()
    outcome = fields.Str()
    smtp_code = fields.Int(allow_none=True)
    error = fields.Str(allow_none=True)
    at = fields.DateTime()


class MessageSchema(Schema):
    id = fields.Int()
    event_id = fields.Str()
    event_type = fields.Str()
    message_id = fields.Str(metadata={"description": "the Message-ID header, stable across retries"})
    template = fields.Str()
    recipient = fields.Str()
    language = fields.Str()
    status = fields.Enum(MessageStatus, by_value=True)
    attempts = fields.Int()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_error = fields.Str(allow_none=True)
    tracking_number = fields.Str(allow_none=True)
    subject = fields.Str()
    carries_secret = fields.Bool()
    body_purged_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class MessageDetailSchema(MessageSchema):
    """One message. Bodies are shown only for messages that never carried a secret."""

    body_text = fields.Str(allow_none=True)
    body_html = fields.Str(allow_none=True)
    delivery_attempts = fields.List(fields.Nested(AttemptSchema))

    @post_dump(pass_original=True)
    def withhold_secret_bodies(self, data: dict[str, Any], original: Any, **_: Any) -> dict[str, Any]:
        if getattr(original, "carries_secret", True):
            data["body_text"] = None
            data["body_html"] = None
        return data


class MessagePageSchema(Schema):
    items = fields.List(fields.Nested(MessageSchema))
    next_cursor = fields.Str(allow_none=True)


class ResendSchema(Schema):
    reason = fields.Str(load_default="", validate=validate.Length(max=500))


class StatsSchema(Schema):
    total = fields.Int()
    by_status = fields.Dict(keys=fields.Str(), values=fields.Int())
    by_template = fields.Dict(keys=fields.Str(),
                              values=fields.Dict(keys=fields.Str(), values=fields.Int()))
