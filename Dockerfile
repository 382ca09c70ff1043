# syntax=docker/dockerfile:1
# Weave's one image: web (gunicorn), worker and beat (Celery), Locust master and workers.
# Stage 1 installs the locked dependencies into a virtualenv; stage 2 copies only that
# virtualenv and the code, and runs as an unprivileged user. No compiler is needed:
# every locked package ships a manylinux wheel.
ARG PYTHON_VERSION=3.13

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml requirements.lock ./
COPY bin/docker-requirements bin/
# requirements.lock stays the one source of versions. The image drops the `embedded`
# extra (PostgreSQL and Redis binaries: compose has db and redis services) and the
# `dev` extra, with whatever only they require; --no-deps installs exactly the pins.
RUN python bin/docker-requirements --without embedded --without dev > requirements.docker.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps -r requirements.docker.txt \
    && /opt/venv/bin/pip check

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GUNICORN_BIND=0.0.0.0:8000 \
    ASGI_BIND=0.0.0.0:8001 \
    GUNICORN_WORKER_TMP_DIR=/dev/shm \
    WEAVE_DATA_DIR=/app/.data
# Absolute paths: the official python images have /usr/sbin on PATH, the stand-ins built
# where no container registry is reachable (python:3.12/3.13-slim) do not.
RUN /usr/sbin/groupadd --system --gid 10001 weave \
    && /usr/sbin/useradd --system --uid 10001 --gid weave --home-dir /app --shell /usr/sbin/nologin weave
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# The code belongs to root (read-only for the app); only .data (static files,
# Celery beat's schedule) is writable, and compose mounts a named volume there.
COPY . .
# Static files for the production profile, built once into the image: hashed names
# with .gz and .br copies (a new volume on .data starts with them; --prepare refreshes).
RUN mkdir -p .data \
    && DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-at-build-time-only-not-a-secret \
    python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R weave:weave .data
USER weave
EXPOSE 8000 8001 8089
CMD ["bin/run-process", "--prepare", "web"]
