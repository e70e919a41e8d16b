# syntax=docker/dockerfile:1
#
# The flusso image: generic and config-less. It carries no flusso.toml, lock or
# secret. At run time mount a config (and pass FLUSSO_CONFIG / --config) or bake a
# lock into a child image; connection and cluster URLs come from the environment.
#
#   docker build -t flusso:0.1.0 .
#   docker run --rm -v "$PWD/examples:/etc/flusso:ro" -e FLUSSO_CONFIG=/etc/flusso/flusso.toml \
#     -e DATABASE_URL=... -e DEMO_OPENSEARCH_URL=... -p 9464:9464 flusso:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a wheel, installed with its dependencies into a self-contained venv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel is built from; the journal migrations are reached through a
# symlink from src/ to alembic/, so both are copied.
COPY pyproject.toml README.md ./
COPY alembic ./alembic
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/flusso \
    && /opt/flusso/bin/pip install /wheels/*.whl \
    && /opt/flusso/bin/flusso --version

# ---- runtime: the same Python, the venv, an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 65532 flusso \
    && useradd --system --uid 65532 --gid flusso --home-dir /var/lib/flusso \
       --no-create-home --shell /usr/sbin/nologin flusso \
    && install -d -o flusso -g flusso -m 0750 /var/lib/flusso
COPY --from=build /opt/flusso /opt/flusso
ENV PATH=/opt/flusso/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLUSSO_JOURNAL=/var/lib/flusso/flusso-journal.sqlite3 \
    FLUSSO_LOCK=/var/lib/flusso/flusso.lock
# The working directory is the writable state directory (journal, compiled lock);
# mount a volume here to keep the lifecycle journal across container restarts.
WORKDIR /var/lib/flusso
VOLUME ["/var/lib/flusso"]
USER 65532:65532
# Public surface: /healthz /readyz /status /metrics.
EXPOSE 9464
ENTRYPOINT ["flusso"]
CMD ["run", "--public-address", "0.0.0.0:9464"]

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flusso" \
      org.opencontainers.image.description="Keep OpenSearch in sync with PostgreSQL from declarative config" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
