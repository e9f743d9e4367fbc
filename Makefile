# trainq: `make demo` runs a real training job end to end; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install image service-image compose-images compose-check ha-check docker demo test lint unit integration e2e faults gpu-check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,torch]'
	touch $(STAMP)

# The Docker engine (docker.io, dockerd started if `docker info` fails).
docker: install
	bash docker/host.sh docker-up

# The standard training image (TRAINQ_DEFAULT_IMAGE), offline when no registry answers.
image: docker
	bash docker/image.sh train

service-image: docker
	bash docker/image.sh service

# docker-compose.yml's images (training, service, Redis) and a Compose client.
compose-images: image service-image
	bash docker/image.sh redis
	bash docker/host.sh compose-bin

# The Compose stack end to end: up, a job through the API, down.
compose-check: compose-images
	bash docker/compose-check.sh

# The Compose profile "ha" (primary, replica, three sentinels): up, jobs running, the
# primary killed, every job succeeded, recovery time printed, down.
ha-check: compose-images
	bash docker/ha-check.sh

# The elapsed time it prints counts from here: set-up, image build and the job.
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory image && DEMO_STARTED=$$start bash docker/demo.sh

# Two processes, one test file at a time each (module fixtures stay in one process).
test: install lint image
	bash docker/host.sh redis-bin
	bash docker/host.sh compose-bin
	bash docker/host.sh chromium-bin
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

# Style, types, and the layers (import-linter contracts in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install image
	bash docker/host.sh redis-bin
	$(BIN)/python -m pytest tests/integration

e2e: install image
	bash docker/host.sh redis-bin
	bash docker/host.sh compose-bin
	bash docker/host.sh chromium-bin
	$(BIN)/python -m pytest tests/e2e

faults: install image
	bash docker/host.sh redis-bin
	$(BIN)/python -m pytest tests/faults

# On a machine with NVIDIA GPUs: train.py on CUDA through a worker pinned to one GPU
# (skipped, saying why, anywhere else).
gpu-check: install
	$(BIN)/python -m pip install -q -e '.[gpu]'
	bash docker/host.sh redis-bin
	$(BIN)/python -m pytest -m gpu tests/gpu -rs

# Benchmarks: figures against baselines measured in the same run (docs/benchmarks.md).
# One alone: make bench BENCHMARKS=dispatch (or .venv/bin/python -m benchmarks.dispatch).
# Every benchmark runs; the target fails after, naming those that missed a goal (exit 3,
# benchmarks/figures.py) or crashed.
BENCHMARKS := dispatch throughput logs submit many floors memory retry artifacts scheduling ui idle client replication
bench: install image
	bash docker/host.sh redis-bin
	bash docker/host.sh ab-bin
	@missed=""; crashed=""; for b in $(BENCHMARKS); do \
		echo "== benchmarks.$$b"; $(BIN)/python -m benchmarks.$$b; rc=$$?; \
		if [ $$rc -eq 3 ]; then missed="$$missed $$b"; elif [ $$rc -ne 0 ]; then crashed="$$crashed $$b"; fi; \
	done; \
	if [ -n "$$missed$$crashed" ]; then \
		echo "make bench: goals missed in:$${missed:- none}; crashed (exit status not 0 or 3):$${crashed:- none}" >&2; \
		exit 1; \
	fi

clean:
	rm -rf .run checkpoints build .mypy_cache .ruff_cache .pytest_cache
	find logs -mindepth 1 ! -name .gitkeep -delete
