# Every target installs what it needs: a fresh clone needs only `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PIXCRAWLER_CACHE ?= $(HOME)/.cache/pixcrawler-operator

.PHONY: demo demo-worker test deps venv system node-deps azurite prometheus control-plane node-images cluster-up cluster-down bench kind-e2e clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

system:
	bash hack/install-system.sh

node-deps:
	bash hack/install-node.sh

azurite:
	bash hack/install-azurite.sh

prometheus:
	bash hack/install-prometheus.sh

control-plane:
	bash hack/control-plane.sh build

# base, pause, worker and operator images for the local node, rebuilt only when their inputs change
node-images: node-deps
	bash hack/node-images.sh build

deps: venv system azurite prometheus node-deps

test: deps control-plane node-images
	$(PY) -m pytest

demo: deps control-plane node-images
	PYTHONPATH=hack $(PY) hack/demo.py

demo-worker: deps
	$(PY) hack/demo_worker.py

bench: deps control-plane node-images
	$(PY) bench/run.py

kind-e2e:
	bash hack/kind-e2e.sh

clean:
	rm -rf $(VENV) .pytest_cache

cluster-up: venv node-deps control-plane node-images
	PYTHONPATH=hack $(PY) -m localcluster up

cluster-down: venv
	PYTHONPATH=hack $(PY) -m localcluster down
