# The two commands of the README: `make run` and `make test`.
#   make run            install what running needs, migrate a local SQLite audit DB, serve
#   make run PORT=8081  the same on another port (HOST= too)
#   make test           + the test extras; ruff, mypy, pytest
#   make bench          + the bench extras; the benchmarks
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check --progress-bar on

HOST ?= 127.0.0.1
PORT ?= 8080
LOCAL_DB := sqlite:///var/audit.sqlite3

.PHONY: run test lint typecheck pytest bench clean install

$(BIN)/python:
	@echo "==> creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras: `make run` never installs the test or bench tools.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	@echo "==> installing backpain-cds and what it needs to run"
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-run
	@echo "==> installing the test tools (pytest, ruff, mypy, schemathesis, ...)"
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-run
	@echo "==> installing the bench tools"
	$(PIP) -e '.[bench]'
	touch $@

install: $(VENV)/.installed-run

# Local run: embedded SQLite audit database, authentication OFF (the service
# logs a warning line saying so at start-up). Never use this in production.
run: $(VENV)/.installed-run
	@mkdir -p var
	@DATABASE_URL=$${DATABASE_URL:-$(LOCAL_DB)} $(BIN)/backpain-cds db upgrade
	@DATABASE_URL=$${DATABASE_URL:-$(LOCAL_DB)} CDS_AUTH=off \
	  CDS_PUBLIC_URL=$${CDS_PUBLIC_URL:-http://$(HOST):$(PORT)} \
	  $(BIN)/backpain-cds serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test $(VENV)/.installed-bench
	$(BIN)/mypy

pytest: $(VENV)/.installed-test $(VENV)/.installed-bench
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(VENV)/.installed-bench $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
