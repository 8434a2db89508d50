"""The API kernel of the services built on flask-smorest (identity, permissions, tracking,
notifier).

Every error stays the kernel's application/problem+json (installed by
:func:`services.common.app.create_service_app`), and the document says so: flask-smorest's
own error handler is not registered, its documented error answers are problem+json, and
webargs' argument errors become the kernel's 422 problem with per-field messages, named
without webargs' location prefix (``"limit"``, not ``"query.limit"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, NoReturn

import flask_smorest
from flask import Flask
from marshmallow import INCLUDE, Schema, ValidationError, fields
from webargs.flaskparser import FlaskParser

from .errors import PROBLEM_JSON

# Headers the kernel sends with these statuses (services/common/app.py, auth.py).
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "integer"}}},
    503: {"Retry-After": {"schema": {"type": "integer"}}},
}


class ProblemSchema(Schema):
    """RFC 9457 problem details: the body of every error of a JSON API (a refusal may add
    members, e.g. the current status of an illegal transition)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "messages by dotted field name"})
    request_id = fields.String()


class ProblemParser(FlaskParser):
    """Raise marshmallow's ValidationError (→ the kernel's 422 problem) as the schema
    gave it, before webargs nests the messages under their location."""

    def _on_validation_error(self, error: ValidationError, req: Any, schema: Any,
                             location: str, *, error_status_code: Any,
                             error_headers: Any) -> NoReturn:
        raise error


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's, parsing with :class:`ProblemParser`. With a ``tag``, its operations
    are documented under that tag (which several blueprints may share, see
    :func:`init_api`) instead of under the blueprint's name."""

    ARGUMENTS_PARSER = ProblemParser()

    def __init__(self, *args: Any, tag: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = tag

    def route(self, rule: str, *, parameters: Any = None, tags: list[str] | None = None,
              **options: Any) -> Callable[[Any], Any]:
        if tags is None and self.tag:
            tags = [self.tag]
        return super().route(rule, parameters=parameters, tags=tags, **options)

    def problems(self, *statuses: int) -> Callable[[Any], Any]:
        """Document that the view may answer each of ``statuses`` with the kernel's
        problem+json (no wrapper is added to the view)."""
        return documented(*(self.alt_response(status, response=HTTPStatus(status).name)
                            for status in statuses))


class ProblemApi(flask_smorest.Api):
    """flask-smorest without its own HTTPException handler: the kernel's problem+json
    handlers keep answering every error, and the document describes them."""

    def _register_error_handlers(self) -> None:
        return None

    def _register_responses(self) -> None:
        """The answer documented for each status (``#/components/responses/NOT_FOUND``…,
        ``DEFAULT_ERROR``): an error is a problem+json body, with its headers."""
        for status in HTTPStatus:
            answer: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                answer["content"] = {PROBLEM_JSON: {"schema": ProblemSchema}}
                if status in ERROR_HEADERS:
                    answer["headers"] = ERROR_HEADERS[status]
            self.spec.components.response(status.name, answer, lazy=True)
        self.spec.components.response("DEFAULT_ERROR", {
            "description": "Default error response",
            "content": {PROBLEM_JSON: {"schema": ProblemSchema}}}, lazy=True)

    def register_blueprint(self, blp: flask_smorest.Blueprint, *, parameters: Any = None,
                           **options: Any) -> None:
        """flask-smorest's; a blueprint with a ``tag`` adds no tag named after itself."""
        if not getattr(blp, "tag", None):
            super().register_blueprint(blp, parameters=parameters, **options)
            return
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        blp.register_views_in_doc(self, self._app, self.spec, name=name, parameters=parameters)


def init_api(app: Flask, *, title: str, version: str, description: str | None = None,
             blueprints: tuple[flask_smorest.Blueprint, ...] = (),
             tags: Sequence[dict[str, str]] = ()) -> ProblemApi:
    """The service's API documented at ``/openapi.json`` (OpenAPI 3.0.3) with a bearer
    token security scheme, ``blueprints`` registered. ``tags`` (``{"name",
    "description"}``) declares the tags that blueprints with a ``tag`` share."""
    app.config.update(API_TITLE=title, API_VERSION=version, OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json")
    spec_kwargs = {"info": {"description": description}} if description else None
    api = ProblemApi(app, spec_kwargs=spec_kwargs)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for tag in tags:
        api.spec.tag(tag)
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
