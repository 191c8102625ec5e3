# jobq — the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-matrix lint typecheck fmt docs lock clean chaos soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install jobq with its pinned dependencies (.venv/bin/jobq)

run: $(STAMP) ## Start jobq serve (API + workers + dashboard) on the embedded database
	$(BIN)/jobq serve

test: $(STAMP) ## Run the whole test suite (uses DATABASE_URL if set, else an embedded PostgreSQL)
	$(BIN)/pytest -n 2 --dist loadfile

# The legs are in deploy/scripts/matrix.toml; PG= and PY= pick some (both: that one leg),
# ARGS= goes to pytest.
PG ?=
PY ?=
ARGS ?=
test-matrix: $(STAMP) ## Run the suite on each PostgreSQL and Python of deploy/scripts/matrix.toml (PG= PY= ARGS=)
	$(BIN)/python deploy/scripts/test_matrix.py $(if $(PG),--pg $(PG)) $(if $(PY),--py $(PY)) $(if $(ARGS),-- $(ARGS))

chaos: $(STAMP) ## The full reliability suite (root, ~25 min): faults, a fleet, a long transaction (docs/RELIABILITY.md)
	bash tests/chaos/run.sh

soak: $(STAMP) ## Steady load for SOAK_SECONDS (default 3600) sampling bloat, latency, RSS into docs/ (root)
	$(BIN)/python bench/soak.py --own-cluster --seconds $${SOAK_SECONDS:-3600}

# Every Python file of the repository: the package, its tests, the benchmarks, the
# examples users copy and the tools that make the docs and the deployment.
PY_SOURCES = src tests bench examples docs/generate.py docs/screenshots deploy/scripts

lint: $(STAMP) ## ruff check and format check, the import-layer contract (pyproject.toml)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict on the package and the tests
	$(BIN)/mypy

fmt: $(STAMP) ## Format the code
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/ruff check --fix $(PY_SOURCES)

docs: $(STAMP) ## Regenerate the reference pages in docs/ from the code
	$(BIN)/python docs/generate.py

# --universal: one lock for every Python from requires-python's 3.11 up (the matrix
# installs it on 3.11, 3.12 and 3.13); markers keep Windows-only pins off Linux.
lock: ## Re-pin every dependency into requirements.lock (needs uv)
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes -o requirements.lock

clean: ## Remove the virtualenvs and caches (not the embedded database: see JOBQ_HOME)
	rm -rf $(VENV) $(VENV)-3.* .pytest_cache .mypy_cache .ruff_cache

# --- Deployment (docs/DEPLOY.md): the image, its end-to-end test, PgBouncer ------
IMAGE      ?= jobq:latest
BASE_IMAGE ?= python:3.11-slim-bookworm
DOCKER     ?= docker
.PHONY: image image-context image-test pgbouncer-test

image-context: $(STAMP) ## Build wheels of jobq and its locked runtime deps into build/image/
	$(BIN)/python deploy/scripts/image_context.py build/image

image: image-context ## Build the image from those wheels, offline (IMAGE=, BASE_IMAGE=, DOCKER=)
	$(DOCKER) build --network none --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

image-test: $(STAMP) ## Build a Debian base and the image, run the compose demo end to end (root)
	bash deploy/scripts/image-test.sh

pgbouncer-test: $(STAMP) ## Run jobq through a host PgBouncer in transaction mode (installs it)
	bash deploy/scripts/pgbouncer-test.sh
