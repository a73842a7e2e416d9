# Stemma's developer entry points. `make run` and `make test` work on a fresh machine
# (Python 3.11, Debian, root): they create .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STEMMA_DIR ?= $(CURDIR)/.stemma
export STEMMA_DIR

.PHONY: run test install ui test-deps system-deps check lint format bench-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The web UI's browser libraries (uPlot, plotly.js), pinned in package.json and
# package-lock.json, installed from the npm registry and served from our own origin.
VENDOR := stemma/ui/static/vendor
$(VENDOR)/.built: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp node_modules/plotly.js-dist-min/plotly.min.js $(VENDOR)/
	touch $@

ui: $(VENDOR)/.built

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed $(VENDOR)/.built

test-deps: $(VENV)/.test-installed $(VENDOR)/.built system-deps

# System packages the tests start for real (PostgreSQL, Chromium); installs only what is missing.
system-deps:
	@bash scripts/system-deps.sh

## Load the demo workflow into the embedded store (./.stemma) and serve it on 127.0.0.1.
PORT ?= 5280
run: install
	$(BIN)/stemma demo
	@echo "open http://127.0.0.1:$(PORT)/ (API docs: /api/v1/docs); Ctrl-C stops the server"
	$(BIN)/stemma server --host 127.0.0.1 --port $(PORT)

## Lint, type-check and run the whole test suite.
test: test-deps
	$(BIN)/ruff check stemma tests bench scripts
	$(BIN)/ruff format --check stemma tests bench scripts
	$(BIN)/python -m pytest -n 2 -q

check: test-deps
	bash scripts/check

format: test-deps
	$(BIN)/ruff format stemma tests bench
	$(BIN)/ruff check --fix stemma tests bench

## Peers for the benchmarks (wandb, MLflow, ...) in their own venv: .bench-venv
bench-deps:
	bash bench/install-peers.sh

bench: install bench-deps
	$(BIN)/python bench/log_throughput.py

clean:
	rm -rf $(VENV) .bench-venv .stemma .pytest_cache .ruff_cache .mypy_cache node_modules $(VENDOR)
