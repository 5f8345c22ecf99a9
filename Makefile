# realtime-loadtest: every target sets up what it needs (a fresh clone needs only python3.11+ and make).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo bench fixtures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m loadtest.demo

bench: install
	$(BIN)/python -m bench

fixtures: install
	$(BIN)/rtload fixtures build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
