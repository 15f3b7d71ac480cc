"""Django in this process, on a throwaway database in `folder` (SQLite, or DATABASE_URL's
PostgreSQL), for the benchmarks that time requests through the test Client."""

import os
from pathlib import Path


def setup_django(folder):
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DARKROOM_DATA_DIR=str(folder),
        MEDIA_ROOT=str(Path(folder) / "media"),
        LOG_LEVEL="WARNING",
        DEBUG="1",  # Django's test Client speaks plain HTTP
    )
    import django
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()
    call_command("migrate", verbosity=0)
