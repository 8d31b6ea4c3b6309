# The two commands of the README: `make run` (the main job) and `make test`;
# `make arm` sets up the ARM emulator once (then `make run` adds instruction counts on emulated ARM cores).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers, one test module per worker at a time (module fixtures are built once); 0: in this process
PYTEST_WORKERS ?= 2

.PHONY: run test arm clean

# pip: errors only; the build backend's UserWarnings (setuptools' editable-install notice) are not the user's concern.
PIP := PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install -qq

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) -e ".[test]"
	@touch $@

run: $(VENV)/.installed-run
	$(BIN)/ghostnet bench compare $(RUN_ARGS)
	@echo "(the ghostnet command is in $(BIN): source $(BIN)/activate, then e.g. ghostnet bench report RUN/results.jsonl)"

arm: $(VENV)/.installed-run
	$(BIN)/ghostnet bench arm --setup

test: $(VENV)/.installed-test
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
