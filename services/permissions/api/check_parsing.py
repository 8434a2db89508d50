"""Reading check bodies without marshmallow's per-field machinery on the hot path.

The marshmallow schemas (:class:`schemas.Check`, :class:`schemas.CheckBatch`) stay the
contract: they document the body in the OpenAPI document and they produce every error.
:func:`fast_check` only recognises the common, well-formed shape and builds exactly
what ``schemas.Check().load`` would; anything it does not recognise goes to the
schema, which accepts it or answers 422 with per-field messages. (A property test
holds the two to the same answers.)
"""

from __future__ import annotations

from typing import Any

from flask import Request

from . import schemas

CHECK = schemas.Check()
BATCH = schemas.CheckBatch()


def _validator(schema: type, field: str) -> Any:
    return schema._declared_fields[field].validators[0]  # type: ignore[attr-defined]


# The bounds, read once from the schemas themselves.
_SUBJECT_MAX = _validator(schemas.Check, "subject").max
_ACTION_MAX = _validator(schemas.Check, "action").max
_COMPANY_MAX = _validator(schemas.CheckResource, "company_id").max
_LAST5 = _validator(schemas.CheckResource, "account_last5").regex
_FINGERPRINT_MAX = _validator(schemas.CheckResource, "account_fingerprint").max
_BATCH_MAX = _validator(schemas.CheckBatch, "checks").max
_SUBJECT_TOKEN_MAX = _validator(schemas.Check, "subject_token").max


def _short_str(value: Any, longest: int) -> bool:
    return type(value) is str and 0 < len(value) <= longest


def _fast_resource(resource: Any) -> dict[str, str] | None:
    if type(resource) is not dict:
        return None
    for name, value in resource.items():
        if name == "company_id":
            ok = _short_str(value, _COMPANY_MAX)
        elif name == "account_last5":
            ok = type(value) is str and _LAST5.match(value) is not None
        elif name == "account_fingerprint":
            ok = _short_str(value, _FINGERPRINT_MAX)
        else:
            ok = False
        if not ok:
            return None
    return dict(resource)


def fast_check(item: Any) -> dict[str, Any] | None:
    """What ``schemas.Check().load(item)`` returns, or None if the fast path cannot tell."""
    if type(item) is not dict:
        return None
    subject = item.get("subject")
    action = item.get("action")
    if not (_short_str(subject, _SUBJECT_MAX) and _short_str(action, _ACTION_MAX)):
        return None
    resource = item.get("resource")
    if len(item) != 2 + ("resource" in item) + ("subject_token" in item):
        return None  # an unknown field: the schema refuses it
    if resource is not None:
        resource = _fast_resource(resource)
        if resource is None:
            return None
    if "subject_token" not in item:
        return {"subject": subject, "action": action, "resource": resource}
    token = item["subject_token"]
    if not _short_str(token, _SUBJECT_TOKEN_MAX):
        return None
    return {"subject": subject, "action": action, "resource": resource, "subject_token": token}


def _json(request: Request) -> Any:
    """The JSON body; malformed JSON is a 400 (werkzeug's BadRequest → problem+json)."""
    if not request.is_json:
        return {}  # as webargs: no JSON body reads as an empty one (→ 422 for required fields)
    return request.get_json()


def load_check(request: Request) -> dict[str, Any]:
    body = _json(request)
    return fast_check(body) or CHECK.load(body)


def fast_batch(body: Any) -> list[dict[str, Any]] | None:
    """What ``schemas.CheckBatch().load(body)["checks"]`` returns, or None if the fast path
    cannot tell."""
    if type(body) is dict and len(body) == 1 and type(body.get("checks")) is list \
            and 0 < len(body["checks"]) <= _BATCH_MAX:
        checks = [fast_check(item) for item in body["checks"]]
        if None not in checks:
            return checks  # type: ignore[return-value]
    return None


def load_batch(request: Request) -> list[dict[str, Any]]:
    body = _json(request)
    return fast_batch(body) or BATCH.load(body)["checks"]
