"""The tokens page: create (secret shown once), list (prefix only), revoke."""

from __future__ import annotations

import re

import pytest

from api.models import ApiToken

pytestmark = pytest.mark.django_db


def test_token_page_shows_the_secret_once_and_revokes(client, tagger):
    client.force_login(tagger)
    response = client.post("/settings/tokens/", {"name": "shop sync"})
    assert response["Cache-Control"] == "no-store"
    secret = re.search(r'<code id="new-token">(loupe_[^<]+)</code>', response.content.decode())[1]
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.prefix) == (tagger, "shop sync", secret[:12])
    listing = client.get("/settings/tokens/").content.decode()
    assert token.prefix in listing and secret not in listing
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert client.get("/api/v1/taxonomy", **headers).status_code == 200
    client.post(f"/settings/tokens/{token.pk}/revoke/")
    client.logout()
    assert client.get("/api/v1/taxonomy", **headers).status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(client, tagger, manager):
    client.force_login(manager)
    client.post("/settings/tokens/", {"name": "mine"})
    token = ApiToken.objects.get()
    client.force_login(tagger)
    assert client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert "mine" not in client.get("/settings/tokens/").content.decode()


def test_pages_need_login_and_a_role(client, no_role_user):
    assert client.get("/settings/tokens/").status_code == 302
    client.force_login(no_role_user)
    assert client.get("/settings/tokens/").status_code == 403
    assert client.get("/settings/webhooks/").status_code == 403
    assert client.get("/products/export/?format=csv").status_code == 403
