"""``iamctl tokens purge``: spent codes, refresh families and access-token records go,
and nothing a replay check still needs does (services/identity/oidc/purge.py)."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select, update

from services.common.events import utcnow
from services.identity.oidc.models import (
    AuthorizationCode,
    BackchannelLogout,
    IssuedAccessToken,
    RefreshToken,
)
from services.identity.oidc.purge import PurgeReport, purge_spent_records
from tests.integration.helpers.oidc import (
    add_client,
    add_user,
    authorize,
    basic,
    code_from,
    code_params,
    exchange,
)

GRACE = timedelta(hours=24)
NOTHING = PurgeReport(access_token_records=0, refresh_tokens=0, authorization_codes=0)


def _counts(app) -> tuple[int, int, int]:
    """Rows of (issued_access_tokens, refresh_tokens, authorization_codes)."""
    with app.extensions["portico"].db.read() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (IssuedAccessToken, RefreshToken, AuthorizationCode))


def _purge(app, after: timedelta, batch_size: int = 1000) -> PurgeReport:
    return purge_spent_records(app.extensions["portico"].db, grace=GRACE,
                               batch_size=batch_size, now=utcnow() + after)


def _signed_in(app, client_id, secret) -> dict:
    code = code_from(authorize(app.test_client(), code_params(client_id)))
    tokens = exchange(app, client_id, secret, code)
    assert tokens.status_code == 200, tokens.json
    return tokens.json


def _refresh(app, client_id, secret, refresh_token):
    return app.test_client().post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic(client_id, secret))


def test_nothing_live_or_within_the_grace_period_is_purged(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    first = _signed_in(idp, client_id, secret)
    assert _refresh(idp, client_id, secret, first["refresh_token"]).status_code == 200
    before = _counts(idp)
    assert before == (2, 2, 1)
    assert _purge(idp, after=timedelta(0)) == NOTHING
    # The access tokens expired (600 s) but are still within the grace period.
    assert _purge(idp, after=GRACE) == NOTHING
    assert _counts(idp) == before


def test_a_live_family_keeps_its_used_tokens_so_a_replay_still_revokes_it(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    first = _signed_in(idp, client_id, secret)
    second = _refresh(idp, client_id, secret, first["refresh_token"]).json
    # The used token expired long ago (as in an old chain); its successor lives 30 days.
    with idp.extensions["portico"].db.transaction() as session:
        session.execute(update(RefreshToken).where(RefreshToken.used_at.is_not(None))
                        .values(expires_at=utcnow() - timedelta(days=3)))
    # Past the access tokens' expiry and the grace period.
    report = _purge(idp, after=GRACE + timedelta(hours=1))
    assert report == PurgeReport(access_token_records=2, refresh_tokens=0,
                                 authorization_codes=0)
    assert _counts(idp) == (0, 2, 1)
    replay = _refresh(idp, client_id, secret, first["refresh_token"])
    assert replay.json["error"] == "invalid_grant"
    assert _refresh(idp, client_id, secret, second["refresh_token"]).json["error"] == \
        "invalid_grant"


def test_a_code_replayed_while_its_family_lives_still_revokes_it(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    tokens = exchange(idp, client_id, secret, code).json
    _purge(idp, after=GRACE + timedelta(hours=1))
    assert _counts(idp)[2] == 1  # the code stays: its refresh token lives
    assert exchange(idp, client_id, secret, code).json["error"] == "invalid_grant"
    assert _refresh(idp, client_id, secret, tokens["refresh_token"]).json["error"] == \
        "invalid_grant"


def test_an_ended_family_goes_whole_with_its_code(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    first = _signed_in(idp, client_id, secret)
    _refresh(idp, client_id, secret, first["refresh_token"])
    # The newest refresh token expires in 30 days; the family ends then.
    assert _purge(idp, after=timedelta(days=30) + GRACE - timedelta(minutes=5)) == \
        PurgeReport(access_token_records=2, refresh_tokens=0, authorization_codes=0)
    assert _purge(idp, after=timedelta(days=30) + GRACE + timedelta(minutes=5)) == \
        PurgeReport(access_token_records=0, refresh_tokens=2, authorization_codes=1)
    assert _counts(idp) == (0, 0, 0)


def test_a_revoked_family_goes_a_grace_period_after_its_revocation(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    first = _signed_in(idp, client_id, secret)
    second = _refresh(idp, client_id, secret, first["refresh_token"]).json
    _refresh(idp, client_id, secret, first["refresh_token"])  # a replay: the family is revoked
    assert _refresh(idp, client_id, secret, second["refresh_token"]).json["error"] == \
        "invalid_grant"
    report = _purge(idp, after=GRACE + timedelta(hours=1))
    assert report == PurgeReport(access_token_records=2, refresh_tokens=2,
                                 authorization_codes=1)


def test_a_code_never_exchanged_goes_once_expired_and_past_the_grace_period(idp):
    add_user(idp)
    client_id, _ = add_client(idp)
    code_from(authorize(idp.test_client(), code_params(client_id)))
    assert _purge(idp, after=GRACE) == NOTHING
    assert _purge(idp, after=GRACE + timedelta(minutes=2)) == \
        PurgeReport(access_token_records=0, refresh_tokens=0, authorization_codes=1)


def test_batches_run_until_the_backlog_is_gone(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    for _ in range(3):
        _signed_in(idp, client_id, secret)
    assert _counts(idp) == (3, 3, 3)
    report = _purge(idp, after=timedelta(days=31) + GRACE, batch_size=2)
    assert report == PurgeReport(access_token_records=3, refresh_tokens=3,
                                 authorization_codes=3)
    assert _counts(idp) == (0, 0, 0)


def test_iamctl_tokens_purge_prints_the_counts(idp, redis_url, namespace):
    from services.cli import main

    add_user(idp)
    client_id, _ = add_client(idp)
    code_from(authorize(idp.test_client(), code_params(client_id)))
    with idp.extensions["portico"].db.transaction() as session:  # expired two hours ago
        session.execute(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(hours=2)))
    env = {"DATABASE_URL": idp.extensions["portico"].settings.database_url,
           "REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace, "LOG_JSON": "false"}

    def purge(*args: str) -> dict:
        answer = CliRunner().invoke(main, ["tokens", "purge", *args], env=env,
                                    catch_exceptions=False)
        assert answer.exit_code == 0, answer.output
        return json.loads(answer.output)

    assert purge() == {"authorization_codes": 0, "refresh_tokens": 0,
                       "access_token_records": 0,
                       "backchannel_logouts": 0}  # within the default 24 hours
    assert purge("--grace-hours", "1") == {"authorization_codes": 1, "refresh_tokens": 0,
                                           "access_token_records": 0,
                                           "backchannel_logouts": 0}
    assert _counts(idp) == (0, 0, 0)


def test_back_channel_logouts_go_once_delivered_or_given_up(idp):
    now = utcnow()
    with idp.extensions["portico"].db.transaction() as session:
        for settled in ({"delivered_at": now}, {"abandoned_at": now}, {}):
            session.add(BackchannelLogout(client_id="c", user_id="u", sid="s", attempts=1,
                                          next_attempt_at=now, **settled))
    assert _purge(idp, after=GRACE - timedelta(minutes=1)) == NOTHING
    assert _purge(idp, after=GRACE + timedelta(minutes=1)).backchannel_logouts == 2
    with idp.extensions["portico"].db.read() as session:
        [pending] = session.scalars(select(BackchannelLogout))
        assert pending.delivered_at is None and pending.abandoned_at is None
