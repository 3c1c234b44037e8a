# The two commands a newcomer needs: `make demo` and `make test` (`make bench` measures).
# Each creates .venv and installs fieldsync with its dev tools on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# make runs the tests the way CI does: the same Hypothesis examples every run, no
# deadline (tests/conftest.py). Plain pytest uses the "dev" profile (fresh examples).
HYPOTHESIS_PROFILE ?= ci

.PHONY: demo test lint typecheck unit bench bench-quick clean messages

# The install step compiles the message catalogues (setup.py), so it reruns when one changes.
$(STAMP): pyproject.toml setup.py $(wildcard client_sync/locale/*/LC_MESSAGES/*.po)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m simulations.demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest -q $(PYTEST_ARGS)

# bench-quick only proves the benchmarks still run (tiny sizes, no thresholds); it runs
# before the unit tests so the test summary is the last thing `make test` prints.
test: lint typecheck bench-quick unit

# Every figure a ratio against a baseline measured in the same run; see docs/performance.md.
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick

# Re-extract the message ids from the code and merge them into each language's .po.
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg --project fieldsync --version 0.1.0 \
		-w 100 -o client_sync/locale/fieldsync.pot .
	$(VENV)/bin/pybabel update -w 100 -D fieldsync -i client_sync/locale/fieldsync.pot -d client_sync/locale

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-run
