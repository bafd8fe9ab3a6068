# One task runner for README, developers and CI. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CCUSAGE_VERSION := 20.0.24
TORCH_VERSION := 2.13.0
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(BIN)/headroom: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch first, pinned: the machine has its CPU wheel locally; a bare `torch` would pull CUDA builds.
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev,ml,team]'
	@touch $@

setup: $(BIN)/headroom ## create .venv and install headroom (editable) with the dev tools and the ML extra

run: setup ## set up, then run the daemon in the foreground (SQLite in the user's data dir)
	$(BIN)/headroom daemon run

.tools/node_modules/.bin/ccusage:
	@# ccusage is the reference for the token-parity tests; without npm those tests skip.
	-npm install --silent --no-audit --no-fund --prefix .tools \
		ccusage@$(CCUSAGE_VERSION) @ccusage/ccusage-linux-x64@$(CCUSAGE_VERSION)

tools: .tools/node_modules/.bin/ccusage ## install the reference tools the tests compare with (ccusage)

.mypy_path/headroom:
	@mkdir -p .mypy_path/headroom
	@for p in daemon engine learn memory migrations; do ln -sfn ../../$$p .mypy_path/headroom/$$p; done

lint: setup ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup .mypy_path/headroom ## mypy --strict on the package
	cd .mypy_path && ../$(BIN)/mypy --config-file ../pyproject.toml -p headroom

check: lint typecheck ## lint and type-check

test: setup tools check ## set up, then run the whole test suite (checks included)
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

test-fast: setup ## the test suite without the slow end-to-end tests
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup ## ingestion benchmarks (see bench/README.md)
	$(BIN)/python bench/ingest_bench.py

bench-engine: setup ## compression benchmark vs the peer (PEER_PYTHON=path/to/peer-venv/bin/python)
	$(BIN)/python bench/engine_bench.py $(if $(PEER_PYTHON),--peer-python $(PEER_PYTHON))
	$(BIN)/python bench/compress_bench.py

bench-proxy: setup ## proxy latency/streams/memory and the agent CLIs through it, vs the peer (PEER_BIN=peer/bin)
	$(BIN)/python bench/proxy_bench.py $(if $(PEER_BIN),--peer-bin $(PEER_BIN))
	$(BIN)/python bench/agents_bench.py $(if $(PEER_BIN),--peer-bin $(PEER_BIN))

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .tools .mypy_path .mypy_cache .ruff_cache .pytest_cache

.PHONY: help setup run tools lint typecheck check test test-fast bench bench-engine bench-proxy clean
