# Every target does its own set-up: a virtual environment in .venv with the CPU build of torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel: an unpinned torch pulls a multi-GB CUDA build. Override with TORCH= for a GPU box.
TORCH ?= torch==2.13.0

.PHONY: demo test lint paper bench clean

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" -e ".[test,ray,slurm,paper]"
	touch $@

demo: $(VENV)/.ready  ## the main job on the embedded default
	$(PY) -m toolkit demo --out runs/demo

lint: $(VENV)/.ready
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint  ## lint, format check and the whole test suite
	$(PY) -m pytest -q

# Execute every notebook (quick profile) and compile paper/paper.typ into paper/build/paper.pdf,
# from the committed data/; FULL=1 re-runs the paper study first (resumable, @HOURS@ h on 2 CPUs).
paper: $(VENV)/.ready  ## the paper, every figure and number regenerated
	$(PY) paper/build.py $(if $(FULL),--full)

bench: $(VENV)/.ready
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache paper/build
