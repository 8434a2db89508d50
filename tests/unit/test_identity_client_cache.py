"""The per-process client cache: reuse while the Redis version holds, reload when it
changes or the entry is too old, bypass (never trust) when Redis cannot answer."""

from __future__ import annotations

import redis

from services.identity.oidc import client_cache
from services.identity.oidc.client_cache import ClientCache, bump_version


def counting_loader():
    calls: list[str] = []

    def load(client_id: str):
        calls.append(client_id)
        return None if client_id == "unknown" else {"client_id": client_id, "n": len(calls)}

    return load, calls


def test_reuses_until_the_version_changes(redis_client, namespace):
    load, calls = counting_loader()
    cache = ClientCache(redis_client, namespace, load)
    first = cache.get("app")
    assert cache.get("app") is first and calls == ["app"]
    bump_version(redis_client, namespace)
    assert cache.get("app") == {"client_id": "app", "n": 2}
    assert calls == ["app", "app"]


def test_versions_never_repeat_after_redis_loses_its_data(redis_client, namespace):
    load, calls = counting_loader()
    cache = ClientCache(redis_client, namespace, load)
    bump_version(redis_client, namespace)
    cache.get("app")
    redis_client.delete(client_cache.version_key(namespace))  # a flush or a failover
    bump_version(redis_client, namespace)
    cache.get("app")
    assert calls == ["app", "app"]


def test_entries_expire(redis_client, namespace, monkeypatch):
    load, calls = counting_loader()
    cache = ClientCache(redis_client, namespace, load)
    cache.get("app")
    cache.get("unknown")
    monkeypatch.setattr(client_cache, "UNKNOWN_MAX_AGE", 0.0)
    cache.get("app")
    cache.get("unknown")
    assert calls == ["app", "unknown", "unknown"]
    monkeypatch.setattr(client_cache, "MAX_AGE", 0.0)
    cache.get("app")
    assert calls[-1] == "app" and len(calls) == 4


def test_redis_down_bypasses_the_cache():
    load, calls = counting_loader()
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    cache = ClientCache(dead, "ns", load)
    cache.get("app")
    cache.get("app")
    assert calls == ["app", "app"]
