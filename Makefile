# One entry point for people and CI. Every target sets itself up first.
SHELL := /bin/bash
ROOT := $(CURDIR)
PY := $(ROOT)/.venv/bin/python
SERVING_PY := $(ROOT)/.venv-serving/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

export AIRFLOW_HOME ?= $(ROOT)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(ROOT)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__MLOPS__PROJECT_ROOT := $(ROOT)
export PYTHONPATH := $(ROOT):$(ROOT)/providers/mlops/src$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: help setup venv venv-serving airflow-db browser prometheus test lint typecheck demo demo-drift batch-score label-feedback example-data new-model reproduce render bench up serve lock clean

help:
	@echo "make demo    set everything up, run the training pipeline and the drift DAG, print a summary"
	@echo "             (MODEL=<name>: the same for a model spec's generated DAGs)"
	@echo "make new-model DATA=<file> LABEL=<column or expression> TIMESTAMP=<column> ENTITY=<column>[,<column>]"
	@echo "             [NAME=<model>] [LABEL_LAG=6h] [FORCE=1]  spec, contract and params from a data file"
	@echo "make label-feedback [SIMULATE=right|wrong] [MODEL=<name>] [AS_OF=YYYY-MM-DD]"
	@echo "             join delayed labels to the prediction log, print live performance per version and day"
	@echo "make example-data   land 21 days of the second example's departures (then: make demo MODEL=flight_delays)"
	@echo "make batch-score MODEL=<name> AS_OF=YYYY-MM-DD [DAYS=1]  the champion scores validated days (batch_scores/)"
	@echo "make reproduce MODEL=<name> VERSION=<n>   rebuild a version's training set from its recorded partition"
	@echo "             versions, retrain with its recorded params and seed, compare predictions"
	@echo "make test    set everything up and run the test suite"
	@echo "make up      airflow standalone on http://localhost:8080 with the bundle's DAGs"
	@echo "make serve   serve the current champion locally in the foreground"
	@echo "make render  write the Kubernetes objects the pipeline would submit to build/manifests/"
	@echo "make bench   run every benchmark (numbers in build/bench/)"

$(UV):
	python3 -m pip install --quiet --user uv==0.13.9 || python3 -m pip install --quiet --break-system-packages --user uv==0.13.9

.venv/.synced: requirements.lock providers/mlops/pyproject.toml | $(UV)
	test -x $(PY) || $(UV) venv --quiet --python 3.11 .venv
	VIRTUAL_ENV=$(ROOT)/.venv $(UV) pip sync --quiet requirements.lock
	touch $@

.venv-serving/.synced: kserve/requirements.lock providers/mlops/pyproject.toml | $(UV)
	test -x $(SERVING_PY) || $(UV) venv --quiet --python 3.11 .venv-serving
	VIRTUAL_ENV=$(ROOT)/.venv-serving $(UV) pip sync --quiet kserve/requirements.lock
	# The model server imports the provider's lineage contract only (stdlib): no Airflow in this environment.
	VIRTUAL_ENV=$(ROOT)/.venv-serving $(UV) pip install --quiet --no-deps -e ./providers/mlops
	touch $@

venv: .venv/.synced
venv-serving: .venv-serving/.synced

$(AIRFLOW_HOME)/airflow.db: .venv/.synced
	mkdir -p $(AIRFLOW_HOME)
	$(ROOT)/.venv/bin/airflow db migrate >/dev/null

airflow-db: $(AIRFLOW_HOME)/airflow.db

setup: venv venv-serving airflow-db

# Headless Chromium for the UI test (Debian's package; Playwright drives it with executablePath).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

# Prometheus (Debian's package) for the live canary analysis tests and `make up`'s local scraping.
prometheus:
	@command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq prometheus >/dev/null; fi; }

# Test files run in two worker processes (pytest-xdist, one file per worker at a time): about 24 instead of 35
# minutes on 2 cores. PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 2

test: venv venv-serving browser prometheus lint typecheck
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

lint: venv
	$(PY) -m ruff check providers dags plugins include kserve tests benchmarks
	$(PY) -m ruff format --check providers dags plugins include kserve tests benchmarks

# mypy on the provider and the model server (configuration in pyproject.toml).
typecheck: venv
	$(PY) -m mypy

# The second example's data (include/models/flight_delays.yaml): 21 UTC days into the landing zone.
example-data: venv
	$(PY) -m include.examples.flight_delays_generator --start 2026-11-01 --days 21 --rows-per-day 600

demo: setup
	$(PY) -m include.demo $(if $(MODEL),--model $(MODEL))

# A model spec, its contract and trainer params from one data file; the rows land by UTC day.
new-model: venv
	@test -n "$(DATA)" -a -n "$(LABEL)" -a -n "$(TIMESTAMP)" -a -n "$(ENTITY)" || { \
	  echo "usage: make new-model DATA=<file> LABEL=<column or expression> TIMESTAMP=<column> ENTITY=<column>[,<column>] [NAME=<model>] [LABEL_LAG=6h] [FORCE=1]"; exit 2; }
	@# Read from the environment (make exports command-line variables): quotes in LABEL reach Python intact.
	$(PY) -m include.scaffold --data "$$DATA" --label "$$LABEL" --timestamp "$$TIMESTAMP" --entity "$$ENTITY" \
	  $(if $(NAME),--name "$$NAME") $(if $(LABEL_LAG),--label-lag "$$LABEL_LAG") $(if $(FORCE),--force)

# Rebuild a model version from the data partition versions, params, seed and code version its run recorded.
reproduce: setup
	@test -n "$(MODEL)" -a -n "$(VERSION)" || { echo "usage: make reproduce MODEL=<name> VERSION=<n>"; exit 2; }
	$(PY) -m include.reproduce --model "$$MODEL" --version "$$VERSION"

demo-drift: setup
	$(PY) -m include.demo --inject-drift

# A model spec's batch scoring through Airflow: the champion scores the validated days up to AS_OF.
batch-score: setup
	@test -n "$(MODEL)" -a -n "$(AS_OF)" || { echo "usage: make batch-score MODEL=<name> AS_OF=YYYY-MM-DD [DAYS=1]"; exit 2; }
	$(ROOT)/.venv/bin/airflow dags test $(MODEL)__batch_scoring -c '{"as_of": "$(AS_OF)", "window_days": $(or $(DAYS),1)}'

# Delayed labels through Airflow (after make demo); SIMULATE=wrong first lands labels contradicting the scores.
label-feedback: setup
	$(PY) -m include.label_feedback $(if $(MODEL),--model $(MODEL)) $(if $(AS_OF),--as-of $(AS_OF)) \
	  $(if $(SIMULATE),--simulate $(SIMULATE))

render: venv
	$(PY) -m include.render --out build/manifests

bench: setup
	@mkdir -p build/bench
	@set -e; for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

up: setup
	$(PY) -m include.standalone

serve: setup
	$(PY) -m include.serve

lock: | $(UV)
	$(UV) pip compile requirements-dev.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock
	$(UV) pip compile kserve/requirements.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o kserve/requirements.lock
	# Astro Runtime's Python (3.12), constrained to the local lock: the image installs the same pinned set.
	mkdir -p build && grep -v '^-e ' requirements.lock > build/requirements-constraints.txt
	$(UV) pip compile requirements.txt --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
	  -c build/requirements-constraints.txt -o requirements-astro.lock

clean:
	rm -rf build .airflow
