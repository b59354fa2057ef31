#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reads and checks the environment (config/env.py)
    except ImproperlyConfigured as error:
        # A bad variable is the operator's to fix: say which, without a traceback.
        sys.exit(f"Loupe cannot start, fix the environment:\n{error}")
    execute_from_command_line(sys.argv)
