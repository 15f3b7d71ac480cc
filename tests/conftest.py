import os
import shutil

import pytest
from django.contrib.auth import get_user_model

# Playwright's sync API runs an event loop in the test thread; Django's ORM must still work there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = [
    "tests.simulator_fixtures",
    "tests.pipeline_fixtures",
    "tests.oidc_fixtures",
    "tests.mail_fixtures",
]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")


def pytest_collection_modifyitems(config, items):
    if not os.path.exists(CHROMIUM):
        skip = pytest.mark.skip(reason="Debian's chromium is not installed (make test installs it)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Debian's chromium, never a downloaded browser; and no lookups of Google's hosts.
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            "--disable-background-networking",
            "--disable-component-update",
        ],
    }


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher is slow on purpose; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def artifacts():
    """A git-ignored folder where browser tests leave screenshots for reviewers."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


PASSWORD = "a-long-test-passphrase"


def _user(username, **extra):
    return get_user_model().objects.create_user(
        username, f"{username}@example.com", PASSWORD, **extra
    )


@pytest.fixture
def alice(db):
    """The owner in access tests."""
    return _user("alice")


@pytest.fixture
def bob(db):
    """A teammate: signed in, but not the owner."""
    return _user("bob")


@pytest.fixture
def staff(db):
    return _user("operator", is_staff=True, is_superuser=True)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client
