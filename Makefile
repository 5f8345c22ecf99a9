# realtime-loadtest: every target sets up what it needs (a fresh clone needs only python3.11+ and make).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo bench fixtures clean browser sysdeps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# System packages the tests use, installed when absent and we are root (Debian): headless Chromium
# for the HTML report test, espeak-ng and alsa-utils (its human recordings) to rebuild the fixtures,
# openssl for the wss:// test's self-signed certificate.
SYSDEPS := chromium:chromium espeak-ng:espeak-ng alsa-utils:/usr/share/sounds/alsa/Front_Center.wav openssl:openssl
sysdeps:
	@missing=""; for dep in $(SYSDEPS); do pkg=$${dep%%:*}; probe=$${dep#*:}; \
		if ! command -v $$probe >/dev/null 2>&1 && [ ! -e $$probe ]; then missing="$$missing $$pkg"; fi; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q $$missing >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null); \
	else echo "make sysdeps: install$$missing (Debian: sudo apt-get install -y$$missing) for the tests" >&2; fi

browser: sysdeps

# The tests run as three pytest processes at once: most of their time is spent waiting on child
# processes, sockets and real-time audio (an end-to-end file uses about half a core), so on 2 cores
# three at a time finish in about a third of the serial time (pytest-xdist cannot run them:
# importing Locust monkey-patches gevent into the test process). The tests marked timing
# (deadlines, latencies, heartbeats) run afterwards on their own, so the others' load cannot make
# them flake. One focused run: .venv/bin/python -m pytest -q tests/x/test_y.py
PYTEST  := $(BIN)/python -m pytest -q -p no:cacheprovider
# The groups are balanced by measured wall time (pytest --durations; on a quiet machine on
# 2026-12-03 about 6 minutes each, then 2 minutes of timing tests).
TESTS_A := tests/harness tests/session/test_memory.py
TESTS_B := tests/workload tests/report tests/preflight tests/mock/test_webrtc_turns.py
TESTS_C := tests $(addprefix --ignore=,$(TESTS_A) $(TESTS_B))
test: install lint sysdeps
	@logs=$$(mktemp -d); \
	$(PYTEST) -m "not timing" $(TESTS_A) >$$logs/a.log 2>&1 & a=$$!; \
	$(PYTEST) -m "not timing" $(TESTS_B) >$$logs/b.log 2>&1 & b=$$!; \
	$(PYTEST) -m "not timing" $(TESTS_C) >$$logs/c.log 2>&1 & c=$$!; \
	wait $$a; ra=$$?; wait $$b; rb=$$?; wait $$c; rc=$$?; \
	echo "== $(TESTS_A)"; cat $$logs/a.log; echo "== $(TESTS_B)"; cat $$logs/b.log; \
	echo "== $(TESTS_C)"; cat $$logs/c.log; rm -rf $$logs; \
	echo "== tests marked timing, alone"; $(PYTEST) -m timing; rt=$$?; \
	if [ $$ra$$rb$$rc$$rt != 0000 ]; then echo "make test: failed (pytest exit codes $$ra, $$rb, $$rc, timing $$rt)" >&2; exit 1; fi

demo: install
	$(BIN)/python -m loadtest.demo

bench: install
	$(BIN)/python -m bench

fixtures: install
	$(BIN)/rtload fixtures build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
