# The two commands of the README: `make run` and `make test`. Both are idempotent: the virtualenv is
# (re)installed only when setup.py or a plugin's setup.py changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INI ?= development.ini
PLUGIN_SETUPS := $(wildcard plugins/*/setup.py)
PLUGIN_DIRS := $(patsubst %/setup.py,%,$(PLUGIN_SETUPS))
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install install-test run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python setup.py $(PLUGIN_SETUPS)
	$(PIP) -e . $(addprefix -e ,$(PLUGIN_DIRS))
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[testing]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/ufdl -c $(INI) db upgrade
	$(BIN)/ufdl -c $(INI) users bootstrap
	$(BIN)/ufdl -c $(INI) templates sync templates_registry
	$(BIN)/ufdl -c $(INI) serve --listen 127.0.0.1:6543

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/job_type_vs_hello.py

clean:
	rm -rf $(VENV) var
