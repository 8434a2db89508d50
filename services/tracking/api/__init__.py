"""The tracking HTTP API (flask-smorest): parse → service function → render."""

from __future__ import annotations

from typing import Any

from flask_smorest import Api, Blueprint
from marshmallow import Schema
from webargs.flaskparser import FlaskParser

from services.common.errors import validation_problem


class ProblemParser(FlaskParser):
    """webargs errors become the kernel's problem+json 422 with per-field messages."""

    def handle_error(self, error: Any, req: Any, schema: Any, *, error_status_code: Any,
                     error_headers: Any) -> Any:
        messages = error.messages
        # webargs nests messages under their location ("json", "query"); fields are unique.
        if isinstance(messages, dict) and len(messages) == 1:
            (location, inner), = messages.items()
            if location in self.__location_map__:
                messages = inner
        raise validation_problem(messages)


_QUERY_PARSER = ProblemParser()


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = ProblemParser()


class ProblemApi(Api):
    """flask-smorest's Api without its JSON error handler: the kernel's problem+json stays."""

    def _register_error_handlers(self) -> None:
        return None


def parse_query(schema: Schema) -> dict[str, Any]:
    """The query string loaded with ``schema`` as ``blp.arguments(location="query")``
    would (webargs' multi-value handling, unknown keys ignored, same 422 problem)."""
    return _QUERY_PARSER.parse(schema, location="query")
