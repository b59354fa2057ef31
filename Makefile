# Loupe: `make run` serves the app with demo data; `make test` runs the tests;
# `make test-fast` leaves out the browser and worker tests and runs on every
# core (pytest-xdist) (README: Development).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: install run test test-fast lint bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

run: install
	PORT=$(PORT) BIN=$(BIN) scripts/run.sh

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -n auto -m "not browser and not worker" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/import_bench.py

clean:
	rm -rf $(VENV) var
