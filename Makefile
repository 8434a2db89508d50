# Portico. Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test test-concurrency lint migrate clean bench k8s-check lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the lock or the project's metadata changes.
$(STAMP): requirements/lock.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the locked dependencies

lock: | $(BIN)/python ## re-resolve requirements/lock.txt from pyproject.toml
	$(BIN)/pip-compile --quiet --extra dev --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links -o requirements/lock.txt pyproject.toml

migrate: install ## apply every service's migrations
	$(BIN)/iamctl migrate

run: install ## start the whole suite locally on embedded defaults
	$(BIN)/python -m services.devtools.run

test: install ## run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# SQLite serialises writes and hides races: these run on PostgreSQL even when `make test`
# runs on SQLite (TEST_DATABASE_URL, default: the local server's postgres database).
test-concurrency: install ## run the concurrency tests (tests/concurrency) on PostgreSQL
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres} \
		$(BIN)/python -m pytest -m concurrency $(PYTEST_ARGS)

bench: install ## run every benchmark on loopback and rewrite docs/benchmarks.md
	$(BIN)/python -m bench.run $(BENCH)

lint: install ## ruff on everything, mypy on the shared kernel
	$(BIN)/ruff check .
	$(BIN)/mypy services/common

k8s-check: install ## render deploy/k8s (kubectl kustomize), validate against the Kubernetes schemas, check the policy
	$(BIN)/python deploy/k8s_check.py

clean: ## remove the venv, local data and caches
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
