# The two first commands of the README: `make serve` and `make test`.
# Everything a fresh machine needs (Python 3.11 and make) is installed from here.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 4222
WORKERS ?= auto
# JetStream keeps its streams here (the broker appends "jetstream").
DATA ?= data

.PHONY: install serve test test-unit test-int lint perf clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/shardbroker serve -p $(PORT) --workers $(WORKERS) -js -sd $(DATA)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --timeout 180 tests

test-unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests/unit tests/fuzz

test-int: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests/integration tests/reliability

lint: $(STAMP)
	$(BIN)/ruff check shardbroker tests perf
	$(BIN)/lint-imports

perf: $(STAMP)
	$(BIN)/python -m perf.compare

clean:
	rm -rf $(VENV) build *.egg-info
