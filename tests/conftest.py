from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth.models import Group

from accounts.roles import MANAGERS, TAGGERS, TAXONOMY_ADMINS
from tests.factories import UserFactory

pytest_plugins = ["tests.fake_openai"]


@pytest.fixture(autouse=True)
def clear_cache():
    """Circuit-breaker and rate-limit state must not leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test writes images and uploads to its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


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
