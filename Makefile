# modelyard — `make quickstart` and `make test` work on a fresh machine with Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Keep caches and telemetry of matplotlib / torch / ray out of $HOME.
export MPLBACKEND := Agg
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install quickstart test test-fast lint bench bench-small system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

quickstart: install
	$(BIN)/yard quickstart

# Everything CI runs: all tests but the GPU ones (slow end-to-end tests included).
test: install
	$(BIN)/python -m pytest -m "not gpu" -q

# The default developer loop: no slow tests.
test-fast: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

bench-small: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b --small || exit 1; done

# System services some tests use (PostgreSQL, headless Chromium, wrk). Without them those tests skip.
system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium chromium-driver wrk >/dev/null

clean:
	rm -rf $(VENV) .yard .pytest_cache .ruff_cache .mypy_cache
