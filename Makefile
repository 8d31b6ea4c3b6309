# The two commands of the README: `make run` (the main job) and `make test`;
# `make arm` sets up the ARM emulator once (then `make run` adds instruction counts on emulated ARM cores).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test arm clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/ghostnet bench compare $(RUN_ARGS)

arm: $(VENV)/.installed-run
	$(BIN)/ghostnet bench arm --setup

test: $(VENV)/.installed-test
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
