"""The container image's pieces that can be checked without a container engine:
the entrypoint's dispatch, the Dockerfile's shape, the compose file, what the image ships."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import REPO

ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"
SERVICES = ("identity", "permissions", "tracking", "notifier")


@pytest.fixture
def stub_path(tmp_path: Path) -> str:
    """A PATH whose gunicorn and iamctl print their arguments instead of running."""
    for name in ("gunicorn", "iamctl"):
        stub = tmp_path / name
        stub.write_text(f'#!/bin/sh\necho {name} "$@"\n')
        stub.chmod(0o755)
    return f"{tmp_path}:/usr/bin:/bin"


def _run(stub_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True,
                          env={"PATH": stub_path}, timeout=10, check=False)


@pytest.mark.parametrize("service", SERVICES)
def test_roles_start_the_right_process(stub_path, service):
    web = _run(stub_path, "web", service)
    assert web.returncode == 0, web.stderr
    assert web.stdout.split() == ["gunicorn", "--config", "/app/deploy/docker/gunicorn.conf.py",
                                  "--name", f"portico-{service}", f"services.{service}.app:create_app()"]
    assert _run(stub_path, "worker", service).stdout.split() == ["iamctl", "worker", service]
    assert _run(stub_path, "migrate", service).stdout.split() == ["iamctl", "migrate", service]


def test_iamctl_passes_through(stub_path):
    assert _run(stub_path, "iamctl", "keys", "rotate").stdout.split() == ["iamctl", "keys", "rotate"]


@pytest.mark.parametrize("args", [(), ("serve",), ("web",), ("web", "billing"), ("worker", "../x")])
def test_bad_commands_are_refused(stub_path, args):
    result = _run(stub_path, *args)
    assert result.returncode == 64
    assert "usage:" in result.stderr
    assert result.stdout == ""


def test_dockerfile_shape():
    text = (REPO / "deploy/docker/Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert [name for _, name in stages] == ["builder", "runtime"]
    assert 'ARG PYTHON_IMAGE=python:3.11-slim' in text
    builder, runtime = text.split("AS runtime", 1)
    assert "--require-hashes" in builder and "requirements/" in builder
    assert "--no-deps" in builder
    # The runtime stage installs nothing and copies only the venv and deploy/docker.
    assert "pip install" not in runtime and "apt-get" not in runtime
    copies = re.findall(r"^COPY\s+(.+)$", runtime, re.MULTILINE)
    assert all("--from=builder /opt/venv" in c or "deploy/docker/" in c for c in copies), copies
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    assert 'ENTRYPOINT ["/app/deploy/docker/entrypoint.sh"]' in runtime


def test_dockerignore_keeps_local_state_out():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", ".env", "tests"} <= ignored


# Code, and files only the translation tooling reads (pybabel extract's config, catalog templates).
NOT_RUNTIME_SUFFIXES = {".py", ".pyc", ".pot"}
NOT_RUNTIME_NAMES = {"babel.cfg"}


def test_image_ships_every_data_file_of_the_services():
    """The image installs the project as a wheel: a template or migration that
    pyproject's package-data does not match would be missing in the container."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    packages = {p.parent for p in (REPO / "services").rglob("__init__.py")}
    shipped: set[Path] = set()
    for package in packages:
        for pattern in patterns:
            shipped.update(p for p in package.glob(pattern) if p.is_file())
    data_files = {p for p in (REPO / "services").rglob("*")
                  if p.is_file() and p.suffix not in NOT_RUNTIME_SUFFIXES
                  and p.name not in NOT_RUNTIME_NAMES and "__pycache__" not in p.parts}
    missing = sorted(str(p.relative_to(REPO)) for p in data_files - shipped)
    assert missing == []


def test_compose_runs_every_service_role_on_its_port():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "mailpit"} <= set(services)
    for port, service in enumerate(SERVICES, start=8001):
        assert services[service]["command"] == ["web", service]
        assert services[service]["ports"] == [f"{port}:8000"]
        assert services[f"{service}-worker"]["command"] == ["worker", service]
        assert services[f"{service}-migrate"]["command"] == ["migrate", service]
        assert services[service]["depends_on"] == {
            f"{service}-migrate": {"condition": "service_completed_successfully"}}
        env = services[service]["environment"]
        assert env[f"{service.upper()}_DATABASE_URL"].endswith(f"/{service}")


def test_postgres_init_creates_one_database_per_service_in_both_copies():
    compose_copy = (REPO / "deploy/docker/postgres-init.sql").read_text()
    assert (REPO / "deploy/k8s/overlays/dev/postgres-init.sql").read_text() == compose_copy
    created = re.findall(r"^CREATE DATABASE (\w+);", compose_copy, re.MULTILINE)
    assert sorted(created) == sorted(SERVICES)
