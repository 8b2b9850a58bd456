# epipe — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export EPIPE_HOME ?= $(CURDIR)/.epipe

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[1m%-13s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## create .venv with epipe, its dev tools and the Hive Metastore jars (idempotent)

$(STAMP): pyproject.toml hatch_build.py $(wildcard epipe/*/_*.c epipe/*/*/_*.c)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "epipe needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,hms]'
	@touch $@

demo: install ## start the embedded stack, load sample images, show what to try
	@PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo.sh

demo-scaleout: install ## the scale-out mode without Docker: each stage a process, through Kafka (Tansu); a kill -9, verify
	@PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo_scaleout.sh

# Each run gets a base directory of its own: pytest strips other users' access from its shared
# /tmp/pytest-of-$USER at every start, which would cut the embedded servers (running as
# another user under root) of a concurrent run off their data.
test: install ## run the whole test suite
	@base=$$(mktemp -d /tmp/epipe-test-XXXXXX) && \
	$(BIN)/pytest -n 2 --dist loadgroup -m "not soak" --basetemp="$$base"; status=$$?; rm -rf "$$base"; exit $$status

soak: install ## the convergence property tests with 2,000 histories (long)
	EPIPE_CONVERGENCE_EXAMPLES=2000 $(BIN)/pytest tests/integration/test_convergence.py -s --basetemp="$$(mktemp -d /tmp/epipe-test-XXXXXX)"

lint: install ## ruff (format check + lint) and mypy
	$(BIN)/ruff format --check epipe search_api tests compose hatch_build.py
	$(BIN)/ruff check epipe search_api tests compose hatch_build.py
	$(BIN)/mypy
	$(BIN)/mypy compose/healthcheck.py hatch_build.py

check: lint test ## everything CI should hold: lint, types, tests

fmt: install ## format the code in place
	$(BIN)/ruff format epipe search_api tests compose hatch_build.py
	$(BIN)/ruff check --fix epipe search_api tests compose hatch_build.py

stop: install ## stop the demo's pipeline, the embedded PostgreSQL and the local metastore of EPIPE_HOME
	@for p in serve run; do if [ -f "$(EPIPE_HOME)/$$p.pid" ]; then kill "$$(cat "$(EPIPE_HOME)/$$p.pid")" 2>/dev/null; rm -f "$(EPIPE_HOME)/$$p.pid"; sleep 1; fi; done
	$(BIN)/epipe db stop
	@env -u EPIPE_HMS_URI $(BIN)/epipe hms stop >/dev/null

# The scale-out stack of compose/ (Docker Engine with the compose plugin; compose/README.md).
# SOURCE picks the profile that captures the changes: postgres (the built-in tailer) or debezium.
SOURCE ?= postgres
STACK_PROFILES := postgres,debezium
COMPOSE := docker compose -f compose/docker-compose.yml
define need_docker
	@command -v docker >/dev/null 2>&1 || { echo "make $@: docker not found: the stack of compose/ needs Docker Engine and its compose plugin (make demo needs neither)" >&2; exit 1; }
	@docker compose version >/dev/null 2>&1 || { echo "make $@: docker has no compose plugin ('docker compose'): install it" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make $@: no Docker engine answers: start it (or check DOCKER_HOST)" >&2; exit 1; }
endef

up: ## start the scale-out stack of compose/ in Docker (SOURCE=debezium: Debezium as the source)
	@case "$(SOURCE)" in postgres|debezium) ;; *) echo "make up: SOURCE must be postgres or debezium, not '$(SOURCE)'" >&2; exit 1;; esac
	$(need_docker)
	COMPOSE_PROFILES=$(SOURCE) EPIPE_BUS=$(if $(filter debezium,$(SOURCE)),connect,kafka) $(COMPOSE) up -d --build
	@echo "started (source: $(SOURCE)); watch it with: $(COMPOSE) ps"

down: ## stop and remove the stack of make up (its volumes are kept)
	$(need_docker)
	COMPOSE_PROFILES=$(STACK_PROFILES) $(COMPOSE) down

clean: ## remove the venv, caches and the demo's EPIPE_HOME
	-$(MAKE) --no-print-directory stop 2>/dev/null
	rm -rf $(VENV) .epipe .epipe-scaleout .mypy_cache .ruff_cache .pytest_cache .hypothesis

.PHONY: help install demo demo-scaleout test soak lint check fmt stop up down clean
