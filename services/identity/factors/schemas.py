"""Marshmallow schemas of the help desk's factor endpoints: nothing secret is a field."""

from __future__ import annotations

from marshmallow import Schema, fields


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
