"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's
sync API against pytest-django's live server.

One browser per module, a fresh context (cookies, storage) per test. The
live server needs a transactional database; the flush after each test emits
post_migrate, which recreates the role groups and the default prompt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.environment import missing

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}
PASSWORD = "pw-for-tests-123"  # what tests.factories.UserFactory sets

# Playwright's sync API runs an event loop in this thread; Django refuses ORM
# calls from a thread with a running loop unless told it is fine.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not os.path.exists(CHROMIUM):
        missing(f"{CHROMIUM} is missing: install Debian's chromium package to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        yield browser
        browser.close()


def is_csp_violation(message) -> bool:
    return message.type == "error" and "Content Security Policy" in message.text


@pytest.fixture
def csp_violations() -> list[str]:
    """Console reports of Content-Security-Policy violations on every page opened."""
    return []


@pytest.fixture
def new_page(browser, live_server, csp_violations):
    """Open a page in a fresh context; `new_page(user)` logs in through the real form.

    Every browser test also checks that nothing on its pages broke the CSP: a violation
    in the console fails the test at teardown.
    """
    contexts = []

    def open_page(user=None):
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
        context.set_default_timeout(5000)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                csp_violations.append(message.text) if is_csp_violation(message) else None
            ),
        )
        if user is not None:
            login(page, user.username)
        return page

    yield open_page
    for context in contexts:
        for page in context.pages:
            # Closing fires `pagehide`; a release beacon arriving while the
            # database is being reset for the next test helps nobody.
            page.evaluate("navigator.sendBeacon = () => true")
        context.close()
    assert csp_violations == [], "the Content-Security-Policy blocked something"


def login(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)
