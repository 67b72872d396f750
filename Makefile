# The two commands (`make run`, `make test`) and a few helpers.
# Both create .venv on first use and reinstall only when a requirements file changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins its own boto3, so it lives in a venv of its own (tests/test_static_checks.py).
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# `PORT=8123 make run` and `make run PORT=8123` both work: ?= keeps a value from the
# environment, a command-line assignment overrides it, and export hands it to dev.local.stack.
PORT ?= 8000
MOTO_PORT ?= 5000
WORKERS ?= 2
export PORT MOTO_PORT WORKERS

.DEFAULT_GOAL := help
.PHONY: help run test lint unit bench clean deploy destroy

help:
	@echo "make run     start the local stack (moto + HTTP app + workers) on http://127.0.0.1:$(PORT)/"
	@echo "make test    lint, type-check and run every test"
	@echo "make lint    ruff and mypy only"
	@echo "make bench   run the benchmarks against the local stack"
	@echo "make clean   remove .venv and caches"
	@echo "make deploy STAGE=prod    infra stack, then chalice deploy (needs AWS credentials)"
	@echo "make destroy STAGE=prod   chalice delete, then the infra stack (keeps table, bucket)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

$(CHECKOV_STAMP): requirements-checks.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -r requirements-checks.txt
	touch $@

# exec: the stack replaces the shell, so Ctrl-C and SIGTERM reach it directly.
run: $(STAMP)
	@exec $(BIN)/python -m dev.local

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy app.py chalicelib dev bench
	# The example imports the framework as the installed `longtask`: here, its source.
	MYPYPATH=chalicelib $(BIN)/mypy examples/host_app

# Three pytest workers, one test file each at a time: most tests wait on tasks and
# stacks rather than compute, so even two cores run them about twice as fast.
# The browser tests need a Chromium: dev/chromium.py finds one, or installs one, or
# stops with one line saying what to run.
test: lint $(CHECKOV_STAMP)
	$(BIN)/python -m dev.chromium
	$(BIN)/python -m pytest -n 3 --dist loadfile

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/contract tests/aws examples/host_app/tests

# The benchmarks (a few minutes): prints the tables and writes BENCHMARKS.md.
# `.venv/bin/python -m bench --quick` is the fast check that `make test` also runs.
bench: $(STAMP)
	$(BIN)/python -m bench

# Production (README, "Deploy"): dev/deploy/cli.py, plain boto3 CloudFormation plus Chalice.
deploy destroy: $(STAMP)
	@if [ -z "$(STAGE)" ]; then echo "make $@: name the stage, e.g. make $@ STAGE=prod" >&2; exit 2; fi
	$(BIN)/python -m dev.deploy $@ --stage $(STAGE)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
