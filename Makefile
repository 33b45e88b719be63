# Every target installs what it needs; nothing has to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools/bin
export PATH := $(CURDIR)/$(TOOLS):$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup tools test lint typecheck unit demo bench clean crds

setup: $(VENV)/.installed tools

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

tools: $(TOOLS)/.version

$(TOOLS)/.version: scripts/install_tools.py $(VENV)/.installed
	$(PY) scripts/install_tools.py $(TOOLS)
	test -x $(TOOLS)/helm && test -x $(TOOLS)/kubectl

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest

test: setup lint typecheck unit

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

bench: $(VENV)/.installed
	$(PY) bench/planner.py
	$(PY) bench/parted.py
	$(PY) bench/kubesim_api.py
	$(PY) bench/agent.py

crds: $(VENV)/.installed
	$(PY) -m gpu_operator.crd crds/nvidia.com_clusterpolicies.yaml
	cp crds/nvidia.com_clusterpolicies.yaml charts/gpu-operator/crds/nvidia.com_clusterpolicies.yaml

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .hypothesis
