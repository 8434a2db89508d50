"""Identity's JSON APIs on the kernel's flask-smorest (services/common/api.py), documented
at ``GET /openapi.json``: enrollment and first login, the account lifecycle (recovery,
profile, help desk), the clients admin API, the passkey ceremonies the pages call
(``views/passkeys.py``), and the OAuth 2.0 / OIDC endpoints (described in :mod:`.oauth`).
The HTML pages are not part of it."""

from __future__ import annotations

from flask import Flask

from services.common.api import ProblemApi
from services.common.api import init_api as init_kernel_api

from .common import TAGS


def init_api(app: Flask) -> ProblemApi:
    from ..enrollment import api as enrollment
    from ..factors import policy_api
    from ..lifecycle import helpdesk_api, profile_api, recovery_api
    from ..views import passkeys
    from . import clients
    from .oauth import document_oauth_paths

    api = init_kernel_api(
        app, title="Portico identity", version="1", description=(
            "Enrollment, account lifecycle, OIDC clients and the OAuth 2.0 / OpenID Connect "
            "provider."), tags=TAGS,
        blueprints=tuple(m.blp for m in (enrollment, recovery_api, profile_api, helpdesk_api,
                                         policy_api, clients, passkeys)))
    document_oauth_paths(api.spec, app.url_map)
    _document_login_session(api)
    return api


def _document_login_session(api: ProblemApi) -> None:
    """The pages' JSON endpoints (passkey ceremonies) are called by the login session."""
    from ..sessions import COOKIE

    api.spec.components.security_scheme("loginSession", {
        "type": "apiKey", "in": "cookie", "name": COOKIE,
        "description": "identity's login session (set by its pages)"})
