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
