# The README's commands. Everything runs from a venv in .venv that `make venv` builds.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint typecheck unit reliability walk bench docker-test c dpdk-worker clean

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
	$(BIN)/pytest -q -p no:cacheprovider tests/test_budgets.py

typecheck: venv
	$(BIN)/mypy --strict -p ifpx.schemas -p ifpx.bridge -p ifpx.subscribers

## lint, types and every test (netns tests need root and are skipped, with the reason, without it)
test: lint typecheck
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q -m "not netns"

## the fault tests alone, then a table of what each one measured (root)
reliability: venv
	@rm -f .reliability.tsv
	RELIABILITY_FIGURES=$(CURDIR)/.reliability.tsv $(BIN)/pytest -q -m reliability tests/test_overrun_netns.py tests/test_reliability_netns.py tests/test_hardening_netns.py tests/test_bounds_netns.py tests/test_subscriber_hostile.py
	@printf '\n%-75s %s\n' FIGURE VALUE; sort .reliability.tsv | awk -F'\t' '{printf "%-75s %s\n", $$1, $$2}'
	@rm -f .reliability.tsv

## a long kernel-differential random walk, shrunk to a reproduction on a divergence (root)
SEED ?= 1
STEPS ?= 300
walk: venv
	$(BIN)/python tests/walk.py --seed $(SEED) --steps $(STEPS)

## benchmarks, quick mode (100k routes); writes bench/RESULTS.md (root)
bench: venv
	$(BIN)/python -m bench

## build the container images with podman and check a worker container sees a change (root)
docker-test: venv
	PY=$(BIN)/python bash docker/test.sh

## the C subscriber library and its tools (libzmq3-dev, libmsgpack-dev)
c:
	$(MAKE) -C subscribers/c

## the DPDK example worker (libdpdk-dev too)
dpdk-worker:
	$(MAKE) -C subscribers/c/examples/dpdk-worker

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache subscribers/c/build \
		subscribers/c/examples/dpdk-worker/build
