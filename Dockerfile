# The operator image: `make image` (docker build -t trainingjob-operator:0.1.0 .).
#
# The base is pinned by an exact version tag. Pin it by digest as well
# (PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>) once someone who can reach the
# registry has looked the digest up: this was written on a machine without registry access.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: resolve and install the package and its dependencies into a venv ---------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# A venv without pip or setuptools of its own: the base image's pip installs into it, so the
# final stage gets only the operator and its runtime dependencies.
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
# pyproject.toml lists the devcluster package too (the test cluster's launcher, a few
# pure-Python modules): it is installed alongside, never imported by the operator.
COPY pyproject.toml ./
COPY devcluster/*.py devcluster/
COPY operator/trainingjob_operator/ operator/trainingjob_operator/
# Not editable: the code is copied into the venv (and byte-compiled there, so the read-only
# container never needs to write .pyc files).
# kubernetes>=35 also ships kubernetes/aio, an asyncio copy of the whole client (~70 MB) that
# nothing here imports (kube.py runs the synchronous client in threads): left out of the image.
# The import at the end fails the build if the operator cannot start without it.
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir . \
 && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio \
 && /opt/venv/bin/python -c "import trainingjob_operator.__main__, trainingjob_operator.handlers"

# --- final: the interpreter, the venv, nothing else --------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="trainingjob-operator" \
      org.opencontainers.image.description="Runs ML training jobs (TrainingJob, training.dev/v1alpha1) on GPU pods" \
      org.opencontainers.image.version="0.1.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
# The chart's runAsUser/runAsGroup (65532, "nonroot" by convention): numeric, so the kubelet
# can check runAsNonRoot without a passwd entry.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "trainingjob_operator"]
