"""Passkeys' defaults follow where the pages are: the RP id is the host of PUBLIC_BASE_URL
(else OIDC_ISSUER), never an IP address (WebAuthn refuses one), so make run's
http://127.0.0.1:8001 does its passkeys on localhost, the same machine."""

from __future__ import annotations

from services.common.config import load
from services.identity.factors.passkeys import config_from, usable_on, usable_origin
from services.identity.settings import IdentitySettings


def _settings(**env: str) -> IdentitySettings:
    return load(IdentitySettings, env)


def test_make_runs_issuer_on_127_0_0_1_does_passkeys_on_localhost():
    settings = _settings(OIDC_ISSUER="http://127.0.0.1:8001")
    assert settings.webauthn_rp_id == "localhost"
    assert settings.webauthn_origins == ["http://127.0.0.1:8001", "http://localhost:8001"]
    cfg = config_from(settings)
    assert usable_on(cfg, "localhost") and not usable_on(cfg, "127.0.0.1")
    assert usable_origin(cfg) == "http://localhost:8001"


def test_a_deployment_binds_passkeys_to_its_public_host():
    settings = _settings(OIDC_ISSUER="https://id.acme.example",
                         PUBLIC_BASE_URL="https://login.acme.example")
    assert settings.webauthn_rp_id == "login.acme.example"
    assert settings.webauthn_origins == ["https://login.acme.example"]


def test_an_explicit_rp_id_covers_its_subdomains():
    settings = _settings(OIDC_ISSUER="https://id.acme.example", WEBAUTHN_RP_ID="acme.example")
    cfg = config_from(settings)
    assert usable_on(cfg, "id.acme.example") and usable_on(cfg, "acme.example")
    assert not usable_on(cfg, "evilacme.example")
