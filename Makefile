# Two entry points for a new user: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint docs bench conformance system-deps

# The modules hatch_build.py compiles with mypyc: an edit reinstalls, so the build is current
# (until then, wschannels runs the edited source: see src/wschannels/_native.py).
COMPILED := hatch_build.py $(addprefix src/wschannels/,channels.py codecs.py engine.py views.py)

# The pure-Python fallback (WSCHANNELS_PURE=1) runs these again: the engine, channels and
# codecs, and the protocol end to end on the in-memory transport and on uvicorn.
PURE_TESTS := tests/engine tests/core tests/test_channels.py tests/test_channels_properties.py \
	tests/reliability/test_codec_properties.py tests/test_native.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo: pyproject.toml $(COMPILED) | $(BIN)/python
	$(BIN)/pip install -q -e '.[chat]'
	touch $@

# The tests include a smoke run of the benchmark harness, so they need its extra too.
$(VENV)/.test: pyproject.toml $(COMPILED) | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

$(VENV)/.bench: pyproject.toml $(COMPILED) | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

## Start the chat demo on the embedded hub: http://127.0.0.1:8000
demo: $(VENV)/.demo
	$(BIN)/wschannels-chat

## Install what the tests need (Python packages, chromium, redis-server, nats-server) and run the whole suite.
test: $(VENV)/.test system-deps lint docs
	$(BIN)/pytest
	WSCHANNELS_PURE=1 $(BIN)/pytest -q $(PURE_TESTS)

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench hatch_build.py
	$(BIN)/mypy

## Build the documentation site into build/site; any warning is an error.
docs: $(VENV)/.test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

system-deps:
	bash scripts/system-deps.sh

## Run the benchmark suite; results land in docs/benchmarks/.
bench: $(VENV)/.bench
	$(BIN)/python -m bench

## Autobahn|Testsuite on every server beside its raw echo; writes docs/conformance.md (~1 min).
conformance: $(VENV)/.test system-deps
	$(BIN)/python -m bench.conformance
