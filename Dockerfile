# The operator image: `make image` builds it here (devcluster/opimage.py prepares the context:
# this file, requirements.lock, the operator package and the locked wheels).
#
# BASE: any image with CPython 3.11 at /usr/bin/python3 and /bin/sh. `make image` passes a
# Debian bookworm python3-minimal root filesystem built with mmdebstrap (no registry needed);
# elsewhere the default below works unchanged (pin it by digest where you can look it up).
ARG BASE=python:3.11.14-slim-bookworm

# --- builder: exactly the locked dependencies, hash-checked, into /opt/app/deps ---------------
FROM ${BASE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY requirements.lock ./
COPY wheels/ wheels/
# pip runs from its own wheel when the base has none (the Debian base has no pip); the
# wheels come from the context (`make image` builds with no network), else from the index.
# kube.py runs on kubernetes/aio, the asyncio client of the same package. `import kubernetes`
# loads the synchronous client too, but its generated API classes (34 MB) only on first use,
# and nothing here uses one: those modules are left out.
# With wheels in the context pip must not look at an index at all (--no-index): in a build
# without network it would otherwise wait out its retries on every requirement, for minutes.
RUN set -e; \
    if ls wheels/pip-*.whl >/dev/null 2>&1; then pip="python3 $(ls wheels/pip-*.whl)/pip"; \
    else pip="python3 -m pip"; fi; \
    if ls wheels/*.whl >/dev/null 2>&1; then index="--no-index"; else index=""; fi; \
    $pip install --no-compile --require-hashes $index --find-links wheels \
        --target /opt/app/deps -r requirements.lock; \
    rm -rf /opt/app/deps/bin; \
    find /opt/app/deps/kubernetes/client/api -name '*_api.py' -delete
COPY operator/trainingjob_operator/ /opt/app/trainingjob_operator/
# Byte-compiled here, so the read-only container never writes .pyc files; the import fails
# the build if the operator cannot start with what is installed.
RUN python3 -m compileall -q /opt/app \
 && PYTHONPATH=/opt/app/deps:/opt/app python3 -c \
    "import trainingjob_operator.__main__, trainingjob_operator.handlers"

# --- final: the interpreter and /opt/app, nothing else ----------------------------------------
FROM ${BASE}
LABEL org.opencontainers.image.title="trainingjob-operator" \
      org.opencontainers.image.description="Runs ML training jobs (TrainingJob, training.dev/v1alpha1) on GPU pods" \
      org.opencontainers.image.version="0.1.0"
ENV PYTHONPATH=/opt/app/deps:/opt/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/app /opt/app
# The chart's runAsUser/runAsGroup (65532, "nonroot" by convention): numeric, so the kubelet
# can check runAsNonRoot; and named in /etc/passwd, since kopf asks for the user's name
# (getpass.getuser) to make its identity.
RUN echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'nonroot:x:65532:' >> /etc/group
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python3", "-m", "trainingjob_operator"]
