# Every target installs what it needs: a fresh clone needs only `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PIXCRAWLER_CACHE ?= $(HOME)/.cache/pixcrawler-operator

.PHONY: demo demo-worker test deps venv system azurite control-plane cluster-up cluster-down bench kind-e2e clean

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

demo: deps control-plane
	PYTHONPATH=hack $(PY) hack/demo.py

demo-worker: deps
	$(PY) hack/demo_worker.py

bench: deps control-plane
	$(PY) bench/run.py

kind-e2e:
	bash hack/kind-e2e.sh

clean:
	rm -rf $(VENV) .pytest_cache

cluster-up: venv control-plane
	PYTHONPATH=hack $(PY) -m localcluster up

cluster-down: venv
	PYTHONPATH=hack $(PY) -m localcluster down
