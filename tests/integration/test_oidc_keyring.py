"""The keyring's periodic reload: it notices rotations, keeps the keys it imported, and
never makes the other threads of a worker wait for it."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy.exc
from cryptography.fernet import Fernet

from services.common.db import Database
from services.identity.oidc import keys
from services.identity.oidc.keys import Keyring
from tests.support import free_port


def _keyring(make_app) -> tuple[Keyring, object, Fernet]:
    app = make_app("identity", session_cookie_secure=False)
    ctx = app.extensions["portico"]
    fernet = Fernet(ctx.settings.key_encryption_key)
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, fernet)
    return Keyring(ctx.db, ctx.settings.key_encryption_key, ttl=0), ctx.db, fernet


def test_a_reload_reuses_imported_keys_and_picks_up_a_rotation(make_app):
    keyring, db, fernet = _keyring(make_app)
    es256, rs256 = keyring.signer("ES256"), keyring.signer("RS256")

    # ttl=0: every call reloads from the database; the same keys are not imported again.
    assert keyring.signer("ES256") is es256
    assert keyring.signer("RS256") is rs256

    with db.transaction() as session:
        keys.rotate_keys(session, fernet, activation_delay=0, max_token_lifetime=3600)
    material = keyring.material()
    assert material.signers["ES256"].kid != es256.kid
    assert material.signers["RS256"].kid != rs256.kid
    verifying = {key.kid for key in material.verify_set.keys}
    assert {es256.kid, rs256.kid} < verifying  # retiring keys still verify
    assert len(verifying) == 4


def test_other_threads_sign_with_the_current_keys_while_one_reloads(make_app):
    keyring, _db, _fernet = _keyring(make_app)
    before = keyring.material()
    reloading, release = threading.Event(), threading.Event()
    slow_load = keyring._load

    def load_slowly():
        reloading.set()
        release.wait(10)
        return slow_load()

    keyring._load = load_slowly  # type: ignore[method-assign]
    reloader = threading.Thread(target=keyring.material)
    reloader.start()
    try:
        assert reloading.wait(5)
        answers: list[keys.KeyMaterial] = []
        other = threading.Thread(target=lambda: answers.append(keyring.material()))
        other.start()
        other.join(2)
        assert answers == [before]  # answered at once, with the keys it had
    finally:
        release.set()
        reloader.join(10)
    assert not reloader.is_alive()


def test_a_failed_reload_keeps_the_loaded_keys_and_a_first_load_fails_loudly(make_app):
    keyring, _db, _fernet = _keyring(make_app)
    before = keyring.material()
    unreachable = Database(f"postgresql://portico@127.0.0.1:{free_port()}/portico")
    keyring.db = unreachable
    try:
        assert keyring.material() is before  # ttl=0: it tried, failed and kept them

        cold = Keyring(unreachable, Fernet.generate_key().decode(), ttl=0)
        with pytest.raises(sqlalchemy.exc.OperationalError):
            cold.material()
    finally:
        unreachable.dispose()
