"""Helpers of the OpenID Connect tests: a relying party's client and user, and a
browser driven through authorize, login and consent. The ``idp`` fixture is in
tests/integration/fixtures/oidc.py."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from requests.structures import CaseInsensitiveDict

from services.identity import clients
from services.identity.schemas import ClientSchema
from services.identity.service import NewUser, create_user

ISSUER = "http://127.0.0.1:8001"
REDIRECT = "https://rp.example.com/callback"
PASSWORD = "correct horse battery staple"
VERIFIER = "v" * 20 + "erifier-" + "x" * 30


class FlaskAdapter(requests.adapters.BaseAdapter):
    """A requests transport that answers from the Flask app in-process."""

    def __init__(self, app) -> None:
        super().__init__()
        self.client = app.test_client()

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        answer = self.client.open(url.path, query_string=url.query, method=request.method,
                                  headers=dict(request.headers), data=request.body)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.data
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


def add_user(app, username="alice", company_id="acme"):
    with app.extensions["portico"].db.transaction() as session:
        user = create_user(session, NewUser(username=username, password=PASSWORD,
                                            email=f"{username}@example.com", given_name="Alice",
                                            family_name="Liddell", company_id=company_id))
        return user.id


def add_client(app, client_id=None, **fields):
    spec = {"name": "Relying party", "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": ["https://rp.example.com/bye"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email offline_access", "first_party": True}
    spec.update(fields)
    ctx = app.extensions["portico"]
    with ctx.db.transaction() as session:
        client, secret = clients.create_client(session, ctx.settings.client_secret_pepper,
                                               ClientSchema().load(spec), client_id)
        return client.client_id, secret


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(browser, next_url: str, username="alice", password=PASSWORD):
    page = browser.get("/login?" + urlencode({"next": next_url}))
    return browser.post("/login", data={"username": username, "password": password,
                                        "csrf_token": csrf_of(page.get_data(as_text=True)),
                                        "next": next_url})


def authorize(browser, params: dict, consent: str | None = "allow"):
    """Drive the browser through authorize → login → (consent) and return the final answer."""
    path = "/authorize?" + urlencode(params, doseq=True)
    answer = browser.get(path)
    if answer.status_code == 302 and answer.headers["Location"].startswith("/login"):
        done = login(browser, path)
        assert done.status_code == 303
        answer = browser.get(done.headers["Location"])
    if answer.status_code == 200 and 'name="consent"' in answer.get_data(as_text=True):
        html = answer.get_data(as_text=True)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
        fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
        fields["consent"] = consent
        answer = browser.post("/authorize", data=fields)
    return answer


def code_from(answer) -> str:
    assert answer.status_code == 302, answer.get_data(as_text=True)
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert "code" in query, query
    return query["code"][0]


def code_params(client_id, **extra):
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
              "scope": "openid profile email offline_access", "state": "st-1", "nonce": uuid.uuid4().hex,
              "code_challenge": create_s256_code_challenge(VERIFIER),
              "code_challenge_method": "S256"}
    params.update(extra)
    return params


def exchange(app, client_id, secret, code, verifier=VERIFIER):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    auth = None
    if secret:
        auth = (client_id, secret)
    else:
        data["client_id"] = client_id
    import base64

    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode()
    return app.test_client().post("/token", data=data, headers=headers)


def id_token_claims(app, client_id, secret, answer) -> dict:
    """The claims of the ID token the code in ``answer`` (authorize's redirect) brings,
    checked against the published JWKS."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    token = exchange(app, client_id, secret, code_from(answer)).get_json()
    jwks = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    return jwt.decode(token["id_token"], jwks).claims


def basic(client_id, secret):
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}
