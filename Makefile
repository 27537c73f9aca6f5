# Two commands on a fresh Debian machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup system-deps demo test lint typecheck format bench clean

# System packages: PostGIS for the database; GDAL's tools, Chromium and npm for the tests.
# Installed with apt when we may (root or passwordless sudo), otherwise we say what to run.
system-deps:
	@bash .ci/system-deps $(SYSTEM_DEPS)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# PyTorch first and pinned: these releases are the ones this machine kind serves.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# The map page's MapLibre GL comes from npm (package-lock.json) and is served by the API.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

setup: $(BIN)/.installed node_modules/.package-lock.json

demo: SYSTEM_DEPS = postgis npm
demo: system-deps setup
	$(BIN)/streetaudit demo

test: SYSTEM_DEPS = postgis test
test: system-deps setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest

# mypy on the package (the repository root is the package `streetaudit`, hence the link;
# its sub-packages are named so that tests/ and bench/ stay out).
typecheck:
	@root=$$(mktemp -d) && ln -s "$(CURDIR)" "$$root/streetaudit" && cd "$$root" && \
	  "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" \
	    --cache-dir "$(CURDIR)/.streetaudit/mypy-cache" -m streetaudit \
	    $(foreach p,api cli flows models sql testing,-p streetaudit.$(p)); \
	  rc=$$?; rm -rf "$$root"; exit $$rc

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/densify.py
	$(BIN)/python bench/collect.py
	$(BIN)/python bench/segment.py
	$(BIN)/python bench/tiles.py
	$(BIN)/python bench/ratings.py

clean:
	rm -rf $(VENV) .streetaudit node_modules
