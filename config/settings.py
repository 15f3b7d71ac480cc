"""Darkroom settings, read from the environment.

With no environment at all this runs for development: SQLite, media and a generated
SECRET_KEY in the git-ignored data folder. Production sets DEBUG=0 and the variables
listed in README.md; a missing or malformed value stops start-up with a clear message.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    return os.environ.get(name, default)


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


DEBUG = envbool("DEBUG", True)

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
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = _development_secret_key()

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

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
    "gallery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
# workers and the web process from losing writes to "database is locked" under load.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    try:
        _database = dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    if _database["ENGINE"] == "django.db.backends.sqlite3":
        _database["OPTIONS"] = {**SQLITE_OPTIONS, **_database.get("OPTIONS", {})}
    else:
        _database["CONN_HEALTH_CHECKS"] = True
else:
    _database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        "OPTIONS": SQLITE_OPTIONS,
    }
if _database["ENGINE"] == "django.db.backends.sqlite3":
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
LOGOUT_REDIRECT_URL = "login"
# Open teams let people sign themselves up; closed teams turn this off and use admin.
SIGNUP_ENABLED = envbool("SIGNUP_ENABLED", True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
if DEBUG:
    STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at every start when it is missing
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "media/"  # never routed: private media is served by views after a check
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# The provider. With no key, Darkroom talks to its built-in simulator (`make run` starts it).
PIXAZO_API_KEY = env("PIXAZO_API_KEY")
PIXAZO_SIMULATED = not PIXAZO_API_KEY
SIMULATOR_PORT = envint("SIMULATOR_PORT", 8001)
SIMULATOR_API_KEY = "darkroom-simulator"
if PIXAZO_SIMULATED:
    PIXAZO_API_KEY = SIMULATOR_API_KEY
PIXAZO_BASE_URL = env(
    "PIXAZO_BASE_URL",
    f"http://127.0.0.1:{SIMULATOR_PORT}/gpt-image-1-5-api-923/v1"
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
    "poll": 0.1,
    "save_limit": 250,
    "queue_limit": 50,
    "catch_up": False,
    "label": "Background tasks",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# The generation pipeline (see gallery/tasks.py).
GENERATION_DEADLINE_SECONDS = envint("GENERATION_DEADLINE_SECONDS", 600)
FIRST_POLL_SECONDS = envfloat("FIRST_POLL_SECONDS", 0.5)
MAX_POLL_INTERVAL_SECONDS = envfloat("MAX_POLL_INTERVAL_SECONDS", 10.0)
DOWNLOAD_CLAIM_SECONDS = envint("DOWNLOAD_CLAIM_SECONDS", 60)
POLLER_CONCURRENCY = envint("POLLER_CONCURRENCY", 16)
IMAGE_MAX_BYTES = envint("IMAGE_MAX_BYTES", 25 * 1024 * 1024)
IMAGE_MAX_PIXELS = envint("IMAGE_MAX_PIXELS", 4096 * 4096)
