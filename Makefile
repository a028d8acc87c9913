# `make demo` and `make test` work from a fresh clone: they create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
WORKDIR ?= workdirs/demo
# Persistent XLA compilation cache shared by every run from this checkout.
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.cache/jax
PYTEST_ARGS ?=

.PHONY: demo test test-slow bench lint venv clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# --no-compile: Python compiles what it imports on first use and caches it, unless PYTHONDONTWRITEBYTECODE is set
# (BUILD.md, "Bytecode"). Compiling at install did not pay off for `make test` from a fresh clone: install 81 s
# instead of 40 s, the suite 7m42s either way (2 cores, 2026-12-03).
$(VENV)/.installed: setup.py constraints.txt | $(VENV)/bin/python
	$(PIP) install -q --no-compile -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: setup.py constraints.txt | $(VENV)/bin/python
	$(PIP) install -q --no-compile -c constraints.txt -e ".[test]"
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m experiments.demo --workdir=$(WORKDIR)

# One pytest worker per core, whole files per worker (module fixtures and their compiles stay shared): compiles are
# mostly single-threaded, so 2 workers on 2 cores took the cold-cache suite from 9m13s to 6m10s.
test: $(VENV)/.installed-test
	$(PY) -m pytest -m "not slow" -n auto --dist loadfile $(PYTEST_ARGS) tests

test-slow: $(VENV)/.installed-test
	$(PY) -m pytest -m slow $(PYTEST_ARGS) tests

# torch_reference_step.py is run by bench_train_step.py (in a subprocess, when the `bench` extra is installed).
bench: $(VENV)/.installed
	for b in benchmarks/*.py; do [ $$b = benchmarks/torch_reference_step.py ] && continue; \
	  echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(VENV)/.installed-test
	$(PY) -m ruff check gdt morphology experiments launch tests benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache
