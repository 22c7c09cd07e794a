# The two commands a newcomer runs: `make demo` (the main job) and `make test` (lint + tests).
# Both run `make setup` first when .venv is missing or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint unit perf configs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# constraints.txt pins the whole stack: torch to the CPU build, mediapipe 0.10.21 (ships its
	# face-mesh models), numpy<2 and protobuf<5 that it needs.
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/talkbench demo

lint: $(STAMP)
	$(BIN)/ruff check .

# two pytest workers, one per core; each test file stays on one worker (its module fixtures are built once)
unit: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

test: lint unit

# lint + the unit tests that neither read the real fixtures nor are marked slow (a quick inner loop)
test-fast: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow and not fixtures"

# regenerate configs/pipeline.yaml and configs/models/*.yaml from the config classes
configs: $(STAMP)
	$(BIN)/python -m talkbench.pipelines.config > configs/pipeline.yaml
	$(BIN)/python -m talkbench.models.configs

perf: $(STAMP)
	$(BIN)/talkbench perf all

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache demo
