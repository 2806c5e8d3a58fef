# Two entry points: `make run` (set up, then the main job on the embedded synthetic data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; pinned so pip takes the local wheel instead of a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup run test lint gpu-check

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

# On a CUDA machine (with a CUDA build of torch: TORCH=...): every GPU measurement in about 8 minutes, to results/gpu/.
gpu-check: setup
	$(BIN)/python -m benchmarks.gpu_check

lint: setup
	$(BIN)/ruff check .
