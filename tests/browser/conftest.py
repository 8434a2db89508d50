"""Browser tests: the machine's Chromium driven by Playwright, the suite as real processes.

Chromium comes from Debian packages (``chromium``, ``chromium-driver``; CI installs them
with ``.ci/install-browser.sh``); Playwright never downloads a browser. Without one, the
tests fail in CI (``CI=true``) and are skipped elsewhere, with the reason either way.
Every step of a journey is screenshot; when a test fails its screenshots are written
to ``tests/browser/artifacts/<test>/``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import delete_namespace, redis_answers

from .suite import SERVICES, Suite, log_tail, suite_env

CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STEP_TIMEOUT_MS = 15_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Chromium against the running suite")


def _no_browser(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} CI must install it: call .ci/install-browser.sh "
                    "(Debian packages chromium, chromium-driver).", pytrace=False)
    pytest.skip(f"{reason} Install the Debian packages chromium and chromium-driver "
                "(.ci/install-browser.sh) or set CHROMIUM_PATH.")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _no_browser(f"no Chromium at {CHROMIUM}.")
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright(chromium_path: str) -> Iterator:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _no_browser("Playwright for Python is not installed (pip package playwright).")
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as driver:
        yield driver


class Steps:
    """Screenshots of each step of a test (kept in memory, written only on failure)."""

    def __init__(self, playwright, chromium_path: str) -> None:
        self.playwright = playwright
        self.chromium_path = chromium_path
        self.shots: list[tuple[str, bytes]] = []
        self.pages: list = []
        self.profiles: list[str] = []
        self.console: list[str] = []  # the browser's errors: CSP refusals, failed requests

    def new_page(self, locale: str = "en-US"):
        """A page in a browser of its own (one per user: own cookies, own fresh profile)."""
        profile = tempfile.mkdtemp(prefix="portico-chromium-")
        self.profiles.append(profile)
        context = self.playwright.chromium.launch_persistent_context(
            profile, executable_path=self.chromium_path, headless=True, args=CHROMIUM_ARGS,
            locale=locale, viewport={"width": 1200, "height": 1000})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        number = len(self.pages) + 1
        page.on("console", lambda message: self.console.append(
            f"page {number} console {message.type}: {message.text}")
            if message.type in ("error", "warning") else None)
        page.on("requestfailed", lambda request: self.console.append(
            f"page {number} request failed: {request.method} {request.url[:160]} "
            f"({request.failure})"))
        self.pages.append(page)
        return page

    def shot(self, page, name: str) -> None:
        self.shots.append((name, page.screenshot(full_page=True)))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "console.txt").write_text("\n".join(self.console) + "\n")
        for number, (name, png) in enumerate(self.shots, start=1):
            (directory / f"{number:02d}-{_slug(name)}.png").write_bytes(png)
        for number, page in enumerate(self.pages, start=1):
            if not page.is_closed():
                try:
                    page.screenshot(path=str(directory / f"zz-final-page{number}.png"),
                                    full_page=True)
                    (directory / f"zz-final-page{number}.html").write_text(page.content())
                except Exception as error:  # noqa: BLE001 - best effort on a failing test
                    (directory / f"zz-final-page{number}.error.txt").write_text(repr(error))

    def close(self) -> None:
        for page in self.pages:
            page.context.close()
        for profile in self.profiles:
            shutil.rmtree(profile, ignore_errors=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "step"


@pytest.fixture
def steps(request, playwright, chromium_path: str) -> Iterator[Steps]:
    recorder = Steps(playwright, chromium_path)
    yield recorder
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        target = ARTIFACTS / _slug(request.node.name)
        shutil.rmtree(target, ignore_errors=True)
        recorder.save(target)
    recorder.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (the ``steps`` fixture saves screenshots when
    the call failed) and add the browser's errors and the suite's log to a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    if report.when == "call" and report.failed:
        recorder = item.funcargs.get("steps")
        if isinstance(recorder, Steps):
            report.sections.append((
                "browser errors", "\n".join(recorder.console[-40:]) or "(none)"))
            report.sections.append((
                "screenshots", str(ARTIFACTS / _slug(item.name))))
        running = item.funcargs.get("suite")
        if isinstance(running, Suite):
            report.sections.append(("suite log", log_tail(running.log_path, 60)))
    return report


@pytest.fixture(scope="module")
def suite(chromium_path: str, _databases, tmp_path_factory) -> Iterator[Suite]:
    """The whole suite (``python -m services.devtools.run``) on free ports: databases are
    schemas of TEST_DATABASE_URL (else SQLite files), Redis is REDIS_URL in a namespace
    of its own (else the runner's embedded one)."""
    root = tmp_path_factory.mktemp("suite")
    databases = {}
    if _databases.is_postgres:
        databases = {s: _databases.new_url(str(root), s) for s in SERVICES}
    configured = os.environ.get("REDIS_URL")
    redis_url = configured if configured and redis_answers(configured) else None
    env, ports = suite_env(root, databases, redis_url)
    running = Suite(root=root, env=env, ports=ports)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        if redis_url:
            delete_namespace(redis.Redis.from_url(redis_url), env["REDIS_NAMESPACE"])
