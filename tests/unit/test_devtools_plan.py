"""What `make run` will start, decided from the environment alone."""

from __future__ import annotations

import pytest

from services.devtools import configdoc
from services.devtools.run import make_plan
from services.devtools.settings import REPO_ROOT

PROCFILE_LINES = {"identity", "permissions", "tracking", "notifier", "smtp", "identity-worker",
                  "permissions-worker", "tracking-worker", "notifier-worker", "portal", "console"}
ALL_COMMANDS = {"migrate", "config", "worker", "mail"}


def test_without_redis_url_it_embeds_redis_on_redis_port_and_exports_its_url(tmp_path):
    plan = make_plan({"PORTICO_VAR_DIR": str(tmp_path / "var"), "REDIS_PORT": "16999"}, ALL_COMMANDS)
    assert plan.embedded_redis is True
    assert plan.env["REDIS_URL"] == "redis://127.0.0.1:16999/0"
    assert plan.redis_dir == tmp_path / "var" / "redis"


def test_a_given_redis_url_is_used_as_is():
    plan = make_plan({"REDIS_URL": "redis://10.0.0.5:6379/3"}, ALL_COMMANDS)
    assert plan.embedded_redis is False
    assert plan.env["REDIS_URL"] == "redis://10.0.0.5:6379/3"


def test_children_get_the_local_defaults_and_ports_follow_the_port_variables(tmp_path):
    plan = make_plan({"PORTICO_VAR_DIR": str(tmp_path), "IDENTITY_PORT": "18001",
                      "PERMISSIONS_PORT": "18002", "SMTP_PORT": "18025"}, ALL_COMMANDS)
    env = plan.env
    assert env["OIDC_ISSUER"] == "http://127.0.0.1:18001"
    assert env["PERMISSIONS_URL"] == "http://127.0.0.1:18002"
    assert env["TRACKING_PORT"] == "8003"
    assert (env["SMTP_HOST"], env["SMTP_PORT"]) == ("127.0.0.1", "18025")
    assert env["LOG_JSON"] == "false"
    assert env["PORTICO_VAR_DIR"] == str(tmp_path)
    assert env["MAIL_DIR"] == str(tmp_path / "mail")
    assert env["NOTIFY_DELIVERED_CHECK_DIR"] == str(tmp_path / "mail")
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:18001"
    assert plan.url("identity") == "http://127.0.0.1:18001"


def test_variables_already_set_win_over_the_local_defaults():
    plan = make_plan({"OIDC_ISSUER": "https://id.example.com", "LOG_JSON": "true",
                      "IDENTITY_DATABASE_URL": "postgresql://u:p@db/identity"}, ALL_COMMANDS)
    assert plan.env["OIDC_ISSUER"] == "https://id.example.com"
    assert plan.env["LOG_JSON"] == "true"
    assert plan.env["IDENTITY_DATABASE_URL"] == "postgresql://u:p@db/identity"
    assert plan.warnings == []


def test_a_shared_database_url_is_warned_about():
    plan = make_plan({"DATABASE_URL": "postgresql://db/all"}, ALL_COMMANDS)
    assert any("DATABASE_URL" in w for w in plan.warnings)


def test_every_procfile_line_runs_when_its_commands_exist():
    plan = make_plan({}, ALL_COMMANDS)
    assert set(plan.processes) == PROCFILE_LINES
    assert plan.left_out == {}
    assert "--bind 127.0.0.1:${IDENTITY_PORT:-8001}" in plan.processes["identity"]


def test_a_line_running_a_missing_iamctl_command_is_left_out_with_a_warning():
    plan = make_plan({}, {"migrate", "config"})
    assert set(plan.left_out) == {f"{s}-worker" for s in ("identity", "permissions", "tracking", "notifier")}
    assert "identity" in plan.processes and "smtp" in plan.processes
    assert len(plan.warnings) == 4


def test_a_bad_port_stops_with_one_line_naming_the_variable(capsys):
    with pytest.raises(SystemExit):
        make_plan({"SMTP_PORT": "99999"}, ALL_COMMANDS)
    assert "SMTP_PORT" in capsys.readouterr().err


def test_the_configuration_reference_documents_every_variable():
    documented = (REPO_ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(v for v in configdoc.all_variables() if f"`{v}`" not in documented)
    assert not missing, (f"{missing} are not in docs/configuration.md: "
                         "run `python -m services.devtools.configdoc`")
