"""Fixtures of the deployment tests: the k8s check module (deploy/k8s_check.py is a
script, not a package, so it is loaded from its path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def k8s_check() -> ModuleType:
    return _load("portico_k8s_check", REPO / "deploy" / "k8s_check.py")


@pytest.fixture(scope="session")
def worker_probe() -> ModuleType:
    return _load("portico_worker_probe", REPO / "deploy" / "docker" / "worker_probe.py")
