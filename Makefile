# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-all lint bench clean quality-data

setup: $(VENV)/.hepvld-installed

$(VENV)/.hepvld-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[all]"
	touch $@

demo: setup
	$(PY) -m hepvld.demo --output demo-output

# One BLAS thread per pytest worker: two workers already fill the two cores, and
# multi-threaded OpenBLAS is much slower on the thin matrices of the tests.
test: setup lint
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 -m "not slow" tests

test-all: setup
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 tests

# Lint, format check and type check (ruff and mypy, configured in pyproject.toml).
lint: setup
	$(PY) -m ruff check src tests benchmarks analysis examples
	$(PY) -m ruff format --check src tests benchmarks analysis examples
	$(PY) -m mypy

# The quality benchmark's samples (benchmarks/quality/README.md), cached in
# $(QUALITY_DIR): HEPVLD_QUALITY_DIR if set, else .cache/quality.
QUALITY_DIR ?= $(or $(HEPVLD_QUALITY_DIR),.cache/quality)
quality-data: setup
	PY=$(abspath $(PY)) benchmarks/quality/make_data.sh $(QUALITY_DIR)

clean:
	rm -rf $(VENV) demo-output runs .pytest_cache
