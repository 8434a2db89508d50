"""The kernel's Redis client: each thread's commands run on that thread's own
connection, outside the pool, and a broken or finished one does not leak."""

from __future__ import annotations

import gc
import threading

import redis

from services.common.app import make_redis


def _client_id(client: redis.Redis) -> int:
    return int(client.execute_command("CLIENT", "ID"))


def _run_in_thread(work) -> object:
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(work()))
    thread.start()
    thread.join()
    return seen[0]


def test_a_thread_keeps_its_connection_and_another_thread_gets_its_own(redis_url):
    client = make_redis(redis_url)
    mine = _client_id(client)
    assert _client_id(client) == mine
    theirs = _run_in_thread(lambda: _client_id(client))
    assert theirs != mine
    assert _client_id(client) == mine
    assert client.connection_pool._in_use_connections == set()  # nothing checked out


def test_a_finished_threads_connection_is_closed(redis_url, redis_client):
    client = make_redis(redis_url)
    ids = {_run_in_thread(lambda: _client_id(client)) for _ in range(5)}
    gc.collect()
    open_ids = {int(entry["id"]) for entry in redis_client.client_list()}
    assert len(ids) == 5 and not ids & open_ids


def test_a_killed_connection_is_replaced_on_the_next_command(redis_url, redis_client):
    client = make_redis(redis_url)
    client.set("thread-bound-probe", b"1", ex=5)
    killed = _client_id(client)
    redis_client.client_kill_filter(_id=killed)
    assert client.get("thread-bound-probe") == b"1"
    assert _client_id(client) != killed


def test_pipelines_still_use_the_pool(redis_url):
    client = make_redis(redis_url)
    pipe = client.pipeline(transaction=False)
    pipe.set("thread-bound-pipe", b"2", ex=5).get("thread-bound-pipe")
    assert pipe.execute() == [True, b"2"]
    assert len(client.connection_pool._available_connections) == 1


def test_a_forked_child_opens_its_own_connection(redis_url):
    """gunicorn forks workers: a child must never share its parent's socket."""
    import multiprocessing

    client = make_redis(redis_url)
    parent = _client_id(client)
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=lambda: answers.put(_client_id(client)))
    child.start()
    child.join(10)
    assert child.exitcode == 0
    assert answers.get(timeout=5) != parent
    assert _client_id(client) == parent  # the parent's connection is intact
