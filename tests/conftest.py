from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth.models import Group

from accounts.roles import MANAGERS, TAGGERS, TAXONOMY_ADMINS
from tests.environment import SHARED_DATA_VARIABLE, missing, shared_data_folder
from tests.factories import UserFactory
from tests.media import s3_bucket_create, s3_server_start

pytest_plugins = ["tests.fake_openai"]

# Tests that start a process of their own (a real Celery worker, manage.py in a
# subprocess) are marked `worker` by the fixtures they use (or by hand, where a
# test starts `celery worker` itself), and tests under tests/browser/ are
# marked `browser`: `make test-fast` leaves both out.
WORKER_FIXTURES = frozenset({"celery_worker", "manage_py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_folder = config.rootpath / "tests" / "browser"
    for item in items:
        if WORKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.worker)
        if item.path.is_relative_to(browser_folder):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def shared_data(request: pytest.FixtureRequest) -> Path:
    """The shared real data (photos with labels, Google's taxonomy), read where it lies.

    $LOUPE_SHARED_DATA, else ../shared/data from the repository root. Missing, a
    test that asks for it fails in CI and is skipped elsewhere."""
    folder = shared_data_folder(request.config.rootpath)
    if not folder.is_dir():
        missing(
            f"the shared data folder {folder} is missing: "
            f"set {SHARED_DATA_VARIABLE} to the folder that holds fashion-products/"
        )
    return folder


@pytest.fixture(autouse=True)
def clear_cache():
    """Circuit-breaker and rate-limit state must not leak between tests (nor this
    process's view of the circuits, which would otherwise outlive the cache's keys
    by up to half a second)."""
    from django.core.cache import cache

    from annotator.routing import circuit_view_forget

    cache.clear()
    circuit_view_forget()
    yield
    cache.clear()
    circuit_view_forget()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test writes images and uploads to its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on this machine (moto's server mode), for the session."""
    server, endpoint = s3_server_start()
    yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, settings, monkeypatch) -> str:
    """A fresh bucket as Django's default storage."""
    return s3_bucket_create(s3_endpoint, settings, monkeypatch)


@pytest.fixture(params=["filesystem", "s3"])
def media_storage(request: pytest.FixtureRequest) -> str:
    """Run the test once on each media storage: the filesystem (the test's own
    folder, media_root) and an S3 bucket (tests/media.py). Read what was stored
    through tests.media, as the code does, never by a local path."""
    if request.param == "s3":
        from django.core.files.storage import default_storage

        bucket = request.getfixturevalue("s3_bucket")
        assert default_storage.bucket_name == bucket  # not the filesystem by mistake
    return request.param


def _user_in(group: str | None, **kwargs):
    user = UserFactory(**kwargs)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def tagger(db):
    return _user_in(TAGGERS, username="tagger")


@pytest.fixture
def taxonomist(db):
    return _user_in(TAXONOMY_ADMINS, username="taxonomist")


@pytest.fixture
def manager(db):
    return _user_in(MANAGERS, username="manager")


@pytest.fixture
def superuser(db):
    return _user_in(None, username="admin", is_superuser=True, is_staff=True)


@pytest.fixture
def no_role_user(db):
    return _user_in(None, username="visitor")


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker (threaded, solo pool) consuming the real broker:
    Redis when REDIS_URL is set (CI), else the filesystem transport.

    The worker thread has its own database connection, so the test cannot run
    inside a rolled-back transaction; the flush afterwards emits post_migrate,
    which recreates the role groups and the default prompt."""
    from config.celery import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture
def manage_py(request: pytest.FixtureRequest, tmp_path: Path) -> Callable:
    """Run `manage.py ARGS` in a fresh process with the production settings module.

    `env` entries override the current environment; a None value removes the
    variable (the test settings put a SECRET_KEY in this process's environment)."""

    def run(*args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
        environ = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOUPE_VAR_DIR": str(tmp_path),
        }
        environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests' process
        for name, value in env.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=request.config.rootpath,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
