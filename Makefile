# The README's commands. Everything runs from a venv in .venv that `make venv` builds.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint typecheck unit clean

$(BIN)/ifpx: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/ifpx

## the bridge with a demo, in a throwaway netns (root)
demo: venv
	$(BIN)/ifpx demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy --strict -p ifpx.schemas -p ifpx.bridge -p ifpx.subscribers

## lint, types and every test (netns tests need root and are skipped, with the reason, without it)
test: lint typecheck
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q -m "not netns"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
