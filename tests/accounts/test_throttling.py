"""Login throttling: django-axes on the browser login, and the counter the API uses."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts import throttling
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"  # noqa: S105


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    return settings


def _login(client, password, *, ip="203.0.113.7", username="alice"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_right_password_is_refused_after_the_limit_with_a_message_and_works_after_cool_off(
    client, alice, limits
):
    for _ in range(2):
        response = _login(client, "wrong")
        assert response.status_code == 200
        assert "Please try again." in response.content.decode()
    assert _login(client, "wrong").status_code == 429  # the third failure locks

    response = _login(client, PASSWORD)

    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed log-ins: this account is locked from your address for 1 minute" in body
    assert '<form method="post" action="/login/">' in body
    assert "_auth_user_id" not in client.session

    time.sleep(2.5)  # the cool-off (2 s) passes
    response = _login(client, PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_lockout_is_per_username_and_address(client, alice, limits):
    UserFactory(username="bob").set_password(PASSWORD)
    for _ in range(3):
        _login(client, "wrong")

    assert _login(client, PASSWORD).status_code == 429
    # The same user from another address, and another user from the same one, still log in.
    assert _login(client, PASSWORD, ip="198.51.100.9").status_code == 302
    client.logout()
    bob = UserFactory(username="bob")
    bob.set_password(PASSWORD)
    bob.save()
    assert _login(client, PASSWORD, username="bob").status_code == 302


def test_superuser_unlocks_with_the_axes_command(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 3  # default cool-off (15 minutes): only an unlock helps
    for _ in range(3):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 429

    call_command("axes_reset_username", "alice")

    assert _login(client, PASSWORD).status_code == 302


def test_success_before_the_limit_clears_the_count(client, alice, limits):
    _login(client, "wrong")
    _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    _login(client, "wrong")
    _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302


def test_counter_for_api_logins_locks_at_the_limit_and_unlocks_after_cool_off(limits):
    key = "api-token:203.0.113.7"
    assert throttling.is_locked(key) is False

    assert [throttling.failed_attempt_register(key) for _ in range(2)] == [1, 2]
    assert throttling.is_locked(key) is False
    assert throttling.failed_attempt_register(key) == 3
    assert throttling.is_locked(key) is True
    assert throttling.is_locked("api-token:198.51.100.9") is False

    time.sleep(2.5)
    assert throttling.is_locked(key) is False
    assert throttling.failed_attempt_register(key) == 1


def test_counter_reset_unlocks(limits):
    key = "api-token:\x00odd key"
    for _ in range(3):
        throttling.failed_attempt_register(key)
    throttling.failed_attempts_reset(key)
    assert throttling.is_locked(key) is False


def test_client_ip_uses_the_last_forwarded_entry_only_when_configured(rf, settings):
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7")
    settings.LOGIN_CLIENT_IP_HEADER = ""
    assert throttling.client_ip(request) == "10.0.0.2"
    settings.LOGIN_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    assert throttling.client_ip(request) == "203.0.113.7"
