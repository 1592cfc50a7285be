# wearables-ingest: `make test` is what a newcomer and CI run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: help setup db-server stack-tools docker-engine rules test bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml ingest/requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -c ingest/requirements.txt -e .
	touch $@

setup: $(VENV)/.installed  ## virtual environment: the project (editable) and the test tools

db-server:  ## PostgreSQL 15 + TimescaleDB for the tests (skipped with TEST_DATABASE_URL)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "Using TEST_DATABASE_URL; not installing a local server"; \
	else \
		bash scripts/ensure-timescaledb.sh; \
	fi

stack-tools:  ## the Compose v2 plugin, Debian's cron, prometheus and prometheus-pushgateway
	bash scripts/ensure-stack-tools.sh

docker-engine:  ## Debian's docker.io (dockerd) and debootstrap, for the container tests
	bash scripts/ensure-docker.sh

rules: stack-tools  ## the alert rules: promtool check rules, then their unit tests
	promtool check rules monitoring/alerts.yml
	promtool test rules monitoring/alerts.test.yml

test: lint db-server stack-tools docker-engine rules  ## lint, the alert rules, then the tests: a throwaway TimescaleDB, the stack in containers
	$(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)

bench: setup db-server  ## loader vs psql \copy, side by side (30 min or more; BENCH_ARGS="--cases night,midhour" for some, --help)
	$(PY) bench/bench.py $(BENCH_ARGS)

lint: setup  ## ruff on the Python, hadolint on the Dockerfiles
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint ingest/Dockerfile scripts/stand-ins/*.Dockerfile

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
