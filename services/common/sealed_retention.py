"""Stream entries that carried sealed secrets (an access code, a reset link) are deleted
once every consumer group that reads the stream has acknowledged them.

The set of groups that must have seen an entry comes from
:data:`services.common.streams.SUBSCRIPTIONS`, not from the groups that happen to
exist, so an entry is never deleted before a group that has not been created yet
(a service whose worker has not started) could read it. Whichever group acknowledges
last deletes the entry. Two groups acknowledging at the same instant may each still
see the other pending and both keep it: the entry then stays (encrypted) until the
stream's MAXLEN trims it. That is the known gap, not a loss.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import redis

from .streams import as_text

log = logging.getLogger("portico.events")


def _id_tuple(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)




def fully_acknowledged(client: redis.Redis, stream: str, entry_id: str,
                       readers: Iterable[str]) -> bool:
    """True when every group in ``readers`` exists, has been delivered ``entry_id`` and
    holds it in no pending list."""
    groups = {as_text(info["name"]): info for info in client.xinfo_groups(stream)}
    for name in readers:
        info = groups.get(name)
        if info is None:
            return False
        if _id_tuple(entry_id) > _id_tuple(as_text(info["last-delivered-id"])):
            return False
        if client.xpending_range(stream, name, min=entry_id, max=entry_id, count=1):
            return False
    return True


def purge_sealed(client: redis.Redis, sealed_entries: Iterable[tuple[str, str]],
                 readers: Mapping[str, frozenset[str]]) -> int:
    """Delete each ``(stream, entry_id)`` every reader group has acknowledged; the count."""
    deleted = 0
    for stream, entry_id in sealed_entries:
        stream_readers = readers.get(stream)
        if not stream_readers:
            continue
        try:
            if fully_acknowledged(client, stream, entry_id, stream_readers):
                deleted += int(client.xdel(stream, entry_id))
        except redis.RedisError as exc:
            # Retention is best effort; the entry stays until MAXLEN trims it.
            log.warning("sealed entry not purged", extra={"stream": stream, "entry_id": entry_id,
                                                          "error": type(exc).__name__})
    return deleted


def readers_by_stream(subscriptions: Mapping[str, Iterable[str]],
                      namespace: str) -> dict[str, frozenset[str]]:
    """``{events stream: groups that read it}`` from ``{group: services it reads}``."""
    from .streams import events_stream

    readers: dict[str, set[str]] = {}
    for group, sources in subscriptions.items():
        for source in sources:
            readers.setdefault(events_stream(source, namespace), set()).add(group)
    return {stream: frozenset(groups) for stream, groups in readers.items()}
