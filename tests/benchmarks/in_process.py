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
        ALLOWED_HOSTS="testserver",  # the test Client's host name
    )
    import django
    from django.core.management import call_command

    # Not setup_test_environment(): its instrumented rendering has the test Client copy
    # the context of every template rendered, a cost production never pays and one that
    # grows with every card on a page (it made 24 cards look 1.5x the price of 10).
    django.setup()
    call_command("migrate", verbosity=0)
