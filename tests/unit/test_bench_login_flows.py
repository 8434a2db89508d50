"""The passkey sign-in row's authenticators: each lent to one thread at a time, so that
a passkey's signature counter only grows (the server refuses one that does not)."""

from __future__ import annotations

import threading

import pytest

from bench.login_flows import Authenticators


def _in_threads(authenticators: Authenticators, count: int) -> list[object]:
    taken: list[object] = [None] * count
    gate = threading.Barrier(count)

    def take(i: int) -> None:
        taken[i] = authenticators.mine()
        gate.wait()  # all alive at once, as run_flow's browsers are
        assert authenticators.mine() is taken[i]

    pool = [threading.Thread(target=take, args=(i,)) for i in range(count)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return taken


def test_threads_alive_together_never_share_an_authenticator():
    authenticators = Authenticators("http://localhost:1", ["a", "b", "c"])
    taken = _in_threads(authenticators, 3)
    assert len({id(a) for a in taken}) == 3


def test_a_finished_threads_authenticator_is_lent_again():
    authenticators = Authenticators("http://localhost:1", ["a", "b"])
    first = _in_threads(authenticators, 2)
    assert {id(a) for a in _in_threads(authenticators, 2)} == {id(a) for a in first}


def test_more_threads_than_users_is_refused():
    authenticators = Authenticators("http://localhost:1", ["a"])
    authenticators.mine()  # held by this (living) thread
    refused: list[BaseException] = []

    def take() -> None:
        with pytest.raises(RuntimeError) as caught:
            authenticators.mine()
        refused.append(caught.value)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    assert len(refused) == 1
