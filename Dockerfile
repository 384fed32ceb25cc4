# The task-orchestrator image (DESIGN §11).
#
# Two stages on the same base image: the builder installs the package and its dependencies into a
# virtualenv; the final stage copies only that virtualenv onto a clean python:3.11-slim-bookworm, so no
# pip, setuptools, pip cache, source tree or build tooling ships. Using one base for both keeps the
# venv's interpreter path valid in the final image. The base is pinned by Debian release (bookworm), so
# a rebuild never moves to another Debian under the same Python. Every dependency has a manylinux wheel
# for CPython 3.11, so the builder needs no compiler either. No `# syntax=` line: the builder's built-in
# Dockerfile frontend reads this file, so a build pulls nothing but the base.
#
# Plain `docker run` stops a container 10 s after SIGTERM, but the service drains in-flight calls for up
# to ORCHESTRATOR_DRAIN_TIMEOUT_SECONDS (30 s): run it with `--stop-timeout 45` (or `docker stop -t 45`);
# compose sets stop_grace_period and the chart terminationGracePeriodSeconds. A clean stop exits 0.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# No pip or setuptools in the virtualenv: the base's pip installs into it from outside (--python).
RUN python -m venv --without-pip /opt/venv

WORKDIR /src
# pyproject.toml names README.md as the long description.
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
# pip compiles the bytecode here, so the read-only root filesystem of the final stage costs no start-up.
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir .


FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="task-orchestrator" \
      org.opencontainers.image.description="A shared MCP task graph for many AI coding agents" \
      org.opencontainers.image.licenses="MIT"

# A fixed, high uid/gid so Kubernetes' runAsUser/fsGroup (10001) match the files' owner, and the
# process can never be root even if the runtime ignores USER.
# The base's own pip and setuptools go too: nothing at run time installs packages.
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin orchestrator \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && python -m pip uninstall --yes --quiet --disable-pip-version-check --root-user-action=ignore \
       pip setuptools wheel

COPY --from=builder /opt/venv /opt/venv

# ORCHESTRATOR_HOST=0.0.0.0 makes the service reachable from outside the container; with no
# ORCHESTRATOR_AUTH_TOKENS_FILE or ORCHESTRATOR_JWKS_URL it then refuses to start (fail closed, DESIGN §7)
# unless ORCHESTRATOR_ALLOW_UNAUTHENTICATED=true is set on purpose. Without ORCHESTRATOR_DATABASE_URL
# the SQLite file lives in /data: mount a volume there. PYTHONDONTWRITEBYTECODE keeps the process
# working on a read-only root filesystem.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ORCHESTRATOR_HOST=0.0.0.0 \
    ORCHESTRATOR_PORT=8000 \
    ORCHESTRATOR_DATA_DIR=/data

WORKDIR /data
USER 10001:10001
EXPOSE 8000

# Liveness only: /healthz never touches the database, so a slow database does not mark the container
# unhealthy. The port follows ORCHESTRATOR_PORT (8000 unless overridden at run time).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ORCHESTRATOR_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["task-orchestrator"]
CMD ["serve"]
