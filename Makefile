# realtime-loadtest: every target sets up what it needs (a fresh clone needs only python3.11+ and make).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo bench fixtures clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

# Headless Chromium for the HTML report test (Debian package `chromium`), installed when absent and root.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium); \
	else echo "make browser: install Chromium (Debian: sudo apt-get install -y chromium) for the HTML report test" >&2; fi

test: install lint browser
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m loadtest.demo

bench: install
	$(BIN)/python -m bench

fixtures: install
	$(BIN)/rtload fixtures build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
