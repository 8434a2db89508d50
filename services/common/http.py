"""The service-to-service HTTP client.

Timeouts are always set; only idempotent methods are retried (with backoff);
requests carry a bearer token obtained with OAuth2 client_credentials and cached
until shortly before it expires.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class TokenSource(Protocol):
    """Where a bearer token for another service comes from."""

    def token(self) -> str: ...

    def invalidate(self) -> None: ...


class ClientCredentials:
    """A client_credentials token for one audience, renewed ``renew_before`` seconds early."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, audience: str,
                 scope: str = "", *, timeout: float = 5, renew_before: float = 30,
                 session: requests.Session | None = None) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.audience = audience
        self.scope = scope
        self.timeout = timeout
        self.renew_before = renew_before
        self._http = session or requests.Session()
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at - self.renew_before:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        data = {"grant_type": "client_credentials", "resource": self.audience}
        if self.scope:
            data["scope"] = self.scope
        response = self._http.post(self.token_url, data=data, timeout=self.timeout,
                                   auth=(self.client_id, self.client_secret))
        response.raise_for_status()
        body = response.json()
        self._token = body["access_token"]
        self._expires_at = time.monotonic() + float(body.get("expires_in", 300))


class ServiceClient:
    """JSON over HTTP to another Portico service."""

    def __init__(self, base_url: str, credentials: TokenSource | None = None, *,
                 timeout: float = 3, retries: int = 2, backoff: float = 0.2) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=backoff, status_forcelist=(502, 503, 504),
                      allowed_methods=IDEMPOTENT, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        headers = dict(kwargs.pop("headers", None) or {})
        if self.credentials is not None:
            headers["Authorization"] = f"Bearer {self.credentials.token()}"
        response = self.session.request(method, self.base_url + path, headers=headers, **kwargs)
        if response.status_code == 401 and self.credentials is not None:
            # The cached token may have been revoked or the keys rotated: one fresh try.
            self.credentials.invalidate()
            headers["Authorization"] = f"Bearer {self.credentials.token()}"
            response = self.session.request(method, self.base_url + path, headers=headers, **kwargs)
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        response.raise_for_status()
        return response.json()

    def post_json(self, path: str, payload: Any, **kwargs: Any) -> Any:
        response = self.request("POST", path, json=payload, **kwargs)
        response.raise_for_status()
        return response.json()
