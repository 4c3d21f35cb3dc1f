# Every target does its own set-up: a virtual environment in .venv with the CPU build of torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel: an unpinned torch pulls a multi-GB CUDA build. Override with TORCH= for a GPU box.
TORCH ?= torch==2.13.0

# Test workers (pytest-xdist): three on the 2-core CI machine, because the tests of real ranks
# spend most of their time waiting on injected step times (a third worker uses that core: 441 ->
# 415 s for the suite); `make test WORKERS=8` on a bigger machine.
WORKERS ?= 3
# The inner loop's tests start no processes and wait on nothing: two workers, one per core (a
# third only adds its own start and collection, about 9 s of CPU).
FAST_WORKERS ?= 2
# --dist loadgroup: tests marked xdist_group (those sharing the paper build) run on one worker.
PYTEST := $(PY) -m pytest -q -n $(WORKERS) --dist loadgroup

.PHONY: demo test test-fast test-integration lint paper bench clean

# Python compiles a module's bytecode on its first import and keeps it (pip's own compilation of
# every installed file, ray's and torch's included, took 40 of the set-up's 64 s), so bytecode
# writing stays on for everything make runs, whatever the environment says.
export PYTHONDONTWRITEBYTECODE :=

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile "$(TORCH)" -e ".[test,ray,slurm,paper]"
	touch $@

demo: $(VENV)/.ready  ## the main job on the embedded default
	$(PY) -m toolkit demo --out runs/demo

lint: $(VENV)/.ready
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Both sets in one session (integration tests first, tests/conftest.py): the short tests fill
# the end. pytest's exit code 5 (no test collected) fails a target, as any non-zero code does.
test: lint  ## lint, format check and the whole test suite (what CI runs)
	$(PYTEST)

test-fast: $(VENV)/.ready  ## the inner loop: every test not marked integration
	$(PYTEST) -n $(FAST_WORKERS) -m "not integration"

test-integration: $(VENV)/.ready  ## processes, servers, the paper build, whole sweeps
	$(PYTEST) -m integration

# Execute every notebook (quick profile) and compile paper/paper.typ into paper/build/paper.pdf,
# from the committed data/; FULL=1 re-runs the paper study first (resumable, about 2 h on 2 CPUs).
paper: $(VENV)/.ready  ## the paper, every figure and number regenerated
	$(PY) paper/build.py $(if $(FULL),--full)

bench: $(VENV)/.ready
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache paper/build
