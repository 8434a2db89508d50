"""Mint access tokens the way identity does, and serve their JWKS at the HTTP boundary.

Other services' tests use the ``token_issuer`` fixture: it serves a JWKS at the
configured ``JWKS_URL`` through requests-mock (the HTTP boundary between services)
and signs tokens with ES256 or RS256.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

DEFAULT_ISSUER = "http://127.0.0.1:8001"
DEFAULT_JWKS_URL = DEFAULT_ISSUER + "/jwks"


class TokenIssuer:
    def __init__(self, issuer: str = DEFAULT_ISSUER) -> None:
        self.issuer = issuer
        self.es256 = ECKey.generate_key("P-256", parameters={"kid": f"es-{uuid.uuid4().hex[:8]}",
                                                              "alg": "ES256", "use": "sig"})
        self.rs256 = RSAKey.generate_key(2048, parameters={"kid": f"rs-{uuid.uuid4().hex[:8]}",
                                                           "alg": "RS256", "use": "sig"})

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.es256, self.rs256]).as_dict(private=False)

    def rotate(self) -> None:
        """Replace the ES256 key (new kid): the JWKS changes, old tokens no longer verify."""
        self.es256 = ECKey.generate_key("P-256", parameters={"kid": f"es-{uuid.uuid4().hex[:8]}",
                                                              "alg": "ES256", "use": "sig"})

    def issue(self, sub: str = "user-1", aud: str | list[str] = "identity", scope: str = "",
              *, alg: str = "ES256", lifetime: int = 600, typ: str = "at+jwt",
              **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "sub": sub, "aud": aud, "scope": scope,
                "client_id": claims.pop("client_id", "test-client"), "iat": now,
                "nbf": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
        body.update(claims)
        signing_key = self.es256 if alg == "ES256" else self.rs256
        header = {"alg": alg, "kid": signing_key.kid, "typ": typ}
        return jwt.encode(header, body, signing_key)
