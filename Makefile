# finsync: `make run` starts the app on its embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := uv==0.13.9
PORT   ?= 8501

.PHONY: run test lint types arch unit system-deps clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "finsync needs Python 3.11+"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(UV) || true

# Install with uv when it is there (seconds), else plain pip; stamps re-run it when a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	@if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install -q --python $(BIN)/python -r requirements.txt; \
	 else $(BIN)/pip install -q -r requirements.txt; fi
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	@if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install -q --python $(BIN)/python -r requirements-dev.txt; \
	 else $(BIN)/pip install -q -r requirements-dev.txt; fi
	touch $@

run: $(VENV)/.runtime
	$(BIN)/python -m services.cli db upgrade
	$(BIN)/python -m streamlit run app.py --server.port $(PORT) --server.address localhost

# Chromium (browser tests) and poppler (PDF checks) come from Debian; installed when we may.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q chromium poppler-utils >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium poppler-utils >/dev/null)); \
	  else echo "note: install Debian's chromium and poppler-utils to run the browser tests"; fi; \
	fi

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(VENV)/.dev
	$(BIN)/mypy services models

arch: $(VENV)/.dev
	$(BIN)/lint-imports

test: $(VENV)/.dev system-deps lint types arch
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
