# Every target installs what it needs; nothing has to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools/bin
export PATH := $(CURDIR)/$(TOOLS):$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup tools test lint typecheck unit demo demo-planner sim sim-down images bench soak clean crds

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

# NVIDIA's MIG workflows 1-9 with the real helm and kubectl on a fresh simulated cluster (torn down at the end)
demo: setup
	$(PY) scripts/demo.py

# the offline planner: MIG geometries for an 8x H100 80GB node, with its explanations
demo-planner: $(VENV)/.installed
	$(PY) scripts/demo_planner.py

# the simulated cluster in the background (state in .kubesim/) with the chart installed; sim-down stops it
sim: setup
	$(PY) scripts/sim.py up

sim-down: $(VENV)/.installed
	$(PY) scripts/sim.py down

# the operator and node agent images, with the chart's default names (needs a Docker engine; not run in CI)
IMAGE_REPOSITORY ?= ghcr.io/gpu-operator-mig
IMAGE_VERSION ?= 0.1.0
images:
	@command -v docker >/dev/null 2>&1 || { echo "make images: the docker command is not installed; install Docker to build the images" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine is reachable (docker info failed): start it, or point DOCKER_HOST at one" >&2; exit 1; }
	docker build -f images/operator.Dockerfile -t $(IMAGE_REPOSITORY)/gpu-operator:$(IMAGE_VERSION) .
	docker build -f images/node-agent.Dockerfile -t $(IMAGE_REPOSITORY)/mig-manager:$(IMAGE_VERSION) .

# every benchmark, results in bench/results/*.json, then docs/performance.md from them
bench: setup
	$(PY) bench/planner.py
	$(PY) bench/parted.py
	$(PY) bench/kubesim_api.py
	$(PY) bench/agent.py
	$(PY) bench/operator.py
	$(PY) bench/kubesim_cluster.py
	$(PY) bench/scale.py
	$(PY) bench/report.py

# the chaos test for 1,000 rounds (CI runs 100): summary in bench/results/soak.json; SOAK_SEED picks the rounds
SOAK_ROUNDS ?= 1000
SOAK_SEED ?= 1000
soak: setup
	CHAOS_ROUNDS=$(SOAK_ROUNDS) CHAOS_SEED=$(SOAK_SEED) CHAOS_REPORT=bench/results/soak.json \
		$(VENV)/bin/pytest -q -s -p no:cacheprovider tests/chaos/test_chaos.py

crds: $(VENV)/.installed
	$(PY) -m gpu_operator.crd crds/nvidia.com_clusterpolicies.yaml
	cp crds/nvidia.com_clusterpolicies.yaml charts/gpu-operator/crds/nvidia.com_clusterpolicies.yaml

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .hypothesis
