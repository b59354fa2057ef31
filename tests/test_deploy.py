import pytest
from django.test import Client

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 20 + "a-real-looking-production-secret-key-0123456789",
    "ALLOWED_HOSTS": "loupe.example.com",
}


def test_check_deploy_is_clean_with_production_like_settings(manage_py):
    result = manage_py("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off(manage_py):
    result = manage_py("check", env={"DEBUG": "0", "SECRET_KEY": None})

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Loupe cannot start, fix the environment:",
        "SECRET_KEY: must be set when DEBUG is off (a long random string)",
    ]


def _production_setting(manage_py, names: list[str], **env_vars: str) -> list[str]:
    env: dict[str, str | None] = {
        **PRODUCTION,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": None,
        "SECURE_HSTS_PRELOAD": None,
        **env_vars,
    }
    code = "from django.conf import settings; " + "; ".join(
        f"print(settings.{name})" for name in names
    )
    result = manage_py("shell", "--no-imports", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


HSTS = ["SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"]


def test_hsts_subdomains_and_preload_are_off_by_default_in_production(manage_py):
    assert _production_setting(manage_py, HSTS) == ["31536000", "False", "False"]


def test_hsts_subdomains_and_preload_are_opt_in(manage_py):
    opted_in = _production_setting(
        manage_py, HSTS, SECURE_HSTS_INCLUDE_SUBDOMAINS="1", SECURE_HSTS_PRELOAD="1"
    )
    assert opted_in == ["31536000", "True", "True"]


@pytest.mark.django_db
def test_hsts_header_follows_the_settings(client, settings):
    """SecurityMiddleware reads its settings once per handler: a new Client for each."""
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = False
    settings.SECURE_HSTS_PRELOAD = False
    assert client.get("/login/", secure=True)["Strict-Transport-Security"] == "max-age=3600"

    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    assert (
        Client().get("/login/", secure=True)["Strict-Transport-Security"]
        == "max-age=3600; includeSubDomains; preload"
    )


@pytest.mark.django_db
def test_every_page_carries_the_content_security_policy(client, superuser):
    client.force_login(superuser)
    for path in ("/login/", "/", "/products/", "/review/", "/taxonomy/", "/admin/"):
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src-elem"] == "'self'"
        assert directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
