# Two entry points: `make run` (set up, then the main job on the embedded synthetic data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; pinned so pip takes the local wheel instead of a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup run test lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python -m benchmarks.run --fusions grf,pairwise

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
