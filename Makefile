# meshbed: `make demo` runs the quickstart mesh, `make test` runs the tests.
# Both create their own virtualenv in .venv (override with VENV=...).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# tests run on TEST_WORKERS pytest-xdist workers; tests sharing a lab stay on one
# (tests/conftest.py). TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= 2

.PHONY: demo test venv lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools>=77' wheel  # 77: the license string; the wheel test builds without isolation
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: venv
	$(BIN)/meshbed run examples/quickstart.yaml --report quickstart-report.json

test: venv
	$(BIN)/python -m pytest -q -ra -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check peer orchestrator devices tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) peer.pyz build dist *.egg-info

# --- peer.pyz (one-file agent, prometheus_client vendored) ---
peer.pyz: venv $(shell find peer -name '*.py')
	$(BIN)/python -m orchestrator.pyz peer.pyz
