# Two commands do everything on a fresh clone: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install serve test lint test-tools docs

install: $(VENV)/.installed

# torch first and pinned: a bare `torch` requirement may pull a multi-GB CUDA build onto a CPU machine
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

serve: install
	$(BIN)/python -m app serve

lint: install
	$(BIN)/ruff check app training tests scripts
	$(BIN)/ruff format --check app training tests scripts
	$(BIN)/mypy

# haproxy for the balancer's checks, from Debian when missing (skipped with a reason where it cannot be)
test-tools:
	scripts/test-tools.sh

# the documentation site into site/, strict: a broken link or anchor, a page outside the nav or an undocumented
# setting fails the build; the API reference and the metrics table are made from the code (scripts/docs_hooks.py)
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# the browser tests (tests/web) drive Debian's chromium; the script installs it once where apt can
test: lint test-tools docs
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest
