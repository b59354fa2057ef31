"""config/env.py: every variable is parsed and checked in one place, a bad value
stops startup with an error naming the variable and the form it expects, and
the README lists every variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Environment, environment_load

PRODUCTION = {"SECRET_KEY": "a-real-looking-production-secret-key-0123456789"}


def refusal(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ImproperlyConfigured) as refused:
        environment_load(environ)
    return str(refused.value).splitlines()


def test_no_variables_give_the_documented_defaults():
    env = environment_load(PRODUCTION)

    assert (env.DEBUG, env.DATABASE_URL, env.REDIS_URL, env.ALLOWED_HOSTS) == (
        False,
        None,
        "",
        None,
    )
    assert (env.REVIEW_THRESHOLD, env.REVIEW_AUDIT_RATE, env.REVIEW_AUDIT_BLIND) == (
        0.85,
        0.02,
        True,
    )
    assert (env.REVIEW_LEASE_SECONDS, env.REVIEW_UNDO_SECONDS) == (600, 600)
    assert (env.ANNOTATOR_PROVIDER, env.ANNOTATOR_FALLBACK_PROVIDER) == (None, "local")
    assert (env.ANNOTATOR_MODEL, env.ANNOTATOR_TIMEOUT, env.ANNOTATOR_MAX_RETRIES) == (
        "gpt-4o-mini",
        30.0,
        3,
    )
    assert (env.IMAGE_FETCH_MAX_BYTES, env.IMAGE_MAX_PIXELS) == (25 * 1024 * 1024, 40_000_000)
    assert (env.CELERY_TASK_SOFT_TIME_LIMIT, env.CELERY_TASK_TIME_LIMIT) == (600, 660)
    assert env.ANNOTATOR_PRICES == {}
    assert env.SECURE_PROXY_SSL_HEADER == "X-Forwarded-Proto"


def test_values_are_parsed_into_their_types():
    env = environment_load(
        {
            **PRODUCTION,
            "DEBUG": " Yes ",
            "ALLOWED_HOSTS": "loupe.example.com, 10.0.0.5 ,",
            "CSRF_TRUSTED_ORIGINS": "",
            "REVIEW_THRESHOLD": "0.9",
            "REVIEW_AUDIT_BLIND": "off",
            "ANNOTATOR_RPM": "120",
            "ANNOTATOR_PRICES": '{"my-model": [0.2, 0.8]}',
            "ANNOTATOR_FALLBACK_PROVIDER": "",
            "IMAGE_FETCH_READ_TIMEOUT": "",
        }
    )

    assert env.DEBUG is True
    assert env.ALLOWED_HOSTS == ["loupe.example.com", "10.0.0.5"]
    assert env.CSRF_TRUSTED_ORIGINS == []
    assert (env.REVIEW_THRESHOLD, env.REVIEW_AUDIT_BLIND, env.ANNOTATOR_RPM) == (0.9, False, 120)
    assert env.ANNOTATOR_PRICES == {"my-model": (0.2, 0.8)}
    # empty text is a value ("" turns the fallback off); an empty number is "not set"
    assert (env.ANNOTATOR_FALLBACK_PROVIDER, env.IMAGE_FETCH_READ_TIMEOUT) == ("", 15.0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "REVIEW_THRESHOLD",
            "abc",
            "REVIEW_THRESHOLD: expected a number between 0 and 1, got 'abc'",
        ),
        (
            "REVIEW_THRESHOLD",
            "1.5",
            "REVIEW_THRESHOLD: expected a number between 0 and 1, got '1.5'",
        ),
        (
            "REVIEW_AUDIT_RATE",
            "nan",
            "REVIEW_AUDIT_RATE: expected a number between 0 and 1, got 'nan'",
        ),
        (
            "DEBUG",
            "maybe",
            "DEBUG: expected a boolean (1/0, true/false, yes/no, on/off), got 'maybe'",
        ),
        (
            "ANNOTATOR_TIMEOUT",
            "0",
            "ANNOTATOR_TIMEOUT: expected a number of seconds greater than 0, got '0'",
        ),
        (
            "ANNOTATOR_MAX_RETRIES",
            "three",
            "ANNOTATOR_MAX_RETRIES: expected a whole number (0 or more), got 'three'",
        ),
        (
            "ANNOTATOR_CANARY_PERCENT",
            "150",
            "ANNOTATOR_CANARY_PERCENT: expected a number between 0 and 100, got '150'",
        ),
        (
            "ANNOTATOR_IMAGE_DETAIL",
            "ultra",
            "ANNOTATOR_IMAGE_DETAIL: expected one of auto, low, high, got 'ultra'",
        ),
        (
            "ANNOTATOR_PRICES",
            '{"m": [1]}',
            "ANNOTATOR_PRICES: expected a JSON object of model name to [USD per 1M input tokens, "
            'USD per 1M output tokens], e.g. {"my-model": [0.2, 0.8]}, got \'{"m": [1]}\'',
        ),
        (
            "ANNOTATOR_BASE_URL",
            "api.openai.com/v1",
            "ANNOTATOR_BASE_URL: expected an http:// or https:// URL of an OpenAI-compatible API, "
            "got 'api.openai.com/v1'",
        ),
        (
            "DATABASE_URL",
            "mongodb://db/loupe",
            "DATABASE_URL: expected a database URL such as "
            "postgres://user:password@host:5432/loupe or sqlite:////path/to/loupe.sqlite3, "
            "got 'mongodb://db/loupe'",
        ),
        (
            "REDIS_URL",
            "localhost:6379",
            "REDIS_URL: expected a Redis URL such as redis://host:6379/0 (or rediss://, unix://), "
            "got 'localhost:6379'",
        ),
        (
            "CSRF_TRUSTED_ORIGINS",
            "https://ok.example.com,loupe.example.com",
            "CSRF_TRUSTED_ORIGINS: expected a comma-separated list of origins with their scheme, "
            "e.g. https://loupe.example.com, got 'https://ok.example.com,loupe.example.com'",
        ),
        (
            "TIME_ZONE",
            "Mars/Olympus",
            "TIME_ZONE: expected an IANA time zone name such as UTC or Europe/Paris, "
            "got 'Mars/Olympus'",
        ),
        (
            "LOG_LEVEL",
            "verbose",
            "LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'",
        ),
        (
            "SECURE_PROXY_SSL_HEADER",
            "X-Forwarded-Proto: https",
            "SECURE_PROXY_SSL_HEADER: expected an HTTP header name such as X-Forwarded-Proto, "
            "or empty to trust no proxy header, got 'X-Forwarded-Proto: https'",
        ),
    ],
)
def test_a_bad_value_is_refused_with_its_name_and_the_expected_form(name, value, message):
    assert refusal({**PRODUCTION, name: value}) == [message]


def test_every_bad_variable_is_named_at_once():
    lines = refusal({**PRODUCTION, "REVIEW_THRESHOLD": "abc", "ANNOTATOR_RPM": "-1"})

    assert lines == [
        "REVIEW_THRESHOLD: expected a number between 0 and 1, got 'abc'",
        "ANNOTATOR_RPM: expected a whole number of requests per minute (0 = no limit), got '-1'",
    ]


def test_rules_across_variables_name_them():
    assert refusal({"DEBUG": "0"}) == [
        "SECRET_KEY: must be set when DEBUG is off (a long random string)"
    ]
    assert refusal(
        {**PRODUCTION, "CELERY_TASK_SOFT_TIME_LIMIT": "700", "CELERY_TASK_TIME_LIMIT": "660"}
    ) == [
        "CELERY_TASK_SOFT_TIME_LIMIT: expected fewer seconds than CELERY_TASK_TIME_LIMIT (660), "
        "got 700"
    ]


def test_a_secret_is_never_echoed():
    key = "sk-live-0123456789abcdef"
    env = environment_load({**PRODUCTION, "ANNOTATOR_API_KEY": key})

    assert key not in repr(env)
    assert env.ANNOTATOR_API_KEY.get_secret_value() == key


def test_startup_stops_with_the_variable_named_and_no_traceback(manage_py):
    result = manage_py("check", env={"REVIEW_THRESHOLD": "abc", "DEBUG": "1"})

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Loupe cannot start, fix the environment:",
        "REVIEW_THRESHOLD: expected a number between 0 and 1, got 'abc'",
    ]


def test_a_plain_http_deployment_trusts_no_proxy_header(manage_py):
    """The README's "plain HTTP on a private network" example passes `check`
    and ends with settings that do not redirect to, or trust a claim of, HTTPS."""
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)"
    )
    result = manage_py(
        "shell",
        "--no-imports",
        "-c",
        code,
        env={
            "DEBUG": "0",
            "SECRET_KEY": PRODUCTION["SECRET_KEY"],
            "ALLOWED_HOSTS": "loupe.internal",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "SECURE_PROXY_SSL_HEADER": "",
        },
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False", "0", "None"]


def test_behind_a_tls_proxy_the_forwarded_header_is_trusted():
    env = environment_load({**PRODUCTION, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"})

    assert env.SECURE_PROXY_SSL_HEADER == "X-Forwarded-Proto"


# --- the README lists every variable ----------------------------------------------------------

READS = re.compile(r"""(?:environ\.get|getenv|environ\[)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
SHELL_READS = re.compile(r"\$\{([A-Z][A-Z0-9_]+)")


def variables_read_by_the_code(root: Path) -> set[str]:
    names = set(Environment.model_fields)
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if parts[0] == "var" or any(part.startswith(".") for part in parts):
            continue  # .venv, .git, .ci (CI sets variables, it does not read them)
        if path.suffix == ".py":
            names |= set(READS.findall(path.read_text(encoding="utf-8")))
        elif path.suffix == ".sh":
            names |= set(SHELL_READS.findall(path.read_text(encoding="utf-8")))
    # Set by Loupe itself for Django/Celery/Playwright, not read from the operator.
    return names - {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "BIN"}


def test_the_readme_lists_every_variable_the_code_reads(request):
    root = request.config.rootpath
    readme = (root / "README.md").read_text(encoding="utf-8")

    missing = sorted(name for name in variables_read_by_the_code(root) if f"`{name}`" not in readme)

    assert missing == []
