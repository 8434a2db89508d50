"""OAuth/OIDC endpoints: discovery, JWKS, authorize, token, userinfo, revoke, introspect."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oidc.core.errors import (
    RegistrationNotSupportedError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from services.common.app import context
from services.common.fastpath import FastAnswer
from services.common.fields import whole_number
from services.common.streams import as_text, key

from .. import acr, sessions
from ..factors import held, second_step
from ..factors.prompt_pages import authorize_gate
from ..models import User
from ..oidc import acr_request
from ..oidc.grants import AuthenticatedUser
from ..oidc.models import Consent
from ..oidc.server import current_server
from ..oidc.tokens import TokenRejected, decode_own_token, is_token_revoked
from ..pages import OAUTH_ERROR_MESSAGES
from ..ratelimit import token_limits
from .security import hardened, no_store

bp = Blueprint("oauth", __name__)

# Parameters that may legitimately repeat (RFC 8707 resource indicators).
REPEATABLE = frozenset({"resource", "audience"})
RESPONSE_MODES = ["query"]
# OIDC Core §3.1.2.6: what this provider does not support is refused with its own error,
# never ignored (a client that sends a request object expects its values to be the ones
# used, not the query's).
UNSUPPORTED = {
    "request": (RequestNotSupportedError.error, "Request objects are not supported."),
    "request_uri": (RequestURINotSupportedError.error, "request_uri is not supported."),
    "registration": (RegistrationNotSupportedError.error,
                     "Dynamic registration is not supported."),
}
SCOPES = ["openid", "profile", "email", "phone", "offline_access", "entitlements"]
CLAIMS = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
          "at_hash", "name", "given_name", "family_name", "preferred_username", "locale",
          "email", "email_verified", "phone_number", "company_id", "entitlements"]


def duplicated(params) -> list[str]:
    return sorted(name for name in params if name not in REPEATABLE
                  and len(params.getlist(name)) > 1)


def error_page(message: str, status: int = 400, detail: str | None = None):
    """The error page in the person's language: ``message`` is translated (one of
    pages.py's messages); ``detail``, for developers, is shown as given (English)."""
    return hardened(lambda: (render_template("error.html", message=message, detail=detail),
                             status))()


DISCOVERY_CACHE = "public, max-age=3600"
JWKS_CACHE = "public, max-age=300"
JWKS_TYPE = "application/jwk-set+json"


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    response = Response(discovery_json(current_app), mimetype="application/json")
    response.headers["Cache-Control"] = DISCOVERY_CACHE
    return response


def discovery_json(app: Flask) -> bytes:
    """The discovery document, rendered once per process (it depends only on settings)."""
    cached = app.extensions.get("identity.discovery")
    if cached is None:
        cached = json.dumps(_discovery_document(context(app).settings.issuer)).encode()
        app.extensions["identity.discovery"] = cached
    return cached


def _discovery_document(issuer_url: str) -> dict:
    issuer = issuer_url.rstrip("/")
    body = {
        "issuer": issuer_url,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        "end_session_endpoint": issuer + "/logout",
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": RESPONSE_MODES,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic",
                                                       "client_secret_post", "private_key_jwt",
                                                       "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post",
                                                          "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["en", "es"],
        "acr_values_supported": list(acr.LEVELS),
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }
    return body


@bp.get("/jwks")
def jwks() -> Response:
    response = Response(current_server().provider.keyring.jwks_json(), mimetype=JWKS_TYPE)
    response.headers["Cache-Control"] = JWKS_CACHE
    return response


def init_fast_documents(app: Flask) -> None:
    """Discovery and the JWKS below Flask (:mod:`services.common.fastpath`): the same
    bytes and headers as the views, without Flask's per-request machinery. If the keys
    cannot be read, the JWKS view answers (and fails) as it always has."""
    keyring = app.extensions["portico.oidc"].provider.keyring
    routes = context(app).fast_routes
    routes.add("GET", "/.well-known/openid-configuration", lambda request: FastAnswer(
        200, discovery_json(app), headers=(("Cache-Control", DISCOVERY_CACHE),)))
    routes.add("GET", "/jwks", lambda request: FastAnswer(
        200, keyring.jwks_json(), JWKS_TYPE, (("Cache-Control", JWKS_CACHE),)))


def _client_and_redirect(params):
    """The client and validated redirect URI, or an error message for the error page
    (never redirect to an unverified URI)."""
    if "client_id" in duplicated(params) or "redirect_uri" in duplicated(params):
        return None, None, "The request repeats client_id or redirect_uri."
    client = current_server().query_client(params.get("client_id", ""))
    if client is None:
        return None, None, "Unknown client."
    redirect_uri = params.get("redirect_uri") or client.get_default_redirect_uri()
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        return client, None, "The redirect URI is not registered for this client."
    return client, redirect_uri, None


def _redirect_error(redirect_uri: str, error: str, description: str, state: str | None):
    params = {"error": error, "error_description": description}
    if state:
        params["state"] = state
    sep = "&" if "?" in redirect_uri else "?"
    return current_server().to_client(redirect(redirect_uri + sep + urlencode(params), 302))


def _not_accepted(params) -> tuple[str, str] | None:
    """The error and description for a parameter or response mode not supported here, or
    a ``max_age`` that is not a number of seconds (ignoring it would skip the fresh login
    the client asked for)."""
    for name, answer in UNSUPPORTED.items():
        if name in params:
            return answer
    mode = params.get("response_mode")
    if mode is not None and mode not in RESPONSE_MODES:
        return "invalid_request", "Unsupported response_mode; this provider answers in the query."
    if "max_age" in params and whole_number(params["max_age"]) is None:
        return "invalid_request", "max_age must be a whole number of seconds."
    return None


def _consented(user_id: str, client_id: str, scope: str) -> bool:
    wanted = " ".join(sorted(set(scope.split())))
    with context().db.read() as session:
        return session.scalar(select(Consent.id).where(
            Consent.user_id == user_id, Consent.client_id == client_id,
            Consent.scope == wanted)) is not None


def remember_consent(user_id: str, client_id: str, scope: str) -> None:
    if _consented(user_id, client_id, scope):
        return
    with context().db.transaction() as session:
        session.add(Consent(user_id=user_id, client_id=client_id,
                            scope=" ".join(sorted(set(scope.split())))))


def _fresh_login(session: sessions.LoginSession, params) -> bool:
    """True once, right after the user (re-)entered credentials on the way back to this
    very authorization request (the sign-in's ``next``). A sign-in made for anything
    else (the account page, another request) does not answer a ``prompt=login``."""
    ctx = context()
    mark = ctx.redis.getdel(key(ctx.settings.redis_namespace, "fresh-login", session.sid))
    if mark is None:
        return False
    target = urlsplit(as_text(mark))
    return target.path == url_for("oauth.authorize") and sorted(
        parse_qsl(target.query, keep_blank_values=True)) == sorted(params.items(multi=True))


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    params = request.values
    client, redirect_uri, problem = _client_and_redirect(params)
    if problem:
        return error_page(problem)
    state = params.get("state")
    dups = duplicated(params)
    if dups:
        return _redirect_error(redirect_uri, "invalid_request",
                               f"Repeated parameter: {dups[0]}.", state if "state" not in dups else None)
    refused = _not_accepted(params)
    if refused:
        return _redirect_error(redirect_uri, *refused, state)
    prompts = set(params.get("prompt", "").split())
    if "none" in prompts and len(prompts) > 1:
        return _redirect_error(redirect_uri, "invalid_request", "prompt=none cannot be combined.", state)
    login = sessions.load_session()
    consent_decision = request.method == "POST" and params.get("consent") in ("allow", "deny")
    if consent_decision:
        if login is None or not login.authenticated or not sessions.csrf_valid(
                login, request.form.get("csrf_token")):
            return error_page("The form expired. Start again from the application.")
    else:
        need_login = login is None or not login.authenticated
        if not need_login:
            # The fresh-login mark is consumed by the first authorize after the login.
            fresh = _fresh_login(login, params)
            if ("login" in prompts or _max_age_exceeded(params, login)) and not fresh:
                need_login = True
        if need_login:
            if "none" in prompts:
                return _redirect_error(redirect_uri, "login_required", "The user must log in.", state)
            # Nobody is asked for a password for a request that will be refused anyway
            # (a scope, response type or PKCE challenge it may not have): answered now.
            try:
                current_server().get_consent_grant(end_user=None)
            except OAuth2Error as error:
                return _refused(error)
            query = params.to_dict(flat=False)
            return redirect(url_for("login.login", next=url_for("oauth.authorize") + "?" +
                                    urlencode(query, doseq=True)), 302)
    assert login is not None and login.user_id is not None
    with context().db.read() as session:
        user = session.get(User, login.user_id)
        if user is not None:
            session.expunge(user)
    if user is None:
        sessions.end_session_telling_clients(login)
        return error_page("Your session has ended. Start again from the application.")
    step_up = _acr_step(params, client.row.default_acr_values or (), login, redirect_uri,
                        state) or _mfa_policy_step(params, login, redirect_uri, state)
    if step_up is not None:
        return step_up
    end_user = AuthenticatedUser(user=user, auth_time=login.auth_time or int(time.time()),
                                 sid=sessions.public_sid(login.sid), amr=login.amr or ["pwd"])
    server = current_server()
    try:
        grant = server.get_consent_grant(end_user=user)
        grant.request.user = end_user
    except OAuth2Error as error:
        return _refused(error)
    scope = grant.request.scope or ""
    if consent_decision:
        if params.get("consent") != "allow":
            return server.create_authorization_response(grant=grant, grant_user=None)
        remember_consent(user.id, client.get_client_id(), scope)
    elif not client.row.first_party and ("consent" in prompts or not _consented(
            user.id, client.get_client_id(), scope)):
        if "none" in prompts:
            return _redirect_error(redirect_uri, "consent_required", "Consent is required.", state)
        return hardened(lambda: render_template(
            "consent.html", client=client.row, scopes=scope.split(), params=params,
            csrf_token=login.csrf))()
    return server.create_authorization_response(grant=grant, grant_user=end_user)


def _acr_step(params, default_acr_values, login: sessions.LoginSession, redirect_uri: str,
              state: str | None):
    """The answer when the request (or, naming none, the client's ``default_acr_values``)
    asks a level the session has not reached: the second step when the user has a factor
    for it, the OIDC error when the level was essential; None to go on."""
    try:
        asked = acr_request.parse(params, default_acr_values)
    except acr_request.MalformedClaims:
        return _redirect_error(redirect_uri, "invalid_request", "claims must be a JSON object.",
                               state)
    if asked is None:
        return None
    with context().db.read() as session:
        has_factor = second_step.required(session, login.user_id)
        has_passkey = has_factor and held.has_passkey(session, login.user_id)
    needed = acr_request.need(asked, login.amr or ["pwd"], has_factor, has_passkey)
    stepping = needed in (acr_request.Need.SECOND_FACTOR, acr_request.Need.PASSKEY)
    if stepping and "none" in params.get("prompt", "").split():
        return _redirect_error(redirect_uri, "interaction_required",
                               "The requested authentication level needs the user.", state)
    if stepping:
        sessions.await_second_factor(login, login.user_id)
        here = url_for("oauth.authorize") + "?" + urlencode(params.to_dict(flat=False), doseq=True)
        # phr: only a passkey reaches it, so the step offers nothing else.
        only = {"method": "passkey"} if needed is acr_request.Need.PASSKEY else {}
        return redirect(url_for("login.second_factor", next=here, **only), 302)
    if needed is acr_request.Need.UNMET:
        return _redirect_error(redirect_uri, "unmet_authentication_requirements",
                               "The requested authentication level cannot be met.", state)
    return None


def _mfa_policy_step(params, login: sessions.LoginSession, redirect_uri: str,
                     state: str | None):
    """No code while the company's MFA policy wants a factor added or proved: the user
    is sent to the page that asks for it (``interaction_required`` with ``prompt=none``)."""
    # A consent form's POST carries the session's CSRF token: never put it in a URL.
    request_params = {name: values for name, values in params.to_dict(flat=False).items()
                      if name not in ("csrf_token", "consent")}
    here = url_for("oauth.authorize") + "?" + urlencode(request_params, doseq=True)
    page = authorize_gate(login, here)
    if page is None:
        return None
    if "none" in params.get("prompt", "").split():
        return _redirect_error(redirect_uri, "interaction_required",
                               "The company's MFA policy needs the user.", state)
    return redirect(page, 302)


def _refused(error: OAuth2Error):
    """An invalid authorization request's answer: the error sent back to the client when
    authlib verified where to send it, else the error page."""
    if error.redirect_uri:
        server = current_server()
        return server.to_client(server.handle_error_response(grant_request(), error))
    return error_page(OAUTH_ERROR_MESSAGES.get(error.error,
                                               OAUTH_ERROR_MESSAGES["invalid_request"]),
                      detail=error.get_error_description() or error.error)


def grant_request():
    from flask import g

    return g.get("oauth_request")


def _max_age_exceeded(params, login: sessions.LoginSession) -> bool:
    """Whether the session's sign-in is older than the request's ``max_age``; 0 asks for
    a new sign-in whatever its age, as ``prompt=login`` (OIDC Core §3.1.2.1)."""
    max_age = whole_number(params.get("max_age"))  # malformed: refused by _not_accepted
    if max_age is None:
        return False
    return max_age == 0 or (login.auth_time or 0) + max_age < time.time()




def too_many_token_requests(retry_after: int) -> Response:
    response = jsonify(error="too_many_requests", error_description="Too many requests: slow down.")
    response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return no_store(response)


@bp.post("/token")
def token():
    retry_after = token_limits().apply(request.environ)  # per client: once authenticated
    if retry_after is not None:
        return too_many_token_requests(retry_after)
    malformed = _malformed_client_request()
    if malformed:
        return malformed
    return current_server().create_token_response()


@bp.post("/revoke")
def revoke():
    return _malformed_client_request() or no_store(
        current_server().create_endpoint_response("revocation"))


@bp.post("/introspect")
def introspect():
    return _malformed_client_request() or no_store(
        current_server().create_endpoint_response("introspection"))


def _malformed_client_request() -> tuple[Response, int] | None:
    """``invalid_request`` for a client's POST to /token, /revoke or /introspect that
    repeats a parameter, authenticates two ways (RFC 6749 §2.3: one method per request),
    or names one client in the form and another in the Authorization header; else None.
    authlib would take the first value, or the first method that works."""
    form = request.form
    dups = duplicated(form)
    if dups:
        return _invalid_request(f"Repeated parameter: {dups[0]}.")
    header = request.headers.get("Authorization")
    if sum((bool(header), "client_secret" in form, "client_assertion" in form)) > 1:
        return _invalid_request("Authenticate the client one way only.")
    named = form.get("client_id")
    basic = header is not None and header[:6].lower() == "basic "
    if basic and named is not None and extract_basic_authorization(request.headers)[0] != named:
        return _invalid_request("client_id differs from the client in the Authorization header.")
    return None


def _invalid_request(description: str) -> tuple[Response, int]:
    return no_store(jsonify(error="invalid_request", error_description=description)), 400


def _bearer_error(description: str):
    response = jsonify(error="invalid_token", error_description=description)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = (
        f'Bearer error="invalid_token", error_description="{description}"')
    return no_store(response)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        response = _bearer_error("A bearer token is required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="portico"'
        return response
    provider = current_server().provider
    try:
        claims = decode_own_token(provider.keyring, value.strip(), provider.settings.issuer,
                                  access_token=True)
    except TokenRejected:
        return _bearer_error("The access token is not valid.")
    if is_token_revoked(provider.redis, provider.namespace, claims):
        return _bearer_error("The access token has been revoked.")
    scopes = set(str(claims.get("scope", "")).split())
    if "openid" not in scopes:
        response = jsonify(error="insufficient_scope", error_description="openid scope needed")
        response.status_code = 403
        response.headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope", scope="openid"'
        return no_store(response)
    with provider.db.read() as session:
        user = session.get(User, str(claims.get("sub")))
        if user is None:
            return _bearer_error("The access token is not valid.")
        body = user_claims(user, scopes)
    if "entitlements" in scopes:
        values = provider.entitlements.for_user(body["sub"])
        if values is not None:
            body["entitlements"] = values
    return no_store(jsonify(body))


def user_claims(user: User, scopes: set[str]) -> dict:
    body: dict = {"sub": user.id}
    if "profile" in scopes:
        body.update(name=f"{user.given_name} {user.family_name}".strip(),
                    given_name=user.given_name, family_name=user.family_name,
                    preferred_username=user.username, locale=user.preferred_language)
        if user.company_id:
            body["company_id"] = user.company_id
    if "email" in scopes:
        body.update(email=user.email, email_verified=bool(user.email_verified))
    if "phone" in scopes and user.phone_number:
        body.update(phone_number=user.phone_number, phone_number_verified=False)
    return body
