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


# Runs before any page script: every violation of the policy becomes a console error, so
# the guard below sees those no console message mentions (a blocked style attribute, say).
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = event.target && event.target.outerHTML ? event.target.outerHTML.slice(0, 160) : "";
  console.error(`CSP violation: ${event.violatedDirective} blocked`
    + ` ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber} ${where}`);
});
"""


class BrowserProblems(list):
    """Console errors, uncaught exceptions and CSP violations of every page of a context.

    A test that means to meet an error (a page that answers 404 on purpose) says so first
    with `allow("404 /s/")`: problems naming each failed response are matched on that."""

    def __init__(self):
        super().__init__()
        self.allowed = []
        self.failed_responses = []

    def allow(self, text):
        self.allowed.append(text)

    def unexpected(self):
        return [
            problem
            for problem in self
            if not any(
                text in problem or ("Failed to load resource" in problem and text in failures)
                for text in self.allowed
                for failures in [" ".join(self.failed_responses)]
            )
        ]

    def watch(self, context):
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("page", self._watch_page)
        for page in context.pages:
            self._watch_page(page)
        return context

    def _watch_page(self, page):
        def on_console(message):
            if message.type == "error":
                self.append(f"{page.url}: {message.text}")

        def on_response(response):
            if response.status >= 400:
                self.failed_responses.append(f"{response.status} {response.url}")

        page.on("console", on_console)
        page.on("response", on_response)
        page.on("pageerror", lambda error: self.append(f"{page.url}: uncaught {error}"))


@pytest.fixture
def browser_problems():
    """What went wrong in the browser during a test; the test fails unless it is empty.
    Contexts a test makes itself join with `browser_problems.watch(context)`."""
    problems = BrowserProblems()
    yield problems
    unexpected = problems.unexpected()
    failures = "\n".join(problems.failed_responses)
    assert unexpected == [], f"the browser reported: {unexpected}; failed responses: {failures}"


@pytest.fixture
def context(context, browser_problems):
    # pytest-playwright's context, with every page watched: browser tests fail on any
    # console error, uncaught exception or Content-Security-Policy violation.
    return browser_problems.watch(context)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher is slow on purpose; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def live_updates_answer_at_once(settings):
    # A held update request waits on its own database connection, which can't see a test's
    # uncommitted rows: tests of the holding itself (transactional) set a hold of their own.
    settings.LIVE_HOLD_SECONDS = 0


@pytest.fixture(autouse=True)
def loopback_image_hosts(settings):
    # The tests' image hosts (the simulator, stand-ins) are on loopback, which production
    # refuses; tests of that refusal set it back.
    settings.DOWNLOAD_ALLOW_PRIVATE_HOSTS = True


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


def make_user(username, **extra):
    return get_user_model().objects.create_user(
        username, f"{username}@example.com", PASSWORD, **extra
    )


@pytest.fixture
def alice(db):
    """The owner in access tests."""
    return make_user("alice")


@pytest.fixture
def bob(db):
    """A teammate: signed in, but not the owner."""
    return make_user("bob")


@pytest.fixture
def staff(db):
    return make_user("operator", is_staff=True, is_superuser=True)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client
