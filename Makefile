# Two commands on a fresh machine (Python 3.11+, pip, make):
#   make demo   sets up and loads the sample invoices into a local Leanpay stand-in
#   make test   sets up and runs ruff, mypy, then pytest on Python 3.11, 3.12 and 3.13
#               (each one this machine has; the others are named as skipped)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MELTANO_VENV := .venv-meltano
MELTANO := $(MELTANO_VENV)/bin/meltano
# uv makes every other virtualenv and installs into it, from one download cache: a few
# seconds where pip takes half a minute per virtualenv. It comes from PyPI through pip,
# into .venv (which keeps pip for whoever installs more by hand).
UV := $(BIN)/uv
UV_REQUIREMENT := uv~=0.13.8
# uv compiles the bytecode of what it installs (here, in scripts/test-pythons.sh, and in
# Meltano's plugins, which Meltano installs with uv): where PYTHONDONTWRITEBYTECODE is
# set, as on some CI machines, Python would otherwise compile singer-sdk (or Meltano)
# from source at every start, twice the CPU of each target run the tests make.
export UV_COMPILE_BYTECODE := 1

.PHONY: demo test lint bench bench-incremental bench-store clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check '$(UV_REQUIREMENT)'
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $@

# meltano[postgres]: the deployment recipe's state backend is PostgreSQL (README, tests)
$(MELTANO_VENV)/.installed: Makefile | $(BIN)/.installed
	$(UV) venv --quiet --clear --python $(PYTHON) $(MELTANO_VENV)
	$(UV) pip install --quiet --python $(MELTANO_VENV)/bin/python 'meltano[postgres]==4.4.1'
	touch $@

.meltano/.installed: $(MELTANO_VENV)/.installed meltano.yml pyproject.toml
	$(MELTANO) install
	touch $@

demo: $(BIN)/.installed .meltano/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" MELTANO="$(CURDIR)/$(MELTANO)" scripts/demo.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint .meltano/.installed
	UV="$(CURDIR)/$(UV)" MELTANO="$(CURDIR)/$(MELTANO)" scripts/test-pythons.sh

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/throughput.py

bench-incremental: $(BIN)/.installed
	$(BIN)/python benchmarks/throughput.py --only incremental

bench-store: $(BIN)/.installed
	$(BIN)/python benchmarks/throughput.py --only store

clean:
	rm -rf $(VENV) $(MELTANO_VENV) .venv-py3.* .meltano output .test-logs
