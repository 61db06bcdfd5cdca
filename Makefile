# Batch Normalization from Scratch. `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NOTEBOOKS := $(wildcard source/*/*.ipynb)
# nbgrader and jupyter find their helpers (alembic, kernels) on PATH: use the venv's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help venv demo test lint release lab strip grade bench bench-grading bench-notebooks clean

help:
	@echo "make demo     build release/, autograde the sample submissions with nbgrader, print grades"
	@echo "make test     lint (ruff) and run the whole test suite (pytest)"
	@echo "make lab      start JupyterLab (with the nbgrader extension) in the course directory"
	@echo "make release  regenerate release/ from source/ with nbgrader generate_assignment"
	@echo "make strip    clear outputs from the source notebooks before committing"
	@echo "make grade ASSIGNMENT=02_batchnorm_forward [WORKERS=2]   autograde every submission in parallel, then write the report"
	@echo "make bench    run the BatchNorm speed benchmark"
	@echo "make bench-grading [REPEATS=3]   seconds per submission: nbgrader autograde, the runner, Dask local:2 on SQLite and PostgreSQL"
	@echo "make bench-notebooks  each notebook's run time and peak memory on one core"

# The virtual environment is rebuilt only when pyproject.toml changes (idempotent).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m autograder demo

lint: $(STAMP)
	$(BIN)/ruff check course autograder tests benchmarks source nbgrader_config.py

test: lint
	$(BIN)/python -m pytest

release: $(STAMP)
	$(BIN)/python -m autograder release

lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,)

strip: $(STAMP)
	$(BIN)/jupyter nbconvert --clear-output --inplace $(NOTEBOOKS)

grade: $(STAMP)
	@test -n "$(ASSIGNMENT)" || { echo "usage: make grade ASSIGNMENT=02_batchnorm_forward [WORKERS=2]"; exit 2; }
	$(BIN)/python -m autograder grade $(ASSIGNMENT) --workers $(or $(WORKERS),2)
	$(BIN)/python -m autograder report $(ASSIGNMENT)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_batchnorm.py

REPEATS ?= 1
bench-grading: $(STAMP)
	$(BIN)/python benchmarks/bench_grading.py --repeats $(REPEATS)

bench-notebooks: $(STAMP)
	$(BIN)/python benchmarks/bench_notebooks.py

clean:
	rm -rf submitted autograded feedback reports gradebook.db grades.csv
