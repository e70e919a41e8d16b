# The two commands a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow faults bench lint install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run flusso on demo data: throwaway Postgres + embedded OpenSearch (osmem-server).
demo: $(STAMP)
	$(BIN)/python -m devstack.demo

## The whole test suite (what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

## Every fault scenario (tests/faults), with a table of detection and recovery times.
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -m 'not slow' -n 2 -q

bench: $(STAMP)
	$(BIN)/python -m bench.harness

lint: $(STAMP)
	$(BIN)/ruff check src tests devstack bench
	$(BIN)/lint-imports
