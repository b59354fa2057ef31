def test_check_deploy_is_clean_with_production_like_settings(manage_py):
    result = manage_py(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DEBUG": "0",
            "SECRET_KEY": "x" * 20 + "a-real-looking-production-secret-key-0123456789",
            "ALLOWED_HOSTS": "loupe.example.com",
        },
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off(manage_py):
    result = manage_py("check", env={"DEBUG": "0", "SECRET_KEY": None})

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Loupe cannot start, fix the environment:",
        "SECRET_KEY: must be set when DEBUG is off (a long random string)",
    ]
