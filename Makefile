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

APP_PORT ?= 8866
MLFLOW_PORT ?= 5000

.PHONY: help venv demo test lab bench lint lock clean app chromium replay mlflow-ui promote-demo

help:
	@echo "make demo   build data/buddy.duckdb from bundled real data and print Buddy Reports"
	@echo "make test   run the whole test suite"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make app    serve the workbench page with Voila on http://127.0.0.1:$(APP_PORT)"
	@echo "make replay replay the all-data corpus (SYMBOLS=A,B narrows it); replay +"
	@echo "            calibration notebooks and HTML in reports/"
	@echo "make promote-demo  log the default scoring config in MLflow, replay it on the holdout,"
	@echo "            promote it to production, then evaluate with it"
	@echo "make mlflow-ui  the MLflow UI on http://127.0.0.1:$(MLFLOW_PORT)"
	@echo "make bench  run the benchmarks (ratios against baselines measured in the same run)"
	@echo "make lint   ruff and mypy"
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

# The browser test drives Debian's chromium: installed here so a fresh machine has it.
chromium:
	bash scripts/install-chromium.sh

test: $(STAMP) chromium
	$(PY) -m pytest -n 2 --dist loadgroup

app: $(STAMP)
	$(PY) -m buddy.widgets.serve --port $(APP_PORT) --db $(BUDDY_DB)

# SYMBOLS=AAPL,MSFT narrows the corpus (default: every symbol and timeframe with data)
replay: $(STAMP)
	$(PY) -m replay.reports --db $(BUDDY_DB) --out reports $(if $(SYMBOLS),--symbols $(SYMBOLS))

mlflow-ui: $(STAMP)
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port $(MLFLOW_PORT)

promote-demo: $(STAMP)
	$(PY) -m experiments.pipeline --db $(BUDDY_DB)
	$(VENV)/bin/buddy evaluate --user demo --symbol AAPL --side long --timeframe 1d \
	    --entry 560.99 --stop 537.68 --target 607.62 --size 100 --as-of 2012-06-01 --no-log

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) -m benchmarks

# mypy reads its packages and strictness from [tool.mypy] in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check buddy replay experiments tests benchmarks
	$(VENV)/bin/mypy

lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) data/buddy.duckdb* .pytest_cache reports
