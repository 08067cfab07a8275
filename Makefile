# One-line entry points; each creates the virtual environment on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= runs/quick

.PHONY: setup demo test test-all bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/clgrow compare experiments/configs/quick.toml --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m ""

bench: $(STAMP)
	$(BIN)/python -m clgrow.experiments.bench.suite
	$(BIN)/python -m clgrow.experiments.bench.frontier --setting staged
	$(BIN)/python -m clgrow.experiments.bench.frontier --setting stream --match default paper "old default" random gradmax

clean:
	rm -rf $(VENV) runs
