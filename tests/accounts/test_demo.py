"""Demo users (accounts/demo.py): one login per role plus a superuser. The `demo`
command that calls it is catalog's, and so are its tests (tests/catalog/test_demo.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts import roles
from accounts.demo import SUPERUSER_LABEL, demo_users_ensure

DEMO_USERNAMES = ["tagger", "taxonomist", "manager", "admin"]
EXPECTED_LOGINS = [
    ("tagger", roles.TAGGERS),
    ("taxonomist", roles.TAXONOMY_ADMINS),
    ("manager", roles.MANAGERS),
    ("admin", SUPERUSER_LABEL),
]


@pytest.mark.django_db
def test_demo_users_with_a_password():
    logins, generated = demo_users_ensure(password="demo-pass-123")

    assert logins == EXPECTED_LOGINS
    assert generated is None
    users = {u.username: u for u in get_user_model().objects.filter(username__in=DEMO_USERNAMES)}
    assert sorted(users) == sorted(DEMO_USERNAMES)
    for username, group in EXPECTED_LOGINS[:3]:
        user = users[username]
        assert list(user.groups.values_list("name", flat=True)) == [group]
        assert (user.is_staff, user.is_superuser) == (False, False)
    admin = users["admin"]
    assert (admin.is_staff, admin.is_superuser) == (True, True)
    assert all(user.check_password("demo-pass-123") for user in users.values())


@pytest.mark.django_db
def test_demo_users_given_password_is_set_again_on_every_call():
    demo_users_ensure(password="first-pass-123")

    logins, generated = demo_users_ensure(password="second-pass-456")

    assert (logins, generated) == (EXPECTED_LOGINS, None)
    users = get_user_model().objects.filter(username__in=DEMO_USERNAMES)
    assert users.count() == 4
    assert all(user.check_password("second-pass-456") for user in users)


@pytest.mark.django_db
def test_demo_users_without_a_password_get_one_generated_once():
    logins, generated = demo_users_ensure(password=None)

    assert logins == EXPECTED_LOGINS
    assert generated and len(generated) >= 16
    users = get_user_model().objects.filter(username__in=DEMO_USERNAMES).order_by("username")
    assert all(user.check_password(generated) for user in users)
    hashes = list(users.values_list("username", "password"))

    logins_again, generated_again = demo_users_ensure(password=None)

    assert (logins_again, generated_again) == (EXPECTED_LOGINS, None)
    assert list(users.values_list("username", "password")) == hashes
