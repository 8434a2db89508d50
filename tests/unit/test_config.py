import dataclasses

import pytest

from services.common.config import ConfigError, load, load_or_exit, parse_bool, setting
from services.identity.settings import IdentitySettings


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    port: int = setting("PORT", 8000, int, help="port")
    debug: bool = setting("DEBUG", False, parse_bool, help="debug")
    secret: str = setting("SECRET_KEY", help="required secret")


def test_values_are_parsed_and_defaults_applied():
    loaded = load(Sample, {"PORT": "9000", "SECRET_KEY": "x"})
    assert loaded == Sample(port=9000, debug=False, secret="x")


def test_missing_required_variable_is_named():
    with pytest.raises(ConfigError, match="SECRET_KEY is required"):
        load(Sample, {})


def test_bad_value_is_named():
    with pytest.raises(ConfigError, match="PORT has a bad value"):
        load(Sample, {"PORT": "eighty", "SECRET_KEY": "x"})
    with pytest.raises(ConfigError, match="DEBUG has a bad value"):
        load(Sample, {"DEBUG": "maybe", "SECRET_KEY": "x"})


def test_load_or_exit_prints_one_line_and_exits(capsys):
    with pytest.raises(SystemExit) as exited:
        load_or_exit(Sample, {"PORT": "x", "SECRET_KEY": "s"})
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["configuration error: PORT has a bad value: invalid literal for int() with base 10: 'x'"]


def test_service_database_defaults_to_its_own_sqlite_file_or_its_own_variable(tmp_path):
    default = load(IdentitySettings, {"PORTICO_VAR_DIR": str(tmp_path)})
    assert default.database_url == f"sqlite:///{tmp_path}/identity.db"
    specific = load(IdentitySettings, {"IDENTITY_DATABASE_URL": "postgresql://db/identity"})
    assert specific.database_url == "postgresql://db/identity"
    generic = load(IdentitySettings, {"DATABASE_URL": "postgresql://db/x",
                                      "IDENTITY_DATABASE_URL": "postgresql://db/identity"})
    assert generic.database_url == "postgresql://db/x"


# Every key with a development default, per service (issue 24: production manifests ran
# on the development ACCOUNT_FINGERPRINT_KEY and ACCESS_CODE_KEY).
SERVICE_SECRETS = {
    "identity": {"EVENT_SEALING_KEY", "KEY_ENCRYPTION_KEY", "CLIENT_SECRET_PEPPER",
                 "ACCOUNT_FINGERPRINT_KEY", "ACCESS_CODE_KEY"},
    "permissions": {"EVENT_SEALING_KEY"},
    "tracking": {"EVENT_SEALING_KEY"},
    "notifier": {"EVENT_SEALING_KEY"},
}


def _settings_class(service: str) -> type:
    import importlib

    module = importlib.import_module(f"services.{service}.settings")
    return getattr(module, f"{service.capitalize()}Settings")


@pytest.mark.parametrize("service", sorted(SERVICE_SECRETS))
def test_production_refuses_every_development_key_and_names_it(service):
    from services.common.config import secret_settings

    cls = _settings_class(service)
    assert set(secret_settings(cls)) == SERVICE_SECRETS[service]
    own = {name: f"{name.lower()}-of-this-deployment" for name in SERVICE_SECRETS[service]}
    assert load(cls, {"PORTICO_ENV": "production", **own}).environment == "production"
    for name in SERVICE_SECRETS[service]:
        # Left unset, or set to the very value of the source's default: refused, named.
        default = next(f.metadata["default"] for f in dataclasses.fields(cls)
                       if f.metadata["env"] == name)
        for environ in ({k: v for k, v in own.items() if k != name}, {**own, name: default}):
            with pytest.raises(ConfigError, match=f"^{name} is the development default"):
                load(cls, {"PORTICO_ENV": "production", **environ})
    # Development (the default) keeps working with nothing set.
    assert load(cls, {}).environment == "development"


def test_an_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="PORTICO_ENV has a bad value"):
        load(IdentitySettings, {"PORTICO_ENV": "prod"})


def test_a_service_refuses_to_start_in_production_with_a_development_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_or_exit(IdentitySettings, {"PORTICO_ENV": "production"})
    assert exit_info.value.code == 2
    assert "is the development default" in capsys.readouterr().err
