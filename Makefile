# Everything a fresh machine needs is installed by these targets: the virtualenv from
# pyproject.toml, the control plane from devcluster/go (cached outside the repo).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEVCLUSTER := $(PY) -m devcluster

.PHONY: help venv devcluster-build cluster-up cluster-down cluster-status run test unit lint

help:
	@echo "make run            start devcluster (unless KUBECONFIG is set) - the operator comes next"
	@echo "make test           build everything and run the whole test suite against devcluster"
	@echo "make cluster-up     start devcluster in .devcluster/ ; make cluster-down stops it"
	@echo "make lint           ruff and mypy --strict"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

devcluster-build: venv
	@$(DEVCLUSTER) build

cluster-up: venv
	@$(DEVCLUSTER) up

cluster-down: venv
	@$(DEVCLUSTER) down

cluster-status: venv
	@$(DEVCLUSTER) status

run: venv
	@if [ -n "$$KUBECONFIG" ]; then \
	  echo "Using the cluster in KUBECONFIG=$$KUBECONFIG"; \
	else \
	  $(DEVCLUSTER) status >/dev/null 2>&1 || $(DEVCLUSTER) up; \
	  $(DEVCLUSTER) status; \
	  echo; echo "Use it:  $$($(DEVCLUSTER) env)   (kubectl: $$($(DEVCLUSTER) build)/kubectl)"; \
	fi
	@echo "The operator comes next (issue: the TrainingJob operator); stop the cluster with 'make cluster-down'."

# Lint, then the whole suite: unit tests and, against a devcluster the fixtures start and
# stop, e2e tests.
test: lint devcluster-build
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check devcluster tests
	$(VENV)/bin/mypy devcluster tests
