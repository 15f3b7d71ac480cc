# Darkroom: one image for the web server and the worker (`python manage.py qcluster`).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DARKROOM_DATA_DIR=/data

RUN useradd --create-home --uid 1000 darkroom && mkdir -p /data && chown darkroom /data
WORKDIR /app

COPY pyproject.toml README.md ./
RUN pip install --upgrade pip && pip install .
COPY . .
# The same collectstatic command CI runs; a throwaway key, since settings refuse none.
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0

USER darkroom
EXPOSE 8000
VOLUME ["/data"]
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
