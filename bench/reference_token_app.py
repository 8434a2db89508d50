"""The issue's second yardstick, "a bare authlib + Flask token endpoint" (~1,075 ES256
tokens per server-CPU-second where the targets were set, against ~1,800 for bare Flask):
authlib's Flask authorization server with only the client_credentials grant, one
confidential client held in memory (``client_secret_basic``, compared in constant time),
and ES256 JWT access tokens signed with joserfc. No kernel, no database, no Redis, no
logging. Benchmarked beside identity under the same gunicorn settings and load, so the
table can say how close the real endpoint comes to what authlib and Flask alone cost.
"""

from __future__ import annotations

import hmac
import time
import uuid

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from flask import Flask, jsonify
from joserfc import jwt
from joserfc.jwk import ECKey

CLIENT_ID = "reference-client"
CLIENT_SECRET = "reference-secret-" + "x" * 32
ISSUER = "http://127.0.0.1"
KEY = ECKey.generate_key("P-256", parameters={"kid": "reference"}, private=True)


class Client(ClientMixin):
    def get_client_id(self) -> str:
        return CLIENT_ID

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret, CLIENT_SECRET)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


CLIENT = Client()


def generate_token(grant_type, client, user=None, scope=None, expires_in=None,
                   include_refresh_token=True) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": client.get_client_id(), "aud": "tracking",
              "client_id": client.get_client_id(), "scope": scope or "", "iat": now,
              "exp": now + 300, "jti": uuid.uuid4().hex}
    token = jwt.encode({"alg": "ES256", "kid": "reference", "typ": "at+jwt"}, claims, KEY)
    return {"token_type": "Bearer", "access_token": token, "expires_in": 300}


app = Flask(__name__)
server = AuthorizationServer(app, query_client=lambda cid: CLIENT if cid == CLIENT_ID else None,
                             save_token=lambda token, request: None)
server.register_grant(grants.ClientCredentialsGrant)
server.register_token_generator("default", generate_token)


@app.post("/token")
def token():
    return server.create_token_response()


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


if __name__ == "__main__":  # a quick self-check: one token
    with app.test_client() as c:
        import base64

        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        answer = c.post("/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": "Basic " + basic})
        print(answer.status_code, answer.json)
