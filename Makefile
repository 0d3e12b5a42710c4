# The two commands of the README: `make demo` and `make test`. Everything they need is installed by them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYPROJECTS := pyproject.toml shared/pyproject.toml services/manufacturer/pyproject.toml \
              services/distributor/pyproject.toml services/warehouse/pyproject.toml

.PHONY: install test demo kafka-up kafka-up-secure kafka-down asyncapi schemas clean bench bench-handlers

install: $(STAMP)

$(STAMP): $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e shared -e services/manufacturer -e services/distributor -e services/warehouse -e .
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest

demo: install
	$(BIN)/backflush demo

# Issues 6 and 18: ours against the raw and the guarantee-equal chain, on SQLite and PostgreSQL (docs/benchmarks.md);
# `make bench BEFORE=REF` also runs the services from commit REF in the same run. Sizes: see bench/run.py.
bench: install
	$(BIN)/python -m bench.run --profile $(if $(BEFORE),--before $(BEFORE))

# CPU per record of the three services' batch paths, in-process on SQLite, no broker (bench/handlers.py).
bench-handlers: install
	$(BIN)/python -m bench.handlers $(if $(BEFORE),--before $(BEFORE))

kafka-up: install
	$(BIN)/python scripts/kafka_local.py up

# The same broker with SASL_SSL and a SCRAM principal per service and one for the CLI (README, "Security").
kafka-up-secure: install
	$(BIN)/python scripts/kafka_local.py up --secure

kafka-down: install
	$(BIN)/python scripts/kafka_local.py down

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis

# docker-compose.yml and testcontainers for real. Where no Docker engine answers, engine-up sets up Podman with
# its Docker API (scripts/container_engine.sh; prints the DOCKER_HOST to export) and engine-down stops it.
.PHONY: compose-test engine-up engine-down up compose-demo down

# Deploy with docker compose (README): the engine (Docker where it answers, else Podman), the images checked, then
# `docker compose up --build --detach --wait`; `compose-demo` places the demo's orders against the deployment;
# `down` removes it with its volumes.
ENGINE := eval "$$(bash scripts/container_engine.sh start)"

up: install
	@$(ENGINE) && bash scripts/compose_up.sh

compose-demo: install
	@$(ENGINE) && $(BIN)/backflush demo --compose

down: install
	@$(ENGINE) && docker compose down --volumes

compose-test: install
	$(BIN)/python -m pytest tests/compose

engine-up:
	bash scripts/container_engine.sh start

engine-down:
	bash scripts/container_engine.sh stop
