# Credence: `make demo` and `make test` work on a fresh machine (Python >= 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# uv installs the same packages as pip, several times faster; pip is the fallback.
	$(BIN)/python -m pip install -q --disable-pip-version-check uv \
	  && $(BIN)/python -m uv pip install --python $(BIN)/python -q -e '.[dev]' \
	  || $(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/credence demo --reset

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

unit: install
	bash scripts/ensure-postgres.sh
	$(BIN)/pytest -n 2

test: lint typecheck unit

bench: install
	bash scripts/ensure-postgres.sh
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis credence.db* demo.env
