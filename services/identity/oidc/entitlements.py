"""The ``entitlements`` claim: asked of the permissions service over HTTP, cached briefly.

Identity is the token issuer, so the service token it presents to permissions is minted
locally (client_credentials semantics, audience ``permissions``) rather than fetched.
On any failure the claim is left out, a warning is logged without secrets, and
``portico_identity_entitlements_failures_total`` is counted.
"""

from __future__ import annotations

import contextlib
import json
import logging

import redis
import requests
from prometheus_client import CollectorRegistry, Counter

from services.common.http import ServiceClient
from services.common.streams import key

from .tokens import mint_access_token

log = logging.getLogger("portico.identity.entitlements")

CACHE_SECONDS = 30


class EntitlementsSource:
    def __init__(self, provider, registry: CollectorRegistry) -> None:
        self.provider = provider
        # One pooled connection to permissions instead of a new one per token; no retries:
        # a failure costs one attempt on the token path and the claim is omitted.
        self.permissions = ServiceClient(provider.settings.permissions_url,
                                         timeout=provider.settings.entitlements_timeout,
                                         retries=0)
        self.failures = Counter("portico_identity_entitlements_failures",
                                "Entitlement look-ups that failed (claim omitted)",
                                ["reason"], registry=registry)

    def service_token(self) -> str:
        """A short-lived token for permissions, signed here (identity is the issuer)."""
        settings = self.provider.settings
        return mint_access_token(self.provider.keyring, issuer=settings.issuer, sub="identity",
                                 client_id="identity", aud="permissions",
                                 scope=settings.permissions_scope, ttl=60).value

    def for_user(self, user_id: str) -> list[str] | None:
        """The user's entitlement keys, or None when they cannot be known right now."""
        provider = self.provider
        cache_key = key(provider.namespace, "entitlements", user_id)
        try:
            cached = provider.redis.get(cache_key)
        except redis.RedisError:
            cached = None
        if cached is not None:
            return json.loads(cached)
        try:
            response = self.permissions.request(
                "GET", f"/v1/users/{user_id}/entitlements",
                headers={"Authorization": f"Bearer {self.service_token()}",
                         "Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
            items = body.get("entitlements", body) if isinstance(body, dict) else body
            values = sorted({item["key"] if isinstance(item, dict) else str(item)
                             for item in items})
        except requests.RequestException as exc:
            self._fail("http", type(exc).__name__)
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._fail("payload", type(exc).__name__)
            return None
        with contextlib.suppress(redis.RedisError):
            provider.redis.set(cache_key, json.dumps(values), ex=CACHE_SECONDS)
        return values

    def _fail(self, reason: str, error: str) -> None:
        self.failures.labels(reason).inc()
        log.warning("entitlements unavailable; claim omitted",
                    extra={"reason": reason, "error": error})
