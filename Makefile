# Darkroom: `make run` to use it, `make test` to check it. Everything else is a helper.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

# The interpreter named by .python-version (pyenv picks it up), else the newest python3 we find.
PYTHON_SYS := $(shell for p in python3 python3.13 python3.12; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

# A .env file beside this Makefile is read by `make run` (exported to its processes).
ifneq (,$(wildcard .env))
include .env
export
endif

.PHONY: run test test-postgres postgres lint bench install install-test browser oidc-provider clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON_SYS)" || { echo "Darkroom needs Python 3.12 or newer (found: $$(python3 --version 2>&1)); install it or use pyenv with .python-version." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON_SYS) -m venv $(VENV)
	@$(BIN)/python -m pip install -q -e . >$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $@

$(BIN)/.installed-test: $(BIN)/.installed pyproject.toml
	@$(BIN)/python -m pip install -q -e '.[test]' >$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $@

install: $(BIN)/.installed

install-test: $(BIN)/.installed-test

# Debian's chromium for the browser tests; Playwright never downloads a browser here.
browser:
	@command -v chromium >/dev/null || { \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/tmp/darkroom-apt.log 2>&1 \
				|| { cat /tmp/darkroom-apt.log; exit 1; }; \
		else echo "chromium is missing and apt is not usable: browser tests will be skipped" >&2; fi; }

# The OpenID Connect provider the sign-in tests run against (npm oidc-provider, on Node);
# installed once from its lock file, then offline.
OIDC_PROVIDER := tests/oidc_provider
$(OIDC_PROVIDER)/node_modules/.installed: $(OIDC_PROVIDER)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(OIDC_PROVIDER) --no-audit --no-fund --silent >$(OIDC_PROVIDER)/npm.log 2>&1 \
			|| { cat $(OIDC_PROVIDER)/npm.log; exit 1; }; \
		touch $@; \
	else echo "npm is missing: the OpenID Connect tests will be skipped" >&2; fi

oidc-provider: $(OIDC_PROVIDER)/node_modules/.installed

# Web server, django-q2 worker and, with no PIXAZO_API_KEY, the gateway simulator (whose
# images are on loopback, which downloads otherwise refuse). run_procfile starts the
# Procfile's entries and stops them all on Ctrl+C, whenever it comes.
PROCESSES = web worker $(if $(PIXAZO_API_KEY),,simulator)
SIMULATOR_ENV = $(if $(PIXAZO_API_KEY),,DOWNLOAD_ALLOW_PRIVATE_HOSTS=1)

# DEBUG is off unless set (settings.py); the development server turns it on, unless the
# environment (or .env) says otherwise, and says so.
run: export DEBUG ?= 1
run: install
	@$(BIN)/python manage.py migrate --noinput -v 0
	@echo "Darkroom: open http://127.0.0.1:$(PORT)/ ($(if $(PIXAZO_API_KEY),real Pixazo gateway,built-in gateway simulator: set PIXAZO_API_KEY for real images)). Ctrl+C stops it."
	@echo "$(if $(filter 1 true yes on,$(DEBUG)),DEBUG=1: development mode for this server only (tracebacks on error pages, mail printed here); production runs with DEBUG off,DEBUG=$(DEBUG) from your environment: production settings on the development server)."
	@PATH="$(abspath $(BIN)):$$PATH" DARKROOM_PORT=$(PORT) $(SIMULATOR_ENV) $(BIN)/python manage.py run_procfile $(PROCESSES)

test: install-test browser oidc-provider
	@$(BIN)/ruff check --quiet .
	@$(BIN)/ruff format --check --quiet .
	@$(BIN)/python -m pytest
	@$(MAKE) --no-print-directory test-postgres

# Debian's PostgreSQL server, for the tests marked `postgres` and the benchmark.
HAVE_POSTGRES = ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
postgres:
	@$(HAVE_POSTGRES) || { \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/tmp/darkroom-apt.log 2>&1 \
				|| { cat /tmp/darkroom-apt.log; exit 1; }; \
		else echo "PostgreSQL is missing and apt is not usable: PostgreSQL tests will be skipped" >&2; fi; }

# The database-sensitive tests again, on a throwaway PostgreSQL cluster (.ci/with-postgres).
test-postgres: install-test postgres
	@if $(HAVE_POSTGRES); then .ci/with-postgres $(BIN)/python -m pytest -m postgres; fi

lint: install-test
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

# The benchmarks: a burst of people pressing Generate, measured from the first click
# through the shipped server; the pipeline's scaling; what the page waits and asks (in
# Debian's chromium); the zip's memory; load and the open pages one web host holds
# (gunicorn, worker, simulator; loopback only) on SQLite and on PostgreSQL; the Generate
# request at 10 and 10,000 generations; the studio, a gallery's page, Galleries and Team at
# 10 and 10,000 images (SQLite and PostgreSQL); the studio page while 8 and 48 OpenAI-style
# requests wait on slow generations (bench_api); Lighthouse on the image pages (npm lighthouse
# from tests/lighthouse's lock file, on Debian's chromium). Each prints its
# rows; the last table has every row side by side, and the exit code says whether every
# target was met. BENCH_ARGS="--users 20 --seconds 20" shortens the load run.
BENCHES = bench_burst bench_pipeline bench_page bench_zip bench_spend bench_page_scale \
	bench_page_scale_pg bench_api bench_lighthouse bench_load
bench: install-test postgres browser
	@rm -f $(foreach b,$(BENCHES),bench-results/$(b).json)
	@$(BIN)/python tests/benchmarks/bench_burst.py || true
	@$(BIN)/python tests/benchmarks/bench_pipeline.py || true
	@$(BIN)/python tests/benchmarks/bench_page.py || true
	@$(BIN)/python tests/benchmarks/bench_zip.py || true
	@$(BIN)/python tests/benchmarks/bench_spend.py || true
	@$(BIN)/python tests/benchmarks/bench_page_scale.py || true
	@if $(HAVE_POSTGRES); then .ci/with-postgres $(BIN)/python tests/benchmarks/bench_page_scale.py || true; fi
	@$(BIN)/python tests/benchmarks/bench_api.py || true
	@$(BIN)/python tests/benchmarks/bench_lighthouse.py || true
	@if $(HAVE_POSTGRES); then .ci/with-postgres $(BIN)/python tests/benchmarks/bench_load.py $(BENCH_ARGS) || true; \
	else $(BIN)/python tests/benchmarks/bench_load.py $(BENCH_ARGS) || true; fi
	@$(BIN)/python tests/benchmarks/summary.py $(BENCHES)

# What installing and testing leave behind; never the data folder's database and images.
clean:
	rm -rf $(VENV) staticfiles test-artifacts bench-results data/test-*.sqlite3* $(OIDC_PROVIDER)/node_modules tests/lighthouse/node_modules
