"""Darkroom settings, read from the environment.

DEBUG is off unless the environment turns it on: a deployment that forgets it never shows
tracebacks. Development (`make run`, the tests) sets DEBUG=1 and then needs nothing else:
SQLite, media and a generated SECRET_KEY in the git-ignored data folder. Production sets the
variables listed in README.md; a missing or malformed value stops start-up with a clear
message.
"""

import json
import os
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    # Empty counts as unset, as with the other helpers: `PIXAZO_BASE_URL=` in a .env file.
    return os.environ.get(name) or default


def envbool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no), not {value!r}")


def envint(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envfloat(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envlist(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)

# Everything the instance writes on one machine lives here: database, media, dev secret.
DATA_DIR = Path(env("DARKROOM_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _development_secret_key():
    # Generated once and kept, so sessions survive restarts of `make run`.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (DEBUG is off unless set; for "
            "development, `make run` sets DEBUG=1)"
        )
    SECRET_KEY = _development_secret_key()

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

# HTTPS. Production assumes TLS, usually ended by a reverse proxy in front of gunicorn.
# TRUSTED_PROXY_COUNT is how many such proxies set X-Forwarded-Proto and X-Forwarded-For;
# only then are those headers believed (never set it if clients can reach gunicorn directly).
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
# The container's health check asks over plain HTTP from inside the container.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading commits the whole domain to HTTPS in browsers for months: the domain owner's
# decision, so it is opt-in and Django's reminder about it is silenced.
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)

# Content-Security-Policy, enforced in development too so tests meet every violation:
# no inline script or style, no eval (htmx runs with allowEval:false, see base.html).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "ninja",  # the API's docs page from its own static files, not a CDN
    "axes",
    "gallery",
]

MIDDLEWARE = [
    # First, before any redirect: notes X-Forwarded-For while TRUSTED_PROXY_COUNT=0.
    "gallery.proxy.watch_forwarded_for",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # After (so, on the way out, before) the policy is written: Sign out may lead on to the
    # identity provider.
    "gallery.identity.oidc.provider_in_form_action",
    # Last, as django-axes asks: it turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "gallery.context_processors.darkroom",
            ],
        },
    },
]

# SQLite by default. WAL, IMMEDIATE transactions and a busy timeout keep django-q2's
# workers and the web process from losing writes to "database is locked" under load; our
# engine (Django's, see gallery/sqlite/base.py) queues the writers instead of letting them
# sleep in SQLite's busy handler.
SQLITE_ENGINE = "gallery.sqlite"
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
# Lower case, so it is no setting: settings are listed on DEBUG error pages and by
# `diffsettings`, and this URL holds the database password.
_database_url = env("DATABASE_URL")
if _database_url:
    try:
        _database = dj_database_url.parse(_database_url, conn_max_age=envint("DB_CONN_MAX_AGE", 60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    if _database["ENGINE"] == "django.db.backends.sqlite3":
        # Django's backend with writers that queue (gallery/sqlite/base.py).
        _database["ENGINE"] = SQLITE_ENGINE
        _database["OPTIONS"] = {**SQLITE_OPTIONS, **_database.get("OPTIONS", {})}
    else:
        _database["CONN_HEALTH_CHECKS"] = True
else:
    _database = {
        "ENGINE": SQLITE_ENGINE,
        "NAME": DATA_DIR / "db.sqlite3",
        "OPTIONS": SQLITE_OPTIONS,
        # Kept open, as with PostgreSQL: opening one runs SQLITE_OPTIONS' pragmas, and
        # django-q2 asks for new tasks every Q_CLUSTER["poll"] (twice the idle CPU without).
        "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", 60),
    }
if _database["ENGINE"] == SQLITE_ENGINE:
    # A file, not memory, so test runs can share the database with a real qcluster
    # subprocess; one per test process, so parallel runs never collide.
    _database["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "studio"
LOGOUT_REDIRECT_URL = "signed_out"  # admin's sign out too

# -- Identity: who may make an account, OpenID Connect sign-in, e-mail (gallery/identity/) --
# SIGNUP_MODE: "open" (anyone may sign up and generate), "approval" (anyone may sign up, an
# operator approves before they spend the team's subscription) or "closed" (operators,
# invitations and OIDC only). SIGNUP_ENABLED=0, the older switch, still means closed.
SIGNUP_MODES = ("open", "approval", "closed")
SIGNUP_ENABLED = envbool("SIGNUP_ENABLED", True)
SIGNUP_MODE = env(
    "SIGNUP_MODE", "closed" if not SIGNUP_ENABLED else "open" if DEBUG else "approval"
)
if SIGNUP_MODE not in SIGNUP_MODES:
    raise ImproperlyConfigured(
        f"SIGNUP_MODE must be one of {', '.join(SIGNUP_MODES)}, not {SIGNUP_MODE!r}"
    )
INVITATION_DAYS = 7

# OpenID Connect through mozilla-django-oidc (gallery/identity/oidc.py). Endpoints and keys
# come from OIDC_ISSUER's discovery document, fetched when first needed, never at start-up.
OIDC_ISSUER = env("OIDC_ISSUER").rstrip("/")
OIDC_RP_CLIENT_ID = env("OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env("OIDC_CLIENT_SECRET")  # "SECRET": hidden on Django's error pages
OIDC_LABEL = env("OIDC_LABEL", "SSO")  # the button says "Sign in with <OIDC_LABEL>"
OIDC_ALLOWED_EMAIL_DOMAINS = [
    d.lower().lstrip("@") for d in envlist("OIDC_ALLOWED_EMAIL_DOMAINS", [])
]
OIDC_CREATE_USER = envbool("OIDC_CREATE_USERS", True)
# The claim that says the e-mail address is verified: Microsoft Entra sends no
# email_verified; there, add the optional claim xms_edov and name it here.
OIDC_EMAIL_VERIFIED_CLAIM = env("OIDC_EMAIL_VERIFIED_CLAIM", "email_verified")
OIDC_ONLY = envbool("OIDC_ONLY", False)
OIDC_RP_SIGN_ALGO = env("OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_TIMEOUT = envfloat("OIDC_TIMEOUT_SECONDS", 10.0)  # the library's default is to wait forever

# E-mail (invitations, password reset) through Django 6.1's MAILERS. EMAIL_URL such as
# smtp+tls://user:pass@host:587; unset, development prints mail to the console and
# production sends none (EMAIL_ENABLED: the pages that would e-mail say so instead).
SMTP_SCHEMES = {
    "smtp": (False, False, 25),
    "smtp+tls": (True, False, 587),
    "smtp+ssl": (False, True, 465),
}


def envmailer(name, timeout):
    """An smtp://, smtp+tls:// (STARTTLS) or smtp+ssl:// URL as a MAILERS entry."""
    value = os.environ.get(name, "").strip()
    url = urlsplit(value)
    try:
        use_tls, use_ssl, default_port = SMTP_SCHEMES[url.scheme]
        port = url.port or default_port
        if not url.hostname:
            raise ValueError
    except (KeyError, ValueError):
        # The value holds a password: never repeat it.
        raise ImproperlyConfigured(
            f"{name} must look like smtp+tls://user:password@mail.example.com:587 "
            f"(schemes: {', '.join(SMTP_SCHEMES)}; quote special characters, %40 for @)"
        ) from None
    options = {
        "host": url.hostname,
        "port": port,
        "username": unquote(url.username or ""),
        "password": unquote(url.password or ""),
        "use_tls": use_tls,
        "use_ssl": use_ssl,
        "timeout": timeout,
    }
    return {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}


EMAIL_ENABLED = bool(env("EMAIL_URL")) or DEBUG
if env("EMAIL_URL"):
    MAILERS = {"default": envmailer("EMAIL_URL", envint("EMAIL_TIMEOUT_SECONDS", 10))}
elif DEBUG:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
else:
    # Deliberately none: nothing is sent, and Django's deploy check would call that an error.
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.dummy.EmailBackend"}}
    SILENCED_SYSTEM_CHECKS.append("mail.E001")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Darkroom <darkroom@localhost>")
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24  # a reset link works for a day (and only once)

# Login throttling (django-axes, gallery/identity/throttling.py): after LOGIN_FAILURE_LIMIT
# wrong passwords for one username from one address, that pair waits LOGIN_COOLOFF_MINUTES;
# after LOGIN_ADDRESS_FAILURE_LIMIT from one address, whatever the usernames (password
# spraying), the whole address waits as long. Never a permanent lock, and keyed on the
# address, so a stranger cannot lock a colleague out from elsewhere. (Sign-up, password
# reset and invitation mail are throttled in the same module, through gallery/throttles.py.)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a throttled pair before any check
    "django.contrib.auth.backends.ModelBackend",
    # Always listed, configured or not, so sessions it signed in survive a restart without
    # OIDC; it answers only on the OIDC callback (and never counts towards throttling).
    "gallery.identity.oidc.TeamOIDCBackend",
]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
LOGIN_ADDRESS_FAILURE_LIMIT = envint("LOGIN_ADDRESS_FAILURE_LIMIT", 30)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "gallery.identity.throttling.LoginFailures"  # adds the per-address limit
AXES_RESET_ON_SUCCESS = True
# Attempts refused during a pause don't count: the pause ends when the page said it would.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_LOCKOUT_CALLABLE = "gallery.identity.throttling.login_paused"  # 429, Retry-After, time left
AXES_VERBOSE = False  # no banner at every start; lockouts are still logged as warnings
AXES_CLIENT_IP_CALLABLE = "gallery.proxy.client_address"  # honours TRUSTED_PROXY_COUNT

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
if DEBUG:
    STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at every start when it is missing
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "media/"  # never routed: private media is served by views after a check
# Behind nginx, media views answer with X-Accel-Redirect to this internal location (e.g.
# "/protected-media/", aliased to MEDIA_ROOT) after their check; unset, Django sends the file.
MEDIA_ACCEL_REDIRECT_PREFIX = env("MEDIA_ACCEL_REDIRECT_PREFIX")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Media on S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, ...) once a bucket is
# named, so web and worker processes on several hosts share one store. Needs the `s3` extra
# (pip install '.[s3]'); boto3 reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY itself.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage"}
    AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL") or None  # unset: AWS itself
    AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME") or None
    AWS_LOCATION = env("AWS_LOCATION")  # a key prefix, to share a bucket
    AWS_DEFAULT_ACL = None  # objects stay as private as the bucket
    AWS_S3_FILE_OVERWRITE = False  # a name taken twice gets a suffix, as on disk

# The provider. With no key, Darkroom talks to its built-in simulator (`make run` starts it).
PIXAZO_API_KEY = env("PIXAZO_API_KEY")
PIXAZO_SIMULATED = not PIXAZO_API_KEY
SIMULATOR_PORT = envint("SIMULATOR_PORT", 8001)
SIMULATOR_HOST = env("SIMULATOR_HOST", "127.0.0.1")  # compose.yaml: the simulator's container
SIMULATOR_API_KEY = "darkroom-simulator"
if PIXAZO_SIMULATED:
    PIXAZO_API_KEY = SIMULATOR_API_KEY
PIXAZO_BASE_URL = env(
    "PIXAZO_BASE_URL",
    f"http://{SIMULATOR_HOST}:{SIMULATOR_PORT}/gpt-image-1-5-api-923/v1"
    if PIXAZO_SIMULATED
    else "https://gateway.pixazo.ai/gpt-image-1-5-api-923/v1",
)

# django-q2 on the default database. `retry` must exceed `timeout`, or a task that is
# still running is handed to a second worker.
Q_CLUSTER = {
    "name": "darkroom",
    "orm": "default",
    "workers": envint("Q_WORKERS", 2),
    "timeout": 120,
    "retry": 150,
    # How often the cluster looks for new tasks: a Generate whose shard has no poller
    # running waits this long, at most, for one (a look is one indexed query).
    "poll": 0.05,
    "save_limit": 250,
    "queue_limit": 50,
    "catch_up": False,
    "label": "Background tasks",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # The development server's own look for its request lines.
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    # Share, invitation and reset tokens are in URLs, and URLs are in log lines: every
    # handler redacts them.
    "filters": {"redact_secrets": {"()": "gallery.redaction.RedactSecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",  # containers and honcho collect stdout
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Django's default gives these handlers of its own, which would not redact.
        "django": {"level": "INFO"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}

# Deleted generations wait in the trash this many days (restorable), then a daily task
# removes them and their files for good (gallery.tasks.empty_expired_trash).
TRASH_DAYS = envint("TRASH_DAYS", 30)

# The generation pipeline (see gallery/tasks.py).
GENERATION_DEADLINE_SECONDS = envint("GENERATION_DEADLINE_SECONDS", 600)
FIRST_POLL_SECONDS = envfloat("FIRST_POLL_SECONDS", 0.5)
MAX_POLL_INTERVAL_SECONDS = envfloat("MAX_POLL_INTERVAL_SECONDS", 10.0)
DOWNLOAD_CLAIM_SECONDS = envint("DOWNLOAD_CLAIM_SECONDS", 60)
# A submit whose worker died is failed (never resent) after this long: longer than a live
# submit can take (one attempt, at most GATEWAY_READ_TIMEOUT_SECONDS), so none is cut short.
SUBMIT_CLAIM_SECONDS = envint("SUBMIT_CLAIM_SECONDS", 600)
# Pollers share the generations out by id, each in a worker of its own, so checking images
# and making thumbnails use as many processes. One per worker of a cluster by default; it
# must be the same for every process of an installation.
POLLER_SHARDS = max(1, envint("POLLER_SHARDS", Q_CLUSTER["workers"]))
# Downloads (fetching, checking images, thumbnails) each poller runs at once, and while none
# waits, display renditions in one of them: CPU work, so few threads; more only contend for
# the interpreter and the cores. Gateway calls don't use these.
POLLER_CONCURRENCY = envint("POLLER_CONCURRENCY", 4)
# Gateway calls in flight at once, for the whole installation (each shard's poller gets its
# share): waiting on the gateway is I/O and takes no thread, this only keeps from flooding it.
GATEWAY_MAX_IN_FLIGHT = envint("GATEWAY_MAX_IN_FLIGHT", 64)
# A submit unanswered this long may still have been queued: it fails rather than be resent.
GATEWAY_READ_TIMEOUT_SECONDS = envfloat("GATEWAY_READ_TIMEOUT_SECONDS", 60.0)
# A 404 to a poll this soon after the submit, before any poll was answered, may only mean
# the gateway's queue has not caught up with its front door: poll again, don't give up.
UNKNOWN_REQUEST_GRACE_SECONDS = envfloat("UNKNOWN_REQUEST_GRACE_SECONDS", 30.0)
# Result polls per generation per minute, on average (after a first burst of 10).
POLLS_PER_MINUTE = envfloat("POLLS_PER_MINUTE", 20.0)
# The poller hands over to a fresh django-q2 task this often, so a cluster told to stop
# is never held up for long by it.
POLLER_HANDOVER_SECONDS = envfloat("POLLER_HANDOVER_SECONDS", 10.0)
# The web server (config/gunicorn.py): threads per process. A request waiting for
# generations to change (the studio's live updates, gallery.changes) holds one while it
# waits; at most WAITING_REQUESTS_PER_PROCESS of them do, so the rest serve the site.
WEB_THREADS = max(2, envint("WEB_THREADS", 64))
WAITING_REQUESTS_PER_PROCESS = max(
    1, envint("WAITING_REQUESTS_PER_PROCESS", WEB_THREADS - max(4, WEB_THREADS // 8))
)
# The OpenAI-compatible endpoint (gallery/api/openai.py) holds its request until the
# generation finishes, this long at most (then 504; the generation goes on in the studio).
# Each waiting request is one of the WAITING_REQUESTS_PER_PROCESS above.
OPENAI_COMPAT_TIMEOUT = envfloat("OPENAI_COMPAT_TIMEOUT", 300.0)
# Its `response_format="url"` links to an original work this long (signed, no token needed).
OPENAI_IMAGE_URL_SECONDS = envint("OPENAI_IMAGE_URL_SECONDS", 3600)
# The studio's update request is held this long at most while nothing on the page changes.
LIVE_HOLD_SECONDS = envfloat("LIVE_HOLD_SECONDS", 20.0)
# `manage.py run_worker` gives the cluster this long to stop by itself, then kills what is
# left of it (a poller hands over at once when told to stop, so a few seconds do).
WORKER_STOP_SECONDS = envfloat("WORKER_STOP_SECONDS", 5.0)
# Images are fetched from public addresses only: a private, loopback or link-local one is
# refused (checked on the address connected to). `make run` allows them for its simulator.
DOWNLOAD_ALLOW_PRIVATE_HOSTS = envbool("DOWNLOAD_ALLOW_PRIVATE_HOSTS", False)
IMAGE_MAX_BYTES = envint("IMAGE_MAX_BYTES", 25 * 1024 * 1024)
IMAGE_MAX_PIXELS = envint("IMAGE_MAX_PIXELS", 4096 * 4096)

# Spend control (gallery/spend.py): estimated USD per image by quality, then size. The
# defaults are GPT-Image 1.5's published prices on fal. The gateway's extra "standard"
# quality has no published price: it is estimated as medium, the gateway's faster
# alternative to high. PRICE_TABLE in the environment is JSON in the same shape, laid
# over the defaults: {"high": {"1024x1024": 0.15}} changes one price.
DEFAULT_PRICE_TABLE = {
    "low": {"1024x1024": "0.009", "1024x1536": "0.013", "1536x1024": "0.013"},
    "medium": {"1024x1024": "0.034", "1024x1536": "0.051", "1536x1024": "0.050"},
    "high": {"1024x1024": "0.133", "1024x1536": "0.200", "1536x1024": "0.199"},
    "standard": {"1024x1024": "0.034", "1024x1536": "0.051", "1536x1024": "0.050"},
}


def envprices(name, default):
    table = {q: {s: Decimal(p) for s, p in sizes.items()} for q, sizes in default.items()}
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return table
    example = '{"high": {"1024x1024": 0.15}}'
    try:
        override = json.loads(value, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not JSON ({exc}); expected e.g. {example}") from None
    if not isinstance(override, dict) or not all(isinstance(s, dict) for s in override.values()):
        raise ImproperlyConfigured(f"{name} must map quality to size to price, e.g. {example}")
    for quality, sizes in override.items():
        for size, price in sizes.items():
            if not isinstance(price, Decimal) or price < 0:
                raise ImproperlyConfigured(
                    f"{name}: the {quality} {size} price must be a number of dollars, not {price!r}"
                )
            table.setdefault(quality, {})[size] = price
    return table


PRICE_TABLE = envprices("PRICE_TABLE", DEFAULT_PRICE_TABLE)

# /metrics (Prometheus text) is off, answering 404, unless this is set; scrapers then send
# it as a bearer token ("Authorization: Bearer ...").
METRICS_TOKEN = env("METRICS_TOKEN")

# /healthz calls the worker stale when its heartbeat (the every-minute watchdog task) is
# older than this; django-q2 fires that schedule every 30 to 60 seconds or so.
WORKER_STALE_SECONDS = envint("WORKER_STALE_SECONDS", 180)
