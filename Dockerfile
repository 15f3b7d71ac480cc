# Darkroom: one image for the web server (the default command) and the worker
# (`python manage.py qcluster`). tests/test_deploy.py runs its collectstatic, CMD and
# HEALTHCHECK outside Docker; `make test` installs the same dependencies (`.[test]` holds `.[s3]`).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBUG=0 \
    DARKROOM_DATA_DIR=/data \
    WEB_CONCURRENCY=3

RUN useradd --create-home --uid 1000 darkroom \
    && mkdir -p /data && chown darkroom:darkroom /data
WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer. The s3
# extra is included so the same image can keep media on S3-compatible storage.
COPY pyproject.toml README.md ./
RUN pip install '.[s3]'

COPY . .
# Hashed, compressed static files for whitenoise; the key only satisfies the settings.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0

USER darkroom
EXPOSE 8000
VOLUME ["/data"]

# slim has no curl: ask /healthz with Python, as one of ALLOWED_HOSTS (Django refuses
# other Host headers); /healthz is exempt from the HTTPS redirect.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; host = os.environ.get('ALLOWED_HOSTS', 'localhost').split(',')[0].strip().lstrip('.*') or 'localhost'; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': host}), timeout=4)"]

# config/gunicorn.py: WEB_CONCURRENCY processes of WEB_THREADS threads (a request waiting for
# generations holds one, at most all but an eighth of them); logs to stdout, redacted.
CMD ["gunicorn", "--config", "python:config.gunicorn", "--bind", "0.0.0.0:8000", "config.wsgi"]
