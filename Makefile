# Mittis: `make run` starts everything on embedded defaults; `make test` runs the tests.
# Without DATABASE_URL and CELERY_BROKER_URL, both start their own PostgreSQL and Redis from pip-installed
# wheels (`mittis.embedded`), with data under var/, and stop them when they end.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMBEDDED := $(BIN)/python -m mittis.embedded

PEERS := tests/peers/node_modules/.installed
# `make run PORT=8001` serves there: the URLs it prints and MITTIS_PUBLIC_URL follow.
PORT ?= 8000

.PHONY: run serve test bench load install migrate clean

# One environment for every target: requirements-dev.txt is the runtime (requirements.txt) plus what only
# the tests need, so `make run` and `make test` are each one command on a fresh machine. Production
# installs requirements.txt alone.
$(STAMP): requirements.txt requirements-dev.txt sdk/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# The tests' real peers (an SMPP SMSC simulator, Prism serving Twilio's OpenAPI description), from npm.
# Without npm those tests are skipped, and say so.
$(PEERS): tests/peers/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/peers && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the SMPP and Twilio peer tests will be skipped"; fi

# `migrate` and `serve` run inside `make run`, with its servers' URLs set.
migrate: install
	$(BIN)/python manage.py migrate --noinput --verbosity 0

# A busy port stops it at once, before a server starts or a key is made.
run: install
	@$(BIN)/python -m mittis.ops.run --check $(PORT)
	$(EMBEDDED) --name dev -- $(MAKE) --no-print-directory serve

# Procfile.dev with honcho; once it is up, a new test key of the Demo account (the sender of the README's
# curl) and the next steps, printed last and never written to a file (mittis/ops/run.py).
serve: migrate
	$(BIN)/python -m mittis.ops.run $(PORT)

test: install $(PEERS)
	$(EMBEDDED) --name test -- $(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks on the machine's PostgreSQL and Redis (a database of their own), printed as one table.
BENCH_DB := postgres://postgres@127.0.0.1:5432/mittis_bench
bench: install
	@command -v wrk >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
	@psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS mittis_bench" && psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE mittis_bench"
	DATABASE_URL=$(BENCH_DB) CELERY_BROKER_URL=redis://127.0.0.1:6379/2 $(BIN)/python manage.py migrate --noinput -v0
	DATABASE_URL=$(BENCH_DB) CELERY_BROKER_URL=redis://127.0.0.1:6379/2 $(BIN)/python manage.py bench $(BENCH_ARGS)

# 50,000 messages through the API under faults, then every promise checked (see `manage.py loadtest`).
LOAD_DB := postgres://postgres@127.0.0.1:5432/mittis_load
load: install
	@psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS mittis_load" && psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE mittis_load"
	@redis-cli -h 127.0.0.1 -n 3 flushdb >/dev/null
	DATABASE_URL=$(LOAD_DB) CELERY_BROKER_URL=redis://127.0.0.1:6379/3 $(BIN)/python manage.py migrate --noinput -v0
	DATABASE_URL=$(LOAD_DB) CELERY_BROKER_URL=redis://127.0.0.1:6379/3 $(BIN)/python manage.py loadtest $(LOAD_ARGS)

clean:
	rm -rf $(VENV) var staticfiles tests/peers/node_modules
