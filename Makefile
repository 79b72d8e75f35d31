# Trading Buddy. Two commands matter: `make demo` and `make test`. Everything they need is
# installed by this file from pyproject.toml + requirements.lock into .venv.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export BUDDY_DB ?= data/buddy.duckdb
export MLFLOW_TRACKING_URI ?= sqlite:///mlruns/mlflow.db
# One BLAS thread per process: jobs parallelise across processes instead.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: help venv demo test lab bench lint lock clean

help:
	@echo "make demo   build data/buddy.duckdb from bundled real data and print Buddy Reports"
	@echo "make test   run the whole test suite"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make bench  run the benchmarks (ratios against baselines measured in the same run)"
	@echo "make lint   ruff"
	@echo "make lock   re-pin requirements.lock from pyproject.toml"

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip "uv==0.13.8"
	$(VENV)/bin/uv pip install --python $(PY) --quiet -r requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (trading-buddy)" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/buddy demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check buddy replay experiments tests benchmarks

lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) data/buddy.duckdb* .pytest_cache reports
