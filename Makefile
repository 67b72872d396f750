# The two commands of SPEC §1 (`make run`, `make test`) and a few helpers.
# Both create .venv on first use and reinstall only when a requirements file changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `PORT=8123 make run` and `make run PORT=8123` both work: ?= keeps a value from the
# environment, a command-line assignment overrides it, and export hands it to dev.stack.
PORT ?= 8000
MOTO_PORT ?= 5000
WORKERS ?= 2
export PORT MOTO_PORT WORKERS

.DEFAULT_GOAL := help
.PHONY: help run test lint unit bench clean

help:
	@echo "make run     start the local stack (moto + HTTP app + workers) on http://127.0.0.1:$(PORT)/"
	@echo "make test    lint, type-check and run every test"
	@echo "make lint    ruff and mypy only"
	@echo "make bench   run the benchmarks against the local stack"
	@echo "make clean   remove .venv and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

# exec: the stack replaces the shell, so Ctrl-C and SIGTERM reach it directly.
run: $(STAMP)
	@exec $(BIN)/python -m dev.stack

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy app.py chalicelib dev

test: lint
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/aws

# TODO: dev/bench.py (latency and throughput against the local stack) is not written yet.
bench: $(STAMP)
	@if [ -f dev/bench.py ]; then exec $(BIN)/python -m dev.bench; \
	else echo "make bench: dev/bench.py does not exist yet" >&2; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
