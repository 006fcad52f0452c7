# Every target installs what it needs: a fresh clone needs only `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PIXCRAWLER_CACHE ?= $(HOME)/.cache/pixcrawler-operator

.PHONY: demo test deps venv system azurite control-plane cluster-up cluster-down bench kind-e2e clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

system:
	bash hack/install-system.sh

azurite:
	bash hack/install-azurite.sh

control-plane:
	bash hack/control-plane.sh build

deps: venv system azurite

test: deps control-plane
	$(PY) -m pytest

demo: deps
	$(PY) hack/demo.py

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
