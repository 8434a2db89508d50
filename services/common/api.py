"""The API kernel of the services built on flask-smorest (permissions, tracking, notifier).

Every error stays the kernel's application/problem+json (installed by
:func:`services.common.app.create_service_app`): flask-smorest's own error handler is
not registered, and webargs' argument errors become the kernel's 422 problem with
per-field messages, named without webargs' location prefix (``"limit"``, not
``"query.limit"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import flask_smorest
from flask import Flask
from marshmallow import Schema, ValidationError
from webargs.flaskparser import FlaskParser


class ProblemParser(FlaskParser):
    """Raise marshmallow's ValidationError (→ the kernel's 422 problem) as the schema
    gave it, before webargs nests the messages under their location."""

    def _on_validation_error(self, error: ValidationError, req: Any, schema: Any,
                             location: str, *, error_status_code: Any,
                             error_headers: Any) -> NoReturn:
        raise error


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ProblemParser()


class ProblemApi(flask_smorest.Api):
    """flask-smorest without its own HTTPException handler: the kernel's problem+json
    handlers keep answering every error."""

    def _register_error_handlers(self) -> None:
        return None


def init_api(app: Flask, *, title: str, version: str, description: str | None = None,
             blueprints: tuple[flask_smorest.Blueprint, ...] = ()) -> ProblemApi:
    """The service's API documented at ``/openapi.json`` (OpenAPI 3.0.3) with a bearer
    token security scheme, ``blueprints`` registered."""
    app.config.update(API_TITLE=title, API_VERSION=version, OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json")
    spec_kwargs = {"info": {"description": description}} if description else None
    api = ProblemApi(app, spec_kwargs=spec_kwargs)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    return api


_QUERY_PARSER = ProblemParser()


def parse_query(schema: Schema) -> dict[str, Any]:
    """The query string loaded with ``schema`` as ``blp.arguments(location="query")``
    would (webargs' multi-value handling, unknown keys ignored, same 422 problem)."""
    return _QUERY_PARSER.parse(schema, location="query")


def documented(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Record the OpenAPI documentation of flask-smorest's ``blp.arguments`` /
    ``blp.response`` / ``blp.doc`` decorators on a view without their per-request
    wrappers: the view parses its input and renders its body itself (hot endpoints),
    and /openapi.json stays exactly what the decorators describe."""

    def graft(view: Any) -> Any:
        stand_in = view
        for decorator in reversed(decorators):
            stand_in = decorator(stand_in)
        view._apidoc = stand_in._apidoc
        return view

    return graft
