# Everything a fresh machine needs is installed by these targets: the virtualenv from
# pyproject.toml, the control plane from devcluster/go (cached outside the repo).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEVCLUSTER := $(PY) -m devcluster
CHART := charts/trainingjob-operator
# Plain image names: the registry part is yours to add (IMAGE_REPO=<registry>/trainingjob-operator).
IMAGE_REPO ?= trainingjob-operator
IMAGE_TAG ?= 0.1.0
IMAGE ?= $(IMAGE_REPO):$(IMAGE_TAG)
KIND_CLUSTER ?= kind

.PHONY: help venv lock devcluster-build cluster-up cluster-down cluster-status run test test-unit \
	test-e2e-fast lint crds bench \
	deploy-manifests image devcluster-load kind-load kind-deploy

help:
	@echo "make run            devcluster (unless KUBECONFIG is set), the CRD, and the operator in the foreground"
	@echo "make test           build everything and run the whole test suite against devcluster (CI)"
	@echo "make test-unit      the unit tests only: no cluster, seconds"
	@echo "make test-e2e-fast  the e2e tests that need no real node and no benchmark peer (kwok only)"
	@echo "make cluster-up     start devcluster in .devcluster/ ; make cluster-down stops it"
	@echo "make lint           ruff, mypy --strict and the import layers (lint-imports)"
	@echo "make crds           regenerate crds/ from the pydantic models (and the chart's copy)"
	@echo "make deploy-manifests  regenerate the kustomize base deploy/ from the Helm chart"
	@echo "make image          build \$$(IMAGE) from the Dockerfile (Docker and a base built here; no registry)"
	@echo "make devcluster-load  load \$$(IMAGE) into devcluster's real nodes"
	@echo "make kind-load      load \$$(IMAGE) into kind cluster \$$(KIND_CLUSTER) (needs Docker and kind)"
	@echo "make kind-deploy    kind-load, then helm upgrade --install the chart with that image (needs Docker and kind)"
	@echo "make bench          this operator, batch/v1 Job and Kueue side by side on devcluster (docs/performance.md)"
	@echo "make soak           every outcome, stops, deletes and node flaps for DURATION (30m); memory and tasks must stay flat (docs/operations.md)"

# The same pinned, hash-checked versions as the image (requirements.lock is the runtime
# subset of requirements-dev.lock); `make lock` regenerates both from pyproject.toml.
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

PIP_COMPILE = $(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-find-links --no-emit-index-url
lock: venv
	$(VENV)/bin/pip install --quiet "pip-tools>=7.4,<8"
	$(PIP_COMPILE) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml

venv: $(VENV)/.installed

devcluster-build: venv
	@$(DEVCLUSTER) build

# The tools of devcluster/tools (helm, tjcheck), cached like the control plane.
.PHONY: tools-build
tools-build: venv
	@$(DEVCLUSTER) tools

# The peers of make bench (Kueue's manager from its Go module), cached like the tools.
.PHONY: peers-build
peers-build: venv
	@$(DEVCLUSTER) peers

# One real node (a kubelet and containerd running real containers) besides kwok's GPU nodes;
# DEVCLUSTER_REAL_NODES=0 for kwok only.
REAL_NODES ?= $${DEVCLUSTER_REAL_NODES:-1}

cluster-up: venv
	@$(DEVCLUSTER) up --real-nodes $(REAL_NODES) --services

cluster-down: venv
	@$(DEVCLUSTER) down

cluster-status: venv
	@$(DEVCLUSTER) status

run: venv
	@if [ -n "$$KUBECONFIG" ]; then \
	  echo "Using the cluster in KUBECONFIG=$$KUBECONFIG"; \
	else \
	  $(DEVCLUSTER) status >/dev/null 2>&1 || $(DEVCLUSTER) up --real-nodes $(REAL_NODES) --services; \
	fi
	@export KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.devcluster/kubeconfig}; \
	  KUBECTL=$$($(DEVCLUSTER) build)/kubectl; \
	  $$KUBECTL apply -f crds/ && \
	  $$KUBECTL wait --for=condition=Established crd/trainingjobs.training.dev >/dev/null && \
	  echo && echo "In another terminal:" && \
	  echo "  export KUBECONFIG=$$KUBECONFIG PATH=$$(dirname $$KUBECTL):\$$PATH" && \
	  echo "  kubectl apply -f examples/1-worker.yaml && kubectl get trainingjobs -w" && \
	  echo "Stop the operator with Ctrl-C, the cluster with 'make cluster-down'." && echo && \
	  exec $(PY) -m trainingjob_operator

crds: venv
	$(PY) -m trainingjob_operator.crd > crds/trainingjobs.training.dev.yaml
	cp crds/trainingjobs.training.dev.yaml $(CHART)/crds/trainingjobs.training.dev.yaml

# deploy/ is `helm template` of the chart's defaults, without Helm's labels (the helm binary
# comes from the tools build, `python -m devcluster tools`).
deploy-manifests: venv
	$(PY) charts/render_deploy.py

# The operator image, from the Dockerfile: a Docker engine (Debian's docker.io, started here
# if none answers), a base made with mmdebstrap and the locked wheels; no registry.
image: venv
	@$(DEVCLUSTER) image --tag $(IMAGE)

# The devcluster counterpart of kind-load: the image into the real nodes' containerd.
devcluster-load: venv
	@$(DEVCLUSTER) load-image $(IMAGE)

# These need kind.

kind-load:
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)

kind-deploy: venv kind-load
	$$($(DEVCLUSTER) tools)/helm upgrade --install trainingjob-operator $(CHART) \
	  --kube-context kind-$(KIND_CLUSTER) --namespace trainingjob-system --create-namespace \
	  --set image.repository=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) \
	  --set image.pullPolicy=IfNotPresent --wait

# BENCH_ARGS, e.g. "--workloads wide --peers trainingjob,job --repeat 1 --profile .bench-profiles"
bench: venv devcluster-build peers-build
	$(PY) -m tests.bench $(BENCH_ARGS)

# Not part of make test: DURATION=3m for a quick look, 30m for the figures in docs/operations.md.
DURATION ?= 30m
.PHONY: soak
soak: venv devcluster-build
	$(PY) -m tests.soak --duration $(DURATION)

# Lint, then the whole suite: unit tests and, against a devcluster the fixtures start and
# stop, e2e tests. This is what CI runs.
test: lint devcluster-build tools-build peers-build e2e-image
	$(PY) -m pytest

# The tiers below it. Markers come from the fixtures each test uses (tests/conftest.py NEEDS).
# test-unit: the pure core and the shell against a fake API; no cluster, seconds.
test-unit: venv
	$(PY) -m pytest tests/unit

# test-e2e-fast: every e2e test that needs neither a real node nor a benchmark peer, on a
# devcluster of kwok nodes only (no container runtime, no Kueue build).
test-e2e-fast: venv devcluster-build tools-build
	DEVCLUSTER_TEST_REAL_NODES=0 $(PY) -m pytest tests/e2e -m "not real_node and not peers"

# The image tests/e2e/test_image.py runs, built (cached by its inputs) before pytest starts so
# that a cold build (about 5 minutes) does not count against one test's timeout.
.PHONY: e2e-image
e2e-image: venv
	@$(DEVCLUSTER) image --tag trainingjob-operator:e2e

lint: venv
	$(VENV)/bin/ruff check devcluster operator tests charts
	$(VENV)/bin/mypy devcluster operator/trainingjob_operator tests charts/render_deploy.py
	$(VENV)/bin/lint-imports
