# The two commands of the README: `make run` (the main job) and `make test`;
# `make arm` sets up the ARM emulator once (then `make run` adds instruction counts on emulated ARM cores);
# `make clients` the tflite-runtime 2.14 venv the client tests run files in (it needs Python <= 3.11, numpy < 2).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers, one test module per worker at a time (module fixtures are built once); 0: in this process
PYTEST_WORKERS ?= 2

# tflite-runtime's last release; its own venv, as it cannot share numpy 2 with TensorFlow 2.21
CLIENT_VENV ?= .venv-tflite-runtime

.PHONY: run test arm clients clean

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

clients: $(CLIENT_VENV)/.installed

$(CLIENT_VENV)/.installed:
	$(PYTHON) -m venv $(CLIENT_VENV)
	PYTHONWARNINGS=ignore::UserWarning $(CLIENT_VENV)/bin/python -m pip install -qq "tflite-runtime==2.14.0" "numpy<2"
	@touch $@

test: $(VENV)/.installed-test
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(CLIENT_VENV) build *.egg-info .pytest_cache
