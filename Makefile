# lmforge — the two commands of the README are `make repro` and `make test`.
# Both create the virtual environment on first use (override its path with VENV=...).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned: any looser request can pull a multi-GB CUDA build.
TORCH := torch==2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install dev repro test ui server bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install $(TORCH)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(PIP) install -c $(VENV)/constraints.txt -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

## Run the default pipeline (prepare → pretrain → finetune → evaluate → report).
repro: install
	dvc repro

## Run the test suite (offline).
test: dev
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## Open the MLflow dashboard on http://127.0.0.1:5000
ui: install
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

## Performance measurements (not tests).
bench: dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf artifacts reports outputs multirun .lmforge
