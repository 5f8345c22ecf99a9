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

# The tests run as two pytest processes at once: they mostly wait on child processes and sockets,
# so on 2 cores this nearly halves the wall time (pytest-xdist cannot run them: importing Locust
# monkey-patches gevent into the test process). The tests marked timing (deadlines, latencies,
# heartbeats) run afterwards on their own, so the other half's load cannot make them flake.
# One focused run: .venv/bin/python -m pytest -q tests/x/test_y.py
PYTEST  := $(BIN)/python -m pytest -q -p no:cacheprovider
# The halves are balanced by measured wall time (about 8 minutes each on a quiet machine): the two
# longest report runs go with the harness's end-to-end runs.
MOVED_A := tests/report/test_knee_run.py tests/report/test_real_run.py tests/report/test_reader_lines.py
TESTS_A := tests/harness tests/workload $(MOVED_A)
TESTS_B := tests --ignore=tests/harness --ignore=tests/workload $(addprefix --ignore=,$(MOVED_A))
test: install lint sysdeps
	@logs=$$(mktemp -d); \
	$(PYTEST) -m "not timing" $(TESTS_A) >$$logs/a.log 2>&1 & a=$$!; \
	$(PYTEST) -m "not timing" $(TESTS_B) >$$logs/b.log 2>&1 & b=$$!; \
	wait $$a; ra=$$?; wait $$b; rb=$$?; \
	echo "== $(TESTS_A)"; cat $$logs/a.log; echo "== $(TESTS_B)"; cat $$logs/b.log; rm -rf $$logs; \
	echo "== tests marked timing, alone"; $(PYTEST) -m timing; rt=$$?; \
	if [ $$ra$$rb$$rt != 000 ]; then echo "make test: failed (pytest exit codes $$ra, $$rb, timing $$rt)" >&2; exit 1; fi

demo: install
	$(BIN)/python -m loadtest.demo

bench: install
	$(BIN)/python -m bench

fixtures: install
	$(BIN)/rtload fixtures build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
