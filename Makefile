# Trading Buddy. Two commands matter: `make demo` and `make test`. Everything they need is
# installed by this file from pyproject.toml + requirements.lock into .venv.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The project's bytecode, refreshed whenever a source file is newer (see the compiled target).
COMPILED := $(VENV)/.compiled
PROJECT_SOURCES := $(shell find buddy replay experiments -name '*.py' 2>/dev/null)
# Absolute, so a kernel (which starts in notebooks/) or papermill run from any folder reads the
# same files as this Makefile; buddy.paths resolves the same defaults without make.
export BUDDY_DB ?= $(CURDIR)/data/buddy.duckdb
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns/mlflow.db
# One BLAS thread per process: jobs parallelise across processes instead.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

APP_PORT ?= 8866
# make lab LAB_ARGS="--port 8890 --IdentityProvider.token=secret" (any JupyterLab option);
# as root JupyterLab needs --allow-root, added here when make runs as root.
LAB_ARGS ?=
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# make replay SOURCE=ma_cross SYMBOLS=AAPL,MSFT START=2011-01-01 END=2012-12-31 (all optional:
# the all-data corpus over every symbol and timeframe); TIMEFRAME, CONFIG, EXECUTOR likewise.
SOURCE ?= corpus
MLFLOW_PORT ?= 5000
SERVE_PORT ?= 8000

.PHONY: help venv compiled demo test lab bench lint lock clean app chromium replay mlflow-ui promote-demo serve

help:
	@echo "make demo   build data/buddy.duckdb from bundled real data and print Buddy Reports"
	@echo "make test   run the whole test suite"
	@echo "make lab    open JupyterLab on notebooks/ (LAB_ARGS=\"--port 8890 ...\" passes options)"
	@echo "make app    serve the workbench page with Voila on http://127.0.0.1:$(APP_PORT)"
	@echo "make replay replay the all-data corpus (SOURCE=NAME SYMBOLS=A,B START=YYYY-MM-DD"
	@echo "            END=YYYY-MM-DD narrow it); replay + calibration notebooks and HTML in reports/"
	@echo "make promote-demo  log the default scoring config in MLflow, replay it on the holdout,"
	@echo "            promote it to production, then evaluate with it"
	@echo "make serve  the HTTP API on http://127.0.0.1:$(SERVE_PORT) (builds the demo database first"
	@echo "            when there is none; keys: buddy service keys create --user demo)"
	@echo "make mlflow-ui  the MLflow UI on http://127.0.0.1:$(MLFLOW_PORT)"
	@echo "make bench  run the benchmarks (ratios against baselines measured in the same run)"
	@echo "make lint   ruff and mypy"
	@echo "make lock   re-pin requirements.lock from pyproject.toml"

venv: $(COMPILED)

# Bytecode is compiled at install: these machines (and some users' and CI's) set
# PYTHONDONTWRITEBYTECODE=1, so without it every process recompiles ~1,400 modules
# (`buddy evaluate` 7.9 s against 3.3 s compiled). uv compiles site-packages
# (--compile-bytecode); compileall, which writes whatever that variable says, the project.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip "uv==0.13.8"
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode -r requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (trading-buddy)" >/dev/null
	touch $(STAMP)

# compileall rewrites only the files whose source changed, so this costs little when fresh.
# After an install (or in a venv made before this rule) site-packages is swept too: a
# no-op `uv pip install --compile-bytecode` compiles nothing it did not just install.
compiled: $(COMPILED)

$(COMPILED): $(STAMP) $(PROJECT_SOURCES)
	$(if $(filter $(STAMP),$?),$(PY) -m compileall -q $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
	$(PY) -m compileall -q buddy replay experiments
	touch $(COMPILED)

demo: $(COMPILED)
	$(VENV)/bin/buddy demo

# The browser test drives Chromium or Chrome: found ($BUDDY_CHROMIUM, PATH, Playwright's
# folder, macOS applications) or, where apt-get exists, installed from Debian's chromium;
# elsewhere the script says how to install one (brew, playwright install) and stops.
chromium:
	@bash scripts/install-chromium.sh

test: $(COMPILED) chromium
	$(PY) -m pytest -n 2 --dist loadgroup --no-loadscope-reorder

# APP_USER=name opens the page as that user (default: a user with an account)
app: $(COMPILED)
	$(PY) -m buddy.widgets.serve --port $(APP_PORT) --db $(BUDDY_DB) $(if $(APP_USER),--user $(APP_USER))

# The HTTP API (FastAPI on uvicorn, one process: the file's writer while it runs) on the
# embedded defaults; `make demo` builds the database first when there is none.
serve: $(COMPILED)
	@test -f "$(BUDDY_DB)" || $(VENV)/bin/buddy demo
	$(VENV)/bin/buddy service serve --port $(SERVE_PORT)

# `buddy replay report` with the variables above: 10_replay then 20_calibration into reports/
replay: $(COMPILED)
	$(VENV)/bin/buddy replay report --out reports --source "$(SOURCE)" \
	    $(if $(SYMBOLS),--symbols "$(SYMBOLS)") $(if $(TIMEFRAME),--timeframe "$(TIMEFRAME)") \
	    $(if $(START),--start "$(START)") $(if $(END),--end "$(END)") \
	    $(if $(CONFIG),--config "$(CONFIG)") $(if $(EXECUTOR),--executor "$(EXECUTOR)")

# One uvicorn worker and no GenAI job runner: MLflow's defaults (4 workers plus a huey job
# consumer, 15 processes, ~29 CPU-seconds before the page answers) crowd 2 cores; this
# starts 2 processes in ~8 CPU-seconds. MLFLOW_WORKERS=4 for a shared server.
MLFLOW_WORKERS ?= 1
mlflow-ui: $(STAMP)
	@echo "MLflow UI for $(MLFLOW_TRACKING_URI) on http://127.0.0.1:$(MLFLOW_PORT) (Ctrl-C stops it)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui \
	    --backend-store-uri $(MLFLOW_TRACKING_URI) --registry-store-uri $(MLFLOW_TRACKING_URI) \
	    --host 127.0.0.1 --port $(MLFLOW_PORT) --workers $(MLFLOW_WORKERS)

promote-demo: $(COMPILED)
	$(PY) -m experiments.pipeline --db $(BUDDY_DB)
	@echo "An evaluation with the production config (its report names the config it used):"
	$(VENV)/bin/buddy evaluate --user demo --symbol AAPL --side long --timeframe 1d \
	    --entry 560.99 --stop 537.68 --target 607.62 --size 100 --as-of 2012-06-01 --no-log

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ROOT_FLAG) $(LAB_ARGS)

bench: $(COMPILED)
	$(PY) -m benchmarks

# mypy reads its packages and strictness from [tool.mypy] in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check buddy replay experiments tests benchmarks
	$(VENV)/bin/mypy

lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) data/buddy.duckdb* .pytest_cache reports
