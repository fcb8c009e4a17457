# The first commands of the README: `make serve`, `make test` and `make check`.
# Everything a fresh machine needs (Python 3.11 and make) is installed from here.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 4222
WORKERS ?= auto
# JetStream keeps its streams here (the broker appends "jetstream").
DATA ?= data

# What ruff and mypy look at (perf/ is typed too; tests/ are linted, not type-checked).
LINT_PATHS := shardbroker tests perf examples
TYPED := shardbroker perf examples

.PHONY: install serve test test-unit test-int fmt lint check perf fuzz soak clean \
	browser-deps screenshots

# The compiled core is built by pip too: a changed .pyx or .pxd rebuilds it.
$(STAMP): pyproject.toml setup.py $(wildcard shardbroker/core/*.pyx shardbroker/core/*.pxd)
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

# The long form of tests whose figures are set by time: the publisher rate limit at the
# issue's size (1,000 msg/s, 10,000 messages, at least 9 s, every message in order).
soak: $(STAMP)
	RATE_LIMIT_SOAK=1 $(BIN)/python -m pytest tests/integration/test_rate_limit.py \
		-k slows_one_connection

test-int: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests/integration tests/reliability

# What the browser tests need (they skip, saying so, without it): Debian's Chromium, driven
# by playwright-core, and @nats-io/nats-core for the websocket page (tests/browser/).
browser-deps:
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	npm ci --prefix tests/browser --no-audit --no-fund

# The README's picture of the dashboard (docs/dashboard.png), from its browser test with a
# minute of load.
screenshots: $(STAMP)
	SHARDBROKER_UPDATE_DOCS=1 $(BIN)/python -m pytest tests/integration/test_dashboard_browser.py

fmt: $(STAMP)
	$(BIN)/ruff check --select I --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

# The static checks: style and bugs (ruff), layout (ruff format), the import contracts
# of pyproject.toml (import-linter), types (mypy).
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports
	$(BIN)/mypy $(TYPED)

# Everything CI runs (.ci/run): the static checks, then the whole test suite.
check: lint test

perf: $(STAMP)
	$(BIN)/python -m perf.compare

# Coverage-guided fuzzing of the compiled core against its pure twin (atheris): new
# inputs go to .fuzz/, the repository's corpus seeds it (make test replays that corpus).
# Then the same checks on a build of the extension with AddressSanitizer and
# UndefinedBehaviorSanitizer (tests/fuzz/sanitized.sh): every input of the corpus the
# first run grew, and FUZZ_SANITIZED_RUNS mutants of them (tests/fuzz/sanitized_replay.py;
# the gcc sanitizer runtime takes over libFuzzer's coverage hooks, so the first run
# steers and the second one checks memory and undefined behaviour).
FUZZ_RUNS ?= 1000000
FUZZ_SANITIZED_RUNS ?= 1000000
fuzz: $(STAMP)
	mkdir -p .fuzz/core
	PYTHONPATH=. $(BIN)/python tests/fuzz/atheris_core.py -atheris_runs=$(FUZZ_RUNS) \
		.fuzz/core tests/fuzz/corpus/core
	tests/fuzz/sanitized.sh .fuzz/asan $(BIN)/python \
		$(BIN)/python tests/fuzz/sanitized_replay.py $(FUZZ_SANITIZED_RUNS) \
		.fuzz/core tests/fuzz/corpus/core

clean:
	rm -rf $(VENV) build *.egg-info
