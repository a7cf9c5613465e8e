# Credence: `make demo` and `make test` work on a fresh machine (Python >= 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cksum pyproject.toml | cut -d' ' -f1)
# `make demo` installs the runtime only (quick); `make test` adds the dev tools
# (pytest, mypy, ruff, PySpark, ...).
RUNTIME := $(VENV)/.runtime-$(HASH)
DEV     := $(VENV)/.dev-$(HASH)
# uv installs the same packages as pip, several times faster; pip is the fallback.
INSTALL = $(BIN)/python -m pip install -q --disable-pip-version-check uv \
	  && $(BIN)/python -m uv pip install --python $(BIN)/python -q -e '$(1)' \
	  || $(BIN)/python -m pip install -q --disable-pip-version-check -e '$(1)'

.PHONY: install install-dev demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(call INSTALL,.)
	rm -f $(VENV)/.runtime-*
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(call INSTALL,.[dev])
	rm -f $(VENV)/.dev-* $(VENV)/.runtime-*
	touch $@ $(RUNTIME)

install: $(RUNTIME)

install-dev: $(DEV)

# `make demo PORT=8080` serves the demo on another port.
PORT ?= 8000

demo: install
	$(BIN)/credence demo --reset --port $(PORT)

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

# ensure-browser.sh installs chromium and fonts-noto-cjk for tests/browser; when it
# cannot, the other tests still run and the browser tests fail naming the packages.
unit: install-dev
	bash scripts/ensure-postgres.sh
	-bash scripts/ensure-browser.sh
	$(BIN)/pytest -n 2 --dist worksteal --durations=25

test: lint typecheck unit

bench: install-dev
	bash scripts/ensure-postgres.sh
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis credence.db* demo.env
