# The two commands of the README:
#   make demo   set up a virtualenv and run the default study on a synthetic cohort
#   make test   set up a virtualenv, lint (ruff check, ruff format --check) and run the whole
#               test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo_out
# test processes (pytest-xdist; each test file runs whole in one of them)
TEST_WORKERS ?= 2

.PHONY: setup demo lint test bench clean-demo

$(BIN)/.radiograph-installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	touch $@

setup: $(BIN)/.radiograph-installed

demo: setup
	$(BIN)/radiograph study experiments/configs/synthetic.yaml --out $(DEMO)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@echo "see benchmarks/README.md for each benchmark's command"

clean-demo:
	rm -rf $(DEMO)
