# The two commands of the README: `make up` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test lint unit e2e gen lock clean help kserve-client

help:
	@echo "make up    - start modelplane locally (embedded NATS, all services, one MLServer replica)"
	@echo "make test  - lint, type-check and run the whole test suite"
	@echo "make gen   - regenerate modelplane/proto from proto/"
	@echo "make lock  - re-pin requirements/constraints.txt from the current .venv"

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "modelplane needs Python 3.11+, found " + sys.version.split()[0] + " (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	@touch $(STAMP)

up: $(STAMP)
	$(BIN)/modelplane up

lint: $(STAMP)
	$(BIN)/python tools/gen_proto.py --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# KServe's own Python client in a venv of its own (its fastapi pin excludes MLServer's), for the
# tests that call the gateway with it (tests/helpers/kserve_client.py); made once, from PyPI.
export MODELPLANE_KSERVE_CLIENT_CACHE ?= $(CURDIR)/$(VENV)/clients
kserve-client: $(STAMP)
	$(BIN)/python -m tests.helpers.kserve_client

# Unit and adapter tests, then the end-to-end tests in their own process: they use
# tritonclient's gRPC stubs, which share the protobuf package `inference` with ours.
unit: $(STAMP) kserve-client
	$(BIN)/pytest tests --ignore=tests/e2e

e2e: $(STAMP) kserve-client
	$(BIN)/pytest tests/e2e

test: lint unit e2e

gen: $(STAMP)
	$(BIN)/python tools/gen_proto.py

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^modelplane' > requirements/constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
