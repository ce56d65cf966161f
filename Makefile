# The two README commands: `make demo` and `make test`. Each builds .venv from
# pyproject.toml first, so a fresh machine with Python 3.11 needs nothing else.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,plot]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -n 2

test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow

bench: $(STAMP)
	$(PY) benchmarks/work_precision.py
	$(PY) benchmarks/gradient_cost.py
	$(PY) benchmarks/compile_time.py

lint: $(STAMP)
	$(VENV)/bin/ruff check odeinfer tests examples benchmarks

clean:
	rm -rf $(VENV)
