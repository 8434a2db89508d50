"""Names of every stream and consumer group, in one place (STYLE.md habit 4).

Every Redis key Portico writes starts with the namespace (``REDIS_NAMESPACE``,
default ``portico``) so that tests, and several suites on one Redis, never meet.
"""

from __future__ import annotations

SERVICES = ("identity", "permissions", "tracking", "notifier")


def events_stream(service: str, namespace: str = "portico") -> str:
    """The stream a service publishes its facts to: ``portico.events.<service>``."""
    return f"{namespace}.events.{service}"


def dead_stream(group: str, namespace: str = "portico") -> str:
    """Where a consumer group moves an entry it failed to handle N times."""
    return f"{namespace}.dead.{group}"


def as_text(value: object) -> str:
    """A Redis reply value (bytes with ``decode_responses=False``) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def key(namespace: str, *parts: str) -> str:
    """A namespaced Redis key: ``key("portico", "session", sid)`` → ``portico:session:<sid>``."""
    return ":".join((namespace, *parts))


# Which streams each service's consumer group reads (group name = consuming service).
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "permissions": ("identity",),
    "tracking": ("identity", "permissions", "tracking"),
    "notifier": ("identity", "permissions", "tracking"),
}

# Event types published on purpose with no consumer yet (audit facts); see docs/events.md.
UNCONSUMED: frozenset[str] = frozenset({
    "identity.client.created",
    "identity.company.mfa_policy_changed",
    "identity.helpdesk.action",
    "identity.user.locked",
    "identity.user.unlocked",
    "permissions.grant.created",
    "permissions.grant.revoked",
    "permissions.platform_role.granted",
    "permissions.platform_role.revoked",
})
