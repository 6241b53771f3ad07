# deer_pipeline: the two commands a new machine needs are `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,deploy]'
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

## Run the main job on the embedded default: database, demo data (when DEER_IMAGE_ROOT is unset),
## every location materialized, the benchmark measured, then the Dagster UI with the daemon and
## the sensor on 127.0.0.1:3000.
run: install
	$(BIN)/deer-pipeline run
	$(BIN)/deer-pipeline bench --images 48 --repeats 1 --materialize
	$(BIN)/deer-pipeline dev

## Debian packages the tests drive: headless Chromium + driver (browser test) and a Compose CLI
## (validates deploy/compose). Installed only when missing; needs root or sudo.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; } || \
	  missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

## Lint and run the whole test suite (the same command CI runs).
test: install system-deps
	$(BIN)/ruff check deer_pipeline deer_workshop deer_pipeline_tests scripts
	$(BIN)/ruff format --check deer_pipeline deer_workshop deer_pipeline_tests scripts
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/ruff check deer_pipeline deer_workshop deer_pipeline_tests scripts
	$(BIN)/ruff format --check deer_pipeline deer_workshop deer_pipeline_tests scripts

clean:
	rm -rf $(VENV) .deer .pytest_cache .ruff_cache
