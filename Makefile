# trainq: `make demo` runs a real training job end to end; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint unit integration e2e clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,torch]'
	touch $(STAMP)

demo: install
	bash docker/demo.sh

test: install lint
	bash docker/host.sh redis-bin
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	bash docker/host.sh redis-bin
	$(BIN)/python -m pytest tests/integration

e2e: install
	bash docker/host.sh redis-bin
	$(BIN)/python -m pytest tests/e2e

clean:
	rm -rf .run checkpoints build .mypy_cache .ruff_cache .pytest_cache
	find logs -mindepth 1 ! -name .gitkeep -delete
