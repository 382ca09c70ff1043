# Weave: `make demo` runs the lab, `make test` runs the whole suite.
# Without DATABASE_URL / REDIS_URL, both use the embedded PostgreSQL and Redis
# started by ops/services.py (data under .data/).

# Django 6.1 needs Python 3.12 or newer: the first of python3.13, python3.12, pyenv's
# newest 3.12+/3.13+, or python3 when it is new enough (PYTHON=... overrides).
PYTHON ?= $(shell bin/find-python)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PRESET ?= workshop
LESSONS ?=
ROUNDS ?= 5
PYTEST_ARGS ?=
SHELL := /bin/bash
# The demo's address (config/gunicorn.py reads the same variable): the banner, Locust's
# host and the guide's commands follow it. 0.0.0.0 listens everywhere; reach it on loopback.
GUNICORN_BIND ?= 127.0.0.1:8000
export GUNICORN_BIND
DEMO_URL = http://$(subst 0.0.0.0,127.0.0.1,$(GUNICORN_BIND))
# The same application under ASGI (the Procfile's `asgi`: gunicorn + uvicorn-worker,
# config/gunicorn_asgi.py), and the slow service the fan-out lesson calls.
ASGI_BIND ?= 127.0.0.1:8001
SLOW_SERVICE_BIND ?= 127.0.0.1:8002
export ASGI_BIND SLOW_SERVICE_BIND
ASGI_URL = http://$(subst 0.0.0.0,127.0.0.1,$(ASGI_BIND))
# Extra arguments of `manage.py compare` (make compare COMPARE_ARGS=--rollback-writes
# measures write lessons beside a running demo, which holds connections to the database).
COMPARE_ARGS ?=
REPORTS ?= reports

.PHONY: install services-up services-down services-status migrate seed demo test lint format compare lock clean browser-deps bench readme-lessons

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
		echo "$(VENV) runs Python $$($(PY) -c 'import platform; print(platform.python_version())'), rebuilding it with Python 3.12+"; \
		rm -rf $(VENV); \
	fi
	@test -n "$(PYTHON)" || { echo "Weave needs Python 3.12 or newer: install Python 3.13 (pyenv install 3.13, brew install python@3.13, or your distribution's python3.13 package) or run make PYTHON=/path/to/python3.13"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

services-up: install
	$(PY) -m ops.services up

services-down:
	@if [ -x $(PY) ]; then $(PY) -m ops.services down; fi

services-status: install
	$(PY) -m ops.services status

migrate: services-up
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed --preset $(PRESET)

# The same process list as docker compose (Procfile); Ctrl-C stops the processes
# and the embedded services.
# GUNICORN_BIND=127.0.0.1:8001 make demo serves on another port (config/gunicorn.py);
# DEMO_URL (above) follows it.
demo: migrate
	$(PY) manage.py seed --preset workshop
	@echo
	@echo "  Weave is starting on $(DEMO_URL)/ (GUNICORN_BIND=$(GUNICORN_BIND))"
	@echo "    lesson catalogue   $(DEMO_URL)/"
	@echo "    registry as JSON   $(DEMO_URL)/api/lessons/"
	@echo "    under ASGI         $(ASGI_URL)/   (ASGI_BIND=$(ASGI_BIND): async variants)"
	@echo "    Silk (staff login) $(DEMO_URL)/silk/   user admin, password weave-demo"
	@echo "    practice           make exercise LESSON=<slug>, then make check LESSON=<slug>"
	@echo "  In another terminal, from this directory: docs/WORKSHOP.md's commands (make ...)."
	@echo "  Ctrl-C stops everything."
	@echo
	trap "$(PY) -m ops.services down" EXIT; PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --procfile Procfile

test: services-up browser-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# The browser tests (tests/browser) drive Debian's Chromium through Playwright; never
# `playwright install`. Installed here when missing and root; otherwise they are
# skipped with this reason, and CI (CI=true) fails instead.
CHROMIUM ?= /usr/bin/chromium
browser-deps:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests..."; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null || \
			{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	fi; \
	if [ ! -x $(CHROMIUM) ]; then \
		echo "SKIP browser tests: $(CHROMIUM) is missing (as root: apt-get install chromium)."; \
		if [ "$$CI" = true ]; then exit 1; fi; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

compare: migrate
	$(PY) manage.py compare $(LESSONS) --rounds $(ROUNDS) $(COMPARE_ARGS)

# Seeding cost per preset, `compare` on every lesson and the load test, on a database
# of its own (weave_bench): writes docs/BENCHMARKS.md and the README's lesson table.
# BENCH_LARGE=1 adds the large preset; BENCH_DATABASE_URL overrides the database.
bench: services-up
	$(PY) -m ops.bench

readme-lessons: install
	$(PY) -m ops.bench readme

# What Silk costs a naive variant in demo mode: Silk recording vs ?silk=off, side by
# side, read from Server-Timing (lab/management/commands/silk_overhead.py).
# By default the naive variant a lesson declares (LoadTest(silk_overhead=True));
# TARGETS="<slug>/<variant> ..." PARAMS="page=3" picks others.
TARGETS ?=
PARAMS ?=
.PHONY: silk-overhead
silk-overhead: migrate
	$(PY) manage.py silk_overhead $(TARGETS) --rounds $(ROUNDS) $(foreach p,$(PARAMS),--param $(p))

# Silk keeps at most SILKY_MAX_RECORDED_REQUESTS requests; this empties its tables now.
.PHONY: silk-clear
silk-clear: migrate
	$(PY) manage.py silk_clear_request_log

# The real stack under docker compose, checked from the host (bin/compose-check): build,
# up --wait, catalogue, a JSON lesson per app, a report export done by the worker, the
# notification mail in Mailpit, a Locust swarm, the production profile; then down --volumes.
# Needs a Docker engine (not part of `make test`); without a container registry, run it
# with DOCKER_BUILDKIT=0.
.PHONY: compose-check
compose-check: install
	$(PY) bin/compose-check

# Practice mode (lab/exercises.py, lab/grading.py): write a lesson's naive code to
# exercises/<slug>.py, which the running demo serves as the variant `yours`; then grade it
# against the lesson's contract (exit status 1 until it passes).
#   make exercise LESSON=<slug> [FORCE=1]     make check LESSON=<slug>
LESSON ?=
FORCE ?=
.PHONY: exercise check
exercise: install
	$(PY) manage.py exercise $(LESSON) $(if $(FORCE),--force)

check: migrate
	$(PY) manage.py grade $(LESSON) --rounds $(ROUNDS)

# Regenerate the pinned dependency tree after editing pyproject.toml.
lock:
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra embedded --extra dev --python-version 3.13 \
		--python-platform x86_64-unknown-linux-gnu --no-header -o requirements.lock

clean: services-down
	rm -rf $(VENV) .data reports

# ---------------------------------------------------------------------------
# Load tests (loadtests/, docs/WORKSHOP.md). Headless Locust against our own
# production-like gunicorn on 127.0.0.1 (DJANGO_DEBUG=0), or against HOST=.
#   make loadtest [LESSONS="a b"] [USERS=10] [DURATION=10s] [REPEAT=3] [WORKERS=1] [HOST=url|demo] [WRITES=1]
#   make loadtest-connections   CONN_MAX_AGE=0 vs persistent vs psycopg pool
#   make loadtest-stampede      a cache key expired under load: recomputations
#   make loadtest-servers       the async lessons: sync server vs ASGI server
# The scenarios run the lesson that declares them (Lesson.load in its module).
# Write lessons change the demo data: they run only with WRITES=1 (the bounded
# bodies their lessons declare), and the preset is re-seeded after each of them.
# Reports (Locust CSV + HTML per run, comparison.md/.json) go to reports/<timestamp>/.
# The comparison adds each run's top statements from pg_stat_statements (reset per
# run in DATABASE_URL's database), or one line when the server does not preload it.
USERS ?= 10
# Each variant runs REPEAT times for DURATION, alternating: the table's ratios come with
# their spread over the runs (one 30 s run's ratio swung from 0.8x to 4.2x on a busy machine).
DURATION ?= 10s
REPEAT ?= 3
# The two scenarios measure one longer run per setting (their own DURATION= still wins).
SCENARIO_DURATION = $(if $(filter default file,$(origin DURATION)),30s,$(DURATION))
WORKERS ?= 1
HOST ?=
MIX ?= per-variant
GUNICORN_WORKERS ?= 2
CONN_LESSON ?=
CONN_PARAMS ?=

WRITES ?=
# HOST=demo: the server `make demo` runs (GUNICORN_BIND's address).
LOADTEST_HOST = $(if $(filter demo,$(HOST)),$(DEMO_URL),$(HOST))

.PHONY: loadtest loadtest-connections loadtest-stampede loadtest-servers workshop-guide locust

# QUICK=1: every command of docs/WORKSHOP.md in a short form that only checks that it
# runs: one compare round, Locust runs of 2 s with 2 users, the load-test variants in one
# run, one lesson of each shape when LESSONS names none, `make locust` headless.
# tests/docs/test_guide_commands.py runs the guide this way.
ifneq ($(QUICK),)
override ROUNDS := 1
override DURATION := 2s
override USERS := 2
override MIX := together
override REPEAT := 1
SAMPLE := 1
endif

loadtest: seed
	$(PY) -m loadtests.run $(if $(LESSONS),--lessons $(LESSONS)) --users $(USERS) \
		--duration $(DURATION) --repeat $(REPEAT) --workers $(WORKERS) --mix $(MIX) \
		$(if $(SAMPLE),--sample) \
		--gunicorn-workers $(GUNICORN_WORKERS) $(if $(HOST),--host $(LOADTEST_HOST)) \
		--reports $(REPORTS) \
		$(if $(WRITES),--writes $(if $(HOST),,--after-write "$(PY) manage.py seed --preset $(PRESET) --reset --yes"))

loadtest-connections: seed
	$(PY) -m loadtests.run --connections $(if $(CONN_LESSON),--conn-lesson $(CONN_LESSON)) \
		$(if $(CONN_PARAMS),--conn-params $(CONN_PARAMS)) --users $(USERS) \
		--duration $(SCENARIO_DURATION) --workers $(WORKERS) --gunicorn-workers $(GUNICORN_WORKERS) \
		--reports $(REPORTS)

# The async track: each lesson declaring LoadTest(asgi=True) under the sync server, then
# under the ASGI server (gunicorn + uvicorn-worker), GUNICORN_WORKERS workers each, beside
# a slow service of its own. VARIANTS="naive optimized" picks variants.
VARIANTS ?=
loadtest-servers: seed
	$(PY) -m loadtests.run --servers $(if $(LESSONS),--lessons $(LESSONS)) \
		$(if $(VARIANTS),--variants $(VARIANTS)) --users $(USERS) \
		--duration $(SCENARIO_DURATION) --workers $(WORKERS) --gunicorn-workers $(GUNICORN_WORKERS) \
		--reports $(REPORTS)

# The stampede lesson's entry expires every TTL seconds under load: get_or_set recomputes
# once per waiting request, the lock once per expiry (gunicorn with 8 threads per worker).
TTL ?= 2
loadtest-stampede: seed
	$(PY) -m loadtests.run --stampede --ttl $(TTL) --users $(USERS) --duration $(SCENARIO_DURATION) \
		--workers $(WORKERS) --gunicorn-workers $(GUNICORN_WORKERS) --reports $(REPORTS)

# Locust's web UI (http://127.0.0.1:8089/) against the running demo ($(DEMO_URL)), only
# the lessons in LESSONS: `.venv/bin/locust -f loadtests/locustfile.py --tags <slug>`.
locust: install
	$(BIN)/locust -f loadtests/locustfile.py --host $(DEMO_URL) --web-host 127.0.0.1 \
		$(if $(LESSONS),--tags $(LESSONS)) \
		$(if $(QUICK),--headless --users 1 --spawn-rate 1 --run-time $(DURATION) --only-summary)

# Regenerate the per-lesson part of docs/WORKSHOP.md from the registry.
workshop-guide: install
	$(PY) manage.py workshop_guide --write docs/WORKSHOP.md
