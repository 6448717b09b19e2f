# The two commands of the README:
#   make demo   set up a virtualenv and run the default study on a synthetic cohort
#   make test   set up a virtualenv, lint (ruff check, ruff format --check) and run the whole
#               test suite
# The other seed systems on their synthetic stand-ins (cohort written once under runs/):
#   make habitat-fusion   seed 000 (about 10 minutes on 2 cores)
#   make longitudinal     seed 002
#   make signature        seed 003
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo_out
# test processes (pytest-xdist; each test file runs whole in one of them)
TEST_WORKERS ?= 2

.PHONY: setup demo lint test bench clean-demo habitat-fusion longitudinal signature

$(BIN)/.radiograph-installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	touch $@

setup: $(BIN)/.radiograph-installed

demo: setup
	$(BIN)/radiograph study experiments/configs/synthetic.yaml --out $(DEMO)

runs/habitat_fusion_synth/cohort.csv: | setup
	$(BIN)/radiograph synth --kind habitat-fusion --subjects 400 runs/habitat_fusion_synth

habitat-fusion: runs/habitat_fusion_synth/cohort.csv
	$(BIN)/radiograph study experiments/configs/habitat_fusion.yaml

runs/longitudinal_synth/manifest.csv: | setup
	$(BIN)/radiograph synth --kind longitudinal runs/longitudinal_synth

longitudinal: runs/longitudinal_synth/manifest.csv
	$(BIN)/radiograph study experiments/configs/longitudinal.yaml

runs/signature_synth/manifest.csv: | setup
	$(BIN)/radiograph synth --kind signature runs/signature_synth

signature: runs/signature_synth/manifest.csv
	$(BIN)/radiograph study experiments/configs/signature_benefit.yaml

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
