"""OpenAPI helpers shared by the services that use flask-smorest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


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
