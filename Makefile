# One-line entry points; each creates the virtual environment on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= runs/quick

.PHONY: setup demo lint test test-all bench clean

# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs PyTorch's CPU wheels first (no CUDA)
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(BIN)/pip install torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/clgrow compare experiments/configs/quick.toml --out $(OUT)

# ruff and mypy first; mypy reads the installed layout (strategies/ and experiments/ as
# clgrow.strategies and clgrow.experiments) from a tree of links, so imports across layers are checked
TYPECHECK := build/typecheck
lint: $(STAMP)
	$(BIN)/ruff check clgrow strategies experiments tests
	$(BIN)/ruff format --check clgrow strategies experiments tests
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/clgrow
	for f in clgrow/*.py clgrow/py.typed clgrow/methods clgrow/measure; do ln -s "$(CURDIR)/$$f" $(TYPECHECK)/clgrow/; done
	ln -s "$(CURDIR)/strategies" $(TYPECHECK)/clgrow/strategies
	ln -s "$(CURDIR)/experiments" $(TYPECHECK)/clgrow/experiments
	cd $(TYPECHECK) && "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" -p clgrow

test: lint
	$(BIN)/python -m pytest -q -n 2

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m ""

bench: $(STAMP)
	$(BIN)/python -m clgrow.experiments.bench.suite
	$(BIN)/python -m clgrow.experiments.bench.frontier --setting staged
	$(BIN)/python -m clgrow.experiments.bench.frontier --setting stream --match default paper "old default" random gradmax

clean:
	rm -rf $(VENV) runs build
