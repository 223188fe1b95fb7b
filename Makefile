# The two commands of the README: `make run` and `make test`. Each creates or reuses .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install interop bench-smoke clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

DEMO_TICKETS ?= 50
DEMO_BACKFILL_DAYS ?= 30

run: $(STAMP)
	$(BIN)/flusso-obs run --demo-tickets $(DEMO_TICKETS) --demo-backfill-days $(DEMO_BACKFILL_DAYS)

# The suite runs on every core (pytest-xdist): one embedded PostgreSQL per worker, tests handed
# out in collected order (--dist load), so each worker still runs its browser tests last.
# PYTEST_WORKERS=0 runs it in one process; PYTEST_ARGS passes anything else to pytest.
PYTEST_WORKERS ?= auto

test: $(STAMP) interop
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist load $(PYTEST_ARGS)

# tests/interop: each third-party instrumentation in its own venv (pinned requirements), and the
# Node agent's node_modules (npm ci from package-lock.json). Stamps: a second run installs nothing;
# a changed requirements file rebuilds its venv from scratch (nothing left over from the old pins).
INTEROP_VENVS ?= .venv-interop
INTEROP_NAMES := openinference genai traceloop
NODE_AGENT := tests/interop/node
INTEROP_STAMPS := $(INTEROP_NAMES:%=$(INTEROP_VENVS)/%/.installed)

$(INTEROP_VENVS)/%/.installed: tests/interop/python/requirements-%.txt
	rm -rf $(INTEROP_VENVS)/$* && $(PYTHON) -m venv $(INTEROP_VENVS)/$*
	$(INTEROP_VENVS)/$*/bin/python -m pip install --quiet --upgrade pip
	$(INTEROP_VENVS)/$*/bin/python -m pip install --quiet -r $<
	touch $@

$(NODE_AGENT)/node_modules/.installed: $(NODE_AGENT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(NODE_AGENT) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the Node interop test is skipped (fails under CI=true); apt-get install nodejs npm"; fi

interop: $(INTEROP_STAMPS) $(NODE_AGENT)/node_modules/.installed

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts $(INTEROP_VENVS) $(NODE_AGENT)/node_modules
