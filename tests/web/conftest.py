"""Debian's chromium driven by Playwright, for the restore page's browser tests.

`make test` installs chromium first (scripts/ensure-chromium.sh); where it could not, these tests
skip and say why. Playwright's own browser download is never used: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

# the service tests' tiny store and settings fixtures, shared rather than rebuilt
from tests.app.conftest import clean_env, make_settings, module_store, tiny_store  # noqa: F401

VIEWPORT = {"width": 900, "height": 1000}
# Chromium logs a fetch answered 4xx/5xx as a console error; a test that provokes one names its status
_RESET = "Failed to load resource: net::ERR_CONNECTION_RESET"
_HTTP_STATUS = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")


def _chromium() -> str | None:
    for candidate in (os.environ.get("IMGCOMP_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "no chromium: `make test` installs Debian's chromium with apt-get where it can "
            "(scripts/ensure-chromium.sh; needs root or password-less sudo and apt), else install it by hand"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


@dataclass
class Console:
    """Everything the page reported as an error: console.error, uncaught exceptions, failed loads."""

    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)
    # a refusal from the headers (401) closes the connection before the body is read: a browser still sending
    # that body may see the close as a reset (docs/operations.md, IMGCOMP_API_TOKEN), which a test of refusals expects
    resets_expected: bool = False

    def unexpected(self) -> list[str]:
        left = []
        for error in self.errors:
            match = _HTTP_STATUS.match(error)
            if match is not None and int(match.group(1)) in self.expected_statuses:
                continue
            if self.resets_expected and error == _RESET:
                continue
            left.append(error)
        return left


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh page; the test fails if the page logged an error it did not expect."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    opened = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console.errors.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    yield opened
    context.close()
    assert console.unexpected() == [], console.errors
