# Two commands do all set-up on a fresh machine:
#   make demo   - creates .venv from uv.lock and runs `euccs-gw demo`
#   make test   - creates .venv from uv.lock, installs the real peers the tests talk to
#                 (Mosquitto, Chromium, sipp; Debian packages, root or sudo) and runs lint,
#                 type checks and the test suite
PYTHON ?= python3
VENV   := .venv
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: setup peers demo test check lint typecheck fmt proto clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced

# Real peers of the interop tests: an MQTT broker, a browser, an independent SIP stack.
peers:
	scripts/ensure-mosquitto
	scripts/ensure-chromium
	scripts/ensure-sipp
	scripts/ensure-postgres

demo: setup
	$(VENV)/bin/euccs-gw demo $(ARGS)

test: setup peers
	scripts/test

check: setup
	scripts/check

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

proto: setup
	$(VENV)/bin/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
