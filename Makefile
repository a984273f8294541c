# coopml: two commands for a new user -- `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
EXTRAS ?= dev,ray,service,torch,flower,convex,export
# The CPU build of PyTorch (a plain `torch` requirement would fetch a multi-GB CUDA build).
TORCH ?= torch==2.13.0
BENCH_VENV ?= .venv-bench

export FLWR_TELEMETRY_ENABLED = 0
export RAY_USAGE_STATS_ENABLED = 0
export MPLBACKEND = Agg

.PHONY: setup demo test test-fast lint bench clean browser

setup: $(VENV)/.installed

# Re-install whenever the project metadata changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(findstring torch,$(EXTRAS)),$(BIN)/python -m pip install --quiet --no-compile "$(TORCH)")
	$(BIN)/python -m pip install --quiet --no-compile -e ".[$(EXTRAS)]"
	touch $@

# The main job: a market round for five hospitals, then the valuation of six hospitals'
# data under every solution concept (table + bar chart).
demo: setup
	$(BIN)/coopml market run examples/hospitals.toml --out $(OUT)/market
	$(BIN)/coopml value examples/breast_cancer.toml --out $(OUT)/values.json --plot $(OUT)/values.png

lint: setup
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

# The dashboard's end-to-end tests drive Debian's Chromium (never a browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
	  $(SUDO) apt-get install -y -q chromium chromium-driver; }

test: lint browser
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q

test-fast: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q -m "not slow"

# Benchmarks run coopml beside its peers (pyDVL pins numpy<2: a separate environment).
bench:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[bench]"
	$(BENCH_VENV)/bin/python benchmarks/run.py
	$(BENCH_VENV)/bin/python benchmarks/bench_contracts.py --skip-large

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
