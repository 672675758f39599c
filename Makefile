# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test lint typecheck pytest bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# Local run: embedded SQLite audit database, authentication OFF (the service
# logs a warning line saying so at start-up). Never use this in production.
run: $(STAMP)
	mkdir -p var
	DATABASE_URL=$${DATABASE_URL:-sqlite:///var/audit.sqlite3} $(BIN)/backpain-cds db upgrade
	DATABASE_URL=$${DATABASE_URL:-sqlite:///var/audit.sqlite3} CDS_AUTH=off \
	  CDS_PUBLIC_URL=http://$(HOST):$(PORT) \
	  $(BIN)/backpain-cds serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
