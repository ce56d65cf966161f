# The two README commands: `make demo` and `make test`. Each builds .venv from
# pyproject.toml first, so a fresh machine with Python 3.11 needs nothing else.
# `make test` = lint (ruff check, ruff format --check) + type check (pyright) + docs
# build (mkdocs --strict) + the default tests; CI (.ci/run) runs exactly `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint typecheck docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,plot]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: lint typecheck docs
	$(PY) -m pytest -q -n 2

test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow

bench: $(STAMP)
	$(PY) benchmarks/work_precision.py
	$(PY) benchmarks/gradient_cost.py
	$(PY) benchmarks/compile_time.py

lint: $(STAMP)
	$(VENV)/bin/ruff check odeinfer tests examples benchmarks
	$(VENV)/bin/ruff format --check odeinfer tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/pyright

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

clean:
	rm -rf $(VENV)
